//! Crash injection for tests: when `BYREIS_TEST_KILL_AT` names a step,
//! byreis sends itself SIGKILL there. Harmless outside tests (it only lets
//! a user kill their own process), and it is how the all-or-nothing claim
//! of every write is tested at each step boundary.

/// The step boundaries of a signed write, in order.
pub const STEPS: &[&str] = &[
    "prepared",
    "commit-object",
    "begun",
    "branch",
    "project-pushed",
    "recorded",
];

/// Kills this process with SIGKILL if `BYREIS_TEST_KILL_AT` is `step`.
pub fn hit(step: &str) {
    if std::env::var("BYREIS_TEST_KILL_AT").is_ok_and(|s| s == step) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}
