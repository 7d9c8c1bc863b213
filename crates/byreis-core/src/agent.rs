//! Signing through a running ssh-agent (`SSH_AUTH_SOCK`), so an admin key
//! can stay in the agent, on a hardware token behind it, or
//! passphrase-protected on disk. Speaks the two agent messages byreis needs
//! (draft-miller-ssh-agent): REQUEST_IDENTITIES and SIGN_REQUEST.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::keys::SigningPub;

const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("SSH_AUTH_SOCK is not set: start ssh-agent and `ssh-add` your signing key")]
    NoAgent,
    #[error("ssh-agent at {0}: {1}")]
    Io(String, std::io::Error),
    #[error("ssh-agent does not hold the signing key {0}; add it with `ssh-add`")]
    KeyNotInAgent(String),
    #[error("ssh-agent refused to sign (is the key locked, or did you decline a confirmation?)")]
    Refused,
    #[error("ssh-agent sent a malformed answer")]
    Malformed,
}

pub struct Agent {
    socket: PathBuf,
}

fn put_string(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
    buf.extend_from_slice(s);
}

fn take_u32(data: &mut &[u8]) -> Result<u32, AgentError> {
    if data.len() < 4 {
        return Err(AgentError::Malformed);
    }
    let (n, rest) = data.split_at(4);
    *data = rest;
    Ok(u32::from_be_bytes(n.try_into().expect("4 bytes")))
}

fn take_string<'a>(data: &mut &'a [u8]) -> Result<&'a [u8], AgentError> {
    let n = take_u32(data)? as usize;
    if data.len() < n {
        return Err(AgentError::Malformed);
    }
    let (s, rest) = data.split_at(n);
    *data = rest;
    Ok(s)
}

/// The SSH wire encoding of an ed25519 public key.
fn key_blob(key: &SigningPub) -> Vec<u8> {
    let mut b = Vec::with_capacity(51);
    put_string(&mut b, b"ssh-ed25519");
    put_string(&mut b, key.bytes());
    b
}

impl Agent {
    /// The agent listening on `socket` (`SSH_AUTH_SOCK`, as the CLI read it).
    pub fn at(socket: Option<&Path>) -> Result<Agent, AgentError> {
        match socket.filter(|s| !s.as_os_str().is_empty()) {
            Some(s) => Ok(Agent {
                socket: s.to_path_buf(),
            }),
            None => Err(AgentError::NoAgent),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn call(&self, request: &[u8]) -> Result<Vec<u8>, AgentError> {
        let io = |e| AgentError::Io(self.socket.display().to_string(), e);
        let mut s = UnixStream::connect(&self.socket).map_err(io)?;
        let mut framed = Vec::with_capacity(request.len() + 4);
        put_string(&mut framed, request);
        s.write_all(&framed).map_err(io)?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len).map_err(io)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > 256 * 1024 {
            return Err(AgentError::Malformed);
        }
        let mut answer = vec![0u8; len];
        s.read_exact(&mut answer).map_err(io)?;
        Ok(answer)
    }

    /// Does the agent hold `key`?
    pub fn has(&self, key: &SigningPub) -> Result<bool, AgentError> {
        let answer = self.call(&[REQUEST_IDENTITIES])?;
        let (&ty, mut data) = answer.split_first().ok_or(AgentError::Malformed)?;
        if ty != IDENTITIES_ANSWER {
            return Err(AgentError::Malformed);
        }
        let want = key_blob(key);
        let n = take_u32(&mut data)?;
        for _ in 0..n {
            let blob = take_string(&mut data)?;
            let _comment = take_string(&mut data)?;
            if blob == want.as_slice() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Asks the agent to sign `data` with `key`; returns the raw 64-byte
    /// ed25519 signature.
    pub fn sign(&self, key: &SigningPub, data: &[u8]) -> Result<[u8; 64], AgentError> {
        let mut req = vec![SIGN_REQUEST];
        put_string(&mut req, &key_blob(key));
        put_string(&mut req, data);
        req.extend_from_slice(&0u32.to_be_bytes());
        let answer = self.call(&req)?;
        let (&ty, mut rest) = answer.split_first().ok_or(AgentError::Malformed)?;
        if ty != SIGN_RESPONSE {
            return Err(AgentError::Refused);
        }
        let mut sig = take_string(&mut rest)?;
        if take_string(&mut sig)? != b"ssh-ed25519" {
            return Err(AgentError::Malformed);
        }
        take_string(&mut sig)?
            .try_into()
            .map_err(|_| AgentError::Malformed)
    }
}
