//! The MSSanté trust list (`listeblanchemssante.xml`): which operator certificate may
//! speak for which domain.
//!
//! The ANS publishes one `<Domaine>` per (domain, operator certificate) with `<Nom>` and
//! `<DNCertificatOperateur>`; a domain may appear several times (an operator with several
//! servers, or a certificate renewal in progress). The list is read at start, then
//! refreshed every `trust.refresh`; a refresh that cannot be fetched or parsed keeps the
//! list in force, because dropping every peer on a truncated download would stop mail
//! between operators.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use quick_xml::events::Event;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::TrustConfig;

/// A trust list larger than this is refused (the national list is well under 1 MiB).
const MAX_LIST_SIZE: usize = 16 * 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read the trust list {source_name}: {reason}")]
    Fetch { source_name: String, reason: String },
    #[error("malformed trust list: {0}")]
    Malformed(String),
}

/// A distinguished name reduced to what identifies it: the set of (attribute type,
/// value) pairs, types upper-cased, values case-folded with spaces collapsed. Order,
/// spacing after commas and letter case do not change who the certificate names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NormalisedDn(BTreeSet<(String, String)>);

impl NormalisedDn {
    /// Parses an RFC 4514 string (`CN=mx.op.fr,OU=318…,O=GIP,ST=Haute-Garonne (31),C=FR`).
    pub fn parse(dn: &str) -> Option<Self> {
        let mut set = BTreeSet::new();
        for part in split_unescaped(dn) {
            let (ty, value) = part.split_once('=')?;
            let ty = canonical_type(ty.trim());
            if ty.is_empty() {
                return None;
            }
            let value = unescape(value.trim());
            let folded = value
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            set.insert((ty, folded));
        }
        if set.is_empty() {
            return None;
        }
        Some(NormalisedDn(set))
    }
}

/// Splits at `,` `;` and `+` not escaped by a backslash.
fn split_unescaped(dn: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for ch in dn.chars() {
        if escaped {
            current.push('\\');
            current.push(ch);
            escaped = false;
        } else if ch == '\\' {
            escaped = true;
        } else if matches!(ch, ',' | ';' | '+') {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(ch);
        }
    }
    parts.push(current);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(ch);
        }
    }
    out.trim_matches('"').to_owned()
}

fn canonical_type(ty: &str) -> String {
    match ty.to_ascii_uppercase().as_str() {
        "2.5.4.3" => "CN".into(),
        "2.5.4.6" => "C".into(),
        "2.5.4.7" => "L".into(),
        "2.5.4.8" | "S" => "ST".into(),
        "2.5.4.10" => "O".into(),
        "2.5.4.11" => "OU".into(),
        "E" | "EMAIL" | "1.2.840.113549.1.9.1" => "EMAILADDRESS".into(),
        "2.5.4.5" => "SERIALNUMBER".into(),
        other => other.to_owned(),
    }
}

/// The parsed list: domain (lower case) → certificate DNs allowed for it.
#[derive(Debug, Clone, Default)]
pub struct Entries {
    by_domain: HashMap<String, Vec<NormalisedDn>>,
}

impl Entries {
    pub fn domains(&self) -> usize {
        self.by_domain.len()
    }

    /// Certificates listed, all domains together.
    pub fn certificates(&self) -> usize {
        self.by_domain.values().map(Vec::len).sum()
    }
}

/// Reads `listeblanchemssante.xml`. Elements are matched by local name, so the
/// namespace prefix the publisher chose does not matter.
pub fn parse(xml: &[u8]) -> Result<Entries, TrustError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut entries = Entries::default();
    let mut in_domain = false;
    let mut field: Option<&'static str> = None;
    let mut name = String::new();
    let mut dn = String::new();
    let mut count = 0usize;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| TrustError::Malformed(format!("XML: {e}")))?;
        match event {
            Event::Start(e) => match e.local_name().as_ref() {
                b"Domaine" => {
                    if in_domain {
                        return Err(TrustError::Malformed("nested <Domaine>".into()));
                    }
                    in_domain = true;
                    name.clear();
                    dn.clear();
                }
                b"Nom" if in_domain => field = Some("Nom"),
                b"DNCertificatOperateur" if in_domain => field = Some("DN"),
                _ => field = None,
            },
            Event::Text(t) => {
                let text = t
                    .decode()
                    .map_err(|e| TrustError::Malformed(format!("text: {e}")))?;
                push_field(field, &text, &mut name, &mut dn);
            }
            Event::GeneralRef(r) => {
                let text = match r
                    .resolve_char_ref()
                    .map_err(|e| TrustError::Malformed(format!("reference: {e}")))?
                {
                    Some(ch) => ch.to_string(),
                    None => {
                        let entity = r
                            .decode()
                            .map_err(|e| TrustError::Malformed(format!("reference: {e}")))?;
                        quick_xml::escape::resolve_predefined_entity(&entity)
                            .ok_or_else(|| {
                                TrustError::Malformed(format!("unknown entity &{entity};"))
                            })?
                            .to_owned()
                    }
                };
                push_field(field, &text, &mut name, &mut dn);
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"Domaine" => {
                    in_domain = false;
                    let domain = name.trim().trim_end_matches('.').to_ascii_lowercase();
                    if domain.is_empty() {
                        return Err(TrustError::Malformed("<Domaine> without <Nom>".into()));
                    }
                    let parsed = NormalisedDn::parse(dn.trim()).ok_or_else(|| {
                        TrustError::Malformed(format!(
                            "<Domaine> {domain}: unreadable <DNCertificatOperateur> `{dn}`"
                        ))
                    })?;
                    entries.by_domain.entry(domain).or_default().push(parsed);
                    count += 1;
                }
                _ => field = None,
            },
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if in_domain {
        return Err(TrustError::Malformed("unterminated <Domaine>".into()));
    }
    if count == 0 {
        return Err(TrustError::Malformed("no <Domaine> entry".into()));
    }
    Ok(entries)
}

fn push_field(field: Option<&str>, text: &str, name: &mut String, dn: &mut String) {
    match field {
        Some("Nom") => name.push_str(text),
        Some("DN") => dn.push_str(text),
        _ => {}
    }
}

/// The list in force, shared by the inbound sessions and the outbound queue.
#[derive(Debug)]
pub struct TrustList {
    source: Option<String>,
    entries: RwLock<Arc<Entries>>,
}

impl TrustList {
    /// Reads `[trust] list`; no list configured means no other operator is trusted.
    pub async fn load(config: &TrustConfig) -> Result<Arc<Self>, TrustError> {
        let entries = match &config.list {
            None => Entries::default(),
            Some(source) => parse(&fetch(source).await?)?,
        };
        tracing::info!(domains = entries.domains(), "trust list loaded");
        Ok(Arc::new(TrustList {
            source: config.list.clone(),
            entries: RwLock::new(Arc::new(entries)),
        }))
    }

    /// A list from a document already in memory.
    pub fn from_xml(xml: &[u8]) -> Result<Self, TrustError> {
        Ok(TrustList {
            source: None,
            entries: RwLock::new(Arc::new(parse(xml)?)),
        })
    }

    fn current(&self) -> Arc<Entries> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Is this domain in the trust space?
    pub fn has_domain(&self, domain: &str) -> bool {
        self.current()
            .by_domain
            .contains_key(&domain.to_ascii_lowercase())
    }

    /// May the certificate with this subject DN speak for `domain`?
    pub fn allows(&self, domain: &str, subject_dn: &str) -> bool {
        let Some(dn) = NormalisedDn::parse(subject_dn) else {
            return false;
        };
        self.current()
            .by_domain
            .get(&domain.to_ascii_lowercase())
            .is_some_and(|list| list.contains(&dn))
    }

    /// Is this certificate listed for any domain (a null reverse-path names none)?
    pub fn lists_certificate(&self, subject_dn: &str) -> bool {
        let Some(dn) = NormalisedDn::parse(subject_dn) else {
            return false;
        };
        self.current()
            .by_domain
            .values()
            .any(|list| list.contains(&dn))
    }

    /// Reads the source again; on any error the previous list stays in force.
    pub async fn refresh(&self) -> Result<(), TrustError> {
        let Some(source) = &self.source else {
            return Ok(());
        };
        let entries = parse(&fetch(source).await?)?;
        tracing::info!(domains = entries.domains(), "trust list refreshed");
        *self.entries.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(entries);
        Ok(())
    }

    /// Domains and certificates in the list in force (for metrics).
    pub fn size(&self) -> (usize, usize) {
        let entries = self.current();
        (entries.domains(), entries.certificates())
    }

    /// Refreshes every `every` until shutdown; `refreshed` hears of each list put in
    /// force.
    pub fn spawn_refresh(
        self: &Arc<Self>,
        every: Duration,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
        refreshed: impl Fn(&TrustList) + Send + 'static,
    ) {
        if self.source.is_none() || every.is_zero() {
            return;
        }
        let list = self.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                match list.refresh().await {
                    Ok(()) => refreshed(&list),
                    Err(e) => tracing::warn!(error = %e, "trust list refresh failed; keeping the previous list"),
                }
            }
        });
    }
}

async fn fetch(source: &str) -> Result<Vec<u8>, TrustError> {
    let fail = |reason: String| TrustError::Fetch {
        source_name: source.to_owned(),
        reason,
    };
    if source.contains("://") {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let response = client
            .get(source)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| fail(e.to_string()))?;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_LIST_SIZE as u64)
        {
            return Err(fail("too large".into()));
        }
        let bytes = response.bytes().await.map_err(|e| fail(e.to_string()))?;
        if bytes.len() > MAX_LIST_SIZE {
            return Err(fail("too large".into()));
        }
        Ok(bytes.to_vec())
    } else {
        let meta = tokio::fs::metadata(source)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if meta.len() > MAX_LIST_SIZE as u64 {
            return Err(fail("too large".into()));
        }
        tokio::fs::read(source)
            .await
            .map_err(|e| fail(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema">
  <Domaine>
    <Nom>operator.mssante.fr</Nom>
    <DNCertificatOperateur>CN=mx.operator.fr,OU=318310021300028,O=GIP MIPIH,ST=Haute-Garonne (31),C=FR</DNCertificatOperateur>
  </Domaine>
  <Domaine>
    <Nom>operator.mssante.fr</Nom>
    <DNCertificatOperateur>CN=mx2.operator.fr,OU=318310021300028,O=GIP MIPIH,ST=Haute-Garonne (31),C=FR</DNCertificatOperateur>
  </Domaine>
  <Domaine>
    <Nom>Other.MSSante.fr</Nom>
    <DNCertificatOperateur>CN=mx.other.fr,OU=1,O=A &amp; B,C=FR</DNCertificatOperateur>
  </Domaine>
</ListeBlanche>"#;

    #[test]
    fn domains_and_certificates() {
        let list = TrustList::from_xml(LIST.as_bytes()).unwrap();
        assert!(list.has_domain("operator.mssante.fr"));
        assert!(list.has_domain("other.mssante.fr"));
        assert!(!list.has_domain("example.org"));
        assert!(list.allows(
            "operator.mssante.fr",
            "CN=mx.operator.fr,OU=318310021300028,O=GIP MIPIH,ST=Haute-Garonne (31),C=FR"
        ));
        // a domain listed twice accepts both certificates
        assert!(list.allows(
            "OPERATOR.mssante.fr",
            "CN=mx2.operator.fr,OU=318310021300028,O=GIP MIPIH,ST=Haute-Garonne (31),C=FR"
        ));
        // attribute order and spacing do not matter
        assert!(list.allows(
            "operator.mssante.fr",
            "C=FR, ST=Haute-Garonne (31), O=GIP  MIPIH, OU=318310021300028, CN=mx.operator.fr"
        ));
        assert!(list.allows("other.mssante.fr", "CN=mx.other.fr,OU=1,O=A & B,C=FR"));
        // a certificate listed for one domain does not speak for another
        assert!(!list.allows(
            "other.mssante.fr",
            "CN=mx.operator.fr,OU=318310021300028,O=GIP MIPIH,ST=Haute-Garonne (31),C=FR"
        ));
        assert!(!list.allows("operator.mssante.fr", "CN=mx.operator.fr,O=GIP MIPIH,C=FR"));
        assert!(list.lists_certificate("CN=mx.other.fr,OU=1,O=A & B,C=FR"));
        assert!(!list.lists_certificate("CN=nobody,C=FR"));
    }

    #[test]
    fn malformed_lists() {
        for bad in [
            "",
            "<ListeBlanche></ListeBlanche>",
            "<ListeBlanche><Domaine><Nom>a.fr</Nom></Domaine></ListeBlanche>",
            "<ListeBlanche><Domaine><DNCertificatOperateur>CN=x</DNCertificatOperateur></Domaine></ListeBlanche>",
            "<ListeBlanche><Domaine><Nom>a.fr</Nom><DNCertificatOperateur>CN=x",
            "<ListeBlanche><Domaine><Nom>a.fr</Nom><DNCertificatOperateur>garbage</DNCertificatOperateur></Domaine></ListeBlanche>",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn malformed_refresh_keeps_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("liste.xml");
        std::fs::write(&path, LIST).unwrap();
        let config = TrustConfig {
            list: Some(path.to_string_lossy().into_owned()),
            refresh: crate::config::HumanDuration(Duration::from_secs(3600)),
        };
        let list = TrustList::load(&config).await.unwrap();
        std::fs::write(&path, "<ListeBlanche><Domaine>").unwrap();
        assert!(list.refresh().await.is_err());
        assert!(list.has_domain("operator.mssante.fr"));
        std::fs::write(
            &path,
            "<ListeBlanche><Domaine><Nom>new.fr</Nom><DNCertificatOperateur>CN=n,C=FR</DNCertificatOperateur></Domaine></ListeBlanche>",
        )
        .unwrap();
        list.refresh().await.unwrap();
        assert!(list.has_domain("new.fr"));
        assert!(!list.has_domain("operator.mssante.fr"));
    }
}
