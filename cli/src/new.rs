//! `spoke new NAME --lang rust|python|js`: a standalone connector project
//! that builds into a loadable component with one command. Every source
//! file comes from the repository's own examples (embedded with
//! `include_str!`), so the scaffold cannot drift from what CI builds and
//! tests: examples/plugin-template (Rust), examples/python-plugin and
//! examples/js-plugin, and the WIT of wit/v0.1.0.
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The language of a new connector.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

/// componentize-py and componentize-js versions the generated projects pin;
/// the same as `cargo xtask examples` installs (checked by a test below).
pub const COMPONENTIZE_PY: &str = "0.25.1";
pub const COMPONENTIZE_JS: &str = "0.23.0";

/// The contract, bundled so a project builds outside this repository.
const WIT: &[(&str, &str)] = &[
    ("auth.wit", include_str!("../../wit/v0.1.0/auth.wit")),
    ("config.wit", include_str!("../../wit/v0.1.0/config.wit")),
    ("events.wit", include_str!("../../wit/v0.1.0/events.wit")),
    ("http.wit", include_str!("../../wit/v0.1.0/http.wit")),
    ("kv.wit", include_str!("../../wit/v0.1.0/kv.wit")),
    ("log.wit", include_str!("../../wit/v0.1.0/log.wit")),
    ("manifest.wit", include_str!("../../wit/v0.1.0/manifest.wit")),
    ("rate-limit.wit", include_str!("../../wit/v0.1.0/rate-limit.wit")),
    ("types.wit", include_str!("../../wit/v0.1.0/types.wit")),
    ("world.wit", include_str!("../../wit/v0.1.0/world.wit")),
];

const PY_APP: &str = include_str!("../../examples/python-plugin/app.py");
const PY_TEST: &str = include_str!("../../examples/python-plugin/test_app.py");
const PY_NAME_LINE: &str = "NAME = \"pyexample\"";

const JS_APP: &str = include_str!("../../examples/js-plugin/app.js");
const JS_NAME_LINE: &str = "const NAME = 'jsexample';";
const JS_TEST: &[(&str, &str)] = &[
    ("test/app.test.mjs", include_str!("../../examples/js-plugin/test/app.test.mjs")),
    ("test/host.mjs", include_str!("../../examples/js-plugin/test/host.mjs")),
    ("test/hooks.mjs", include_str!("../../examples/js-plugin/test/hooks.mjs")),
    ("test/register.mjs", include_str!("../../examples/js-plugin/test/register.mjs")),
];

const RUST_LIB: &str = include_str!("../../examples/plugin-template/src/lib.rs");
/// Where the pdk is when none is found locally: edit the generated
/// Cargo.toml (see its README) until the pdk is published.
const PDK_GIT_PLACEHOLDER: &str = "https://github.com/YOUR-ORG/spoke";

/// Write the project; returns its folder.
pub fn run(name: &str, lang: Lang, dir: Option<PathBuf>, pdk: Option<PathBuf>) -> Result<PathBuf> {
    check_name(name)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        let mut entries = std::fs::read_dir(&dir).with_context(|| format!("{} exists and is not a readable folder", dir.display()))?;
        if entries.next().is_some() {
            bail!("{} exists and is not empty: choose another --dir or remove it", dir.display());
        }
    }
    let files = match lang {
        Lang::Python => python(name)?,
        Lang::Js => js(name)?,
        Lang::Rust => rust(name, pdk.or_else(default_pdk))?,
    };
    for (path, text) in &files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a file in the project")).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir)
}

/// Connector names become the webhook route, config keys and (Rust) a crate
/// name: keep them to what spoke.toml accepts for a connector (no '-').
pub fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok || name.len() > 64 {
        bail!("invalid connector name {name:?}: use a lowercase letter, then lowercase letters, digits or '_' (at most 64; spoke.toml refuses other connector names), e.g. \"acme\" or \"acme_eu\"");
    }
    Ok(())
}

type Files = Vec<(String, String)>;

fn wit_files() -> Files {
    WIT.iter().map(|(f, t)| (format!("wit/{f}"), t.to_string())).collect()
}

/// `text` with `line` (which must be there once) replaced.
fn replace_once(text: &str, line: &str, with: &str, source: &str) -> Result<String> {
    if text.matches(line).count() != 1 {
        bail!("{source} no longer has exactly one `{line}`: spoke new cannot set the connector's name (a bug in this build)");
    }
    Ok(text.replacen(line, with, 1))
}

fn env_prefix(name: &str) -> String {
    name.to_ascii_uppercase()
}

/// The `spoke.toml` that loads the built plugin from this folder.
fn spoke_toml(name: &str, webhooks: bool, memory_note: &str) -> String {
    let env = env_prefix(name);
    let secret = if webhooks { format!("webhook_secret = \"env:{env}_WEBHOOK_SECRET\"   # verifies POST /hooks/{name}\n") } else { String::new() };
    format!(
        r#"# spoke.toml for trying the connector built in this folder: `spoke --config spoke.toml describe {name}`.
# In an existing spoke.toml, copy the [connectors.{name}] table and put {name}.wasm in its plugins_dir.
plugins_dir = "."                 # every *.wasm here is loaded
store = ".spoke/spoke.db"
cache_dir = ".spoke/cache"        # compiled components, reused while the .wasm is unchanged
listen = "127.0.0.1:8080"         # spoke run: POST /hooks/{name}

[limits]
{memory_note}memory_mib = 64

[connectors.{name}]
plugin = "{name}"
base_url = "https://api.acme.example"   # the vendor's API
[connectors.{name}.credentials]
api_key = "env:{env}_API_KEY"
{secret}"#
    )
}

fn try_it(name: &str) -> String {
    let env = env_prefix(name);
    format!(
        r#"## Try it

```sh
export {env}_API_KEY=... {env}_WEBHOOK_SECRET=...
spoke --config spoke.toml describe {name}              # loads it: a broken manifest or import shows here
spoke --config spoke.toml call {name} list_items '{{"status": "open"}}'
spoke --config spoke.toml run                          # webhooks on POST /hooks/{name}, signed in x-signature
```

Set `base_url` in spoke.toml to the vendor's API first. Errors are the WIT
`error` record: `kind` (invalid-input, unauthorized, not-found, conflict,
rate-limited, vendor, ...) is what a script branches on, `message` names
what was wrong, `status` and `vendor_code` keep the vendor's own.
"#
    )
}

fn python(name: &str) -> Result<Files> {
    let app = replace_once(PY_APP, PY_NAME_LINE, &format!("NAME = \"{name}\""), "examples/python-plugin/app.py")?;
    let readme = format!(
        r#"# {name}: a Spoke connector in Python

Made by `spoke new {name} --lang python` from Spoke's examples/python-plugin.
`app.py` is the connector (class `WitWorld`, the world `connector` of
`wit/`, spoke:connector@0.1.0), `test_app.py` its unit tests, `spoke.toml`
a configuration that loads it.

## Build

Once: `python3 -m venv .venv && .venv/bin/pip install componentize-py=={COMPONENTIZE_PY}` (with `.venv/bin` on PATH).
Then, the one command:

```sh
componentize-py -d wit -w connector componentize app -o {name}.wasm
```

About 5 s; the component is about 18 MB, takes about 14 s of CPU to
compile when Spoke first loads it (then it is cached) and needs at least
16 MiB of memory per call (`limits.memory_mib`, 64 by default).

## Test

```sh
python3 -m unittest      # app.py in plain CPython, the host's imports faked
```

## Conventions

- Return an error by raising `Err(Error(kind=ErrorKind..., message=...))`
  (`from componentize_py_types import Err`); any other exception is a crash
  the host reports as `internal`.
- The host's imports are modules of `wit_world.imports`: `http.send`,
  `auth.verify_hmac_sha256`, `log.log`, `kv`, `config`, `rate_limit`.
- Only stderr and clocks of WASI are usable: no files, sockets or
  wasi:http; the network is `http.send`, which adds the credentials.

{}"#,
        try_it(name)
    );
    let mut files = vec![
        ("app.py".to_string(), app),
        ("test_app.py".to_string(), PY_TEST.to_string()),
        ("README.md".to_string(), readme),
        ("spoke.toml".to_string(), spoke_toml(name, true, "# Python components need at least 16 MiB of linear memory per call.\n")),
        (".gitignore".to_string(), "*.wasm\n__pycache__/\n.venv/\n.spoke/\n".to_string()),
    ];
    files.extend(wit_files());
    Ok(files)
}

fn js(name: &str) -> Result<Files> {
    let app = replace_once(JS_APP, JS_NAME_LINE, &format!("const NAME = '{name}';"), "examples/js-plugin/app.js")?;
    let package = format!(
        r#"{{
  "name": "{name}",
  "private": true,
  "type": "module",
  "scripts": {{
    "build": "componentize-js app.js -w wit -n connector -d http fetch-event -o {name}.wasm",
    "test": "node --import ./test/register.mjs --test test/app.test.mjs"
  }},
  "devDependencies": {{
    "@bytecodealliance/componentize-js": "{COMPONENTIZE_JS}",
    "@bytecodealliance/preview2-shim": "0.25.0"
  }}
}}
"#
    );
    let readme = format!(
        r#"# {name}: a Spoke connector in JavaScript

Made by `spoke new {name} --lang js` from Spoke's examples/js-plugin.
`app.js` is the connector (its exports `describe`, `invoke`,
`handleWebhook` implement the world `connector` of `wit/`,
spoke:connector@0.1.0), `test/` its unit tests, `spoke.toml` a
configuration that loads it.

## Build

Once: `npm install` (componentize-js {COMPONENTIZE_JS} and preview2-shim, which it
imports without declaring it, pinned in package.json). Then, the one command:

```sh
npm run build      # componentize-js app.js -w wit -n connector -d http fetch-event -o {name}.wasm
```

`-d http fetch-event` is required: without it the component imports
wasi:http, which Spoke does not provide, and fails to load ("imports
something Spoke does not provide"). Use componentize-js itself:
`jco componentize` fails (its WASI shim cannot read the files). About 7 s;
the component is about 12 MB, takes about 18 s of CPU to compile when Spoke
first loads it (then it is cached) and needs at least 16 MiB of memory per
call (`limits.memory_mib`, 64 by default).

## Test

```sh
npm test           # app.js in plain Node, the host's imports faked (test/host.mjs)
```

## Conventions

- Return an error by throwing an object whose `payload` is the WIT `error`
  record (`{{ kind: 'not-found', message, status, vendorCode, field,
  retryAfterMs }}`); see `ConnectorError` in app.js. Anything else thrown is
  a crash the host reports as `internal`.
- An import's error arrives the same way: a thrown value with `payload`.
- Records are objects with camelCase fields, enums kebab-case strings,
  variants `{{ tag, val }}`, `option` a value or `undefined`, u64 a BigInt.
- Only stderr and clocks of WASI are usable: no files, sockets or fetch();
  the network is `send` from `spoke:connector/http@0.1.0`, which adds the
  credentials.

{}"#,
        try_it(name)
    );
    let mut files = vec![
        ("app.js".to_string(), app),
        ("package.json".to_string(), package),
        ("README.md".to_string(), readme),
        ("spoke.toml".to_string(), spoke_toml(name, true, "# JavaScript components need at least 16 MiB of linear memory per call.\n")),
        (".gitignore".to_string(), "*.wasm\nnode_modules/\n.spoke/\n".to_string()),
    ];
    files.extend(JS_TEST.iter().map(|(f, t)| (f.to_string(), t.to_string())));
    files.extend(wit_files());
    Ok(files)
}

/// `acme_eu` -> `AcmeEu`: the template's struct name for this connector.
fn camel(name: &str) -> String {
    name.split('_').filter(|p| !p.is_empty()).map(|p| p[..1].to_ascii_uppercase() + &p[1..]).collect()
}

/// The pdk of the repository this `spoke` was built from, when it is still
/// there; else none (the generated Cargo.toml then names a git placeholder).
fn default_pdk() -> Option<PathBuf> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/pdk");
    let beside_binary = std::env::current_exe().ok().and_then(|exe| exe.ancestors().nth(3).map(|repo| repo.join("plugins/pdk")));
    [beside_binary, Some(built_from)].into_iter().flatten().find(|p| p.join("Cargo.toml").exists()).and_then(|p| p.canonicalize().ok())
}

fn rust(name: &str, pdk: Option<PathBuf>) -> Result<Files> {
    let krate = name;
    let ty = camel(name);
    // The template's connector is `Acme` named "acme"; it becomes this one.
    let lib = replace_once(RUST_LIB, "name: \"acme\"", &format!("name: \"{name}\""), "examples/plugin-template/src/lib.rs")?;
    let lib = lib.replace("struct Acme;", &format!("struct {ty};")).replace("impl Connector for Acme", &format!("impl Connector for {ty}")).replace("connector!(Acme);", &format!("connector!({ty});"));
    let lib = format!(
        r#"{lib}
#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn each_operation_is_named_once_with_a_schema() {{
        assert_eq!({ty}::info().name, "{name}");
        let ops = {ty}::operations();
        let mut names: Vec<_> = ops.iter().map(|o| o.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ops.len(), "operation names are unique");
        assert!(ops.iter().all(|o| o.input.is_object()), "every input schema is a JSON object");
    }}
}}
"#
    );
    let dependency = match &pdk {
        Some(p) => format!("spoke-pdk = {{ path = {:?} }}", p.display().to_string()),
        None => format!("# No local Spoke checkout was found: point this at one (path = \"../spoke/plugins/pdk\") or at its git repository.\nspoke-pdk = {{ git = \"{PDK_GIT_PLACEHOLDER}\" }}"),
    };
    let cargo = format!(
        r#"[package]
name = "{krate}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
# cdylib: the component; rlib: `cargo test` runs natively.
crate-type = ["cdylib", "rlib"]

[dependencies]
{dependency}

# Not part of any enclosing workspace.
[workspace]

# Plugins are small and shipped: size-optimised, no unwinding.
[profile.plugin]
inherits = "release"
opt-level = "s"
lto = true
strip = true
panic = "abort"
debug = false
"#
    );
    let readme = format!(
        r#"# {name}: a Spoke connector in Rust

Made by `spoke new {name} --lang rust` from Spoke's examples/plugin-template.
`src/lib.rs` is the connector (struct `{ty}`, `impl Connector`), built on the
plugin development kit `spoke-pdk` (see Cargo.toml: a local path, or a git
repository until the pdk is published), `spoke.toml` a configuration that
loads it.

## Build

Once: `rustup target add wasm32-wasip2`. Then, the one command:

```sh
cargo build --target wasm32-wasip2 --profile plugin && cp target/wasm32-wasip2/plugin/{krate}.wasm {name}.wasm
```

The output is already a component (the template's is 191 KiB).

## Test

```sh
cargo test        # natively: the manifest and operations
```

## Conventions

Return `Error::new(kind, message)` or `Error::invalid_input(field, message)`;
`Error::kind_for_status` maps a vendor's HTTP status. Each `Op` carries its
input JSON Schema, validated by the pdk before the handler runs.

{}"#,
        try_it(name).replace(" list_items '{\"status\": \"open\"}'", " get_order '{\"id\": \"1\"}'")
    );
    Ok(vec![
        ("Cargo.toml".to_string(), cargo),
        ("src/lib.rs".to_string(), lib),
        ("README.md".to_string(), readme),
        ("spoke.toml".to_string(), spoke_toml(name, RUST_LIB.contains("verify_hmac_sha256"), "")),
        (".gitignore".to_string(), "target/\n*.wasm\n.spoke/\n".to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["acme", "acme_eu", "a1_b"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "Acme", "1acme", "acme!", "acme-eu", "_a", "a b", "café"] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains("invalid connector name"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_pins_are_the_ones_xtask_installs() {
        let xtask = include_str!("../../xtask/src/main.rs");
        assert!(xtask.contains(&format!("const COMPONENTIZE_PY: &str = \"{COMPONENTIZE_PY}\";")), "componentize-py pin differs from xtask");
        assert!(xtask.contains(&format!("const COMPONENTIZE_JS: &str = \"{COMPONENTIZE_JS}\";")), "componentize-js pin differs from xtask");
    }

    #[test]
    fn every_language_gets_its_name_and_refuses_a_used_folder() {
        let tmp = tempfile::tempdir().unwrap();
        for (lang, file, want) in [(Lang::Python, "app.py", "NAME = \"acme_eu\""), (Lang::Js, "app.js", "const NAME = 'acme_eu';"), (Lang::Rust, "src/lib.rs", "struct AcmeEu;")] {
            let dir = tmp.path().join(format!("{lang:?}"));
            run("acme_eu", lang, Some(dir.clone()), Some(PathBuf::from("/nowhere/pdk"))).unwrap();
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            assert!(text.contains(want), "{lang:?}: {file} lacks {want}");
            assert!(dir.join("spoke.toml").exists() && dir.join("README.md").exists());
            let e = run("acme_eu", lang, Some(dir.clone()), None).unwrap_err().to_string();
            assert!(e.contains("not empty"), "{e}");
        }
        assert!(std::fs::read_to_string(tmp.path().join("Python/wit/world.wit")).unwrap().contains("world connector"));
    }
}
