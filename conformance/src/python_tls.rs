//! Old TLS versions, tried with Python's `ssl` module: rustls cannot speak TLS 1.0/1.1,
//! OpenSSL (behind Python) still can when asked at security level 0.
//!
//! A refusal only counts when the same client completes a TLS 1.2 handshake with the
//! server and its OpenSSL can offer the old version at all; otherwise the case is
//! skipped with the reason.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use crate::case::{CaseCtx, Outcome};
use crate::wire::{Direction, Endpoint, Recorder};

const SCRIPT: &str = r#"
import json, socket, ssl, sys
host, port, ver = sys.argv[1], int(sys.argv[2]), sys.argv[3]
versions = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1, "1.2": ssl.TLSVersion.TLSv1_2}
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
try:
    ctx.set_ciphers("ALL:@SECLEVEL=0")
except ssl.SSLError:
    pass
try:
    ctx.minimum_version = versions[ver]
    ctx.maximum_version = versions[ver]
except (ValueError, ssl.SSLError) as e:
    print(json.dumps({"result": "unsupported", "error": str(e)}))
    sys.exit(0)
try:
    with socket.create_connection((host, port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname=host) as t:
            print(json.dumps({"result": "connected", "version": t.version(), "cipher": t.cipher()[0]}))
except ssl.SSLError as e:
    print(json.dumps({"result": "refused", "reason": e.reason or "", "error": str(e)}))
except OSError as e:
    print(json.dumps({"result": "error", "error": str(e)}))
"#;

#[derive(Debug, Deserialize)]
struct Attempt {
    result: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    version: String,
}

async fn attempt(endpoint: &Endpoint, version: &str, rec: &Recorder) -> anyhow::Result<Attempt> {
    let (host, port) = endpoint.host_port();
    rec.record(
        Direction::Client,
        &format!("python3 ssl handshake with {host}:{port}, TLS {version} only"),
    );
    let child = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(&host)
        .arg(&port)
        .arg(version)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("running python3 (needed for the TLS 1.0/1.1 cases)")?;
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .context("python3 did not finish within 30 s")??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or("").to_owned();
    rec.record(Direction::Server, &line);
    serde_json::from_str(&line).with_context(|| {
        format!(
            "python3 said: {line} {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Pass when the server refuses a TLS `version` handshake that this client can offer.
async fn refuses(endpoint: &Endpoint, version: &str, rec: &Recorder) -> anyhow::Result<Outcome> {
    let control = match attempt(endpoint, "1.2", rec).await {
        Ok(a) => a,
        Err(e) => return Ok(Outcome::Skipped(format!("{e:#}"))),
    };
    if control.result != "connected" {
        return Ok(Outcome::Fail(format!(
            "the control TLS 1.2 handshake failed too: {}",
            control.error
        )));
    }
    let old = attempt(endpoint, version, rec).await?;
    let local = ["NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE"];
    Ok(match old.result.as_str() {
        "connected" => Outcome::Fail(format!("TLS {version} accepted ({})", old.version)),
        "unsupported" => Outcome::Skipped(format!(
            "this machine's OpenSSL cannot offer TLS {version}: {}",
            old.error
        )),
        "refused" if local.contains(&old.reason.as_str()) && !old.error.contains("alert") => {
            Outcome::Skipped(format!(
                "this machine's OpenSSL refused to offer TLS {version}: {}",
                old.error
            ))
        }
        "refused" => Outcome::Pass(format!(
            "TLS 1.2 control handshake succeeded; TLS {version} refused: {}",
            old.error
        )),
        _ => Outcome::Pass(format!(
            "TLS 1.2 control handshake succeeded; TLS {version} connection dropped: {}",
            old.error
        )),
    })
}

/// The case "TLS `version` refused" on the port under test.
pub(crate) async fn refused(ctx: &CaseCtx<'_>, version: &'static str) -> anyhow::Result<Outcome> {
    refuses(ctx.endpoint()?, version, &ctx.rec).await
}
