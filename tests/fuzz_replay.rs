//! Every committed fuzz input through the code its target drives, with the same checks:
//! the seeds in fuzz/seeds/TARGET and the inputs that once crashed a target, kept in
//! fuzz/regressions/TARGET. Runs on stable Rust, so CI replays them on every change
//! even where there is no time to fuzz.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mssante::fuzzing::{self, Harness};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[path = "../fuzz/psc.rs"]
mod psc;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for kind in ["seeds", "regressions"] {
        let dir = root.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            out.push((path, bytes));
        }
    }
    out.sort();
    out
}

fn replay(target: &str, mut run: impl FnMut(&[u8]) -> Result<(), String>) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "no seeds for {target}");
    for (path, bytes) in inputs {
        if let Err(e) = timed(|| run(&bytes)) {
            panic!("{}: {e}", path.display());
        }
    }
}

/// `run`, failed when it takes more than 10 s (fuzz/run's -timeout): a hang in the
/// making, such as the damaged MIME tree that once took a minute to describe.
// Wall-clock time of a synchronous call, outside any runtime whose clock could pause.
#[allow(clippy::disallowed_methods)]
fn timed(run: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let started = std::time::Instant::now();
    run()?;
    match started.elapsed() {
        t if t > Duration::from_secs(10) => Err(format!("took {t:?}")),
        _ => Ok(()),
    }
}

#[test]
fn sasl() {
    replay("sasl", fuzzing::sasl);
}

#[test]
fn trust_list() {
    replay("trust_list", fuzzing::trust_list);
}

#[test]
fn mime() {
    replay("mime", |b| {
        fuzzing::mime_input(b);
        Ok(())
    });
}

#[test]
fn jwt() {
    let mut h = Harness::new(psc::start).unwrap();
    replay("jwt", |b| h.jwt(b).map_err(|e| e.to_string()));
}

#[test]
fn imap_session() {
    let mut h = Harness::new(psc::start).unwrap();
    replay("imap_session", |b| {
        h.imap(b).map(drop).map_err(|e| e.to_string())
    });
}

#[test]
fn smtp_session() {
    let mut h = Harness::new(psc::start).unwrap();
    replay("smtp_session", |b| {
        h.smtp(b).map(drop).map_err(|e| e.to_string())
    });
}

/// The session targets reach the commands behind authentication: the harness logs in
/// with a genuine token, a selected mailbox answers SEARCH, and submitted mail is taken.
#[test]
fn session_targets_get_past_authentication() {
    let mut h = Harness::new(psc::start).unwrap();
    let said = String::from_utf8_lossy(&h.imap(b"\x03a UID SEARCH ALL\r\nb LOGOUT\r\n").unwrap())
        .into_owned();
    assert!(said.contains("L OK"), "{said}");
    assert!(said.contains("S OK"), "{said}");
    assert!(said.contains("a OK"), "{said}");
    let said = String::from_utf8_lossy(
        &h.smtp(b"\x02MAIL FROM:<gregory.house@h.mssante.fr>\r\nRCPT TO:<lisa.cuddy@h.mssante.fr>\r\nDATA\r\nFrom: gregory.house@h.mssante.fr\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n")
            .unwrap(),
    )
    .into_owned();
    assert!(said.contains("235 "), "{said}");
    assert!(said.contains("250 2.0.0"), "{said}");
}

/// A short fuzz pass on stable Rust, on every CI run: each target's committed inputs,
/// changed at random (bytes flipped, set to a boundary value, inserted or removed; runs
/// copied within an input or spliced from another), for `FUZZ_SECONDS` seconds per
/// target (3 by default). It is not coverage-guided, as `fuzz/run` is, but it needs no
/// other toolchain and no second build. A failure names the seed (`FUZZ_SEED` replays
/// the same inputs) and writes the input to `target/fuzz-mutations/`, to be kept in
/// `fuzz/regressions/TARGET` with the fix.
// The pass lasts wall-clock seconds, outside any runtime whose clock could be paused.
#[allow(clippy::disallowed_methods)]
fn mutate(target: &str, mut run: impl FnMut(&[u8]) -> Result<(), String>) {
    let seconds: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    let corpus: Vec<Vec<u8>> = inputs(target).into_iter().map(|(_, b)| b).collect();
    assert!(!corpus.is_empty(), "no seeds for {target}");
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    let mut runs = 0u64;
    while std::time::Instant::now() < deadline {
        let mut input = corpus[rng.random_range(0..corpus.len())].clone();
        for _ in 0..rng.random_range(1..=8) {
            let other = &corpus[rng.random_range(0..corpus.len())];
            change(&mut input, other, &mut rng);
        }
        // Panics are failures too: each is caught so that the input is kept.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| timed(|| run(&input))))
                .unwrap_or_else(|_| Err("panicked".into()));
        if let Err(e) = outcome {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../fuzz-mutations");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{target}-{seed}-{runs}"));
            std::fs::write(&file, &input).unwrap();
            panic!(
                "{target}, FUZZ_SEED={seed}, run {runs}: {e}; input in {}",
                file.display()
            );
        }
        runs += 1;
    }
    eprintln!("{target}: {runs} mutated inputs in {seconds} s, FUZZ_SEED={seed}");
}

/// One random change to `input`.
fn change(input: &mut Vec<u8>, other: &[u8], rng: &mut StdRng) {
    const BOUNDARY: &[u8] = &[0, 0x7f, 0x80, 0xff, b'\r', b'\n', b' ', b'{', b'}', b'"'];
    let len = input.len();
    let at = if len == 0 {
        0
    } else {
        rng.random_range(0..len)
    };
    match rng.random_range(0..6) {
        0 if len > 0 => input[at] ^= 1 << rng.random_range(0..8),
        1 if len > 0 => input[at] = BOUNDARY[rng.random_range(0..BOUNDARY.len())],
        2 => input.insert(at, rng.random()),
        3 if len > 0 => {
            let end = (at + rng.random_range(1..=16)).min(len);
            input.drain(at..end);
        }
        4 if len > 0 => {
            let from = rng.random_range(0..len);
            let end = (from + rng.random_range(1..=64)).min(len);
            let run: Vec<u8> = input[from..end].to_vec();
            let to = rng.random_range(0..=input.len());
            input.splice(to..to, run);
        }
        _ if !other.is_empty() => {
            let from = rng.random_range(0..other.len());
            let end = (from + rng.random_range(1..=256)).min(other.len());
            input.splice(at..at, other[from..end].iter().copied());
        }
        _ => input.push(rng.random()),
    }
}

#[test]
fn mutated_sasl() {
    mutate("sasl", fuzzing::sasl);
}

#[test]
fn mutated_trust_list() {
    mutate("trust_list", fuzzing::trust_list);
}

#[test]
fn mutated_mime() {
    mutate("mime", |b| {
        fuzzing::mime_input(b);
        Ok(())
    });
}

#[test]
fn mutated_jwt() {
    let mut h = Harness::new(psc::start).unwrap();
    mutate("jwt", |b| h.jwt(b).map_err(|e| e.to_string()));
}

#[test]
fn mutated_imap_session() {
    let mut h = Harness::new(psc::start).unwrap();
    mutate("imap_session", |b| {
        h.imap(b).map(drop).map_err(|e| e.to_string())
    });
}

#[test]
fn mutated_smtp_session() {
    let mut h = Harness::new(psc::start).unwrap();
    mutate("smtp_session", |b| {
        h.smtp(b).map(drop).map_err(|e| e.to_string())
    });
}
