//! SMTP cases (RFC 4954 on the submission ports, the operator interface on the inbound
//! port): AUTH mechanisms only after TLS, good and bad tokens, error challenges, the
//! envelope sender rule, certificates, and mail between operators over mutual TLS. The
//! cases are in [`cases`]; here, the client steps they share.

mod cases;

use std::sync::Arc;

use anyhow::bail;
use rustls::ClientConfig;

use crate::case::{Case, CaseCtx, CaseResult, Suite, infos, run_cases, skipped};
use crate::psc_standin::Flaw;
use crate::sasl::{decode_challenge, xoauth2};
use crate::wire::{Endpoint, Recorder, Wire};

const EHLO: &str = "conformance.mssante.test";

/// The submission ports' cases, each group tried when its address is given and answers,
/// then the operator interface's.
pub(crate) async fn run(suite: &Suite<'_>, out: &mut Vec<CaseResult>) {
    let t = suite.target;
    let submission = (t.smtp.as_deref(), "--smtp");
    let silent = "the SMTP submission server does not answer";
    if let Some(e) = answering(
        suite,
        submission,
        Some(&suite.tls),
        silent,
        cases::SUBMISSION,
        out,
    )
    .await
    {
        run_cases(suite, Some(&e), cases::SUBMISSION, out).await;
    }
    let starttls = (t.smtp_starttls.as_deref(), "--smtp-starttls");
    let silent = "the SMTP STARTTLS port does not answer";
    if let Some(e) = answering(suite, starttls, None, silent, cases::STARTTLS, out).await {
        run_cases(suite, Some(&e), cases::STARTTLS, out).await;
    }
    run_cases(suite, None, cases::OPERATOR, out).await;
}

/// The endpoint at `address` (given by the command-line `option`) when it accepts a
/// connection (`tls` or not); otherwise each of `cases` is reported skipped, with why.
async fn answering(
    suite: &Suite<'_>,
    (address, option): (Option<&str>, &str),
    tls: Option<&Arc<ClientConfig>>,
    silent: &str,
    cases: &[Case],
    out: &mut Vec<CaseResult>,
) -> Option<Endpoint> {
    let e = suite.endpoint_or_skip(address, option, infos(cases), out)?;
    let probe = Recorder::new();
    if let Err(err) = Wire::connect(&e, tls, &probe, suite.target.timeout).await {
        let why = format!("{silent}: {err:#}");
        out.extend(infos(cases).map(|i| skipped(i, &why)));
        return None;
    }
    Some(e)
}

/// Connects, reads the 220 greeting and says EHLO; returns the EHLO keywords.
async fn connect(
    ctx: &CaseCtx<'_>,
    e: &Endpoint,
    tls: Option<&Arc<ClientConfig>>,
) -> anyhow::Result<(Wire, Vec<String>)> {
    let mut w = Wire::connect(e, tls, &ctx.rec, ctx.target.timeout).await?;
    let (code, text) = w.smtp_reply().await?;
    if code != 220 {
        bail!("unexpected greeting: {code} {}", text.join(" / "));
    }
    let keywords = ehlo(&mut w).await?;
    Ok((w, keywords))
}

async fn ehlo(w: &mut Wire) -> anyhow::Result<Vec<String>> {
    w.send(&format!("EHLO {EHLO}")).await?;
    let (code, lines) = w.smtp_reply().await?;
    if code != 250 {
        bail!("EHLO refused: {code} {}", lines.join(" / "));
    }
    Ok(lines.into_iter().skip(1).collect())
}

/// The mechanisms of the `AUTH` keyword, upper case.
fn auth_mechanisms(keywords: &[String]) -> Vec<String> {
    keywords
        .iter()
        .filter_map(|k| {
            let upper = k.to_ascii_uppercase();
            upper
                .strip_prefix("AUTH ")
                .or_else(|| upper.strip_prefix("AUTH="))
                .map(str::to_owned)
        })
        .flat_map(|m| m.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

struct AuthExchange {
    code: u16,
    text: String,
    challenge: Option<Option<serde_json::Value>>,
}

async fn authenticate(
    w: &mut Wire,
    mechanism: &str,
    (payload, shown): (String, String),
    inline: bool,
    challenge_reply: &str,
) -> anyhow::Result<AuthExchange> {
    if inline {
        w.send_shown(
            &format!("AUTH {mechanism} {payload}"),
            &format!("AUTH {mechanism} {shown}"),
        )
        .await?;
    } else {
        w.send(&format!("AUTH {mechanism}")).await?;
        let (code, text) = w.smtp_reply().await?;
        if code != 334 {
            return Ok(AuthExchange {
                code,
                text: text.join(" / "),
                challenge: None,
            });
        }
        w.send_shown(&payload, &shown).await?;
    }
    let mut challenge = None;
    loop {
        let (code, text) = w.smtp_reply().await?;
        if code == 334 && challenge.is_none() {
            challenge = Some(decode_challenge(
                w.recorder(),
                text.first().map(String::as_str).unwrap_or(""),
            ));
            w.send(challenge_reply).await?;
            continue;
        }
        return Ok(AuthExchange {
            code,
            text: text.join(" / "),
            challenge,
        });
    }
}

/// AUTH XOAUTH2 with the initial response inline, a token for `idnat` (`flaw` on purpose)
/// shown as `label`, on a fresh TLS connection to the port under test; then QUIT.
async fn xoauth2_once(
    ctx: &CaseCtx<'_>,
    idnat: &str,
    flaw: Option<Flaw>,
    label: &str,
) -> anyhow::Result<AuthExchange> {
    let (mut w, _) = connect(ctx, ctx.endpoint()?, Some(&ctx.suite.tls)).await?;
    let token = ctx.token(idnat, flaw);
    let payload = xoauth2(&ctx.target.mailbox, &token, label);
    let a = authenticate(&mut w, "XOAUTH2", payload, true, "").await?;
    quit(&mut w).await;
    Ok(a)
}

async fn quit(w: &mut Wire) {
    if w.send("QUIT").await.is_ok() {
        let _ = w.smtp_reply().await;
    }
}

/// MAIL, RCPT, DATA: `Ok` with the final answer when the message was accepted, `Err`
/// with the refusal otherwise.
async fn send(w: &mut Wire, from: &str, to: &str) -> anyhow::Result<Result<String, String>> {
    for (command, expected) in [
        (format!("MAIL FROM:<{from}>"), 250),
        (format!("RCPT TO:<{to}>"), 250),
        ("DATA".to_owned(), 354),
    ] {
        w.send(&command).await?;
        let (code, text) = w.smtp_reply().await?;
        if code != expected {
            return Ok(Err(format!("{command}: {code} {}", text.join(" / "))));
        }
    }
    let body = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: MSSante conformance: submission\r\nMessage-ID: <conformance-{:016x}@{EHLO}>\r\nDate: {}\r\n\r\nSent by the conformance suite.\r\n.",
        rand::random::<u64>(),
        chrono::Utc::now().to_rfc2822()
    );
    for line in body.split("\r\n") {
        w.send(line).await?;
    }
    let (code, text) = w.smtp_reply().await?;
    let detail = format!("end of DATA: {code} {}", text.join(" / "));
    Ok(if code == 250 { Ok(detail) } else { Err(detail) })
}

#[cfg(test)]
mod tests {
    use super::auth_mechanisms;

    #[test]
    fn auth_keyword_in_both_spellings() {
        let keywords = vec![
            "SIZE 1000".to_owned(),
            "AUTH XOAUTH2 oauthbearer".to_owned(),
            "AUTH=PLAIN".to_owned(),
        ];
        assert_eq!(
            auth_mechanisms(&keywords),
            ["XOAUTH2", "OAUTHBEARER", "PLAIN"]
        );
        assert!(auth_mechanisms(&["STARTTLS".to_owned()]).is_empty());
    }
}
