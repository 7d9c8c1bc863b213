//! Everything byreis does with git objects, through libgit2 (git2). This is
//! the only module that touches git2.
//!
//! libgit2 runs no hooks, applies no clean/smudge filters when byreis reads
//! blobs, and ignores replace refs, so what byreis reads is what the object
//! database holds (invariant 9).

use std::path::{Path, PathBuf};

pub use git2::Oid;
use git2::{ObjectType, Repository};

use crate::keys::Signer;
use crate::sshsig::{self, Namespace};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{0} is not inside a git work tree (run `git init` first, or use -C DIR)")]
    NotARepo(String),
    #[error("{0} does not exist (-C DIR names the directory of a project checkout)")]
    NoSuchDir(String),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("the branch moved while byreis was writing (someone else committed); nothing was changed by this run, run it again")]
    Raced,
    #[error("{path} is not a regular file in commit {commit} (symlinks, submodules and directories are refused)")]
    NotRegular { path: String, commit: String },
    #[error("{0}")]
    Sign(String),
}

/// Why `dir` holds no repository: it is missing, or not in a work tree.
fn not_a_repo(dir: &std::path::Path) -> GitError {
    if dir.exists() {
        GitError::NotARepo(dir.display().to_string())
    } else {
        GitError::NoSuchDir(dir.display().to_string())
    }
}

impl GitError {
    /// The refusal code this error is reported with.
    pub fn code(&self) -> crate::diag::Refusal {
        match self {
            GitError::NotARepo(_) | GitError::NoSuchDir(_) => crate::diag::Refusal::NotAWorkTree,
            GitError::Git(_) => crate::diag::Refusal::GitFailed,
            GitError::Raced => crate::diag::Refusal::BranchMoved,
            GitError::NotRegular { .. } => crate::diag::Refusal::NotARegularFile,
            GitError::Sign(_) => crate::diag::Refusal::SigningFailed,
        }
    }
}

/// Kind of tree entry at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Blob,
    Executable,
    Link,
    Tree,
    Submodule,
}

pub struct Repo {
    repo: Repository,
    workdir: Option<PathBuf>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repo({:?})", self.repo.path())
    }
}

/// One file change in a commit: `None` deletes the path.
pub struct Change {
    pub path: String,
    pub content: Option<Content>,
}

/// What a [`Change`] puts at its path.
pub enum Content {
    /// Bytes not yet in the object database.
    Bytes(Vec<u8>),
    /// A blob already stored with [`Repo::store_blobs`] (large changes keep
    /// only ids in memory, not every file).
    Stored(Oid),
}

impl From<Vec<u8>> for Content {
    fn from(bytes: Vec<u8>) -> Content {
        Content::Bytes(bytes)
    }
}

/// Blobs per pack: bounds what one [`Repo::store_blobs`] call holds.
pub const PACK_BATCH: usize = 1024;

impl Repo {
    /// Opens the repository whose work tree contains `dir`.
    pub fn discover(dir: &Path) -> Result<Repo, GitError> {
        let repo = Repository::discover(dir).map_err(|_| not_a_repo(dir))?;
        Self::wrap(repo)
    }

    /// Opens exactly the repository at `dir` (no search upwards).
    pub fn open(dir: &Path) -> Result<Repo, GitError> {
        let repo = Repository::open(dir).map_err(|_| not_a_repo(dir))?;
        Self::wrap(repo)
    }

    fn wrap(repo: Repository) -> Result<Repo, GitError> {
        let workdir = repo.workdir().map(Path::to_path_buf);
        Ok(Repo { repo, workdir })
    }

    /// A tree without `.git` (what Argo CD hands a config-management
    /// plugin): an empty repository of byreis's own, in a private temporary
    /// directory, with `dir` as its work tree. It has no commits, so only a
    /// work tree holding exactly the pinned state verifies; the directory
    /// is removed when the returned guard drops.
    pub fn treeless(dir: &Path) -> Result<(Repo, tempfile::TempDir), GitError> {
        let scratch = tempfile::Builder::new()
            .prefix("byreis-treeless-")
            .tempdir()
            .map_err(|e| GitError::Sign(format!("a private temporary directory: {e}")))?;
        let repo = Repository::init_bare(scratch.path())?;
        // init_bare applies the umask to the directory: private again.
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o700))
                .map_err(|e| GitError::Sign(format!("a private temporary directory: {e}")))?;
        }
        repo.set_workdir(dir, false)?;
        Ok((Self::wrap(repo)?, scratch))
    }

    pub fn init(dir: &Path) -> Result<Repo, GitError> {
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        Self::wrap(Repository::init_opts(dir, &opts)?)
    }

    pub fn workdir(&self) -> Option<&Path> {
        self.workdir.as_deref()
    }

    /// The repository's common git directory (shared by worktrees).
    pub fn common_dir(&self) -> PathBuf {
        self.repo.commondir().to_path_buf()
    }

    pub fn is_shallow(&self) -> bool {
        self.repo.is_shallow()
    }

    /// The commit HEAD points at, or `None` on an unborn branch.
    pub fn head(&self) -> Result<Option<Oid>, GitError> {
        match self.repo.head() {
            Ok(r) => Ok(r.target()),
            Err(e)
                if e.code() == git2::ErrorCode::UnbornBranch
                    || e.code() == git2::ErrorCode::NotFound =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn has_commit(&self, id: &str) -> bool {
        Oid::from_str(id)
            .ok()
            .and_then(|oid| self.repo.find_commit(oid).ok())
            .is_some()
    }

    /// Is `ancestor` reachable from `descendant` (or the same commit)?
    pub fn contains(&self, descendant: Oid, ancestor: &str) -> bool {
        let Ok(a) = Oid::from_str(ancestor) else {
            return false;
        };
        a == descendant
            || self
                .repo
                .graph_descendant_of(descendant, a)
                .unwrap_or(false)
    }

    fn commit_tree(&self, commit: &str) -> Result<git2::Tree<'_>, GitError> {
        let oid = Oid::from_str(commit)?;
        Ok(self.repo.find_commit(oid)?.tree()?)
    }

    /// Reads a regular file at `path` in `commit`. `Ok(None)` if absent;
    /// an error if it is a link, submodule or directory.
    pub fn read_file(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        Ok(self
            .read_file_with_id(commit, path)?
            .map(|(_, bytes)| bytes))
    }

    /// Like [`Repo::read_file`], with the blob's id (callers that walk
    /// history compare ids to parse each distinct blob once).
    pub fn read_file_with_id(
        &self,
        commit: &str,
        path: &str,
    ) -> Result<Option<(Oid, Vec<u8>)>, GitError> {
        let tree = self.commit_tree(commit)?;
        let entry = match tree.get_path(Path::new(path)) {
            Ok(e) => e,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if entry_kind(entry.filemode()) != EntryKind::Blob {
            return Err(GitError::NotRegular {
                path: path.to_string(),
                commit: commit.to_string(),
            });
        }
        let blob = self.repo.find_blob(entry.id())?;
        Ok(Some((entry.id(), blob.content().to_vec())))
    }

    /// The ids of the entries at `paths` in `commit`'s tree (blobs or
    /// trees), without reading them; `None` where a path is absent. Each
    /// directory is looked up once (a lookup by full path re-reads every
    /// tree on the way, which is quadratic over a large directory).
    pub fn entry_ids<S: AsRef<str>>(
        &self,
        commit: &str,
        paths: &[S],
    ) -> Result<Vec<Option<Oid>>, GitError> {
        let root = self.commit_tree(commit)?;
        let mut dirs: std::collections::HashMap<&str, Option<git2::Tree<'_>>> =
            std::collections::HashMap::new();
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            let p = p.as_ref();
            let (dir, name) = match p.rsplit_once('/') {
                Some((d, n)) => (d, n),
                None => ("", p),
            };
            if !dirs.contains_key(dir) {
                let tree = if dir.is_empty() {
                    Some(root.clone())
                } else {
                    match root.get_path(Path::new(dir)) {
                        Ok(e) if e.kind() == Some(ObjectType::Tree) => {
                            Some(self.repo.find_tree(e.id())?)
                        }
                        Ok(_) => None,
                        Err(e) if e.code() == git2::ErrorCode::NotFound => None,
                        Err(e) => return Err(e.into()),
                    }
                };
                dirs.insert(dir, tree);
            }
            out.push(
                dirs[dir]
                    .as_ref()
                    .and_then(|t| t.get_name(name))
                    .map(|e| e.id()),
            );
        }
        Ok(out)
    }

    /// The commit `rev` names (an id, a branch, `HEAD~2`…), as a full id.
    pub fn resolve_commit(&self, rev: &str) -> Result<String, GitError> {
        Ok(self
            .repo
            .revparse_single(rev)?
            .peel_to_commit()?
            .id()
            .to_string())
    }

    /// The content of blob `id`.
    pub fn blob(&self, id: Oid) -> Result<Vec<u8>, GitError> {
        Ok(self.repo.find_blob(id)?.content().to_vec())
    }

    /// Commits from `from` back along first parents (newest first). Stops
    /// where history ends or is cut (a shallow clone).
    pub fn first_parent_chain(&self, from: &str) -> Result<Vec<String>, GitError> {
        let mut walk = self.repo.revwalk()?;
        walk.push(Oid::from_str(from)?)?;
        walk.simplify_first_parent()?;
        let mut out = Vec::new();
        for id in walk {
            match id {
                Ok(id) => out.push(id.to_string()),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// Lists the entries directly under directory `dir` in `commit`.
    pub fn list_dir(&self, commit: &str, dir: &str) -> Result<Vec<(String, EntryKind)>, GitError> {
        let tree = self.commit_tree(commit)?;
        let sub = match tree.get_path(Path::new(dir)) {
            Ok(e) if e.kind() == Some(ObjectType::Tree) => self.repo.find_tree(e.id())?,
            Ok(_) => return Ok(vec![(dir.to_string(), EntryKind::Blob)]),
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        Ok(sub
            .iter()
            .map(|e| {
                (
                    String::from_utf8_lossy(e.name_bytes()).into_owned(),
                    entry_kind(e.filemode()),
                )
            })
            .collect())
    }

    /// Paths under `prefixes` whose index or work-tree state differs from HEAD
    /// (untracked files included).
    pub fn dirty_paths(&self, prefixes: &[&str]) -> Result<Vec<String>, GitError> {
        let mut opts = git2::StatusOptions::new();
        // update_index: stat data of files found unchanged is written back
        // (as `git status` does), so the next status does not hash them
        // again.
        opts.include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(false)
            .update_index(true);
        for p in prefixes {
            opts.pathspec(p);
        }
        let statuses = self.repo.statuses(Some(&mut opts))?;
        Ok(statuses
            .iter()
            .filter(|s| s.status() != git2::Status::CURRENT)
            .filter_map(|s| s.path().ok().map(str::to_string))
            .collect())
    }

    /// Makes one signed commit on the current branch with `changes` applied
    /// to HEAD's tree, moves the branch by compare-and-swap, then checks out
    /// exactly the changed paths. Returns the new commit id.
    ///
    /// The caller has checked that the changed paths are clean, so the
    /// forced checkout of those paths loses nothing.
    pub fn commit_signed(
        &self,
        changes: &[Change],
        message: &str,
        signer: &Signer,
        author: (&str, &str),
    ) -> Result<Oid, GitError> {
        let head = self.head()?;
        let commit = self.create_signed_commit(head, changes, message, signer, author)?;
        self.advance_branch(head, commit, changes)?;
        Ok(commit)
    }

    /// Writes a signed commit object with `changes` applied to `parent`'s
    /// tree. No ref moves: the commit is unreachable until
    /// [`Repo::advance_branch`].
    pub fn create_signed_commit(
        &self,
        parent: Option<Oid>,
        changes: &[Change],
        message: &str,
        signer: &Signer,
        author: (&str, &str),
    ) -> Result<Oid, GitError> {
        // New blobs reach the disk as packs (one file per PACK_BATCH blobs,
        // not a loose object each); the trees and the commit, a handful of
        // objects, are written loose.
        let fresh: Vec<&[u8]> = changes
            .iter()
            .filter_map(|c| match &c.content {
                Some(Content::Bytes(b)) => Some(b.as_slice()),
                _ => None,
            })
            .collect();
        let mut ids = Vec::with_capacity(fresh.len());
        for chunk in fresh.chunks(PACK_BATCH) {
            ids.extend(self.store_blobs(chunk)?);
        }
        crate::timing::phase("git: blobs packed");
        let mut ids = ids.into_iter();
        let resolved: Vec<(&str, Option<Oid>)> = changes
            .iter()
            .map(|c| {
                let id = match &c.content {
                    Some(Content::Bytes(_)) => Some(ids.next().expect("one id per new blob")),
                    Some(Content::Stored(id)) => Some(*id),
                    None => None,
                };
                (c.path.as_str(), id)
            })
            .collect();
        let commit = self.build_signed_commit(parent, &resolved, message, signer, author)?;
        crate::timing::phase("git: trees and commit written");
        Ok(commit)
    }

    /// Stores `blobs` in the object database as one pack, written straight
    /// to libgit2's indexer, and returns their ids in order. Nothing refers
    /// to them until a commit does: an interrupted run leaves unreachable
    /// objects, which `git gc` removes.
    ///
    /// Why not libgit2's own pack builder: it searches for deltas between
    /// objects (useless between ciphertexts, and a fifth of a rotation's
    /// time), and every object written through the object database first
    /// rescans the pack directory when it is new (ADR 0011).
    pub fn store_blobs(&self, blobs: &[&[u8]]) -> Result<Vec<Oid>, GitError> {
        if blobs.is_empty() {
            return Ok(Vec::new());
        }
        let encoded = crate::par::map(blobs, None, |b| pack_entry(b));
        let odb = self.repo.odb()?;
        let mut writer = odb.packwriter()?;
        let mut pack = PackStream::new(&mut writer, blobs.len())?;
        let mut ids = Vec::with_capacity(blobs.len());
        for e in encoded {
            let (id, bytes) = e?;
            pack.write(&bytes)?;
            ids.push(id);
        }
        pack.finish()?;
        writer.commit()?;
        odb.refresh()?;
        Ok(ids)
    }

    fn build_signed_commit(
        &self,
        parent: Option<Oid>,
        changes: &[(&str, Option<Oid>)],
        message: &str,
        signer: &Signer,
        author: (&str, &str),
    ) -> Result<Oid, GitError> {
        let parent = parent.map(|h| self.repo.find_commit(h)).transpose()?;
        let mut index = git2::Index::new()?;
        if let Some(p) = &parent {
            index.read_tree(&p.tree()?)?;
        }
        for (path, id) in changes {
            match id {
                Some(id) => index.add(&index_entry(path, *id))?,
                None => {
                    let _ = index.remove_path(Path::new(path));
                }
            }
        }
        let tree_id = index.write_tree_to(&self.repo)?;
        let tree = self.repo.find_tree(tree_id)?;
        let sig = git2::Signature::now(author.0, author.1)?;
        let mut msg = message.trim_end().to_string();
        msg.push('\n');
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let buf = self
            .repo
            .commit_create_buffer(&sig, &sig, &msg, &tree, &parents)?;
        let content = buf
            .as_str()
            .map_err(|_| GitError::Sign("commit buffer is not UTF-8".into()))?;
        let armored = sshsig::sign_armored(signer, Namespace::Git, content.as_bytes())
            .map_err(|e| GitError::Sign(e.to_string()))?;
        Ok(self.repo.commit_signed(content, armored.trim_end(), None)?)
    }

    /// Moves the branch HEAD names from `old` to `new` (compare-and-swap:
    /// refused if it is no longer at `old`), then brings the working tree
    /// and index to the new commit for `changes` (written directly: the
    /// caller checked those paths were clean).
    pub fn advance_branch(
        &self,
        old: Option<Oid>,
        new: Oid,
        changes: &[Change],
    ) -> Result<(), GitError> {
        self.move_branch(old, new)?;
        self.write_worktree(changes)
    }

    /// Compare-and-swap of the branch HEAD names.
    pub fn move_branch(&self, old: Option<Oid>, new: Oid) -> Result<(), GitError> {
        let branch = self.head_branch()?;
        let log = "byreis: signed change";
        match old {
            Some(old) => self
                .repo
                .reference_matching(&branch, new, true, old, log)
                .map_err(|e| {
                    if e.code() == git2::ErrorCode::Modified {
                        GitError::Raced
                    } else {
                        GitError::Git(e)
                    }
                })?,
            None => self.repo.reference(&branch, new, false, log).map_err(|e| {
                if e.code() == git2::ErrorCode::Exists {
                    GitError::Raced
                } else {
                    GitError::Git(e)
                }
            })?,
        };
        Ok(())
    }

    /// Writes `changes` into the working tree (on all cores: the cost is
    /// system calls) and then the index.
    fn write_worktree(&self, changes: &[Change]) -> Result<(), GitError> {
        let Some(root) = &self.workdir else {
            return Ok(());
        };
        let mut index = self.repo.index()?;
        // PACK_BATCH files at a time: stored blobs are read back from the
        // object database a batch at a time, not all at once.
        for chunk in changes.chunks(PACK_BATCH) {
            let mut files: Vec<(&str, Option<std::borrow::Cow<'_, [u8]>>)> =
                Vec::with_capacity(chunk.len());
            for ch in chunk {
                let bytes = match &ch.content {
                    None => None,
                    Some(Content::Bytes(b)) => Some(std::borrow::Cow::Borrowed(b.as_slice())),
                    Some(Content::Stored(id)) => Some(std::borrow::Cow::Owned(
                        self.repo.find_blob(*id)?.content().to_vec(),
                    )),
                };
                files.push((ch.path.as_str(), bytes));
            }
            let written = crate::par::map(&files, None, |(path, bytes)| {
                write_one(root, path, bytes.as_deref())
            });
            for ((path, _), w) in files.iter().zip(written) {
                match w.map_err(|e| GitError::Git(git2::Error::from_str(&e.to_string())))? {
                    Some((id, meta)) => index.add(&stat_entry(path, id, &meta))?,
                    None => {
                        let _ = index.remove_path(Path::new(path));
                    }
                }
            }
        }
        index.write()?;
        Ok(())
    }

    /// Makes the working tree and the index hold exactly HEAD's version of
    /// every file under `prefixes` (writing each file in place and adding
    /// it to the index with its stat data; removing files HEAD does not
    /// have). Unlike a checkout, this does not trust the index: it repairs
    /// a write that was interrupted between the work tree and the index.
    pub fn restore_from_head(&self, prefixes: &[&str]) -> Result<(), GitError> {
        let Some(root) = self.workdir.clone() else {
            return Ok(());
        };
        let Some(head) = self.head()? else {
            return Ok(());
        };
        let head = head.to_string();
        let mut changes = Vec::new();
        for path in self.files_under(&head, prefixes)? {
            let content = self.read_file(&head, &path)?.map(Content::Bytes);
            changes.push(Change { path, content });
        }
        let in_head: std::collections::HashSet<String> =
            changes.iter().map(|c| c.path.clone()).collect();
        // Files in the index or on disk under `prefixes` that HEAD lacks.
        let index = self.repo.index()?;
        let mut extra: Vec<String> = index
            .iter()
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .filter(|p| {
                prefixes
                    .iter()
                    .any(|pre| p == pre || p.starts_with(&format!("{pre}/")))
            })
            .filter(|p| !in_head.contains(p))
            .collect();
        for pre in prefixes {
            for entry in walkdir::WalkDir::new(root.join(pre))
                .follow_links(false)
                .into_iter()
                .flatten()
            {
                if entry.file_type().is_dir() {
                    continue;
                }
                if let Ok(rel) = entry.path().strip_prefix(&root) {
                    let rel = rel.to_string_lossy().into_owned();
                    if !in_head.contains(&rel) && !extra.contains(&rel) {
                        extra.push(rel);
                    }
                }
            }
        }
        drop(index);
        for path in extra {
            changes.push(Change {
                path,
                content: None,
            });
        }
        self.write_worktree(&changes)
    }

    /// Lock files an interrupted git or byreis process may have left.
    pub fn stale_locks(&self) -> Vec<PathBuf> {
        let git = self.repo.path();
        let mut out = Vec::new();
        for p in [
            git.join("index.lock"),
            git.join("HEAD.lock"),
            git.join("packed-refs.lock"),
        ] {
            if p.exists() {
                out.push(p);
            }
        }
        if let Ok(branch) = self.head_branch() {
            let p = git.join(format!("{branch}.lock"));
            if p.exists() {
                out.push(p);
            }
        }
        // byreis's own branches (proposals, submissions, drafts, roster
        // proposals): a kill while one was moved or deleted.
        for e in walkdir::WalkDir::new(git.join("refs/heads/byreis"))
            .into_iter()
            .filter_map(Result::ok)
        {
            if e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "lock") {
                out.push(e.into_path());
            }
        }
        out
    }

    /// Force-checks-out `paths` from HEAD (working tree and index).
    pub fn checkout_paths(&self, paths: &[&str]) -> Result<(), GitError> {
        if self.workdir.is_some() && !paths.is_empty() {
            let mut co = git2::build::CheckoutBuilder::new();
            co.force();
            for p in paths {
                co.path(p);
            }
            self.repo.checkout_head(Some(&mut co))?;
        }
        Ok(())
    }

    /// Every regular file path under `prefixes` (files or directories) in `commit`.
    pub fn files_under(&self, commit: &str, prefixes: &[&str]) -> Result<Vec<String>, GitError> {
        let tree = self.commit_tree(commit)?;
        let mut out = Vec::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(ObjectType::Blob) {
                let path = format!("{dir}{}", String::from_utf8_lossy(entry.name_bytes()));
                if prefixes
                    .iter()
                    .any(|p| path == *p || path.starts_with(&format!("{p}/")))
                {
                    out.push(path);
                }
            }
            git2::TreeWalkResult::Ok
        })?;
        Ok(out)
    }

    /// Every non-directory entry of `commit`'s tree, with its kind.
    pub fn all_entries(&self, commit: &str) -> Result<Vec<(String, EntryKind)>, GitError> {
        let tree = self.commit_tree(commit)?;
        let mut out = Vec::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            let kind = entry_kind(entry.filemode());
            if kind != EntryKind::Tree {
                out.push((
                    format!("{dir}{}", String::from_utf8_lossy(entry.name_bytes())),
                    kind,
                ));
            }
            git2::TreeWalkResult::Ok
        })?;
        Ok(out)
    }

    /// Every commit reachable from every ref (branches, remote-tracking
    /// refs, tags, fetched pull-request refs), with its commit time.
    pub fn all_reachable_commits(&self) -> Result<Vec<(String, i64)>, GitError> {
        let mut walk = self.repo.revwalk()?;
        for r in self.repo.references()? {
            let Ok(r) = r else { continue };
            if let Ok(c) = r.peel_to_commit() {
                let _ = walk.push(c.id());
            }
        }
        if let Ok(Some(h)) = self.head() {
            let _ = walk.push(h);
        }
        let mut out = Vec::new();
        for id in walk {
            let Ok(id) = id else { break };
            if let Ok(c) = self.repo.find_commit(id) {
                out.push((id.to_string(), c.time().seconds()));
            }
        }
        Ok(out)
    }

    /// The first parent of `commit`, if any.
    pub fn parent_of(&self, commit: &str) -> Result<Option<Oid>, GitError> {
        let c = self.repo.find_commit(Oid::from_str(commit)?)?;
        Ok(c.parent_ids().next())
    }

    /// The URL of the remote `origin`, if there is one.
    pub fn origin_url(&self) -> Option<String> {
        self.repo
            .find_remote("origin")
            .ok()
            .and_then(|r| r.url().ok().map(str::to_string))
    }

    /// The short name of the branch HEAD points to (`main`), if any.
    pub fn current_branch(&self) -> Option<String> {
        self.head_branch()
            .ok()
            .and_then(|b| b.strip_prefix("refs/heads/").map(str::to_string))
    }

    /// The short name of origin's default branch (`refs/remotes/origin/HEAD`
    /// → `origin/main` gives `main`), if recorded.
    pub fn origin_default_branch(&self) -> Option<String> {
        let r = self.repo.find_reference("refs/remotes/origin/HEAD").ok()?;
        let t = r.symbolic_target().ok()??;
        t.strip_prefix("refs/remotes/origin/").map(str::to_string)
    }

    /// Does the repository have a remote named `origin`?
    pub fn has_origin(&self) -> bool {
        self.repo.find_remote("origin").is_ok()
    }

    /// Creates branch `name` at `commit`; refused if it exists.
    pub fn create_branch(&self, name: &str, commit: Oid) -> Result<(), GitError> {
        self.repo
            .reference(
                &format!("refs/heads/{name}"),
                commit,
                false,
                "byreis: proposal",
            )
            .map_err(|e| {
                if e.code() == git2::ErrorCode::Exists {
                    GitError::Git(git2::Error::from_str(&format!(
                        "branch {name} already exists"
                    )))
                } else {
                    GitError::Git(e)
                }
            })?;
        Ok(())
    }

    /// Moves branch `name` from `old` to `new` (compare-and-swap).
    pub fn move_named_branch(&self, name: &str, old: Oid, new: Oid) -> Result<(), GitError> {
        self.repo
            .reference_matching(
                &format!("refs/heads/{name}"),
                new,
                true,
                old,
                "byreis: approval",
            )
            .map_err(|e| {
                if e.code() == git2::ErrorCode::Modified {
                    GitError::Raced
                } else {
                    GitError::Git(e)
                }
            })?;
        Ok(())
    }

    /// Deletes branch `name` if it exists.
    pub fn delete_branch(&self, name: &str) -> Result<(), GitError> {
        match self.repo.find_reference(&format!("refs/heads/{name}")) {
            Ok(mut r) => Ok(r.delete()?),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The commit local branch `name` points to, if it exists.
    pub fn local_branch(&self, name: &str) -> Result<Option<Oid>, GitError> {
        match self.repo.find_reference(&format!("refs/heads/{name}")) {
            Ok(r) => Ok(Some(r.peel_to_commit()?.id())),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The commit branch `name` points to: a local branch, else the
    /// `origin` remote-tracking branch of that name.
    pub fn branch_commit(&self, name: &str) -> Result<Option<Oid>, GitError> {
        if let Some(id) = self.local_branch(name)? {
            return Ok(Some(id));
        }
        match self
            .repo
            .find_reference(&format!("refs/remotes/origin/{name}"))
        {
            Ok(r) => Ok(Some(r.peel_to_commit()?.id())),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Local branches whose names start with `prefix`, with their commits.
    pub fn branches_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Oid)>, GitError> {
        self.refs_with_prefix(&format!("refs/heads/{prefix}"))
    }

    /// `origin`'s remote-tracking branches whose short names
    /// (`origin/…`) start with `prefix`.
    pub fn remote_branches_with_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, Oid)>, GitError> {
        self.refs_with_prefix(&format!("refs/remotes/{prefix}"))
    }

    /// References under `full_prefix`: short names and commits.
    fn refs_with_prefix(&self, full_prefix: &str) -> Result<Vec<(String, Oid)>, GitError> {
        let mut out = Vec::new();
        for r in self.repo.references_glob(&format!("{full_prefix}*"))? {
            let r = r?;
            if let (Ok(name), Ok(c)) = (r.shorthand(), r.peel_to_commit()) {
                out.push((name.to_string(), c.id()));
            }
        }
        Ok(out)
    }

    /// Paths whose blob differs between the trees of commits `a` and `b`
    /// (added, removed or changed; no rename detection).
    pub fn changed_paths(&self, a: &str, b: &str) -> Result<Vec<String>, GitError> {
        let ta = self.repo.find_commit(Oid::from_str(a)?)?.tree()?;
        let tb = self.repo.find_commit(Oid::from_str(b)?)?.tree()?;
        let diff = self.repo.diff_tree_to_tree(Some(&ta), Some(&tb), None)?;
        let mut out = Vec::new();
        for d in diff.deltas() {
            for f in [d.old_file(), d.new_file()] {
                if let Some(p) = f.path().and_then(|p| p.to_str()) {
                    if !out.iter().any(|o: &String| o == p) {
                        out.push(p.to_string());
                    }
                }
            }
        }
        Ok(out)
    }

    /// The best common ancestor of commits `a` and `b`, if they share
    /// history.
    pub fn merge_base(&self, a: &str, b: &str) -> Result<Option<String>, GitError> {
        match self.repo.merge_base(Oid::from_str(a)?, Oid::from_str(b)?) {
            Ok(id) => Ok(Some(id.to_string())),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The message of `commit`.
    pub fn commit_message(&self, commit: &str) -> Result<String, GitError> {
        let c = self.repo.find_commit(Oid::from_str(commit)?)?;
        Ok(String::from_utf8_lossy(c.message_bytes()).into_owned())
    }

    /// The full name of the branch HEAD points to (`refs/heads/main`).
    fn head_branch(&self) -> Result<String, GitError> {
        let head = self.repo.find_reference("HEAD")?;
        match head.symbolic_target()? {
            Some(t) => Ok(t.to_string()),
            None => Err(GitError::Git(git2::Error::from_str(
                "HEAD is detached; check out a branch before byreis writes",
            ))),
        }
    }

    /// The raw commit object and its `gpgsig` signature, for verification.
    pub fn commit_signature(&self, commit: &str) -> Result<Option<(String, Vec<u8>)>, GitError> {
        let oid = Oid::from_str(commit)?;
        match self.repo.extract_signature(&oid, None) {
            Ok((sig, data)) => Ok(Some((
                String::from_utf8_lossy(&sig).into_owned(),
                data.to_vec(),
            ))),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn entry_kind(mode: i32) -> EntryKind {
    match mode {
        0o100644 => EntryKind::Blob,
        0o100755 => EntryKind::Executable,
        0o120000 => EntryKind::Link,
        0o040000 => EntryKind::Tree,
        _ => EntryKind::Submodule,
    }
}

/// Writes or deletes one file of a change; returns the blob id and the
/// file's metadata for the index.
fn write_one(
    root: &Path,
    rel: &str,
    content: Option<&[u8]>,
) -> std::io::Result<Option<(Oid, std::fs::Metadata)>> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = root.join(rel);
    let Some(bytes) = content else {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        return Ok(None);
    };
    // Rewrite a regular file in place (creating files is what costs on
    // most file systems); anything else (a planted link, a directory) is
    // removed and a new file created. O_NOFOLLOW: never write through a link.
    let existing = std::fs::symlink_metadata(&path).ok();
    let mut f = match existing {
        Some(m) if m.is_file() => std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)?,
        other => {
            if let Some(m) = other {
                if m.is_dir() {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?
        }
    };
    std::io::Write::write_all(&mut f, bytes)?;
    f.set_len(bytes.len() as u64)?;
    let meta = f.metadata()?;
    let id = Oid::hash_object(ObjectType::Blob, bytes).map_err(std::io::Error::other)?;
    Ok(Some((id, meta)))
}

fn stat_entry(path: &str, id: Oid, meta: &std::fs::Metadata) -> git2::IndexEntry {
    use std::os::unix::fs::MetadataExt;
    git2::IndexEntry {
        ctime: git2::IndexTime::new(meta.ctime() as i32, meta.ctime_nsec() as u32),
        mtime: git2::IndexTime::new(meta.mtime() as i32, meta.mtime_nsec() as u32),
        dev: meta.dev() as u32,
        ino: meta.ino() as u32,
        mode: 0o100644,
        uid: meta.uid(),
        gid: meta.gid(),
        file_size: meta.size() as u32,
        id,
        flags: (path.len().min(0xfff)) as u16,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

/// An entry for an in-memory index that only writes trees (no stat data).
fn index_entry(path: &str, id: Oid) -> git2::IndexEntry {
    git2::IndexEntry {
        ctime: git2::IndexTime::new(0, 0),
        mtime: git2::IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: 0o100644,
        uid: 0,
        gid: 0,
        file_size: 0,
        id,
        flags: (path.len().min(0xfff)) as u16,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

/// One pack entry for a blob: its id, and the entry's bytes (type and size
/// header, then the zlib-deflated content), as the pack format v2 has them.
fn pack_entry(data: &[u8]) -> Result<(Oid, Vec<u8>), GitError> {
    use std::io::Write as _;
    let id = Oid::hash_object(ObjectType::Blob, data)?;
    let mut out = Vec::with_capacity(data.len() + 64);
    // Type 3 (blob) in bits 4-6 of the first byte with the size's low four
    // bits; the rest of the size seven bits a byte, high bit = more.
    let mut size = data.len();
    let mut byte = (3u8 << 4) | (size & 0x0f) as u8;
    size >>= 4;
    while size > 0 {
        out.push(byte | 0x80);
        byte = (size & 0x7f) as u8;
        size >>= 7;
    }
    out.push(byte);
    // Fast compression: ciphertexts in base64 barely compress anyway.
    let mut z = flate2::write::ZlibEncoder::new(out, flate2::Compression::fast());
    z.write_all(data).map_err(io_error)?;
    Ok((id, z.finish().map_err(io_error)?))
}

fn io_error(e: std::io::Error) -> GitError {
    GitError::Git(git2::Error::from_str(&e.to_string()))
}

/// A pack (format v2) written as a stream: header, entries, then the
/// SHA-1 of everything before it, which libgit2's indexer checks.
struct PackStream<W: std::io::Write> {
    out: W,
    hash: sha1::Sha1,
}

impl<W: std::io::Write> PackStream<W> {
    fn new(out: W, count: usize) -> Result<Self, GitError> {
        let count = u32::try_from(count)
            .map_err(|_| GitError::Git(git2::Error::from_str("too many objects for one pack")))?;
        let mut p = PackStream {
            out,
            hash: sha1::Digest::new(),
        };
        p.write(b"PACK")?;
        p.write(&2u32.to_be_bytes())?;
        p.write(&count.to_be_bytes())?;
        Ok(p)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), GitError> {
        sha1::Digest::update(&mut self.hash, bytes);
        self.out.write_all(bytes).map_err(io_error)
    }

    fn finish(mut self) -> Result<(), GitError> {
        let sum = sha1::Digest::finalize(self.hash);
        self.out.write_all(&sum).map_err(io_error)?;
        self.out.flush().map_err(io_error)
    }
}
