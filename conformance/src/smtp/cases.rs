//! The SMTP cases, in report order: one table per port, one function per case.

use std::sync::Arc;

use rustls::ClientConfig;

use super::{EHLO, auth_mechanisms, authenticate, connect, ehlo, quit, send, xoauth2_once};
use crate::case::{Case, CaseCtx, Outcome, Suite, case_fn, verdict};
use crate::psc_standin::Flaw;
use crate::python_tls;
use crate::rules::{SECTION_ACCESS, SECTION_PSC, SECTION_SASL, SECTION_TLS, SECTION_TRUST};
use crate::sasl::{challenge_status, external_authz, oauthbearer, xoauth2};

const GOOD_TOKEN: &str = "A valid PSC token for the mailbox holder authenticates: 235";

/// The submission port with implicit TLS (465).
pub(super) const SUBMISSION: &[Case] = &[
    Case::new(
        "smtp-ehlo-tls",
        "EHLO on implicit TLS",
        SECTION_SASL,
        "After TLS, EHLO announces AUTH XOAUTH2 OAUTHBEARER and no password mechanism",
        case_fn!(ehlo_tls),
    ),
    Case::new(
        "smtp-xoauth2-sasl-ir",
        "XOAUTH2 with initial response",
        SECTION_SASL,
        GOOD_TOKEN,
        case_fn!(good_token, "XOAUTH2", true),
    ),
    Case::new(
        "smtp-xoauth2-continuation",
        "XOAUTH2 after a 334 continuation",
        SECTION_SASL,
        GOOD_TOKEN,
        case_fn!(good_token, "XOAUTH2", false),
    ),
    Case::new(
        "smtp-oauthbearer",
        "OAUTHBEARER",
        SECTION_SASL,
        GOOD_TOKEN,
        case_fn!(good_token, "OAUTHBEARER", true),
    ),
    Case::flaw(
        "smtp-xoauth2-expired",
        Flaw::Expired,
        case_fn!(refused_token, Flaw::Expired),
    ),
    Case::flaw(
        "smtp-xoauth2-foreign-issuer",
        Flaw::ForeignIssuer,
        case_fn!(refused_token, Flaw::ForeignIssuer),
    ),
    Case::flaw(
        "smtp-xoauth2-bad-signature",
        Flaw::BadSignature,
        case_fn!(refused_token, Flaw::BadSignature),
    ),
    Case::flaw(
        "smtp-xoauth2-alg-none",
        Flaw::AlgNone,
        case_fn!(refused_token, Flaw::AlgNone),
    ),
    Case::flaw(
        "smtp-xoauth2-hs256-confusion",
        Flaw::Hs256WithPublicKey,
        case_fn!(refused_token, Flaw::Hs256WithPublicKey),
    ),
    Case::flaw(
        "smtp-xoauth2-unknown-kid",
        Flaw::UnknownKey,
        case_fn!(refused_token, Flaw::UnknownKey),
    ),
    Case::flaw(
        "smtp-xoauth2-not-yet-valid",
        Flaw::NotYetValid,
        case_fn!(refused_token, Flaw::NotYetValid),
    ),
    Case::flaw(
        "smtp-xoauth2-wrong-acr",
        Flaw::WrongAcr,
        case_fn!(refused_token, Flaw::WrongAcr),
    ),
    Case::flaw(
        "smtp-xoauth2-refresh-token",
        Flaw::RefreshType,
        case_fn!(refused_token, Flaw::RefreshType),
    ),
    Case::new(
        "smtp-wrong-idnat",
        "Valid token of another professional",
        SECTION_ACCESS,
        "Never another professional's mailbox: 535",
        case_fn!(wrong_idnat),
    ),
    Case::new(
        "smtp-xoauth2-error-challenge",
        "XOAUTH2 error challenge format",
        SECTION_SASL,
        "On failure: 334 base64({\"status\":\"401\",…}), the client answers with an empty line, then 535 5.7.8",
        case_fn!(error_challenge),
    ),
    Case::new(
        "smtp-sender-own-mailbox",
        "Sending as the authenticated mailbox",
        SECTION_ACCESS,
        "The envelope sender may be a mailbox the identity may open: the message is accepted",
        case_fn!(sender, true),
    ),
    Case::new(
        "smtp-sender-other-refused",
        "Sending as someone else",
        SECTION_ACCESS,
        "The envelope sender must be a mailbox the identity may open; anything else is refused",
        case_fn!(sender, false),
    ),
    Case::new(
        "smtp-external-certificate",
        "AUTH_CLI certificate (EXTERNAL)",
        SECTION_ACCESS,
        "A trusted AUTH_CLI certificate authenticates with AUTH EXTERNAL, announced once it was presented",
        case_fn!(external_certificate),
    )
    .needs(|s| s.certificate().map(drop)),
    Case::new(
        "smtp-external-bad-certificate",
        "Refused AUTH_CLI certificate",
        SECTION_ACCESS,
        "An expired, revoked or foreign certificate authenticates nothing",
        case_fn!(external_bad_certificate),
    )
    .needs(|s| s.bad_certificate().map(drop)),
    Case::new(
        "smtp-tls11-refused",
        "TLS 1.1 refused",
        SECTION_TLS,
        "TLS 1.2 minimum: a 1.1 handshake fails",
        case_fn!(python_tls::refused, "1.1"),
    ),
    Case::new(
        "smtp-psc-unavailable",
        "PSC unavailable",
        SECTION_PSC,
        "PSC unreachable or answering 5xx: 454 4.7.0 (temporary), never a definitive refusal; a server validating locally with cached keys may accept a good token",
        case_fn!(psc_unavailable),
    ),
];

/// The submission port with STARTTLS (587).
pub(super) const STARTTLS: &[Case] = &[
    Case::new(
        "smtp-starttls-ehlo",
        "EHLO before and after STARTTLS",
        SECTION_SASL,
        "AUTH XOAUTH2 OAUTHBEARER in EHLO only after TLS; before it, STARTTLS and no AUTH",
        case_fn!(starttls_ehlo),
    ),
    Case::new(
        "smtp-starttls-auth-before-tls",
        "AUTH before STARTTLS (downgrade)",
        SECTION_SASL,
        "No authentication before TLS: a valid token sent in clear text is refused",
        case_fn!(auth_before_tls),
    ),
];

/// The operator interface (25): each case finds the port itself.
pub(super) const OPERATOR: &[Case] = &[
    Case::new(
        "smtp-operator-interface-no-certificate",
        "Operator interface without a client certificate",
        SECTION_TRUST,
        "Only operators of the trust space, proven by their certificate, may deliver: a peer without one is refused",
        case_fn!(untrusted_operator),
    )
    .needs(|s| inbound(s).map(drop)),
    Case::new(
        "smtp-operator-interface",
        "Mail from another operator over mutual TLS",
        SECTION_TRUST,
        "Inbound SMTP from a trusted operator: STARTTLS with a client certificate chaining to IGC-Santé and listed for the sending domain; the mail reaches the mailbox",
        case_fn!(operator_interface),
    )
    .needs(|s| operator(s).map(drop)),
];

/// The inbound port and the sender to use on it.
fn inbound<'s>(suite: &'s Suite<'_>) -> Result<(&'s str, &'s str), &'static str> {
    let t = suite.target;
    match (&t.inbound, &t.inbound_from) {
        (Some(address), Some(from)) => Ok((address, from)),
        _ => Err("no --inbound address and --inbound-from sender given"),
    }
}

/// The inbound port, the TLS set-up that presents an operator certificate, and the
/// sender to use.
fn operator<'s>(
    suite: &'s Suite<'_>,
) -> Result<(&'s str, &'s Arc<ClientConfig>, &'s str), &'static str> {
    let t = suite.target;
    match (&t.inbound, &suite.tls_operator, &t.inbound_from) {
        (Some(address), Some(tls), Some(from)) => Ok((address, tls, from)),
        (None, _, _) => Err("no --inbound address given"),
        (_, None, _) => {
            Err("no operator certificate (--operator-certificate or --certificate) given")
        }
        (_, _, None) => Err("no --inbound-from sender address given"),
    }
}

async fn ehlo_tls(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let (mut w, keywords) = connect(ctx, ctx.endpoint()?, Some(&ctx.suite.tls)).await?;
    let mechs = auth_mechanisms(&keywords);
    quit(&mut w).await;
    let required = ["XOAUTH2", "OAUTHBEARER"]
        .iter()
        .all(|m| mechs.iter().any(|x| x == m));
    let forbidden = mechs
        .iter()
        .any(|m| ["PLAIN", "LOGIN", "CRAM-MD5"].contains(&m.as_str()));
    Ok(verdict(
        required && !forbidden,
        format!("AUTH mechanisms: {mechs:?}"),
    ))
}

/// A good token with `mechanism`, inline or after the 334 continuation.
async fn good_token(
    ctx: &CaseCtx<'_>,
    mechanism: &'static str,
    inline: bool,
) -> anyhow::Result<Outcome> {
    let t = ctx.target;
    let e = ctx.endpoint()?;
    let (mut w, _) = connect(ctx, e, Some(&ctx.suite.tls)).await?;
    let token = ctx.token(&t.idnat, None);
    let payload = if mechanism == "XOAUTH2" {
        xoauth2(&t.mailbox, &token, "valid token, redacted")
    } else {
        oauthbearer(&t.mailbox, e, &token, "valid token, redacted")
    };
    let reply = if mechanism == "XOAUTH2" { "" } else { "AQ==" };
    let a = authenticate(&mut w, mechanism, payload, inline, reply).await?;
    quit(&mut w).await;
    Ok(verdict(
        a.code == 235,
        format!("answer: {} {}", a.code, a.text),
    ))
}

/// A token with `flaw` for the mailbox holder: 5xx.
async fn refused_token(ctx: &CaseCtx<'_>, flaw: Flaw) -> anyhow::Result<Outcome> {
    let label = format!("{flaw:?} token, redacted");
    let a = xoauth2_once(ctx, &ctx.target.idnat, Some(flaw), &label).await?;
    Ok(verdict(
        (500..600).contains(&a.code),
        format!("answer: {} {}", a.code, a.text),
    ))
}

async fn wrong_idnat(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let other = &ctx.target.other_idnat;
    let label = format!("valid token of {other}, redacted");
    let a = xoauth2_once(ctx, other, None, &label).await?;
    Ok(verdict(
        (500..600).contains(&a.code),
        format!("answer: {} {}", a.code, a.text),
    ))
}

async fn error_challenge(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let a = xoauth2_once(
        ctx,
        &ctx.target.idnat,
        Some(Flaw::Expired),
        "expired token, redacted",
    )
    .await?;
    let status = match challenge_status(&a.challenge) {
        Ok(s) => s,
        Err(why) => {
            return Ok(Outcome::Fail(format!(
                "{why}; answer: {} {}",
                a.code, a.text
            )));
        }
    };
    Ok(verdict(
        status == "401" && a.code == 535 && a.text.contains("5.7.8"),
        format!("challenge status {status:?}; answer: {} {}", a.code, a.text),
    ))
}

/// After a good AUTH, a message from the mailbox itself (`own`) or from another address
/// of its domain: accepted only in the first case.
async fn sender(ctx: &CaseCtx<'_>, own: bool) -> anyhow::Result<Outcome> {
    let t = ctx.target;
    let (mut w, _) = connect(ctx, ctx.endpoint()?, Some(&ctx.suite.tls)).await?;
    let token = ctx.token(&t.idnat, None);
    let a = authenticate(
        &mut w,
        "XOAUTH2",
        xoauth2(&t.mailbox, &token, "valid token, redacted"),
        true,
        "",
    )
    .await?;
    if a.code != 235 {
        return Ok(Outcome::Fail(format!(
            "authentication failed: {} {}",
            a.code, a.text
        )));
    }
    let sender = if own {
        t.mailbox.clone()
    } else {
        let domain = t
            .mailbox
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or("invalid");
        format!("conformance-not-yours@{domain}")
    };
    let outcome = send(&mut w, &sender, &t.mailbox).await?;
    quit(&mut w).await;
    Ok(match (own, outcome) {
        (true, Ok(detail)) => Outcome::Pass(detail),
        (true, Err(detail)) => Outcome::Fail(detail),
        (false, Ok(detail)) => Outcome::Fail(format!("accepted: {detail}")),
        (false, Err(detail)) => Outcome::Pass(format!("refused: {detail}")),
    })
}

async fn external_certificate(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let (tls, cert) = ctx.suite.certificate().map_err(anyhow::Error::msg)?;
    let (mut w, keywords) = connect(ctx, ctx.endpoint()?, Some(tls)).await?;
    let announced = auth_mechanisms(&keywords).iter().any(|m| m == "EXTERNAL");
    let authz = external_authz(cert.mailbox.as_deref());
    w.send(&format!("AUTH EXTERNAL {authz}")).await?;
    let (code, text) = w.smtp_reply().await?;
    quit(&mut w).await;
    Ok(verdict(
        announced && code == 235,
        format!(
            "EXTERNAL announced: {announced}; answer: {code} {}",
            text.join(" / ")
        ),
    ))
}

async fn external_bad_certificate(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let (tls, cert) = ctx.suite.bad_certificate().map_err(anyhow::Error::msg)?;
    let (mut w, _) = match connect(ctx, ctx.endpoint()?, Some(tls)).await {
        Ok(c) => c,
        Err(err) => return Ok(Outcome::Pass(format!("refused: {err:#}"))),
    };
    let authz = external_authz(cert.mailbox.as_deref());
    w.send(&format!("AUTH EXTERNAL {authz}")).await?;
    let reply = w.smtp_reply().await;
    quit(&mut w).await;
    Ok(match reply {
        Ok((code, text)) => verdict(code != 235, format!("answer: {code} {}", text.join(" / "))),
        Err(err) => Outcome::Pass(format!("connection ended: {err:#}")),
    })
}

async fn psc_unavailable(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let t = ctx.target;
    let psc = ctx.suite.psc;
    let (mut w, _) = connect(ctx, ctx.endpoint()?, Some(&ctx.suite.tls)).await?;
    let token = ctx.token(&t.idnat, None);
    ctx.rec
        .note("the PSC stand-in now answers 503 to everything");
    psc.set_down(true);
    let a = authenticate(
        &mut w,
        "XOAUTH2",
        xoauth2(&t.mailbox, &token, "valid token, redacted"),
        true,
        "",
    )
    .await;
    psc.set_down(false);
    ctx.rec.note("the PSC stand-in answers again");
    let a = a?;
    quit(&mut w).await;
    Ok(verdict(
        a.code == 235 || a.code == 454,
        format!("answer while PSC was down: {} {}", a.code, a.text),
    ))
}

async fn starttls_ehlo(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let (mut w, before) = connect(ctx, ctx.endpoint()?, None).await?;
    let before_mechs = auth_mechanisms(&before);
    let offers_starttls = before.iter().any(|k| k.eq_ignore_ascii_case("STARTTLS"));
    w.send("STARTTLS").await?;
    let (code, text) = w.smtp_reply().await?;
    if code != 220 {
        return Ok(Outcome::Fail(format!(
            "STARTTLS refused: {code} {}",
            text.join(" / ")
        )));
    }
    w.handshake(&ctx.suite.tls).await?;
    let after = auth_mechanisms(&ehlo(&mut w).await?);
    quit(&mut w).await;
    let after_ok = ["XOAUTH2", "OAUTHBEARER"]
        .iter()
        .all(|m| after.iter().any(|x| x == m));
    Ok(verdict(
        offers_starttls && before_mechs.is_empty() && after_ok,
        format!(
            "before STARTTLS: AUTH {before_mechs:?}, STARTTLS offered: {offers_starttls}; after: AUTH {after:?}"
        ),
    ))
}

async fn auth_before_tls(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let t = ctx.target;
    let (mut w, _) = connect(ctx, ctx.endpoint()?, None).await?;
    let token = ctx.token(&t.idnat, None);
    let (payload, shown) = xoauth2(&t.mailbox, &token, "valid token, redacted");
    w.send_shown(
        &format!("AUTH XOAUTH2 {payload}"),
        &format!("AUTH XOAUTH2 {shown}"),
    )
    .await?;
    let reply = w.smtp_reply().await;
    quit(&mut w).await;
    Ok(match reply {
        Ok((code, text)) => verdict(
            (500..600).contains(&code),
            format!("answer: {code} {}", text.join(" / ")),
        ),
        Err(err) => Outcome::Pass(format!("connection ended: {err:#}")),
    })
}

/// A peer without a client certificate on the operator interface.
async fn untrusted_operator(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let t = ctx.target;
    let (address, from) = inbound(ctx.suite).map_err(anyhow::Error::msg)?;
    let e = ctx.suite.endpoint(address)?;
    let (mut w, keywords) = connect(ctx, &e, None).await?;
    if keywords.iter().any(|k| k.eq_ignore_ascii_case("STARTTLS")) {
        w.send("STARTTLS").await?;
        let (code, _) = w.smtp_reply().await?;
        if code == 220 {
            w.handshake(&ctx.suite.tls).await?;
            ehlo(&mut w).await?;
        }
    }
    for command in [
        format!("MAIL FROM:<{from}>"),
        format!("RCPT TO:<{}>", t.mailbox),
    ] {
        w.send(&command).await?;
        let (code, text) = match w.smtp_reply().await {
            Ok(r) => r,
            Err(err) => return Ok(Outcome::Pass(format!("connection ended: {err:#}"))),
        };
        if code >= 400 {
            quit(&mut w).await;
            return Ok(Outcome::Pass(format!(
                "{command}: {code} {}",
                text.join(" / ")
            )));
        }
    }
    quit(&mut w).await;
    Ok(Outcome::Fail(
        "MAIL and RCPT accepted from a peer without an operator certificate".into(),
    ))
}

/// A message over mutual TLS with an operator certificate, then looked for in the INBOX
/// over IMAP with its `X-MSS-CODECDA` header.
async fn operator_interface(ctx: &CaseCtx<'_>) -> anyhow::Result<Outcome> {
    let t = ctx.target;
    let (address, tls, from) = operator(ctx.suite).map_err(anyhow::Error::msg)?;
    let e = ctx.suite.endpoint(address)?;
    let (mut w, keywords) = connect(ctx, &e, None).await?;
    if !keywords.iter().any(|k| k.eq_ignore_ascii_case("STARTTLS")) {
        return Ok(Outcome::Fail(
            "STARTTLS is not offered on the inbound port".into(),
        ));
    }
    w.send("STARTTLS").await?;
    let (code, text) = w.smtp_reply().await?;
    if code != 220 {
        return Ok(Outcome::Fail(format!(
            "STARTTLS refused: {code} {}",
            text.join(" / ")
        )));
    }
    w.handshake(tls).await?;
    ehlo(&mut w).await?;
    let message_id = format!("<conformance-{:016x}@{EHLO}>", rand::random::<u64>());
    let steps = [
        (format!("MAIL FROM:<{from}>"), 250),
        (format!("RCPT TO:<{}>", t.mailbox), 250),
        ("DATA".to_owned(), 354),
    ];
    for (command, expected) in steps {
        w.send(&command).await?;
        let (code, text) = w.smtp_reply().await?;
        if code != expected {
            return Ok(Outcome::Fail(format!(
                "{command}: {code} {}",
                text.join(" / ")
            )));
        }
    }
    let body = format!(
        "From: <{from}>\r\nTo: <{}>\r\nSubject: MSSante conformance: operator interface\r\nMessage-ID: {message_id}\r\nDate: {}\r\nX-MSS-CODECDA: conformance\r\n\r\nSent by the conformance suite over mutual TLS.\r\n.",
        t.mailbox,
        chrono::Utc::now().to_rfc2822()
    );
    for line in body.split("\r\n") {
        w.send(line).await?;
    }
    let (code, text) = w.smtp_reply().await?;
    quit(&mut w).await;
    if code != 250 {
        return Ok(Outcome::Fail(format!(
            "end of DATA: {code} {}",
            text.join(" / ")
        )));
    }
    if t.imap.is_none() {
        return Ok(Outcome::Pass(format!(
            "accepted ({message_id}); delivery not checked (no --imap)"
        )));
    }
    // Delivery may go through a queue: look a few times.
    for _ in 0..10 {
        if let Some(headers) = crate::imap::find_delivered(ctx, &message_id).await? {
            let kept = headers
                .iter()
                .any(|h| h.trim() == "X-MSS-CODECDA: conformance");
            return Ok(verdict(
                kept,
                format!("delivered to the INBOX; MSSanté headers as received: {headers:?}"),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    Ok(Outcome::Fail(format!(
        "accepted but {message_id} is not in the INBOX after 10 s"
    )))
}
