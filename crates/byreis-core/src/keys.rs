//! Keys on this machine: the age identity that decrypts, the ed25519 key
//! that signs, and the public forms others see.
//!
//! Key files are created 0600 in a 0700 `$BYREIS_HOME`, never overwritten,
//! and refused when group or others can read them.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use crate::names::{self, Kind};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{path} is readable by group or others (mode {mode:o}); fix it with: chmod 600 {path}"
    )]
    Permissions { path: String, mode: u32 },
    #[error("{0} already exists; byreis never overwrites a key (move it away first if you really mean to replace it)")]
    Exists(String),
    #[error("no age identity: run `byreis keygen --name NAME`, or set BYREIS_IDENTITY (the key itself) or BYREIS_IDENTITY_FILE")]
    NoIdentity,
    #[error("no signing key: run `byreis keygen --name NAME` (or `--signing-key PATH` to adopt an existing ssh-ed25519 key)")]
    NoSigningKey,
    #[error(
        "{0}: no AGE-SECRET-KEY-1 line found; the file must be in the format age-keygen writes"
    )]
    BadIdentity(String),
    #[error("{what}: {detail}")]
    BadKey { what: String, detail: String },
    #[error("{0}")]
    Name(#[from] names::NameError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl KeyError {
    /// The refusal code this error is reported with.
    pub fn code(&self) -> crate::diag::Refusal {
        match self {
            KeyError::Permissions { .. } => crate::diag::Refusal::KeyPermissions,
            KeyError::Exists(_) => crate::diag::Refusal::AlreadyExists,
            KeyError::NoIdentity | KeyError::NoSigningKey => crate::diag::Refusal::KeyMissing,
            KeyError::BadIdentity(_) | KeyError::BadKey { .. } => crate::diag::Refusal::BadKey,
            KeyError::Name(e) => e.code(),
            KeyError::Io { .. } => crate::diag::Refusal::IoFailed,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where this run's keys come from, as the user's environment says:
/// `BYREIS_IDENTITY`, `BYREIS_IDENTITY_FILE`, `SSH_AUTH_SOCK` and whether a
/// passphrase may be asked for. The CLI builds it; the core reads no
/// environment variable.
#[derive(Clone, Default)]
pub struct KeySources {
    /// The age identity itself (`BYREIS_IDENTITY`).
    pub identity: Option<Zeroizing<String>>,
    /// A file holding the age identity (`BYREIS_IDENTITY_FILE`).
    pub identity_file: Option<PathBuf>,
    /// The ssh-agent socket (`SSH_AUTH_SOCK`).
    pub agent_socket: Option<PathBuf>,
    /// Asks the person at the terminal for a key's passphrase; `None` when
    /// nobody can answer (no TTY, or `CI` set).
    pub ask_passphrase: Option<AskPassphrase>,
}

/// Asks for the passphrase of the key file named.
pub type AskPassphrase = fn(&Path) -> Result<Zeroizing<String>, String>;

impl std::fmt::Debug for KeySources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySources")
            .field("identity", &self.identity.as_ref().map(|_| "[redacted]"))
            .field("identity_file", &self.identity_file)
            .field("agent_socket", &self.agent_socket)
            .field("ask_passphrase", &self.ask_passphrase.is_some())
            .finish()
    }
}

/// `$BYREIS_HOME` (by default `~/.config/byreis`) and the run's other key
/// sources.
#[derive(Debug, Clone)]
pub struct Home {
    pub dir: PathBuf,
    pub keys: KeySources,
}

impl Home {
    pub fn new(dir: PathBuf, keys: KeySources) -> Home {
        Home { dir, keys }
    }

    /// Creates the directory (0700) if needed.
    pub fn ensure(&self) -> Result<(), KeyError> {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)).map_err(io_err(&self.dir))
    }

    pub fn identity_path(&self) -> PathBuf {
        self.dir.join("identity.txt")
    }
    pub fn signing_key_path(&self) -> PathBuf {
        self.dir.join("signing_key")
    }
    pub fn profile_path(&self) -> PathBuf {
        self.dir.join("profile.yaml")
    }
}

/// Who this machine's user is: written by `keygen`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Absolute path of the OpenSSH ed25519 private key.
    pub signing_key: PathBuf,
}

impl Profile {
    pub fn load(home: &Home) -> Result<Option<Profile>, KeyError> {
        let path = home.profile_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let p: Profile = crate::yaml::from_untrusted(&text).map_err(|e| KeyError::BadKey {
            what: path.display().to_string(),
            detail: e.to_string(),
        })?;
        names::check(Kind::Member, &p.name)?;
        Ok(Some(p))
    }
}

/// Refuses a key file that group or others can read.
pub fn check_private_mode(path: &Path) -> Result<(), KeyError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

/// Writes `bytes` to a new file with `mode`; refuses to replace anything.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists(path.display().to_string())
            } else {
                io_err(path)(e)
            }
        })?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// The type of an age recipient byreis accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientKind {
    /// Native age X25519 (`age1…`).
    X25519,
    /// An `ssh-ed25519` public key (age's SSH recipient type).
    SshEd25519,
}

/// An age recipient, compared by its type and 32 key bytes (never as a
/// string: two spellings of one key are the same recipient).
#[derive(Clone, PartialEq, Eq)]
pub struct AgeRecipient {
    kind: RecipientKind,
    bytes: [u8; 32],
    canonical: String,
}

impl std::fmt::Debug for AgeRecipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl AgeRecipient {
    /// Parses `age1…` or `ssh-ed25519 AAAA… [comment]`.
    pub fn parse(s: &str) -> Result<AgeRecipient, KeyError> {
        let bad = |detail: &str| KeyError::BadKey {
            what: format!("recipient {}", shown_key(s)),
            detail: detail.to_string(),
        };
        let t = s.trim();
        if t.starts_with("ssh-") {
            let key = PublicKey::from_openssh(t).map_err(|e| bad(&e.to_string()))?;
            let Some(k) = key.key_data().ed25519() else {
                return Err(bad("only ssh-ed25519 SSH keys are accepted"));
            };
            let bytes = *AsRef::<[u8; 32]>::as_ref(k);
            let canonical = SigningPub::from_bytes(bytes).to_openssh();
            return Ok(AgeRecipient {
                kind: RecipientKind::SshEd25519,
                bytes,
                canonical,
            });
        }
        let parsed = age::x25519::Recipient::from_str(t).map_err(|e| {
            bad(&format!(
                "{e} (expected an age1… X25519 key or an ssh-ed25519 public key)"
            ))
        })?;
        let canonical = parsed.to_string();
        let (_, data) = bech32::decode(&canonical).map_err(|e| bad(&e.to_string()))?;
        let bytes: [u8; 32] = data
            .try_into()
            .map_err(|_| bad("the key is not 32 bytes"))?;
        Ok(AgeRecipient {
            kind: RecipientKind::X25519,
            bytes,
            canonical,
        })
    }

    pub fn kind(&self) -> RecipientKind {
        self.kind
    }
    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
    /// The canonical spelling (`age1…` lower case, or `ssh-ed25519 AAAA…`
    /// without a comment).
    pub fn as_str(&self) -> &str {
        &self.canonical
    }
    /// The age crate's recipient for encryption.
    pub fn to_age(&self) -> Box<dyn age::Recipient + Send + Sync> {
        match self.kind {
            RecipientKind::X25519 => Box::new(
                age::x25519::Recipient::from_str(&self.canonical).expect("canonical form parses"),
            ),
            RecipientKind::SshEd25519 => Box::new(
                age::ssh::Recipient::from_str(&self.canonical).expect("canonical form parses"),
            ),
        }
    }
    /// Typeable fingerprint of the key bytes.
    pub fn fingerprint(&self) -> String {
        grouped_fingerprint(&self.bytes)
    }
}

/// What an error may say of text given as a public key: the text itself
/// only when it looks like one (`age1…`, `ssh-…`), never a private key
/// (issue 17: a private key file given as `--signing-key` was echoed).
pub fn shown_key(s: &str) -> String {
    let t = s.trim();
    if t.contains("PRIVATE KEY") || t.to_ascii_uppercase().contains("AGE-SECRET-KEY-") {
        return "(a private key, not shown: give the public key instead, the .pub file or `ssh-keygen -y -f FILE` for ssh, `age-keygen -y FILE` for age)".into();
    }
    if (t.starts_with("age1") || t.starts_with("ssh-")) && !t.contains('\n') {
        return names::quoted(t);
    }
    format!(
        "({} characters, not shown: not an `age1…` or `ssh-ed25519 AAAA…` public key)",
        t.chars().count()
    )
}

/// An ssh-ed25519 public key used to verify byreis signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningPub {
    bytes: [u8; 32],
}

impl std::fmt::Debug for SigningPub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.fingerprint())
    }
}

impl SigningPub {
    /// Parses `ssh-ed25519 AAAA… [comment]`.
    pub fn parse(s: &str) -> Result<SigningPub, KeyError> {
        let key = PublicKey::from_openssh(s.trim()).map_err(|e| KeyError::BadKey {
            what: format!("signing key {}", shown_key(s)),
            detail: format!("{e} (expected an `ssh-ed25519 AAAA…` public key)"),
        })?;
        Self::from_ssh(&key)
    }

    pub fn from_ssh(key: &PublicKey) -> Result<SigningPub, KeyError> {
        match key.key_data().ed25519() {
            Some(k) => Ok(SigningPub {
                bytes: *AsRef::<[u8; 32]>::as_ref(k),
            }),
            None => Err(KeyError::BadKey {
                what: "signing key".into(),
                detail: format!(
                    "{} keys are not supported; byreis signs with ssh-ed25519",
                    key.algorithm()
                ),
            }),
        }
    }

    pub fn from_bytes(bytes: [u8; 32]) -> SigningPub {
        SigningPub { bytes }
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    fn ssh(&self) -> PublicKey {
        PublicKey::new(
            ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(self.bytes)),
            "",
        )
    }

    /// `ssh-ed25519 AAAA…` without a comment.
    pub fn to_openssh(&self) -> String {
        self.ssh().to_openssh().expect("ed25519 key encodes")
    }

    /// `SHA256:…`, the form `ssh-keygen -l` prints.
    pub fn fingerprint(&self) -> String {
        self.ssh().fingerprint(HashAlg::Sha256).to_string()
    }
}

/// SHA-256 of `bytes`, first 160 bits in lower-case base32, in 8 groups of
/// four: `abcd-efgh-…`. Short enough to type, long enough that nobody can
/// make another key or roster with the same fingerprint.
pub fn grouped_fingerprint(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let b32 = base32(&digest[..20]);
    b32.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect::<Vec<_>>()
        .join("-")
}

/// Normalises a typed fingerprint: lower case, no spaces, dashes or colons.
pub fn normalise_fingerprint(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '-' && *c != ':')
        .flat_map(char::to_lowercase)
        .collect()
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

enum IdentityInner {
    X25519(age::x25519::Identity),
    Ssh(Box<age::ssh::Identity>),
}

/// The age identity that decrypts for this user: an age X25519 identity
/// (as age-keygen writes it) or an unencrypted OpenSSH ed25519 key.
pub struct AgeIdentity {
    inner: IdentityInner,
    recipient: AgeRecipient,
    pub source: String,
}

impl std::fmt::Debug for AgeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AgeIdentity({}, [redacted])", self.source)
    }
}

impl AgeIdentity {
    pub fn generate() -> AgeIdentity {
        Self::from_x25519(age::x25519::Identity::generate(), "generated")
    }

    fn from_x25519(id: age::x25519::Identity, source: &str) -> AgeIdentity {
        let recipient = AgeRecipient::parse(&id.to_public().to_string()).expect("own key parses");
        AgeIdentity {
            inner: IdentityInner::X25519(id),
            recipient,
            source: source.to_string(),
        }
    }

    /// Parses identity-file text: an age-keygen file (comments allowed; the
    /// first key is used) or an unencrypted OpenSSH ed25519 private key.
    pub fn parse(text: &str, source: &str) -> Result<AgeIdentity, KeyError> {
        let bad = |detail: String| KeyError::BadKey {
            what: source.to_string(),
            detail,
        };
        if text
            .trim_start()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
        {
            let key =
                PrivateKey::from_openssh(text.trim().as_bytes()).map_err(|e| bad(e.to_string()))?;
            if key.is_encrypted() {
                return Err(bad("passphrase-protected SSH keys cannot be used as identities yet; use an age identity".into()));
            }
            let public = SigningPub::from_ssh(key.public_key())
                .map_err(|_| bad("only ssh-ed25519 keys can be identities".into()))?;
            let recipient = AgeRecipient::parse(&public.to_openssh())?;
            let id = age::ssh::Identity::from_buffer(text.as_bytes(), Some(source.to_string()))
                .map_err(|e| bad(e.to_string()))?;
            if !matches!(id, age::ssh::Identity::Unencrypted(_)) {
                return Err(bad("unsupported SSH key".into()));
            }
            return Ok(AgeIdentity {
                inner: IdentityInner::Ssh(Box::new(id)),
                recipient,
                source: source.to_string(),
            });
        }
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("AGE-SECRET-KEY-1") {
                let inner =
                    age::x25519::Identity::from_str(line).map_err(|e| bad(e.to_string()))?;
                return Ok(Self::from_x25519(inner, source));
            }
        }
        Err(KeyError::BadIdentity(source.to_string()))
    }

    /// From `BYREIS_IDENTITY`, `BYREIS_IDENTITY_FILE`, or `$BYREIS_HOME/identity.txt`.
    pub fn load(home: &Home) -> Result<AgeIdentity, KeyError> {
        if let Some(text) = &home.keys.identity {
            return Self::parse(text, "BYREIS_IDENTITY");
        }
        let path = match &home.keys.identity_file {
            Some(p) => p.clone(),
            None => {
                let p = home.identity_path();
                if !p.exists() {
                    return Err(KeyError::NoIdentity);
                }
                p
            }
        };
        check_private_mode(&path)?;
        let text = Zeroizing::new(fs::read_to_string(&path).map_err(io_err(&path))?);
        Self::parse(&text, &path.display().to_string())
    }

    pub fn recipient(&self) -> AgeRecipient {
        self.recipient.clone()
    }

    /// The age crate's identity, for decryption.
    pub fn age(&self) -> &dyn age::Identity {
        match &self.inner {
            IdentityInner::X25519(i) => i,
            IdentityInner::Ssh(i) => i.as_ref(),
        }
    }

    /// The static X25519 agreement of this identity with `other`, when both
    /// are X25519 keys (`None` for ssh-ed25519 on either side, or a
    /// low-order point): a secret only this identity's holder and
    /// `other`'s share, used to authenticate a member's submission to the
    /// admins it is encrypted to (ADR 0014).
    pub fn x25519_agree(&self, other: &AgeRecipient) -> Option<Zeroizing<[u8; 32]>> {
        let IdentityInner::X25519(id) = &self.inner else {
            return None;
        };
        if other.kind() != RecipientKind::X25519 {
            return None;
        }
        let text = id.to_string();
        let (_, data) = bech32::decode(text.expose_secret()).ok()?;
        let data = Zeroizing::new(data);
        let mut scalar: [u8; 32] = data.as_slice().try_into().ok()?;
        let secret = x25519_dalek::StaticSecret::from(scalar);
        zeroize::Zeroize::zeroize(&mut scalar);
        let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(*other.bytes()));
        shared
            .was_contributory()
            .then(|| Zeroizing::new(*shared.as_bytes()))
    }

    /// The identity file as age-keygen writes it (X25519 identities only).
    pub fn to_file_text(&self) -> Zeroizing<String> {
        let IdentityInner::X25519(id) = &self.inner else {
            panic!("to_file_text is only called on generated X25519 identities");
        };
        let secret = id.to_string();
        Zeroizing::new(format!(
            "# created: {}\n# public key: {}\n{}\n",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
            self.recipient.as_str(),
            secret.expose_secret()
        ))
    }
}

enum SignerKind {
    /// An unencrypted (or decrypted) OpenSSH private key in memory.
    File(Box<PrivateKey>),
    /// The key stays in ssh-agent; byreis asks it to sign.
    Agent(crate::agent::Agent),
}

/// The ed25519 key that signs manifests, records and commits: a private
/// key file, or a key held by ssh-agent.
pub struct Signer {
    kind: SignerKind,
    pub public: SigningPub,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.kind {
            SignerKind::File(_) => "file",
            SignerKind::Agent(_) => "ssh-agent",
        };
        write!(
            f,
            "Signer({}, {how}, [redacted])",
            self.public.fingerprint()
        )
    }
}

impl Signer {
    pub fn generate(comment: &str) -> Result<Signer, KeyError> {
        let mut key =
            PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
                .map_err(|e| KeyError::BadKey {
                    what: "new signing key".into(),
                    detail: e.to_string(),
                })?;
        key.set_comment(comment);
        Self::from_private(key)
    }

    fn from_private(key: PrivateKey) -> Result<Signer, KeyError> {
        let public = SigningPub::from_ssh(key.public_key())?;
        Ok(Signer {
            kind: SignerKind::File(Box::new(key)),
            public,
        })
    }

    fn from_agent(public: SigningPub, path: &Path, keys: &KeySources) -> Result<Signer, KeyError> {
        let agent_err = |e: crate::agent::AgentError| KeyError::BadKey {
            what: path.display().to_string(),
            detail: e.to_string(),
        };
        let agent = crate::agent::Agent::at(keys.agent_socket.as_deref()).map_err(agent_err)?;
        if !agent.has(&public).map_err(agent_err)? {
            return Err(agent_err(crate::agent::AgentError::KeyNotInAgent(
                public.fingerprint(),
            )));
        }
        Ok(Signer {
            kind: SignerKind::Agent(agent),
            public,
        })
    }

    /// Loads the signing key at `path`:
    /// - a public key file (`ssh-ed25519 AAAA…`): signs through ssh-agent;
    /// - an unencrypted OpenSSH private key (must be 0600 or stricter);
    /// - a passphrase-protected one: through ssh-agent if it holds the key,
    ///   else by asking for the passphrase on a terminal.
    pub fn load(path: &Path, keys: &KeySources) -> Result<Signer, KeyError> {
        let text = Zeroizing::new(fs::read_to_string(path).map_err(io_err(path))?);
        if text.trim_start().starts_with("ssh-") {
            let public = SigningPub::parse(text.trim())?;
            return Self::from_agent(public, path, keys);
        }
        check_private_mode(path)?;
        let key = PrivateKey::from_openssh(text.as_bytes()).map_err(|e| KeyError::BadKey {
            what: path.display().to_string(),
            detail: format!("{e} (expected an OpenSSH private key)"),
        })?;
        if !key.is_encrypted() {
            return Self::from_private(key);
        }
        let public = SigningPub::from_ssh(key.public_key())?;
        if let Ok(signer) = Self::from_agent(public, path, keys) {
            return Ok(signer);
        }
        let Some(ask) = keys.ask_passphrase else {
            return Err(KeyError::BadKey {
                what: path.display().to_string(),
                detail: "the key is passphrase-protected and this run cannot ask for it: add it to ssh-agent (`ssh-add PATH`) so byreis signs through the agent".into(),
            });
        };
        let pass = ask(path).map_err(|detail| KeyError::BadKey {
            what: path.display().to_string(),
            detail,
        })?;
        let key = key.decrypt(pass.as_bytes()).map_err(|_| KeyError::BadKey {
            what: path.display().to_string(),
            detail: "wrong passphrase".into(),
        })?;
        Self::from_private(key)
    }

    /// The signing key named by the profile.
    pub fn load_for(profile: &Profile, home: &Home) -> Result<Signer, KeyError> {
        if !profile.signing_key.exists() {
            return Err(KeyError::NoSigningKey);
        }
        Self::load(&profile.signing_key, &home.keys)
    }

    pub fn to_openssh_private(&self) -> Result<Zeroizing<String>, KeyError> {
        let SignerKind::File(key) = &self.kind else {
            return Err(KeyError::BadKey {
                what: "signing key".into(),
                detail: "the key is held by ssh-agent".into(),
            });
        };
        key.to_openssh(LineEnding::LF)
            .map_err(|e| KeyError::BadKey {
                what: "signing key".into(),
                detail: e.to_string(),
            })
    }

    pub fn public_openssh_with_comment(&self) -> String {
        match &self.kind {
            SignerKind::File(key) => key.public_key().to_openssh().expect("ed25519 key encodes"),
            SignerKind::Agent(_) => self.public.to_openssh(),
        }
    }

    /// Signs `msg` in `namespace` (SSHSIG, SHA-512).
    /// Signs SSHSIG signed data built elsewhere (from a message's digest,
    /// [`crate::sshsig::signed_data_sha512`]) and wraps it as a sha512
    /// SSHSIG.
    pub(crate) fn sign_sshsig_data(
        &self,
        namespace: &str,
        data: &[u8],
    ) -> Result<ssh_key::SshSig, String> {
        let raw: Vec<u8> = match &self.kind {
            SignerKind::File(key) => {
                let Some(kp) = key.key_data().ed25519() else {
                    return Err("not an ed25519 key".into());
                };
                let secret = Zeroizing::new(kp.private.to_bytes());
                let sk = ed25519_dalek::SigningKey::from_bytes(&secret);
                use ed25519_dalek::Signer as _;
                sk.sign(data).to_bytes().to_vec()
            }
            SignerKind::Agent(agent) => agent
                .sign(&self.public, data)
                .map_err(|e| e.to_string())?
                .to_vec(),
        };
        let sig =
            ssh_key::Signature::new(ssh_key::Algorithm::Ed25519, raw).map_err(|e| e.to_string())?;
        ssh_key::SshSig::new(
            ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(
                *self.public.bytes(),
            )),
            namespace,
            HashAlg::Sha512,
            sig,
        )
        .map_err(|e| e.to_string())
    }

    pub(crate) fn sign_sshsig(
        &self,
        namespace: &str,
        msg: &[u8],
    ) -> Result<ssh_key::SshSig, String> {
        match &self.kind {
            SignerKind::File(key) => key
                .sign(namespace, HashAlg::Sha512, msg)
                .map_err(|e| e.to_string()),
            SignerKind::Agent(_) => {
                let data = ssh_key::SshSig::signed_data(namespace, HashAlg::Sha512, msg)
                    .map_err(|e| e.to_string())?;
                self.sign_sshsig_data(namespace, &data)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_known() {
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32(b""), "");
        let fp = grouped_fingerprint(b"x");
        assert_eq!(fp.len(), 8 * 4 + 7);
        assert_eq!(
            normalise_fingerprint(&fp.to_uppercase().replace('-', " ")),
            fp.replace('-', "")
        );
    }

    #[test]
    fn recipients_compare_by_bytes() {
        let id = AgeIdentity::generate();
        let r = id.recipient();
        let upper = AgeRecipient::parse(&r.as_str().to_uppercase()).unwrap();
        assert_eq!(r, upper);
        assert!(AgeRecipient::parse("age1notakey").is_err());
        let text = id.to_file_text();
        let again = AgeIdentity::parse(&text, "t").unwrap();
        assert_eq!(again.recipient(), r);
    }

    #[test]
    fn signing_key_round_trip() {
        let s = Signer::generate("t").unwrap();
        let text = s.to_openssh_private().unwrap();
        let back =
            Signer::from_private(PrivateKey::from_openssh(text.as_bytes()).unwrap()).unwrap();
        assert_eq!(back.public, s.public);
        let p = SigningPub::parse(&s.public.to_openssh()).unwrap();
        assert_eq!(p, s.public);
        assert!(p.fingerprint().starts_with("SHA256:"));
    }
}

#[cfg(test)]
mod shown_key_tests {
    use super::*;

    #[test]
    fn private_keys_are_never_shown() {
        let ssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9u\n-----END OPENSSH PRIVATE KEY-----\n";
        let age = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
        for k in [ssh, age] {
            for e in [
                SigningPub::parse(k).unwrap_err().to_string(),
                AgeRecipient::parse(k).unwrap_err().to_string(),
            ] {
                assert!(e.contains("a private key, not shown"), "{e}");
                assert!(!e.contains("b3Blbn") && !e.contains("QQQQ"), "{e}");
            }
        }
        let e = SigningPub::parse("sOmEtHiNg-secret")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret") && e.contains("not shown"), "{e}");
    }
}
