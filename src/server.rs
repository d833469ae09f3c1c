//! `serve`: every configured listener and the job scheduler, one shutdown path.
//!
//! A `CancellationToken` tells every task to stop (SIGTERM, Ctrl-C); a `TaskTracker`
//! tells us when the last connection has drained. Draining has a deadline
//! (`[session] shutdown_timeout`): a peer that stops reading must not keep the process
//! from stopping, so the connections still open then are dropped (`Context::abort`).

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{AccessEpoch, Authenticator};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::store::Store;
use crate::tls::TlsSource;

/// Accepts connections until `shutdown`, each served as its own task on `tasks`, which
/// ends as soon as `abort` fires whatever it is waiting for. An accept error (out of file
/// descriptors and the like) pauses the loop rather than spin on it.
pub(crate) async fn accept_loop<F, Fut>(
    listener: tokio::net::TcpListener,
    protocol: &'static str,
    shutdown: CancellationToken,
    abort: CancellationToken,
    tasks: TaskTracker,
    mut serve: F,
) where
    F: FnMut(tokio::net::TcpStream, std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                let connection = serve(tcp, peer);
                let abort = abort.clone();
                tasks.spawn(async move {
                    tokio::select! {
                        _ = connection => {}
                        _ = abort.cancelled() => {
                            tracing::info!(%peer, protocol, "connection dropped at the shutdown deadline");
                        }
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, protocol, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// What every connection and job shares.
#[derive(Clone, Debug)]
pub struct Context {
    pub config: Arc<Config>,
    pub store: Store,
    pub clock: SharedClock,
    /// TLS configuration for each accepted connection (`tls.current()`), reloaded on SIGHUP.
    pub tls: Arc<TlsSource>,
    /// PSC tokens and certificates for every protocol's SASL.
    pub auth: Authenticator,
    /// The store's access counter, watched for every open session at once.
    pub access_epoch: AccessEpoch,
    /// Connection caps and the authentication-failure policy, shared by every listener.
    pub net: Arc<crate::net::Net>,
    /// Fired when the shutdown deadline has passed: every connection still open is
    /// dropped where it stands (a write to a peer that stopped reading included).
    pub abort: CancellationToken,
}

/// The running server: stop it with `shutdown` and wait with `wait`.
pub struct Running {
    pub context: Context,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    /// Where the IMAP listeners are bound (resolves port 0).
    pub imap: crate::imap::Listening,
    /// Where the SMTP listeners are bound (resolves port 0).
    pub smtp: crate::smtp::Listening,
}

impl Running {
    /// Stops accepting, asks every connection to finish, and waits for them until
    /// `[session] shutdown_timeout`; then drops the connections still open and waits as
    /// long again for the rest (jobs finishing a store write), after which it gives up:
    /// stopping must not depend on any peer.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        let grace = self.context.config.session.shutdown_timeout.0;
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_ok() {
            return;
        }
        tracing::warn!(
            open = self.tasks.len(),
            "shutdown deadline reached: dropping the connections still open"
        );
        self.context.abort.cancel();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::error!(
                open = self.tasks.len(),
                "tasks still running after the shutdown deadline; stopping without them"
            );
        }
    }
}

/// Opens the store and starts every configured listener. Every date the server reads
/// (token expiry, CRL freshness, lifecycle rules) comes from `clock`.
pub async fn start(config: Config, clock: SharedClock) -> anyhow::Result<Running> {
    let store = Store::open(&config.server.data_dir)
        .await
        .with_context(|| format!("opening the store in {}", config.server.data_dir.display()))?;
    let tls = TlsSource::load(&config.tls, clock.clone())
        .await
        .context("loading the TLS certificates, client CAs and CRLs")?;
    let auth = Authenticator::new(&config, store.clone(), clock.clone())
        .await
        .context("starting the authenticator")?;
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let access_epoch = AccessEpoch::start(store.clone(), shutdown.clone(), &tasks).await;
    let net = crate::net::Net::new(&config.session);
    let context = Context {
        net,
        abort: CancellationToken::new(),
        config: Arc::new(config),
        store,
        clock,
        tls,
        auth,
        access_epoch,
    };
    context.tls.spawn_crl_refresh(shutdown.clone(), &tasks);
    reload_tls_on_sighup(context.tls.clone(), shutdown.clone(), &tasks);
    crate::lifecycle::spawn_scheduler(&context, shutdown.clone(), &tasks)
        .context("starting the lifecycle scheduler")?;
    let imap = crate::imap::start(&context, context.auth.clone(), shutdown.clone(), &tasks).await?;
    let smtp = crate::smtp::start(&context, shutdown.clone(), &tasks).await?;
    Ok(Running {
        context,
        shutdown,
        tasks,
        imap,
        smtp,
    })
}

/// Runs until SIGTERM or Ctrl-C, then drains.
pub async fn serve(config: Config, clock: SharedClock) -> anyhow::Result<()> {
    let running = start(config, clock).await?;
    tracing::info!("mssante started");
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

/// SIGHUP reads the server certificate, key and client CAs again; connections already
/// established keep theirs. A failed reload keeps the previous configuration.
fn reload_tls_on_sighup(tls: Arc<TlsSource>, shutdown: CancellationToken, tasks: &TaskTracker) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: TLS reload disabled");
                return;
            }
        };
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    got = hup.recv() => {
                        if got.is_none() {
                            return;
                        }
                        match tls.reload() {
                            Ok(()) => tracing::info!("TLS configuration reloaded"),
                            Err(e) => tracing::error!(error = %e, "TLS reload failed; keeping the previous configuration"),
                        }
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (tls, shutdown, tasks);
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
