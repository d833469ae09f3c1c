//! The operator CLI as operators and harnesses run it: the real binary, as a separate
//! process, on a configuration file written by `config::Setup`.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, ExitStatus};

/// `mssante --config CONFIG ARGS…`, ready to run (or to hand to `tokio::process` when
/// the test's own runtime must keep going meanwhile).
pub fn command(config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mssante"));
    c.arg("--config").arg(config).args(args);
    c
}

/// Runs it: whether it succeeded, its standard output and its standard error.
pub fn mssante(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = command(config, args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs it, which must succeed; its standard output.
pub fn ok(config: &Path, args: &[&str]) -> String {
    let (success, stdout, stderr) = mssante(config, args);
    assert!(success, "mssante {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

/// `ok` without blocking the runtime a server under test runs on (the command may wait
/// for a lock only the server's next step releases).
pub async fn ok_async(config: &Path, args: &[&str]) -> String {
    let out = tokio::process::Command::from(command(config, args))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "mssante {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// SIGTERM to a `serve` started as systemd or an operator starts it, and its exit
/// status once it has drained and exited.
pub async fn terminate(mut child: Child) -> ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap()
}
