//! A rate policy as the host enforces it, and the checks that refuse an
//! impossible one when its plugin loads.
use crate::manifest::{HeaderMeaning, Manifest, RateHeader, Window};
use std::collections::BTreeSet;

/// When a vendor refuses without saying for how long and the plugin
/// declares no penalty: back off, doubling, up to a minute.
pub const DEFAULT_LADDER_MS: &[i64] = &[1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000];

/// A policy with its effective windows (manifest, or config override).
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub windows: Vec<Window>,
    pub headers: Vec<RateHeader>,
    /// What a refusal without a stated wait costs, rung by rung.
    pub penalty_ms: Vec<i64>,
}

/// Why a manifest's rate policies cannot be enforced, every reason. Every
/// operation must draw from some policy: a plugin names one for "every
/// other operation" (an empty operation list), so a 429 anywhere has a
/// budget to pause.
pub fn problems(manifest: &Manifest) -> Vec<String> {
    let name = &manifest.name;
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for p in &manifest.rate_policies {
        let at = format!("plugin {name}, rate policy `{}`", p.name);
        if !seen.insert(p.name.as_str()) {
            out.push(format!("{at}: declared twice"));
        }
        for w in &p.windows {
            if w.limit == 0 || w.seconds == 0 {
                out.push(format!("{at}: window {{limit = {}, seconds = {}}} allows nothing; both must be above 0", w.limit, w.seconds));
            }
        }
        if let Some(s) = p.penalty_seconds.iter().find(|s| **s == 0) {
            out.push(format!("{at}: penalty of {s} seconds; every rung of the ladder must be above 0"));
        }
        for h in &p.headers {
            if !p.windows.iter().any(|w| w.seconds == h.window_seconds) {
                out.push(format!("{at}: header {} describes a {}-second window the policy does not have", h.name, h.window_seconds));
            }
            if matches!(h.meaning, HeaderMeaning::ResetAt | HeaderMeaning::ResetSeconds)
                && !p.headers.iter().any(|r| r.meaning == HeaderMeaning::Remaining && r.window_seconds == h.window_seconds)
            {
                out.push(format!("{at}: reset header {} has no remaining header for its window, so it can never be read", h.name));
            }
        }
        for op in &p.operations {
            if manifest.operation(op).is_none() {
                out.push(format!("{at}: names operation `{op}`, which the plugin does not have"));
            }
        }
    }
    let uncovered: Vec<_> = manifest.operations.iter().filter(|o| !manifest.rate_policies.iter().any(|p| p.applies_to(&o.name))).map(|o| o.name.as_str()).collect();
    if !uncovered.is_empty() {
        out.push(format!(
            "plugin {name}: operation(s) {} draw from no rate policy; declare one with an empty operation list for every other operation (windows may be empty if the vendor has no limit)",
            uncovered.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Method, Operation, RatePolicy};

    fn manifest(policies: Vec<RatePolicy>) -> Manifest {
        let op = |n: &str| Operation {
            name: n.into(),
            description: String::new(),
            method: Method::Get,
            path: "/".into(),
            input_schema: serde_json::json!({}),
            output_schema: serde_json::json!({}),
            idempotent: true,
            paged: false,
        };
        Manifest {
            name: "acme".into(),
            version: "1".into(),
            vendor: "Acme".into(),
            description: String::new(),
            base_urls: vec![],
            auth_schemes: vec![],
            rate_policies: policies,
            operations: vec![op("list"), op("get")],
            webhook_topics: vec![],
        }
    }

    fn policy(name: &str, ops: &[&str], windows: Vec<Window>) -> RatePolicy {
        RatePolicy { name: name.into(), description: String::new(), operations: ops.iter().map(|s| s.to_string()).collect(), windows, headers: vec![], penalty_seconds: vec![] }
    }

    fn first(m: &Manifest) -> Result<(), String> {
        problems(m).into_iter().next().map_or(Ok(()), Err)
    }

    #[test]
    fn impossible_policies_are_refused_naming_plugin_and_policy() {
        let zero = manifest(vec![policy("general", &[], vec![Window { limit: 0, seconds: 60 }])]);
        let e = first(&zero).unwrap_err();
        assert!(e.contains("plugin acme, rate policy `general`") && e.contains("allows nothing"), "{e}");

        let uncovered = manifest(vec![policy("lists", &["list"], vec![Window { limit: 5, seconds: 1 }])]);
        assert!(first(&uncovered).unwrap_err().contains("operation(s) get draw from no rate policy"));

        let unknown = manifest(vec![policy("general", &[], vec![]), policy("x", &["nope"], vec![])]);
        assert!(first(&unknown).unwrap_err().contains("names operation `nope`"));

        let twice = manifest(vec![policy("general", &[], vec![]), policy("general", &[], vec![])]);
        assert!(first(&twice).unwrap_err().contains("declared twice"));

        let mut zero_penalty = policy("general", &[], vec![]);
        zero_penalty.penalty_seconds = vec![60, 0];
        assert!(first(&manifest(vec![zero_penalty])).unwrap_err().contains("penalty of 0 seconds"));

        let ok = manifest(vec![policy("lists", &["list"], vec![Window { limit: 5, seconds: 1 }]), policy("general", &[], vec![])]);
        first(&ok).unwrap();

        // All of them at once, not the first only.
        let mut both = policy("general", &["nope"], vec![Window { limit: 0, seconds: 0 }]);
        both.penalty_seconds = vec![0];
        assert_eq!(problems(&manifest(vec![both])).len(), 4);
    }
}
