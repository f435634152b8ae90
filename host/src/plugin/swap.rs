//! What a plugin swap may not change on its own: where a connector's
//! credentials go. A replaced `.wasm` declares its own base URLs and auth
//! schemes; for a connector whose config does not pin them, a new origin
//! or a new way of sending credentials would hand the account's secrets to
//! whoever wrote the new file. Such a swap is refused, saying why.
use crate::connector::Binding;
use std::collections::BTreeMap;

/// The auth schemes of a binding: name → how credentials are sent.
fn schemes(b: &Binding) -> BTreeMap<String, serde_json::Value> {
    b.manifest().auth_schemes.iter().map(|s| (s.name.clone(), serde_json::to_value(&s.method).unwrap_or_default())).collect()
}

fn origin(u: &url::Url) -> String {
    u.origin().ascii_serialization()
}

/// Why swapping `old` for `new` on one connector is refused, if it is.
pub fn refusal(old: &Binding, new: &Binding) -> Option<String> {
    let name = new.name();
    let config = &new.config;
    // A configured base_url is the pin: both bindings use it.
    if config.base_url.is_none() && origin(&old.base_url) != origin(&new.base_url) {
        return Some(format!(
            "connector {name}: the new plugin would send its credentials to {} instead of {}; set `connectors.{name}.base_url` to pin where they go",
            origin(&new.base_url),
            origin(&old.base_url)
        ));
    }
    let (before, after) = (schemes(old), schemes(new));
    match &config.auth_schemes {
        Some(pinned) => {
            if let Some(extra) = after.keys().find(|s| !pinned.contains(s)) {
                return Some(format!("connector {name}: the new plugin declares auth scheme `{extra}`, which `connectors.{name}.auth_schemes` does not list"));
            }
        }
        None if before != after => {
            let changed: Vec<&str> = before.keys().chain(after.keys()).filter(|k| before.get(*k) != after.get(*k)).map(String::as_str).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            return Some(format!(
                "connector {name}: the new plugin changes how credentials are sent (auth schemes: {}); list the schemes it may use in `connectors.{name}.auth_schemes` to allow it",
                changed.join(", ")
            ));
        }
        None => {}
    }
    None
}
