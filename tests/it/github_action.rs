//! The GitHub Action (integrations/github-action): its steps' script run
//! with a fake `$GITHUB_ENV`. Every line of every value is masked
//! (`::add-mask::`) before any value is written; the values reach the job's
//! environment exactly; a refused state hands over nothing.

use std::fs;
use std::path::Path;
use std::process::Stdio;

use crate::common::*;

const PEM: &str = "-----BEGIN KEY-----\nline-two-of-the-key\n-----END KEY-----";

fn script() -> &'static str {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/integrations/github-action/run.sh"
    )
}

/// Runs the action's script as a job would, its stdout and `$GITHUB_ENV`
/// appended to one file (`log`) so their order is kept.
fn run_action(w: &World, log: &Path, extra: &[(&str, &str)]) -> std::process::Output {
    let bin_dir = Path::new(bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut c = clean_command("bash", &w.root, &w.proj);
    c.arg(script())
        .env("PATH", path)
        .env("BYREIS_HOME", &w.alice.home)
        .env("BYREIS_ANCHOR", &w.anchor)
        .env("GITHUB_ENV", log)
        .env("RUNNER_TEMP", &w.root)
        .env("BYREIS_ACTION_ENV", "prod")
        .stdout(Stdio::from(out));
    for (k, v) in extra {
        c.env(k, v);
    }
    c.stdin(Stdio::null());
    c.output().expect("bash runs")
}

/// `NAME<<DELIM … DELIM` blocks of a `$GITHUB_ENV` file.
fn github_env_values(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        let Some((name, delim)) = l.split_once("<<") else {
            continue;
        };
        let mut value = Vec::new();
        for v in lines.by_ref() {
            if v == delim {
                break;
            }
            value.push(v);
        }
        out.push((name.to_string(), value.join("\n")));
    }
    out
}

#[test]
fn every_value_is_masked_before_it_is_handed_to_the_job() {
    let w = World::with_secrets();
    w.set("prod", "PEM", PEM);
    let log = w.root.join("job.log");
    let o = run_action(&w, &log, &[]);
    assert!(o.status.success(), "the action's script\n{}", dump(&o));
    let text = fs::read_to_string(&log).unwrap();
    let first_value = text
        .lines()
        .position(|l| !l.starts_with("::add-mask::"))
        .unwrap();
    for value in [PROD_DB, PROD_API, PEM] {
        for line in value.lines() {
            let mask = text
                .lines()
                .position(|l| l == format!("::add-mask::{line}"))
                .unwrap_or_else(|| panic!("no mask for a line of a value\n{text}"));
            assert!(mask < first_value, "a mask comes after a value\n{text}");
        }
    }
    let got = github_env_values(&text);
    let get = |k: &str| got.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("DB"), Some(PROD_DB));
    assert_eq!(get("API"), Some(PROD_API));
    assert_eq!(get("PEM"), Some(PEM));
    assert_no_leak(&o, &[PROD_DB, PROD_API], "the script's stderr");
}

#[test]
fn the_dotenv_mode_writes_a_private_file_after_the_masks() {
    use std::os::unix::fs::PermissionsExt as _;
    let w = World::with_secrets();
    let log = w.root.join("job.log");
    let file = w.root.join("prod.env");
    let o = run_action(
        &w,
        &log,
        &[
            ("BYREIS_ACTION_MODE", "dotenv"),
            ("BYREIS_ACTION_DOTENV", file.to_str().unwrap()),
            ("BYREIS_ACTION_ONLY", "DB"),
        ],
    );
    assert!(o.status.success(), "dotenv mode\n{}", dump(&o));
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("DB=\"{PROD_DB}\"\n")
    );
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = fs::read_to_string(&log).unwrap();
    assert_eq!(
        text,
        format!("::add-mask::{PROD_DB}\n"),
        "only the mask on stdout"
    );
}

#[test]
fn a_refused_state_hands_over_nothing() {
    let w = World::with_secrets();
    let file = w.secrets_file("prod");
    flip_a_bit(&file);
    let log = w.root.join("job.log");
    let o = run_action(&w, &log, &[]);
    assert!(!o.status.success(), "the step fails\n{}", dump(&o));
    assert!(
        stderr(&o).contains("error[file-hash-mismatch]"),
        "{}",
        dump(&o)
    );
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(text, "", "nothing reached the job");
}

// From review: a dotenv path the checkout links elsewhere was followed.
#[test]
fn the_dotenv_mode_never_follows_a_link() {
    let w = World::with_secrets();
    let log = w.root.join("job.log");
    let public = w.root.join("public.html");
    fs::write(&public, "<html></html>\n").unwrap();
    let link = w.root.join("linked.env");
    std::os::unix::fs::symlink(&public, &link).unwrap();
    let o = run_action(
        &w,
        &log,
        &[
            ("BYREIS_ACTION_MODE", "dotenv"),
            ("BYREIS_ACTION_DOTENV", link.to_str().unwrap()),
        ],
    );
    assert!(!o.status.success(), "refused\n{}", dump(&o));
    assert!(stderr(&o).contains("is a link"), "{}", dump(&o));
    assert_eq!(
        fs::read_to_string(&public).unwrap(),
        "<html></html>\n",
        "the link's target is untouched"
    );
}

// The action hands values to later steps as variables: names exec refuses
// (BASH_ENV runs a file in every later bash step) are refused here too,
// unless the signed state allows them.
#[test]
fn names_that_change_later_steps_are_refused_unless_allowed() {
    let w = World::with_secrets();
    w.set("prod", "BASH_ENV", "/tmp/evil.sh");
    let log = w.root.join("job.log");
    let o = run_action(&w, &log, &[]);
    assert!(!o.status.success(), "refused\n{}", dump(&o));
    assert!(
        stderr(&o).contains("error[exec-refused]")
            && stderr(&o).contains("BASH_ENV (family BASH_*"),
        "{}",
        dump(&o)
    );
    assert!(
        stderr(&o).contains("export --as-env refused (nothing was written)"),
        "{}",
        dump(&o)
    );
    assert_eq!(
        fs::read_to_string(&log).unwrap_or_default(),
        "",
        "nothing reached the job"
    );
    let o = w.alice_run(&["exec-allow", "prod", "BASH_ENV"]);
    assert_ok(&o, "exec-allow");
    let o = run_action(&w, &log, &[]);
    assert!(o.status.success(), "allowed now\n{}", dump(&o));
    let values = github_env_values(&fs::read_to_string(&log).unwrap());
    assert!(values.contains(&("BASH_ENV".into(), "/tmp/evil.sh".into())));
}

// A signed change landing between the dotenv export and the masks' export
// would hand over values never masked: the action reads the state again
// and hands over nothing when it changed.
#[test]
fn a_change_while_handing_over_writes_no_dotenv_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let w = World::with_secrets();
    let wrap = w.root.join("wrap");
    fs::create_dir(&wrap).unwrap();
    // A `byreis` that lands a change just before the dotenv export.
    let fake = wrap.join("byreis");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$*\" in *'--format dotenv'*) printf 'changed\\n' | '{bin}' set prod DB >/dev/null 2>&1 ;; esac\nexec '{bin}' \"$@\"\n",
            bin = bin()
        ),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        wrap.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = w.root.join("job.log");
    let file = w.root.join("prod.env");
    let o = run_action(
        &w,
        &log,
        &[
            ("PATH", &path),
            ("BYREIS_ACTION_MODE", "dotenv"),
            ("BYREIS_ACTION_DOTENV", file.to_str().unwrap()),
        ],
    );
    assert!(!o.status.success(), "refused\n{}", dump(&o));
    assert!(
        stderr(&o).contains("changed while they were handed over"),
        "{}",
        dump(&o)
    );
    assert!(!file.exists(), "no dotenv file with values never masked");
    assert_eq!(
        w.alice_run(&["get", "prod", "DB"]).stdout,
        b"changed\n",
        "control: the change landed"
    );
}
