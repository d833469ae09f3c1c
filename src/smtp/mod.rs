//! SMTP: submission for health professionals' software (465 implicit TLS, 587
//! STARTTLS), the operator-to-operator interface of the trust space (25), local
//! delivery and the outbound queue.
//!
//! smtp-proto parses command lines and writes reply lines; everything that reads from
//! the network (lines, AUTH continuations, DATA, BDAT) is bounded here (`io`).

mod commands;
mod delivery;
pub mod dsn;
mod inbound;
mod io;
pub mod message;
pub mod outbound;
pub mod queue;
mod session;
mod submission;
pub mod trust;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::context::Context;
use crate::net::{Stop, Stream};
pub use trust::TrustList;

/// RFC 5321 §4.5.3.2: how long to wait for a command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// RFC 5321 §4.5.3.2: how long to wait for each block of DATA (and BDAT) content.
const DATA_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The addresses the SMTP listeners are bound to (port 0 in the configuration becomes
/// the port the system chose).
#[derive(Debug, Clone, Default)]
pub struct Listening {
    pub submission_tls: Vec<SocketAddr>,
    pub submission_starttls: Vec<SocketAddr>,
    pub inbound: Vec<SocketAddr>,
}

/// Which listener a connection came through: it decides TLS, AUTH and the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interface {
    /// Port 465: TLS from the first byte.
    SubmissionTls,
    /// Port 587: STARTTLS before AUTH and MAIL.
    SubmissionStartTls,
    /// Port 25 between operators: STARTTLS with a listed client certificate.
    Inbound,
}

impl Interface {
    fn name(self) -> &'static str {
        match self {
            Interface::SubmissionTls => "submission_tls",
            Interface::SubmissionStartTls => "submission_starttls",
            Interface::Inbound => "inbound",
        }
    }

    fn is_submission(self) -> bool {
        self != Interface::Inbound
    }

    /// The protocol column of the audit trail.
    pub(crate) fn audit_name(self) -> &'static str {
        if self.is_submission() {
            "submission"
        } else {
            "inbound"
        }
    }
}

/// What every SMTP session and the queue runner share.
pub(crate) struct Shared {
    pub(crate) context: Context,
    pub(crate) trust: Arc<TrustList>,
    pub(crate) shutdown: CancellationToken,
    /// Wakes the queue runner when a message was queued.
    pub(crate) queued: Arc<Notify>,
}

/// Loads the trust list, binds the `[smtp]` listeners, starts the queue runner and
/// the trust-list refresh on `stop.tasks`; returns the bound addresses.
pub(crate) async fn start(context: &Context, stop: &Stop) -> anyhow::Result<Listening> {
    let config = &context.config;
    let trust = TrustList::load(&config.trust)
        .await
        .context("loading the trust list")?;
    let (metrics, clock) = (context.metrics.clone(), context.clock.clone());
    let in_force = move |list: &TrustList| {
        let (domains, certificates) = list.size();
        metrics.trust_list(domains, certificates, clock.now());
    };
    in_force(&trust);
    trust.spawn_refresh(
        config.trust.refresh.0,
        stop.shutdown.clone(),
        &stop.tasks,
        in_force,
    );
    let shared = Arc::new(Shared {
        context: context.clone(),
        trust,
        shutdown: stop.shutdown.clone(),
        queued: Arc::new(Notify::new()),
    });
    let mut listening = Listening::default();
    for (addrs, interface, out) in [
        (
            &config.smtp.submission_tls,
            Interface::SubmissionTls,
            &mut listening.submission_tls,
        ),
        (
            &config.smtp.submission_starttls,
            Interface::SubmissionStartTls,
            &mut listening.submission_starttls,
        ),
        (
            &config.smtp.inbound,
            Interface::Inbound,
            &mut listening.inbound,
        ),
    ] {
        for addr in addrs {
            let shared = shared.clone();
            let bound =
                crate::net::listen(*addr, "SMTP", interface.name(), stop, move |tcp, peer| {
                    let span = tracing::info_span!("smtp", %peer, interface = interface.name());
                    handle(tcp, peer, interface, shared.clone()).instrument(span)
                })
                .await?;
            out.push(bound);
        }
    }
    queue::spawn_runner(shared.clone(), &stop.tasks);
    Ok(listening)
}

async fn handle(tcp: TcpStream, peer: SocketAddr, interface: Interface, shared: Arc<Shared>) {
    let admission = match shared.context.net.admit(peer.ip()) {
        Ok(a) => a,
        Err(refused) => {
            tracing::info!(%refused, "connection refused");
            // On 465 nothing can be said before the handshake; closing is the answer.
            let context = &shared.context;
            if interface != Interface::SubmissionTls {
                let mut wire = io::Wire::new(context.net.link(Stream::Plain(tcp)));
                wire.queue(&io::reply(421, [4, 7, 0], &refused.to_string()));
                wire.close().await;
            }
            let (store, clock) = (&context.store, context.clock.as_ref());
            let protocol = interface.audit_name();
            crate::net::audit_refusal(store, clock, protocol, peer, None, refused).await;
            return;
        }
    };
    commands::run(shared, tcp, peer, interface, admission).await;
}

/// One session over an in-memory stream, for the fuzz targets: the connection limits
/// and session of a real listener without the socket (see `commands::run_memory`). No
/// queue runner is started: queued mail stays in the store.
#[cfg(feature = "fuzzing")]
pub(crate) async fn serve_memory(
    context: &Context,
    trust: Arc<TrustList>,
    stream: tokio::io::DuplexStream,
    peer: SocketAddr,
    interface: Interface,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Shared {
        context: context.clone(),
        trust,
        shutdown,
        queued: Arc::new(Notify::new()),
    });
    let Ok(admission) = shared.context.net.admit(peer.ip()) else {
        return;
    };
    commands::run_memory(shared, stream, peer, interface, admission).await;
}
