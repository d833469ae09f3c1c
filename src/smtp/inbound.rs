//! The operator interface: mail from another operator of the trust space. The peer
//! proves who it is with its server certificate (mutual TLS, verified to the IGC-Santé
//! roots); the trust list says which domains that certificate may send for.

use super::session::{Refusal, Session};
use crate::tls::ClientCertificate;

/// MAIL FROM between operators: the sending domain must list the peer's certificate.
pub(super) async fn check_sender(s: &Session, address: &str) -> Result<String, Refusal> {
    let subject = match &s.certificate {
        ClientCertificate::Verified(id) => id.subject.clone(),
        ClientCertificate::Absent => {
            let reason = "no client certificate: the operator interface requires one";
            s.audit_refusal(None, Some(address.to_owned()), reason)
                .await;
            return Err(Refusal::new(550, [5, 7, 1], reason));
        }
        ClientCertificate::Refused(e) => {
            let reason = crate::tls::refusal_reason(e);
            s.audit_refusal(None, Some(address.to_owned()), &reason)
                .await;
            return Err(Refusal::new(550, [5, 7, 1], reason));
        }
    };
    if address.is_empty() {
        // A bounce names no domain: any operator of the trust space may send one.
        if s.shared.trust.lists_certificate(&subject) {
            return Ok(String::new());
        }
        let reason = format!("certificate {subject} is not in the MSSanté trust list");
        s.audit_refusal(Some(subject), None, &reason).await;
        return Err(Refusal::new(550, [5, 7, 1], reason));
    }
    let address = crate::store::normalise_address(address)
        .map_err(|_| Refusal::new(501, [5, 1, 7], "Bad sender address syntax"))?;
    let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    if s.shared.trust.allows(domain, &subject) {
        return Ok(address);
    }
    let reason =
        format!("certificate {subject} is not listed for {domain} in the MSSanté trust list");
    s.audit_refusal(Some(subject), Some(address.clone()), &reason)
        .await;
    Err(Refusal::new(550, [5, 7, 1], reason))
}
