//! `serve`: the composition root. It opens the store, loads TLS and the authenticator,
//! builds the `Context` every part shares, starts the IMAP and SMTP listeners and the
//! job scheduler, and stops them all through one drain (`net::drain`).

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::Health;
use crate::auth::{AccessEpoch, Authenticator};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::context::Context;
use crate::metrics::Metrics;
use crate::net::{Net, Stop};
use crate::store::{ServingLock, Store};
use crate::tls::TlsSource;

/// The running server: stop it with `stop`.
pub struct Running {
    pub context: Context,
    /// Where the IMAP listeners are bound (resolves port 0).
    pub imap: crate::imap::Listening,
    /// Where the SMTP listeners are bound (resolves port 0).
    pub smtp: crate::smtp::Listening,
    /// Where the admin listener is bound (`[admin] listen`), if on.
    pub admin: Option<std::net::SocketAddr>,
    /// Where the autoconfiguration listener is bound (`[autoconfig] listen`), if on.
    pub autoconfig: Option<std::net::SocketAddr>,
    stop: Stop,
    /// The admin listener outlives the drain, so that readiness is seen to turn false
    /// (the autoconfiguration listener stops with it).
    admin_stop: CancellationToken,
    admin_tasks: TaskTracker,
    /// Tells `restore` that this data folder is in use, until the server is dropped.
    _serving: ServingLock,
}

impl Running {
    /// Stops accepting, lets every connection finish until `[session] shutdown_timeout`,
    /// then drops the rest (see `net::drain`), and closes the store once its last
    /// writes have committed: a stopped server leaves its files whole and at rest.
    pub async fn stop(self) {
        self.begin_drain();
        let grace = self.context.config.session.shutdown_timeout.0;
        crate::net::drain(&self.stop, grace).await;
        self.context.store.clone().close().await;
        self.admin_stop.cancel();
        self.admin_tasks.close();
        self.admin_tasks.wait().await;
    }

    /// Stops accepting and asks every session to finish, without waiting: readiness is
    /// false from here on. `stop` does this first, then waits for the drain.
    pub fn begin_drain(&self) {
        self.stop.shutdown.cancel();
    }
}

/// Opens the store and starts every configured listener. Every date the server reads
/// (token expiry, CRL freshness, lifecycle rules) comes from `clock`.
pub async fn start(config: Config, clock: SharedClock) -> anyhow::Result<Running> {
    let serving = ServingLock::take(&config.server.data_dir)?;
    let store = Store::open_configured(&config, clock.clone())
        .await
        .with_context(|| format!("opening the store ({})", Store::describe(&config)))?;
    start_with(config, clock, store, serving).await
}

/// `start` with the store already open and the data directory taken.
async fn start_with(
    config: Config,
    clock: SharedClock,
    store: Store,
    serving: ServingLock,
) -> anyhow::Result<Running> {
    let tls = TlsSource::load(&config.tls, clock.clone())
        .await
        .context("loading the TLS certificates, client CAs and CRLs")?;
    let metrics = Arc::new(Metrics::new());
    let observer = metrics.clone();
    store.observe_commits(Arc::new(move |took, batch| {
        observer.store_commit(took, batch)
    }));
    let auth = Authenticator::new(&config, store.clone(), clock.clone(), metrics.clone())
        .await
        .context("starting the authenticator")?;
    let stop = Stop {
        shutdown: CancellationToken::new(),
        abort: CancellationToken::new(),
        tasks: TaskTracker::new(),
        metrics: metrics.clone(),
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
        metrics,
    };
    context.tls.spawn_crl_refresh(shutdown.clone(), tasks);
    reload_tls_on_sighup(context.tls.clone(), shutdown.clone(), tasks);
    crate::lifecycle::spawn_scheduler(&context, shutdown.clone(), tasks)
        .context("starting the lifecycle scheduler")?;
    let imap = crate::imap::start(&context, &stop).await?;
    let smtp = crate::smtp::start(&context, &stop).await?;
    let health = Arc::new(Health::new(stop.shutdown.clone()));
    health.listeners_bound();
    let (admin_stop, admin_tasks) = (CancellationToken::new(), TaskTracker::new());
    let admin = crate::admin::start(&context, health, admin_stop.clone(), &admin_tasks)
        .await
        .context("starting the admin listener")?;
    let first = |bound: &[std::net::SocketAddr]| bound.first().map(|a| a.port());
    let ports = crate::autoconfig::Ports {
        imap_tls: first(&imap.tls),
        imap_starttls: first(&imap.starttls),
        submission_tls: first(&smtp.submission_tls),
        submission_starttls: first(&smtp.submission_starttls),
    };
    let autoconfig = crate::autoconfig::start(&context, ports, admin_stop.clone(), &admin_tasks)
        .await
        .context("starting the autoconfig listener")?;
    Ok(Running {
        context,
        imap,
        smtp,
        admin,
        autoconfig,
        stop,
        admin_stop,
        admin_tasks,
        _serving: serving,
    })
}

/// Runs until SIGTERM or Ctrl-C, then drains. A database that does not answer yet
/// (PostgreSQL starting beside this server) is waited for, the reason logged at each
/// attempt, rather than failing the start; a signal meanwhile stops the wait. Under
/// systemd (`Type=notify`, see `contrib/systemd/mssante.service`) it says READY=1 once
/// every listener is bound, STOPPING=1 when the drain begins, and pings the watchdog
/// when `WatchdogSec=` asks.
pub async fn serve(config: Config, clock: SharedClock) -> anyhow::Result<()> {
    let serving = ServingLock::take(&config.server.data_dir)?;
    let store = tokio::select! {
        store = Store::open_retrying(&config, clock.clone()) => store
            .with_context(|| format!("opening the store ({})", Store::describe(&config)))?,
        () = wait_for_signal() => {
            tracing::info!("stopped before the store could be opened");
            return Ok(());
        }
    };
    let running = start_with(config, clock, store, serving).await?;
    tracing::info!("mssante started");
    tell_systemd(&[sd_notify::NotifyState::Ready]);
    let watchdog = spawn_watchdog();
    wait_for_signal().await;
    tracing::info!("shutting down");
    tell_systemd(&[sd_notify::NotifyState::Stopping]);
    if let Some(w) = watchdog {
        w.abort();
    }
    running.stop().await;
    Ok(())
}

/// Writes to `NOTIFY_SOCKET` when systemd set it (nothing otherwise). A failure is
/// logged: the server runs the same without its service manager hearing of it.
fn tell_systemd(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Pings systemd's watchdog at half its period (`WATCHDOG_USEC`, for this process): a
/// runtime so stuck that this task cannot run gets the service restarted.
fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let period = sd_notify::watchdog_enabled()?;
    let every = (period / 2).max(std::time::Duration::from_millis(10));
    tracing::info!(?period, "systemd watchdog enabled");
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            tell_systemd(&[sd_notify::NotifyState::Watchdog]);
        }
    }))
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
