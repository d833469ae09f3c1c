//! The identity carried by a verified IGC-Santé client certificate.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_parser::x509::X509Name;

/// Who a client certificate says it is, once the TLS layer verified its chain and this
/// module checked its use (EKU clientAuth), dates and revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateIdentity {
    /// Subject DN in RFC 4514 form, e.g. `CN=LABO-SIL,OU=318751275100020,O=…,C=FR`.
    pub subject: String,
    /// Issuer DN in RFC 4514 form.
    pub issuer: String,
    /// Subject common name: the application's name.
    pub common_name: Option<String>,
    /// Subject organisational unit: the structure's identifier (1+FINESS or 3+SIRET).
    pub organisational_unit: Option<String>,
    /// Serial number, hex.
    pub serial: String,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fingerprint: String,
}

/// Why a client certificate gives no identity. The messages are distinct so the audit
/// trail says which rule refused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("no client certificate")]
    Missing,
    #[error("certificate expired")]
    Expired,
    #[error("certificate not yet valid")]
    NotYetValid,
    #[error("not a client-authentication certificate (EKU)")]
    NotClientAuth,
    #[error("certificate revoked")]
    Revoked,
    #[error("certificate from an untrusted authority")]
    UnknownIssuer,
    #[error("malformed certificate")]
    Malformed,
    /// Any other verification failure (bad signature, unsupported algorithm…).
    #[error("certificate rejected: {0}")]
    Rejected(String),
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
}

impl CertificateError {
    /// The same classification for a refusal that rustls made during the handshake.
    pub fn from_rustls(e: &rustls::CertificateError) -> Self {
        use rustls::CertificateError as R;
        match e {
            R::Expired | R::ExpiredContext { .. } => Self::Expired,
            R::NotValidYet | R::NotValidYetContext { .. } => Self::NotYetValid,
            R::Revoked => Self::Revoked,
            R::UnknownIssuer => Self::UnknownIssuer,
            R::InvalidPurpose | R::InvalidPurposeContext { .. } => Self::NotClientAuth,
            R::BadEncoding => Self::Malformed,
            other => Self::Rejected(format!("{other:?}")),
        }
    }
}

/// Serials revoked by each issuer, read from the configured CRLs. rustls already refuses
/// revoked certificates during the handshake; this second look costs a hash lookup and
/// keeps `identify` honest when a connection outlives a CRL refresh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocations {
    /// (issuer DN as `dn_string` prints it, serial hex as in `CertificateIdentity`).
    revoked: HashSet<(String, String)>,
}

impl Revocations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every entry of one DER CRL and returns its nextUpdate. The signature is not
    /// checked here: rustls checks it against the trust anchors before relying on the
    /// same CRL.
    pub fn add_crl(&mut self, der: &[u8]) -> Result<Option<DateTime<Utc>>, CertificateError> {
        let (rest, crl) =
            x509_parser::parse_x509_crl(der).map_err(|_| CertificateError::Malformed)?;
        if !rest.is_empty() {
            return Err(CertificateError::Malformed);
        }
        let issuer = dn_string(crl.issuer());
        for entry in crl.iter_revoked_certificates() {
            self.revoked
                .insert((issuer.clone(), serial_hex(entry.raw_serial())));
        }
        Ok(crl
            .next_update()
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.timestamp(), 0)))
    }

    pub fn merge(&mut self, other: &Revocations) {
        self.revoked.extend(other.revoked.iter().cloned());
    }

    pub fn is_revoked(&self, identity: &CertificateIdentity) -> bool {
        self.revoked
            .contains(&(identity.issuer.clone(), identity.serial.clone()))
    }

    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }
}

/// The identity of the end-entity certificate of a chain that the TLS layer verified
/// (`conn.peer_certificates()`), after checking its dates against `now` (the injectable
/// clock, so tests and the sandbox can move time) and its EKU.
pub fn identify(
    chain: &[CertificateDer<'_>],
    now: DateTime<Utc>,
) -> Result<CertificateIdentity, CertificateError> {
    let end_entity = chain.first().ok_or(CertificateError::Missing)?;
    let (rest, cert) =
        x509_parser::parse_x509_certificate(end_entity).map_err(|_| CertificateError::Malformed)?;
    if !rest.is_empty() {
        return Err(CertificateError::Malformed);
    }
    let validity = cert.validity();
    let t = now.timestamp();
    if t < validity.not_before.timestamp() {
        return Err(CertificateError::NotYetValid);
    }
    if t > validity.not_after.timestamp() {
        return Err(CertificateError::Expired);
    }
    // An AUTH_CLI certificate names clientAuth explicitly; a certificate without the
    // extension (or with anyExtendedKeyUsage only) was not issued for this use.
    let client_auth = cert
        .extended_key_usage()
        .map_err(|_| CertificateError::Malformed)?
        .is_some_and(|eku| eku.value.client_auth);
    if !client_auth {
        return Err(CertificateError::NotClientAuth);
    }
    let subject = cert.subject();
    Ok(CertificateIdentity {
        subject: dn_string(subject),
        issuer: dn_string(cert.issuer()),
        common_name: subject.iter_common_name().next().map(attribute_value),
        organisational_unit: subject
            .iter_organizational_unit()
            .next()
            .map(attribute_value),
        serial: serial_hex(cert.raw_serial()),
        fingerprint: hex::encode(Sha256::digest(end_entity.as_ref())),
    })
}

/// `identify`, then refuses a serial listed in `revocations`.
pub fn identify_checked(
    chain: &[CertificateDer<'_>],
    now: DateTime<Utc>,
    revocations: &Revocations,
) -> Result<CertificateIdentity, CertificateError> {
    let identity = identify(chain, now)?;
    if revocations.is_revoked(&identity) {
        return Err(CertificateError::Revoked);
    }
    Ok(identity)
}

/// The identity of the first certificate of a PEM file (a chain file binds its end
/// entity), for `mailbox grant --certificate FILE`. Dates are not checked: an operator may
/// bind a certificate that is about to become valid.
pub fn identity_from_pem_file(path: &Path) -> Result<CertificateIdentity, CertificateError> {
    let file_error = |reason: String| CertificateError::File {
        path: path.display().to_string(),
        reason,
    };
    let first = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(e.to_string()))?
        .next()
        .ok_or_else(|| file_error("no certificate found".into()))?
        .map_err(|e| file_error(e.to_string()))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&first).map_err(|_| CertificateError::Malformed)?;
    let not_before = cert.validity().not_before.timestamp();
    let at = DateTime::<Utc>::from_timestamp(not_before, 0).ok_or(CertificateError::Malformed)?;
    identify(std::slice::from_ref(&first), at)
}

/// A distinguished name as RFC 4514 writes it: most specific RDN first, comma-separated,
/// e.g. `CN=SIL,OU=1750012345,O=LABO,ST=Paris (75),C=FR`. The trust list
/// (`DNCertificatOperateur`) and certificate bindings use this form, so comparisons are
/// plain string equality.
pub fn dn_string(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| format!("{}={}", attribute_type(atv.attr_type()), escape(atv)))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn attribute_type(oid: &x509_parser::der_parser::Oid<'_>) -> String {
    let name = match oid.to_id_string().as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.5" => "serialNumber",
        "2.5.4.97" => "organizationIdentifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        other => return other.to_owned(),
    };
    name.to_owned()
}

fn attribute_value(atv: &x509_parser::x509::AttributeTypeAndValue<'_>) -> String {
    match atv.as_str() {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(atv.as_slice()).into_owned(),
    }
}

/// RFC 4514 section 2.4 escaping; values that are not strings are written `#<hex>`.
fn escape(atv: &x509_parser::x509::AttributeTypeAndValue<'_>) -> String {
    let Ok(value) = atv.as_str() else {
        return format!("#{}", hex::encode(atv.attr_value().data));
    };
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if c == '\0' {
            out.push_str("\\00");
        } else {
            if special {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// Serial as lowercase hex without the DER sign byte, so certificates and CRL entries agree.
fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex::encode(&raw[start.min(raw.len())..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject_of(pairs: &[(rcgen::DnType, &str)]) -> String {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in pairs {
            params.distinguished_name.push(t.clone(), *v);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        dn_string(parsed.subject())
    }

    #[test]
    fn dn_is_most_specific_first_and_escaped() {
        use rcgen::DnType::*;
        assert_eq!(
            subject_of(&[
                (CountryName, "FR"),
                (StateOrProvinceName, "Paris (75)"),
                (OrganizationName, "GIP MIPIH"),
                (OrganizationalUnitName, "318310021300028"),
                (CommonName, "mx.operator.fr"),
            ]),
            "CN=mx.operator.fr,OU=318310021300028,O=GIP MIPIH,ST=Paris (75),C=FR"
        );
        assert_eq!(
            subject_of(&[(OrganizationName, "A, B+C"), (CommonName, "#x y ")]),
            r"CN=\#x y\ ,O=A\, B\+C"
        );
    }

    #[test]
    fn serials_drop_the_sign_byte() {
        assert_eq!(serial_hex(&[0x00, 0x9f, 0x01]), "9f01");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[0x12]), "12");
        assert_eq!(serial_hex(&[]), "");
    }
}
