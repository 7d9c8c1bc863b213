//! Phase timings (and the peak resident set so far) on stderr when `BYREIS_TIMINGS` is set (for
//! `scripts/bench-rotate.sh`; never on by default).
// A benchmark hook: prints phase timings to stderr when BYREIS_TIMINGS is set.
#![allow(clippy::disallowed_macros)]

use std::sync::OnceLock;
use std::time::Instant;

fn start() -> &'static Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now)
}

/// Starts the clock (call early in `main`).
pub fn init() {
    start();
}

/// Prints how long the process has run when it reaches `phase`.
pub fn phase(phase: &str) {
    if std::env::var_os("BYREIS_TIMINGS").is_some() {
        eprintln!(
            "timing: {:>8.1} ms  {:>5} MiB peak RSS  {phase}",
            start().elapsed().as_secs_f64() * 1000.0,
            peak_rss_mib().map_or_else(|| "?".to_owned(), |m| m.to_string()),
        );
    }
}

/// The process's peak resident set so far (`VmHWM`), where `/proc` has it.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
