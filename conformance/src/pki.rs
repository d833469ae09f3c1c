//! A test PKI shaped like IGC-Santé, so that mutual TLS, SASL EXTERNAL and operator-to-
//! operator SMTP can be exercised without real health-sector certificates.
//!
//! The shape matters more than the cryptography: the names follow the IGC-Santé test CAs
//! (a root and an "ORGANISATIONS" issuing CA), the client certificates carry the subject
//! layout of ORG AUTH_CLI certificates (`CN=<application>,OU=<structure id>,O=…,ST=…,C=FR`)
//! and the refusal cases (expired, revoked, server-only, foreign CA) each have their own
//! certificate. Nothing generated here is for production.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Duration, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};

/// Midnight UTC of a chrono time's day, in rcgen's date type (a macro so that the `time`
/// crate's type never has to be named here).
macro_rules! at {
    ($t:expr) => {{
        let t: DateTime<Utc> = $t;
        // invariant: chrono yields valid calendar dates: month 1..=12, day 1..=31.
        rcgen::date_time_ymd(t.year(), t.month() as u8, t.day() as u8)
    }};
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot generate {what}: {source}")]
    Generate { what: String, source: rcgen::Error },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
}

/// The second OU of the CA names, under its OID: rcgen keeps one value per attribute type,
/// and IGC-Santé CA names carry two OUs.
fn second_ou() -> DnType {
    DnType::CustomDnType(vec![2, 5, 4, 11])
}

/// `CN=TEST AC RACINE IGC-SANTE ELEMENTAIRE,OU=IGC-SANTE TEST,OU=0002 187512751,O=ASIP-SANTE,C=FR`
/// (attributes listed here in encoding order, the reverse of RFC 4514's).
fn root_subject() -> Vec<(DnType, &'static str)> {
    vec![
        (DnType::CountryName, "FR"),
        (DnType::OrganizationName, "ASIP-SANTE"),
        (DnType::OrganizationalUnitName, "0002 187512751"),
        (second_ou(), "IGC-SANTE TEST"),
        (DnType::CommonName, "TEST AC RACINE IGC-SANTE ELEMENTAIRE"),
    ]
}

/// The issuing CA: signs server and AUTH_CLI certificates, and the CRL.
fn issuing_subject() -> Vec<(DnType, &'static str)> {
    vec![
        (DnType::CountryName, "FR"),
        (DnType::OrganizationName, "ASIP-SANTE"),
        (DnType::OrganizationalUnitName, "0002 187512751"),
        (second_ou(), "IGC-SANTE TEST"),
        (
            DnType::CommonName,
            "TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS",
        ),
    ]
}

fn foreign_subject() -> Vec<(DnType, &'static str)> {
    vec![
        (DnType::CountryName, "FR"),
        (DnType::OrganizationName, "AUTRE AUTORITE TEST"),
        (DnType::CommonName, "TEST AC ETRANGERE"),
    ]
}

/// What an end-entity certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Usage {
    /// ORG AUTH_CLI: an application authenticating to the LPS interface.
    Client,
    /// SERV SSL_SERV that also authenticates as a client (operator-to-operator SMTP).
    ServerAndClient,
    /// Server only: must be refused as a client certificate.
    ServerOnly,
}

/// Which validity window a certificate gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    Long,
    Expired,
}

/// One end-entity certificate of the set.
struct Leaf {
    /// File stem: `<name>.crt` / `<name>.key`.
    name: &'static str,
    common_name: &'static str,
    structure_id: &'static str,
    organisation: &'static str,
    usage: Usage,
    window: Window,
    /// DNS names and IPs for server certificates.
    hosts: &'static [&'static str],
    foreign: bool,
}

const APP_CN: &str = "SIL-LABO-TEST";
const APP_OU: &str = "1750012345";
const APP_O: &str = "LABORATOIRE DE BIOLOGIE TEST";

const LEAVES: &[Leaf] = &[
    Leaf {
        name: "server",
        common_name: "localhost",
        structure_id: "318751275100020",
        organisation: "OPERATEUR MSSANTE TEST",
        usage: Usage::ServerAndClient,
        window: Window::Long,
        hosts: &["localhost", "127.0.0.1", "::1"],
        foreign: false,
    },
    Leaf {
        name: "operator2",
        common_name: "operator2.localhost",
        structure_id: "318751275100038",
        organisation: "OPERATEUR MSSANTE TEST 2",
        usage: Usage::ServerAndClient,
        window: Window::Long,
        hosts: &["operator2.localhost", "localhost", "127.0.0.1", "::1"],
        foreign: false,
    },
    Leaf {
        name: "app",
        common_name: APP_CN,
        structure_id: APP_OU,
        organisation: APP_O,
        usage: Usage::Client,
        window: Window::Long,
        hosts: &[],
        foreign: false,
    },
    Leaf {
        name: "app-renewed",
        common_name: APP_CN,
        structure_id: APP_OU,
        organisation: APP_O,
        usage: Usage::Client,
        window: Window::Long,
        hosts: &[],
        foreign: false,
    },
    Leaf {
        name: "app2",
        common_name: "DPI-HOPITAL-TEST",
        structure_id: "1750098765",
        organisation: "CENTRE HOSPITALIER TEST",
        usage: Usage::Client,
        window: Window::Long,
        hosts: &[],
        foreign: false,
    },
    Leaf {
        name: "expired",
        common_name: "SIL-EXPIRE-TEST",
        structure_id: "1750012345",
        organisation: APP_O,
        usage: Usage::Client,
        window: Window::Expired,
        hosts: &[],
        foreign: false,
    },
    Leaf {
        name: "revoked",
        common_name: "SIL-REVOQUE-TEST",
        structure_id: "1750012345",
        organisation: APP_O,
        usage: Usage::Client,
        window: Window::Long,
        hosts: &[],
        foreign: false,
    },
    Leaf {
        name: "server-only",
        common_name: "SERVEUR-SEUL-TEST",
        structure_id: "318751275100020",
        organisation: "OPERATEUR MSSANTE TEST",
        usage: Usage::ServerOnly,
        window: Window::Long,
        hosts: &["server-only.localhost"],
        foreign: false,
    },
    Leaf {
        name: "foreign",
        common_name: "SIL-ETRANGER-TEST",
        structure_id: "1750054321",
        organisation: "LABORATOIRE ETRANGER TEST",
        usage: Usage::Client,
        window: Window::Long,
        hosts: &[],
        foreign: true,
    },
];

/// Names of the end-entity certificates `generate` writes (`<name>.crt`, `<name>.key`).
pub fn leaf_names() -> impl Iterator<Item = &'static str> {
    LEAVES.iter().map(|l| l.name)
}

/// Generates the whole set into `dir`, valid from yesterday for ten years.
pub fn generate(dir: &Path) -> Result<(), PkiError> {
    generate_at(dir, Utc::now())
}

/// Same as `generate`, with validity windows computed from `now` (the expired certificate
/// ended a year before `now`).
pub fn generate_at(dir: &Path, now: DateTime<Utc>) -> Result<(), PkiError> {
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let long = long_window(now);

    let root_key = new_key("the root CA key")?;
    let mut root_params = ca_params(&root_subject(), long);
    root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let root = CertifiedIssuer::self_signed(root_params, root_key)
        .map_err(|source| generated("the root CA", source))?;

    let issuing_key = new_key("the issuing CA key")?;
    let mut issuing_params = ca_params(&issuing_subject(), long);
    issuing_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let issuing_key_pem = issuing_key.serialize_pem();
    let issuing = CertifiedIssuer::signed_by(issuing_params, issuing_key, &root)
        .map_err(|source| generated("the issuing CA", source))?;

    let foreign_key = new_key("the foreign CA key")?;
    let mut foreign_params = ca_params(&foreign_subject(), long);
    foreign_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let foreign = CertifiedIssuer::self_signed(foreign_params, foreign_key)
        .map_err(|source| generated("the foreign CA", source))?;

    write(dir, "root-ca.crt", &root.pem())?;
    write(dir, "organisations-ca.crt", &issuing.pem())?;
    write_key(dir, "organisations-ca.key", &issuing_key_pem)?;
    write(dir, "ca.crt", &format!("{}{}", root.pem(), issuing.pem()))?;
    write(dir, "foreign-ca.crt", &foreign.pem())?;

    for leaf in LEAVES {
        if leaf.foreign {
            issue_leaf(dir, leaf, now, &foreign, &foreign.pem())?;
        } else {
            issue_leaf(dir, leaf, now, &issuing, &issuing.pem())?;
        }
    }

    write_crl_at(dir, &["revoked"], &dir.join("organisations.crl"), now)
}

/// Valid from yesterday for ten years.
fn long_window(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (now - Duration::days(1), now + Duration::days(3650))
}

/// A certificate this close to its end is issued again: a sandbox started today should
/// not break tomorrow.
const RENEW_BEFORE: Duration = Duration::days(30);

/// What `ensure` did with a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// There was no usable test CA (missing, unreadable, expired or about to): a whole new
    /// PKI was written, and clients must trust the new `ca.crt`.
    NewCa,
    /// The CAs were kept; these end-entity certificates were missing, expired or about to
    /// expire and were issued again by the same CA (new keys). Clients that trust
    /// `ca.crt` keep working.
    Kept { reissued: Vec<&'static str> },
}

/// Keeps the test PKI already in `dir` and fills in only what is missing or expired, so a
/// kept sandbox folder keeps the CA its clients trust. The intentionally expired
/// certificate is only written when missing. The foreign CA's key is not kept (nothing
/// trusts that CA), so its certificate is issued again with its CA when either is gone.
/// The CRL is always signed again, as it lists the revoked certificate's current serial.
pub fn ensure(dir: &Path) -> Result<Ensured, PkiError> {
    ensure_at(dir, Utc::now())
}

pub fn ensure_at(dir: &Path, now: DateTime<Utc>) -> Result<Ensured, PkiError> {
    let Some(issuing) = kept_issuing_ca(dir, now) else {
        generate_at(dir, now)?;
        return Ok(Ensured::NewCa);
    };
    let issuing_pem = read(&dir.join("organisations-ca.crt"))?;
    let mut reissued = Vec::new();
    let foreign_leaves = LEAVES.iter().filter(|l| l.foreign);
    if !usable(&dir.join("foreign-ca.crt"), now, true)
        || foreign_leaves.clone().any(|l| !leaf_usable(dir, l, now))
    {
        let foreign_key = new_key("the foreign CA key")?;
        let mut foreign_params = ca_params(&foreign_subject(), long_window(now));
        foreign_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let foreign = CertifiedIssuer::self_signed(foreign_params, foreign_key)
            .map_err(|source| generated("the foreign CA", source))?;
        write(dir, "foreign-ca.crt", &foreign.pem())?;
        for leaf in foreign_leaves {
            issue_leaf(dir, leaf, now, &foreign, &foreign.pem())?;
            reissued.push(leaf.name);
        }
    }
    for leaf in LEAVES.iter().filter(|l| !l.foreign) {
        if !leaf_usable(dir, leaf, now) {
            issue_leaf(dir, leaf, now, &issuing, &issuing_pem)?;
            reissued.push(leaf.name);
        }
    }
    write_crl_at(dir, &["revoked"], &dir.join("organisations.crl"), now)?;
    Ok(Ensured::Kept { reissued })
}

/// The issuing CA of `dir`, rebuilt from its kept key, when the root and issuing CA
/// certificates are there and valid for a while yet.
fn kept_issuing_ca(dir: &Path, now: DateTime<Utc>) -> Option<Issuer<'static, KeyPair>> {
    let cas = ["root-ca.crt", "organisations-ca.crt", "ca.crt"];
    if !cas.iter().all(|name| usable(&dir.join(name), now, true)) {
        return None;
    }
    let key = KeyPair::from_pem(&read(&dir.join("organisations-ca.key")).ok()?).ok()?;
    // Rebuilt from the same parameters rather than parsed, as for the CRL.
    Some(Issuer::new(ca_params(&issuing_subject(), (now, now)), key))
}

/// Whether a leaf's certificate and key are there and, unless it is meant to be expired,
/// valid for a while yet.
fn leaf_usable(dir: &Path, leaf: &Leaf, now: DateTime<Utc>) -> bool {
    dir.join(format!("{}.key", leaf.name)).is_file()
        && usable(
            &dir.join(format!("{}.crt", leaf.name)),
            now,
            matches!(leaf.window, Window::Long),
        )
}

/// Whether `path` holds a certificate (the first of the file) that, when `check_dates`,
/// is still valid `RENEW_BEFORE` from now.
fn usable(path: &Path, now: DateTime<Utc>, check_dates: bool) -> bool {
    let Ok(pem) = std::fs::read_to_string(path) else {
        return false;
    };
    match first_not_after(&pem) {
        Some(end) => !check_dates || end > now + RENEW_BEFORE,
        None => false,
    }
}

/// Issues `leaf` with a new key, signed by `issuer`, and writes it with the issuer's
/// certificate after it (the chain a server or client presents).
fn issue_leaf(
    dir: &Path,
    leaf: &Leaf,
    now: DateTime<Utc>,
    issuer: &Issuer<'_, KeyPair>,
    chain_tail: &str,
) -> Result<(), PkiError> {
    let window = match leaf.window {
        Window::Long => long_window(now),
        Window::Expired => (now - Duration::days(730), now - Duration::days(365)),
    };
    let key = new_key(leaf.name)?;
    let cert = leaf_params(leaf, window)?
        .signed_by(&key, issuer)
        .map_err(|source| generated(leaf.name, source))?;
    write(
        dir,
        &format!("{}.crt", leaf.name),
        &format!("{}{chain_tail}", cert.pem()),
    )?;
    write_key(dir, &format!("{}.key", leaf.name), &key.serialize_pem())
}

/// Writes a CRL signed by the issuing CA in `dir` listing the named certificates of `dir`
/// (e.g. `["revoked"]`). Tests use it to change what is revoked; operators to try a CRL.
pub fn write_crl(dir: &Path, revoked: &[&str], out: &Path) -> Result<(), PkiError> {
    write_crl_at(dir, revoked, out, Utc::now())
}

fn write_crl_at(
    dir: &Path,
    revoked: &[&str],
    out: &Path,
    now: DateTime<Utc>,
) -> Result<(), PkiError> {
    let key_pem = read(&dir.join("organisations-ca.key"))?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::Read {
        path: dir.join("organisations-ca.key"),
        reason: e.to_string(),
    })?;
    // Rebuilt from the same parameters rather than parsed from organisations-ca.crt:
    // rcgen's parser would merge the two OUs and the CRL's issuer would no longer match.
    let issuer = Issuer::new(ca_params(&issuing_subject(), (now, now)), key);
    let mut revoked_certs = Vec::new();
    for name in revoked {
        let path = dir.join(format!("{name}.crt"));
        let pem = read(&path)?;
        let serial = first_serial(&pem).ok_or_else(|| PkiError::Read {
            path: path.clone(),
            reason: "no certificate found".into(),
        })?;
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial),
            revocation_time: at!(now - Duration::days(1)),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update: at!(now - Duration::days(1)),
        next_update: at!(now + Duration::days(3650)),
        crl_number: SerialNumber::from_slice(&now.timestamp().to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params
        .signed_by(&issuer)
        .map_err(|source| generated("the CRL", source))?;
    let pem = crl.pem().map_err(|source| generated("the CRL", source))?;
    let parent = out.parent().unwrap_or(Path::new("."));
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    write(parent, &name, &pem)
}

fn first_serial(pem: &str) -> Option<Vec<u8>> {
    with_first_certificate(pem, |cert| cert.raw_serial().to_vec())
}

fn first_not_after(pem: &str) -> Option<DateTime<Utc>> {
    with_first_certificate(pem, |cert| {
        DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
    })
    .flatten()
}

fn with_first_certificate<T>(
    pem: &str,
    f: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> T,
) -> Option<T> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some(f(&cert))
}

fn ca_params(
    subject: &[(DnType, &str)],
    window: (DateTime<Utc>, DateTime<Utc>),
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    for (ty, value) in subject {
        params.distinguished_name.push(ty.clone(), *value);
    }
    params.not_before = at!(window.0);
    params.not_after = at!(window.1);
    params.serial_number = Some(random_serial());
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = true;
    params
}

fn leaf_params(
    leaf: &Leaf,
    window: (DateTime<Utc>, DateTime<Utc>),
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let dn = &mut params.distinguished_name;
    dn.push(DnType::CountryName, "FR");
    dn.push(DnType::StateOrProvinceName, "Paris (75)");
    dn.push(DnType::OrganizationName, leaf.organisation);
    dn.push(DnType::OrganizationalUnitName, leaf.structure_id);
    dn.push(DnType::CommonName, leaf.common_name);
    params.not_before = at!(window.0);
    params.not_after = at!(window.1);
    params.serial_number = Some(random_serial());
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = match leaf.usage {
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Usage::ServerAndClient => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Usage::ServerOnly => vec![ExtendedKeyUsagePurpose::ServerAuth],
    };
    for host in leaf.hosts {
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                (*host)
                    .try_into()
                    .map_err(|source| generated(leaf.name, source))?,
            ),
        };
        params.subject_alt_names.push(san);
    }
    Ok(params)
}

/// 16 random bytes with the top bit clear: a positive DER integer of fixed length.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn new_key(what: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate().map_err(|source| generated(what, source))
}

fn generated(what: &str, source: rcgen::Error) -> PkiError {
    PkiError::Generate {
        what: what.to_owned(),
        source,
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|e| PkiError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn write(dir: &Path, name: &str, contents: &str) -> Result<(), PkiError> {
    let path = dir.join(name);
    std::fs::write(&path, contents).map_err(|source| PkiError::Write { path, source })
}

/// Private keys readable by their owner only, as a server expects of a real key.
fn write_key(dir: &Path, name: &str, contents: &str) -> Result<(), PkiError> {
    write(dir, name, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|source| PkiError::Write { path, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_after(path: &Path) -> DateTime<Utc> {
        first_not_after(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// An expired server certificate is issued again by the kept CA: the CA the clients
    /// trust does not change, and the new certificate is valid from now on.
    #[test]
    fn an_expired_server_certificate_is_issued_again_by_the_kept_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let now = Utc::now();
        generate_at(dir, now).unwrap();
        let ca = std::fs::read(dir.join("ca.crt")).unwrap();
        let expired = std::fs::read(dir.join("expired.crt")).unwrap();
        std::fs::copy(dir.join("expired.crt"), dir.join("server.crt")).unwrap();

        assert_eq!(
            ensure_at(dir, now).unwrap(),
            Ensured::Kept {
                reissued: vec!["server"]
            }
        );
        assert_eq!(std::fs::read(dir.join("ca.crt")).unwrap(), ca);
        assert_eq!(std::fs::read(dir.join("expired.crt")).unwrap(), expired);
        assert!(not_after(&dir.join("server.crt")) > now + Duration::days(3000));
        let server = std::fs::read_to_string(dir.join("server.crt")).unwrap();
        let issuing = std::fs::read_to_string(dir.join("organisations-ca.crt")).unwrap();
        let issuer = with_first_certificate(&server, |c| c.issuer().as_raw().to_vec()).unwrap();
        let subject = with_first_certificate(&issuing, |c| c.subject().as_raw().to_vec()).unwrap();
        assert_eq!(issuer, subject);

        // Nothing to do the second time; a CA about to expire means a new PKI.
        assert_eq!(
            ensure_at(dir, now).unwrap(),
            Ensured::Kept { reissued: vec![] }
        );
        assert_eq!(
            ensure_at(dir, now + Duration::days(3640)).unwrap(),
            Ensured::NewCa
        );
        assert_ne!(std::fs::read(dir.join("ca.crt")).unwrap(), ca);
    }
}
