//! Stable diagnostic codes.
//!
//! Every refusal that comes from verification, and every `doctor` finding,
//! carries one of these codes. They are part of byreis's interface: scripts
//! match on them, `docs/diagnostics.md` explains each one (a test keeps the
//! two in step), and a code is never renamed or reused.
//!
//! Every other refusal carries a [`Refusal`], from a second table kept
//! apart from the first: verification codes mean exit 3 and `doctor`
//! findings, refusals are ordinary errors (exit 1).

macro_rules! codes {
    ($( $variant:ident => $code:literal, $what:literal, $fix:literal; )*) => {
        /// A stable, kebab-case diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code { $( $variant, )* }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The code as users see it, e.g. `file-hash-mismatch`.
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $code, )* }
            }

            /// One line: what the finding means.
            pub fn what(self) -> &'static str {
                match self { $( Code::$variant => $what, )* }
            }

            /// One line: what to do about it.
            pub fn fix(self) -> &'static str {
                match self { $( Code::$variant => $fix, )* }
            }
        }
    };
}

codes! {
    ConfigMissing => "config-missing",
        "the project has no byreis.yaml",
        "run `byreis init` (admin) or check out the project's root (-C DIR)";
    ConfigInvalid => "config-invalid",
        "byreis.yaml cannot be parsed or has invalid fields",
        "restore byreis.yaml from a trusted commit (git log -p byreis.yaml)";
    AnchorNotTrusted => "anchor-not-trusted",
        "this machine has not pinned a trust anchor for this repository",
        "run `byreis trust` and compare the fingerprint with one an admin sent you; in CI set BYREIS_ANCHOR";
    AnchorMismatch => "anchor-mismatch",
        "the registry or anchor named by byreis.yaml differs from the one this machine trusts",
        "someone who can write the project repo may be redirecting you to another registry; ask an admin over another channel, then `byreis trust` again only if they confirm the change";
    ProjectMismatch => "project-mismatch",
        "byreis.yaml names another project than the one this machine trusted this repository as (or BYREIS_PROJECT names)",
        "a project writer may have copied another project's files here: restore byreis.yaml and byreis's files from a trusted commit; run `byreis trust` only if this repository really is that project";
    ProjectUnconfirmed => "project-unconfirmed",
        "only byreis.yaml says which project this is, and the registry holds other projects",
        "set BYREIS_PROJECT beside BYREIS_ANCHOR (CI), or run `byreis trust` in this repository";
    RegistryMismatch => "registry-mismatch",
        "byreis.yaml's registry hint disagrees with the registry this machine uses (BYREIS_REGISTRY, `trust --registry`, or the pinned location) and with the location the signed roster states",
        "whoever can write the project repo can edit byreis.yaml: confirm the registry's location with an admin over another channel; if it really moved, the admin records it (`byreis admin location LOC`) and you run `byreis trust --registry LOC`";
    RegistryUnconfirmed => "registry-unconfirmed",
        "the registry was found only through byreis.yaml, and its signed roster does not state that it lives there",
        "set BYREIS_REGISTRY beside BYREIS_ANCHOR (CI), or run `byreis trust --registry LOCATION --anchor FP` with the location an admin gave you";
    RegistryInsideProject => "registry-inside-project",
        "the registry location is inside the project's work tree or git directory (or contains the project)",
        "a registry copy inside the project is attacker input: use the registry's real location, outside the project";
    WrongBranch => "wrong-branch",
        "a signed write was started from a branch other than the one the signed manifest names",
        "check out the project's branch (`git switch main`, then `git pull`) and run the write again";
    RegistryUnavailable => "registry-unavailable",
        "the registry copy cannot be opened",
        "check the registry location in byreis.yaml and that the clone exists (`git clone` it, or fetch it)";
    RegistryInvalid => "registry-invalid",
        "the registry repository does not have the layout byreis expects",
        "point byreis.yaml at a registry made by `byreis registry init`";
    RosterAnchorMismatch => "roster-anchor-mismatch",
        "roster version 1 does not hash to the pinned anchor",
        "the registry is not the one you trusted; do not use it, and ask an admin";
    RosterInvalid => "roster-invalid",
        "a roster version is malformed, out of sequence, or not signed by enough admins",
        "restore the registry from a trusted clone; an admin must re-sign the roster change";
    RosterRollback => "roster-rollback",
        "the registry shows an older roster than this machine has already seen",
        "fetch the registry (git pull); if it is still old, someone rolled it back: tell an admin";
    RecordMissing => "record-missing",
        "the registry has no signed record for this project",
        "fetch the registry (`byreis registry pull`); if the record is still missing, the registry lost it: an admin restores it from a registry clone that has it";
    RecordInvalid => "record-invalid",
        "the project record's signature does not verify against the roster, or it is malformed",
        "do not use these secrets; restore the registry from a trusted clone and tell an admin";
    RecordExpired => "record-expired",
        "the project record has passed its expiry date (freeze defence)",
        "an admin renews it by re-signing the record (any admin write does so)";
    RecordExpiring => "record-expiring",
        "the project record expires within 14 days",
        "an admin renews it before it expires (any admin write re-signs the record)";
    RecordRollback => "record-rollback",
        "the registry record's counter is lower than this machine has already seen",
        "fetch the registry; if the counter is still lower, someone rolled the registry back: tell an admin";
    ManifestMissing => "manifest-missing",
        "the signed manifest .byreis/manifest.yaml (or its signature) is missing",
        "check out the project's main branch, or fetch the commit the registry pins";
    ManifestInvalid => "manifest-invalid",
        "the manifest's signature does not verify against the roster, or its content is malformed",
        "do not use these secrets; restore .byreis/ from the commit the registry pins and tell an admin";
    ManifestNotPinned => "manifest-not-pinned",
        "the manifest in the working tree is not the one the registry record pins",
        "if you checked out an older commit, fetch the pinned commit; if your branch contains the pinned commit, the manifest was replaced: tell an admin";
    ApprovalsShort => "approvals-short",
        "the pinned state carries fewer admin approvals than the newest roster version's thresholds require (a threshold was raised, an approving admin was removed, or one admin landed it alone)",
        "an admin who checked the state runs `byreis approve --pinned` in the project; if no threshold or admin changed, treat it as a lone admin's change: do not use it and ask the other admins";
    ManifestRollback => "manifest-rollback",
        "the branch contains the pinned commit but its manifest has a lower counter",
        "someone restored an older state on top of the current one; revert that commit and tell an admin";
    ManifestAhead => "manifest-ahead",
        "the manifest has a higher counter than the registry record (an unfinished change)",
        "the admin who made it must finish it; until then the registry record is the truth";
    PinnedCommitMissing => "pinned-commit-missing",
        "the project commit the registry pins is not in this clone",
        "run `git fetch` in the project; if it still cannot be found, the project history was rewritten: tell an admin";
    FileHashMismatch => "file-hash-mismatch",
        "a secrets file does not match the hash in the signed manifest",
        "restore it from the pinned commit (git checkout -- secrets/) and tell an admin; someone may have written a forged file";
    FileUnlisted => "file-unlisted",
        "a file under secrets/ is not listed in the signed manifest",
        "remove it or ask an admin; only files the manifest lists are ever read";
    FileMissing => "file-missing",
        "a secrets file that the manifest lists is missing",
        "restore it from the pinned commit (git checkout -- secrets/)";
    FileNotRegular => "file-not-regular",
        "a path under secrets/ is a symlink, a submodule or a directory",
        "replace it with the regular file from the pinned commit; byreis never follows links";
    RecipientsMismatch => "recipients-mismatch",
        "a secrets file is encrypted to a different number or type of recipients than the manifest lists",
        "someone wrote the file outside byreis; restore it from the pinned commit and tell an admin";
    FileMalformed => "file-malformed",
        "a secrets file is not an ASCII-armored age v1 file, or its plaintext is not a flat YAML mapping",
        "restore it from the pinned commit and tell an admin";
    AuditBroken => "audit-broken",
        "the audit log's hash chain, signatures or head do not verify",
        "restore .byreis/audit.jsonl from the pinned commit; never edit it by hand";
    AllowedSignersStale => "allowed-signers-stale",
        "the registry's allowed_signers differs from what the verified roster generates",
        "an admin regenerates it with the next roster change (`byreis admin add/remove`) or restores it from the commit that last changed the roster; stock `git verify-commit` trusts that file, so fix it before relying on it";
    CheckoutNotCurrent => "checkout-not-current",
        "the working tree holds an older byreis state; reads use the pinned commit",
        "nothing to do for reads; `git pull` to bring the working tree up to date";
    WorktreeChanged => "worktree-changed",
        "byreis's own files have uncommitted changes",
        "commit or discard them (git status); byreis writes only from a clean state";
    ChangePending => "change-pending",
        "an admin began a signed change that has not finished (interrupted, or still running)",
        "an admin runs `byreis rotate --resume` to finish it (it shows the change first) or `byreis rotate --abort` to return to the last complete state; reads serve the last complete state meanwhile";
    RegistryUnexpectedFile => "registry-unexpected-file",
        "the registry holds a file byreis does not expect (only the roster, records, requests, allowed_signers, the audit log, README and .github/ belong there)",
        "remove it in a reviewed change; a registry is small on purpose so that every change to it can be read";
    RequestInvalid => "request-invalid",
        "a file under requests/ in the registry is not a well-formed access request, or a decision on one does not verify",
        "fix or remove it in a reviewed change; requests hold public keys only, in the format of docs/request-access-runbook.md, and decisions are written by `byreis` admins only";
    GitLockStale => "git-lock-stale",
        "a git lock file remains (index.lock or a branch lock), left by a git or byreis process that was killed",
        "if no git or byreis command is running in that repository, remove the lock file named, then finish or abort the pending change (`byreis rotate --resume` / `--abort`)";
    IdentityMissing => "identity-missing",
        "no age identity is available",
        "run `byreis keygen`, or set BYREIS_IDENTITY / BYREIS_IDENTITY_FILE";
    IdentityNotRecipient => "identity-not-recipient",
        "your identity is not a reader of this environment",
        "ask an admin to add you (`byreis rotate --add`), or use the identity that is";
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stable codes for every refusal that is not a verification failure
/// (bad input, missing keys, a failed git operation, …). They are kept
/// apart from [`Code`]: a [`Code`] means verification refused (exit 3) and
/// drives `doctor`; a [`Refusal`] is an ordinary error (exit 1). Like codes,
/// refusals are part of byreis's interface: `docs/diagnostics.md` lists each
/// one (a test keeps the two in step), and one is never renamed or reused.
macro_rules! refusals {
    ($( $variant:ident => $code:literal, $what:literal; )*) => {
        /// A stable, kebab-case code for a refusal that is not a
        /// verification failure.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Refusal { $( $variant, )* }

        impl Refusal {
            /// Every refusal code, in documentation order.
            pub const ALL: &'static [Refusal] = &[ $( Refusal::$variant, )* ];

            /// The code as users see it, e.g. `not-an-admin`.
            pub fn as_str(self) -> &'static str {
                match self { $( Refusal::$variant => $code, )* }
            }

            /// One line: what the refusal means.
            pub fn what(self) -> &'static str {
                match self { $( Refusal::$variant => $what, )* }
            }
        }
    };
}

refusals! {
    // Who may do what.
    NotAnAdmin => "not-an-admin",
        "the command needs an admin's signing key, and yours is not an admin key in the newest roster version";
    NotAMember => "not-a-member",
        "your key is not a member of this project";
    NotAReader => "not-a-reader",
        "you do not read this environment (or your identity is not among a file's recipients), so you cannot do this";
    IdentityMismatch => "identity-mismatch",
        "your age identity is not the one the roster lists for your admin entry";
    // What was asked.
    Usage => "usage",
        "a flag or argument is missing, malformed, or does not go with another (exit 2, as the argument parser's own errors)";
    BadName => "bad-name",
        "a project, environment, member or secret name uses characters its kind does not allow";
    BadLocation => "bad-location",
        "a registry location is neither a git URL nor an absolute path";
    BadInput => "bad-input",
        "a value or file given to byreis is too large or not in the form expected";
    Unrepresentable => "unrepresentable",
        "a value cannot be written in the chosen export format so that every reader of it reads the same bytes";
    BadYaml => "bad-yaml",
        "YAML given to byreis (import, edit) cannot be parsed, or is not a flat mapping of secret names to strings";
    NotInteractive => "not-interactive",
        "a confirmation is needed but the run is not interactive: pass the flag the message names";
    Cancelled => "cancelled",
        "you declined a confirmation; nothing was changed";
    NothingToDo => "nothing-to-do",
        "the command would change nothing: no change was given, or the state already is as asked";
    AlreadyExists => "already-exists",
        "what the command would create (a key, a directory, a project, an admin, a member) already exists; byreis never overwrites it";
    AlreadyApproved => "already-approved",
        "you already approved this; each admin's key counts once";
    UnknownEnvironment => "unknown-environment",
        "the project has no environment of that name";
    UnknownKey => "unknown-key",
        "the environment has no secret of that name";
    UnknownMember => "unknown-member",
        "no member or admin has that name";
    UnknownReference => "unknown-reference",
        "the branch, proposal, submission, request or pull request named does not exist, or is not of the kind the command takes";
    ReservedName => "reserved-name",
        "names starting with BYREIS_ are reserved for byreis";
    NoReaders => "no-readers",
        "the change would leave an environment without readers";
    NoAdminReader => "no-admin-reader",
        "the change would leave an environment without an admin who can decrypt it";
    RosterRule => "roster-rule",
        "the roster change breaks a rule of the roster (removing yourself, removing the last admin, a malformed roster version)";
    // Changes in flight.
    ChangeInProgress => "change-in-progress",
        "a signed change is pending; finish it (`byreis rotate --resume`) or abandon it (`--abort`) first";
    NoPendingChange => "no-pending-change",
        "no change is pending, so there is nothing to resume or abort";
    CannotResume => "cannot-resume",
        "the pending change does not check out, so it cannot be resumed; `byreis rotate --abort` abandons it";
    Stale => "stale",
        "what you named was made on an older state, or changed after you confirmed it: make or confirm it again";
    BranchMoved => "branch-moved",
        "a branch moved while byreis was writing (someone else committed or approved); nothing of this run landed, run it again";
    ProposalInvalid => "proposal-invalid",
        "a proposal, submission or roster proposal fails byreis's checks, so it is not approved or applied";
    DraftFull => "draft-full",
        "your draft holds as many changes as a draft may; submit it first";
    // Access requests.
    BadRequest => "bad-request",
        "an access request (a file, a branch or a pull request) is malformed, for another project or name, or quotes its own fingerprint";
    RequestDecided => "request-decided",
        "the access request was already absorbed, rejected or superseded";
    FingerprintMismatch => "fingerprint-mismatch",
        "the fingerprint you typed does not match the requested key";
    PullRequestUnusable => "pull-request-unusable",
        "the pull request is closed, comes from a fork, or is not from a byreis branch";
    NotOnGithub => "not-on-github",
        "the registry is not on GitHub, so a pull request cannot be used";
    // Repositories.
    RecordUnusable => "record-unusable",
        "the project's registry record cannot be used for this write (malformed, not verifying, stale, or not matching the project)";
    RegistryUnusable => "registry-unusable",
        "the registry is empty, lacks a file, or a roster version or signed file in it does not verify";
    GitLocked => "git-locked",
        "git lock files left by an interrupted git or byreis process block the write";
    NotAWorkTree => "not-a-work-tree",
        "the directory is not a git work tree (or is a bare repository, or not its root where the root is needed)";
    DetachedHead => "detached-head",
        "the project has no current branch for byreis's writes to land on";
    UncommittedChanges => "uncommitted-changes",
        "byreis's paths have untracked or changed files";
    NotARegularFile => "not-a-regular-file",
        "a path in a commit is a symlink, a submodule or a directory";
    // Keys and signatures.
    KeyMissing => "key-missing",
        "no age identity or signing key is available";
    KeyPermissions => "key-permissions",
        "a key file is readable by group or others";
    BadKey => "bad-key",
        "a key, recipient or identity is malformed, of a type byreis refuses, or cannot be used (ssh-agent)";
    BadSignature => "bad-signature",
        "a signature is malformed, for another namespace, by a signer who is not allowed, or does not verify";
    SigningFailed => "signing-failed",
        "signing failed (a commit, a document or an audit entry)";
    // Files and encryption.
    BadSecretsFile => "bad-secrets-file",
        "a secrets file is not a well-formed age file, or its plaintext is not valid secrets YAML";
    DecryptFailed => "decrypt-failed",
        "decryption failed";
    EncryptFailed => "encrypt-failed",
        "encryption failed";
    AuditInvalid => "audit-invalid",
        "the audit log does not verify, or an entry for it could not be made";
    // Other programs.
    IoFailed => "io-failed",
        "a file, a directory or the terminal could not be read or written";
    GitFailed => "git-failed",
        "a git operation failed";
    PushFailed => "push-failed",
        "git push failed; what was written stays in this clone";
    RemoteFailed => "remote-failed",
        "a git clone, pull, fetch or reset of a remote failed";
    GithubAuth => "github-auth",
        "no GitHub token is set, or GitHub refused it";
    GithubFailed => "github-failed",
        "a GitHub API call failed or gave an unexpected answer";
    EditorFailed => "editor-failed",
        "the editor could not be started, or exited with an error";
    Interrupted => "interrupted",
        "a signal interrupted the command; nothing was changed";
    ExecRefused => "exec-refused",
        "exec refused a secret whose name would change how the program loads code, whom it trusts or where it sends data";
    InheritedVariable => "inherited-variable",
        "a secret would replace an inherited variable of the same name, and --override does not allow it";
    ExecFailed => "exec-failed",
        "the command given to exec could not be started";
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_kebab_case() {
        let mut seen = HashSet::new();
        for c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{s} is not kebab-case"
            );
            assert!(!c.what().is_empty() && !c.fix().is_empty());
        }
    }

    #[test]
    fn codes_are_documented() {
        let doc = include_str!("../../../docs/diagnostics.md");
        for c in Code::ALL {
            assert!(
                doc.contains(&format!("`{}`", c.as_str())),
                "docs/diagnostics.md does not document {}",
                c.as_str()
            );
        }
    }

    #[test]
    fn refusals_are_unique_kebab_case_and_apart_from_codes() {
        let codes: HashSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        let mut seen = HashSet::new();
        for r in Refusal::ALL {
            let s = r.as_str();
            assert!(seen.insert(s), "duplicate refusal {s}");
            assert!(
                !s.is_empty()
                    && !s.starts_with('-')
                    && !s.ends_with('-')
                    && !s.contains("--")
                    && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{s} is not kebab-case"
            );
            assert!(!codes.contains(s), "{s} is both a refusal and a code");
            assert!(!r.what().is_empty());
        }
    }

    #[test]
    fn refusals_are_documented() {
        let doc = include_str!("../../../docs/diagnostics.md");
        let section = doc
            .split_once("## Refusal codes")
            .expect("docs/diagnostics.md has a section ## Refusal codes")
            .1;
        for r in Refusal::ALL {
            assert!(
                section.contains(&format!("`{}`", r.as_str())),
                "docs/diagnostics.md does not document refusal {}",
                r.as_str()
            );
        }
    }
}
