//! Who may open which mailbox (DOMAIN.md "Access rules").
//!
//! A professional authenticated by PSC opens their personal mailbox or an organisational
//! one they were granted; a certificate opens only the applicative mailboxes bound to it.
//! The same decision answers "may this identity send as this address" for SMTP.

use std::fmt;

use crate::auth::certificate::CertificateIdentity;
use crate::store::{Grant, Mailbox, MailboxKind, Store, StoreError, normalise_address};

/// A professional whose PSC access token was validated. Only the token validator makes
/// one, so holding a `Professional` proves the check happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Professional {
    idnat: String,
}

impl Professional {
    pub(crate) fn new(idnat: String) -> Self {
        Professional { idnat }
    }

    /// The national identifier (`SubjectNameID`), an opaque string.
    pub fn idnat(&self) -> &str {
        &self.idnat
    }
}

/// An application that presented an IGC-Santé client certificate the TLS layer verified.
/// Only the authenticator makes one, from the connection's verified peer, so holding an
/// `Application` proves the handshake checked the chain, dates, EKU and revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    certificate: CertificateIdentity,
}

impl Application {
    pub(crate) fn new(certificate: CertificateIdentity) -> Self {
        Application { certificate }
    }

    pub fn certificate(&self) -> &CertificateIdentity {
        &self.certificate
    }
}

/// Who authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Professional(Professional),
    Application(Application),
}

impl Identity {
    /// What the audit trail records: the IdNat or the certificate subject.
    pub fn audit_name(&self) -> &str {
        match self {
            Identity::Professional(p) => p.idnat(),
            Identity::Application(a) => &a.certificate().subject,
        }
    }
}

/// Why an identity may not open a mailbox. `reason` is the stable audit text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessRefusal {
    NoSuchMailbox,
    NotOwner,
    NotGranted,
    ApplicativeNeedsCertificate,
    CertificateOnPersonal,
    CertificateNotBound,
    NoMailboxNamed,
    NoMailboxBound,
    SeveralMailboxesBound,
    NoPersonalMailbox,
    SeveralPersonalMailboxes,
}

impl AccessRefusal {
    pub fn reason(self) -> &'static str {
        match self {
            AccessRefusal::NoSuchMailbox => "no such mailbox",
            AccessRefusal::NotOwner => "mailbox not owned by this professional",
            AccessRefusal::NotGranted => "no access granted to this professional",
            AccessRefusal::ApplicativeNeedsCertificate => {
                "applicative mailbox needs a client certificate"
            }
            AccessRefusal::CertificateOnPersonal => {
                "a certificate cannot open a personal or organisational mailbox"
            }
            AccessRefusal::CertificateNotBound => "certificate not bound to this mailbox",
            AccessRefusal::NoMailboxNamed => "no mailbox named",
            AccessRefusal::NoMailboxBound => "no mailbox bound to this certificate",
            AccessRefusal::SeveralMailboxesBound => {
                "several mailboxes bound to this certificate; name one"
            }
            AccessRefusal::NoPersonalMailbox => "no personal mailbox for this professional",
            AccessRefusal::SeveralPersonalMailboxes => {
                "several personal mailboxes for this professional; name one"
            }
        }
    }
}

impl fmt::Display for AccessRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// The outcome of an access decision that could be made.
pub type Access = Result<Mailbox, AccessRefusal>;

fn certificate_matches(grant: &Grant, cert: &CertificateIdentity) -> bool {
    match grant {
        Grant::CertificateSubject { subject, issuer } => {
            *subject == cert.subject && *issuer == cert.issuer
        }
        Grant::CertificatePin { fingerprint } => {
            fingerprint.eq_ignore_ascii_case(&cert.fingerprint)
        }
        Grant::Idnat { .. } => false,
    }
}

/// May `identity` open `mailbox`? Grants are read only when the kind needs them.
pub async fn may_open(
    store: &Store,
    identity: &Identity,
    mailbox: &Mailbox,
) -> Result<Result<(), AccessRefusal>, StoreError> {
    Ok(match (identity, mailbox.kind) {
        (Identity::Professional(p), MailboxKind::Personal) => {
            if mailbox.owner.as_deref() == Some(p.idnat()) {
                Ok(())
            } else {
                Err(AccessRefusal::NotOwner)
            }
        }
        (Identity::Professional(p), MailboxKind::Organisational) => {
            let grants = store.grants(mailbox.id).await?;
            if grants
                .iter()
                .any(|g| matches!(g, Grant::Idnat { idnat } if idnat == p.idnat()))
            {
                Ok(())
            } else {
                Err(AccessRefusal::NotGranted)
            }
        }
        (Identity::Professional(_), MailboxKind::Applicative) => {
            Err(AccessRefusal::ApplicativeNeedsCertificate)
        }
        (Identity::Application(_), MailboxKind::Personal | MailboxKind::Organisational) => {
            Err(AccessRefusal::CertificateOnPersonal)
        }
        (Identity::Application(app), MailboxKind::Applicative) => {
            let grants = store.grants(mailbox.id).await?;
            if grants
                .iter()
                .any(|g| certificate_matches(g, app.certificate()))
            {
                Ok(())
            } else {
                Err(AccessRefusal::CertificateNotBound)
            }
        }
    })
}

/// Finds the mailbox named by the client and decides whether `identity` may open it.
/// `address: None` picks the only mailbox the identity can mean: the one bound to the
/// certificate, or the professional's personal mailbox.
pub async fn open(
    store: &Store,
    identity: &Identity,
    address: Option<&str>,
) -> Result<Access, StoreError> {
    let Some(address) = address else {
        return default_mailbox(store, identity).await;
    };
    let Ok(address) = normalise_address(address) else {
        return Ok(Err(AccessRefusal::NoSuchMailbox));
    };
    let Some(mailbox) = store.mailbox(&address).await? else {
        return Ok(Err(AccessRefusal::NoSuchMailbox));
    };
    Ok(may_open(store, identity, &mailbox).await?.map(|()| mailbox))
}

async fn default_mailbox(store: &Store, identity: &Identity) -> Result<Access, StoreError> {
    Ok(match identity {
        Identity::Application(app) => {
            let cert = app.certificate();
            let mut bound: Vec<Mailbox> = store
                .mailboxes_bound_to_certificate(&cert.subject, &cert.issuer, &cert.fingerprint)
                .await?
                .into_iter()
                .filter(|m| m.kind == MailboxKind::Applicative)
                .collect();
            match bound.len() {
                0 => Err(AccessRefusal::NoMailboxBound),
                1 => Ok(bound.remove(0)),
                _ => Err(AccessRefusal::SeveralMailboxesBound),
            }
        }
        Identity::Professional(p) => {
            let mut owned: Vec<Mailbox> = store
                .mailboxes_owned_by(p.idnat())
                .await?
                .into_iter()
                .filter(|m| m.kind == MailboxKind::Personal)
                .collect();
            match owned.len() {
                0 => Err(AccessRefusal::NoPersonalMailbox),
                1 => Ok(owned.remove(0)),
                _ => Err(AccessRefusal::SeveralPersonalMailboxes),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DirectoryFields, NewMailbox};

    fn cert(subject: &str, fingerprint: &str) -> CertificateIdentity {
        CertificateIdentity {
            subject: subject.into(),
            issuer: "CN=TEST AC IGC-SANTE,O=ASIP-SANTE,C=FR".into(),
            common_name: Some("LABO".into()),
            organisational_unit: Some("318751275100020".into()),
            serial: "01".into(),
            fingerprint: fingerprint.into(),
        }
    }

    async fn mailbox(store: &Store, address: &str, kind: MailboxKind, owner: Option<&str>) {
        store
            .create_mailbox(NewMailbox {
                address: address.into(),
                kind,
                owner: owner.map(Into::into),
                display_name: None,
                created_at: crate::clock::SystemClock::now_utc(),
                red_list: false,
                directory: DirectoryFields::default(),
            })
            .await
            .unwrap();
    }

    fn pro(idnat: &str) -> Identity {
        Identity::Professional(Professional::new(idnat.into()))
    }

    #[tokio::test]
    async fn rules() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), crate::clock::system())
            .await
            .unwrap();
        mailbox(
            &store,
            "house@h.mssante.fr",
            MailboxKind::Personal,
            Some("899700000001"),
        )
        .await;
        mailbox(
            &store,
            "secretariat@h.mssante.fr",
            MailboxKind::Organisational,
            None,
        )
        .await;
        mailbox(&store, "labo@h.mssante.fr", MailboxKind::Applicative, None).await;
        mailbox(&store, "labo2@h.mssante.fr", MailboxKind::Applicative, None).await;
        store
            .add_grant(
                "secretariat@h.mssante.fr",
                Grant::Idnat {
                    idnat: "899700000002".into(),
                },
            )
            .await
            .unwrap();
        let labo = cert("CN=LABO,OU=318751275100020,C=FR", "ab12");
        store
            .add_grant(
                "labo@h.mssante.fr",
                Grant::CertificateSubject {
                    subject: labo.subject.clone(),
                    issuer: labo.issuer.clone(),
                },
            )
            .await
            .unwrap();

        let open = |id: Identity, a: Option<&'static str>| {
            let store = store.clone();
            async move { open(&store, &id, a).await.unwrap().map(|m| m.address) }
        };
        // Personal: owner only.
        assert_eq!(
            open(pro("899700000001"), Some("house@H.mssante.fr"))
                .await
                .unwrap(),
            "house@h.mssante.fr"
        );
        assert_eq!(
            open(pro("899700000002"), Some("house@h.mssante.fr")).await,
            Err(AccessRefusal::NotOwner)
        );
        assert_eq!(
            open(pro("899700000001"), None).await.unwrap(),
            "house@h.mssante.fr"
        );
        assert_eq!(
            open(pro("899700000002"), None).await,
            Err(AccessRefusal::NoPersonalMailbox)
        );
        // Organisational: granted IdNat only.
        assert!(
            open(pro("899700000002"), Some("secretariat@h.mssante.fr"))
                .await
                .is_ok()
        );
        assert_eq!(
            open(pro("899700000001"), Some("secretariat@h.mssante.fr")).await,
            Err(AccessRefusal::NotGranted)
        );
        // Applicative: never with PSC, only the bound certificate.
        assert_eq!(
            open(pro("899700000001"), Some("labo@h.mssante.fr")).await,
            Err(AccessRefusal::ApplicativeNeedsCertificate)
        );
        let app = Identity::Application(Application::new(labo.clone()));
        assert!(open(app.clone(), Some("labo@h.mssante.fr")).await.is_ok());
        assert_eq!(
            open(app.clone(), Some("labo2@h.mssante.fr")).await,
            Err(AccessRefusal::CertificateNotBound)
        );
        assert_eq!(
            open(app.clone(), Some("house@h.mssante.fr")).await,
            Err(AccessRefusal::CertificateOnPersonal)
        );
        assert_eq!(
            open(app.clone(), Some("secretariat@h.mssante.fr")).await,
            Err(AccessRefusal::CertificateOnPersonal)
        );
        assert_eq!(open(app.clone(), None).await.unwrap(), "labo@h.mssante.fr");
        assert_eq!(
            open(app.clone(), Some("nobody@h.mssante.fr")).await,
            Err(AccessRefusal::NoSuchMailbox)
        );
        assert_eq!(
            open(app.clone(), Some("not an address")).await,
            Err(AccessRefusal::NoSuchMailbox)
        );

        // A pinned certificate also opens its mailbox; two bindings make EXTERNAL ambiguous.
        store
            .add_grant(
                "labo2@h.mssante.fr",
                Grant::CertificatePin {
                    fingerprint: "ab12".into(),
                },
            )
            .await
            .unwrap();
        assert!(open(app.clone(), Some("labo2@h.mssante.fr")).await.is_ok());
        assert_eq!(
            open(app.clone(), None).await,
            Err(AccessRefusal::SeveralMailboxesBound)
        );
        let stranger = Identity::Application(Application::new(cert("CN=OTHER,C=FR", "ff")));
        assert_eq!(
            open(stranger, None).await,
            Err(AccessRefusal::NoMailboxBound)
        );
    }
}
