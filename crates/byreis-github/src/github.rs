//! The GitHub REST calls byreis makes for access requests on a registry
//! hosted on GitHub (ADR 0013), and for the pull requests of proposals and
//! submissions on a project hosted there (ADR 0014), through octocrab. This is the only module
//! that talks HTTP. Calls go only where the user pointed byreis: the API
//! URL comes from `BYREIS_GITHUB_API_URL` (or `https://api.github.com`),
//! never from a project repository; the token from `GITHUB_TOKEN` or
//! `GH_TOKEN`.
//!
//! Responses are read as JSON values, field by field, rather than through
//! octocrab's typed models: byreis needs a dozen fields, and reading only
//! those keeps GitHub Enterprise versions and test fakes from failing on a
//! model field byreis never uses.

use serde_json::{json, Value};

/// The environment variable naming the API base URL (GitHub Enterprise:
/// `https://HOST/api/v3`; tests: a fake on 127.0.0.1).
pub const API_URL_ENV: &str = "BYREIS_GITHUB_API_URL";
/// Seconds a GitHub API call may wait for an answer (default 30; the
/// connection itself gets at most 10).
pub const TIMEOUT_ENV: &str = "BYREIS_GITHUB_TIMEOUT";

/// The read and write timeout of every API call (issue 17: a stalled
/// connection hung byreis for ever).
fn call_timeout() -> std::time::Duration {
    let secs = std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| (1..=600).contains(s))
        .unwrap_or(30);
    std::time::Duration::from_secs(secs)
}
pub const DEFAULT_API_URL: &str = "https://api.github.com";

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("no GitHub token: set GITHUB_TOKEN (or GH_TOKEN) to a token that can open pull requests (and, for request-access, fork the registry)")]
    NoToken,
    #[error(
        "GitHub refused the token (401 on {0}): check GITHUB_TOKEN / GH_TOKEN; it may have expired"
    )]
    Unauthorized(String),
    #[error("GitHub rate limit reached (403 on {0}){1}: wait and run the command again")]
    RateLimited(String, String),
    #[error("GitHub forbids this (403 on {0}): {1}")]
    Forbidden(String, String),
    #[error("not found on GitHub (404 on {0}): check the registry URL, the pull request number and that your token can see the repository")]
    NotFound(String),
    #[error("GitHub refused the request (422 on {0}): {1}")]
    Unprocessable(String, String),
    #[error("GitHub API error on {0}: {1}")]
    Other(String, String),
    #[error("unexpected answer from GitHub on {0}: missing {1}")]
    Shape(String, &'static str),
}

impl GitHubError {
    /// The refusal code this error is reported with.
    pub fn code(&self) -> crate::diag::Refusal {
        match self {
            GitHubError::NoToken | GitHubError::Unauthorized(_) => crate::diag::Refusal::GithubAuth,
            _ => crate::diag::Refusal::GithubFailed,
        }
    }
}

/// A repository on GitHub (or GitHub Enterprise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoId {
    pub owner: String,
    pub name: String,
}

impl std::fmt::Display for RepoId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && s != "."
        && s != ".."
}

/// The API base URL this run uses (environment, else api.github.com).
pub fn api_url() -> String {
    std::env::var(API_URL_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_API_URL.to_string())
}

/// The web host whose repositories the API serves: `github.com` for the
/// public API, else the API URL's host (GitHub Enterprise, tests).
fn web_host(api: &str) -> Option<String> {
    let rest = api
        .strip_prefix("https://")
        .or_else(|| api.strip_prefix("http://"))?;
    let host = rest.split('/').next()?;
    Some(if host == "api.github.com" {
        "github.com".to_string()
    } else {
        host.to_string()
    })
}

/// The repository a registry URL names, when it is hosted where the API
/// points: `https://HOST/OWNER/NAME(.git)` or `git@HOST:OWNER/NAME(.git)`.
pub fn registry_repo(url: &str) -> Option<RepoId> {
    let host = web_host(&api_url())?;
    let path = url
        .strip_prefix(&format!("https://{host}/"))
        .or_else(|| url.strip_prefix(&format!("git@{host}:")))
        .or_else(|| url.strip_prefix(&format!("ssh://git@{host}/")))?;
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let (owner, name) = path.split_once('/')?;
    (is_slug(owner) && is_slug(name)).then(|| RepoId {
        owner: owner.into(),
        name: name.into(),
    })
}

/// A pull request number from `REF`: `N`, `#N`, or
/// `https://HOST/OWNER/NAME/pull/N` of `repo`.
pub fn pull_number(reference: &str, repo: &RepoId) -> Option<Result<u64, String>> {
    let digits = reference.strip_prefix('#').unwrap_or(reference);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(
            digits
                .parse()
                .map_err(|_| "pull request number too large".into()),
        );
    }
    let (base, n) = reference.trim_end_matches('/').rsplit_once("/pull/")?;
    let Some(r) = registry_repo(base) else {
        return Some(Err(format!(
            "{} is not a pull request of {repo}",
            crate::names::quoted(reference)
        )));
    };
    if r != *repo {
        return Some(Err(format!(
            "pull request {} belongs to {r}, not to {repo}",
            crate::names::quoted(reference)
        )));
    }
    Some(
        n.parse()
            .map_err(|_| format!("bad pull request URL {}", crate::names::quoted(reference))),
    )
}

/// An authenticated client.
pub struct Client {
    rt: tokio::runtime::Runtime,
    gh: octocrab::Octocrab,
}

/// Whether an octocrab error is a timeout, anywhere in its chain.
fn is_timeout(e: &octocrab::Error) -> bool {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        let text = format!("{err} {err:?}").to_lowercase();
        if text.contains("timed out") || text.contains("timeout") || text.contains("elapsed") {
            return true;
        }
        cur = err.source();
    }
    false
}

impl Client {
    /// A client for [`api_url`] with the token from the environment.
    pub fn from_env() -> Result<Client, GitHubError> {
        let token = ["GITHUB_TOKEN", "GH_TOKEN"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|t| !t.is_empty()))
            .ok_or(GitHubError::NoToken)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| GitHubError::Other("runtime".into(), e.to_string()))?;
        let api = api_url();
        let gh = {
            let _guard = rt.enter();
            let timeout = call_timeout();
            octocrab::Octocrab::builder()
                .personal_token(token)
                .set_connect_timeout(Some(timeout.min(std::time::Duration::from_secs(10))))
                .set_read_timeout(Some(timeout))
                .set_write_timeout(Some(timeout))
                .base_uri(api.as_str())
                .and_then(|b| b.build())
                .map_err(|e| GitHubError::Other(api.clone(), e.to_string()))?
        };
        Ok(Client { rt, gh })
    }

    fn map(route: &str, e: octocrab::Error) -> GitHubError {
        let route = route.to_string();
        match e {
            octocrab::Error::GitHub { source, .. } => {
                let status = source.status_code.as_u16();
                // GitHub's reasons (`errors[].message`, or their code and
                // field) follow its message (issue 17: a 422 lost them).
                let reasons: Vec<String> = source
                    .errors
                    .iter()
                    .flatten()
                    .filter_map(|e| {
                        e.get("message")
                            .and_then(|m| m.as_str())
                            .map(str::to_string)
                            .or_else(|| {
                                let code = e.get("code")?.as_str()?;
                                let field = e.get("field").and_then(|f| f.as_str()).unwrap_or("?");
                                Some(format!("{field}: {code}"))
                            })
                    })
                    .collect();
                let msg = if reasons.is_empty() {
                    crate::names::escape(&source.message)
                } else {
                    crate::names::escape(&format!("{} ({})", source.message, reasons.join("; ")))
                };
                match status {
                    401 => GitHubError::Unauthorized(route),
                    403 if source.message.to_lowercase().contains("rate limit")
                        || source
                            .headers
                            .as_ref()
                            .and_then(|h| h.get("x-ratelimit-remaining"))
                            .is_some_and(|v| v == "0") =>
                    {
                        let reset = source
                            .rate_limit_reset
                            .map(|r| format!(", resets at {r} (Unix time)"))
                            .unwrap_or_default();
                        GitHubError::RateLimited(route, reset)
                    }
                    403 => GitHubError::Forbidden(route, msg),
                    404 => GitHubError::NotFound(route),
                    422 => GitHubError::Unprocessable(route, msg),
                    _ => GitHubError::Other(route, format!("{status}: {msg}")),
                }
            }
            other if is_timeout(&other) => GitHubError::Other(
                route,
                format!(
                    "GitHub gave no answer within {} s (timed out); nothing more was sent. Try again later, or set {TIMEOUT_ENV}=SECONDS for a slow link",
                    call_timeout().as_secs()
                ),
            ),
            other => GitHubError::Other(route, other.to_string()),
        }
    }

    pub fn get(&self, route: &str) -> Result<Value, GitHubError> {
        self.rt
            .block_on(self.gh.get::<Value, _, ()>(route, None))
            .map_err(|e| Self::map(route, e))
    }

    pub fn post(&self, route: &str, body: &Value) -> Result<Value, GitHubError> {
        self.rt
            .block_on(self.gh.post::<Value, Value>(route, Some(body)))
            .map_err(|e| Self::map(route, e))
    }

    pub fn put(&self, route: &str, body: &Value) -> Result<Value, GitHubError> {
        self.rt
            .block_on(self.gh.put::<Value, _, Value>(route, Some(body)))
            .map_err(|e| Self::map(route, e))
    }

    pub fn patch(&self, route: &str, body: &Value) -> Result<Value, GitHubError> {
        self.rt
            .block_on(self.gh.patch::<Value, _, Value>(route, Some(body)))
            .map_err(|e| Self::map(route, e))
    }
}

fn field<'a>(v: &'a Value, route: &str, path: &'static str) -> Result<&'a str, GitHubError> {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .ok_or_else(|| GitHubError::Shape(route.to_string(), path))
}

/// Why a request pull request could not be read: the API failed, or
/// what it holds is not a request (only the latter may be closed as
/// malformed).
#[derive(Debug, thiserror::Error)]
pub enum PullReadError {
    #[error("{0}")]
    Api(#[from] GitHubError),
    #[error("{0}")]
    Invalid(String),
}

impl PullReadError {
    /// The refusal code this error is reported with.
    pub fn code(&self) -> crate::diag::Refusal {
        match self {
            PullReadError::Api(e) => e.code(),
            PullReadError::Invalid(_) => crate::diag::Refusal::BadRequest,
        }
    }
}

/// What `request-access` did on GitHub.
pub struct Opened {
    pub number: u64,
    pub url: String,
    pub fork: String,
}

/// As a contributor without write access would: fork the registry (GitHub
/// returns the existing fork if there is one), put `bytes` at `path` on
/// branch `branch` of the fork, open a pull request against the default
/// branch. The body explains the request; it holds no fingerprint and no
/// command to paste.
pub fn open_request(
    c: &Client,
    registry: &RepoId,
    branch: &str,
    path: &str,
    bytes: &[u8],
    title: &str,
    body: &str,
) -> Result<Opened, GitHubError> {
    use base64::Engine as _;
    let route = format!("/repos/{registry}");
    let repo = c.get(&route)?;
    let default = field(&repo, &route, "default_branch")?.to_string();
    let forks = format!("/repos/{registry}/forks");
    let fork = c.post(&forks, &json!({}))?;
    let fork_name = field(&fork, &forks, "full_name")?.to_string();
    let fork_owner = field(&fork, &forks, "owner.login")?.to_string();
    let base_ref = format!("/repos/{registry}/git/ref/heads/{default}");
    let base = c.get(&base_ref)?;
    let sha = field(&base, &base_ref, "object.sha")?.to_string();
    let refs = format!("/repos/{fork_name}/git/refs");
    match c.post(
        &refs,
        &json!({"ref": format!("refs/heads/{branch}"), "sha": sha}),
    ) {
        Ok(_) => {}
        // The branch exists (an earlier request): start it again from the
        // registry's default branch.
        Err(GitHubError::Unprocessable(..)) => {
            c.patch(
                &format!("/repos/{fork_name}/git/refs/heads/{branch}"),
                &json!({"sha": sha, "force": true}),
            )?;
        }
        Err(e) => return Err(e),
    }
    c.put(
        &format!("/repos/{fork_name}/contents/{path}"),
        &json!({
            "message": title,
            "content": base64::engine::general_purpose::STANDARD.encode(bytes),
            "branch": branch,
        }),
    )?;
    let pulls = format!("/repos/{registry}/pulls");
    let pr = c.post(
        &pulls,
        &json!({
            "title": title,
            "head": format!("{fork_owner}:{branch}"),
            "base": default,
            "body": body,
        }),
    )?;
    Ok(Opened {
        number: pr
            .get("number")
            .and_then(Value::as_u64)
            .ok_or_else(|| GitHubError::Shape(pulls.clone(), "number"))?,
        url: field(&pr, &pulls, "html_url")?.to_string(),
        fork: fork_name,
    })
}

/// A request pull request as read for an admin.
#[derive(Debug, Clone)]
pub struct RequestPull {
    pub number: u64,
    pub open: bool,
    pub head_sha: String,
    /// The one file it changes.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// Reads pull request `number` of `registry`: it must be open and change
/// exactly one file, added; returns that file's bytes at the head commit.
pub fn read_request(
    c: &Client,
    registry: &RepoId,
    number: u64,
) -> Result<RequestPull, PullReadError> {
    use base64::Engine as _;
    let route = format!("/repos/{registry}/pulls/{number}");
    let pr = c.get(&route)?;
    let open = pr.get("state").and_then(Value::as_str) == Some("open");
    let head_sha = field(&pr, &route, "head.sha")?.to_string();
    let head_repo = field(&pr, &route, "head.repo.full_name")?.to_string();
    let files_route = format!("/repos/{registry}/pulls/{number}/files");
    let files = c.get(&files_route)?;
    let files = files.as_array().cloned().unwrap_or_default();
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.get("filename")
                .and_then(Value::as_str)
                .map(crate::names::escape)
                .unwrap_or_default()
        })
        .collect();
    if files.len() != 1 || files[0].get("status").and_then(Value::as_str) != Some("added") {
        return Err(PullReadError::Invalid(format!(
            "pull request #{number} must add exactly one request file; it changes: {}",
            names.join(", ")
        )));
    }
    let path = files[0]
        .get("filename")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let content_route = format!("/repos/{head_repo}/contents/{path}?ref={head_sha}");
    let content = c.get(&content_route)?;
    let b64: String = field(&content, &content_route, "content")?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| {
            PullReadError::Invalid(format!(
                "pull request #{number}: content is not base64 ({e})"
            ))
        })?;
    Ok(RequestPull {
        number,
        open,
        head_sha,
        path,
        bytes,
    })
}

/// The head commit and state of pull request `number` (to refuse a
/// request that changed after confirmation).
pub fn pull_head(
    c: &Client,
    registry: &RepoId,
    number: u64,
) -> Result<(bool, String), GitHubError> {
    let route = format!("/repos/{registry}/pulls/{number}");
    let pr = c.get(&route)?;
    let open = pr.get("state").and_then(Value::as_str) == Some("open");
    Ok((open, field(&pr, &route, "head.sha")?.to_string()))
}

/// The GitHub repository of a project's `origin`, when it is hosted where
/// the API points (proposals and submissions then become pull requests).
pub fn origin_repo(repo: &crate::git::Repo) -> Option<RepoId> {
    registry_repo(&repo.origin_url()?)
}

/// Opens a pull request of `branch` (a branch of `repo` itself) onto
/// `base`. Returns its number and web URL.
pub fn open_pull(
    c: &Client,
    repo: &RepoId,
    branch: &str,
    base: &str,
    title: &str,
    body: &str,
) -> Result<(u64, String), GitHubError> {
    let route = format!("/repos/{repo}/pulls");
    let pr = c.post(
        &route,
        &json!({"title": title, "head": branch, "base": base, "body": body}),
    )?;
    let number = pr
        .get("number")
        .and_then(Value::as_u64)
        .ok_or_else(|| GitHubError::Shape(route.clone(), "number"))?;
    Ok((number, field(&pr, &route, "html_url")?.to_string()))
}

/// Pull request `number` of `repo` as byreis uses it for proposals: open
/// or not, its head commit, and its head branch when that branch is in
/// `repo` itself (byreis never fetches from forks for proposals).
pub struct PullBranch {
    pub open: bool,
    pub sha: String,
    pub branch: Option<String>,
}

pub fn pull_branch(c: &Client, repo: &RepoId, number: u64) -> Result<PullBranch, GitHubError> {
    let route = format!("/repos/{repo}/pulls/{number}");
    let pr = c.get(&route)?;
    // GitHub owner and repository names are case-insensitive.
    let same = field(&pr, &route, "head.repo.full_name")?.eq_ignore_ascii_case(&repo.to_string());
    Ok(PullBranch {
        open: pr.get("state").and_then(Value::as_str) == Some("open"),
        sha: field(&pr, &route, "head.sha")?.to_string(),
        branch: same
            .then(|| field(&pr, &route, "head.ref").map(str::to_string))
            .transpose()?,
    })
}

/// Comments on pull request `number`.
pub fn comment(c: &Client, repo: &RepoId, number: u64, text: &str) -> Result<(), GitHubError> {
    c.post(
        &format!("/repos/{repo}/issues/{number}/comments"),
        &json!({"body": text}),
    )?;
    Ok(())
}

/// Comments on and closes pull request `number` (never merges it).
pub fn close_with_comment(
    c: &Client,
    registry: &RepoId,
    number: u64,
    comment: &str,
) -> Result<(), GitHubError> {
    c.post(
        &format!("/repos/{registry}/issues/{number}/comments"),
        &json!({"body": comment}),
    )?;
    c.patch(
        &format!("/repos/{registry}/pulls/{number}"),
        &json!({"state": "closed"}),
    )?;
    Ok(())
}

/// Open pull requests of `registry` whose head branch is a request branch.
pub fn open_request_pulls(
    c: &Client,
    registry: &RepoId,
) -> Result<Vec<(u64, String)>, GitHubError> {
    open_pulls(c, registry, crate::request::BRANCH_PREFIX)
}

/// Open pull requests of `repo` whose head branch starts with `prefix`:
/// numbers and head branches.
pub fn open_pulls(
    c: &Client,
    repo: &RepoId,
    prefix: &str,
) -> Result<Vec<(u64, String)>, GitHubError> {
    let route = format!("/repos/{repo}/pulls?state=open&per_page=100");
    let list = c.get(&route)?;
    Ok(list
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    let n = p.get("number")?.as_u64()?;
                    let r = p.get("head")?.get("ref")?.as_str()?;
                    r.starts_with(prefix).then(|| (n, r.to_string()))
                })
                .collect()
        })
        .unwrap_or_default())
}

// GitHub refusals reach the CLI as the core's one error type.
impl From<PullReadError> for crate::store::StoreError {
    fn from(e: PullReadError) -> Self {
        crate::store::StoreError::Refused(e.code(), e.to_string())
    }
}

impl From<GitHubError> for crate::store::StoreError {
    fn from(e: GitHubError) -> Self {
        crate::store::StoreError::Refused(e.code(), e.to_string())
    }
}
