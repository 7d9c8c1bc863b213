//! Access requests on a registry hosted on GitHub, end to end against a
//! stateful fake of the GitHub REST API on 127.0.0.1 (tests/common/github.rs)
//! under a GitHub Enterprise base path: a contributor without write access
//! forks, commits the request on a branch of the fork and opens a pull
//! request; the admin absorbs it after typing the fingerprint, the decision
//! lands in the registry in a commit of its own, and the pull request is
//! commented and closed, never merged. API errors say what to do.
//!
//! The registry's git URL on the fake host is mapped to a local bare
//! repository with git's `url.<base>.insteadOf`, so no byte leaves the
//! machine.

mod common;

use std::fs;
use std::path::PathBuf;

use common::github::{FakeGitHub, Fault};
use common::*;

struct Gh {
    w: World,
    fake: FakeGitHub,
    app: PathBuf,
    env: Vec<(String, String)>,
    dave: Person,
}

impl Gh {
    fn env(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
    fn alice(&self, args: &[&str]) -> std::process::Output {
        run_env(&self.w.alice.home, &self.app, args, None, &self.env())
    }
    fn dave(&self, args: &[&str]) -> std::process::Output {
        run_env(&self.dave.home, &self.app, args, None, &self.env())
    }
    /// `rotate --add --from-request REF --confirm-fingerprint FP --yes`.
    fn absorb(&self, reference: &str, fp: &str) -> std::process::Output {
        self.alice(&absorb_args(reference, fp))
    }
    fn with_env(
        &self,
        extra: &[(&str, &str)],
        who: &Person,
        args: &[&str],
    ) -> std::process::Output {
        let mut env = self.env();
        env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        env.extend_from_slice(extra);
        run_env(&who.home, &self.app, args, None, &env)
    }
}

/// alice's project `gh-demo` uses the registry at the fake host's URL;
/// prod holds DB. dave is a contributor with his own token.
fn setup() -> Gh {
    let w = World::new();
    let fake = FakeGitHub::start("/api/v3");
    fake.with(|s| {
        s.tokens.insert("alice-token".into(), "alice".into());
        s.tokens.insert("dave-token".into(), "dave".into());
        s.add_repo("acme/registry", &[("README.md", b"registry\n")]);
    });
    let bare = w.bare_registry_url();
    let reg_url = fake.web_url("acme/registry");
    let gitcfg = w.root.join("gitconfig");
    fs::write(
        &gitcfg,
        format!("[url \"{bare}\"]\n\tinsteadOf = {reg_url}\n"),
    )
    .unwrap();
    let env = vec![
        (
            "GIT_CONFIG_GLOBAL".to_string(),
            gitcfg.display().to_string(),
        ),
        ("BYREIS_GITHUB_API_URL".to_string(), fake.api_url()),
        ("GITHUB_TOKEN".to_string(), "alice-token".to_string()),
        ("BYREIS_ANCHOR".to_string(), w.anchor.clone()),
    ];
    let app = w.root.join("gh-app");
    fs::create_dir(&app).unwrap();
    w.git_ok(&app, &["init", "-q", "-b", "main"]);
    let dave = keygen(&w.root, "dave");
    let gh = Gh {
        w,
        fake,
        app,
        env,
        dave,
    };
    let o = gh.alice(&["init", "--project", "gh-demo", "--registry", &reg_url]);
    assert_ok(&o, "init on the GitHub registry URL");
    let o = run_env(
        &gh.w.alice.home,
        &gh.app,
        &["set", "prod", "DB"],
        Some(&format!("{PROD_DB}\n")),
        &gh.env(),
    );
    assert_ok(&o, "set");
    gh
}

fn request_access(gh: &Gh) -> String {
    let o = gh.with_env(
        &[("GITHUB_TOKEN", "dave-token")],
        &gh.dave,
        &[
            "request-access",
            "--name",
            "dave",
            "--email",
            "dave@example.test",
            "--reason",
            "on-call",
        ],
    );
    assert_ok(&o, "dave request-access on GitHub");
    assert_stderr_contains(&o, "pull request #", "names the pull request");
    stdout(&o).trim().to_string()
}

#[test]
fn request_access_to_absorb_to_closed_pull_request() {
    let gh = setup();
    let fp = request_access(&gh);
    // Fork, branch and file on dave's fork, pull request on the registry;
    // every call under the Enterprise base path; the body has no
    // fingerprint and no command.
    gh.fake.with(|s| {
        assert!(s.repos.contains_key("dave/registry"), "forked");
        let fork = &s.repos["dave/registry"];
        let head = &fork.branches["byreis/request/dave"];
        assert!(fork.trees[head].contains_key("requests/gh-demo/dave.yaml"));
        let pr = &s.pulls[&1];
        assert_eq!(
            (pr.head_repo.as_str(), pr.state.as_str()),
            ("dave/registry", "open")
        );
        assert!(
            !pr.body.contains(&fp) && !pr.title.contains(&fp),
            "{}",
            pr.body
        );
        assert!(
            !pr.body.contains("byreis rotate") && !pr.body.contains("--confirm"),
            "{}",
            pr.body
        );
        assert!(
            s.log
                .iter()
                .all(|l| l.split(' ').nth(1).unwrap().starts_with("/api/v3/")),
            "{:?}",
            s.log
        );
        // dave has no write access to acme/registry: nothing was written there.
        assert_eq!(s.repos["acme/registry"].branches.len(), 1);
    });
    // A second request while the first is open: GitHub's 422, explained.
    let o = gh.with_env(
        &[("GITHUB_TOKEN", "dave-token")],
        &gh.dave,
        &["request-access", "--name", "dave"],
    );
    assert_failed(&o, "a second open request");
    assert_stderr_contains(&o, "422", "names the status");
    assert_stderr_contains(&o, "already exists", "GitHub's reason");

    // The admin lists (no fingerprint) and absorbs by URL with the typed
    // fingerprint.
    let o = gh.alice(&["request", "list", "--format", "json"]);
    assert_ok(&o, "request list on GitHub");
    assert!(
        stdout(&o).contains("\"requested\"") && !stdout(&o).contains(&fp),
        "{}",
        dump(&o)
    );
    let url = format!("{}/pull/1", gh.fake.web_url("acme/registry"));
    let o = gh.absorb(&url, "wrong-fp");
    assert_failed(&o, "wrong fingerprint");
    gh.fake.with(|s| assert_eq!(s.pulls[&1].state, "open"));
    let o = gh.absorb(&url, &fp);
    assert_ok(&o, "absorb the pull request");
    gh.fake.with(|s| {
        assert_eq!(s.pulls[&1].state, "closed", "closed, not merged");
        let (n, c) = s.comments.last().expect("a comment");
        assert_eq!(*n, 1);
        assert!(
            c.contains("Absorbed by alice") && c.contains("counter"),
            "{c}"
        );
        assert_eq!(s.repos["acme/registry"].branches.len(), 1, "never merged");
    });
    // The decision reached the registry's origin; dave reads prod.
    let bare = gh.w.root.join("reg.git");
    let log = gh.w.git_ok(&bare, &["log", "-1", "--format=%s"]);
    assert!(log.contains("dave") && log.contains("absorbed"), "{log}");
    assert_ok(&gh.dave(&["trust", "--anchor", &gh.w.anchor]), "dave trust");
    let o = gh.dave(&["get", "prod", "DB"]);
    assert_ok(&o, "dave reads prod");
    assert_eq!(stdout(&o), format!("{PROD_DB}\n"));
    // Closed: absorbing it again is refused.
    let o = gh.absorb("1", &fp);
    assert_failed(&o, "absorb a closed pull request");
    assert_stderr_contains(&o, "closed", "closed named");
}

#[test]
fn pull_request_changed_after_confirmation_or_touching_more_is_refused() {
    let gh = setup();
    let fp = request_access(&gh);
    let heads = gh.w.git_ok(&gh.app, &["rev-parse", "HEAD"]);
    // The head moves between the confirmed read and the rotation: stale.
    gh.fake.with(|s| s.move_head_after_reads = Some((1, 1)));
    let o = gh.absorb("1", &fp);
    assert_failed(&o, "stale pull request");
    assert_stderr_contains(&o, "stale", "stale named");
    assert_eq!(
        gh.w.git_ok(&gh.app, &["rev-parse", "HEAD"]),
        heads,
        "nothing changed"
    );
    // A pull request that also changes another file.
    gh.fake.with(|s| {
        s.commit(
            "dave/registry",
            "byreis/request/dave",
            &[("allowed_signers", b"dave ssh-ed25519 AAAA\n")],
        );
    });
    let o = gh.absorb("1", &fp);
    assert_failed(&o, "pull request touching two files");
    assert_stderr_contains(
        &o,
        "must add exactly one request file",
        "names the overreach",
    );
    assert_eq!(
        gh.w.git_ok(&gh.app, &["rev-parse", "HEAD"]),
        heads,
        "nothing changed"
    );
    // Rejecting another contributor's request comments and closes it.
    let erin = keygen(&gh.w.root, "erin");
    gh.fake.with(|s| {
        s.tokens.insert("erin-token".into(), "erin".into());
    });
    let o = gh.with_env(
        &[("GITHUB_TOKEN", "erin-token")],
        &erin,
        &["request-access", "--name", "erin"],
    );
    assert_ok(&o, "erin request-access");
    let o = gh.alice(&["request", "reject", "2", "--reason", "unknown to the team"]);
    assert_ok(&o, "reject pull request 2");
    gh.fake.with(|s| {
        assert_eq!(s.pulls[&2].state, "closed");
        let (n, c) = s.comments.last().expect("a comment");
        assert_eq!(*n, 2);
        assert!(
            c.contains("Rejected by alice with byreis: unknown to the team"),
            "{c}"
        );
    });
    let o = gh.alice(&["request", "reject", "2"]);
    assert_failed(&o, "reject a closed pull request");
}

#[test]
fn api_errors_are_explained() {
    let gh = setup();
    // 401: a token GitHub refuses.
    let o = gh.with_env(
        &[("GITHUB_TOKEN", "expired")],
        &gh.dave,
        &["request-access", "--name", "dave"],
    );
    assert_failed(&o, "401");
    assert_stderr_contains(&o, "refused the token", "401 explained");
    // No token at all.
    let mut env: Vec<(&str, &str)> = gh.env();
    env.retain(|(k, _)| *k != "GITHUB_TOKEN");
    let o = run_env(
        &gh.dave.home,
        &gh.app,
        &["request-access", "--name", "dave"],
        None,
        &env,
    );
    assert_failed(&o, "no token");
    assert_stderr_contains(&o, "GITHUB_TOKEN", "no token explained");
    // 403 rate limit.
    gh.fake.with(|s| {
        s.faults.push(Fault {
            matching: "/forks".into(),
            status: 403,
            message: "API rate limit exceeded for user ID 1.".into(),
            rate_limited: true,
        })
    });
    let o = gh.with_env(
        &[("GITHUB_TOKEN", "dave-token")],
        &gh.dave,
        &["request-access", "--name", "dave"],
    );
    assert_failed(&o, "403 rate limit");
    assert_stderr_contains(&o, "rate limit", "403 explained");
    // 404: no such pull request.
    let o = gh.absorb("99", "x");
    assert_failed(&o, "404");
    assert_stderr_contains(&o, "not found on GitHub (404", "404 explained");
    // Nothing was opened by the failed attempts.
    gh.fake
        .with(|s| assert!(s.pulls.is_empty(), "no pull request"));
}
