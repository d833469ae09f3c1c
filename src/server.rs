//! `serve`: the composition root. It opens the store, loads TLS and the authenticator,
//! builds the `Context` every part shares, starts the IMAP and SMTP listeners and the
//! job scheduler, and stops them all through one drain (`net::drain`).

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{AccessEpoch, Authenticator};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::context::Context;
use crate::net::{Net, Stop};
use crate::store::Store;
use crate::tls::TlsSource;

/// The running server: stop it with `stop`.
pub struct Running {
    pub context: Context,
    /// Where the IMAP listeners are bound (resolves port 0).
    pub imap: crate::imap::Listening,
    /// Where the SMTP listeners are bound (resolves port 0).
    pub smtp: crate::smtp::Listening,
    stop: Stop,
}

impl Running {
    /// Stops accepting, lets every connection finish until `[session] shutdown_timeout`,
    /// then drops the rest (see `net::drain`), and closes the store once its last
    /// writes have committed: a stopped server leaves its files whole and at rest.
    pub async fn stop(self) {
        let grace = self.context.config.session.shutdown_timeout.0;
        crate::net::drain(&self.stop, grace).await;
        self.context.store.clone().close().await;
    }
}

/// Opens the store and starts every configured listener. Every date the server reads
/// (token expiry, CRL freshness, lifecycle rules) comes from `clock`.
pub async fn start(config: Config, clock: SharedClock) -> anyhow::Result<Running> {
    let store = Store::open_configured(&config, clock.clone())
        .await
        .with_context(|| format!("opening the store ({})", Store::describe(&config)))?;
    start_with(config, clock, store).await
}

/// `start` with the store already open.
async fn start_with(config: Config, clock: SharedClock, store: Store) -> anyhow::Result<Running> {
    let tls = TlsSource::load(&config.tls, clock.clone())
        .await
        .context("loading the TLS certificates, client CAs and CRLs")?;
    let auth = Authenticator::new(&config, store.clone(), clock.clone())
        .await
        .context("starting the authenticator")?;
    let stop = Stop {
        shutdown: CancellationToken::new(),
        abort: CancellationToken::new(),
        tasks: TaskTracker::new(),
    };
    let (shutdown, tasks) = (&stop.shutdown, &stop.tasks);
    let access_epoch = AccessEpoch::start(store.clone(), shutdown.clone(), tasks).await;
    let context = Context {
        net: Net::new(&config.session),
        config: Arc::new(config),
        store,
        clock,
        tls,
        auth,
        access_epoch,
    };
    context.tls.spawn_crl_refresh(shutdown.clone(), tasks);
    reload_tls_on_sighup(context.tls.clone(), shutdown.clone(), tasks);
    crate::lifecycle::spawn_scheduler(&context, shutdown.clone(), tasks)
        .context("starting the lifecycle scheduler")?;
    let imap = crate::imap::start(&context, &stop).await?;
    let smtp = crate::smtp::start(&context, &stop).await?;
    Ok(Running {
        context,
        imap,
        smtp,
        stop,
    })
}

/// Runs until SIGTERM or Ctrl-C, then drains. A database that does not answer yet
/// (PostgreSQL starting beside this server) is waited for, the reason logged at each
/// attempt, rather than failing the start; a signal meanwhile stops the wait.
pub async fn serve(config: Config, clock: SharedClock) -> anyhow::Result<()> {
    let store = tokio::select! {
        store = Store::open_retrying(&config, clock.clone()) => store
            .with_context(|| format!("opening the store ({})", Store::describe(&config)))?,
        () = wait_for_signal() => {
            tracing::info!("stopped before the store could be opened");
            return Ok(());
        }
    };
    let running = start_with(config, clock, store).await?;
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
