//! The public documents each family of cases cites, and the rule each token flaw breaks.
//!
//! An operator hands the report to the ANS, who can only be shown published references.
//! Section numbers are given where the document has stable ones (the RFCs).

use crate::psc_standin::Flaw;

pub(crate) const SECTION_PSC: &str = "ANS, Pro Santé Connect documentation (access token \
     validation: RS256 signature against the published JWKS, iss, exp and nbf, typ Bearer, \
     acr eidas1); RFC 7519 §4.1 (registered claims); RFC 7515 §4.1.1 (alg); RFC 8725 §3.1 \
     (algorithm verification); RFC 7662 §2.2 (introspection response)";
pub(crate) const SECTION_SASL: &str = "ANS, API LPS (IMAP and SMTP authentication with a \
     PSC access token in SASL XOAUTH2 or OAUTHBEARER, or an IGC-Santé AUTH_CLI certificate \
     in SASL EXTERNAL); RFC 7628 (OAUTHBEARER); RFC 4422 Appendix A (EXTERNAL); RFC 3501 \
     §6.2.2 and RFC 4959 (IMAP AUTHENTICATE, SASL-IR); RFC 4954 §4 (SMTP AUTH)";
pub(crate) const SECTION_ACCESS: &str = "ANS, Référentiel #1 Opérateurs MSSanté (personal, \
     organisational and applicative mailboxes, who may open and send from each; \
     traceability of authentications); ANS, API LPS (AUTH_CLI certificates for \
     applicative mailboxes); RFC 4954 §5 (MAIL FROM after AUTH)";
pub(crate) const SECTION_TLS: &str = "ANS, Référentiel #1 Opérateurs MSSanté (TLS, IGC-Santé \
     certificates); RFC 8996 (TLS 1.0 and 1.1 deprecated); RFC 8314 (implicit TLS); \
     RFC 3501 §6.2.1 and RFC 3207 (STARTTLS)";
pub(crate) const SECTION_TRUST: &str = "ANS, Référentiel #1 Opérateurs MSSanté (trust space: \
     the ANS list listeblanchemssante.xml of operator domains and server certificates, \
     IGC-Santé client certificates between operators); RFC 3207 (SMTP STARTTLS)";

/// The title and the rule of the case that presents a token with `flaw`: the same on
/// every interface, which must all refuse it.
pub(crate) const fn flaw_rule(flaw: Flaw) -> (&'static str, &'static str) {
    match flaw {
        Flaw::Expired => (
            "Expired token",
            "exp checked with at most 60 s leeway: a token expired ten minutes ago is refused",
        ),
        Flaw::ForeignIssuer => (
            "Non-PSC token (foreign issuer)",
            "iss must equal the configured PSC issuer",
        ),
        Flaw::BadSignature => (
            "Altered signature",
            "the RS256 signature is verified against PSC's published keys",
        ),
        Flaw::AlgNone => (
            "alg: none",
            "alg must be in the allow-list (RS256); never none",
        ),
        Flaw::Hs256WithPublicKey => (
            "HS256 signed with the public key",
            "never HMAC: an HS256 token keyed with PSC's public key is refused",
        ),
        Flaw::UnknownKey => (
            "Key not published by PSC",
            "kid must be found in PSC's JWKS (one refetch on a miss)",
        ),
        Flaw::NotYetValid => (
            "Token not yet valid",
            "nbf checked with at most 60 s leeway",
        ),
        Flaw::WrongAcr => (
            "acr other than eidas1",
            "acr must be eidas1 (configurable list)",
        ),
        Flaw::RefreshType => ("Refresh token used as access token", "typ must be Bearer"),
    }
}
