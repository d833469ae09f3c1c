//! IMAP cases: capabilities, SASL XOAUTH2/OAUTHBEARER/EXTERNAL with good and bad
//! credentials, error challenges, STARTTLS downgrades and old TLS versions. The cases
//! are in [`cases`]; here, the client steps they share.

mod cases;

use std::sync::Arc;

use anyhow::bail;
use rustls::ClientConfig;

use crate::case::{CaseCtx, CaseResult, Suite, infos, run_cases};
use crate::psc_standin::Flaw;
use crate::sasl::{decode_challenge, oauthbearer, xoauth2};
use crate::wire::{Endpoint, Wire};

/// How long to wait for the answer to a command sent in place of a challenge reply.
const NOOP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The implicit TLS port's cases, then the STARTTLS port's, each group tried whenever
/// its address is given.
pub(crate) async fn run(suite: &Suite<'_>, out: &mut Vec<CaseResult>) {
    let t = suite.target;
    if let Some(e) = suite.endpoint_or_skip(t.imap.as_deref(), "--imap", [cases::ALL], out) {
        run_cases(suite, Some(&e), cases::TLS, out).await;
    }
    if let Some(e) = suite.endpoint_or_skip(
        t.imap_starttls.as_deref(),
        "--imap-starttls",
        infos(cases::STARTTLS),
        out,
    ) {
        run_cases(suite, Some(&e), cases::STARTTLS, out).await;
    }
}

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
    ctx: &CaseCtx<'_>,
    endpoint: &Endpoint,
    tls: Option<&Arc<ClientConfig>>,
) -> anyhow::Result<Wire> {
    let mut wire = Wire::connect(endpoint, tls, &ctx.rec, ctx.target.timeout).await?;
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
    ctx: &CaseCtx<'_>,
    e: &Endpoint,
    mechanism: &str,
    payload: (String, String),
    on_challenge: OnChallenge,
) -> anyhow::Result<AuthExchange> {
    let mut w = connect(ctx, e, Some(&ctx.suite.tls)).await?;
    let a = authenticate(&mut w, "A1", mechanism, payload, true, on_challenge).await?;
    let _ = w.send("A2 LOGOUT").await;
    Ok(a)
}

/// An expired token for the mailbox holder, presented with `mechanism`: the way to draw
/// the error challenge.
async fn expired_token(
    ctx: &CaseCtx<'_>,
    mechanism: &str,
    on_challenge: OnChallenge,
) -> anyhow::Result<AuthExchange> {
    let t = ctx.target;
    let e = ctx.endpoint()?;
    let token = ctx.token(&t.idnat, Some(Flaw::Expired));
    let label = "expired token, redacted";
    let payload = if mechanism == "OAUTHBEARER" {
        oauthbearer(&t.mailbox, e, &token, label)
    } else {
        xoauth2(&t.mailbox, &token, label)
    };
    authenticate_once(ctx, e, mechanism, payload, on_challenge).await
}

/// Looks for a message by Message-ID in the mailbox under test's INBOX (logging in with
/// a good token); returns the `X-MSS-*` header lines of the message when found.
pub(crate) async fn find_delivered(
    ctx: &CaseCtx<'_>,
    message_id: &str,
) -> anyhow::Result<Option<Vec<String>>> {
    let t = ctx.target;
    let Some(address) = t.imap.as_deref() else {
        bail!("no --imap address to check the delivery");
    };
    let e = ctx.suite.endpoint(address)?;
    ctx.rec.note("checking the delivery over IMAP");
    let mut w = connect(ctx, &e, Some(&ctx.suite.tls)).await?;
    let token = ctx.token(&t.idnat, None);
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
