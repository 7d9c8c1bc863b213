//! Plaintext canary (invariant 5): a unique value is set, edited, exec'd
//! and rotated; then the working trees, every git object of both
//! repositories (decompressed), the temp directories, /dev/shm, every
//! BYREIS_HOME and HOME are searched for it. It must not be found anywhere.

use std::fs;
use std::path::Path;

use crate::common::*;

fn canary(tag: &str) -> String {
    let mut bytes = [0u8; 12];
    getrandom(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("canary-{tag}-{hex}")
}

fn getrandom(buf: &mut [u8]) {
    use std::io::Read as _;
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("read /dev/urandom");
}

/// Every file under `dir` (not following links) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8], out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let p = e.path();
        if ft.is_dir() {
            files_containing(&p, needle, out);
        } else if ft.is_file() {
            if let Ok(bytes) = fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    out.push(p.display().to_string());
                }
            }
        }
    }
}

/// Every object of the repository at `repo`, decompressed.
fn objects_containing(w: &World, repo: &Path, needle: &[u8]) -> bool {
    let o = w.git(
        repo,
        &["cat-file", "--batch-all-objects", "--batch", "--unordered"],
    );
    assert_ok(&o, "git cat-file --batch-all-objects");
    assert!(
        !o.stdout.is_empty(),
        "no objects read from {}",
        repo.display()
    );
    o.stdout.windows(needle.len()).any(|win| win == needle)
}

/// Top-level entries of `dir` (to scan only what appears during the test:
/// a CI checkout under /tmp, with its build directory, is not ours to read).
fn entries(dir: &Path) -> std::collections::BTreeSet<std::path::PathBuf> {
    fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn plaintext_never_reaches_disk() {
    let temp_dirs: Vec<std::path::PathBuf> = {
        let mut v = vec![std::env::temp_dir(), "/dev/shm".into(), "/tmp".into()];
        if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR") {
            v.push(runtime.into());
        }
        v.sort();
        v.dedup();
        v
    };
    let before: Vec<_> = temp_dirs.iter().map(|d| entries(d)).collect();
    let w = World::with_secrets();
    let set_value = canary("set");
    let edit_value = canary("edit");
    let proposed_value = canary("proposed");
    let submitted_value = canary("submitted");
    let needles = [
        set_value.clone(),
        edit_value.clone(),
        proposed_value.clone(),
        submitted_value.clone(),
    ];

    // set (stdin)
    w.set("prod", "CANARY", &set_value);

    // edit: the editor script appends a value it reads from its environment,
    // so the canary is never written into the script file itself.
    let editor = w.root.join("editor.sh");
    write_script(
        &editor,
        "#!/bin/sh\nprintf 'EDITED: \"%s\"\\n' \"$CANARY_EDIT\" >> \"$1\"\n",
    );
    let o = w.alice_run_env(
        &["edit", "prod"],
        &[
            ("EDITOR", editor.to_str().unwrap()),
            ("CANARY_EDIT", &edit_value),
        ],
    );
    assert_ok(&o, "edit");
    w.assert_get("prod", "EDITED", &edit_value);

    // exec: the child sees the value
    let o = w.alice_run(&[
        "exec",
        "prod",
        "--",
        "sh",
        "-c",
        "test -n \"$CANARY\" && test -n \"$EDITED\"",
    ]);
    assert_ok(&o, "exec");

    // rotate: add a reader, then remove them
    let bob = keygen(&w.root, "bob");
    let add = format!("bob={}", bob.recipient);
    assert_ok(&w.rotate(&["--add", &add]), "rotate --add");
    assert_ok(&w.rotate(&["--remove", "bob"]), "rotate --remove");
    w.assert_get("prod", "CANARY", &set_value);

    // A member who is not an admin proposes a value (a draft encrypted to
    // the admins, submitted as a branch) and an admin applies it.
    let dave = keygen(&w.root, "dave");
    assert_ok(
        &w.rotate(&["--add", &format!("dave={}", dave.recipient)]),
        "rotate --add dave",
    );
    let o = run_env(
        &dave.home,
        &w.proj,
        &["set", "prod", "SUBMITTED"],
        Some(&format!("{submitted_value}\n")),
        &anchor_env(&w),
    );
    assert_ok(&o, "member set (a proposal)");
    assert_ok(&w.run_as(&dave, &["submit"]), "submit");
    let branch = w.git_ok(
        &w.proj,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/byreis/submit/",
        ],
    );
    assert_ok(
        &w.alice_run(&["approve", branch.trim(), "--yes"]),
        "approve the submission",
    );
    w.assert_get("prod", "SUBMITTED", &submitted_value);

    // propose and approve: with two admins required, a value travels as a
    // proposal (its files on a branch) and lands when a second admin
    // approves.
    let carol = keygen(&w.root, "carol");
    add_admin(&w, &carol);
    let add = format!("carol={}", carol.recipient);
    assert_ok(&w.rotate(&["--add", &add]), "rotate --add carol");
    w.raise_thresholds_k2(&carol);
    let o = w.alice_run_stdin(&["set", "prod", "PROPOSED"], &format!("{proposed_value}\n"));
    assert_ok(&o, "set as a proposal");
    let branch = w.git_ok(
        &w.proj,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/byreis/proposal/",
        ],
    );
    let o = w.run_as(&carol, &["approve", branch.trim(), "--yes"]);
    assert_ok(&o, "approve");
    w.assert_get("prod", "PROPOSED", &proposed_value);

    // The scanners must be able to find something: a planted decoy in a
    // file and in a git object is found.
    let decoy = canary("decoy");
    fs::write(w.root.join("decoy.txt"), &decoy).unwrap();
    let mut found = Vec::new();
    files_containing(&w.root, decoy.as_bytes(), &mut found);
    assert_eq!(found.len(), 1, "the file scanner missed a planted decoy");
    let o = w.tool(
        "git",
        &w.proj,
        &["hash-object", "-w", "--stdin"],
        Some(decoy.as_bytes()),
    );
    assert_ok(&o, "git hash-object");
    assert!(
        objects_containing(&w, &w.proj, decoy.as_bytes()),
        "the object scanner missed a planted decoy"
    );

    for needle in &needles {
        let n = needle.as_bytes();
        // Working trees, both repositories' files (loose objects are
        // compressed: see below), every BYREIS_HOME and HOME: all under root.
        let mut found = Vec::new();
        files_containing(&w.root, n, &mut found);
        // Whatever appeared in the temp and shared-memory directories of
        // this machine while the test ran (the world itself included).
        for (dir, old) in temp_dirs.iter().zip(&before) {
            for entry in entries(dir).difference(old) {
                if entry.is_dir() {
                    files_containing(entry, n, &mut found);
                } else if fs::read(entry).is_ok_and(|b| b.windows(n.len()).any(|x| x == n)) {
                    found.push(entry.display().to_string());
                }
            }
        }
        assert!(found.is_empty(), "plaintext {needle} found in {found:?}");
        for repo in [&w.proj, &w.reg] {
            assert!(
                !objects_containing(&w, repo, n),
                "plaintext {needle} found in a git object of {}",
                repo.display()
            );
        }
    }
}
