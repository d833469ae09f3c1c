//! The operator interface. Its commands and flags are a contract: operators and test
//! harnesses script against them, so they are extended, never renamed.
//!
//! Part of the binary, not of the server library: `dev` and `conformance` bring the
//! conformance crate (PSC stand-in, test PKI, the suite), which a production build can
//! leave out (`--no-default-features`).

#[cfg(feature = "conformance")]
mod conformance;
#[cfg(feature = "conformance")]
mod dev;
mod jobs;
mod mailbox;
mod man;
mod report;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use mssante::config::{Config, LogFormat};

#[derive(Parser, Debug)]
#[command(name = "mssante", version, about = "MSSanté operator mail server")]
pub struct Args {
    /// Configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "MSSANTE_CONFIG",
        default_value = "/etc/mssante/config.toml"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every configured listener and the job scheduler.
    Serve,
    /// Check the configuration and print it as it will be used (secrets masked).
    CheckConfig,
    /// Manage mailboxes (BAL) and who may open them.
    #[command(subcommand)]
    Mailbox(mailbox::MailboxCommand),
    /// Local tools for trying the server (test PKI …); never for production.
    #[cfg(feature = "conformance")]
    Dev(dev::DevArgs),
    /// Run the operator conformance suite (what the ANS test application checks) against
    /// any IMAP/SMTP server; writes an HTML and a JSON report. Exit 1 if a case failed.
    #[cfg(feature = "conformance")]
    Conformance(Box<conformance::ConformanceArgs>),
    /// Run the mailbox lifecycle jobs (directory publication, warnings, deletion).
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Show the audit trail of authentication decisions.
    Audit {
        /// Only decisions about this mailbox.
        #[arg(long)]
        mailbox: Option<String>,
        /// How many of the most recent records.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Figures for the operator's reporting (monthly usage).
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// The mail store as a whole: `store copy --to postgres://…` moves a SQLite store
    /// into PostgreSQL.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Copy the SQLite store to FILE while the server runs (a consistent snapshot,
    /// checked). For PostgreSQL use the engine's own tools.
    Backup {
        /// Where to write the copy; must not exist.
        #[arg(long)]
        to: PathBuf,
    },
    /// Put a backup in place of the store (the replaced database is kept beside it as
    /// mssante.db.before-restore). Refused while a server runs on the data folder.
    Restore {
        /// A file written by `backup`.
        #[arg(long)]
        from: PathBuf,
    },
    /// Write the manual pages (roff) in DIR, as the Debian package installs them.
    #[command(hide = true)]
    Man {
        /// An existing directory.
        dir: PathBuf,
    },
}

/// Exit statuses scripts can rely on.
pub mod status {
    /// The operation failed (e.g. unknown mailbox).
    pub const FAILURE: u8 = 1;
    /// The configuration or the command line is wrong.
    pub const USAGE: u8 = 2;
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(status::FAILURE);
        }
    };
    runtime.block_on(run(args))
}

fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(status::USAGE)
    })
}

/// The configured store, or the exit code once the reason it cannot be opened was said.
async fn open_store(
    config: &Config,
    clock: mssante::clock::SharedClock,
) -> Result<mssante::store::Store, ExitCode> {
    use mssante::store::Store;
    Store::open_configured(config, clock).await.map_err(|e| {
        eprintln!(
            "error: cannot open the store ({}): {e}",
            Store::describe(config)
        );
        ExitCode::from(status::FAILURE)
    })
}

/// Logs go to stderr; `serve` uses the configured level, one-shot commands stay quiet.
pub fn init_logging(config: Option<&Config>) {
    let (level, format) = match config {
        Some(c) => (c.log.level.as_str(), c.log.format),
        None => ("warn", LogFormat::Text),
    };
    let from_env = std::env::var(tracing_subscriber::EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|spec| {
            !spec.trim().is_empty() && spec.parse::<tracing_subscriber::EnvFilter>().is_ok()
        });
    let filter = log_filter(from_env.as_deref().unwrap_or(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The filter for `spec`, with rustls's SNI warnings silenced unless `spec` says
/// something about rustls itself (an operator debugging TLS sees everything).
fn log_filter(spec: &str) -> tracing_subscriber::EnvFilter {
    if spec.contains("rustls") {
        tracing_subscriber::EnvFilter::new(spec)
    } else {
        tracing_subscriber::EnvFilter::new(format!("{spec},{}", mssante::tls::QUIET_SNI_WARNINGS))
    }
}

async fn run(args: Args) -> ExitCode {
    match args.command {
        Command::CheckConfig => match Config::load(&args.config) {
            Ok(c) => {
                print!("{}", c.to_display_toml());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(status::USAGE)
            }
        },
        Command::Serve => {
            let config = match load_config(&args.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_logging(Some(&config));
            match mssante::server::serve(config, mssante::clock::system()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(status::FAILURE)
                }
            }
        }
        Command::Mailbox(cmd) => {
            init_logging(None);
            let config = match load_config(&args.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            mailbox::run(&config, cmd).await
        }
        #[cfg(feature = "conformance")]
        Command::Dev(dev) => {
            init_logging(None);
            dev::run(dev).await
        }
        #[cfg(feature = "conformance")]
        Command::Conformance(args) => {
            init_logging(None);
            conformance::run(*args).await
        }
        Command::Jobs(cmd) => {
            init_logging(None);
            let config = match load_config(&args.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            jobs::run(&config, cmd).await
        }
        Command::Audit {
            mailbox,
            limit,
            json,
        } => {
            init_logging(None);
            let config = match load_config(&args.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            report(audit(&config, mailbox.as_deref(), limit, json).await)
        }
        Command::Report(cmd) => {
            init_logging(None);
            let config = match load_config(&args.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            report::run(&config, cmd).await
        }
        Command::Store(cmd) => {
            init_logging(None);
            let config = match load_config(&args.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            store::run(&config, cmd).await
        }
        Command::Backup { to } => {
            init_logging(None);
            let config = match load_config(&args.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            report(
                mssante::store::backup(&config.server.data_dir, &to)
                    .await
                    .map(|size| println!("backup written to {} ({size} bytes)", to.display()))
                    .map_err(anyhow::Error::from),
            )
        }
        Command::Man { dir } => man::run(&dir),
        Command::Restore { from } => {
            init_logging(None);
            let config = match load_config(&args.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            report(
                mssante::store::restore(&config.server.data_dir, &from)
                    .await
                    .map(|kept| {
                        println!("restored {}", from.display());
                        if let Some(kept) = kept {
                            println!("the replaced database is kept as {}", kept.display());
                        }
                    })
                    .map_err(anyhow::Error::from),
            )
        }
    }
}

/// Prints an error the operator can act on and turns it into an exit status.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(status::FAILURE)
        }
    }
}

async fn audit(
    config: &Config,
    mailbox: Option<&str>,
    limit: u32,
    json: bool,
) -> anyhow::Result<()> {
    use std::io::Write;
    let store = mssante::store::Store::open_configured(config, mssante::clock::system())
        .await
        .with_context(|| {
            format!(
                "opening the store ({})",
                mssante::store::Store::describe(config)
            )
        })?;
    // Written through a locked handle: a reader that stops early (`| head`) ends the
    // listing instead of a panic on the closed pipe.
    let mut out = std::io::stdout().lock();
    for r in store.audit_records(mailbox, limit).await? {
        let written = if json {
            writeln!(out, "{}", serde_json::to_string(&r)?)
        } else {
            let e = &r.entry;
            let repeated = match r.repeated {
                0 => String::new(),
                n => format!(" (repeated {n} more times within a minute)"),
            };
            writeln!(
                out,
                "{} {:<10} {:<8} {:<11} mailbox={} identity={} peer={} {}{repeated}",
                e.at.to_rfc3339(),
                e.protocol,
                serde_json::to_value(e.outcome)?.as_str().unwrap_or("?"),
                e.mechanism.as_deref().unwrap_or("-"),
                e.mailbox.as_deref().unwrap_or("-"),
                e.identity.as_deref().unwrap_or("-"),
                e.peer.as_deref().unwrap_or("-"),
                e.reason.as_deref().unwrap_or(""),
            )
        };
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the filter for `spec` lets through of rustls's SNI warning (same target and
    /// text as rustls 0.23 logs through the `log` bridge), another rustls warning and
    /// the listener's own handshake failure line.
    fn logged(spec: &str) -> String {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(super::log_filter(spec))
            .with_writer(move || out.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                target: "rustls::msgs::handshake",
                "Illegal SNI extension: ignoring IP address presented as hostname (127.0.0.1)"
            );
            tracing::warn!(target: "rustls::server::hs", "another rustls warning");
            tracing::info!(target: "mssante::imap::session", "TLS handshake failed");
        });
        let text = buffer.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn an_ip_address_as_sni_is_not_logged_but_tls_failures_are() {
        let out = logged("info");
        assert!(!out.contains("Illegal SNI"), "{out}");
        assert!(out.contains("another rustls warning"), "{out}");
        assert!(out.contains("TLS handshake failed"), "{out}");
        // An operator asking for rustls's logs gets all of them.
        assert!(logged("info,rustls=debug").contains("Illegal SNI"));
    }
}
