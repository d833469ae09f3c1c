//! The IMAP cases, in report order: one table per port, one function per case.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::{
    AuthExchange, OnChallenge, authenticate, authenticate_once, capability, connect, expired_token,
    status,
};
use crate::case::{Case, CaseCtx, CaseInfo, Outcome, case_fn, verdict};
use crate::psc_standin::Flaw;
use crate::python_tls;
use crate::rules::{SECTION_ACCESS, SECTION_PSC, SECTION_SASL, SECTION_TLS};
use crate::sasl::{challenge_status, external_authz, oauthbearer, xoauth2};

/// Reported alone, skipped, in place of every case of [`TLS`] when there is no IMAP
/// address.
pub(super) const ALL: CaseInfo = CaseInfo::new(
    "imap",
    "IMAP cases",
    SECTION_SASL,
    "IMAP interface of the LPS API",
);

const GOOD_TOKEN: &str = "A valid PSC token for the mailbox holder opens the mailbox (user = mailbox address, identity = SubjectNameID)";
const OLD_TLS: &str = "TLS 1.2 minimum: 1.0 and 1.1 handshakes fail";

/// The implicit TLS port (993).
pub(super) const TLS: &[Case] = &[
    Case::new(
        "imap-capabilities-tls",
        "Capabilities on implicit TLS",
        SECTION_SASL,
        "Before authentication on TLS: IMAP4rev1, SASL-IR, AUTH=XOAUTH2, AUTH=OAUTHBEARER and LOGINDISABLED; no password mechanism (PLAIN, LOGIN)",
        case_fn!(capabilities_tls),
    ),
    Case::new(
        "imap-login-refused",
        "LOGIN refused on TLS",
        SECTION_SASL,
        "LOGINDISABLED: a user name and password never open a mailbox",
        case_fn!(login_refused),
    ),
    // Good tokens, every way a client may present them.
    Case::new(
        "imap-xoauth2-sasl-ir",
        "XOAUTH2, initial response inline (SASL-IR)",
        SECTION_SASL,
        GOOD_TOKEN,
        case_fn!(good_token, "XOAUTH2", true),
    ),
    Case::new(
        "imap-xoauth2-continuation",
        "XOAUTH2, response after the continuation",
        SECTION_SASL,
        GOOD_TOKEN,
        case_fn!(good_token, "XOAUTH2", false),
    ),
    Case::new(
        "imap-oauthbearer",
        "OAUTHBEARER (RFC 7628)",
        SECTION_SASL,
        GOOD_TOKEN,
        case_fn!(good_token, "OAUTHBEARER", true),
    ),
    // Bad tokens: each must be refused.
    Case::flaw(
        "imap-xoauth2-expired",
        Flaw::Expired,
        case_fn!(refused_token, Flaw::Expired),
    ),
    Case::flaw(
        "imap-xoauth2-foreign-issuer",
        Flaw::ForeignIssuer,
        case_fn!(refused_token, Flaw::ForeignIssuer),
    ),
    Case::flaw(
        "imap-xoauth2-bad-signature",
        Flaw::BadSignature,
        case_fn!(refused_token, Flaw::BadSignature),
    ),
    Case::flaw(
        "imap-xoauth2-alg-none",
        Flaw::AlgNone,
        case_fn!(refused_token, Flaw::AlgNone),
    ),
    Case::flaw(
        "imap-xoauth2-hs256-confusion",
        Flaw::Hs256WithPublicKey,
        case_fn!(refused_token, Flaw::Hs256WithPublicKey),
    ),
    Case::flaw(
        "imap-xoauth2-unknown-kid",
        Flaw::UnknownKey,
        case_fn!(refused_token, Flaw::UnknownKey),
    ),
    Case::flaw(
        "imap-xoauth2-not-yet-valid",
        Flaw::NotYetValid,
        case_fn!(refused_token, Flaw::NotYetValid),
    ),
    Case::flaw(
        "imap-xoauth2-wrong-acr",
        Flaw::WrongAcr,
        case_fn!(refused_token, Flaw::WrongAcr),
    ),
    Case::flaw(
        "imap-xoauth2-refresh-token",
        Flaw::RefreshType,
        case_fn!(refused_token, Flaw::RefreshType),
    ),
    Case::new(
        "imap-wrong-idnat",
        "Valid token of another professional",
        SECTION_ACCESS,
        "A PSC identity opens only a personal mailbox it owns or an organisational mailbox it was granted; never another professional's",
        case_fn!(wrong_idnat),
    ),
    Case::new(
        "imap-xoauth2-error-challenge",
        "XOAUTH2 error challenge format",
        SECTION_SASL,
        "On failure: + base64({\"status\":\"401\",\"schemes\":\"bearer\",…}), the client answers with an empty line, then tagged NO [AUTHENTICATIONFAILED]",
        case_fn!(xoauth2_error_challenge),
    ),
    Case::new(
        "imap-oauthbearer-error-challenge",
        "OAUTHBEARER error challenge format",
        SECTION_SASL,
        "On failure: + base64({\"status\":\"invalid_token\",…}), the client answers 0x01, then tagged NO [AUTHENTICATIONFAILED]",
        case_fn!(oauthbearer_error_challenge),
    ),
    Case::new(
        "imap-challenge-unanswered",
        "Error challenge left unanswered (Thunderbird)",
        SECTION_SASL,
        "A client that never answers the error challenge gets the tagged failure after a timeout of a few seconds",
        case_fn!(challenge_unanswered),
    ),
    Case::new(
        "imap-challenge-new-command",
        "New command instead of a challenge reply",
        SECTION_SASL,
        "Any reply, including a new command, ends the exchange with the failure; the session stays usable",
        case_fn!(challenge_new_command),
    ),
    Case::new(
        "imap-psc-unavailable",
        "PSC unavailable",
        SECTION_PSC,
        "PSC unreachable or answering 5xx: a temporary failure (NO [UNAVAILABLE]), never a definitive refusal; a server validating locally with cached keys may accept a good token",
        case_fn!(psc_unavailable),
    ),
    Case::new(
        "imap-external-without-certificate",
        "EXTERNAL without a client certificate",
        SECTION_SASL,
        "EXTERNAL takes its identity from the TLS client certificate: none presented, nothing opens",
        case_fn!(external_without_certificate),
    ),
    Case::new(
        "imap-external-certificate",
        "AUTH_CLI certificate (EXTERNAL)",
        SECTION_ACCESS,
        "A trusted IGC-Santé AUTH_CLI certificate opens the applicative mailbox bound to it; AUTH=EXTERNAL is announced once it was presented",
        case_fn!(external_certificate),
    )
    .needs(|s| s.certificate().map(drop)),
    Case::new(
        "imap-external-bad-certificate",
        "Refused AUTH_CLI certificate",
        SECTION_ACCESS,
        "An expired, revoked, foreign or server-only certificate opens nothing (refused at the handshake or by EXTERNAL)",
        case_fn!(external_bad_certificate),
    )
    .needs(|s| s.bad_certificate().map(drop)),
    Case::new(
        "imap-tls10-refused",
        "TLS 1.0 refused",
        SECTION_TLS,
        OLD_TLS,
        case_fn!(python_tls::refused, "1.0"),
    ),
    Case::new(
        "imap-tls11-refused",
        "TLS 1.1 refused",
        SECTION_TLS,
        OLD_TLS,
        case_fn!(python_tls::refused, "1.1"),
    ),
];

/// The STARTTLS port (143).
pub(super) const STARTTLS: &[Case] = &[
    Case::new(
        "imap-starttls-capabilities",
        "Capabilities before and after STARTTLS",
        SECTION_SASL,
        "On port 143 before STARTTLS: only STARTTLS and LOGINDISABLED, no AUTH=; after it: SASL-IR, AUTH=XOAUTH2, AUTH=OAUTHBEARER",
        case_fn!(starttls_capabilities),
    ),
    Case::new(
        "imap-starttls-authenticate-before-tls",
        "AUTHENTICATE before STARTTLS (downgrade)",
        SECTION_SASL,
        "No authentication before TLS: a valid token sent in clear text is refused",
        case_fn!(authenticate_before_tls),
    ),
    Case::new(
        "imap-starttls-login-before-tls",
        "LOGIN before STARTTLS (downgrade)",
        SECTION_SASL,
        "LOGINDISABLED: LOGIN in clear text is refused",
        case_fn!(login_before_tls),
    ),
];

async fn capabilities_tls(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let mut w = connect(ctx, ctx.endpoint()?, Some(&ctx.suite.tls)).await?;
    let caps = capability(&mut w, "C1").await?;
    let missing: Vec<&str> = [
        "IMAP4REV1",
        "SASL-IR",
        "AUTH=XOAUTH2",
        "AUTH=OAUTHBEARER",
        "LOGINDISABLED",
    ]
    .into_iter()
    .filter(|c| !caps.iter().any(|x| x == c))
    .collect();
    let forbidden: Vec<&String> = caps
        .iter()
        .filter(|c| ["AUTH=PLAIN", "AUTH=LOGIN", "AUTH=CRAM-MD5"].contains(&c.as_str()))
        .collect();
    let _ = w.send("C2 LOGOUT").await;
    Ok(verdict(
        missing.is_empty() && forbidden.is_empty(),
        if missing.is_empty() && forbidden.is_empty() {
            "all required capabilities announced, no password mechanism".to_owned()
        } else {
            format!("missing: {missing:?}; password mechanisms offered: {forbidden:?}")
        },
    ))
}

async fn login_refused(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let mut w = connect(ctx, ctx.endpoint()?, Some(&ctx.suite.tls)).await?;
    w.send(&format!("L1 LOGIN {} \"password\"", ctx.target.mailbox))
        .await?;
    let (_, tagged) = w.imap_tagged("L1").await?;
    let _ = w.send("L2 LOGOUT").await;
    Ok(verdict(
        status(&tagged) != "OK",
        format!("LOGIN answered: {tagged}"),
    ))
}

/// A good token with `mechanism`, inline or after the continuation, then SELECT INBOX.
async fn good_token(
    ctx: &CaseCtx<'_>,
    mechanism: &'static str,
    inline: bool,
) -> anyhow::Result<Outcome> {
    let t = ctx.target;
    let e = ctx.endpoint()?;
    let mut w = connect(ctx, e, Some(&ctx.suite.tls)).await?;
    let token = ctx.token(&t.idnat, None);
    let payload = if mechanism == "XOAUTH2" {
        xoauth2(&t.mailbox, &token, "valid token, redacted")
    } else {
        oauthbearer(&t.mailbox, e, &token, "valid token, redacted")
    };
    let a = authenticate(&mut w, "A1", mechanism, payload, inline, OnChallenge::Empty).await?;
    if !a.ok() {
        return Ok(Outcome::Fail(format!(
            "authentication refused: {}",
            a.tagged
        )));
    }
    w.send("A2 SELECT INBOX").await?;
    let (_, selected) = w.imap_tagged("A2").await?;
    let _ = w.send("A3 LOGOUT").await;
    Ok(verdict(
        status(&selected) == "OK",
        format!("authenticated; SELECT INBOX: {selected}"),
    ))
}

/// A token with `flaw` for the mailbox holder: refused.
async fn refused_token(ctx: &CaseCtx<'_>, flaw: Flaw) -> anyhow::Result<Outcome> {
    let token = ctx.token(&ctx.target.idnat, Some(flaw));
    let label = format!("{flaw:?} token, redacted");
    let a = authenticate_once(
        ctx,
        ctx.endpoint()?,
        "XOAUTH2",
        xoauth2(&ctx.target.mailbox, &token, &label),
        OnChallenge::Empty,
    )
    .await?;
    Ok(verdict(
        status(&a.tagged) == "NO",
        format!("answer: {}", a.tagged),
    ))
}

async fn wrong_idnat(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let t = ctx.target;
    let token = ctx.token(&t.other_idnat, None);
    let label = format!("valid token of {}, redacted", t.other_idnat);
    let a = authenticate_once(
        ctx,
        ctx.endpoint()?,
        "XOAUTH2",
        xoauth2(&t.mailbox, &token, &label),
        OnChallenge::Empty,
    )
    .await?;
    Ok(verdict(
        status(&a.tagged) == "NO",
        format!("answer: {}", a.tagged),
    ))
}

async fn xoauth2_error_challenge(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let a = expired_token(ctx, "XOAUTH2", OnChallenge::Empty).await?;
    Ok(challenge_verdict(&a, "401"))
}

async fn oauthbearer_error_challenge(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let a = expired_token(ctx, "OAUTHBEARER", OnChallenge::CtrlA).await?;
    Ok(challenge_verdict(&a, "invalid_token"))
}

/// Checks the challenge JSON status and the final tagged NO [AUTHENTICATIONFAILED].
fn challenge_verdict(a: &AuthExchange, expected_status: &str) -> Outcome {
    let tagged_ok = status(&a.tagged) == "NO" && a.tagged.contains("[AUTHENTICATIONFAILED]");
    let challenge_status = match challenge_status(&a.challenge) {
        Ok(s) => s,
        Err(why) => return Outcome::Fail(format!("{why}; answer: {}", a.tagged)),
    };
    verdict(
        tagged_ok && challenge_status == expected_status,
        format!(
            "challenge status {challenge_status:?} (expected {expected_status:?}); final answer: {}",
            a.tagged
        ),
    )
}

async fn challenge_unanswered(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let wait = ctx.target.unanswered_challenge_wait;
    let a = expired_token(ctx, "XOAUTH2", OnChallenge::Silence(wait)).await?;
    Ok(verdict(
        status(&a.tagged) == "NO",
        format!("answer without a reply: {}", a.tagged),
    ))
}

async fn challenge_new_command(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let a = expired_token(ctx, "XOAUTH2", OnChallenge::NewCommand).await?;
    let after = a
        .after
        .clone()
        .unwrap_or_else(|| "no answer (taken as the SASL reply?)".to_owned());
    // A server that sent no challenge has nothing to replay: the refusal suffices.
    let ok = status(&a.tagged) == "NO" && (a.challenge.is_none() || a.after.is_some());
    Ok(verdict(
        ok,
        format!(
            "AUTHENTICATE: {}; command sent in place of the reply: {after}",
            a.tagged
        ),
    ))
}

async fn psc_unavailable(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let t = ctx.target;
    let psc = ctx.suite.psc;
    let mut w = connect(ctx, ctx.endpoint()?, Some(&ctx.suite.tls)).await?;
    let token = ctx.token(&t.idnat, None);
    ctx.rec
        .note("the PSC stand-in now answers 503 to everything");
    psc.set_down(true);
    let a = authenticate(
        &mut w,
        "A1",
        "XOAUTH2",
        xoauth2(&t.mailbox, &token, "valid token, redacted"),
        true,
        OnChallenge::Empty,
    )
    .await;
    psc.set_down(false);
    ctx.rec.note("the PSC stand-in answers again");
    let a = a?;
    let _ = w.send("A2 LOGOUT").await;
    Ok(verdict(
        a.ok() || (status(&a.tagged) == "NO" && a.tagged.contains("[UNAVAILABLE]")),
        format!("answer while PSC was down: {}", a.tagged),
    ))
}

async fn external_without_certificate(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let t = ctx.target;
    let mut w = connect(ctx, ctx.endpoint()?, Some(&ctx.suite.tls)).await?;
    let authz = t
        .certificate
        .as_ref()
        .and_then(|c| c.mailbox.clone())
        .unwrap_or_else(|| t.mailbox.clone());
    w.send(&format!("A1 AUTHENTICATE EXTERNAL {}", B64.encode(&authz)))
        .await?;
    let (_, tagged) = w.imap_tagged("A1").await?;
    let _ = w.send("A2 LOGOUT").await;
    Ok(verdict(
        status(&tagged) != "OK",
        format!("answer: {tagged}"),
    ))
}

async fn external_certificate(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let (tls, cert) = ctx.suite.certificate().map_err(anyhow::Error::msg)?;
    let mut w = connect(ctx, ctx.endpoint()?, Some(tls)).await?;
    let caps = capability(&mut w, "C1").await?;
    let announced = caps.iter().any(|c| c == "AUTH=EXTERNAL");
    let authz = external_authz(cert.mailbox.as_deref());
    w.send(&format!("A1 AUTHENTICATE EXTERNAL {authz}")).await?;
    let (_, tagged) = w.imap_tagged("A1").await?;
    if status(&tagged) != "OK" {
        return Ok(Outcome::Fail(format!("EXTERNAL refused: {tagged}")));
    }
    w.send("A2 SELECT INBOX").await?;
    let (_, selected) = w.imap_tagged("A2").await?;
    let _ = w.send("A3 LOGOUT").await;
    Ok(verdict(
        announced && status(&selected) == "OK",
        format!("AUTH=EXTERNAL announced: {announced}; authenticated; SELECT INBOX: {selected}"),
    ))
}

async fn external_bad_certificate(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let (tls, cert) = ctx.suite.bad_certificate().map_err(anyhow::Error::msg)?;
    let mut w = match connect(ctx, ctx.endpoint()?, Some(tls)).await {
        Ok(w) => w,
        Err(err) => {
            return Ok(Outcome::Pass(format!(
                "refused at the TLS handshake: {err:#}"
            )));
        }
    };
    let authz = external_authz(cert.mailbox.as_deref());
    if let Err(err) = w.send(&format!("A1 AUTHENTICATE EXTERNAL {authz}")).await {
        return Ok(Outcome::Pass(format!("connection refused: {err:#}")));
    }
    match w.imap_tagged("A1").await {
        Ok((_, tagged)) => {
            let _ = w.send("A2 LOGOUT").await;
            Ok(verdict(
                status(&tagged) != "OK",
                format!("EXTERNAL answered: {tagged}"),
            ))
        }
        Err(err) => Ok(Outcome::Pass(format!(
            "the server closed the connection: {err:#}"
        ))),
    }
}

async fn starttls_capabilities(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let mut w = connect(ctx, ctx.endpoint()?, None).await?;
    let before = capability(&mut w, "C1").await?;
    let before_ok = before.iter().any(|c| c == "STARTTLS")
        && before.iter().any(|c| c == "LOGINDISABLED")
        && !before.iter().any(|c| c.starts_with("AUTH="));
    w.send("C2 STARTTLS").await?;
    let (_, tagged) = w.imap_tagged("C2").await?;
    if status(&tagged) != "OK" {
        return Ok(Outcome::Fail(format!("STARTTLS refused: {tagged}")));
    }
    w.handshake(&ctx.suite.tls).await?;
    let after = capability(&mut w, "C3").await?;
    let after_ok = ["SASL-IR", "AUTH=XOAUTH2", "AUTH=OAUTHBEARER"]
        .iter()
        .all(|c| after.iter().any(|x| x == c));
    let _ = w.send("C4 LOGOUT").await;
    Ok(verdict(
        before_ok && after_ok,
        format!("before STARTTLS: {before:?}; after: {after:?}"),
    ))
}

async fn authenticate_before_tls(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let t = ctx.target;
    let mut w = connect(ctx, ctx.endpoint()?, None).await?;
    let token = ctx.token(&t.idnat, None);
    let (payload, shown) = xoauth2(&t.mailbox, &token, "valid token, redacted");
    w.send_shown(
        &format!("A1 AUTHENTICATE XOAUTH2 {payload}"),
        &format!("A1 AUTHENTICATE XOAUTH2 {shown}"),
    )
    .await?;
    let line = w.read_line_opt(t.timeout).await?;
    let _ = w.send("A2 LOGOUT").await;
    Ok(match line {
        None => Outcome::Pass("the server closed the connection".into()),
        Some(l) if l.starts_with("A1 ") => verdict(status(&l) != "OK", format!("answer: {l}")),
        Some(l) if l.starts_with('+') => Outcome::Fail(format!(
            "the server went on with the exchange in clear text: {l}"
        )),
        Some(l) => Outcome::Fail(format!("unexpected answer: {l}")),
    })
}

async fn login_before_tls(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let mut w = connect(ctx, ctx.endpoint()?, None).await?;
    w.send(&format!("L1 LOGIN {} \"password\"", ctx.target.mailbox))
        .await?;
    let (_, tagged) = w.imap_tagged("L1").await?;
    let _ = w.send("L2 LOGOUT").await;
    Ok(verdict(
        status(&tagged) != "OK",
        format!("answer: {tagged}"),
    ))
}
