//! The command line: clap definitions, terminal I/O and exit codes. Each
//! verb is a function taking its arguments and a [`Context`]; the work is
//! done by the library modules.
// The cli owns the terminal: the one place (with the edge) that prints.
#![allow(clippy::disallowed_macros)]

mod daily;
mod deploy;
mod pinned;
mod render;
mod requests;
mod rotate;
mod setup;
#[cfg(test)]
mod snapshot_tests;

use std::io::IsTerminal as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::diag::{Code, Refusal};
use crate::keys::Home;
use crate::verify::{Context, VerifyError};

/// Exit code when verification refused (a diagnostic code was printed).
pub const EXIT_VERIFY: i32 = 3;
/// Exit code of `doctor --exposure` while exposed values are still in use
/// (or, with `--require-ack`, not acknowledged).
pub const EXIT_EXPOSED: i32 = 4;

#[derive(Debug, Parser)]
#[command(
    name = "byreis",
    version,
    about = "Secrets in git, encrypted with age, behind a signed and counted manifest",
    long_about = "byreis keeps age-encrypted secrets in your project's git repository. A signed manifest with a monotonic counter records who can read each environment and the hash of every secrets file; an admin registry repository pins the current state. Every read verifies all of it first.\n\nExit codes: 0 ok; 1 error; 2 usage; 3 verification refused (the diagnostic code is printed); exec passes through the child's code."
)]
pub struct Cli {
    /// Run as if byreis was started in DIR (like git -C).
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum, PartialEq, Eq)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create your age identity and ed25519 signing key under $BYREIS_HOME.
    Keygen {
        /// Your member name (a-z 0-9 . _ -).
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// Adopt an existing OpenSSH ssh-ed25519 private key instead of generating one.
        #[arg(long, value_name = "PATH")]
        signing_key: Option<PathBuf>,
    },
    /// Show your name, age recipient, signing key and fingerprints.
    Whoami {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Admin registry commands.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Registry admins (the roster).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Start using byreis in this git work tree (admin).
    Init {
        /// Project name (a-z 0-9 _ -).
        #[arg(long)]
        project: String,
        /// The registry: a path to its clone, or a git URL.
        #[arg(long, value_name = "LOCATION")]
        registry: String,
    },
    /// Pin the registry's location and trust anchor for this repository on
    /// this machine.
    Trust {
        /// The anchor fingerprint an admin gave you over another channel.
        #[arg(long, value_name = "FP")]
        anchor: Option<String>,
        /// Where the registry is (a git URL or a path), as an admin told you.
        /// Without it, byreis.yaml's `registry:` is used only if the signed
        /// roster states that same location (or BYREIS_REGISTRY is set).
        #[arg(long, value_name = "LOCATION")]
        registry: Option<String>,
        /// The project this repository is (or BYREIS_PROJECT); must match
        /// byreis.yaml. Needed to re-pin a repository that was trusted as
        /// another project.
        #[arg(long, value_name = "NAME")]
        project: Option<String>,
        /// Print the pinned anchor and exit.
        #[arg(long)]
        show: bool,
    },
    /// Set a secret (the value is read from stdin when omitted).
    Set {
        env: String,
        key: String,
        /// The value. Prefer stdin: values on the command line reach shell history.
        value: Option<String>,
        /// Take the value from a file, byte for byte (a PEM key, a
        /// kubeconfig); text only (UTF-8, no NUL)
        #[arg(long = "from-file", value_name = "PATH", conflicts_with = "value")]
        from_file: Option<PathBuf>,
    },
    /// Print one secret's value.
    Get {
        env: String,
        key: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Print an environment's values for a deploy: dotenv, JSON, shell or a Kubernetes Secret
    ///
    /// Every value (or `--only` some), after verifying exactly as `get`
    /// does; a refusal prints nothing on stdout. Example: `byreis export prod --format
    /// k8s-secret --name app-secrets --namespace prod | kubectl apply -f -`
    Export {
        env: String,
        #[arg(long, value_enum)]
        format: deploy::ExportFormat,
        /// Only these names (repeat, or separate with commas)
        #[arg(long, value_name = "NAME", num_args = 1.., value_delimiter = ',')]
        only: Vec<String>,
        /// The Secret's metadata.name (k8s-secret)
        #[arg(long)]
        name: Option<String>,
        /// The Secret's metadata.namespace (k8s-secret)
        #[arg(long)]
        namespace: Option<String>,
        /// The Secret's type (k8s-secret; default Opaque)
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// The names will be environment variables of later programs (a
        /// CI job's $GITHUB_ENV, `set -a`, `eval`): refuse, as `exec`
        /// does, names that change how programs load code, whom they trust
        /// or where they send data (LD_*, BASH_ENV, PATH, *PROXY*, …),
        /// unless `byreis exec-allow` allows them.
        #[arg(long = "as-env")]
        as_env: bool,
    },
    /// Run as a kustomize KRM function: append a verified Secret
    ///
    /// Reads a `ResourceList` on stdin whose `functionConfig` is a
    /// `ByreisSecret` (apiVersion byreis.dev/v1: metadata.name,
    /// spec.environment, optional spec.namespace, spec.type, spec.only) and
    /// writes it back with the `Secret` that `export --format k8s-secret`
    /// prints appended; a refusal is reported in `results` (exit 1, or 3
    /// when verification refuses).
    Kustomize,
    /// List secret names (never values)
    ///
    /// With `--long`, each name also says when its value last changed in
    /// byreis, by whom and at which counter, from the signed audit log (never
    /// from git dates). The JSON output always carries it, as `values`.
    /// Example: `byreis list prod --long`
    List {
        env: Option<String>,
        /// Show when each value last changed in byreis, and by whom.
        #[arg(long, short = 'l')]
        long: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Set many secrets in one signed change, from YAML, dotenv or JSON
    ///
    /// From a file (or stdin): YAML `ENV: {NAME: value, …}`, or one environment
    /// (`--env ENV`) as dotenv (read as python-dotenv reads it), JSON or
    /// flat YAML. Existing names are replaced; names not in the file are
    /// kept. A new environment needs `--new-env ENV`. Example: `sops -d
    /// --output-type dotenv app.env | byreis import --format dotenv --env prod`
    Import {
        /// The file to read; stdin when omitted.
        file: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = ImportFormat::Yaml)]
        format: ImportFormat,
        /// The one environment a dotenv, JSON or flat YAML file holds
        #[arg(long, value_name = "ENV")]
        env: Option<String>,
        /// Create this environment (repeat, or separate with commas); an
        /// import never creates one it was not asked to
        #[arg(long = "new-env", value_name = "ENV", value_delimiter = ',')]
        new_env: Vec<String>,
    },
    /// Remove a secret.
    Unset { env: String, key: String },
    /// Edit an environment's secrets in $VISUAL/$EDITOR (private temp file).
    Edit { env: String },
    /// Run a command with an environment's secrets as environment variables.
    Exec {
        env: String,
        /// Let the secret NAME replace an inherited variable of the same name.
        #[arg(long = "override", value_name = "NAME")]
        overrides: Vec<String>,
        /// Let every secret replace inherited variables.
        #[arg(long)]
        override_all: bool,
        /// Hand secret NAME to the program as a file instead of a variable:
        /// its value goes to a 0600 file on a tmpfs ($XDG_RUNTIME_DIR, else
        /// /dev/shm) whose path is in PATH_VAR, removed when the program
        /// ends (a kubeconfig, a PEM key). Repeatable.
        #[arg(long = "file", value_name = "NAME=PATH_VAR")]
        files: Vec<crate::exec::FileVar>,
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<std::ffi::OsString>,
    },
    /// Let `exec` pass secret NAME in ENV although a family of names it
    /// refuses includes it (admin; a signed, audited change). `exec`
    /// refuses names that make programs load code, trust other TLS servers
    /// or send traffic elsewhere (PYTHON*, LD_*, *PROXY*, …; see
    /// docs/formats.md); allow one only when a program really needs it.
    ExecAllow {
        env: String,
        name: String,
        /// Stop allowing it: exec refuses it again.
        #[arg(long)]
        remove: bool,
    },
    /// Change who reads which environment, re-encrypting every affected file.
    ///
    /// Removal does not take back what someone already read: they keep every
    /// value and every old commit. See docs/forward-secrecy-runbook.md.
    Rotate(rotate::Args),
    /// Show what changed, by secret name, between an earlier signed state
    /// and the current one (values are never shown). Names are listed where
    /// you can read both states; elsewhere only this output leaves them out:
    /// the project's audit log names every secret set, for anyone.
    Diff {
        /// A commit of the project holding an earlier signed state (default:
        /// the state before the last signed change).
        #[arg(value_name = "REV")]
        rev: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// For deploy pipelines: keyless check that the checked-out state is
    /// exactly the one the registry pins, unexpired, every file matching.
    /// Exit 0 when it is, 3 (with the code) when not.
    Verify {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Check everything with public keys only; non-zero exit on failure.
    Doctor {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        /// List past rotations from the verified audit log, with the
        /// project commit of each and whether its signature verifies.
        #[arg(long, conflicts_with = "exposure")]
        rotation_history: bool,
        /// With --rotation-history: only rotations at or after DATE
        /// (YYYY-MM-DD, or an RFC 3339 time in UTC).
        #[arg(long, value_name = "DATE", requires = "rotation_history")]
        since: Option<String>,
        /// Every value member NAME could ever read, across all history, and
        /// whether each is still in use. Exit 4 while any is unchanged.
        #[arg(long, value_name = "NAME")]
        exposure: Option<String>,
        /// With --exposure: exit 4 while any value is not acknowledged.
        #[arg(long, requires = "exposure")]
        require_ack: bool,
        /// Also decrypt every environment you read and check its plaintext
        /// (uses your identity; the other checks need public keys only).
        #[arg(long, conflicts_with_all = ["rotation_history", "exposure"])]
        decrypt: bool,
    },
    /// Ask for access (contributor): a request with your public keys, as a
    /// file (--out) or on a branch byreis/request/NAME of the registry.
    /// Prints your key's fingerprint: send it to an admin over another
    /// channel.
    RequestAccess {
        /// Your member name (a-z 0-9 . _ -).
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// Why you need access (shown to admins).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Write the request to FILE instead of a registry branch.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Access requests in the registry (admin): list, show, reject. Absorb
    /// one with `rotate --add --from-request REF`.
    Request {
        #[command(subcommand)]
        command: RequestCommand,
    },
    /// Send your draft (a member who is not an admin): `set`, `unset`,
    /// `edit` and `import` by such a member add to a draft encrypted to the
    /// admins only; `submit` makes it branch byreis/submit/NAME-HASH
    /// (pushed when the project has an origin) for an admin to approve.
    Submit {
        /// Drop your draft instead of sending it.
        #[arg(long)]
        discard: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Approve a proposed change (admin): checks it independently, shows
    /// what it changes, adds your signature; the approval that reaches the
    /// registry's threshold lands it. A member's submission is applied by
    /// the approver: values re-encrypted to the current readers and signed.
    Approve {
        /// The proposal branch (byreis/proposal/COUNTER-HASH), a member's
        /// submission (byreis/submit/NAME-HASH) or a roster proposal
        /// (byreis/roster/VERSION-HASH).
        #[arg(value_name = "REF", required_unless_present = "pinned")]
        reference: Option<String>,
        /// Approve the state the registry pins now (after a threshold was
        /// raised or an approving admin removed, reads refuse it with
        /// approvals-short): shows the whole state and adds your approval
        /// to the project's registry record.
        #[arg(long, conflicts_with = "reference")]
        pinned: bool,
        /// Do not ask for confirmation (required when not interactive).
        #[arg(long)]
        yes: bool,
        /// Print new and changed values (masked by default).
        #[arg(long)]
        show_values: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Exposure acknowledgements (after rotating values at their issuers).
    Exposure {
        #[command(subcommand)]
        command: ExposureCommand,
    },
}

impl Command {
    /// The `--format` the verb was given (text for verbs without one), so
    /// that [`main`] renders an error in it too.
    pub fn format(&self) -> Format {
        match self {
            Command::Whoami { format }
            | Command::Get { format, .. }
            | Command::List { format, .. }
            | Command::Diff { format, .. }
            | Command::Verify { format }
            | Command::Doctor { format, .. }
            | Command::Submit { format, .. }
            | Command::Approve { format, .. }
            | Command::Registry {
                command: RegistryCommand::Verify { format, .. },
            }
            | Command::Admin {
                command: AdminCommand::List { format },
            }
            | Command::Request {
                command: RequestCommand::List { format },
            } => *format,
            Command::Rotate(args) => args.format,
            // No --format (listed, not `_`, so that a new verb is decided).
            Command::Keygen { .. }
            | Command::Registry { .. }
            | Command::Admin { .. }
            | Command::Init { .. }
            | Command::Trust { .. }
            | Command::Set { .. }
            | Command::Import { .. }
            | Command::Unset { .. }
            | Command::Edit { .. }
            | Command::Exec { .. }
            | Command::ExecAllow { .. }
            | Command::RequestAccess { .. }
            | Command::Request { .. }
            | Command::Exposure { .. } => Format::Text,
            // Its --format is the output's; a refusal writes nothing to
            // stdout (a pipe into `kubectl apply` must receive nothing).
            Command::Export { .. } | Command::Kustomize => Format::Text,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Create a new admin registry repository at PATH, with you as first admin.
    Init {
        path: PathBuf,
        /// Where the registry will live for everyone (a git URL, or an
        /// absolute path), recorded in the signed roster; machines that find
        /// the registry through a project's byreis.yaml accept it only
        /// there. Default: PATH itself.
        #[arg(long, value_name = "LOCATION")]
        location: Option<String>,
    },
    /// Update this project's local copy of the registry from its remote
    /// (fast-forward only), then verify.
    Pull,
    /// Re-sign this project's registry record with a fresh expiry (admin).
    Refresh,
    /// Keyless check of a registry repository (for its CI): roster chain
    /// from the anchor, records and expiry, allowed_signers, audit log, and
    /// that it holds nothing else. Exit 3 on failure.
    Verify {
        /// The registry repository (default: the current directory).
        path: Option<PathBuf>,
        /// The anchor fingerprint (or BYREIS_ANCHOR).
        #[arg(long, value_name = "FP", env = "BYREIS_ANCHOR")]
        anchor: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Request branches in the registry, with their state (never keys or
    /// fingerprints).
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One request: who, when, state, reason (never its fingerprint).
    Show {
        #[arg(value_name = "REF")]
        reference: String,
    },
    /// Reject a request (signed decision in the registry; grants nothing).
    Reject {
        #[arg(value_name = "REF")]
        reference: String,
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExposureCommand {
    /// Record (signed, audited) that member NAME's old values of KEY… are
    /// revoked at the systems that issued them.
    Ack {
        name: String,
        #[arg(required = true)]
        keys: Vec<String>,
        /// Only in this environment (default: every environment).
        #[arg(long = "env", value_name = "ENV")]
        env: Option<String>,
        /// How the old values were revoked (kept in the audit log).
        #[arg(long)]
        note: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// List the admins of the newest verified roster version.
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Add an admin: a new roster version, signed, with every project
    /// record re-signed under it.
    Add {
        name: String,
        /// Their `ssh-ed25519 AAAA…` signing key (or a path to the .pub file).
        #[arg(long, value_name = "KEY")]
        signing_key: String,
        /// Their age recipient (`age1…`).
        #[arg(long = "age", value_name = "RECIPIENT")]
        age: String,
        #[arg(long)]
        email: Option<String>,
    },
    /// Remove an admin (another admin must do it). Removal does not take
    /// back what they could already read: see the warning it prints.
    Remove { name: String },
    /// Set how many distinct admins must sign each kind of change (a new
    /// roster version). Above 1, changes become proposals that other admins
    /// `approve`; every manifest needs the larger of --recipients and
    /// --values (ADR 0012).
    Thresholds {
        /// Roster changes (above 1 is refused for now: roster approvals are
        /// not built).
        #[arg(long, value_name = "K")]
        roster: Option<usize>,
        /// Recipient changes (rotate).
        #[arg(long, value_name = "K")]
        recipients: Option<usize>,
        /// Value changes (set, edit, unset, import, exposure ack).
        #[arg(long, value_name = "K")]
        values: Option<usize>,
    },
    /// Record where the registry lives (a git URL, or an absolute path) in a
    /// new signed roster version. Machines that find the registry only
    /// through a project's byreis.yaml accept it only at this location.
    Location {
        /// e.g. https://github.com/acme/registry.git
        location: String,
    },
}

/// `byreis import --format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ImportFormat {
    /// `ENV: {NAME: value}` (or, with --env, `NAME: value`)
    Yaml,
    /// `NAME=value` lines, as python-dotenv reads them (needs --env)
    Dotenv,
    /// One JSON object of strings (needs --env)
    Json,
}

impl From<ImportFormat> for crate::import::Format {
    fn from(f: ImportFormat) -> Self {
        match f {
            ImportFormat::Yaml => crate::import::Format::Yaml,
            ImportFormat::Dotenv => crate::import::Format::Dotenv,
            ImportFormat::Json => crate::import::Format::Json,
        }
    }
}

/// An error as the user sees it.
#[derive(Debug)]
pub enum CliError {
    /// Verification refused: code, detail and the code's fix.
    Verify(VerifyError),
    /// Any other refusal: its code and message.
    Refused(Refusal, String),
    /// Exit quietly with this code (already reported).
    Exit(i32),
}

impl From<VerifyError> for CliError {
    fn from(e: VerifyError) -> Self {
        CliError::Verify(e)
    }
}

impl From<crate::store::StoreError> for CliError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Verify(v) => CliError::Verify(v),
            other => CliError::Refused(
                other
                    .code()
                    .expect("every store error but Verify has a refusal code"),
                other.to_string(),
            ),
        }
    }
}

macro_rules! refused_from {
    ($($t:ty),*) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> Self { CliError::Refused(e.code(), e.to_string()) }
        }
    )*};
}
refused_from!(
    crate::keys::KeyError,
    crate::git::GitError,
    crate::registry::RegistryError,
    crate::names::NameError,
    crate::editor::EditError,
    crate::exec::ExecError,
    crate::remote::RemoteError,
    crate::yaml::YamlError,
    crate::github::GitHubError,
    crate::github::PullReadError
);

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Refused(Refusal::IoFailed, e.to_string())
    }
}

pub type CliResult = Result<(), CliError>;

/// The run's context, from the user's environment: the one place the
/// variables byreis documents are read (beside the test hooks).
fn context(dir: Option<PathBuf>) -> Context {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let text = |name: &str| var(name).map(|v| v.to_string_lossy().into_owned());
    let interactive = std::io::stdin().is_terminal() && var("CI").is_none();
    let dir_home = match var("BYREIS_HOME") {
        Some(d) => PathBuf::from(d),
        None => var("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into()))
                    .join(".config")
            })
            .join("byreis"),
    };
    let keys = crate::keys::KeySources {
        identity: text("BYREIS_IDENTITY").map(zeroize::Zeroizing::new),
        identity_file: var("BYREIS_IDENTITY_FILE").map(PathBuf::from),
        agent_socket: var("SSH_AUTH_SOCK").map(PathBuf::from),
        ask_passphrase: interactive.then_some(ask_passphrase as crate::keys::AskPassphrase),
    };
    Context {
        home: Home::new(dir_home, keys),
        dir: dir.unwrap_or_else(|| PathBuf::from(".")),
        interactive,
        overrides: crate::verify::Overrides {
            registry: text("BYREIS_REGISTRY"),
            anchor: text("BYREIS_ANCHOR"),
            project: text("BYREIS_PROJECT"),
        },
    }
}

/// Asks for a key file's passphrase on the terminal (never echoed).
fn ask_passphrase(path: &std::path::Path) -> Result<zeroize::Zeroizing<String>, String> {
    dialoguer::Password::new()
        .with_prompt(format!("Passphrase for {}", path.display()))
        .interact()
        .map(zeroize::Zeroizing::new)
        .map_err(|e| e.to_string())
}

/// Prints what a signed change came to: `done(counter)` when it landed, or
/// where its proposal waits for approvals.
pub(crate) fn report(mut landed: crate::store::Landed, done: impl FnOnce(u64) -> String) {
    crate::pulls::open_for_landed(&mut landed);
    print_queued();
    match landed {
        crate::store::Landed::Done(counter) => eprintln!("{}", done(counter)),
        crate::store::Landed::Proposed(p) => eprintln!("{}", describe_proposal(&p)),
    }
}

/// One line on a proposal waiting for approvals (and one on its pull
/// request, on GitHub projects).
pub(crate) fn describe_proposal(p: &crate::proposal::Proposal) -> String {
    let pull = p
        .pull_request
        .as_ref()
        .map(|l| format!("\nbyreis: {l}"))
        .unwrap_or_default();
    format!(
        "byreis: proposed, not landed: this registry needs {} admins and {} approved so far. The change (counter {} when it lands) waits on branch {}{}. Another admin runs `byreis approve {}`.{pull}",
        p.need,
        p.approvals,
        p.counter,
        p.branch,
        if p.pushed { " (pushed to origin)" } else { " (local only: push it, or run approve in this clone)" },
        p.branch
    )
}

/// Prints notes that come with a verified state (stale copy, old checkout).
/// Prints what the core queued for the user ([`crate::notice`]), in order.
pub(crate) fn print_queued() {
    for line in crate::notice::take() {
        eprintln!("byreis: {line}");
    }
}

pub(crate) fn print_notes(notes: &[(Code, String)]) {
    for (code, msg) in notes {
        eprintln!("byreis: note[{code}]: {msg}");
    }
}

/// [`main`], with a closed stdout (`byreis list | head -0`) ending the run
/// quietly with 141 (128 + SIGPIPE, as a shell reports a program killed
/// by it) instead of a panic. The panic unwinds, so every guard (a private
/// edit directory, a lock) is dropped and cleans up on the way.
pub fn main_catching_broken_pipe() -> i32 {
    fn broken_pipe(msg: &str) -> bool {
        msg.contains("failed printing to stdout") && msg.contains("Broken pipe")
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !broken_pipe(msg) {
            default(info);
        }
    }));
    match std::panic::catch_unwind(main) {
        Ok(code) => code,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if broken_pipe(msg) {
                141
            } else {
                101
            }
        }
    }
}

/// Entry point: parses arguments, runs the verb, returns the exit code.
pub fn main() -> i32 {
    crate::timing::init();
    // The core reaches remotes only through this port (ADR 0020).
    crate::transport::install(&crate::remote::GIT);
    let cli = Cli::parse();
    let format = cli.command.format();
    if let Some(dir) = cli.dir.as_ref().filter(|d| !d.is_dir()) {
        render_error(
            &CliError::Refused(
                Refusal::Usage,
                format!(
                    "-C {}: no such directory (-C DIR names the directory of a project checkout)",
                    dir.display()
                ),
            ),
            format,
        );
        return 2;
    }
    let ctx = context(cli.dir);
    let result = match cli.command {
        Command::Keygen {
            name,
            email,
            signing_key,
        } => setup::keygen(&ctx, &name, email, signing_key),
        Command::Whoami { format } => setup::whoami(&ctx, format),
        Command::Registry {
            command: RegistryCommand::Init { path, location },
        } => setup::registry_init(&ctx, &path, location.as_deref()),
        Command::Registry {
            command: RegistryCommand::Pull,
        } => setup::registry_pull(&ctx),
        Command::Registry {
            command: RegistryCommand::Refresh,
        } => setup::registry_refresh(&ctx),
        Command::Registry {
            command:
                RegistryCommand::Verify {
                    path,
                    anchor,
                    format,
                },
        } => daily::registry_verify(&ctx, path, &anchor, format),
        Command::Admin {
            command: AdminCommand::List { format },
        } => setup::admin_list(&ctx, format),
        Command::Admin {
            command:
                AdminCommand::Add {
                    name,
                    signing_key,
                    age,
                    email,
                },
        } => setup::admin_add(&ctx, name, &signing_key, age, email),
        Command::Admin {
            command: AdminCommand::Remove { name },
        } => setup::admin_remove(&ctx, &name),
        Command::Admin {
            command:
                AdminCommand::Thresholds {
                    roster,
                    recipients,
                    values,
                },
        } => setup::admin_thresholds(&ctx, roster, recipients, values),
        Command::Admin {
            command: AdminCommand::Location { location },
        } => setup::admin_location(&ctx, &location),
        Command::Submit { discard, format } => daily::submit(&ctx, discard, format),
        Command::Approve {
            reference,
            pinned,
            yes,
            show_values,
            format,
        } => match reference {
            Some(r) if !pinned => rotate::approve(&ctx, &r, yes, show_values, format),
            _ => pinned::approve_pinned(&ctx, yes, show_values, format),
        },
        Command::Init { project, registry } => setup::init(&ctx, &project, &registry),
        Command::Trust {
            anchor,
            registry,
            project,
            show,
        } => setup::trust(&ctx, anchor, registry, project, show),
        Command::Set {
            env,
            key,
            value,
            from_file,
        } => daily::set(&ctx, &env, &key, value, from_file.as_deref()),
        Command::Get { env, key, format } => daily::get(&ctx, &env, &key, format),
        Command::Export {
            env,
            format,
            only,
            name,
            namespace,
            kind,
            as_env,
        } => deploy::export(
            &ctx,
            &env,
            format,
            &only,
            deploy::SecretArgs {
                name,
                namespace,
                kind,
            },
            as_env,
        ),
        Command::Kustomize => deploy::kustomize(&ctx),
        Command::List { env, long, format } => daily::list(&ctx, env.as_deref(), long, format),
        Command::Import {
            file,
            format,
            env,
            new_env,
        } => daily::import(
            &ctx,
            file.as_deref(),
            format.into(),
            env.as_deref(),
            &new_env,
        ),
        Command::Unset { env, key } => daily::unset(&ctx, &env, &key),
        Command::Edit { env } => daily::edit(&ctx, &env),
        Command::Exec {
            env,
            overrides,
            override_all,
            files,
            command,
        } => daily::exec(&ctx, &env, &overrides, override_all, &files, &command),
        Command::ExecAllow { env, name, remove } => daily::exec_allow(&ctx, &env, &name, remove),
        Command::Rotate(args) => {
            if args.resume {
                rotate::resume(&ctx, args.yes)
            } else if args.abort {
                rotate::abort(&ctx)
            } else {
                rotate::rotate(&ctx, args)
            }
        }
        Command::RequestAccess {
            name,
            email,
            reason,
            out,
        } => requests::request_access(&ctx, &name, email, reason, out),
        Command::Request {
            command: RequestCommand::List { format },
        } => requests::list(&ctx, format),
        Command::Request {
            command: RequestCommand::Show { reference },
        } => requests::show(&ctx, &reference),
        Command::Request {
            command: RequestCommand::Reject { reference, reason },
        } => requests::reject(&ctx, &reference, reason),
        Command::Verify { format } => daily::deploy_verify(&ctx, format),
        Command::Diff { rev, format } => daily::diff(&ctx, rev.as_deref(), format),
        Command::Doctor {
            format,
            rotation_history,
            since,
            exposure,
            require_ack,
            decrypt,
        } => {
            if rotation_history {
                daily::rotation_history(&ctx, since.as_deref(), format)
            } else if let Some(name) = exposure {
                daily::exposure(&ctx, &name, require_ack, format)
            } else {
                daily::doctor(&ctx, decrypt, format)
            }
        }
        Command::Exposure {
            command:
                ExposureCommand::Ack {
                    name,
                    keys,
                    env,
                    note,
                },
        } => daily::exposure_ack(&ctx, &name, env.as_deref(), &keys, &note),
    };
    print_queued();
    match result {
        Ok(()) => 0,
        Err(e) => render_error(&e, format),
    }
}

/// Prints an error the one way every error is shown and returns the exit
/// code: `byreis: error[CODE]: message` on stderr (and `  fix: …` for a
/// verification code); with `--format json`, also one JSON object
/// `{"error": {"code", "message", "fix" (verification codes only),
/// "exit"}}` on stdout. [`CliError::Exit`] prints nothing: the verb
/// reported it already.
pub(crate) fn render_error(err: &CliError, format: Format) -> i32 {
    if let CliError::Exit(code) = err {
        return *code;
    }
    eprint!("{}", render::error_text(err));
    if format == Format::Json {
        println!("{}", render::error_json(err));
    }
    render::exit_code(err)
}
