//! How findings look on the terminal: pure functions from values to text,
//! so `snapshot_tests` can show every one of them.

use super::CliError;
use crate::diag::Refusal;
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

/// The code, message, fix (verification codes only) and exit code of an
/// error; `None` for [`CliError::Exit`], which is already reported.
fn parts(err: &CliError) -> Option<(&'static str, &str, Option<&'static str>, i32)> {
    match err {
        CliError::Exit(_) => None,
        CliError::Verify(e) => Some((
            e.code.as_str(),
            e.detail.as_str(),
            Some(e.code.fix()),
            super::EXIT_VERIFY,
        )),
        // A usage refusal exits as clap's usage errors do (2, as the help's
        // exit codes say); every other refusal 1.
        CliError::Refused(r, msg) => Some((
            r.as_str(),
            msg.as_str(),
            None,
            if *r == Refusal::Usage { 2 } else { 1 },
        )),
    }
}

/// The exit code of an error.
pub(super) fn exit_code(err: &CliError) -> i32 {
    match err {
        CliError::Exit(code) => *code,
        other => parts(other).map_or(1, |p| p.3),
    }
}

/// An error as text for stderr: `byreis: error[CODE]: message`, and the
/// fix of a verification code on the next line.
pub(super) fn error_text(err: &CliError) -> String {
    let Some((code, message, fix, _)) = parts(err) else {
        return String::new();
    };
    let mut out = format!("byreis: error[{code}]: {message}\n");
    if let Some(fix) = fix {
        out.push_str(&format!("  fix: {fix}\n"));
    }
    out
}

/// An error as the one JSON object `--format json` prints on stdout.
pub(super) fn error_json(err: &CliError) -> serde_json::Value {
    let Some((code, message, fix, exit)) = parts(err) else {
        return serde_json::Value::Null;
    };
    let mut obj = serde_json::json!({ "code": code, "message": message, "exit": exit });
    if let Some(fix) = fix {
        obj["fix"] = serde_json::json!(fix);
    }
    serde_json::json!({ "error": obj })
}
