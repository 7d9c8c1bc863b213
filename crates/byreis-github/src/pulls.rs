//! Proposals (ADR 0012) and members' submissions (ADR 0014) as GitHub
//! pull requests, when the project's `origin` is a repository on the host
//! the API points to (`BYREIS_GITHUB_API_URL`, else github.com). The pull
//! request is only where people discuss and find the change: byreis still
//! reviews, approves and lands the branch itself, checks that the branch
//! it reviewed is the pull request's head, and closes the pull request
//! with a comment once the change landed. Nothing is ever merged.
// Edge: reports pull requests it opens (to move into the cli with the one-route work).
#![allow(clippy::disallowed_macros)]

use crate::diag::Refusal;
use crate::git::Repo;
use crate::github::{self, Client, RepoId};
use crate::store::StoreError;

/// A pull request of the project whose head is a byreis branch.
pub struct Pull {
    pub repo: RepoId,
    pub number: u64,
    /// Its head branch, in the project repository itself.
    pub branch: String,
    /// Its head commit when it was looked up.
    pub sha: String,
    /// Named by number or URL (its head is then what must be reviewed),
    /// rather than found by its branch.
    by_number: bool,
    client: Client,
}

fn refuse<T>(code: Refusal, m: String) -> Result<T, StoreError> {
    Err(StoreError::Refused(code, m))
}

/// `reference` as a pull request of the project's GitHub `origin` (`N`,
/// `#N` or its URL) whose head is a branch of the project named with one
/// of `prefixes`. `None` when `reference` is not a pull request reference
/// or the project is not on GitHub.
pub fn resolve(
    repo: &Repo,
    reference: &str,
    prefixes: &[&str],
) -> Result<Option<Pull>, StoreError> {
    let Some(gh) = github::origin_repo(repo) else {
        return Ok(None);
    };
    let number = match github::pull_number(reference, &gh) {
        None => return Ok(None),
        Some(n) => n.map_err(|m| StoreError::Refused(Refusal::UnknownReference, m))?,
    };
    let client = Client::from_env().map_err(StoreError::from)?;
    let head = github::pull_branch(&client, &gh, number).map_err(StoreError::from)?;
    if !head.open {
        return refuse(
            Refusal::PullRequestUnusable,
            format!("pull request #{number} of {gh} is closed; nothing was changed"),
        );
    }
    let Some(branch) = head.branch else {
        return refuse(Refusal::PullRequestUnusable, format!(
            "pull request #{number} of {gh} comes from a fork; byreis approves only branches of the project repository (push the branch there); nothing was changed"
        ));
    };
    if !prefixes.iter().any(|p| branch.starts_with(p)) {
        return refuse(Refusal::PullRequestUnusable, format!(
            "pull request #{number} of {gh} is from branch {}, which is not a byreis proposal or submission; nothing was changed",
            crate::names::quoted(&branch)
        ));
    }
    Ok(Some(Pull {
        repo: gh,
        number,
        branch,
        sha: head.sha,
        by_number: true,
        client,
    }))
}

impl Pull {
    /// Refuses when `tip`, the commit byreis reviewed, is not the head of
    /// a pull request the approver named (it moved after byreis fetched
    /// it: stale). One found by its branch only gets told the outcome.
    pub fn check_head(&self, tip: &str) -> Result<(), StoreError> {
        if tip == self.sha || !self.by_number {
            return Ok(());
        }
        refuse(Refusal::Stale, format!(
            "pull request #{} is stale: its head is {} but branch {} is at {} here; run the command again (nothing was changed)",
            self.number,
            &self.sha[..12.min(self.sha.len())],
            self.branch,
            &tip[..12.min(tip.len())]
        ))
    }

    /// Comments on the pull request, closing it when `close`. A failure is
    /// a warning: what counts already happened in git.
    pub fn report(&self, text: &str, close: bool) {
        let r = if close {
            github::close_with_comment(&self.client, &self.repo, self.number, text)
        } else {
            github::comment(&self.client, &self.repo, self.number, text)
        };
        match r {
            Ok(()) if close => eprintln!(
                "byreis: pull request #{} commented and closed (not merged)",
                self.number
            ),
            Ok(()) => eprintln!("byreis: pull request #{} commented", self.number),
            Err(e) => eprintln!(
                "byreis: warning: could not update pull request #{}: {e}",
                self.number
            ),
        }
    }
}

/// The open pull request of `repo`'s GitHub `origin` whose head is
/// `branch` (of the repository itself), to close once a change approved
/// by branch name landed. `None` when the project is not on GitHub, there
/// is no token, the API fails, or there is none: approvals by name never
/// depend on the API.
pub fn find_for_branch(repo: &Repo, branch: &str) -> Option<Pull> {
    let gh = github::origin_repo(repo)?;
    let client = Client::from_env().ok()?;
    let (number, _) = github::open_pulls(&client, &gh, branch)
        .ok()?
        .into_iter()
        .find(|(_, b)| b == branch)?;
    let head = github::pull_branch(&client, &gh, number).ok()?;
    Some(Pull {
        repo: gh,
        number,
        branch: head.branch?,
        sha: head.sha,
        by_number: false,
        client,
    })
}

/// After a branch was pushed to a GitHub `origin`: opens the pull request
/// the core drafted onto the project's current branch. Returns what to
/// tell the user (`None` when the repository is not on GitHub). Never an
/// error: approvals work on the branch, the pull request only shows it.
pub fn open(draft: &crate::store::PullDraft) -> Option<String> {
    let gh = github::registry_repo(&draft.origin)?;
    let branch = &draft.branch;
    let Some(base) = &draft.base else {
        return Some(format!(
            "no pull request opened: HEAD is not on a branch; open one for {branch} yourself"
        ));
    };
    let opened = Client::from_env()
        .and_then(|c| github::open_pull(&c, &gh, branch, base, &draft.title, &draft.body));
    Some(match opened {
        Ok((n, url)) => format!("opened pull request #{n} of {gh}: {url}"),
        Err(e) => format!(
            "no pull request opened ({e}); the branch is pushed, and admins approve it by its name"
        ),
    })
}

/// Opens a drafted pull request once: takes the draft and notes what
/// happened in `line`.
fn open_once(draft: &mut Option<crate::store::PullDraft>, line: &mut Option<String>) {
    if let Some(d) = draft.take() {
        *line = open(&d);
    }
}

/// Opens the pull request a proposal drafted, if it became one.
pub fn open_for_landed(landed: &mut crate::store::Landed) {
    if let crate::store::Landed::Proposed(p) = landed {
        open_once(&mut p.pull, &mut p.pull_request);
    }
}

/// Opens the pull request a proposed roster change drafted.
pub fn open_for_roster(change: &mut crate::store::RosterChange) {
    if let crate::store::RosterChange::Proposed {
        pull, pull_request, ..
    } = change
    {
        open_once(pull, pull_request);
    }
}

/// Opens the pull request a submission drafted.
pub fn open_for_submission(s: &mut crate::submission::Submitted) {
    open_once(&mut s.pull, &mut s.pull_request);
}

/// Reads request `reference` for the CLI: a pull request of the GitHub
/// registry is fetched here (the edge) and handed to the core to check like
/// any request; files and branches are the core's.
pub fn load_request(
    state: &crate::verify::State,
    reference: &str,
) -> Result<crate::request::Loaded, StoreError> {
    let pull = match github::registry_repo(&state.pin().registry)
        .and_then(|repo| github::pull_number(reference, &repo).map(|n| (repo, n)))
    {
        Some((repo, n)) if !reference.contains(crate::request::BRANCH_PREFIX) => {
            let number = n.map_err(|m| StoreError::Refused(Refusal::UnknownReference, m))?;
            let client = Client::from_env()?;
            let pr = github::read_request(&client, &repo, number)?;
            Some(crate::request::PullRead {
                repo: repo.to_string(),
                number,
                open: pr.open,
                head_sha: pr.head_sha,
                path: pr.path,
                bytes: pr.bytes,
            })
        }
        _ => None,
    };
    crate::request::load(state.registry(), &state.manifest().project, reference, pull)
}

/// The request a rotation absorbs must still be the one confirmed: reads
/// its pull request's state again (on GitHub) for the core's check.
pub fn check_request_fresh(
    state: &crate::verify::State,
    loaded: &crate::request::Loaded,
) -> Result<(), StoreError> {
    let mut now = None;
    if let crate::request::Source::PullRequest { number, .. } = &loaded.source {
        if let Some(repo) = github::registry_repo(&state.pin().registry) {
            let client = Client::from_env()?;
            now = Some(github::pull_head(&client, &repo, *number)?);
        }
    }
    crate::request::check_not_stale(state.registry(), loaded, now)
}

/// Comments on and closes the pull request a decided request came from
/// (never merges it). Nothing to do for branches and files.
pub fn close_request_pull(
    state: &crate::verify::State,
    loaded: &crate::request::Loaded,
    comment: &str,
) -> Result<(), StoreError> {
    if let crate::request::Source::PullRequest { number, .. } = &loaded.source {
        let Some(repo) = github::registry_repo(&state.pin().registry) else {
            return Ok(());
        };
        let client = Client::from_env()?;
        github::close_with_comment(&client, &repo, *number, comment)?;
    }
    Ok(())
}
