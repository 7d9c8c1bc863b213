//! How findings look on the terminal: pure functions from values to text,
//! so `snapshot_tests` can show every one of them.

use crate::doctor::{Check, Status};

/// One `doctor` (or `registry verify`) check as a line of text:
/// `FAIL manifest        [manifest-invalid] detail`.
pub(super) fn check_line(c: &Check) -> String {
    let status = match c.status {
        Status::Ok => "ok  ",
        Status::Warn => "warn",
        Status::Fail => "FAIL",
        Status::Skipped => "skip",
    };
    let code = c.code.map(|c| format!(" [{c}]")).unwrap_or_default();
    let detail = if c.detail.is_empty() {
        String::new()
    } else {
        format!(" {}", c.detail)
    };
    format!("{status} {:<16}{code}{detail}", c.check)
}
