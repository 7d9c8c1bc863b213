//! The environment `exec` gives a child (invariant 10): secrets cannot
//! change how programs load code unless the signed manifest allows the name,
//! an inherited variable is never overridden silently, and byreis's own
//! variables and API tokens do not reach the child.

use std::collections::BTreeMap;
use std::ffi::OsString;

use crate::yaml::Secrets;

/// Names that change how programs find or load code.
const LOADER_NAMES: &[&str] = &[
    "PATH",
    "BASH_ENV",
    "ENV",
    "IFS",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "ZDOTDIR",
    "NODE_OPTIONS",
    "NODE_PATH",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "PYTHONINSPECT",
    "PYTHONUSERBASE",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "PERL5DB",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "GCONV_PATH",
    "LUA_PATH",
    "LUA_CPATH",
    "LUA_INIT",
    "TCLLIBPATH",
    "GIT_EXEC_PATH",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_CONFIG",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "SSH_ASKPASS",
    "HOME",
    "SHELL",
    "TMPDIR",
];
/// Prefixes of names that change how programs load code.
const LOADER_PREFIXES: &[&str] = &["LD_", "DYLD_", "GIT_CONFIG_", "MALLOC_", "GLIBC_"];
/// Inherited variables removed from the child's environment.
const TOKEN_NAMES: &[&str] = &[
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GH_ENTERPRISE_TOKEN",
    "GITHUB_ENTERPRISE_TOKEN",
];

/// Does `name` change how programs load code?
pub fn loads_code(name: &str) -> bool {
    LOADER_NAMES.contains(&name) || LOADER_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("secret {0} would change how the child loads code; it is refused unless the signed manifest lists it in exec_allow")]
    LoaderName(String),
    #[error("secret names starting with BYREIS_ are reserved ({0})")]
    Reserved(String),
    #[error("the inherited variable {0} would be overridden by a secret of the same name; unset it, or pass --override {0} (or --override-all) to let the secret win")]
    Inherited(String),
}

/// Builds the child's environment from `inherited` and `secrets`.
/// Returns the environment and the names where a secret replaced an
/// inherited value (allowed by `overrides`), for a notice on stderr.
pub fn child_env(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    secrets: &Secrets,
    exec_allow: &[String],
    overrides: &[String],
    override_all: bool,
) -> Result<(BTreeMap<OsString, OsString>, Vec<String>), ExecError> {
    let mut env: BTreeMap<OsString, OsString> = inherited
        .into_iter()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            !k.starts_with("BYREIS_") && !TOKEN_NAMES.contains(&k.as_ref())
        })
        .collect();
    let mut replaced = Vec::new();
    for (name, value) in secrets {
        if name.starts_with("BYREIS_") {
            return Err(ExecError::Reserved(name.clone()));
        }
        if loads_code(name) && !exec_allow.contains(name) {
            return Err(ExecError::LoaderName(name.clone()));
        }
        let key = OsString::from(name);
        if env.contains_key(&key) {
            if !(override_all || overrides.contains(name)) {
                return Err(ExecError::Inherited(name.clone()));
            }
            replaced.push(name.clone());
        }
        env.insert(key, OsString::from(value.expose()));
    }
    Ok((env, replaced))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::yaml::secrets_of as s;
    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn rules() {
        let inh = os(&[
            ("HOME", "/h"),
            ("BYREIS_IDENTITY", "x"),
            ("GH_TOKEN", "t"),
            ("DB", "old"),
        ]);
        let (env, _) = child_env(inh.clone(), &s(&[("API", "1")]), &[], &[], false).unwrap();
        assert!(env.contains_key(&OsString::from("API")));
        assert!(!env.contains_key(&OsString::from("BYREIS_IDENTITY")));
        assert!(!env.contains_key(&OsString::from("GH_TOKEN")));
        assert!(matches!(
            child_env(inh.clone(), &s(&[("LD_PRELOAD", "x")]), &[], &[], false),
            Err(ExecError::LoaderName(_))
        ));
        assert!(child_env(
            inh.clone(),
            &s(&[("LD_PRELOAD", "x")]),
            &["LD_PRELOAD".into()],
            &[],
            false
        )
        .is_ok());
        assert!(matches!(
            child_env(inh.clone(), &s(&[("PATH", "x")]), &[], &[], false),
            Err(ExecError::LoaderName(_))
        ));
        assert!(matches!(
            child_env(inh.clone(), &s(&[("DB", "new")]), &[], &[], false),
            Err(ExecError::Inherited(_))
        ));
        let (env, replaced) = child_env(
            inh.clone(),
            &s(&[("DB", "new")]),
            &[],
            &["DB".into()],
            false,
        )
        .unwrap();
        assert_eq!(env[&OsString::from("DB")], OsString::from("new"));
        assert_eq!(replaced, vec!["DB".to_string()]);
        assert!(matches!(
            child_env(inh, &s(&[("BYREIS_X", "1")]), &[], &[], false),
            Err(ExecError::Reserved(_))
        ));
    }
}
