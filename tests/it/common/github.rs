//! A fake of the GitHub REST API on 127.0.0.1 that keeps state: users,
//! repositories with branches and file trees, forks, pull requests and
//! comments. Only the calls byreis makes (`crates/byreis-github/src/github.rs`), answered with
//! the fields byreis reads. Every path is served under `prefix` (GitHub
//! Enterprise's `/api/v3`), so a client that drops the base path gets 404s.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{json, Value};

#[derive(Default, Clone)]
pub struct Repo {
    pub default_branch: String,
    pub fork_of: Option<String>,
    /// branch -> commit
    pub branches: BTreeMap<String, String>,
    /// commit -> (path -> bytes)
    pub trees: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

#[derive(Clone)]
pub struct Pull {
    pub number: u64,
    pub repo: String,
    pub title: String,
    pub body: String,
    pub head_repo: String,
    pub head_ref: String,
    pub head_sha: String,
    pub base: String,
    pub state: String,
    pub user: String,
}

/// An error to answer once, for a request whose "METHOD path" contains
/// `matching`.
#[derive(Clone)]
pub struct Fault {
    pub matching: String,
    pub status: u16,
    pub message: String,
    pub rate_limited: bool,
}

#[derive(Default)]
pub struct State {
    /// token -> login
    pub tokens: BTreeMap<String, String>,
    pub repos: BTreeMap<String, Repo>,
    pub pulls: BTreeMap<u64, Pull>,
    pub comments: Vec<(u64, String)>,
    pub faults: Vec<Fault>,
    /// Every request as "METHOD path".
    pub log: Vec<String>,
    /// After this many reads of a pull request, its head moves (a request
    /// changed after the admin confirmed it).
    pub move_head_after_reads: Option<(u64, usize)>,
    /// Repositories whose branches live in a real bare repository (pushed
    /// with git through `url.<base>.insteadOf`): pull request heads are
    /// read from there.
    pub git_backed: BTreeMap<String, std::path::PathBuf>,
    pull_reads: BTreeMap<u64, usize>,
    next: u64,
}

/// The commit of branch `name` in the bare repository `bare`.
fn git_branch(bare: &std::path::Path, name: &str) -> Option<String> {
    let o = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(["rev-parse", "--verify", "-q", &format!("refs/heads/{name}")])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

impl State {
    fn sha(&mut self) -> String {
        self.next += 1;
        format!("{:040x}", 0xabc0_0000_u64 + self.next)
    }

    /// A repository `full` with one commit holding `files` on `main`.
    pub fn add_repo(&mut self, full: &str, files: &[(&str, &[u8])]) {
        let sha = self.sha();
        let mut repo = Repo {
            default_branch: "main".into(),
            ..Default::default()
        };
        repo.branches.insert("main".into(), sha.clone());
        repo.trees.insert(
            sha,
            files
                .iter()
                .map(|(p, b)| (p.to_string(), b.to_vec()))
                .collect(),
        );
        self.repos.insert(full.into(), repo);
    }

    /// A pull request on `repo` from `head_repo:branch` (test set-up).
    pub fn add_pull(&mut self, repo: &str, head_repo: &str, branch: &str, user: &str) -> u64 {
        let head_sha = match self.git_backed.get(head_repo) {
            Some(bare) => git_branch(bare, branch).expect("the branch was pushed"),
            None => self.repos[head_repo].branches[branch].clone(),
        };
        let number = self.pulls.len() as u64 + 1;
        self.pulls.insert(
            number,
            Pull {
                number,
                repo: repo.into(),
                title: "set-up".into(),
                body: String::new(),
                head_repo: head_repo.into(),
                head_ref: branch.into(),
                head_sha,
                base: "main".into(),
                state: "open".into(),
                user: user.into(),
            },
        );
        number
    }

    /// Commits `files` on top of `branch` of `repo` (test set-up).
    pub fn commit(&mut self, repo: &str, branch: &str, files: &[(&str, &[u8])]) -> String {
        let sha = self.sha();
        let r = self.repos.get_mut(repo).expect("repo");
        let base = r
            .branches
            .get(branch)
            .or_else(|| r.branches.get(&r.default_branch))
            .cloned()
            .expect("a branch");
        let mut tree = r.trees[&base].clone();
        for (p, b) in files {
            tree.insert(p.to_string(), b.to_vec());
        }
        r.trees.insert(sha.clone(), tree);
        r.branches.insert(branch.into(), sha.clone());
        for p in self.pulls.values_mut() {
            if p.head_repo == repo && p.head_ref == branch {
                p.head_sha = sha.clone();
            }
        }
        sha
    }
}

pub struct FakeGitHub {
    pub state: Arc<Mutex<State>>,
    pub port: u16,
    pub prefix: String,
}

impl FakeGitHub {
    /// Starts the fake on 127.0.0.1 (a free port), serving under `prefix`.
    pub fn start(prefix: &str) -> FakeGitHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let s = Arc::clone(&state);
        let p = prefix.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = Arc::clone(&s);
                let p = p.clone();
                std::thread::spawn(move || serve(stream, &s, &p, port));
            }
        });
        FakeGitHub {
            state,
            port,
            prefix: prefix.into(),
        }
    }

    /// The API base URL byreis is given.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port, self.prefix)
    }

    /// The web URL of repository `full` on this fake's host.
    pub fn web_url(&self, full: &str) -> String {
        format!("https://127.0.0.1:{}/{full}", self.port)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>, prefix: &str, port: u16) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, extra, reply) = {
        let mut st = state.lock().unwrap();
        handle(&mut st, &method, &target, &headers, &body, prefix, port)
    };
    // A fault with status 0: the server stalls and never answers.
    if status == 0 {
        std::thread::sleep(std::time::Duration::from_secs(120));
        return;
    }
    let text = reply.to_string();
    let reason = match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        _ => "Error",
    };
    let mut out = stream;
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{text}",
        text.len()
    );
}

fn err(status: u16, message: &str) -> (u16, String, Value) {
    (
        status,
        String::new(),
        json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
    )
}

fn repo_json(full: &str, r: &Repo) -> Value {
    let (owner, name) = full.split_once('/').unwrap();
    json!({
        "full_name": full, "name": name, "owner": {"login": owner},
        "default_branch": r.default_branch, "fork": r.fork_of.is_some(),
    })
}

fn pull_json(p: &Pull, port: u16) -> Value {
    json!({
        "number": p.number, "state": p.state, "title": p.title, "body": p.body,
        "html_url": format!("https://127.0.0.1:{port}/{}/pull/{}", p.repo, p.number),
        "user": {"login": p.user},
        "head": {"sha": p.head_sha, "ref": p.head_ref, "repo": {"full_name": p.head_repo}},
        "base": {"ref": p.base},
    })
}

fn handle(
    st: &mut State,
    method: &str,
    target: &str,
    headers: &BTreeMap<String, String>,
    body: &Value,
    prefix: &str,
    port: u16,
) -> (u16, String, Value) {
    st.log.push(format!("{method} {target}"));
    let Some(path) = target.strip_prefix(prefix) else {
        return err(404, "Not Found (outside the API base path)");
    };
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let token = headers
        .get("authorization")
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("token "))
        })
        .unwrap_or_default()
        .to_string();
    let Some(login) = st.tokens.get(&token).cloned() else {
        return err(401, "Bad credentials");
    };
    let key = format!("{method} {path}");
    if let Some(i) = st.faults.iter().position(|f| key.contains(&f.matching)) {
        let f = st.faults.remove(i);
        // "MESSAGE|REASON": REASON goes in `errors[].message`, as GitHub
        // sends a 422's reasons.
        let mut e = match f.message.split_once('|') {
            Some((m, reason)) => (
                f.status,
                String::new(),
                json!({"message": m, "errors": [{"resource": "PullRequest", "code": "custom", "message": reason}]}),
            ),
            None => err(f.status, &f.message),
        };
        if f.rate_limited {
            e.1 = "x-ratelimit-remaining: 0\r\nx-ratelimit-reset: 1900000000\r\n".into();
        }
        return e;
    }
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, seg.as_slice()) {
        ("GET", ["user"]) => (200, String::new(), json!({"login": login})),
        ("GET", ["repos", o, r]) => match st.repos.get(&format!("{o}/{r}")) {
            Some(repo) => (200, String::new(), repo_json(&format!("{o}/{r}"), repo)),
            None => err(404, "Not Found"),
        },
        ("POST", ["repos", o, r, "forks"]) => {
            let src = format!("{o}/{r}");
            let Some(repo) = st.repos.get(&src).cloned() else {
                return err(404, "Not Found");
            };
            let full = format!("{login}/{r}");
            let fork = st.repos.entry(full.clone()).or_insert_with(|| Repo {
                fork_of: Some(src),
                ..repo
            });
            let j = repo_json(&full, fork);
            (202, String::new(), j)
        }
        ("GET", ["repos", o, r, "git", "ref", "heads", b @ ..]) => {
            let b = b.join("/");
            match st
                .repos
                .get(&format!("{o}/{r}"))
                .and_then(|x| x.branches.get(&b))
            {
                Some(sha) => (
                    200,
                    String::new(),
                    json!({"ref": format!("refs/heads/{b}"), "object": {"sha": sha}}),
                ),
                None => err(404, "Not Found"),
            }
        }
        ("POST", ["repos", o, r, "git", "refs"]) => {
            let full = format!("{o}/{r}");
            if !owns(&login, o) {
                return err(403, "Resource not accessible by personal access token");
            }
            let name = body["ref"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("refs/heads/")
                .to_string();
            let sha = body["sha"].as_str().unwrap_or_default().to_string();
            let Some(repo) = st.repos.get_mut(&full) else {
                return err(404, "Not Found");
            };
            if repo.branches.contains_key(&name) {
                return err(422, "Reference already exists");
            }
            repo.branches.insert(name.clone(), sha.clone());
            (
                201,
                String::new(),
                json!({"ref": format!("refs/heads/{name}"), "object": {"sha": sha}}),
            )
        }
        ("PATCH", ["repos", o, r, "git", "refs", "heads", b @ ..]) => {
            if !owns(&login, o) {
                return err(403, "Resource not accessible by personal access token");
            }
            let b = b.join("/");
            let sha = body["sha"].as_str().unwrap_or_default().to_string();
            match st.repos.get_mut(&format!("{o}/{r}")) {
                Some(repo) if repo.branches.contains_key(&b) => {
                    repo.branches.insert(b.clone(), sha.clone());
                    (
                        200,
                        String::new(),
                        json!({"ref": format!("refs/heads/{b}"), "object": {"sha": sha}}),
                    )
                }
                _ => err(422, "Reference does not exist"),
            }
        }
        ("PUT", ["repos", o, r, "contents", p @ ..]) => {
            if !owns(&login, o) {
                return err(403, "Resource not accessible by personal access token");
            }
            let full = format!("{o}/{r}");
            let p = p.join("/");
            let branch = body["branch"].as_str().unwrap_or("main").to_string();
            let Ok(bytes) = base64::engine::general_purpose::STANDARD
                .decode(body["content"].as_str().unwrap_or_default())
            else {
                return err(422, "content is not valid Base64");
            };
            if !st.repos.contains_key(&full) {
                return err(404, "Not Found");
            }
            let sha = st.commit(&full, &branch, &[(&p, &bytes)]);
            (
                201,
                String::new(),
                json!({"content": {"path": p}, "commit": {"sha": sha}}),
            )
        }
        ("POST", ["repos", o, r, "pulls"]) => {
            let full = format!("{o}/{r}");
            let head = body["head"].as_str().unwrap_or_default();
            let (head_owner, head_ref) = head.split_once(':').unwrap_or((o, head));
            let head_repo = format!("{head_owner}/{r}");
            let head_sha = match st.git_backed.get(&head_repo) {
                Some(bare) => git_branch(bare, head_ref),
                None => st
                    .repos
                    .get(&head_repo)
                    .and_then(|x| x.branches.get(head_ref))
                    .cloned(),
            };
            let Some(head_sha) = head_sha else {
                return err(422, "Validation Failed: head does not exist");
            };
            if st
                .pulls
                .values()
                .any(|p| p.state == "open" && p.head_repo == head_repo && p.head_ref == head_ref)
            {
                return err(
                    422,
                    &format!("Validation Failed: A pull request already exists for {head}."),
                );
            }
            let number = st.pulls.len() as u64 + 1;
            let pr = Pull {
                number,
                repo: full,
                title: body["title"].as_str().unwrap_or_default().into(),
                body: body["body"].as_str().unwrap_or_default().into(),
                head_repo,
                head_ref: head_ref.into(),
                head_sha,
                base: body["base"].as_str().unwrap_or("main").into(),
                state: "open".into(),
                user: login.clone(),
            };
            let j = pull_json(&pr, port);
            st.pulls.insert(number, pr);
            (201, String::new(), j)
        }
        ("GET", ["repos", o, r, "pulls"]) => {
            let full = format!("{o}/{r}");
            let open_only = query.contains("state=open");
            let list: Vec<Value> = st
                .pulls
                .values()
                .filter(|p| p.repo == full && (!open_only || p.state == "open"))
                .map(|p| pull_json(p, port))
                .collect();
            (200, String::new(), Value::Array(list))
        }
        ("GET", ["repos", _, _, "pulls", n]) => {
            let Ok(n) = n.parse::<u64>() else {
                return err(404, "Not Found");
            };
            let reads = st.pull_reads.entry(n).or_default();
            *reads += 1;
            let reads = *reads;
            if st
                .move_head_after_reads
                .is_some_and(|(m, k)| m == n && reads > k)
            {
                st.move_head_after_reads = None;
                if let Some(p) = st.pulls.get(&n).cloned() {
                    st.commit(&p.head_repo, &p.head_ref, &[("NOTES.md", b"changed")]);
                }
            }
            let backed = st
                .pulls
                .get(&n)
                .and_then(|p| Some((st.git_backed.get(&p.head_repo)?.clone(), p.head_ref.clone())));
            if let Some((bare, head_ref)) = backed {
                // A branch deleted after landing keeps its last head.
                if let Some(sha) = git_branch(&bare, &head_ref) {
                    st.pulls.get_mut(&n).expect("looked up").head_sha = sha;
                }
            }
            match st.pulls.get(&n) {
                Some(p) => (200, String::new(), pull_json(p, port)),
                None => err(404, "Not Found"),
            }
        }
        ("PATCH", ["repos", _, _, "pulls", n]) => {
            let n: u64 = n.parse().unwrap_or(0);
            match st.pulls.get_mut(&n) {
                Some(p) => {
                    if let Some(s) = body["state"].as_str() {
                        p.state = s.into();
                    }
                    let j = pull_json(p, port);
                    (200, String::new(), j)
                }
                None => err(404, "Not Found"),
            }
        }
        ("GET", ["repos", _, _, "pulls", n, "files"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let Some(p) = st.pulls.get(&n).cloned() else {
                return err(404, "Not Found");
            };
            let base_repo = &st.repos[&p.repo];
            let base_tree = &base_repo.trees[&base_repo.branches[&p.base]];
            let head_tree = &st.repos[&p.head_repo].trees[&p.head_sha];
            let mut files = Vec::new();
            for (path, bytes) in head_tree {
                match base_tree.get(path) {
                    None => files.push(json!({"filename": path, "status": "added"})),
                    Some(b) if b != bytes => {
                        files.push(json!({"filename": path, "status": "modified"}))
                    }
                    _ => {}
                }
            }
            for path in base_tree.keys() {
                if !head_tree.contains_key(path) {
                    files.push(json!({"filename": path, "status": "removed"}));
                }
            }
            (200, String::new(), Value::Array(files))
        }
        ("GET", ["repos", o, r, "contents", p @ ..]) => {
            let full = format!("{o}/{r}");
            let p = p.join("/");
            let sha = query.strip_prefix("ref=").unwrap_or_default();
            match st
                .repos
                .get(&full)
                .and_then(|x| x.trees.get(sha))
                .and_then(|t| t.get(&p))
            {
                Some(bytes) => {
                    // GitHub wraps base64 at 60 columns.
                    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                    let wrapped: Vec<String> = b64
                        .as_bytes()
                        .chunks(60)
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect();
                    (
                        200,
                        String::new(),
                        json!({"path": p, "encoding": "base64", "content": wrapped.join("\n")}),
                    )
                }
                None => err(404, "Not Found"),
            }
        }
        ("POST", ["repos", _, _, "issues", n, "comments"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            st.comments
                .push((n, body["body"].as_str().unwrap_or_default().into()));
            (201, String::new(), json!({"id": st.comments.len()}))
        }
        _ => err(404, "Not Found"),
    }
}

/// Whether `login` may write to repositories of `owner` (its own forks).
fn owns(login: &str, owner: &str) -> bool {
    login == owner
}
