//! SMTP cases (RFC 4954 on the submission ports, the operator interface on the inbound
//! port): AUTH mechanisms only after TLS, good and bad tokens, error challenges, the
//! envelope sender rule, certificates, and mail between operators over mutual TLS.

use std::sync::Arc;

use anyhow::bail;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::ClientConfig;

use super::wire::{Endpoint, Recorder, Wire};
use super::{
    CaseInfo, CaseResult, FLAWS, Outcome, SECTION_ACCESS, SECTION_PSC, SECTION_SASL, SECTION_TLS,
    SECTION_TRUST, Suite, challenge_status, decode_challenge, oauthbearer, python_tls, run_case,
    skipped, verdict, xoauth2,
};
use crate::psc_standin::Flaw;

const EHLO: &str = "conformance.mssante.test";

/// Connects, reads the 220 greeting and says EHLO; returns the EHLO keywords.
async fn connect(
    suite: &Suite<'_>,
    e: &Endpoint,
    tls: Option<&Arc<ClientConfig>>,
    rec: &Recorder,
) -> anyhow::Result<(Wire, Vec<String>)> {
    let mut w = Wire::connect(e, tls, rec, suite.target.timeout).await?;
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
/// shown as `label`, on a fresh TLS connection; then QUIT.
async fn xoauth2_once(
    suite: &Suite<'_>,
    e: &Endpoint,
    rec: &Recorder,
    idnat: &str,
    flaw: Option<Flaw>,
    label: &str,
) -> anyhow::Result<AuthExchange> {
    let (mut w, _) = connect(suite, e, Some(&suite.tls), rec).await?;
    let token = suite.token(rec, idnat, flaw);
    let payload = xoauth2(&suite.target.mailbox, &token, label);
    let a = authenticate(&mut w, "XOAUTH2", payload, true, "").await?;
    quit(&mut w).await;
    Ok(a)
}

async fn quit(w: &mut Wire) {
    if w.send("QUIT").await.is_ok() {
        let _ = w.smtp_reply().await;
    }
}

pub(crate) async fn run(suite: &Suite<'_>, out: &mut Vec<CaseResult>) {
    let t = suite.target;
    submission_cases(suite, out).await;
    starttls_cases(suite, out).await;
    let i = CaseInfo::new(
        "smtp-operator-interface",
        "Mail from another operator over mutual TLS",
        SECTION_TRUST,
        "Inbound SMTP from a trusted operator: STARTTLS with a client certificate chaining to IGC-Santé and listed for the sending domain; the mail reaches the mailbox",
    );
    let untrusted = CaseInfo::new(
        "smtp-operator-interface-no-certificate",
        "Operator interface without a client certificate",
        SECTION_TRUST,
        "Only operators of the trust space, proven by their certificate, may deliver: a peer without one is refused",
    );
    match (&t.inbound, &t.inbound_from) {
        (Some(address), Some(from)) => {
            let rec = Recorder::new();
            out.push(
                run_case(
                    untrusted,
                    rec.clone(),
                    untrusted_operator(suite, address, from, &rec),
                )
                .await,
            );
        }
        _ => out.push(skipped(
            untrusted,
            "no --inbound address and --inbound-from sender given",
        )),
    }
    match (&t.inbound, &suite.tls_operator, &t.inbound_from) {
        (Some(address), Some(tls), Some(from)) => {
            let rec = Recorder::new();
            out.push(
                run_case(
                    i,
                    rec.clone(),
                    operator_interface(suite, address, tls, from, &rec),
                )
                .await,
            );
        }
        (None, _, _) => out.push(skipped(i, "no --inbound address given")),
        (_, None, _) => out.push(skipped(
            i,
            "no operator certificate (--operator-certificate or --certificate) given",
        )),
        (_, _, None) => out.push(skipped(i, "no --inbound-from sender address given")),
    }
}

async fn operator_interface(
    suite: &Suite<'_>,
    address: &str,
    tls: &Arc<ClientConfig>,
    from: &str,
    rec: &Recorder,
) -> anyhow::Result<Outcome> {
    let t = suite.target;
    let e = suite.endpoint(address)?;
    let (mut w, keywords) = connect(suite, &e, None, rec).await?;
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
        if let Some(headers) = super::imap::find_delivered(suite, rec, &message_id).await? {
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

/// A peer without a client certificate on the operator interface.
async fn untrusted_operator(
    suite: &Suite<'_>,
    address: &str,
    from: &str,
    rec: &Recorder,
) -> anyhow::Result<Outcome> {
    let t = suite.target;
    let e = suite.endpoint(address)?;
    let (mut w, keywords) = connect(suite, &e, None, rec).await?;
    if keywords.iter().any(|k| k.eq_ignore_ascii_case("STARTTLS")) {
        w.send("STARTTLS").await?;
        let (code, _) = w.smtp_reply().await?;
        if code == 220 {
            w.handshake(&suite.tls).await?;
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

/// The submission port with implicit TLS; every case is skipped with the reason when it
/// is not given or does not answer.
async fn submission_cases(suite: &Suite<'_>, out: &mut Vec<CaseResult>) {
    let t = suite.target;
    let mut infos = vec![
        CaseInfo::new(
            "smtp-ehlo-tls",
            "EHLO on implicit TLS",
            SECTION_SASL,
            "After TLS, EHLO announces AUTH XOAUTH2 OAUTHBEARER and no password mechanism",
        ),
        CaseInfo::new(
            "smtp-xoauth2-sasl-ir",
            "XOAUTH2 with initial response",
            SECTION_SASL,
            "A valid PSC token for the mailbox holder authenticates: 235",
        ),
        CaseInfo::new(
            "smtp-xoauth2-continuation",
            "XOAUTH2 after a 334 continuation",
            SECTION_SASL,
            "A valid PSC token for the mailbox holder authenticates: 235",
        ),
        CaseInfo::new(
            "smtp-oauthbearer",
            "OAUTHBEARER",
            SECTION_SASL,
            "A valid PSC token for the mailbox holder authenticates: 235",
        ),
    ];
    for (_, _, id, title, requirement) in FLAWS {
        infos.push(CaseInfo::new(id, title, SECTION_PSC, requirement));
    }
    infos.extend([
        CaseInfo::new(
            "smtp-wrong-idnat",
            "Valid token of another professional",
            SECTION_ACCESS,
            "Never another professional's mailbox: 535",
        ),
        CaseInfo::new(
            "smtp-xoauth2-error-challenge",
            "XOAUTH2 error challenge format",
            SECTION_SASL,
            "On failure: 334 base64({\"status\":\"401\",…}), the client answers with an empty line, then 535 5.7.8",
        ),
        CaseInfo::new(
            "smtp-sender-own-mailbox",
            "Sending as the authenticated mailbox",
            SECTION_ACCESS,
            "The envelope sender may be a mailbox the identity may open: the message is accepted",
        ),
        CaseInfo::new(
            "smtp-sender-other-refused",
            "Sending as someone else",
            SECTION_ACCESS,
            "The envelope sender must be a mailbox the identity may open; anything else is refused",
        ),
        CaseInfo::new(
            "smtp-external-certificate",
            "AUTH_CLI certificate (EXTERNAL)",
            SECTION_ACCESS,
            "A trusted AUTH_CLI certificate authenticates with AUTH EXTERNAL, announced once it was presented",
        ),
        CaseInfo::new(
            "smtp-external-bad-certificate",
            "Refused AUTH_CLI certificate",
            SECTION_ACCESS,
            "An expired, revoked or foreign certificate authenticates nothing",
        ),
        CaseInfo::new(
            "smtp-tls11-refused",
            "TLS 1.1 refused",
            SECTION_TLS,
            "TLS 1.2 minimum: a 1.1 handshake fails",
        ),
        CaseInfo::new(
            "smtp-psc-unavailable",
            "PSC unavailable",
            SECTION_PSC,
            "PSC unreachable or answering 5xx: 454 4.7.0 (temporary), never a definitive refusal; a server validating locally with cached keys may accept a good token",
        ),
    ]);
    let Some(e) = suite.endpoint_or_skip(t.smtp.as_deref(), "--smtp", infos.clone(), out) else {
        return;
    };
    let probe = Recorder::new();
    if let Err(err) = Wire::connect(&e, Some(&suite.tls), &probe, t.timeout).await {
        for i in infos {
            out.push(skipped(
                i,
                &format!("the SMTP submission server does not answer: {err:#}"),
            ));
        }
        return;
    }
    let e = &e;
    let mut infos = infos.into_iter();
    let mut next = || {
        // invariant: one info per case below, in the same order.
        infos
            .next()
            .unwrap_or_else(|| unreachable!("SMTP case list and runs out of step"))
    };

    let rec = Recorder::new();
    out.push(
        run_case(next(), rec.clone(), async {
            let (mut w, keywords) = connect(suite, e, Some(&suite.tls), &rec).await?;
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
        })
        .await,
    );

    for (mech, inline) in [("XOAUTH2", true), ("XOAUTH2", false), ("OAUTHBEARER", true)] {
        let rec = Recorder::new();
        out.push(
            run_case(next(), rec.clone(), async {
                let (mut w, _) = connect(suite, e, Some(&suite.tls), &rec).await?;
                let token = suite.token(&rec, &t.idnat, None);
                let payload = if mech == "XOAUTH2" {
                    xoauth2(&t.mailbox, &token, "valid token, redacted")
                } else {
                    oauthbearer(&t.mailbox, e, &token, "valid token, redacted")
                };
                let reply = if mech == "XOAUTH2" { "" } else { "AQ==" };
                let a = authenticate(&mut w, mech, payload, inline, reply).await?;
                quit(&mut w).await;
                Ok(verdict(
                    a.code == 235,
                    format!("answer: {} {}", a.code, a.text),
                ))
            })
            .await,
        );
    }

    for (flaw, _, _, _, _) in FLAWS {
        let rec = Recorder::new();
        out.push(
            run_case(next(), rec.clone(), async {
                let label = format!("{flaw:?} token, redacted");
                let a = xoauth2_once(suite, e, &rec, &t.idnat, Some(*flaw), &label).await?;
                Ok(verdict(
                    (500..600).contains(&a.code),
                    format!("answer: {} {}", a.code, a.text),
                ))
            })
            .await,
        );
    }

    let rec = Recorder::new();
    out.push(
        run_case(next(), rec.clone(), async {
            let label = format!("valid token of {}, redacted", t.other_idnat);
            let a = xoauth2_once(suite, e, &rec, &t.other_idnat, None, &label).await?;
            Ok(verdict(
                (500..600).contains(&a.code),
                format!("answer: {} {}", a.code, a.text),
            ))
        })
        .await,
    );

    let rec = Recorder::new();
    out.push(
        run_case(next(), rec.clone(), async {
            let a = xoauth2_once(
                suite,
                e,
                &rec,
                &t.idnat,
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
        })
        .await,
    );

    for own in [true, false] {
        let rec = Recorder::new();
        out.push(
            run_case(next(), rec.clone(), async {
                let (mut w, _) = connect(suite, e, Some(&suite.tls), &rec).await?;
                let token = suite.token(&rec, &t.idnat, None);
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
            })
            .await,
        );
    }

    let i = next();
    match (&suite.tls_certificate, &t.certificate) {
        (Some(tls), Some(cert)) => {
            let rec = Recorder::new();
            out.push(
                run_case(i, rec.clone(), async {
                    let (mut w, keywords) = connect(suite, e, Some(tls), &rec).await?;
                    let announced = auth_mechanisms(&keywords).iter().any(|m| m == "EXTERNAL");
                    let authz = cert
                        .mailbox
                        .as_deref()
                        .map(|m| B64.encode(m))
                        .unwrap_or_else(|| "=".into());
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
                })
                .await,
            );
        }
        _ => out.push(skipped(i, "no --certificate/--key given")),
    }

    let i = next();
    match (&suite.tls_bad_certificate, &t.bad_certificate) {
        (Some(tls), Some(cert)) => {
            let rec = Recorder::new();
            out.push(
                run_case(i, rec.clone(), async {
                    let (mut w, _) = match connect(suite, e, Some(tls), &rec).await {
                        Ok(c) => c,
                        Err(err) => return Ok(Outcome::Pass(format!("refused: {err:#}"))),
                    };
                    let authz = cert
                        .mailbox
                        .as_deref()
                        .map(|m| B64.encode(m))
                        .unwrap_or_else(|| "=".into());
                    w.send(&format!("AUTH EXTERNAL {authz}")).await?;
                    let reply = w.smtp_reply().await;
                    quit(&mut w).await;
                    Ok(match reply {
                        Ok((code, text)) => {
                            verdict(code != 235, format!("answer: {code} {}", text.join(" / ")))
                        }
                        Err(err) => Outcome::Pass(format!("connection ended: {err:#}")),
                    })
                })
                .await,
            );
        }
        _ => out.push(skipped(i, "no --bad-certificate/--bad-key given")),
    }

    let rec = Recorder::new();
    out.push(run_case(next(), rec.clone(), python_tls::refuses(e, "1.1", &rec)).await);

    let rec = Recorder::new();
    out.push(
        run_case(next(), rec.clone(), async {
            let (mut w, _) = connect(suite, e, Some(&suite.tls), &rec).await?;
            let token = suite.token(&rec, &t.idnat, None);
            rec.note("the PSC stand-in now answers 503 to everything");
            suite.psc.set_down(true);
            let a = authenticate(
                &mut w,
                "XOAUTH2",
                xoauth2(&t.mailbox, &token, "valid token, redacted"),
                true,
                "",
            )
            .await;
            suite.psc.set_down(false);
            rec.note("the PSC stand-in answers again");
            let a = a?;
            quit(&mut w).await;
            Ok(verdict(
                a.code == 235 || a.code == 454,
                format!("answer while PSC was down: {} {}", a.code, a.text),
            ))
        })
        .await,
    );
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

async fn starttls_cases(suite: &Suite<'_>, out: &mut Vec<CaseResult>) {
    let t = suite.target;
    let ehlo_info = CaseInfo::new(
        "smtp-starttls-ehlo",
        "EHLO before and after STARTTLS",
        SECTION_SASL,
        "AUTH XOAUTH2 OAUTHBEARER in EHLO only after TLS; before it, STARTTLS and no AUTH",
    );
    let auth_info = CaseInfo::new(
        "smtp-starttls-auth-before-tls",
        "AUTH before STARTTLS (downgrade)",
        SECTION_SASL,
        "No authentication before TLS: a valid token sent in clear text is refused",
    );
    let Some(e) = suite.endpoint_or_skip(
        t.smtp_starttls.as_deref(),
        "--smtp-starttls",
        vec![ehlo_info, auth_info],
        out,
    ) else {
        return;
    };
    let probe = Recorder::new();
    if let Err(err) = Wire::connect(&e, None, &probe, t.timeout).await {
        for i in [ehlo_info, auth_info] {
            out.push(skipped(
                i,
                &format!("the SMTP STARTTLS port does not answer: {err:#}"),
            ));
        }
        return;
    }
    let e = &e;

    let rec = Recorder::new();
    out.push(
        run_case(ehlo_info, rec.clone(), async {
            let (mut w, before) = connect(suite, e, None, &rec).await?;
            let before_mechs = auth_mechanisms(&before);
            let offers_starttls = before.iter().any(|k| k.eq_ignore_ascii_case("STARTTLS"));
            w.send("STARTTLS").await?;
            let (code, text) = w.smtp_reply().await?;
            if code != 220 {
                return Ok(Outcome::Fail(format!("STARTTLS refused: {code} {}", text.join(" / "))));
            }
            w.handshake(&suite.tls).await?;
            let after = auth_mechanisms(&ehlo(&mut w).await?);
            quit(&mut w).await;
            let after_ok = ["XOAUTH2", "OAUTHBEARER"].iter().all(|m| after.iter().any(|x| x == m));
            Ok(verdict(
                offers_starttls && before_mechs.is_empty() && after_ok,
                format!("before STARTTLS: AUTH {before_mechs:?}, STARTTLS offered: {offers_starttls}; after: AUTH {after:?}"),
            ))
        })
        .await,
    );

    let rec = Recorder::new();
    out.push(
        run_case(auth_info, rec.clone(), async {
            let (mut w, _) = connect(suite, e, None, &rec).await?;
            let token = suite.token(&rec, &t.idnat, None);
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
        })
        .await,
    );
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
