//! The LPS interface: SASL authentication (RFC 4954) against PSC tokens or the TLS
//! client certificate, and who an authenticated identity may send as.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::COMMAND_TIMEOUT;
use super::io::WireError;
use super::session::{AllowedSenders, MAX_COMMAND_LINE, Next, Refusal, Session};
use crate::auth::{AuthFailure, Mechanism, Peer, Protocol};

/// `AUTH mechanism [initial-response]`; `args` is what follows the verb.
pub(super) async fn auth(s: &mut Session, args: &[u8]) -> Result<Next, WireError> {
    let text = String::from_utf8_lossy(args);
    let mut words = text.split_ascii_whitespace();
    let (Some(name), initial, None) = (words.next(), words.next(), words.next()) else {
        s.audit_refusal(None, None, "AUTH syntax error").await;
        s.refuse(&Refusal::new(
            501,
            [5, 5, 4],
            "Syntax: AUTH mechanism [initial-response]",
        ));
        return Ok(Next::Continue);
    };
    let Some(mechanism) = Mechanism::parse(name) else {
        let reason = format!(
            "AUTH with an unsupported mechanism {}",
            super::io::one_line(name)
                .chars()
                .take(32)
                .collect::<String>()
        );
        s.audit_refusal(None, None, &reason).await;
        s.refuse(&Refusal::new(
            504,
            [5, 5, 4],
            "Unrecognized authentication type",
        ));
        return Ok(Next::Continue);
    };
    let encoded = match initial {
        Some(i) => i.to_owned(),
        None => {
            s.wire.queue(b"334 \r\n");
            // Within what is left of the login timeout.
            let wait = s
                .login_left()
                .map_or(COMMAND_TIMEOUT, |left| left.min(COMMAND_TIMEOUT));
            let mut line = Vec::new();
            s.wire.read_line(&mut line, MAX_COMMAND_LINE, wait).await?;
            String::from_utf8_lossy(&line).trim().to_owned()
        }
    };
    if encoded == "*" {
        s.audit_refusal(None, None, "AUTH cancelled by the client")
            .await;
        s.refuse(&Refusal::new(501, [5, 7, 0], "Authentication cancelled"));
        return Ok(Next::Continue);
    }
    let response = if encoded == "=" || encoded.is_empty() {
        Vec::new()
    } else {
        match BASE64.decode(encoded.as_bytes()) {
            Ok(r) => r,
            // EXTERNAL clients have been seen sending the address in clear text.
            Err(_) if mechanism == Mechanism::External => encoded.into_bytes(),
            Err(_) => {
                s.audit_refusal(None, None, "invalid base64 in the SASL response")
                    .await;
                s.refuse(&Refusal::new(
                    501,
                    [5, 5, 2],
                    "Invalid base64 in the SASL response",
                ));
                return Ok(Next::Continue);
            }
        }
    };
    let peer = Peer {
        protocol: Protocol::Submission,
        addr: s.peer,
        certificate: s.certificate.identity().cloned(),
    };
    let net = s.shared.context.net.clone();
    let verdict = net
        .authenticate(&s.shared.context.auth, mechanism, &response, &peer)
        .await;
    match verdict.result {
        Ok(done) => {
            if let Err(refused) = s.admission.authenticated(&done.mailbox.address) {
                tracing::info!(%refused, mailbox = %done.mailbox.address, "connection refused");
                s.wire
                    .queue(&super::io::reply(421, [4, 7, 0], &refused.to_string()));
                let mailbox = Some(done.mailbox.address.clone());
                let protocol = s.interface.audit_name();
                let context = &s.shared.context;
                let (store, clock) = (&context.store, context.clock.as_ref());
                crate::net::audit_refusal(store, clock, protocol, s.peer, mailbox, refused).await;
                return Ok(Next::Close);
            }
            s.authenticated = Some(done);
            let metrics = &s.shared.context.metrics;
            s.counted = Some(metrics.session("SMTP", s.interface.name()));
            s.wire.queue(&super::io::reply(
                235,
                [2, 7, 0],
                "Authentication successful",
            ));
        }
        Err(AuthFailure::Temporary { reason }) => {
            // The reason may hold a database or HTTP error: for the log, as IMAP does.
            tracing::warn!(%reason, "authentication could not be decided");
            s.wire.queue(&super::io::reply(
                454,
                [4, 7, 0],
                "Temporary authentication failure, try again later",
            ));
        }
        Err(AuthFailure::Refused { reason, challenge }) => {
            if let Some(challenge) = challenge {
                // The mechanism's error challenge, then exactly one client line (or a
                // timeout: some clients never answer it) before the failure.
                s.wire
                    .queue(format!("334 {}\r\n", BASE64.encode(challenge)).as_bytes());
                let wait = s.shared.context.config.session.sasl_challenge_timeout.0;
                let mut line = Vec::new();
                match s.wire.read_line(&mut line, MAX_COMMAND_LINE, wait).await {
                    Ok(_) | Err(WireError::Timeout) => {}
                    Err(e) => return Err(e),
                }
            }
            // Kept per (address, claimed mailbox): reconnecting does not reset it.
            if !verdict.pause.is_zero() {
                tokio::time::sleep(verdict.pause).await;
            }
            // One reply for every refusal, as IMAP gives: the reason would tell a client
            // which mailboxes exist and what kind they are. The auth layer audited it.
            tracing::info!(%reason, mechanism = ?mechanism, "authentication refused");
            s.refuse(&Refusal::new(
                535,
                [5, 7, 8],
                "Authentication credentials invalid",
            ));
        }
    }
    Ok(Next::Continue)
}

/// MAIL FROM on submission: the address must be a mailbox the identity may open.
pub(super) async fn check_sender(s: &mut Session, address: &str) -> Result<String, Refusal> {
    let Some(authenticated) = &s.authenticated else {
        return Err(Refusal::new(530, [5, 7, 0], "Authentication required"));
    };
    if address.is_empty() {
        return Err(Refusal::new(
            550,
            [5, 7, 1],
            "A null reverse-path is not accepted on submission",
        ));
    }
    let address = crate::store::normalise_address(address)
        .map_err(|_| Refusal::new(501, [5, 1, 7], "Bad sender address syntax"))?;
    // Read before the decision: a withdrawal after it moves the counter past this.
    let epoch = s.shared.context.store.access_epoch().await.ok();
    if epoch.is_none() || s.allowed_senders.epoch != epoch {
        s.allowed_senders = AllowedSenders {
            epoch,
            addresses: Vec::new(),
        };
    }
    if s.allowed_senders.addresses.contains(&address) {
        return Ok(address);
    }
    match s
        .shared
        .context
        .auth
        .may_send_as(&authenticated.identity, &address)
        .await
    {
        Ok(true) => {
            if s.allowed_senders.addresses.len() < 16 {
                s.allowed_senders.addresses.push(address.clone());
            }
            Ok(address)
        }
        Ok(false) => {
            let who = authenticated.identity.audit_name().to_owned();
            let reason = format!("{address} is not a mailbox {who} may send as");
            s.audit_refusal(Some(who), Some(address.clone()), &reason)
                .await;
            Err(Refusal::new(550, [5, 7, 1], reason))
        }
        Err(e) => Err(Refusal::internal("cannot check the sender", &e)),
    }
}

/// The `From:` header of a submitted message: every author it names must be a mailbox
/// the identity may send as, or the envelope check is easily bypassed by what the
/// recipient actually reads.
pub(super) async fn check_from_header(s: &Session, body: &[u8]) -> Result<(), Refusal> {
    let Some(authenticated) = &s.authenticated else {
        return Err(Refusal::new(530, [5, 7, 0], "Authentication required"));
    };
    let who = authenticated.identity.audit_name().to_owned();
    let parsed = mail_parser::MessageParser::default().parse_headers(body);
    let authors: Vec<String> = parsed
        .as_ref()
        .and_then(|m| m.from())
        .map(|from| {
            from.iter()
                .map(|a| a.address().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    if authors.is_empty() {
        let reason = "the message has no From: header naming its author";
        s.audit_refusal(Some(who), None, reason).await;
        return Err(Refusal::new(550, [5, 7, 1], reason));
    }
    for author in authors {
        let Ok(address) = crate::store::normalise_address(&author) else {
            let reason = format!("From: header address `{author}` is not valid");
            s.audit_refusal(Some(who), None, &reason).await;
            return Err(Refusal::new(550, [5, 7, 1], reason));
        };
        if s.allowed_senders.addresses.contains(&address) {
            continue;
        }
        match s
            .shared
            .context
            .auth
            .may_send_as(&authenticated.identity, &address)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                let reason = format!("From: header {address} is not a mailbox {who} may send as");
                s.audit_refusal(Some(who), Some(address), &reason).await;
                return Err(Refusal::new(550, [5, 7, 1], reason));
            }
            Err(e) => return Err(Refusal::internal("cannot check the From: header", &e)),
        }
    }
    Ok(())
}
