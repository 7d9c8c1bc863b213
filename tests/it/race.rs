//! Races: two admins, each in their own clone with their own copy of a
//! shared (URL) registry, rotate at the same moment. Exactly one lands; the
//! other gets a clear error, leaves nothing half-done, and succeeds after
//! pulling. Nothing is lost.

use std::path::Path;
use std::process::Stdio;

use crate::common::*;

fn spawn_rotate(p: &Person, dir: &Path, add: &str) -> std::process::Child {
    byreis_cmd(&p.home, dir)
        .args(["rotate", "--add", add, "--yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn byreis")
}

#[test]
fn concurrent_rotations_exactly_one_lands() {
    let w = World::new();
    // A shared bare registry and a shared bare project; alice's project
    // uses the registry by URL, so each admin has a managed clone of it.
    let url = w.bare_registry_url();
    let proj_bare = w.root.join("proj.git");
    w.git_ok(
        &w.root,
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            proj_bare.to_str().unwrap(),
        ],
    );
    let a_dir = w.root.join("alice-app");
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            proj_bare.to_str().unwrap(),
            a_dir.to_str().unwrap(),
        ],
    );
    assert_ok(
        &run(
            &w.alice.home,
            &a_dir,
            &["init", "--project", "shared", "--registry", &url],
            None,
        ),
        "init on a URL registry",
    );
    assert_ok(
        &run(&w.alice.home, &a_dir, &["set", "prod", "DB", "v1"], None),
        "set",
    );

    // bob: second admin and reader.
    let bob = keygen(&w.root, "bob");
    assert_ok(
        &run(
            &w.alice.home,
            &a_dir,
            &[
                "admin",
                "add",
                "bob",
                "--signing-key",
                &bob.signing_key,
                "--age",
                &bob.recipient,
            ],
            None,
        ),
        "admin add bob",
    );
    let add_bob = format!("bob={}", bob.recipient);
    assert_ok(
        &run(
            &w.alice.home,
            &a_dir,
            &["rotate", "--add", &add_bob, "--yes"],
            None,
        ),
        "rotate --add bob",
    );
    let b_dir = w.root.join("bob-app");
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            proj_bare.to_str().unwrap(),
            b_dir.to_str().unwrap(),
        ],
    );
    assert_ok(
        &run(
            &bob.home,
            &b_dir,
            &["trust", "--registry", &url, "--anchor", &w.anchor],
            None,
        ),
        "bob trust",
    );
    assert_ok(
        &run(&bob.home, &b_dir, &["get", "prod", "DB"], None),
        "bob get",
    );

    let carol = keygen(&w.root, "carol");
    let dave = keygen(&w.root, "dave");
    let add_carol = format!("carol={}", carol.recipient);
    let add_dave = format!("dave={}", dave.recipient);

    // Both at once.
    let a = spawn_rotate(&w.alice, &a_dir, &add_carol);
    let b = spawn_rotate(&bob, &b_dir, &add_dave);
    let oa = a.wait_with_output().unwrap();
    let ob = b.wait_with_output().unwrap();
    let landed = [oa.status.success(), ob.status.success()];
    assert_eq!(
        landed.iter().filter(|x| **x).count(),
        1,
        "exactly one rotation must land\nalice: {}\nbob: {}",
        dump(&oa),
        dump(&ob)
    );
    let (loser, loser_dir, loser_out, loser_add) = if landed[0] {
        (&bob, &b_dir, &ob, &add_dave)
    } else {
        (&w.alice, &a_dir, &oa, &add_carol)
    };
    let err = stderr(loser_out);
    assert!(
        err.contains("another admin") || err.contains("moved") || err.contains("pull"),
        "the loser's error must say what happened and what to do\n{}",
        dump(loser_out)
    );

    // The loser catches up (the project first: the registry then pins a
    // commit the clone has) and retries: it lands.
    w.git_ok(loser_dir, &["pull", "-q", "--ff-only"]);
    assert_ok(
        &run(&loser.home, loser_dir, &["registry", "pull"], None),
        "registry pull",
    );
    let o = run(
        &loser.home,
        loser_dir,
        &["rotate", "--add", loser_add, "--yes"],
        None,
    );
    assert_ok(&o, "the retry lands");

    // Nothing lost: both see everything, doctor clean for both, both new
    // members present.
    w.git_ok(&a_dir, &["pull", "-q", "--ff-only"]);
    w.git_ok(&b_dir, &["pull", "-q", "--ff-only"]);
    for (p, dir) in [(&w.alice, &a_dir), (&bob, &b_dir)] {
        assert_ok(
            &run(&p.home, dir, &["registry", "pull"], None),
            "registry pull",
        );
        let (o, v) = doctor_json(&p.home, dir, &[]);
        assert_doctor_ok(&o, &v, "doctor after the race");
        let o = run(&p.home, dir, &["get", "prod", "DB"], None);
        assert_ok(&o, "get after the race");
        assert_eq!(stdout(&o).trim(), "v1");
    }
    let manifest = std::fs::read_to_string(a_dir.join(".byreis/manifest.yaml")).unwrap();
    assert!(
        manifest.contains("name: carol") && manifest.contains("name: dave"),
        "{manifest}"
    );
}
