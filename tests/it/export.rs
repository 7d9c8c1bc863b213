//! `byreis export` (issue 16): every format read back by the real readers
//! (python-dotenv, sh/dash, bash and zsh, `kubectl create secret`), a value
//! a format cannot carry refused with nothing on stdout, and a tampered
//! state refused as `get` refuses it. A missing reader fails the test.

use std::fs;

use crate::common::*;
use serde_json::Value;

const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nbm90IGEgcmVhbCBrZXk=\n-----END PRIVATE KEY-----\n";

/// A world whose `prod` holds values that are hard to quote.
fn tricky() -> (World, Vec<(&'static str, &'static str)>) {
    let w = World::with_secrets();
    let values = vec![
        ("PEM", PEM),
        ("QUOTES", "say \"hi\" and 'bye' \\o/"),
        ("DOLLAR", "cost $5 `date` $HOME"),
        ("SPACES", "  leading and trailing  "),
        ("UNICODE", "pässwörd ✓"),
        ("EMPTY", ""),
        ("HASH", "#not-a-comment = x"),
    ];
    for (k, v) in &values {
        w.set("prod", k, v);
    }
    (w, values)
}

fn expected(values: &[(&str, &str)]) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("API".into(), PROD_API.into());
    m.insert("DB".into(), PROD_DB.into());
    for (k, v) in values {
        m.insert((*k).into(), (*v).into());
    }
    Value::Object(m)
}

fn export(w: &World, args: &[&str]) -> String {
    let mut all = vec!["export", "prod"];
    all.extend_from_slice(args);
    let o = w.alice_run(&all);
    assert_ok(&o, &format!("byreis {}", all.join(" ")));
    stdout(&o)
}

/// The names' values in the environment a shell built from `setup`, as
/// JSON printed by python (so nothing is lost in between).
fn shell_env(w: &World, shell: &str, setup: &str, names: &[String]) -> Value {
    let script = format!(
        "{setup}\nexec python3 -c 'import os,sys,json; print(json.dumps({{k: os.environ.get(k) for k in sys.argv[1:]}}))' {}",
        names.join(" ")
    );
    let o = w.tool(shell, &w.root, &["-c", &script], None);
    assert_ok(&o, &format!("{shell} reads the export back"));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn names(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn json_is_one_object_of_every_value() {
    let (w, values) = tricky();
    let v: Value = serde_json::from_str(&export(&w, &["--format", "json"])).unwrap();
    assert_eq!(v, expected(&values));
    let v: Value =
        serde_json::from_str(&export(&w, &["--format", "json", "--only", "DB,PEM"])).unwrap();
    assert_eq!(v, serde_json::json!({"DB": PROD_DB, "PEM": PEM}));
}

#[test]
fn dotenv_reads_back_byte_for_byte_in_python_dotenv_and_sh() {
    let (w, values) = tricky();
    let want = expected(&values);
    let file = w.root.join("prod.env");
    fs::write(&file, export(&w, &["--format", "dotenv"])).unwrap();
    let o = w.tool(
        "python3",
        &w.root,
        &[
            "-c",
            "import sys,json,dotenv; print(json.dumps(dict(dotenv.dotenv_values(sys.argv[1]))))",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_ok(&o, "python-dotenv (pip install python-dotenv)");
    let got: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(got, want, "python-dotenv");
    for sh in ["sh", "dash", "bash", "zsh"] {
        let setup = format!("set -a; . {}; set +a", file.display());
        assert_eq!(
            shell_env(&w, sh, &setup, &names(&want)),
            want,
            "{sh}: set -a; ."
        );
    }
}

#[test]
fn shell_is_safe_to_eval_in_bash_dash_and_zsh() {
    let (w, values) = tricky();
    let want = expected(&values);
    let file = w.root.join("prod.sh");
    fs::write(&file, export(&w, &["--format", "shell"])).unwrap();
    for sh in ["dash", "bash", "zsh"] {
        let setup = format!("eval \"$(cat {})\"", file.display());
        assert_eq!(shell_env(&w, sh, &setup, &names(&want)), want, "{sh}: eval");
    }
}

/// `kubectl create secret generic` of the same values, as YAML.
fn kubectl_secret(w: &World, name: &str, ns: &str, values: &Value) -> serde_yaml::Value {
    let dir = w.root.join("kubectl-values");
    fs::create_dir_all(&dir).unwrap();
    let mut args = vec![
        "create".to_string(),
        "secret".into(),
        "generic".into(),
        name.into(),
        "--namespace".into(),
        ns.into(),
        "--type=Opaque".into(),
        "--dry-run=client".into(),
        "-o".into(),
        "yaml".into(),
    ];
    for (k, v) in values.as_object().unwrap() {
        let p = dir.join(k);
        fs::write(&p, v.as_str().unwrap()).unwrap();
        args.push(format!("--from-file={k}={}", p.display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = w.tool("kubectl", &w.root, &args, None);
    assert_ok(
        &o,
        "kubectl create secret (Debian: apt-get install kubernetes-client)",
    );
    serde_yaml::from_str(&stdout(&o)).unwrap()
}

#[test]
fn k8s_secret_matches_kubectl_and_names_the_verified_state() {
    let (w, values) = tricky();
    let want = expected(&values);
    let ours: serde_yaml::Value = serde_yaml::from_str(&export(
        &w,
        &[
            "--format",
            "k8s-secret",
            "--name",
            "app-secrets",
            "--namespace",
            "prod",
        ],
    ))
    .unwrap();
    let theirs = kubectl_secret(&w, "app-secrets", "prod", &want);
    for field in ["apiVersion", "kind", "type", "data"] {
        assert_eq!(ours[field], theirs[field], "{field}: ours {ours:?}");
    }
    for field in ["name", "namespace"] {
        assert_eq!(
            ours["metadata"][field], theirs["metadata"][field],
            "{field}"
        );
    }
    let a = &ours["metadata"]["annotations"];
    assert_eq!(a["byreis.dev/project"], "demo");
    assert_eq!(a["byreis.dev/environment"], "prod");
    let counter = w.manifest_counter().to_string();
    assert_eq!(a["byreis.dev/counter"].as_str(), Some(counter.as_str()));
    let sha = sha256_file(&w.root, &w.manifest());
    assert_eq!(a["byreis.dev/manifest-sha256"].as_str(), Some(sha.as_str()));

    let o = w.alice_run(&["export", "prod", "--format", "k8s-secret"]);
    assert_failed(&o, "k8s-secret without --name");
    assert_stderr_contains(&o, "needs --name", "the refusal says what is missing");
    assert_eq!(stdout(&o), "", "nothing on stdout");
    let o = w.alice_run(&[
        "export",
        "prod",
        "--format",
        "k8s-secret",
        "--name",
        "Bad_Name",
    ]);
    assert_failed(&o, "an invalid Secret name");
    assert_eq!(stdout(&o), "", "nothing on stdout");
}

#[test]
fn a_value_a_format_cannot_carry_is_refused_with_nothing_written() {
    let w = World::with_secrets();
    w.set("prod", "EXPANDS", "${HOME}/x");
    let o = w.alice_run(&["export", "prod", "--format", "dotenv"]);
    assert_failed(&o, "dotenv of a value python-dotenv would expand");
    assert_stderr_contains(&o, "EXPANDS's value", "the name is given");
    assert_stderr_contains(&o, "nothing was written", "and what happened");
    assert_eq!(
        stdout(&o),
        "",
        "nothing on stdout, not even the other values"
    );
    assert_no_leak(&o, &["${HOME}/x", PROD_DB], "the refusal");
    // The other formats carry it.
    let v: Value = serde_json::from_str(&export(&w, &["--format", "json"])).unwrap();
    assert_eq!(v["EXPANDS"], "${HOME}/x");
    let o = w.alice_run(&["export", "prod", "--format", "json", "--only", "NOPE"]);
    assert_failed(&o, "--only an unknown name");
    assert_stderr_contains(&o, "no secret named NOPE", "the name is given");
    assert_eq!(stdout(&o), "");
}

#[test]
fn a_tampered_state_is_refused_as_get_refuses_it() {
    let w = World::with_secrets();
    let file = w.secrets_file("prod");
    flip_a_bit(&file);
    for format in ["dotenv", "json", "shell"] {
        let o = w.alice_run(&["export", "prod", "--format", format]);
        assert_refused(&o, &["file-hash-mismatch"], &format!("export {format}"));
        assert_eq!(stdout(&o), "", "nothing on stdout ({format})");
        assert_no_leak(&o, &[PROD_DB, PROD_API], "the refusal");
    }
}

// issue 16: values that are files. `set --from-file` keeps the bytes
// exactly (trailing newline included); binary is refused with the base64
// route; nothing is changed by a refusal.
#[test]
fn set_from_file_keeps_the_bytes_and_refuses_binary() {
    let w = World::with_secrets();
    let pem = w.root.join("key.pem");
    fs::write(&pem, PEM).unwrap();
    let o = w.alice_run(&[
        "set",
        "prod",
        "TLS_KEY",
        "--from-file",
        pem.to_str().unwrap(),
    ]);
    assert_ok(&o, "set --from-file");
    let v: Value =
        serde_json::from_str(&export(&w, &["--format", "json", "--only", "TLS_KEY"])).unwrap();
    assert_eq!(
        v["TLS_KEY"], PEM,
        "byte for byte, the trailing newline kept"
    );

    let before = w.manifest_counter();
    let bin = w.root.join("blob.bin");
    fs::write(&bin, [0u8, 159, 146, 150, 1, 2]).unwrap();
    let o = w.alice_run(&["set", "prod", "BLOB", "--from-file", bin.to_str().unwrap()]);
    assert_failed(&o, "a binary file");
    assert_stderr_contains(&o, "is binary", "says why");
    assert_stderr_contains(&o, "base64 -w0", "and the way to store it");
    assert_eq!(w.manifest_counter(), before, "nothing was signed");
    let o = w.alice_run(&[
        "set",
        "prod",
        "X",
        "v",
        "--from-file",
        pem.to_str().unwrap(),
    ]);
    assert_exit(&o, 2, "a value and --from-file");
}

// From review: `--only` names were echoed raw (terminal escapes, forged
// lines in CI logs). They are checked as names first.
#[test]
fn only_names_are_checked_before_they_are_shown() {
    let w = World::with_secrets();
    let o = w.alice_run(&[
        "export",
        "prod",
        "--format",
        "json",
        "--only",
        "X\u{1b}[2J\nbyreis: verified fake",
    ]);
    assert_failed(&o, "a control character in --only");
    assert!(
        !stderr(&o).contains('\u{1b}'),
        "no raw escape: {}",
        dump(&o)
    );
    assert!(
        !stderr(&o).contains("\nbyreis: verified fake"),
        "no forged line: {}",
        dump(&o)
    );
    assert_eq!(stdout(&o), "");
}
