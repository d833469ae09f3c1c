//! The server's resident memory, open descriptors and threads, read from /proc for its
//! PID only (the load generator is another process), with the machine's load average.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct Sample {
    pub secs: f64,
    pub phase: String,
    pub rss_kib: u64,
    pub fds: usize,
    pub threads: u64,
    pub load1: f64,
    pub connections: u64,
}

pub struct Sampler {
    pub samples: Arc<Mutex<Vec<Sample>>>,
    pub phase: watch::Sender<(String, u64)>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

pub fn read(pid: u32) -> (u64, usize, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (field("VmRSS:"), fds, field("Threads:"))
}

fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

impl Sampler {
    /// Samples every `every` until stopped; `phase` names what is going on and how many
    /// connections the load generator holds.
    pub fn start(pid: u32, every: Duration, started: Instant) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (phase, phase_rx) = watch::channel(("setup".to_owned(), 0));
        let (stop, mut stop_rx) = watch::channel(false);
        let s = samples.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop_rx.changed() => return,
                }
                let (rss_kib, fds, threads) = read(pid);
                let (phase, connections) = phase_rx.borrow().clone();
                let sample = Sample {
                    secs: started.elapsed().as_secs_f64(),
                    phase,
                    rss_kib,
                    fds,
                    threads,
                    load1: load1(),
                    connections,
                };
                if let Ok(mut v) = s.lock() {
                    v.push(sample);
                }
            }
        });
        Sampler {
            samples,
            phase,
            stop,
            task,
        }
    }

    pub fn set(&self, phase: &str, connections: u64) {
        let _ = self.phase.send((phase.to_owned(), connections));
    }

    pub async fn finish(self) -> Vec<Sample> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.samples.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

pub fn csv(samples: &[Sample]) -> String {
    let mut out = String::from("secs,phase,rss_kib,fds,threads,load1,client_connections\n");
    for s in samples {
        out.push_str(&format!(
            "{:.1},{},{},{},{},{:.2},{}\n",
            s.secs, s.phase, s.rss_kib, s.fds, s.threads, s.load1, s.connections
        ));
    }
    out
}
