//! When each secret's value last changed in byreis, and by whom, from the
//! signed audit log only (issue 19): never from git dates, which anyone who
//! pushes can set. The audit records, per signed change and environment,
//! which names were added, changed and removed; the newest entry that added
//! or changed a name is its value's age. A name with no such entry (a log
//! that starts after the value was written) has no age, and says so.
//!
//! The words stay honest: this is when the value changed *in byreis*. byreis
//! cannot know whether the old value was revoked at its issuer.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::audit;

/// The signed change that last wrote a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValueAge {
    /// The audit entry's time (RFC 3339, UTC).
    pub changed: String,
    /// The member or admin whose signed change it was.
    pub by: String,
    /// The counter that change landed at.
    pub counter: u64,
    /// The audit action (`set`, `edit`, `import`, `approve-submission`, …).
    pub action: String,
}

fn names<'a>(d: &'a serde_json::Value, field: &str) -> impl Iterator<Item = &'a str> {
    d.get(field)
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
}

/// Every (environment, name) whose value a verified audit entry wrote, with
/// the newest such entry. One pass over the log.
pub fn value_ages(log: &[audit::Verified]) -> BTreeMap<(String, String), ValueAge> {
    let mut ages = BTreeMap::new();
    for v in log {
        let e = &v.entry;
        let details = e.details.value();
        let per_env: Vec<&serde_json::Value> = match details.get("envs").and_then(|x| x.as_array())
        {
            Some(list) => list.iter().collect(),
            None => vec![&details],
        };
        for d in per_env {
            let Some(env) = d.get("env").and_then(|x| x.as_str()) else {
                continue;
            };
            for name in names(d, "keys_removed") {
                ages.remove(&(env.to_string(), name.to_string()));
            }
            for name in names(d, "keys_added").chain(names(d, "keys_changed")) {
                ages.insert(
                    (env.to_string(), name.to_string()),
                    ValueAge {
                        changed: e.time.clone(),
                        by: e.actor.clone(),
                        counter: e.counter_to,
                        action: e.action.clone(),
                    },
                );
            }
        }
    }
    ages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, time: &str, actor: &str, details: serde_json::Value) -> audit::Verified {
        audit::Verified {
            entry: audit::Entry {
                seq,
                time: time.into(),
                project: "p".into(),
                actor: actor.into(),
                actor_key: String::new(),
                action: "set".into(),
                counter_from: seq - 1,
                counter_to: seq,
                roster_version: 1,
                prev: None,
                details: details.into(),
            },
            hash: String::new(),
            signer: 0,
        }
    }

    #[test]
    fn the_newest_signed_write_is_the_age_and_a_removal_forgets_it() {
        let log = [
            entry(
                1,
                "2026-01-01T00:00:00Z",
                "alice",
                serde_json::json!({"env": "prod", "keys_added": ["DB", "API"], "keys_changed": [], "keys_removed": []}),
            ),
            entry(
                2,
                "2026-02-01T00:00:00Z",
                "bob",
                serde_json::json!({"envs": [
                {"env": "prod", "keys_added": [], "keys_changed": ["DB"], "keys_removed": []},
                {"env": "dev", "keys_added": ["DB"], "keys_changed": [], "keys_removed": []}]}),
            ),
            entry(
                3,
                "2026-03-01T00:00:00Z",
                "alice",
                serde_json::json!({"env": "prod", "keys_added": [], "keys_changed": [], "keys_removed": ["API"]}),
            ),
            // Entries that name no values (a rotation) change no age.
            entry(
                4,
                "2026-04-01T00:00:00Z",
                "alice",
                serde_json::json!({"added": [], "removed": []}),
            ),
        ];
        let ages = value_ages(&log);
        let get = |e: &str, n: &str| {
            ages.get(&(e.to_string(), n.to_string()))
                .map(|a| (a.by.as_str(), a.counter))
        };
        assert_eq!(get("prod", "DB"), Some(("bob", 2)));
        assert_eq!(get("dev", "DB"), Some(("bob", 2)));
        assert_eq!(get("prod", "API"), None, "removed, then no age");
        assert_eq!(ages.len(), 2);
    }
}
