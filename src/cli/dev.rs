//! `mssante dev …`: tools for trying the server on one machine. Nothing here is for
//! production.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::report;

#[derive(Args, Debug)]
pub struct DevArgs {
    #[command(subcommand)]
    pub command: Option<DevCommand>,
}

#[derive(Subcommand, Debug)]
pub enum DevCommand {
    /// Generate a test PKI shaped like IGC-Santé: CAs, server and AUTH_CLI certificates,
    /// refusal cases (expired, revoked, server-only, foreign CA) and a CRL.
    Pki {
        /// Folder to write into (created if missing; existing files are replaced).
        #[arg(long)]
        out: PathBuf,
    },
}

pub async fn run(args: DevArgs) -> ExitCode {
    match args.command {
        Some(DevCommand::Pki { out }) => report(pki(&out)),
        None => {
            eprintln!("error: say which tool: `mssante dev pki --out DIR`");
            ExitCode::from(super::status::USAGE)
        }
    }
}

fn pki(out: &std::path::Path) -> anyhow::Result<()> {
    crate::pki::generate(out)
        .with_context(|| format!("generating the test PKI in {}", out.display()))?;
    println!("test PKI written to {} (not for production)", out.display());
    for name in [
        "ca.crt",
        "server.crt",
        "organisations.crl",
        "foreign-ca.crt",
    ] {
        println!("  {}", out.join(name).display());
    }
    for name in crate::pki::leaf_names() {
        println!("  {}", out.join(format!("{name}.crt")).display());
    }
    Ok(())
}
