//! Phase timings on stderr when `BYREIS_TIMINGS` is set (for
//! `scripts/bench-rotate.sh`; never on by default).

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
            "timing: {:>8.1} ms  {phase}",
            start().elapsed().as_secs_f64() * 1000.0
        );
    }
}
