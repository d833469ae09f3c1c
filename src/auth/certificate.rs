//! The identity carried by a verified IGC-Santé client certificate.

use serde::Serialize;

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
