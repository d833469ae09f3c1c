//! `mssante mailbox …`: create, list, show, delete, grant, revoke, hold and quota.

use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::report;
use mssante::auth::certificate::identity_from_pem_file;
use mssante::config::{ByteSize, Config};
use mssante::store::{
    AuditEntry, AuditOutcome, DirectoryFields, Grant, Mailbox, MailboxKind, NewMailbox, Quota,
    QuotaLimit, Store, StoreError,
};

#[derive(Subcommand, Debug)]
pub enum MailboxCommand {
    /// Create a mailbox with its default folders (INBOX, Sent, Drafts, Trash, Junk).
    Create(CreateArgs),
    /// List every mailbox.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one mailbox, its grants and folders.
    Show {
        address: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a mailbox and all its mail.
    Delete { address: String },
    /// Let a professional or a certificate open a mailbox.
    Grant(GrantArgs),
    /// Take a grant back.
    Revoke(GrantArgs),
    /// Keep a mailbox from deletion for inactivity (the holder objected).
    Hold { address: String },
    /// Let the inactivity rules apply to a held mailbox again.
    Release { address: String },
    /// Show a mailbox's limits and usage, or change its limits (`none` removes one).
    Quota(QuotaArgs),
}

#[derive(Args, Debug)]
pub struct QuotaArgs {
    pub address: String,
    /// Storage limit: bytes, or with a unit (500MB, 2GiB), or `none`.
    #[arg(long, value_parser = parse_storage_limit)]
    pub storage: Option<QuotaLimit>,
    /// Message count limit, or `none`.
    #[arg(long, value_parser = parse_message_limit)]
    pub messages: Option<QuotaLimit>,
}

/// Sizes read as in the configuration file, so an operator writes them one way.
fn parse_storage_limit(s: &str) -> Result<QuotaLimit, String> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(QuotaLimit::Clear);
    }
    ByteSize::parse(s).map(|b| QuotaLimit::Set(b.0))
}

fn parse_message_limit(s: &str) -> Result<QuotaLimit, String> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(QuotaLimit::Clear);
    }
    s.trim()
        .parse::<u64>()
        .map(QuotaLimit::Set)
        .map_err(|_| format!("`{s}` is not a number of messages (or `none`)"))
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    pub address: String,
    /// personal, organisational or applicative.
    #[arg(long, value_parser = clap::builder::ValueParser::new(|s: &str| s.parse::<MailboxKind>()))]
    pub kind: MailboxKind,
    /// The holder's IdNat (required for personal mailboxes).
    #[arg(long)]
    pub owner: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Creation date, for mailboxes migrated from another operator (RFC 3339).
    #[arg(long, value_parser = parse_rfc3339)]
    pub created_at: Option<DateTime<Utc>>,
    /// Never publish this mailbox in the Annuaire Santé (liste rouge).
    #[arg(long)]
    pub red_list: bool,
    /// Directory: description of the mailbox.
    #[arg(long)]
    pub description: Option<String>,
    /// Directory: responsible person (organisational and applicative mailboxes).
    #[arg(long)]
    pub responsible: Option<String>,
    /// Directory: service.
    #[arg(long)]
    pub service: Option<String>,
    /// Directory: telephone.
    #[arg(long)]
    pub telephone: Option<String>,
    /// Directory: the mailbox accepts dematerialised documents.
    #[arg(long)]
    pub dematerialisation: bool,
    /// Where to send lifecycle notices besides the mailbox itself.
    #[arg(long)]
    pub contact: Option<String>,
}

#[derive(Args, Debug)]
#[group(skip)]
#[command(group = clap::ArgGroup::new("holder").required(true).multiple(false).args(["idnat", "certificate"]))]
pub struct GrantArgs {
    pub address: String,
    /// A professional's IdNat (organisational mailboxes).
    #[arg(long)]
    pub idnat: Option<String>,
    /// A certificate (PEM file; the first certificate of a chain) whose subject and issuer
    /// are bound, so that its renewals keep working; or a SHA-256 fingerprint (64 hex
    /// digits, colons allowed) to pin.
    #[arg(long)]
    pub certificate: Option<String>,
    /// Bind the exact certificate (its SHA-256 fingerprint) instead of its subject.
    #[arg(long, requires = "certificate")]
    pub pin: bool,
}

pub fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("`{s}` is not an RFC 3339 date (e.g. 2025-01-31T00:00:00Z): {e}"))
}

/// A mailbox as `show` and `list --json` print it.
#[derive(Serialize)]
struct MailboxView {
    #[serde(flatten)]
    mailbox: Mailbox,
    grants: Vec<Grant>,
    quota: Quota,
}

pub async fn run(config: &Config, cmd: MailboxCommand) -> ExitCode {
    let store = match super::open_store(config, mssante::clock::system()).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    report(dispatch(config, &store, cmd).await)
}

async fn dispatch(config: &Config, store: &Store, cmd: MailboxCommand) -> anyhow::Result<()> {
    match cmd {
        MailboxCommand::Create(a) => create(config, store, a).await,
        MailboxCommand::List { json } => {
            for m in store.mailboxes().await? {
                if json {
                    let grants = store.grants(m.id).await?;
                    let quota = store.quota(m.id).await?.unwrap_or_default();
                    let view = MailboxView {
                        mailbox: m,
                        grants,
                        quota,
                    };
                    println!("{}", serde_json::to_string(&view)?);
                } else {
                    println!(
                        "{:<40} {:<15} {:<14} {}",
                        m.address,
                        m.kind,
                        m.owner.as_deref().unwrap_or("-"),
                        m.last_authenticated_at
                            .map(|d| d.to_rfc3339())
                            .unwrap_or_else(|| "never".into())
                    );
                }
            }
            Ok(())
        }
        MailboxCommand::Show { address, json } => {
            let m = find(store, &address).await?;
            let grants = store.grants(m.id).await?;
            let folders = store.folders(m.id).await?;
            let quota = store.quota(m.id).await?.unwrap_or_default();
            if json {
                let view = MailboxView {
                    mailbox: m,
                    grants,
                    quota,
                };
                println!("{}", serde_json::to_string_pretty(&view)?);
                return Ok(());
            }
            println!("address:               {}", m.address);
            println!("kind:                  {}", m.kind);
            println!(
                "owner:                 {}",
                m.owner.as_deref().unwrap_or("-")
            );
            println!(
                "name:                  {}",
                m.display_name.as_deref().unwrap_or("-")
            );
            println!("created_at:            {}", m.created_at.to_rfc3339());
            println!(
                "last_authenticated_at: {}",
                m.last_authenticated_at
                    .map(|d| d.to_rfc3339())
                    .unwrap_or_else(|| "never".into())
            );
            println!("published:             {}", m.published);
            println!("red_list:              {}", m.red_list);
            println!("hold:                  {}", m.hold);
            print_quota(&quota);
            println!("grants:");
            for g in grants {
                match g {
                    Grant::Idnat { idnat } => println!("  idnat {idnat}"),
                    Grant::CertificateSubject { subject, issuer } => {
                        println!("  certificate subject {subject} (issuer {issuer})")
                    }
                    Grant::CertificatePin { fingerprint } => {
                        println!("  certificate pinned sha256:{fingerprint}")
                    }
                }
            }
            println!("folders:");
            for f in folders {
                let counts = store.counts(f.id).await?;
                println!("  {:<20} {} messages", f.name, counts.messages);
            }
            Ok(())
        }
        MailboxCommand::Delete { address } => {
            if store.delete_mailbox(&address).await? {
                println!("deleted {address}");
                Ok(())
            } else {
                bail!("no mailbox {address}")
            }
        }
        MailboxCommand::Grant(a) => {
            let m = find(store, &a.address).await?;
            let grant = grant_from(&a, &m)?;
            store.add_grant(&m.address, grant.clone()).await?;
            println!("granted {} on {}", describe(&grant), m.address);
            Ok(())
        }
        MailboxCommand::Revoke(a) => {
            let m = find(store, &a.address).await?;
            let grant = grant_from(&a, &m)?;
            if store.revoke_grant(&m.address, grant.clone()).await? {
                println!("revoked {} on {}", describe(&grant), m.address);
                Ok(())
            } else {
                bail!("{} holds no such grant on {}", describe(&grant), m.address)
            }
        }
        MailboxCommand::Hold { address } => set_hold(store, &address, true).await,
        MailboxCommand::Release { address } => set_hold(store, &address, false).await,
        MailboxCommand::Quota(a) => quota(store, a).await,
    }
}

/// With no limit given, shows them; otherwise changes them, and records the change in
/// the audit trail: a limit decides whether mail is refused, so who changed it and when
/// must be traceable like the refusals themselves.
async fn quota(store: &Store, a: QuotaArgs) -> anyhow::Result<()> {
    let m = find(store, &a.address).await?;
    let (storage, messages) = (
        a.storage.unwrap_or(QuotaLimit::Keep),
        a.messages.unwrap_or(QuotaLimit::Keep),
    );
    if storage == QuotaLimit::Keep && messages == QuotaLimit::Keep {
        let quota = store.quota(m.id).await?.unwrap_or_default();
        println!("address:               {}", m.address);
        print_quota(&quota);
        return Ok(());
    }
    let quota = match store.set_quota(&m.address, storage, messages).await {
        Ok(q) => q,
        Err(StoreError::NoMailbox(a)) => bail!("no mailbox {a}"),
        Err(e) => return Err(e.into()),
    };
    let reason = format!(
        "quota set: storage {}, messages {}",
        limit_text(quota.quota_storage),
        limit_text(quota.quota_messages)
    );
    store
        .audit(AuditEntry {
            at: mssante::clock::SystemClock::now_utc(),
            protocol: "cli".into(),
            mechanism: None,
            identity: None,
            mailbox: Some(m.address.clone()),
            peer: None,
            outcome: AuditOutcome::Success,
            reason: Some(reason),
        })
        .await
        .context("the quota is set, but recording it in the audit trail failed")?;
    println!("address:               {}", m.address);
    print_quota(&quota);
    Ok(())
}

fn limit_text(limit: Option<u64>) -> String {
    limit.map_or_else(|| "none".to_owned(), |l| l.to_string())
}

fn print_quota(q: &Quota) {
    println!("quota_storage:         {}", limit_text(q.quota_storage));
    println!("quota_messages:        {}", limit_text(q.quota_messages));
    println!("used_bytes:            {}", q.used_bytes);
    println!("used_messages:         {}", q.used_messages);
}

async fn set_hold(store: &Store, address: &str, hold: bool) -> anyhow::Result<()> {
    if !store.set_hold(address, hold).await? {
        bail!("no mailbox {address}");
    }
    if hold {
        println!("{address} is held: it will not be deleted for inactivity");
    } else {
        println!("{address} is released: the inactivity rules apply again");
    }
    Ok(())
}

async fn find(store: &Store, address: &str) -> anyhow::Result<Mailbox> {
    store
        .mailbox(address)
        .await?
        .with_context(|| format!("no mailbox {address}"))
}

fn describe(g: &Grant) -> String {
    match g {
        Grant::Idnat { idnat } => format!("IdNat {idnat}"),
        Grant::CertificateSubject { subject, .. } => format!("certificate {subject}"),
        Grant::CertificatePin { fingerprint } => format!("certificate sha256:{fingerprint}"),
    }
}

fn grant_from(a: &GrantArgs, m: &Mailbox) -> anyhow::Result<Grant> {
    if let Some(idnat) = &a.idnat {
        if m.kind != MailboxKind::Organisational {
            bail!(
                "{} is {}: IdNat grants are for organisational mailboxes (a personal mailbox opens to its holder only)",
                m.address,
                m.kind
            );
        }
        return Ok(Grant::Idnat {
            idnat: idnat.trim().to_owned(),
        });
    }
    if let Some(cert) = &a.certificate {
        if m.kind != MailboxKind::Applicative {
            bail!(
                "{} is {}: certificates open applicative mailboxes only",
                m.address,
                m.kind
            );
        }
        return certificate_grant(cert, a.pin);
    }
    bail!("say --idnat or --certificate")
}

/// `--certificate` is a fingerprint when it reads as 64 hex digits and names no file;
/// otherwise a PEM file whose first certificate is bound by subject+issuer (or pinned).
fn certificate_grant(cert: &str, pin: bool) -> anyhow::Result<Grant> {
    let path = std::path::Path::new(cert);
    let hex: String = cert
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if !path.exists() && hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(Grant::CertificatePin { fingerprint: hex });
    }
    if !path.exists() {
        bail!("`{cert}` is neither a certificate file nor a SHA-256 fingerprint (64 hex digits)");
    }
    let identity = identity_from_pem_file(path)
        .with_context(|| format!("reading the certificate in {cert}"))?;
    if pin {
        return Ok(Grant::CertificatePin {
            fingerprint: identity.fingerprint,
        });
    }
    if identity.common_name.is_none() {
        bail!("the certificate in {cert} has no CN: bind it with --pin");
    }
    Ok(Grant::CertificateSubject {
        subject: identity.subject,
        issuer: identity.issuer,
    })
}

async fn create(config: &Config, store: &Store, a: CreateArgs) -> anyhow::Result<()> {
    let domain = a
        .address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or_default();
    if !config.is_local_domain(domain) {
        bail!(
            "{} is not in a domain hosted here (server.domains: {})",
            a.address,
            config.server.domains.join(", ")
        );
    }
    if a.kind == MailboxKind::Personal && a.owner.is_none() {
        bail!("a personal mailbox needs its holder's IdNat: --owner IDNAT");
    }
    let new = NewMailbox {
        address: a.address,
        kind: a.kind,
        owner: a.owner,
        display_name: a.name,
        created_at: a
            .created_at
            .unwrap_or_else(mssante::clock::SystemClock::now_utc),
        red_list: a.red_list,
        directory: DirectoryFields {
            description: a.description,
            responsible: a.responsible,
            service: a.service,
            telephone: a.telephone,
            dematerialisation: a.dematerialisation,
            contact_address: a.contact,
        },
    };
    match store.create_mailbox(new).await {
        Ok(m) => {
            println!("created {} ({})", m.address, m.kind);
            tell_existing_mailboxes(config, store, &m).await
        }
        Err(StoreError::MailboxExists(a)) => bail!("mailbox {a} already exists"),
        Err(e) => Err(e.into()),
    }
}

/// After `mailbox create --kind personal`: prints the other mailboxes in the holder's
/// name and files the notice that lists them for the holder.
async fn tell_existing_mailboxes(
    config: &Config,
    store: &Store,
    mailbox: &Mailbox,
) -> anyhow::Result<()> {
    let Some(idnat) = mailbox.owner.as_deref() else {
        return Ok(());
    };
    if mailbox.kind != MailboxKind::Personal {
        return Ok(());
    }
    let clock = mssante::clock::SystemClock;
    let others = mssante::lifecycle::notify_existing_mailboxes(config, store, &clock, mailbox)
        .await
        .context("telling the holder about their other mailboxes")?;
    if others.is_empty() {
        println!("no other mailbox in the name of {idnat}");
        return Ok(());
    }
    println!(
        "other mailboxes in the name of {idnat} (the holder is told in {}'s INBOX):",
        mailbox.address
    );
    for m in others {
        println!("  {} ({})", m.address, m.kind);
    }
    Ok(())
}
