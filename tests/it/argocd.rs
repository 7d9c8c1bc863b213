//! Verification without git history (issue 16): Argo CD hands plugins a
//! copy of the repository without `.git`. `verify`, `get` and `export` work
//! on such a tree when it holds exactly the pinned state, refuse anything
//! else, and refuse every write; the Argo CD plugin's generate command
//! (integrations/argocd/plugin.yaml) runs on such a copy.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

/// A copy of the project's pinned commit without `.git` (`git archive`).
fn treeless_copy(w: &World) -> PathBuf {
    let copy = w.root.join("argocd-copy");
    fs::create_dir_all(&copy).unwrap();
    let tar = w.root.join("copy.tar");
    w.git_ok(&w.proj, &["archive", "-o", tar.to_str().unwrap(), "HEAD"]);
    let o = w.tool("tar", &copy, &["-xf", tar.to_str().unwrap()], None);
    assert_ok(&o, "tar");
    fs::write(
        copy.join("app.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  mode: prod\n",
    )
    .unwrap();
    assert!(!copy.join(".git").exists());
    copy
}

/// The environment a CI machine or the plugin's sidecar gives byreis.
fn ci_env(w: &World, home: &Path) -> Vec<(String, String)> {
    vec![
        ("BYREIS_HOME".into(), home.display().to_string()),
        ("BYREIS_ANCHOR".into(), w.anchor.clone()),
        ("BYREIS_REGISTRY".into(), w.reg.display().to_string()),
        ("BYREIS_PROJECT".into(), "demo".into()),
        (
            "BYREIS_IDENTITY_FILE".into(),
            identity_file(&w.alice).display().to_string(),
        ),
        ("CI".into(), "true".into()),
    ]
}

fn in_copy(w: &World, copy: &Path, args: &[&str]) -> std::process::Output {
    let home = w.root.join("ci-home");
    fs::create_dir_all(&home).unwrap();
    let mut c = clean_command(bin(), &w.root, copy);
    c.args(args);
    for (k, v) in ci_env(w, &home) {
        c.env(k, v);
    }
    output(&mut c, None)
}

#[test]
fn a_tree_without_git_verifies_only_the_pinned_state() {
    let w = World::with_secrets();
    let copy = treeless_copy(&w);
    let o = in_copy(&w, &copy, &["verify"]);
    assert_ok(&o, "verify on a copy without .git");
    let o = in_copy(&w, &copy, &["get", "prod", "DB"]);
    assert_ok(&o, "get");
    assert_eq!(stdout(&o).trim(), PROD_DB);
    let o = in_copy(&w, &copy, &["export", "prod", "--format", "json"]);
    assert_ok(&o, "export");

    // Even an admin, with her keys, cannot write there.
    let o = run_env(
        &w.alice.home,
        &copy,
        &["set", "prod", "DB"],
        Some("x\n"),
        &[
            ("BYREIS_ANCHOR", w.anchor.as_str()),
            ("BYREIS_REGISTRY", w.reg.to_str().unwrap()),
        ],
    );
    assert_failed(&o, "a write on a copy without .git");
    assert_stderr_contains(&o, "has no .git", "says why");

    // A changed file, and an older state, are refused.
    let file = copy.join("secrets/prod.enc.yaml");
    let good = fs::read(&file).unwrap();
    flip_a_bit(&file);
    let o = in_copy(&w, &copy, &["get", "prod", "DB"]);
    assert_refused(&o, &["file-hash-mismatch"], "a changed file");
    assert_no_leak(&o, &[PROD_DB], "the refusal");
    fs::write(&file, &good).unwrap();
    w.set("prod", "DB", "newer-value");
    let o = in_copy(&w, &copy, &["verify"]);
    assert_refused(
        &o,
        &["manifest-not-pinned", "manifest-rollback"],
        "an older state",
    );
    assert_stderr_contains(&o, "has no .git", "says why only the pinned state verifies");
}

/// `spec.generate` of the plugin, as one shell command line.
fn plugin_generate() -> (String, Vec<String>) {
    let text = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/integrations/argocd/plugin.yaml"
    ))
    .unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(v["kind"], "ConfigManagementPlugin");
    let g = &v["spec"]["generate"];
    let cmd: Vec<String> = g["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let args: Vec<String> = g["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    (
        cmd[0].clone(),
        cmd[1..].iter().cloned().chain(args).collect(),
    )
}

fn run_plugin(w: &World, copy: &Path) -> std::process::Output {
    let (program, args) = plugin_generate();
    let home = w.root.join("sidecar-home");
    fs::create_dir_all(&home).unwrap();
    let bin_dir = Path::new(bin()).parent().unwrap();
    let mut c = clean_command(&program, &w.root, copy);
    c.args(&args)
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .env("ARGOCD_ENV_BYREIS_ENV", "prod")
        .env("ARGOCD_ENV_BYREIS_SECRET_NAME", "app-secrets")
        .env("ARGOCD_ENV_BYREIS_NAMESPACE", "shop");
    for (k, v) in ci_env(w, &home) {
        c.env(k, v);
    }
    output(&mut c, None)
}

#[test]
fn the_argocd_plugin_generates_the_app_with_its_verified_secret() {
    let w = World::with_secrets();
    let copy = treeless_copy(&w);
    let o = run_plugin(&w, &copy);
    assert_ok(&o, "the plugin's generate command");
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&stdout(&o))
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &serde_yaml::Value| !v.is_null())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["ConfigMap", "Secret"],
        "the app's manifest, then the Secret"
    );
    assert_eq!(docs[1]["metadata"]["namespace"], "shop");
    assert!(docs[1]["data"]["DB"].is_string());

    let file = copy.join("secrets/prod.enc.yaml");
    flip_a_bit(&file);
    let o = run_plugin(&w, &copy);
    assert_failed(&o, "the plugin on a changed file");
    assert_eq!(
        stdout(&o),
        "",
        "nothing generated, not even the other manifests"
    );
    assert_stderr_contains(&o, "error[file-hash-mismatch]", "the refusal is shown");
}

// From review: a file name with a newline made the plugin's `read` loop
// cat a path outside the tree (the sidecar's identity). Names travel
// NUL-separated and a name with a control character stops the render.
#[test]
fn the_plugin_reads_nothing_outside_the_tree() {
    let w = World::with_secrets();
    let copy = treeless_copy(&w);
    let identity = identity_file(&w.alice);
    let dir = copy.join("x\n");
    let inner = dir.join(format!("{}\n.yaml", identity.display()).trim_start_matches('/'));
    fs::create_dir_all(inner.parent().unwrap()).unwrap();
    fs::write(&inner, "kind: Decoy\n").unwrap();
    fs::write(copy.join("x"), "").unwrap();
    fs::write(copy.join(".yaml"), "").unwrap();
    let o = run_plugin(&w, &copy);
    assert_failed(&o, "a name with a newline");
    assert_stderr_contains(&o, "control character", "says why");
    let key = fs::read_to_string(&identity).unwrap();
    let secret_line = key
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    assert!(
        !stdout(&o).contains(secret_line),
        "the identity was printed"
    );

    // The whole `.byreis` directory linked from elsewhere is refused.
    let copy2 = w.root.join("linked");
    fs::create_dir_all(&copy2).unwrap();
    let o = w.tool(
        "cp",
        &w.root,
        &[
            "-a",
            &format!("{}/.", copy.display()),
            copy2.to_str().unwrap(),
        ],
        None,
    );
    assert_ok(&o, "cp");
    fs::remove_dir_all(copy2.join("x\n")).unwrap();
    let real = w.root.join("byreis-dir-elsewhere");
    fs::rename(copy2.join(".byreis"), &real).unwrap();
    std::os::unix::fs::symlink(&real, copy2.join(".byreis")).unwrap();
    let o = in_copy(&w, &copy2, &["get", "prod", "DB"]);
    assert_failed(&o, "a linked .byreis");
    assert_no_leak(&o, &[PROD_DB], "the refusal");
}

// From review: `registry refresh` and `admin add` wrote from a tree
// without .git (they bypassed the write guard).
#[test]
fn roster_and_record_writes_are_refused_on_a_tree_without_git() {
    let w = World::with_secrets();
    let copy = treeless_copy(&w);
    let before = w.git_ok(&w.reg, &["rev-parse", "HEAD"]);
    let env = [
        ("BYREIS_ANCHOR", w.anchor.as_str()),
        ("BYREIS_REGISTRY", w.reg.to_str().unwrap()),
    ];
    let o = run_env(&w.alice.home, &copy, &["registry", "refresh"], None, &env);
    assert_failed(&o, "registry refresh");
    assert_stderr_contains(&o, "has no .git", "says why");
    let bob = keygen(&w.root, "bob");
    let o = run_env(&w.alice.home, &copy, &admin_add_args(&bob), None, &env);
    assert_failed(&o, "admin add");
    assert_stderr_contains(&o, "has no .git", "says why");
    assert_eq!(
        w.git_ok(&w.reg, &["rev-parse", "HEAD"]),
        before,
        "the registry is unchanged"
    );
}
