//! Soak and slowloris test of the release server (driven by `bench/soak`).
//!
//! ```text
//! soak --server target/release/mssante [--quick] [--duration SECS] [--idle N]
//!      [--workers N] [--think-ms MS] [--slowloris N] [--slowloris-secs SECS]
//!      [--no-soak] [--no-slowloris] [--out DIR]
//! ```
//!
//! Soak: `--idle` connections (10,000) authenticate, SELECT INBOX and IDLE, from 20
//! loopback addresses, while `--workers` clients (50) work for `--duration` seconds
//! (600); each minute (every 5 s with `--quick`) one message goes to every idle mailbox
//! and every idle connection must hear of it. Slowloris: `--slowloris` connections (1,000)
//! on each of the five listeners for `--slowloris-secs` (150), while a probe logs in and
//! works. The server's RSS, descriptors and threads are sampled from /proc; everything is
//! on loopback and every loop is bounded by the durations given. Exit status 1 when a
//! check fails (an error, a missed notification, memory that kept growing, a slowloris
//! connection the server never cut, a probe that failed).

mod idle;
mod sample;
mod setup;
mod slowloris;
mod wire;
mod work;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Prints the first errors in full, then only counts them.
pub fn report_error(counter: &AtomicU64, what: std::fmt::Arguments<'_>) {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    if n < 10 {
        eprintln!("[soak] error: {what}");
    }
}

struct Opts {
    server: PathBuf,
    quick: bool,
    duration: u64,
    idle: usize,
    workers: usize,
    think: Duration,
    slowloris: usize,
    slowloris_secs: u64,
    soak: bool,
    attack: bool,
    out: PathBuf,
}

fn opts() -> anyhow::Result<Opts> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Opts {
        server: PathBuf::from("target/release/mssante"),
        quick,
        duration: if quick { 20 } else { 600 },
        idle: if quick { 500 } else { 10_000 },
        workers: 50,
        think: Duration::ZERO,
        slowloris: if quick { 100 } else { 1000 },
        slowloris_secs: if quick { 25 } else { 150 },
        soak: true,
        attack: true,
        out: PathBuf::from("target/soak"),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--quick" => {}
            "--server" => o.server = PathBuf::from(value()?),
            "--duration" => o.duration = value()?.parse()?,
            "--idle" => o.idle = value()?.parse()?,
            "--workers" => o.workers = value()?.parse()?,
            "--think-ms" => o.think = Duration::from_millis(value()?.parse()?),
            "--slowloris" => o.slowloris = value()?.parse()?,
            "--slowloris-secs" => o.slowloris_secs = value()?.parse()?,
            "--no-soak" => o.soak = false,
            "--no-slowloris" => o.attack = false,
            "--out" => o.out = PathBuf::from(value()?),
            other => anyhow::bail!("unknown argument {other:?} (see the doc comment)"),
        }
    }
    anyhow::ensure!(o.workers >= 1, "--workers must be at least 1");
    Ok(o)
}

fn log(started: Instant, what: std::fmt::Arguments<'_>) {
    eprintln!("[soak {:>6.1}s] {what}", started.elapsed().as_secs_f64());
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let o = opts()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let ok = runtime.block_on(run(o))?;
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

/// The five IDLE connections a professional might keep (phone, desktop, tablet…).
const CONNECTIONS_PER_IDLE_MAILBOX: usize = 5;
const IDLE_ADDRESSES: usize = 20;

async fn run(o: Opts) -> anyhow::Result<bool> {
    let started = Instant::now();
    let users = setup::Users {
        idle_mailboxes: o.idle.div_ceil(CONNECTIONS_PER_IDLE_MAILBOX).max(1),
        workers: o.workers,
    };
    let lifetime = Duration::from_secs(o.duration + o.slowloris_secs + 3600);
    // Room for the idle crowd, the workers (two sessions each), the notifier, the
    // slowloris connections and the probe; the default (10,000) would refuse the last
    // of them, which is the cap doing its job, not what this test looks at.
    let max_connections = o.idle + 2 * o.workers + 5 * o.slowloris + 100;
    let system = setup::start(&o.server, &users, max_connections.max(10_000), lifetime).await?;
    log(
        started,
        format_args!(
            "server pid {} in {}; ulimit -n {}",
            system.pid,
            system.dir.path().display(),
            nofile()
        ),
    );
    let tls = wire::tls_config(&system.ca)?;
    let every = Duration::from_secs(if o.quick { 1 } else { 5 });
    let sampler = sample::Sampler::start(system.pid, every, started);
    let (rss0, _, _) = sample::read(system.pid);
    let mut ok = true;
    let mut report = vec![
        format!(
            "machine: {} cores; load average at start {}",
            cores(),
            loadavg()
        ),
        format!("server RSS at start: {} MiB", rss0 / 1024),
    ];

    if o.soak {
        ok &= soak(&o, &users, &system, &tls, &sampler, started, &mut report).await;
    }
    if o.attack {
        ok &= attack(&o, &users, &system, &tls, &sampler, started, &mut report).await;
    }
    let samples = sampler.finish().await;
    std::fs::create_dir_all(&o.out)?;
    std::fs::write(o.out.join("samples.csv"), sample::csv(&samples))?;
    let warnings: Vec<String> = system
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    report.push(format!(
        "server log: {} WARN/ERROR lines{}",
        warnings.len(),
        warnings
            .iter()
            .take(5)
            .map(|l| format!("\n  {l}"))
            .collect::<String>()
    ));
    if let Err(e) = system.stop().await {
        report.push(format!("FAIL: {e:#}"));
        ok = false;
    } else {
        report.push("server stopped cleanly on SIGTERM".to_owned());
    }
    report.push(format!(
        "samples: {}; verdict: {}",
        o.out.join("samples.csv").display(),
        if ok { "PASS" } else { "FAIL" }
    ));
    let text = report.join("\n");
    std::fs::write(o.out.join("report.txt"), &text)?;
    println!("{text}");
    Ok(ok)
}

#[allow(clippy::too_many_arguments)]
async fn soak(
    o: &Opts,
    users: &setup::Users,
    system: &setup::System,
    tls: &std::sync::Arc<rustls::ClientConfig>,
    sampler: &sample::Sampler,
    started: Instant,
    report: &mut Vec<String>,
) -> bool {
    let mut ok = true;
    log(
        started,
        format_args!(
            "opening {} idle connections on {} mailboxes from {IDLE_ADDRESSES} addresses",
            o.idle, users.idle_mailboxes
        ),
    );
    sampler.set("ramp", 0);
    let t0 = Instant::now();
    let crowd = idle::open(
        o.idle,
        IDLE_ADDRESSES,
        users,
        system.ports.imaps,
        tls.clone(),
        &system.tokens,
    );
    let ramp_limit = Duration::from_secs(600);
    while crowd.seen.idling.load(Ordering::Relaxed) + crowd.seen.errors.load(Ordering::Relaxed)
        < o.idle as u64
        && t0.elapsed() < ramp_limit
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let idling = crowd.seen.idling.load(Ordering::Relaxed);
    let ramp = t0.elapsed().as_secs_f64();
    let (rss_idle, fds_idle, _) = sample::read(system.pid);
    log(
        started,
        format_args!(
            "{idling} idling after {ramp:.1} s; server RSS {} MiB, {fds_idle} fds",
            rss_idle / 1024
        ),
    );
    report.push(format!(
        "soak: {idling}/{} idle connections in IDLE after {ramp:.1} s of ramp-up; server RSS {} MiB, {fds_idle} open descriptors",
        o.idle,
        rss_idle / 1024
    ));
    if idling < o.idle as u64 {
        ok = false;
    }

    sampler.set("soak", idling + 2 * o.workers as u64);
    let notifier = work::Notifier::new(users.idle_mailboxes);
    let crew = work::start(
        o.workers,
        users,
        system.ports,
        tls.clone(),
        &system.tokens,
        o.think,
    );
    let round_every = Duration::from_secs(if o.quick { 5 } else { 60 });
    let warmup =
        Duration::from_secs(if o.quick { 5 } else { 60 }).min(Duration::from_secs(o.duration / 2));
    let soak_start = Instant::now();
    let end = soak_start + Duration::from_secs(o.duration);
    let notifier_token = system.token(&users.notifier().1).to_owned();
    let mut next_round = soak_start + round_every / 2;
    let mut rss_warm = None;
    let mut last_log = Instant::now();
    while Instant::now() < end {
        if Instant::now() >= next_round {
            notifier
                .round(users, system.ports.smtps, tls, &notifier_token)
                .await;
            next_round += round_every;
        }
        if rss_warm.is_none() && soak_start.elapsed() >= warmup {
            rss_warm = Some(sample::read(system.pid));
            log(
                started,
                format_args!(
                    "warm-up over: server RSS {} MiB",
                    rss_warm.map_or(0, |r| r.0) / 1024
                ),
            );
        }
        if last_log.elapsed() >= Duration::from_secs(if o.quick { 5 } else { 60 }) {
            last_log = Instant::now();
            let (rss, fds, threads) = sample::read(system.pid);
            log(
                started,
                format_args!(
                    "RSS {} MiB, {fds} fds, {threads} threads; worker ops {}, errors {}; rounds {}; EXISTS heard {}; load {}",
                    rss / 1024,
                    crew.counts.total(),
                    crew.counts.errors.load(Ordering::Relaxed)
                        + crowd.seen.errors.load(Ordering::Relaxed),
                    notifier.rounds.load(Ordering::Relaxed),
                    crowd.seen.exists_lines.load(Ordering::Relaxed),
                    loadavg()
                ),
            );
        }
        tokio::time::sleep(
            Duration::from_millis(100).min(end.saturating_duration_since(Instant::now())),
        )
        .await;
    }
    let soak_secs = soak_start.elapsed().as_secs_f64();
    let (rss_end, fds_end, threads_end) = sample::read(system.pid);
    let counts = crew.counts.clone();
    crew.stop().await;
    sampler.set("drain", idling);
    // The last round's notifications: wait until every idle connection has heard of
    // every delivery to its mailbox (or a minute).
    let expected =
        |k: usize| notifier.delivered[idle::mailbox_of(k, users)].load(Ordering::Relaxed);
    let t_wait = Instant::now();
    let mut behind = usize::MAX;
    while t_wait.elapsed() < Duration::from_secs(60) {
        behind = (0..o.idle)
            .filter(|&k| crowd.seen.last_exists[k].load(Ordering::Relaxed) != expected(k))
            .count();
        if behind == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let notifications_expected: u64 = (0..o.idle).map(|k| u64::from(expected(k))).sum();
    let heard = crowd.seen.exists_lines.load(Ordering::Relaxed);
    let idle_errors_before_close = crowd.seen.errors.load(Ordering::Relaxed);
    let seen = crowd.seen.clone();
    crowd.close().await;
    let idle_errors = seen.errors.load(Ordering::Relaxed);
    let worker_errors = counts.errors.load(Ordering::Relaxed);
    ok &= behind == 0 && idle_errors == 0 && worker_errors == 0;
    let (rss_w, fds_w, _) = rss_warm.unwrap_or((0, 0, 0));
    let growth = if rss_w > 0 {
        (rss_end as f64 - rss_w as f64) / rss_w as f64 * 100.0
    } else {
        0.0
    };
    report.push(format!(
        "soak: {soak_secs:.0} s with {} workers; server RSS {} MiB after warm-up ({fds_w} fds), {} MiB at the end ({fds_end} fds, {threads_end} threads): {growth:+.1}%",
        o.workers,
        rss_w / 1024,
        rss_end / 1024
    ));
    report.push(format!(
        "soak: delivery rounds {}; IDLE notifications heard {heard} / expected {notifications_expected}; connections that missed the last count: {behind}",
        notifier.rounds.load(Ordering::Relaxed)
    ));
    let ops: Vec<String> = work::KINDS
        .iter()
        .zip(&counts.ops)
        .map(|(k, n)| format!("{k} {}", n.load(Ordering::Relaxed)))
        .collect();
    report.push(format!(
        "soak: worker operations {} ({:.0}/s): {}",
        counts.total(),
        counts.total() as f64 / soak_secs,
        ops.join(", ")
    ));
    report.push(format!(
        "soak: errors: workers {worker_errors}, idle {idle_errors} ({idle_errors_before_close} before DONE), notifier {}",
        notifier.errors.load(Ordering::Relaxed)
    ));
    ok &= notifier.errors.load(Ordering::Relaxed) == 0 && heard == notifications_expected;
    // Memory must not keep climbing once warm: a leak of 1 KiB per operation would show.
    if growth > 20.0 {
        report.push("FAIL: server memory grew by more than 20% after warm-up".to_owned());
        ok = false;
    }
    ok
}

async fn attack(
    o: &Opts,
    users: &setup::Users,
    system: &setup::System,
    tls: &std::sync::Arc<rustls::ClientConfig>,
    sampler: &sample::Sampler,
    started: Instant,
    report: &mut Vec<String>,
) -> bool {
    let mut ok = true;
    log(
        started,
        format_args!(
            "slowloris: {} connections on each listener for {} s, one byte every {} s",
            o.slowloris,
            o.slowloris_secs,
            slowloris::BYTE_EVERY.as_secs()
        ),
    );
    let (rss_before, fds_before, _) = sample::read(system.pid);
    sampler.set("slowloris", 5 * o.slowloris as u64);
    let attack = slowloris::start(&system.ports, o.slowloris);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let probe = tokio::spawn(slowloris::probe(
        users.clone(),
        system.ports,
        tls.clone(),
        system.token(&users.probe().1).to_owned(),
        Duration::from_secs(2),
        stop_rx,
    ));
    let t0 = Instant::now();
    let mut rss_max = rss_before;
    let mut fds_max = fds_before;
    while t0.elapsed() < Duration::from_secs(o.slowloris_secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (rss, fds, _) = sample::read(system.pid);
        rss_max = rss_max.max(rss);
        fds_max = fds_max.max(fds);
    }
    let _ = stop.send(true);
    let figures = attack.stop().await;
    let probe = probe.await.unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_after, fds_after, _) = sample::read(system.pid);
    report.push(format!(
        "slowloris: {} s; server RSS {} MiB before, at most {} MiB during, {} MiB after; descriptors {fds_before} before, at most {fds_max}, {fds_after} after",
        o.slowloris_secs,
        rss_before / 1024,
        rss_max / 1024,
        rss_after / 1024
    ));
    for f in &figures {
        let mut cut = f.cut.clone();
        cut.sort_by(f64::total_cmp);
        let median = cut.get(cut.len() / 2).copied().unwrap_or(0.0);
        let max = cut.last().copied().unwrap_or(0.0);
        report.push(format!(
            "slowloris: {:<20} opened {:>5}, cut by the server {:>5} (lifetime median {median:.1} s, max {max:.1} s), still open at the end {} (oldest {:.1} s), connect failures {}",
            f.name, f.opened, cut.len(), f.still_open, f.oldest_open, f.connect_failed
        ));
        // A connection that outlived every server timeout was never cut.
        let bound = 60.0 + 2.0 * slowloris::BYTE_EVERY.as_secs_f64();
        if f.oldest_open > bound || max > bound {
            report.push(format!(
                "FAIL: {} kept a slowloris connection past {bound:.0} s",
                f.name
            ));
            ok = false;
        }
    }
    report.push(format!(
        "slowloris: probe (IMAP login+SELECT+NOOP+LOGOUT, then one submitted message, every 2 s): {} ok, {} failed, slowest {:.0} ms{}",
        probe.ok,
        probe.failed,
        probe.max_ms,
        probe.failures.iter().take(3).map(|f| format!("\n  {f}")).collect::<String>()
    ));
    ok &= probe.failed == 0 && probe.ok > 0;
    ok
}

fn nofile() -> String {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .map(|l| {
                    l.split_whitespace()
                        .skip(3)
                        .take(2)
                        .collect::<Vec<_>>()
                        .join("/")
                })
        })
        .unwrap_or_default()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
