//! The environment `exec` gives a child (invariant 10): secrets cannot
//! change how programs load code, which TLS servers they trust or where
//! they send traffic unless the signed manifest allows the name for that
//! environment (`byreis exec-allow ENV NAME`), an inherited variable is
//! never overridden silently, and byreis's own variables and API tokens do
//! not reach the child.
//!
//! Which names are refused is decided by **families** ([`FAMILIES`]): an
//! exact name, a prefix (`PYTHON*`), a suffix (`*_OPTS`) or a substring
//! (`*PROXY*`), each with the reason it is refused. Matching ignores ASCII
//! case (secret names are ASCII, `crates/byreis-core/src/names.rs`): `http_proxy` is refused
//! like `HTTP_PROXY`, `complus_x` like `COMPlus_x`. The table is broad on
//! purpose (ADR 0016): a false refusal costs one signed `exec-allow`; a
//! missed name can hand every value of the environment to whoever chose it.
//! It still cannot be complete, which is why `approve` also flags every
//! name set by a member who cannot read the environment.

use std::collections::BTreeMap;
use std::ffi::OsString;

use crate::yaml::Secrets;

/// One family of names `exec` refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// `NAME` (exact), `PREFIX*`, `*SUFFIX` or `*PART*`; case-insensitive.
    pub pattern: &'static str,
    /// Why a program's behaviour changes when the name is set.
    pub reason: &'static str,
}

impl Family {
    /// Whether `name` belongs to this family (ASCII case ignored).
    pub fn matches(&self, name: &str) -> bool {
        let p = self.pattern.as_bytes();
        let n = name.as_bytes();
        let (starts, core, ends) = match (p.first(), p.last()) {
            (Some(b'*'), Some(b'*')) if p.len() > 1 => (false, &p[1..p.len() - 1], false),
            (Some(b'*'), _) => (false, &p[1..], true),
            (_, Some(b'*')) => (true, &p[..p.len() - 1], false),
            _ => return p.eq_ignore_ascii_case(n),
        };
        if n.len() < core.len() {
            return false;
        }
        match (starts, ends) {
            (true, _) => n[..core.len()].eq_ignore_ascii_case(core),
            (_, true) => n[n.len() - core.len()..].eq_ignore_ascii_case(core),
            _ => n.windows(core.len()).any(|w| w.eq_ignore_ascii_case(core)),
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "family {}: {}", self.pattern, self.reason)
    }
}

const fn fam(pattern: &'static str, reason: &'static str) -> Family {
    Family { pattern, reason }
}

// Reasons shared by several rows.
const LOADER: &str = "the dynamic loader and the C library read it to load libraries or change memory handling in every program";
const GLIBC: &str = "the C library reads it to load locale, charset or name-service data from a path (glibc refuses it for setuid programs for that reason)";
const RESOLVER: &str = "the C library's resolver reads it: host names then resolve elsewhere, so traffic goes to another host";
const SHELL: &str = "shells read it at start-up or before commands: it runs code in every shell script the program starts";
const TOOL_CMD: &str = "programs run the command it names";
const MAKE_PROG: &str = "make runs the program it names in its built-in rules (the environment overrides make's defaults)";
const CREDS_FROM: &str =
    "AWS SDKs fetch the machine's credentials from the address it names, and would send them there";
const GO: &str = "the go command reads it to choose toolchains, module sources, checksum databases or build flags: code it downloads or compiles";
const CC: &str =
    "build tools (make, cgo, configure, build scripts) run the compiler or linker it names";
const ENDPOINT: &str = "a client sends its requests, with its credentials, to the address it names";
const X11: &str = "graphical and desktop programs connect to the server it names, which then sees their windows and input";
const TLS: &str = "it changes which TLS servers programs trust, or turns checking off";

/// The families of names `exec` refuses unless the manifest allows the
/// name for the environment. The first family that matches is the one
/// named in messages.
pub const FAMILIES: &[Family] = &[
    // The dynamic loader and the C library.
    fam("LD_*", LOADER),
    fam("DYLD_*", "the macOS dynamic loader reads it to load libraries into every program"),
    fam("MALLOC_*", LOADER),
    fam("GLIBC_*", LOADER),
    fam("GCONV_PATH", GLIBC),
    fam("LOCPATH", GLIBC),
    fam("NLSPATH", GLIBC),
    fam("GETCONF_DIR", GLIBC),
    fam("TZDIR", GLIBC),
    fam("NIS_PATH", GLIBC),
    fam("HOSTALIASES", RESOLVER),
    fam("RES_OPTIONS", RESOLVER),
    fam("LOCALDOMAIN", RESOLVER),
    fam("RESOLV_HOST_CONF", RESOLVER),
    // Shells.
    fam("PATH", "programs look up every command they run in it"),
    fam("HOME", "programs read their configuration (.bashrc, .gitconfig, .npmrc, ~/.ssh/config, …) from it, and configuration runs code"),
    fam("SHELL", "programs run commands with the shell it names"),
    fam("ENV", SHELL),
    fam("BASH_*", SHELL),
    fam("IFS", SHELL),
    fam("PS0", SHELL),
    fam("PS1", SHELL),
    fam("PS2", SHELL),
    fam("PS3", SHELL),
    fam("PS4", SHELL),
    fam("PROMPT_COMMAND", SHELL),
    fam("SHELLOPTS", SHELL),
    fam("BASHOPTS", SHELL),
    fam("ZDOTDIR", SHELL),
    fam("FPATH", SHELL),
    fam("CDPATH", SHELL),
    fam("HISTFILE", "shells write the commands they run to the file it names"),
    fam("TMPDIR", "programs write temporary files, some of them code they run next, to the directory it names"),
    fam("TMP", "programs write temporary files, some of them code they run next, to the directory it names"),
    fam("TEMP", "programs write temporary files, some of them code they run next, to the directory it names"),
    // Programs that run other programs.
    fam("VISUAL", "programs open files with the command it names"),
    fam("TERMINAL", "programs open terminals with the command it names"),
    fam("MANOPT", "man adds its options, which can name a pager or browser to run"),
    fam("RSYNC_CONNECT_PROG", TOOL_CMD),
    fam("LESS*", "less reads it: LESSOPEN and LESSCLOSE run commands on every file shown, LESSKEY loads key bindings"),
    fam("SUDO_*", "sudo reads it (SUDO_ASKPASS, SUDO_EDITOR run commands)"),
    fam("SYSTEMD_*", "systemd tools read it (SYSTEMD_PAGER, SYSTEMD_EDITOR run commands)"),
    fam("VIMINIT", "vim runs its commands at start-up"),
    fam("GVIMINIT", "vim runs its commands at start-up"),
    fam("EXINIT", "vi runs its commands at start-up"),
    // Language runtimes and package managers.
    fam("PYTHON*", "Python reads it to load code or change warnings handling (PYTHONWARNINGS can import any module, PYTHONSTARTUP runs a file, PYTHONBREAKPOINT calls any function)"),
    fam("PIP_*", "pip reads it: another package index installs other code, and pip's options can run commands"),
    fam("UV_*", "uv reads it: another package index or interpreter means other code"),
    fam("VIRTUAL_ENV", "tools like uv run the interpreter and packages of the environment it names"),
    fam("CONDA_*", "conda tools run the interpreter and packages of the environment it names"),
    fam("IPYTHONDIR", "IPython runs the start-up scripts of the directory it names"),
    fam("NODE_*", "Node.js reads it to load code (NODE_OPTIONS --require) or trust other TLS servers (NODE_EXTRA_CA_CERTS, NODE_TLS_REJECT_UNAUTHORIZED)"),
    fam("NPM_CONFIG_*", "npm reads it as configuration: another registry installs other code, and scripts and the shell npm runs are configurable"),
    fam("YARN_*", "yarn reads it as configuration (yarnPath runs a file; another registry installs other code)"),
    fam("COREPACK_*", "Corepack reads it to choose where it downloads the package manager it then runs"),
    fam("BUN_*", "Bun reads it as configuration (another registry installs other code)"),
    fam("DENO_*", "Deno reads it to choose where code and certificates come from"),
    fam("JAVA_*", "the JVM and its launchers read it to add options or agents (JAVA_TOOL_OPTIONS -javaagent runs code)"),
    fam("_JAVA_*", "the JVM reads it to add options or agents that run code"),
    fam("JDK_*", "the java launcher reads it to add options or agents that run code"),
    fam("CLASSPATH", "the JVM loads classes from it"),
    fam("MAVEN_ARGS", "Maven adds its arguments, which can name other settings and repositories"),
    fam("DOTNET_*", "the .NET runtime reads it to load startup hooks or profilers (DOTNET_STARTUP_HOOKS runs code)"),
    fam("CORECLR_*", "the .NET runtime reads it to load a profiler into the process"),
    fam("COMPlus_*", "the .NET runtime reads it as configuration, including profilers and startup hooks"),
    fam("MSBUILD*", "MSBuild reads it to find extensions and tasks it runs"),
    fam("RUBY*", "Ruby reads it to load code (RUBYOPT -r, RUBYLIB)"),
    fam("GEM_*", "RubyGems loads gems from the paths it names"),
    fam("BUNDLE_*", "Bundler reads it as configuration (BUNDLE_GEMFILE names the code it loads)"),
    fam("BUNDLER_*", "Bundler reads it to choose its own version and configuration"),
    fam("PERL*", "Perl reads it to load code (PERL5OPT -M, PERL5LIB, PERL5DB)"),
    fam("PHP*", "PHP reads it to load configuration (PHPRC, PHP_INI_SCAN_DIR) that can prepend code to every script"),
    fam("LUA_*", "Lua reads it to load code (LUA_INIT runs code, LUA_PATH and LUA_CPATH find modules)"),
    fam("TCL*", "Tcl reads it to load its library and packages"),
    fam("TK_LIBRARY", "Tk loads its library from it"),
    fam("R_*", "R reads it to run profile files and load libraries (R_PROFILE, R_ENVIRON, R_LIBS)"),
    fam("ERL_*", "Erlang reads it to add emulator flags and code paths (ERL_FLAGS, ERL_LIBS)"),
    fam("CARGO_*", "Cargo reads it as configuration: wrappers, runners, linkers and registries it uses"),
    fam("RUSTC*", "Cargo runs the compiler or wrapper it names"),
    fam("RUSTDOC*", "Cargo runs the rustdoc it names, with its flags"),
    fam("RUSTUP_*", "rustup reads it to choose the toolchain it runs"),
    fam("GOSUMDB", GO),
    fam("GONOSUMDB", GO),
    fam("GONOSUMCHECK", GO),
    fam("GOPRIVATE", GO),
    fam("GOTOOLCHAIN", GO),
    fam("GOENV", GO),
    fam("GOROOT", GO),
    fam("GOBIN", GO),
    fam("GOCACHE", GO),
    fam("GOMODCACHE", GO),
    fam("GOWORK", GO),
    fam("GOVCS", GO),
    fam("GOEXPERIMENT", GO),
    fam("GODEBUG", GO),
    fam("CGO_*", CC),
    fam("CC", CC),
    fam("CXX", CC),
    fam("CPP", CC),
    fam("LD", CC),
    fam("AR", CC),
    fam("AS", CC),
    fam("MAKEFILES", "make reads the makefiles it names, which run commands"),
    // make's implicit program variables: the environment overrides them,
    // and recipes run them (an attack pass ran `env` through RM).
    fam("MAKE", MAKE_PROG),
    fam("RM", MAKE_PROG),
    fam("FC", MAKE_PROG),
    fam("F77", MAKE_PROG),
    fam("YACC", MAKE_PROG),
    fam("LEX", MAKE_PROG),
    fam("M4", MAKE_PROG),
    fam("NM", MAKE_PROG),
    fam("RANLIB", MAKE_PROG),
    fam("STRIP", MAKE_PROG),
    fam("OBJCOPY", MAKE_PROG),
    fam("OBJDUMP", MAKE_PROG),
    fam("HOSTCC", CC),
    fam("HOST_CC", CC),
    fam("TARGET_CC", CC),
    fam("CROSS_COMPILE", CC),
    fam("CC_*", CC),
    fam("CXX_*", CC),
    fam("AR_*", CC),
    fam("CMAKE_*", "CMake reads it to choose toolchain files and compiler launchers it runs"),
    fam("PKG_CONFIG*", "pkg-config reads it to choose which .pc files set compiler and linker flags"),
    // Version control and remote access.
    fam("GIT_*", "git reads it to run commands (GIT_SSH_COMMAND, GIT_ASKPASS, GIT_PAGER, GIT_EXTERNAL_DIFF, GIT_PROXY_COMMAND) or change its configuration and TLS checks"),
    fam("HG*", "Mercurial reads it to load configuration and extensions (HGRCPATH, HGPLAIN, HGEDITOR)"),
    fam("SSH_*", "ssh and its clients read it (SSH_AUTH_SOCK hands signing to another agent, SSH_ASKPASS runs a command)"),
    fam("GNUPG*", "GnuPG reads its keys, trust and configuration from where it points"),
    fam("GPG_*", "GnuPG and its clients talk to the agent it names"),
    fam("KRB5*", "Kerberos reads its configuration, realms and credential caches from where it points"),
    // TLS trust.
    fam("SSL_*", TLS),
    fam("OPENSSL_*", "OpenSSL reads it to load configuration, engines and providers: code, and trust"),
    fam("SSLKEYLOGFILE", "TLS libraries write every session key to the file it names, so recorded traffic can be decrypted"),
    fam("CA_*", TLS),
    fam("PGSSL*", TLS),
    fam("PGSERVICEFILE", "libpq reads connection services, with hosts and TLS settings, from the file it names"),
    // Where traffic goes.
    fam("DOCKER_HOST", ENDPOINT),
    fam("DOCKER_CONTEXT", ENDPOINT),
    fam("VAULT_ADDR", ENDPOINT),
    fam("CONSUL_HTTP_ADDR", ENDPOINT),
    fam("NOMAD_ADDR", ENDPOINT),
    fam("GH_HOST", ENDPOINT),
    fam("AWS_ENDPOINT_URL*", ENDPOINT),
    fam("AWS_EC2_METADATA_*", CREDS_FROM),
    fam("AWS_CONTAINER_*", CREDS_FROM),
    fam("KUBERNETES_SERVICE_*", "in-cluster Kubernetes clients send the pod's service-account token to the API server it names"),
    fam("ELECTRON_*", "Electron apps read it to run as plain Node (ELECTRON_RUN_AS_NODE) or load code"),
    fam("VK_*", "the Vulkan loader loads the driver and layer libraries it names"),
    fam("OCL_ICD_*", "the OpenCL loader loads the driver libraries it names"),
    fam("GOOGLE_APPLICATION_CREDENTIALS", "Google clients authenticate as the account the file names, so data goes to its project (external-account files can run a command)"),
    fam("CLOUDSDK_*", "the Google Cloud CLI reads it as configuration, including the Python interpreter it runs"),
    fam("DISPLAY", X11),
    fam("WAYLAND_DISPLAY", X11),
    fam("XAUTHORITY", X11),
    fam("DBUS_*", "programs talk to the message bus it names, which can start services"),
    fam("XDG_*", "programs load configuration, data, autostart entries and helpers from the directories it names"),
    // Shapes, after the named families so messages name the program:
    // commands programs run, options, search paths, homes, plugins,
    // configuration and start-up files, TLS trust, proxies.
    fam("*BROWSER", "programs open URLs with the command it names"),
    fam("*PAGER", "programs pipe their output through the command it names"),
    fam("*EDITOR", "programs open files with the command it names"),
    fam("*ASKPASS*", "programs run the command it names to ask for passwords, and send it the prompt"),
    fam("*COMMAND", TOOL_CMD),
    fam("*CMD", TOOL_CMD),
    fam("*_SSH", "programs run the ssh command it names (SVN_SSH, …)"),
    fam("*_ARGS", "tools parse it as extra command-line arguments (ANT_ARGS, …), which can load code"),
    fam("*ADDOPTS", "tools parse it as extra command-line options (PYTEST_ADDOPTS: -p loads a plugin)"),
    fam("*_FILENAMES", "loaders load the libraries it names (VK_ICD_FILENAMES, …)"),
    fam("*ENDPOINT*", ENDPOINT),
    fam("*WRAPPER", "build tools run every compiler call through the command it names"),
    fam("*_RSH", TOOL_CMD),
    fam("*_OPTS", "tools parse it as extra command-line options (MAVEN_OPTS, GRADLE_OPTS, SBT_OPTS, …), which can load agents or code"),
    fam("*OPTIONS", "tools parse it as extra command-line options (NODE_OPTIONS, JAVA_TOOL_OPTIONS, …), which can load code"),
    fam("*OPT", "tools parse it as extra command-line options (RUBYOPT, PERL5OPT, MANROFFOPT, …), which can load code"),
    fam("*FLAGS", "build tools pass it to compilers and linkers (CFLAGS, LDFLAGS, RUSTFLAGS, GOFLAGS, MAKEFLAGS, …), which can load plugins or run code"),
    fam("*PLUGIN*", "programs load plugins from where it points"),
    fam("*MODULE*", "programs load modules from where it points (GTK_MODULES, OPENSSL_MODULES, GIO_EXTRA_MODULES, …)"),
    fam("*LIBRARY*", "programs load libraries from where it points"),
    fam("*PRELOAD*", "programs load what it names before anything else"),
    fam("*PATH", "programs search it for commands, libraries, modules or data (PYTHONPATH, CLASSPATH, NODE_PATH, …)"),
    fam("*HOME", "tools load their configuration, plugins or binaries from it (JAVA_HOME, CARGO_HOME, GNUPGHOME, …)"),
    fam("*DIR", "programs load configuration, modules, templates or hooks from the directory it names"),
    fam("*CONF", "programs load the configuration file it names, and configuration can run code (OpenSSL engines, …)"),
    fam("*CONFIG", "programs load the configuration it names, and configuration can run code (kubeconfig exec plugins, docker credential helpers, …)"),
    fam("*CONFIG_FILE", "programs load the configuration file it names (an AWS config's credential_process runs a command)"),
    fam("*CREDENTIALS_FILE", "clients authenticate as whatever the file it names says, and can run the command it names"),
    fam("*RC", "programs read and run the start-up file it names (PSQLRC, WGETRC, IRBRC, INPUTRC, MYVIMRC, …)"),
    fam("*_CA_BUNDLE", TLS),
    fam("*_CA_CERTS", TLS),
    fam("*_CA_*", TLS),
    fam("*_CA", TLS),
    fam("*CACERT*", TLS),
    fam("*CAFILE", TLS),
    fam("*CAINFO", TLS),
    fam("*ROOTCERT*", TLS),
    fam("*INSECURE*", TLS),
    fam("*SKIP_VERIFY*", TLS),
    fam("*TLS_VERIFY*", TLS),
    fam("*SSL_VERIFY*", TLS),
    fam("*PROXY*", "HTTP clients send their traffic, credentials included, through the proxy it names (or around one: NO_PROXY)"),
];

/// The family that refuses `name`, if any.
pub fn family_of(name: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.matches(name))
}

/// Does `exec` refuse `name` (unless the manifest allows it)? Kept under
/// this name for callers that only ask yes or no.
pub fn loads_code(name: &str) -> bool {
    family_of(name).is_some()
}

/// Names starting with this are byreis's own: never passed by `exec`, and
/// never allowed.
pub const RESERVED_PREFIX: &str = "BYREIS_";

/// Why `exec` would not pass secret `name` in an environment whose allowed
/// names are `allowed`, or `None` when it would.
pub fn refusal(name: &str, allowed: &[String]) -> Option<String> {
    if name.starts_with(RESERVED_PREFIX) {
        return Some(format!(
            "names starting with {RESERVED_PREFIX} are reserved for byreis and never passed"
        ));
    }
    if allowed.iter().any(|a| a == name) {
        return None;
    }
    family_of(name).map(|f| f.to_string())
}

/// What to do about a name `exec` refuses in `env`: allow it deliberately,
/// or (a reserved name) remove it.
pub fn fix_for(env: &str, name: &str) -> String {
    if name.starts_with(RESERVED_PREFIX) {
        format!("it cannot be allowed; remove it with `byreis unset {env} {name}`")
    } else {
        format!("allow it only on purpose, with `byreis exec-allow {env} {name}`")
    }
}

/// Inherited variables removed from the child's environment.
pub const TOKEN_NAMES: &[&str] = &[
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GH_ENTERPRISE_TOKEN",
    "GITHUB_ENTERPRISE_TOKEN",
];

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{head}: {}. Secrets with these names would change how the program loads code, which servers it trusts or where it sends data. If a program really needs one, an admin allows it for this environment with `byreis exec-allow {env} NAME` (a signed, audited change); otherwise remove it with `byreis unset {env} NAME`", refused.iter().map(|(n, f)| format!("{n} ({f})")).collect::<Vec<_>>().join("; "))]
    Refused {
        /// What was refused and what did not happen.
        head: &'static str,
        env: String,
        refused: Vec<(String, &'static Family)>,
    },
    #[error("secret names starting with BYREIS_ are reserved ({0}) and never become variables; remove it with `byreis unset ENV {0}` (nothing was run or written)")]
    Reserved(String),
    #[error("the inherited variable {0} would be overridden by a secret of the same name; unset it, or pass --override {0} (or --override-all) to let the secret win")]
    Inherited(String),
    #[error("--file {name}={var}: environment {env} has no secret {name}{hint} (nothing was run)")]
    FileUnknown {
        env: String,
        name: String,
        var: String,
        hint: String,
    },
    #[error("--file {0}: {1} (nothing was run)")]
    FileUsage(String, String),
}

/// One `--file NAME=PATH_VAR` of `exec`: secret NAME goes to a private file
/// whose path the child finds in PATH_VAR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVar {
    /// The secret whose value the file holds.
    pub name: String,
    /// The variable that holds the file's path.
    pub var: String,
}

impl std::str::FromStr for FileVar {
    type Err = String;

    fn from_str(s: &str) -> Result<FileVar, String> {
        let Some((name, var)) = s.split_once('=') else {
            return Err(format!(
                "{s:?}: expected NAME=PATH_VAR (the secret NAME is written to a private file whose path the program finds in PATH_VAR)"
            ));
        };
        for (what, n) in [("NAME", name), ("PATH_VAR", var)] {
            crate::names::check(crate::names::Kind::SecretKey, n)
                .map_err(|e| format!("{what} of {s:?}: {e}"))?;
        }
        Ok(FileVar {
            name: name.to_string(),
            var: var.to_string(),
        })
    }
}

/// What `exec` hands its child: the variables, the names where a secret
/// replaced an inherited variable (for a notice on stderr), and the
/// secrets that go to private files (the caller writes them and adds each
/// `var` with the file's path; `vars` holds none of them).
#[derive(Debug)]
pub struct ChildEnv {
    pub vars: BTreeMap<OsString, OsString>,
    pub replaced: Vec<String>,
    pub files: Vec<FileVar>,
}

impl ExecError {
    /// The refusal code this error is reported with.
    pub fn code(&self) -> crate::diag::Refusal {
        match self {
            ExecError::Refused { .. } => crate::diag::Refusal::ExecRefused,
            ExecError::Reserved(_) => crate::diag::Refusal::ReservedName,
            ExecError::Inherited(_) => crate::diag::Refusal::InheritedVariable,
            ExecError::FileUnknown { .. } => crate::diag::Refusal::UnknownKey,
            ExecError::FileUsage(..) => crate::diag::Refusal::Usage,
        }
    }
}

/// Builds the child's environment from `inherited` and the secrets of
/// `env`, where `exec_allow` lists the names the signed manifest allows
/// there and `files` the secrets the caller hands over as private files.
///
/// A secret that goes to a file is not a variable: its name is not judged
/// by the families (it names nothing the program reads), the path variable
/// is (the caller chose it on the command line, so it may replace an
/// inherited variable of the same name, with a notice, but not another
/// secret's variable, and never a `BYREIS_` name).
pub fn child_env(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    env_name: &str,
    secrets: &Secrets,
    exec_allow: &[String],
    overrides: &[String],
    override_all: bool,
    files: &[FileVar],
) -> Result<ChildEnv, ExecError> {
    let mut env: BTreeMap<OsString, OsString> = inherited
        .into_iter()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            !k.starts_with(RESERVED_PREFIX) && !TOKEN_NAMES.contains(&k.as_ref())
        })
        .collect();
    check_files(env_name, secrets, files)?;
    let as_file = |n: &String| files.iter().any(|f| &f.name == n);
    check_variable_names(
        "exec refused (nothing was run)",
        env_name,
        secrets.keys().filter(|n| !as_file(n)),
        exec_allow,
    )?;
    let mut replaced = Vec::new();
    for f in files {
        if env.contains_key(&OsString::from(&f.var)) {
            replaced.push(f.var.clone());
        }
    }
    for (name, value) in secrets.iter().filter(|(n, _)| !as_file(n)) {
        let key = OsString::from(name);
        if env.contains_key(&key) {
            if !(override_all || overrides.contains(name)) {
                return Err(ExecError::Inherited(name.clone()));
            }
            replaced.push(name.clone());
        }
        env.insert(key, OsString::from(value.expose()));
    }
    for f in files {
        env.remove(&OsString::from(&f.var));
    }
    Ok(ChildEnv {
        vars: env,
        replaced,
        files: files.to_vec(),
    })
}

/// Refuses `names` that are to become environment variables of a program
/// when one is reserved (`BYREIS_`) or in a family the signed `exec_allow`
/// of `env_name` does not allow: `exec`'s rule, also applied by `export
/// --as-env` (the GitHub Action hands values to later steps as variables).
/// `head` says what was refused and what did not happen.
pub fn check_variable_names<'a>(
    head: &'static str,
    env_name: &str,
    names: impl IntoIterator<Item = &'a String>,
    exec_allow: &[String],
) -> Result<(), ExecError> {
    let names: Vec<&String> = names.into_iter().collect();
    if let Some(name) = names.iter().find(|n| n.starts_with(RESERVED_PREFIX)) {
        return Err(ExecError::Reserved((*name).clone()));
    }
    let refused: Vec<(String, &'static Family)> = names
        .into_iter()
        .filter(|n| !exec_allow.contains(n))
        .filter_map(|n| family_of(n).map(|f| (n.clone(), f)))
        .collect();
    if !refused.is_empty() {
        return Err(ExecError::Refused {
            head,
            env: env_name.to_string(),
            refused,
        });
    }
    Ok(())
}

/// Each `--file` names a secret of the environment once, and a path
/// variable that is neither reserved, nor given twice, nor a variable
/// another secret of the environment becomes.
fn check_files(env_name: &str, secrets: &Secrets, files: &[FileVar]) -> Result<(), ExecError> {
    for (i, f) in files.iter().enumerate() {
        let spec = format!("{}={}", f.name, f.var);
        if !secrets.contains_key(&f.name) {
            let near = crate::names::closest(&f.name, secrets.keys());
            return Err(ExecError::FileUnknown {
                env: env_name.to_string(),
                name: f.name.clone(),
                var: f.var.clone(),
                hint: match near {
                    Some(n) => format!(" (did you mean {n}?)"),
                    None => format!("; `byreis list {env_name}` shows its names"),
                },
            });
        }
        if f.var.starts_with(RESERVED_PREFIX) {
            return Err(ExecError::FileUsage(
                spec,
                format!("names starting with {RESERVED_PREFIX} are byreis's own; choose another PATH_VAR"),
            ));
        }
        if files[..i].iter().any(|g| g.name == f.name) {
            return Err(ExecError::FileUsage(
                spec,
                format!("{} is given to --file twice", f.name),
            ));
        }
        if files[..i].iter().any(|g| g.var == f.var) {
            return Err(ExecError::FileUsage(
                spec,
                format!("{} holds the path of another --file already", f.var),
            ));
        }
        if f.var != f.name && secrets.contains_key(&f.var) && !files.iter().any(|g| g.name == f.var)
        {
            return Err(ExecError::FileUsage(
                spec,
                format!(
                    "{var} is also a secret of {env_name}, which exec passes as the variable {var}; choose another PATH_VAR, or pass {var} as a file too",
                    var = f.var
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::yaml::secrets_of as s;
    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    /// The names of the attack in issue 13 item 4 (a member who could not
    /// read prod submitted PYTHONWARNINGS and BROWSER), the names the
    /// issue lists, and one member of every family shape: each is refused,
    /// by the family given.
    #[test]
    fn exec_refuses_every_name_of_the_attack_and_the_families() {
        let cases: &[(&str, &str)] = &[
            // The attack list.
            ("BROWSER", "*BROWSER"),
            ("PYTHONWARNINGS", "PYTHON*"),
            ("PYTHONBREAKPOINT", "PYTHON*"),
            ("GIT_PAGER", "GIT_*"),
            ("GIT_ASKPASS", "GIT_*"),
            ("GIT_EXTERNAL_DIFF", "GIT_*"),
            ("GIT_SSH_COMMAND", "GIT_*"),
            ("LESSOPEN", "LESS*"),
            ("MANPAGER", "*PAGER"),
            ("SUDO_ASKPASS", "SUDO_*"),
            ("OPENSSL_CONF", "OPENSSL_*"),
            ("HTTPS_PROXY", "*PROXY*"),
            ("ALL_PROXY", "*PROXY*"),
            ("NODE_TLS_REJECT_UNAUTHORIZED", "NODE_*"),
            ("DOTNET_STARTUP_HOOKS", "DOTNET_*"),
            // Found by the attack pass of the exec families.
            ("MAKE", "MAKE"),
            ("RM", "RM"),
            ("FC", "FC"),
            ("YACC", "YACC"),
            ("NM", "NM"),
            ("RANLIB", "RANLIB"),
            ("STRIP", "STRIP"),
            ("TARGET_CC", "TARGET_CC"),
            ("HOST_CC", "HOST_CC"),
            ("CC_x86_64_unknown_linux_gnu", "CC_*"),
            ("JAVACMD", "*CMD"),
            ("ANT_ARGS", "*_ARGS"),
            ("PYTEST_ADDOPTS", "*ADDOPTS"),
            ("SVN_SSH", "*_SSH"),
            ("ELECTRON_RUN_AS_NODE", "ELECTRON_*"),
            ("VK_ICD_FILENAMES", "VK_*"),
            ("OCL_ICD_VENDORS", "OCL_ICD_*"),
            ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_*"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_*"),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_*"),
            ("HF_ENDPOINT", "*ENDPOINT*"),
            // Proxies in any case; secret names are ASCII.
            ("http_proxy", "*PROXY*"),
            ("https_proxy", "*PROXY*"),
            ("no_proxy", "*PROXY*"),
            ("GOPROXY", "*PROXY*"),
            // The families the issue lists.
            ("LD_PRELOAD", "LD_*"),
            ("ld_preload", "LD_*"),
            ("DYLD_INSERT_LIBRARIES", "DYLD_*"),
            ("MALLOC_CHECK_", "MALLOC_*"),
            ("GLIBC_TUNABLES", "GLIBC_*"),
            ("GCONV_PATH", "GCONV_PATH"),
            ("LOCPATH", "LOCPATH"),
            ("NLSPATH", "NLSPATH"),
            ("HOSTALIASES", "HOSTALIASES"),
            ("RES_OPTIONS", "RES_OPTIONS"),
            ("LOCALDOMAIN", "LOCALDOMAIN"),
            ("TZDIR", "TZDIR"),
            ("IFS", "IFS"),
            ("PS4", "PS4"),
            ("PROMPT_COMMAND", "PROMPT_COMMAND"),
            ("BASH_ENV", "BASH_*"),
            ("BASH_FUNC_X", "BASH_*"),
            ("ENV", "ENV"),
            ("ZDOTDIR", "ZDOTDIR"),
            ("SHELLOPTS", "SHELLOPTS"),
            ("BASHOPTS", "BASHOPTS"),
            ("HOME", "HOME"),
            ("SHELL", "SHELL"),
            ("PATH", "PATH"),
            ("TMPDIR", "TMPDIR"),
            ("CLASSPATH", "CLASSPATH"),
            ("PAGER", "*PAGER"),
            ("EDITOR", "*EDITOR"),
            ("VISUAL", "VISUAL"),
            ("TERMINAL", "TERMINAL"),
            ("MANOPT", "MANOPT"),
            ("PYTHONPATH", "PYTHON*"),
            ("NODE_OPTIONS", "NODE_*"),
            ("NODE_EXTRA_CA_CERTS", "NODE_*"),
            ("npm_config_registry", "NPM_CONFIG_*"),
            ("JAVA_TOOL_OPTIONS", "JAVA_*"),
            ("_JAVA_OPTIONS", "_JAVA_*"),
            ("JDK_JAVA_OPTIONS", "JDK_*"),
            ("MAVEN_OPTS", "*_OPTS"),
            ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "*PATH"),
            ("SSL_CERT_FILE", "SSL_*"),
            ("AWS_CA_BUNDLE", "*_CA_BUNDLE"),
            ("REQUESTS_CA_BUNDLE", "*_CA_BUNDLE"),
            ("CURL_CA_BUNDLE", "*_CA_BUNDLE"),
            ("CORECLR_PROFILER", "CORECLR_*"),
            ("COMPlus_EnableDiagnostics", "COMPlus_*"),
            ("COMPLUS_X", "COMPlus_*"),
            ("LUA_INIT", "LUA_*"),
            ("PHPRC", "PHP*"),
            ("GEM_PATH", "GEM_*"),
            ("BUNDLE_GEMFILE", "BUNDLE_*"),
            ("RUBYOPT", "RUBY*"),
            ("PERL5OPT", "PERL*"),
            ("XDG_CONFIG_HOME", "XDG_*"),
            ("SSH_AUTH_SOCK", "SSH_*"),
            ("GNUPGHOME", "GNUPG*"),
            ("GPG_AGENT_INFO", "GPG_*"),
            ("KRB5CCNAME", "KRB5*"),
            ("TCLLIBPATH", "TCL*"),
            ("R_PROFILE_USER", "R_*"),
            // Researched additions.
            ("PIP_INDEX_URL", "PIP_*"),
            ("CARGO_BUILD_RUSTC_WRAPPER", "CARGO_*"),
            ("RUSTC_WRAPPER", "RUSTC*"),
            ("RUSTFLAGS", "*FLAGS"),
            ("GOFLAGS", "*FLAGS"),
            ("GOTOOLCHAIN", "GOTOOLCHAIN"),
            ("DOCKER_HOST", "DOCKER_HOST"),
            ("KUBECONFIG", "*CONFIG"),
            ("AWS_CONFIG_FILE", "*CONFIG_FILE"),
            ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL*"),
            ("SSLKEYLOGFILE", "SSLKEYLOGFILE"),
            ("VAULT_ADDR", "VAULT_ADDR"),
            ("VAULT_SKIP_VERIFY", "*SKIP_VERIFY*"),
            ("PSQLRC", "*RC"),
            ("GIT_CONFIG_GLOBAL", "GIT_*"),
            ("MAKEFLAGS", "*FLAGS"),
            ("CC", "CC"),
            ("QT_PLUGIN_PATH", "*PLUGIN*"),
            ("GTK_MODULES", "*MODULE*"),
            ("DISPLAY", "DISPLAY"),
        ];
        for (name, family) in cases {
            let f = family_of(name).unwrap_or_else(|| panic!("{name} is not refused"));
            assert_eq!(f.pattern, *family, "{name}");
            assert!(loads_code(name), "{name}");
            let env = s(&[(name, "x"), ("DB", "1")]);
            match child_env(Vec::new(), "prod", &env, &[], &[], false, &[]) {
                Err(ExecError::Refused { refused, .. }) => {
                    assert_eq!(refused.len(), 1, "{name}");
                    assert_eq!(refused[0].0, *name);
                }
                other => panic!("{name}: exec was not refused: {other:?}"),
            }
            // Allowed by name (for this environment): passed.
            let out = child_env(
                Vec::new(),
                "prod",
                &env,
                &[name.to_string()],
                &[],
                false,
                &[],
            )
            .unwrap()
            .vars;
            assert_eq!(out[&OsString::from(*name)], OsString::from("x"));
        }
    }

    /// What a refusal says: the name, its family and why, and how to allow it.
    #[test]
    fn a_refusal_names_the_family_and_the_fix() {
        let err = child_env(
            Vec::new(),
            "prod",
            &s(&[("PYTHONWARNINGS", "x"), ("BROWSER", "y")]),
            &[],
            &[],
            false,
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("PYTHONWARNINGS (family PYTHON*: Python reads it to load code or change warnings handling"),
            "{err}"
        );
        assert!(err.contains("BROWSER (family *BROWSER: "), "{err}");
        assert!(err.contains("`byreis exec-allow prod NAME`"), "{err}");
        assert!(err.contains("nothing was run"), "{err}");
        assert_eq!(
            refusal("PYTHONWARNINGS", &[]).unwrap(),
            format!(
                "family PYTHON*: {}",
                family_of("PYTHONWARNINGS").unwrap().reason
            )
        );
        assert_eq!(refusal("PYTHONWARNINGS", &["PYTHONWARNINGS".into()]), None);
        assert!(refusal("BYREIS_X", &["BYREIS_X".into()]).is_some());
        assert!(fix_for("prod", "BYREIS_X").contains("cannot be allowed"));
        assert!(fix_for("prod", "BROWSER").contains("`byreis exec-allow prod BROWSER`"));
        assert_eq!(refusal("DATABASE_URL", &[]), None);
    }

    /// Ordinary secret names pass: the families are broad, not everything.
    #[test]
    fn ordinary_secret_names_pass() {
        for name in [
            "DB",
            "API",
            "DATABASE_URL",
            "DB_PASSWORD",
            "API_KEY",
            "SECRET_KEY_BASE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "STRIPE_SECRET_KEY",
            "JWT_SECRET",
            "REDIS_URL",
            "SENTRY_DSN",
            "SMTP_PASSWORD",
            "NPM_TOKEN",
            "GITHUB_TOKEN",
            "DOCKER_PASSWORD",
            "TLS_KEY",
            "TLS_CERT",
            "PGPASSWORD",
            "CONFLUENT_API_KEY",
            "OPENAI_API_KEY",
            "SLACK_WEBHOOK_URL",
            "CANARY",
            "CALLBACK_URL",
            "HARMLESS",
            "NEW_KEY",
            "EDITED",
        ] {
            assert_eq!(family_of(name), None, "{name} is refused");
        }
    }

    /// Every pattern is one of the four shapes, over the secret-name
    /// alphabet, and names something.
    #[test]
    fn family_patterns_are_well_formed() {
        for f in FAMILIES {
            let core = f.pattern.trim_matches('*');
            assert!(!core.is_empty(), "{f}");
            assert!(!core.contains('*'), "{f}");
            assert!(
                core.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{f}"
            );
            assert!(f.matches(core), "{f} does not match its own core");
            assert!(!f.reason.is_empty());
        }
        let prefix = fam("AB*", "");
        assert!(prefix.matches("ab") && prefix.matches("ABC") && !prefix.matches("XAB"));
        let suffix = fam("*AB", "");
        assert!(suffix.matches("XAB") && !suffix.matches("ABX") && !suffix.matches("B"));
        let part = fam("*AB*", "");
        assert!(part.matches("XABY") && part.matches("ab") && !part.matches("AXB"));
        let exact = fam("AB", "");
        assert!(exact.matches("ab") && !exact.matches("ABC"));
    }

    /// docs/formats.md lists every family (the table there is generated
    /// from this one; a family added here must be documented).
    #[test]
    fn every_family_is_documented() {
        let doc = include_str!("../../../docs/formats.md");
        let section = &doc[doc.find("## What `exec` passes").expect("the exec section")..];
        for f in FAMILIES {
            assert!(
                section.contains(&format!("`{}`", f.pattern)),
                "docs/formats.md does not list family {}",
                f.pattern
            );
        }
    }

    #[test]
    fn rules() {
        let inh = os(&[
            ("HOME", "/h"),
            ("BYREIS_IDENTITY", "x"),
            ("GH_TOKEN", "t"),
            ("DB", "old"),
        ]);
        let run = |secrets: &Secrets, allow: &[String], overrides: &[String]| {
            child_env(inh.clone(), "prod", secrets, allow, overrides, false, &[])
                .map(|c| (c.vars, c.replaced))
        };
        let (env, _) = run(&s(&[("API", "1")]), &[], &[]).unwrap();
        assert!(env.contains_key(&OsString::from("API")));
        // Inherited variables keep their names, whatever their family.
        assert_eq!(env[&OsString::from("HOME")], OsString::from("/h"));
        assert!(!env.contains_key(&OsString::from("BYREIS_IDENTITY")));
        assert!(!env.contains_key(&OsString::from("GH_TOKEN")));
        assert!(matches!(
            run(&s(&[("LD_PRELOAD", "x")]), &[], &[]),
            Err(ExecError::Refused { .. })
        ));
        assert!(run(&s(&[("LD_PRELOAD", "x")]), &["LD_PRELOAD".into()], &[]).is_ok());
        // Allowing one name allows only that name.
        assert!(matches!(
            run(&s(&[("LD_PRELOAD", "x")]), &["LD_AUDIT".into()], &[]),
            Err(ExecError::Refused { .. })
        ));
        assert!(matches!(
            run(&s(&[("PATH", "x")]), &[], &[]),
            Err(ExecError::Refused { .. })
        ));
        assert!(matches!(
            run(&s(&[("DB", "new")]), &[], &[]),
            Err(ExecError::Inherited(_))
        ));
        let (env, replaced) = run(&s(&[("DB", "new")]), &[], &["DB".into()]).unwrap();
        assert_eq!(env[&OsString::from("DB")], OsString::from("new"));
        assert_eq!(replaced, vec!["DB".to_string()]);
        assert!(matches!(
            run(&s(&[("BYREIS_X", "1")]), &["BYREIS_X".into()], &[]),
            Err(ExecError::Reserved(_))
        ));
        // An allowed family name still does not override silently.
        assert!(matches!(
            run(&s(&[("HOME", "/evil")]), &["HOME".into()], &[]),
            Err(ExecError::Inherited(_))
        ));
    }

    /// `--file NAME=PATH_VAR`: the secret is no variable (its family does
    /// not matter), the path variable may replace an inherited one (with a
    /// notice) but never another secret's, a reserved name, or a second
    /// `--file`; an unknown secret gets a "did you mean".
    #[test]
    fn files_rules() {
        let f = |spec: &str| spec.parse::<FileVar>().unwrap();
        let inh = os(&[("HOME", "/h"), ("KUBECONFIG", "/home/me/.kube/config")]);
        let secrets = s(&[
            ("KUBECONFIG", "apiVersion: v1"),
            ("LD_PRELOAD", "not a path"),
            ("DB", "d"),
        ]);
        let run =
            |files: &[FileVar]| child_env(inh.clone(), "prod", &secrets, &[], &[], false, files);
        // LD_PRELOAD as a variable is refused; as a file it is only bytes.
        assert!(matches!(
            run(&[f("KUBECONFIG=KUBECONFIG")]),
            Err(ExecError::Refused { .. })
        ));
        let c = run(&[f("KUBECONFIG=KUBECONFIG"), f("LD_PRELOAD=PRELOAD_FILE")]).unwrap();
        assert!(!c.vars.contains_key(&OsString::from("LD_PRELOAD")));
        assert!(
            !c.vars.contains_key(&OsString::from("KUBECONFIG")),
            "the caller sets the path"
        );
        assert_eq!(c.vars[&OsString::from("DB")], OsString::from("d"));
        assert_eq!(c.replaced, vec!["KUBECONFIG".to_string()]);
        assert_eq!(c.files.len(), 2);
        let err = |files: &[FileVar]| run(files).unwrap_err().to_string();
        assert!(err(&[f("LD_PRELOAD=P"), f("KUBECONFI=K")]).contains("did you mean KUBECONFIG?"));
        assert!(
            err(&[f("LD_PRELOAD=P"), f("KUBECONFIG=DB")]).contains("DB is also a secret of prod")
        );
        assert!(err(&[f("LD_PRELOAD=P"), f("KUBECONFIG=P")]).contains("another --file"));
        assert!(err(&[f("LD_PRELOAD=P"), f("LD_PRELOAD=Q")]).contains("twice"));
        assert!(err(&[f("LD_PRELOAD=BYREIS_X")]).contains("byreis's own"));
        // A secret passed as a file frees its name for another's path.
        assert!(run(&[f("LD_PRELOAD=P"), f("KUBECONFIG=K"), f("DB=KUBECONFIG")]).is_ok());
        assert!(run(&[f("LD_PRELOAD=DB"), f("DB=D"), f("KUBECONFIG=K")]).is_ok());
        for bad in ["DB", "=X", "DB=", "DB=1X", "DB=a-b"] {
            assert!(bad.parse::<FileVar>().is_err(), "{bad}");
        }
    }
}
