//! `store …`: the mail store as a whole (moving it to another database).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use mssante::config::{Config, DatabaseUrl};

use super::status;

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Copy the SQLite store of data_dir into an empty PostgreSQL database, then compare
    /// the two (folders, UIDs, MODSEQs, flags, every body's SHA-256). Refused while a
    /// server runs on the data folder; exit 1 if the copy differs.
    Copy(CopyArgs),
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct CopyArgs {
    /// The PostgreSQL database: postgres://user:password@host/database.
    #[arg(long, value_name = "URL")]
    to: Option<String>,
    /// A file holding that URL, so the password is not on the command line.
    #[arg(long, value_name = "FILE")]
    to_url_file: Option<PathBuf>,
}

pub async fn run(config: &Config, cmd: StoreCommand) -> ExitCode {
    match cmd {
        StoreCommand::Copy(args) => copy(config, args).await,
    }
}

async fn copy(config: &Config, args: CopyArgs) -> ExitCode {
    let (text, from) = match (args.to, args.to_url_file) {
        (Some(url), _) => (url, "--to"),
        (None, Some(file)) => match std::fs::read_to_string(&file) {
            Ok(text) => (text, "--to-url-file"),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", file.display());
                return ExitCode::from(status::USAGE);
            }
        },
        (None, None) => {
            eprintln!("error: store copy needs --to or --to-url-file");
            return ExitCode::from(status::USAGE);
        }
    };
    let to = match DatabaseUrl::parse(&text) {
        Ok(url) => url,
        Err(e) => {
            eprintln!("error: {from}: {e}");
            return ExitCode::from(status::USAGE);
        }
    };
    println!(
        "copying {} to PostgreSQL at {to}",
        config.database_path().display()
    );
    match mssante::store::copy::copy_to_postgres(
        &config.server.data_dir,
        &to,
        config.store.connect_timeout.0,
    )
    .await
    {
        Ok(verification) => {
            print!("{verification}");
            if verification.identical() {
                ExitCode::SUCCESS
            } else {
                eprintln!("error: the copy differs from the SQLite store (see above)");
                ExitCode::from(status::FAILURE)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(status::FAILURE)
        }
    }
}
