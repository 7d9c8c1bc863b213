//! What users see, as reviewed snapshots (insta): the help of every verb,
//! and every `doctor` finding as its line, so a change of wording or of a
//! flag shows up as a diff in review.
//! Update with `INSTA_UPDATE=always cargo test --lib cli::snapshot_tests`
//! (or `cargo insta review`), then read the diff before committing.

use clap::CommandFactory as _;

use super::Cli;

/// Every command path (`byreis`, `byreis set`, `byreis admin add`, …)
/// with its long help, in declaration order.
fn every_help() -> Vec<(String, String)> {
    fn walk(cmd: &mut clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        out.push((path.to_string(), cmd.render_long_help().to_string()));
        // clap's generated `help` verbs print what is snapshotted here.
        for sub in cmd.get_subcommands_mut().filter(|s| s.get_name() != "help") {
            let name = format!("{path} {}", sub.get_name());
            walk(sub, &name, out);
        }
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = Vec::new();
    walk(&mut cmd, "byreis", &mut out);
    out
}

#[test]
fn help_of_every_verb() {
    let helps = every_help();
    assert!(helps.len() > 30, "every verb is walked: {}", helps.len());
    for (path, help) in helps {
        let name = path.replace(' ', "-");
        insta::assert_snapshot!(name, help, &path);
    }
}

/// Every verification code as `doctor` prints its failing check, with the
/// code's meaning as the detail, and the fix that refusals print.
#[test]
fn every_doctor_finding() {
    use crate::diag::Code;
    use crate::doctor::{Check, Status};
    let mut text = String::new();
    for &code in Code::ALL {
        let c = Check {
            check: crate::doctor::stage_name(code).to_string(),
            status: Status::Fail,
            code: Some(code.as_str()),
            detail: code.what().to_string(),
        };
        text.push_str(&super::render::check_line(&c));
        text.push_str("\n     fix: ");
        text.push_str(code.fix());
        text.push('\n');
    }
    insta::assert_snapshot!("doctor-findings", text);
}

/// Every refusal code as `main()` renders it (text), with the code's
/// meaning as the message, and the JSON object `--format json` adds.
#[test]
fn every_refusal_rendering() {
    use crate::diag::Refusal;
    let mut text = String::new();
    for &r in Refusal::ALL {
        let e = super::CliError::Refused(r, r.what().to_string());
        text.push_str(&super::render::error_text(&e));
        text.push_str(&super::render::error_json(&e).to_string());
        text.push('\n');
    }
    insta::assert_snapshot!("refusals", text);
}
