//! IMAP cases: capabilities, SASL XOAUTH2/OAUTHBEARER/EXTERNAL with good and bad
//! credentials, error challenges, STARTTLS downgrades and old TLS versions.

use std::sync::Arc;

use anyhow::bail;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::ClientConfig;

use super::wire::{Endpoint, Recorder, Wire};
use super::{
    CaseInfo, CaseResult, FLAWS, Outcome, SECTION_ACCESS, SECTION_PSC, SECTION_SASL, SECTION_TLS,
    Suite, challenge_status, decode_challenge, oauthbearer, python_tls, run_case, skipped, verdict,
    xoauth2,
};
use crate::psc_standin::Flaw;

/// How long to wait for the answer to a command sent in place of a challenge reply.
const NOOP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How the client treats an error challenge (`+ <base64>`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnChallenge {
    /// An empty line (XOAUTH2, RFC 7628 says the same for any reply).
    Empty,
    /// `AQ==` (0x01), as RFC 7628 asks for OAUTHBEARER.
    CtrlA,
    /// Say nothing for up to this long: Thunderbird's behaviour.
    Silence(std::time::Duration),
    /// Send a new command (`tag NOOP`) instead of an answer.
    NewCommand,
}

/// What came back from an AUTHENTICATE.
struct AuthExchange {
    tagged: String,
    /// The decoded error challenge, when one was sent.
    challenge: Option<Option<serde_json::Value>>,
    /// Lines of the NOOP sent in place of a reply (NewCommand).
    after: Option<String>,
}

impl AuthExchange {
    fn ok(&self) -> bool {
        status(&self.tagged) == "OK"
    }
}

/// `A1 OK …` → `OK`.
fn status(tagged: &str) -> &str {
    tagged.split(' ').nth(1).unwrap_or("")
}

fn capabilities(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("* CAPABILITY "))
        .flat_map(|l| l.split(' ').map(|c| c.to_ascii_uppercase()))
        .collect()
}

async fn connect(
    suite: &Suite<'_>,
    endpoint: &Endpoint,
    tls: Option<&Arc<ClientConfig>>,
    rec: &Recorder,
) -> anyhow::Result<Wire> {
    let mut wire = Wire::connect(endpoint, tls, rec, suite.target.timeout).await?;
    let greeting = wire.read_line().await?;
    if !greeting.starts_with("* OK") {
        bail!("unexpected greeting: {greeting}");
    }
    Ok(wire)
}

async fn capability(wire: &mut Wire, tag: &str) -> anyhow::Result<Vec<String>> {
    wire.send(&format!("{tag} CAPABILITY")).await?;
    let (lines, tagged) = wire.imap_tagged(tag).await?;
    if status(&tagged) != "OK" {
        bail!("CAPABILITY failed: {tagged}");
    }
    Ok(capabilities(&lines))
}

/// `AUTHENTICATE mech` with the initial response inline (SASL-IR) or after an empty
/// continuation.
async fn authenticate(
    wire: &mut Wire,
    tag: &str,
    mechanism: &str,
    (payload, shown): (String, String),
    inline: bool,
    on_challenge: OnChallenge,
) -> anyhow::Result<AuthExchange> {
    if inline {
        wire.send_shown(
            &format!("{tag} AUTHENTICATE {mechanism} {payload}"),
            &format!("{tag} AUTHENTICATE {mechanism} {shown}"),
        )
        .await?;
    } else {
        wire.send(&format!("{tag} AUTHENTICATE {mechanism}"))
            .await?;
        let line = wire.read_line().await?;
        if !line.starts_with('+') {
            if line.starts_with(&format!("{tag} ")) {
                return Ok(AuthExchange {
                    tagged: line,
                    challenge: None,
                    after: None,
                });
            }
            bail!("expected a continuation request, got {line}");
        }
        wire.send_shown(&payload, &shown).await?;
    }
    let prefix = format!("{tag} ");
    let mut challenge = None;
    let mut after = None;
    loop {
        let line = wire.read_line().await?;
        if line.starts_with(&prefix) {
            if on_challenge == OnChallenge::NewCommand && challenge.is_some() {
                // The NOOP is answered, or it was swallowed as the SASL reply.
                let noop = format!("{tag}N ");
                while let Ok(Some(l)) = wire.read_line_opt(NOOP_WAIT).await {
                    if l.starts_with(&noop) {
                        after = Some(l);
                        break;
                    }
                }
            }
            return Ok(AuthExchange {
                tagged: line,
                challenge,
                after,
            });
        }
        if let Some(rest) = line.strip_prefix('+') {
            if challenge.is_some() {
                bail!("a second continuation request after the error challenge");
            }
            challenge = Some(decode_challenge(wire.recorder(), rest));
            match on_challenge {
                OnChallenge::Empty => wire.send("").await?,
                OnChallenge::CtrlA => wire.send("AQ==").await?,
                OnChallenge::Silence(wait) => {
                    wire.recorder()
                        .note("the client stays silent, as Thunderbird does");
                    let tagged = wire.read_line_opt(wait).await?;
                    let Some(tagged) = tagged else {
                        bail!("the server closed the connection instead of failing the command");
                    };
                    if !tagged.starts_with(&prefix) {
                        bail!("expected the tagged failure, got {tagged}");
                    }
                    return Ok(AuthExchange {
                        tagged,
                        challenge,
                        after,
                    });
                }
                OnChallenge::NewCommand => wire.send(&format!("{tag}N NOOP")).await?,
            }
        }
    }
}

/// One AUTHENTICATE (initial response inline) on a fresh TLS connection, then LOGOUT: the
/// shape of most authentication cases.
async fn authenticate_once(
    suite: &Suite<'_>,
    e: &Endpoint,
    rec: &Recorder,
    mechanism: &str,
    payload: (String, String),
    on_challenge: OnChallenge,
) -> anyhow::Result<AuthExchange> {
    let mut w = connect(suite, e, Some(&suite.tls), rec).await?;
    let a = authenticate(&mut w, "A1", mechanism, payload, true, on_challenge).await?;
    let _ = w.send("A2 LOGOUT").await;
    Ok(a)
}

/// An expired token for the mailbox holder, presented with `mechanism`: the way to draw
/// the error challenge.
async fn expired_token(
    suite: &Suite<'_>,
    e: &Endpoint,
    rec: &Recorder,
    mechanism: &str,
    on_challenge: OnChallenge,
) -> anyhow::Result<AuthExchange> {
    let t = suite.target;
    let token = suite.token(rec, &t.idnat, Some(Flaw::Expired));
    let label = "expired token, redacted";
    let payload = if mechanism == "OAUTHBEARER" {
        oauthbearer(&t.mailbox, e, &token, label)
    } else {
        xoauth2(&t.mailbox, &token, label)
    };
    authenticate_once(suite, e, rec, mechanism, payload, on_challenge).await
}

pub(crate) async fn run(suite: &Suite<'_>, out: &mut Vec<CaseResult>) {
    let all = CaseInfo::new(
        "imap",
        "IMAP cases",
        SECTION_SASL,
        "IMAP interface of the LPS API",
    );
    let Some(endpoint) =
        suite.endpoint_or_skip(suite.target.imap.as_deref(), "--imap", vec![all], out)
    else {
        // The STARTTLS port is a case of its own: tried whenever its address is given.
        starttls_cases(suite, out).await;
        return;
    };
    let t = suite.target;
    let e = &endpoint;

    let i = CaseInfo::new(
        "imap-capabilities-tls",
        "Capabilities on implicit TLS",
        SECTION_SASL,
        "Before authentication on TLS: IMAP4rev1, SASL-IR, AUTH=XOAUTH2, AUTH=OAUTHBEARER and LOGINDISABLED; no password mechanism (PLAIN, LOGIN)",
    );
    let rec = Recorder::new();
    out.push(
        run_case(i, rec.clone(), async {
            let mut w = connect(suite, e, Some(&suite.tls), &rec).await?;
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
        })
        .await,
    );

    let i = CaseInfo::new(
        "imap-login-refused",
        "LOGIN refused on TLS",
        SECTION_SASL,
        "LOGINDISABLED: a user name and password never open a mailbox",
    );
    let rec = Recorder::new();
    out.push(
        run_case(i, rec.clone(), async {
            let mut w = connect(suite, e, Some(&suite.tls), &rec).await?;
            w.send(&format!("L1 LOGIN {} \"password\"", t.mailbox))
                .await?;
            let (_, tagged) = w.imap_tagged("L1").await?;
            let _ = w.send("L2 LOGOUT").await;
            Ok(verdict(
                status(&tagged) != "OK",
                format!("LOGIN answered: {tagged}"),
            ))
        })
        .await,
    );

    // Good tokens, every way a client may present them.
    for (id, title, mech, inline) in [
        (
            "imap-xoauth2-sasl-ir",
            "XOAUTH2, initial response inline (SASL-IR)",
            "XOAUTH2",
            true,
        ),
        (
            "imap-xoauth2-continuation",
            "XOAUTH2, response after the continuation",
            "XOAUTH2",
            false,
        ),
        (
            "imap-oauthbearer",
            "OAUTHBEARER (RFC 7628)",
            "OAUTHBEARER",
            true,
        ),
    ] {
        let i = CaseInfo::new(
            id,
            title,
            SECTION_SASL,
            "A valid PSC token for the mailbox holder opens the mailbox (user = mailbox address, identity = SubjectNameID)",
        );
        let rec = Recorder::new();
        out.push(
            run_case(i, rec.clone(), async {
                let mut w = connect(suite, e, Some(&suite.tls), &rec).await?;
                let token = suite.token(&rec, &t.idnat, None);
                let payload = if mech == "XOAUTH2" {
                    xoauth2(&t.mailbox, &token, "valid token, redacted")
                } else {
                    oauthbearer(&t.mailbox, e, &token, "valid token, redacted")
                };
                let a =
                    authenticate(&mut w, "A1", mech, payload, inline, OnChallenge::Empty).await?;
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
            })
            .await,
        );
    }

    // Bad tokens: each must be refused.
    for (flaw, id, _, title, requirement) in FLAWS {
        let i = CaseInfo::new(id, title, SECTION_PSC, requirement);
        let rec = Recorder::new();
        out.push(
            run_case(
                i,
                rec.clone(),
                refused_token(suite, e, &rec, *flaw, &t.idnat),
            )
            .await,
        );
    }

    let i = CaseInfo::new(
        "imap-wrong-idnat",
        "Valid token of another professional",
        SECTION_ACCESS,
        "A PSC identity opens only a personal mailbox it owns or an organisational mailbox it was granted; never another professional's",
    );
    let rec = Recorder::new();
    out.push(
        run_case(i, rec.clone(), async {
            let token = suite.token(&rec, &t.other_idnat, None);
            let label = format!("valid token of {}, redacted", t.other_idnat);
            let a = authenticate_once(
                suite,
                e,
                &rec,
                "XOAUTH2",
                xoauth2(&t.mailbox, &token, &label),
                OnChallenge::Empty,
            )
            .await?;
            Ok(verdict(
                status(&a.tagged) == "NO",
                format!("answer: {}", a.tagged),
            ))
        })
        .await,
    );

    let i = CaseInfo::new(
        "imap-xoauth2-error-challenge",
        "XOAUTH2 error challenge format",
        SECTION_SASL,
        "On failure: + base64({\"status\":\"401\",\"schemes\":\"bearer\",…}), the client answers with an empty line, then tagged NO [AUTHENTICATIONFAILED]",
    );
    let rec = Recorder::new();
    out.push(
        run_case(i, rec.clone(), async {
            let a = expired_token(suite, e, &rec, "XOAUTH2", OnChallenge::Empty).await?;
            Ok(challenge_verdict(&a, "401"))
        })
        .await,
    );

    let i = CaseInfo::new(
        "imap-oauthbearer-error-challenge",
        "OAUTHBEARER error challenge format",
        SECTION_SASL,
        "On failure: + base64({\"status\":\"invalid_token\",…}), the client answers 0x01, then tagged NO [AUTHENTICATIONFAILED]",
    );
    let rec = Recorder::new();
    out.push(
        run_case(i, rec.clone(), async {
            let a = expired_token(suite, e, &rec, "OAUTHBEARER", OnChallenge::CtrlA).await?;
            Ok(challenge_verdict(&a, "invalid_token"))
        })
        .await,
    );

    let i = CaseInfo::new(
        "imap-challenge-unanswered",
        "Error challenge left unanswered (Thunderbird)",
        SECTION_SASL,
        "A client that never answers the error challenge gets the tagged failure after a timeout of a few seconds",
    );
    let rec = Recorder::new();
    out.push(
        run_case(i, rec.clone(), async {
            let a = expired_token(
                suite,
                e,
                &rec,
                "XOAUTH2",
                OnChallenge::Silence(t.unanswered_challenge_wait),
            )
            .await?;
            Ok(verdict(
                status(&a.tagged) == "NO",
                format!("answer without a reply: {}", a.tagged),
            ))
        })
        .await,
    );

    let i = CaseInfo::new(
        "imap-challenge-new-command",
        "New command instead of a challenge reply",
        SECTION_SASL,
        "Any reply, including a new command, ends the exchange with the failure; the session stays usable",
    );
    let rec = Recorder::new();
    out.push(
        run_case(i, rec.clone(), async {
            let a = expired_token(suite, e, &rec, "XOAUTH2", OnChallenge::NewCommand).await?;
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
        })
        .await,
    );

    let i = CaseInfo::new(
        "imap-psc-unavailable",
        "PSC unavailable",
        SECTION_PSC,
        "PSC unreachable or answering 5xx: a temporary failure (NO [UNAVAILABLE]), never a definitive refusal; a server validating locally with cached keys may accept a good token",
    );
    let rec = Recorder::new();
    out.push(
        run_case(i, rec.clone(), async {
            let mut w = connect(suite, e, Some(&suite.tls), &rec).await?;
            let token = suite.token(&rec, &t.idnat, None);
            rec.note("the PSC stand-in now answers 503 to everything");
            suite.psc.set_down(true);
            let a = authenticate(
                &mut w,
                "A1",
                "XOAUTH2",
                xoauth2(&t.mailbox, &token, "valid token, redacted"),
                true,
                OnChallenge::Empty,
            )
            .await;
            suite.psc.set_down(false);
            rec.note("the PSC stand-in answers again");
            let a = a?;
            let _ = w.send("A2 LOGOUT").await;
            Ok(verdict(
                a.ok() || (status(&a.tagged) == "NO" && a.tagged.contains("[UNAVAILABLE]")),
                format!("answer while PSC was down: {}", a.tagged),
            ))
        })
        .await,
    );

    let i = CaseInfo::new(
        "imap-external-without-certificate",
        "EXTERNAL without a client certificate",
        SECTION_SASL,
        "EXTERNAL takes its identity from the TLS client certificate: none presented, nothing opens",
    );
    let rec = Recorder::new();
    out.push(
        run_case(i, rec.clone(), async {
            let mut w = connect(suite, e, Some(&suite.tls), &rec).await?;
            let authz = suite
                .target
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
        })
        .await,
    );

    let i = CaseInfo::new(
        "imap-external-certificate",
        "AUTH_CLI certificate (EXTERNAL)",
        SECTION_ACCESS,
        "A trusted IGC-Santé AUTH_CLI certificate opens the applicative mailbox bound to it; AUTH=EXTERNAL is announced once it was presented",
    );
    match (&suite.tls_certificate, &t.certificate) {
        (Some(tls), Some(cert)) => {
            let rec = Recorder::new();
            out.push(
                run_case(i, rec.clone(), async {
                    let mut w = connect(suite, e, Some(tls), &rec).await?;
                    let caps = capability(&mut w, "C1").await?;
                    let announced = caps.iter().any(|c| c == "AUTH=EXTERNAL");
                    let authz = cert
                        .mailbox
                        .as_deref()
                        .map(|m| B64.encode(m))
                        .unwrap_or_else(|| "=".to_owned());
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
                        format!(
                            "AUTH=EXTERNAL announced: {announced}; authenticated; SELECT INBOX: {selected}"
                        ),
                    ))
                })
                .await,
            );
        }
        _ => out.push(skipped(i, "no --certificate/--key given")),
    }

    let i = CaseInfo::new(
        "imap-external-bad-certificate",
        "Refused AUTH_CLI certificate",
        SECTION_ACCESS,
        "An expired, revoked, foreign or server-only certificate opens nothing (refused at the handshake or by EXTERNAL)",
    );
    match (&suite.tls_bad_certificate, &t.bad_certificate) {
        (Some(tls), Some(cert)) => {
            let rec = Recorder::new();
            out.push(
                run_case(i, rec.clone(), async {
                    let mut w = match connect(suite, e, Some(tls), &rec).await {
                        Ok(w) => w,
                        Err(err) => {
                            return Ok(Outcome::Pass(format!(
                                "refused at the TLS handshake: {err:#}"
                            )));
                        }
                    };
                    let authz = cert
                        .mailbox
                        .as_deref()
                        .map(|m| B64.encode(m))
                        .unwrap_or_else(|| "=".to_owned());
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
                })
                .await,
            );
        }
        _ => out.push(skipped(i, "no --bad-certificate/--bad-key given")),
    }

    for (id, version, title) in [
        ("imap-tls10-refused", "1.0", "TLS 1.0 refused"),
        ("imap-tls11-refused", "1.1", "TLS 1.1 refused"),
    ] {
        let i = CaseInfo::new(
            id,
            title,
            SECTION_TLS,
            "TLS 1.2 minimum: 1.0 and 1.1 handshakes fail",
        );
        let rec = Recorder::new();
        out.push(run_case(i, rec.clone(), python_tls::refuses(e, version, &rec)).await);
    }

    starttls_cases(suite, out).await;
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

async fn refused_token(
    suite: &Suite<'_>,
    e: &Endpoint,
    rec: &Recorder,
    flaw: Flaw,
    idnat: &str,
) -> anyhow::Result<Outcome> {
    let token = suite.token(rec, idnat, Some(flaw));
    let label = format!("{flaw:?} token, redacted");
    let a = authenticate_once(
        suite,
        e,
        rec,
        "XOAUTH2",
        xoauth2(&suite.target.mailbox, &token, &label),
        OnChallenge::Empty,
    )
    .await?;
    Ok(verdict(
        status(&a.tagged) == "NO",
        format!("answer: {}", a.tagged),
    ))
}

async fn starttls_cases(suite: &Suite<'_>, out: &mut Vec<CaseResult>) {
    let t = suite.target;
    let caps_info = CaseInfo::new(
        "imap-starttls-capabilities",
        "Capabilities before and after STARTTLS",
        SECTION_SASL,
        "On port 143 before STARTTLS: only STARTTLS and LOGINDISABLED, no AUTH=; after it: SASL-IR, AUTH=XOAUTH2, AUTH=OAUTHBEARER",
    );
    let auth_info = CaseInfo::new(
        "imap-starttls-authenticate-before-tls",
        "AUTHENTICATE before STARTTLS (downgrade)",
        SECTION_SASL,
        "No authentication before TLS: a valid token sent in clear text is refused",
    );
    let login_info = CaseInfo::new(
        "imap-starttls-login-before-tls",
        "LOGIN before STARTTLS (downgrade)",
        SECTION_SASL,
        "LOGINDISABLED: LOGIN in clear text is refused",
    );
    let Some(e) = suite.endpoint_or_skip(
        t.imap_starttls.as_deref(),
        "--imap-starttls",
        vec![caps_info, auth_info, login_info],
        out,
    ) else {
        return;
    };
    let e = &e;

    let rec = Recorder::new();
    out.push(
        run_case(caps_info, rec.clone(), async {
            let mut w = connect(suite, e, None, &rec).await?;
            let before = capability(&mut w, "C1").await?;
            let before_ok = before.iter().any(|c| c == "STARTTLS")
                && before.iter().any(|c| c == "LOGINDISABLED")
                && !before.iter().any(|c| c.starts_with("AUTH="));
            w.send("C2 STARTTLS").await?;
            let (_, tagged) = w.imap_tagged("C2").await?;
            if status(&tagged) != "OK" {
                return Ok(Outcome::Fail(format!("STARTTLS refused: {tagged}")));
            }
            w.handshake(&suite.tls).await?;
            let after = capability(&mut w, "C3").await?;
            let after_ok = ["SASL-IR", "AUTH=XOAUTH2", "AUTH=OAUTHBEARER"]
                .iter()
                .all(|c| after.iter().any(|x| x == c));
            let _ = w.send("C4 LOGOUT").await;
            Ok(verdict(
                before_ok && after_ok,
                format!("before STARTTLS: {before:?}; after: {after:?}"),
            ))
        })
        .await,
    );

    let rec = Recorder::new();
    out.push(
        run_case(auth_info, rec.clone(), async {
            let mut w = connect(suite, e, None, &rec).await?;
            let token = suite.token(&rec, &t.idnat, None);
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
                Some(l) if l.starts_with("A1 ") => {
                    verdict(status(&l) != "OK", format!("answer: {l}"))
                }
                Some(l) if l.starts_with('+') => Outcome::Fail(format!(
                    "the server went on with the exchange in clear text: {l}"
                )),
                Some(l) => Outcome::Fail(format!("unexpected answer: {l}")),
            })
        })
        .await,
    );

    let rec = Recorder::new();
    out.push(
        run_case(login_info, rec.clone(), async {
            let mut w = connect(suite, e, None, &rec).await?;
            w.send(&format!("L1 LOGIN {} \"password\"", t.mailbox))
                .await?;
            let (_, tagged) = w.imap_tagged("L1").await?;
            let _ = w.send("L2 LOGOUT").await;
            Ok(verdict(
                status(&tagged) != "OK",
                format!("answer: {tagged}"),
            ))
        })
        .await,
    );
}

/// Looks for a message by Message-ID in the mailbox under test's INBOX (logging in with
/// a good token); returns the `X-MSS-*` header lines of the message when found.
pub(crate) async fn find_delivered(
    suite: &Suite<'_>,
    rec: &Recorder,
    message_id: &str,
) -> anyhow::Result<Option<Vec<String>>> {
    let t = suite.target;
    let Some(address) = t.imap.as_deref() else {
        bail!("no --imap address to check the delivery");
    };
    let e = suite.endpoint(address)?;
    rec.note("checking the delivery over IMAP");
    let mut w = connect(suite, &e, Some(&suite.tls), rec).await?;
    let token = suite.token(rec, &t.idnat, None);
    let a = authenticate(
        &mut w,
        "V1",
        "XOAUTH2",
        xoauth2(&t.mailbox, &token, "valid token, redacted"),
        true,
        OnChallenge::Empty,
    )
    .await?;
    if !a.ok() {
        bail!("cannot log in to check the delivery: {}", a.tagged);
    }
    w.send("V2 SELECT INBOX").await?;
    w.imap_tagged("V2").await?;
    w.send(&format!("V3 UID SEARCH HEADER Message-ID \"{message_id}\""))
        .await?;
    let (lines, _) = w.imap_tagged("V3").await?;
    let uid = lines
        .iter()
        .filter_map(|l| l.strip_prefix("* SEARCH"))
        .flat_map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .next_back();
    let Some(uid) = uid else {
        let _ = w.send("V9 LOGOUT").await;
        return Ok(None);
    };
    w.send(&format!(
        "V4 UID FETCH {uid} (BODY.PEEK[HEADER.FIELDS (X-MSS-CODECDA X-MSS-INS X-MSS-NIL X-MSS-MES)])"
    ))
    .await?;
    let (lines, _) = w.imap_tagged("V4").await?;
    let _ = w.send("V9 LOGOUT").await;
    Ok(Some(
        lines
            .into_iter()
            .filter(|l| l.to_ascii_uppercase().starts_with("X-MSS-"))
            .collect(),
    ))
}
