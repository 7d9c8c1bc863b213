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

use std::fs;
use std::path::PathBuf;

use crate::common::github::{FakeGitHub, Fault};
use crate::common::*;

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
    /// byreis as `who` in the project, with the world's environment.
    fn run_as(&self, who: &Person, args: &[&str]) -> std::process::Output {
        run_env(&who.home, &self.app, args, None, &self.env())
    }
    /// `who` pins the anchor (cloning the registry).
    fn trust(&self, who: &Person) {
        let o = self.run_as(who, &["trust", "--anchor", &self.w.anchor]);
        assert_ok(&o, &format!("{} trust", who.name));
    }
    /// A second admin `name`, reader of every environment, and thresholds
    /// of 2 for values and recipients.
    fn second_admin_reader_k2(&self, name: &str) -> Person {
        let p = keygen(&self.w.root, name);
        self.add_admin(&p);
        let o = self.alice(&[
            "rotate",
            "--add",
            &format!("{name}={}", p.recipient),
            "--yes",
        ]);
        assert_ok(&o, &format!("rotate --add {name}"));
        self.trust(&p);
        let o = self.alice(&["admin", "thresholds", "--recipients", "2", "--values", "2"]);
        assert_ok(&o, "thresholds 2");
        // The pinned state needs a second approval under the new thresholds
        // (ADR 0017).
        assert_ok(&self.run_as(&p, &["registry", "pull"]), "registry pull");
        let o = self.run_as(&p, &["approve", "--pinned", "--yes"]);
        assert_ok(&o, &format!("{name} approve --pinned"));
        assert_ok(&self.alice(&["registry", "pull"]), "alice registry pull");
        p
    }
    /// alice makes `p` an admin.
    fn add_admin(&self, p: &Person) {
        let o = self.alice(&admin_add_args(p));
        assert_ok(&o, &format!("admin add {}", p.name));
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
        // byreis's own git reads no global config; this is the one file a
        // user may give it (ADR 0015): here, the fake's git redirects.
        (
            "BYREIS_GIT_CONFIG".to_string(),
            gitcfg.display().to_string(),
        ),
        ("BYREIS_GITHUB_API_URL".to_string(), fake.api_url()),
        ("GITHUB_TOKEN".to_string(), "alice-token".to_string()),
        ("BYREIS_ANCHOR".to_string(), w.anchor.clone()),
        // The registry's location, as an admin gives it to the team (its
        // roster states the path it was made at; ADR 0015).
        ("BYREIS_REGISTRY".to_string(), reg_url.clone()),
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
fn a_failed_close_after_absorb_says_what_landed_and_a_rerun_finishes_it() {
    let gh = setup();
    let fp = request_access(&gh);
    gh.fake.with(|s| {
        s.faults.push(Fault {
            matching: "PATCH /repos/acme/registry/pulls/1".into(),
            status: 403,
            message: "Resource not accessible by integration".into(),
            rate_limited: false,
        })
    });
    let o = gh.absorb("1", &fp);
    assert_ok(&o, "the rotation and the decision landed");
    assert_stderr_contains(&o, "closing pull request #1 failed", "the failure named");
    assert_stderr_contains(&o, "decision is recorded in the registry", "what landed");
    assert_stderr_contains(&o, "run the same command again", "the follow-up");
    gh.fake.with(|s| assert_eq!(s.pulls[&1].state, "open"));
    let bare = gh.w.root.join("reg.git");
    let before = gh.w.git_ok(&bare, &["rev-parse", "HEAD"]);
    // The same command again closes it and changes nothing else.
    let o = gh.absorb("1", &fp);
    assert_ok(&o, "re-run finishes the close");
    assert_stderr_contains(&o, "already absorbed", "says it was done");
    gh.fake
        .with(|s| assert_eq!(s.pulls[&1].state, "closed", "closed now"));
    assert_eq!(
        gh.w.git_ok(&bare, &["rev-parse", "HEAD"]),
        before,
        "no second decision"
    );
    assert_ok(&gh.dave(&["trust", "--anchor", &gh.w.anchor]), "dave trust");
    assert_ok(&gh.dave(&["get", "prod", "DB"]), "dave reads prod once");
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

/// A project whose `origin` is a repository on the fake GitHub (mapped to
/// a local bare repository): a member's submission becomes a pull request;
/// an admin approves it by number; byreis checks the pull request's head is
/// the branch it reviewed, lands the change itself and closes the pull
/// request with a comment, never merging it. Closed, forked, foreign and
/// moved pull requests are refused with nothing changed (ADR 0014).
/// Gives the project an `origin` on the fake GitHub, `acme/app`, whose
/// branches live in the bare repository `root/app.git`. Returns the bare
/// repository and the origin's web URL.
fn with_github_origin(gh: &Gh) -> (PathBuf, String) {
    let bare = gh.w.root.join("app.git");
    gh.w.git_ok(
        &gh.w.root,
        &["init", "-q", "--bare", bare.to_str().unwrap()],
    );
    let app_url = gh.fake.web_url("acme/app");
    let gitcfg = gh.w.root.join("gitconfig");
    let mut cfg = fs::read_to_string(&gitcfg).unwrap();
    cfg.push_str(&format!(
        "[url \"file://{}\"]\n\tinsteadOf = {app_url}\n",
        bare.display()
    ));
    fs::write(&gitcfg, cfg).unwrap();
    gh.fake.with(|s| {
        s.add_repo("acme/app", &[]);
        s.git_backed.insert("acme/app".into(), bare.clone());
    });
    gh_git(gh, &["remote", "add", "origin", &app_url]);
    gh_git(gh, &["push", "-q", "origin", "main"]);
    (bare, app_url)
}

/// Stock git in the project, with the test's URL mappings.
fn gh_git(gh: &Gh, args: &[&str]) -> String {
    let mut c = clean_command("git", &gh.w.root, &gh.app);
    c.env("GIT_CONFIG_GLOBAL", gh.w.root.join("gitconfig"))
        .args(args);
    let o = output(&mut c, None);
    assert_ok(&o, &format!("git {args:?}"));
    stdout(&o).trim().to_string()
}

/// With two admins required on a GitHub project, an admin's change is a
/// proposal branch and a pull request; the second admin approves it by
/// number, which lands it and closes the pull request (ADR 0012).
#[test]
fn a_k_of_n_proposal_is_a_pull_request_on_a_github_project() {
    let gh = setup();
    let (bare, _) = with_github_origin(&gh);
    let carol = gh.second_admin_reader_k2("carol");
    let o = run_env(
        &gh.w.alice.home,
        &gh.app,
        &["set", "prod", "DB"],
        Some("two-admins-value\n"),
        &gh.env(),
    );
    assert_ok(&o, "alice set: a proposal");
    assert_stderr_contains(&o, "opened pull request #1 of acme/app", "a pull request");
    let branch = gh.fake.with(|s| s.pulls[&1].head_ref.clone());
    assert!(branch.starts_with("byreis/proposal/"), "{branch}");
    // carol uses the token in the environment (alice's; a fake detail).
    gh.trust(&carol);
    let o = gh.run_as(&carol, &["approve", "1", "--yes"]);
    assert_ok(&o, "carol approves #1");
    assert_stderr_contains(
        &o,
        "pull request #1 commented and closed (not merged)",
        "closed",
    );
    // Reads never fetch: alice updates her registry copy first.
    assert_ok(&gh.alice(&["registry", "pull"]), "alice registry pull");
    let o = gh.alice(&["get", "prod", "DB"]);
    assert_eq!(stdout(&o), "two-admins-value\n", "{}", dump(&o));
    gh.fake.with(|s| assert_eq!(s.pulls[&1].state, "closed"));
    assert_eq!(
        gh.w.git_ok(&bare, &["rev-parse", "main"]),
        gh.w.git_ok(&gh.app, &["rev-parse", "HEAD"]),
        "the landed change was pushed"
    );

    // Approved by its branch name instead: its pull request is found and
    // closed all the same.
    let o = run_env(
        &gh.w.alice.home,
        &gh.app,
        &["set", "prod", "DB"],
        Some("by-branch-name\n"),
        &gh.env(),
    );
    assert_ok(&o, "alice set: a second proposal");
    let branch = gh.fake.with(|s| s.pulls[&2].head_ref.clone());
    let o = gh.run_as(&carol, &["approve", &branch, "--yes"]);
    assert_ok(&o, "carol approves by branch name");
    assert_stderr_contains(
        &o,
        "pull request #2 commented and closed (not merged)",
        "closed",
    );
    gh.fake.with(|s| assert_eq!(s.pulls[&2].state, "closed"));
}

#[test]
fn a_submission_is_a_pull_request_on_a_github_project() {
    let mut gh = setup();
    let (bare, app_url) = with_github_origin(&gh);
    let o = gh.alice(&[
        "rotate",
        "--add",
        &format!("dave={}", gh.dave.recipient),
        "--yes",
    ]);
    assert_ok(&o, "rotate --add dave");
    gh.env.retain(|(k, _)| k != "GITHUB_TOKEN");
    let git = |args: &[&str]| gh_git(&gh, args);
    let as_dave = |args: &[&str], stdin: Option<&str>| {
        let mut env = gh.env();
        env.push(("GITHUB_TOKEN", "dave-token"));
        run_env(&gh.dave.home, &gh.app, args, stdin, &env)
    };
    let as_alice = |args: &[&str]| {
        let mut env = gh.env();
        env.push(("GITHUB_TOKEN", "alice-token"));
        run_env(&gh.w.alice.home, &gh.app, args, None, &env)
    };

    let anchor = gh.w.anchor.clone();
    assert_ok(
        &as_dave(&["trust", "--anchor", &anchor], None),
        "dave trust",
    );
    let o = as_dave(&["set", "prod", "DB"], Some("from-a-pull-request\n"));
    assert_ok(&o, "dave set (a proposal)");
    let o = as_dave(&["submit"], None);
    assert_ok(&o, "dave submit");
    assert_stderr_contains(
        &o,
        "opened pull request #1 of acme/app",
        "submit opens a PR",
    );
    let branch = gh.fake.with(|s| {
        let p = &s.pulls[&1];
        assert_eq!(p.repo, "acme/app");
        assert_eq!(p.head_repo, "acme/app");
        assert_eq!(p.base, "main");
        assert_eq!(p.user, "dave");
        assert!(p.body.contains("Do not merge"), "{}", p.body);
        assert!(!p.body.contains("from-a-pull-request"));
        p.head_ref.clone()
    });
    assert!(branch.starts_with("byreis/submit/dave-"), "{branch}");
    let tip = git(&["rev-parse", &format!("refs/remotes/origin/{branch}")]);

    // Moved after byreis fetched it (as the API reports): stale.
    gh.fake.with(|s| {
        s.git_backed.remove("acme/app");
        s.pulls.get_mut(&1).unwrap().head_sha = "1".repeat(40);
    });
    let heads = gh.w.git_ok(&gh.app, &["rev-parse", "HEAD"]);
    let o = as_alice(&["approve", "1", "--yes"]);
    assert_failed(&o, "a pull request whose head moved");
    assert_stderr_contains(&o, "pull request #1 is stale", "stale");
    assert_eq!(gh.w.git_ok(&gh.app, &["rev-parse", "HEAD"]), heads);
    gh.fake.with(|s| {
        s.git_backed.insert("acme/app".into(), bare.clone());
    });

    // A pull request from a fork, and one from a branch that is not
    // byreis's, are refused.
    let forked = gh.fake.with(|s| {
        s.add_repo("dave/app", &[("README.md", b"x\n")]);
        s.add_pull("acme/app", "dave/app", "main", "dave")
    });
    let o = as_alice(&["approve", &forked.to_string(), "--yes"]);
    assert_failed(&o, "a pull request from a fork");
    assert_stderr_contains(&o, "comes from a fork", "fork");
    git(&["push", "-q", "origin", "main:feature"]);
    let foreign = gh
        .fake
        .with(|s| s.add_pull("acme/app", "acme/app", "feature", "dave"));
    let o = as_alice(&["approve", &format!("#{foreign}"), "--yes"]);
    assert_failed(&o, "a pull request of another branch");
    assert_stderr_contains(&o, "not a byreis proposal or submission", "foreign");
    assert_eq!(gh.w.git_ok(&gh.app, &["rev-parse", "HEAD"]), heads);

    // Approved by its URL: landed by alice, pull request closed, not merged.
    let url = format!("{app_url}/pull/1");
    let o = as_alice(&["approve", &url, "--yes"]);
    assert_ok(&o, "alice approves the pull request");
    assert_stderr_contains(
        &o,
        "pull request #1 commented and closed (not merged)",
        "closed",
    );
    let o = as_alice(&["get", "prod", "DB"]);
    assert_eq!(stdout(&o), "from-a-pull-request\n", "{}", dump(&o));
    gh.fake.with(|s| {
        assert_eq!(s.pulls[&1].state, "closed");
        assert!(
            s.comments
                .iter()
                .any(|(n, c)| *n == 1 && c.contains("landed at counter")),
            "{:?}",
            s.comments
        );
    });
    let main = gh.w.git_ok(&bare, &["rev-parse", "main"]);
    assert_eq!(main, gh.w.git_ok(&gh.app, &["rev-parse", "HEAD"]), "pushed");
    let merged =
        gh.w.git(&bare, &["merge-base", "--is-ancestor", &tip, "main"]);
    assert!(!merged.status.success(), "the submission commit was merged");
    let gone = gh.w.git(
        &bare,
        &[
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/heads/{branch}"),
        ],
    );
    assert!(
        !gone.status.success(),
        "the submission branch was removed from origin"
    );

    // A closed pull request is not approved again.
    let o = as_alice(&["approve", "1", "--yes"]);
    assert_failed(&o, "a closed pull request");
    assert_stderr_contains(&o, "is closed", "closed");
}

/// With two admins required, absorbing a pull request makes a proposal;
/// the approval that lands it records the decision and closes the pull
/// request it came from (it used to be left open).
#[test]
fn an_absorbed_pull_request_is_closed_when_its_approval_lands() {
    let gh = setup();
    let carol = gh.second_admin_reader_k2("carol");
    let fp = request_access(&gh);
    let o = gh.absorb("1", &fp);
    assert_ok(&o, "absorb: a proposal");
    assert_stderr_contains(&o, "proposed, not landed", "a proposal");
    gh.fake
        .with(|s| assert_eq!(s.pulls[&1].state, "open", "not landed yet"));
    let branch = gh.w.git_ok(
        &gh.app,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/byreis/proposal/",
        ],
    );
    let o = gh.alice(&["request", "show", "1"]);
    assert_ok(&o, "request show");
    assert!(
        stdout(&o).contains(&format!("note: proposal {branch} absorbs this request")),
        "request show names the waiting proposal\n{}",
        dump(&o)
    );
    gh.trust(&carol);
    let o = gh.run_as(&carol, &["approve", &branch, "--yes"]);
    assert_ok(&o, "carol approves: it lands");
    assert_stderr_contains(
        &o,
        "pull request #1 of acme/registry commented and closed",
        "closed",
    );
    gh.fake.with(|s| {
        assert_eq!(s.pulls[&1].state, "closed");
        let (n, c) = s.comments.last().expect("a comment");
        assert_eq!(*n, 1);
        assert!(c.contains("absorbed at counter"), "{c}");
    });
}

/// `request reject N` of a pull request that is not a valid request (here,
/// it changes a second file): there is no request to decide, so byreis
/// closes it with a comment saying why and records nothing in the
/// registry. When the API fails instead, nothing is closed.
#[test]
fn a_malformed_pull_request_is_rejected_by_closing_it() {
    let gh = setup();
    request_access(&gh);
    gh.fake.with(|s| {
        s.commit(
            "dave/registry",
            "byreis/request/dave",
            &[("allowed_signers", b"dave ssh-ed25519 AAAA\n")],
        );
    });
    let bare = gh.w.root.join("reg.git");
    let reg_head = gh.w.git_ok(&bare, &["rev-parse", "HEAD"]);
    // The API refuses while the pull request is read (each fault answers
    // once: the read and the re-read): not closed.
    gh.fake.with(|s| {
        for _ in 0..2 {
            s.faults.push(Fault {
                matching: "/pulls/1/files".into(),
                status: 403,
                message: "Resource not accessible by integration".into(),
                rate_limited: false,
            });
        }
    });
    let o = gh.alice(&["request", "reject", "1"]);
    assert_failed(&o, "reject while the API fails");
    gh.fake
        .with(|s| assert_eq!(s.pulls[&1].state, "open", "not closed on an API error"));

    let o = gh.alice(&["request", "reject", "1", "--reason", "send one file"]);
    assert_ok(&o, "reject a malformed pull request");
    assert_stderr_contains(&o, "is not a valid request", "says why");
    gh.fake.with(|s| {
        assert_eq!(s.pulls[&1].state, "closed");
        let (n, c) = s.comments.last().expect("a comment");
        assert_eq!(*n, 1);
        assert!(
            c.contains("not a valid access request")
                && c.contains("must add exactly one request file")
                && c.contains("send one file"),
            "{c}"
        );
    });
    assert_eq!(
        gh.w.git_ok(&bare, &["rev-parse", "HEAD"]),
        reg_head,
        "nothing recorded in the registry"
    );
}

/// A roster proposal on a registry hosted on GitHub also opens a pull
/// request on the registry; the approval that lands it (by branch name)
/// comments on it and closes it, never merging it (ADR 0012).
#[test]
fn a_roster_proposal_is_a_pull_request_on_a_github_registry() {
    let gh = setup();
    let bare = gh.w.root.join("reg.git");
    gh.fake.with(|s| {
        s.git_backed.insert("acme/registry".into(), bare.clone());
    });
    let bob = keygen(&gh.w.root, "bob");
    gh.add_admin(&bob);
    let o = gh.alice(&["admin", "thresholds", "--roster", "2"]);
    assert_ok(&o, "propose --roster 2");
    assert_stderr_contains(
        &o,
        "opened pull request #1 of acme/registry",
        "a pull request",
    );
    let branch = gh.fake.with(|s| {
        let p = &s.pulls[&1];
        assert_eq!(
            (p.repo.as_str(), p.head_repo.as_str()),
            ("acme/registry", "acme/registry")
        );
        assert!(p.body.contains("Do not merge"), "{}", p.body);
        p.head_ref.clone()
    });
    assert!(branch.starts_with("byreis/roster/"), "{branch}");
    gh.trust(&bob);
    let o = gh.run_as(&bob, &["approve", &branch, "--yes"]);
    assert_ok(&o, "bob approves the roster version");
    assert_stderr_contains(&o, "roster version 3 landed", "it lands");
    assert_stderr_contains(
        &o,
        "pull request #1 commented and closed (not merged)",
        "closed",
    );
    gh.fake.with(|s| {
        assert_eq!(s.pulls[&1].state, "closed");
        let (n, c) = s.comments.last().expect("a comment");
        assert_eq!(*n, 1);
        assert!(c.contains("roster version 3 landed"), "{c}");
    });
}

// issue 17: with no read timeout a stalled API connection hung byreis for
// ever. Every call has one (BYREIS_GITHUB_TIMEOUT, default 30 s), and the
// error says which call timed out.
#[test]
fn a_stalled_api_call_times_out_and_names_the_call() {
    let gh = setup();
    // Stalled more times than the client retries.
    gh.fake.with(|s| {
        for _ in 0..8 {
            s.faults.push(Fault {
                matching: "/forks".into(),
                status: 0,
                message: String::new(),
                rate_limited: false,
            })
        }
    });
    let started = std::time::Instant::now();
    let o = gh.with_env(
        &[
            ("GITHUB_TOKEN", "dave-token"),
            ("BYREIS_GITHUB_TIMEOUT", "2"),
        ],
        &gh.dave,
        &["request-access", "--name", "dave"],
    );
    assert_failed(&o, "a stalled call");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the call gave up: {:?}",
        started.elapsed()
    );
    assert_stderr_contains(&o, "timed out", "says it timed out");
    assert_stderr_contains(&o, "forks", "and which call");
}

// issue 17: a 422 lost GitHub's reason (`errors[].message`).
#[test]
fn a_422_keeps_githubs_reason() {
    let gh = setup();
    gh.fake.with(|s| {
        s.faults.push(Fault {
            matching: "POST /repos/acme/registry/pulls".into(),
            status: 422,
            message:
                "Validation Failed|A pull request already exists for dave:byreis/request/dave."
                    .into(),
            rate_limited: false,
        })
    });
    let o = gh.with_env(
        &[("GITHUB_TOKEN", "dave-token")],
        &gh.dave,
        &["request-access", "--name", "dave"],
    );
    assert_failed(&o, "a 422");
    assert_stderr_contains(&o, "Validation Failed", "GitHub's message");
    assert_stderr_contains(&o, "A pull request already exists", "and its reason");
}
