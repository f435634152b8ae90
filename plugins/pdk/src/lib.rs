//! The plugin development kit for Spoke connectors written in Rust.
//!
//! The contract is the WIT in `wit/v0.1.0`; this crate only makes it pleasant
//! to implement in Rust. A connector implements [`Connector`] and calls
//! [`connector!`]; operations are declared once, as a table whose input JSON
//! Schema is both published by `describe` and enforced by [`schema::validate`]
//! before any handler runs, so what `spoke describe` shows is what is checked.

/// The generated bindings of the `connector` world.
pub mod bindings {
    wit_bindgen::generate!({
        world: "connector",
        // The bundled copy of wit/v0.1.0, relative to this crate.
        path: "wit",
        pub_export_macro: true,
        default_bindings_module: "spoke_pdk::bindings",
    });
}
pub use bindings::spoke;
pub use bindings::{Error, Event, Guest, Manifest, Received};

pub mod error;
pub mod http;
pub mod read;
pub mod schema;
pub mod webhook;

pub use serde_json::{self, json, Value};
pub use spoke::connector::manifest::{
    AuthMethod, AuthScheme, BaseUrl, BasicFields, HeaderMeaning, Operation, RateHeader, RatePolicy,
    WebhookTopic, Window,
};
pub use spoke::connector::types::{ErrorKind, Method};
pub use spoke::connector::{auth, config, kv, log, rate_limit};

/// Everything about a connector except its operations.
pub struct Info {
    pub name: &'static str,
    pub version: &'static str,
    pub vendor: &'static str,
    pub description: &'static str,
    pub base_urls: Vec<BaseUrl>,
    pub auth_schemes: Vec<AuthScheme>,
    pub rate_policies: Vec<RatePolicy>,
    pub webhook_topics: Vec<WebhookTopic>,
}

/// One operation: its published description and the function that runs it.
/// The handler gets input that already passed the input schema.
pub struct Op {
    pub name: &'static str,
    pub description: &'static str,
    pub method: Method,
    pub path: &'static str,
    pub input: Value,
    pub output: Value,
    pub idempotent: bool,
    pub paged: bool,
    pub handler: fn(&Value) -> Result<Value, Error>,
}

/// What a connector implements. [`connector!`] turns it into the WIT exports.
pub trait Connector {
    fn info() -> Info;
    fn operations() -> Vec<Op>;
    fn handle_webhook(received: Received) -> Result<Vec<Event>, Error>;
}

#[doc(hidden)]
pub mod runtime {
    use super::*;

    pub fn describe<C: Connector>() -> Manifest {
        let info = C::info();
        Manifest {
            name: info.name.into(),
            version: info.version.into(),
            vendor: info.vendor.into(),
            description: info.description.into(),
            base_urls: info.base_urls,
            auth_schemes: info.auth_schemes,
            rate_policies: info.rate_policies,
            webhook_topics: info.webhook_topics,
            operations: C::operations()
                .into_iter()
                .map(|op| Operation {
                    name: op.name.into(),
                    description: op.description.into(),
                    method: op.method,
                    path: op.path.into(),
                    input_schema: op.input.to_string(),
                    output_schema: op.output.to_string(),
                    idempotent: op.idempotent,
                    paged: op.paged,
                })
                .collect(),
        }
    }

    /// The operation table, built once per instance: building it (every
    /// input schema as a `Value`) on each call was most of a warm call's
    /// guest time. One component exports one connector, so one table.
    fn operations<C: Connector>() -> &'static [Op] {
        static OPS: std::sync::OnceLock<Vec<Op>> = std::sync::OnceLock::new();
        OPS.get_or_init(C::operations)
    }

    pub fn invoke<C: Connector>(operation: &str, input: &str) -> Result<String, Error> {
        let ops = operations::<C>();
        let Some(op) = ops.iter().find(|op| op.name == operation) else {
            let mut names: Vec<_> = ops.iter().map(|op| op.name).collect();
            names.sort_unstable();
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("unknown operation `{operation}`; known: {}", names.join(", ")),
            ));
        };
        let input: Value = if input.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_str(input)
                .map_err(|e| Error::invalid_input("", format!("input is not JSON: {e}")))?
        };
        schema::validate(&op.input, &input)?;
        let output = (op.handler)(&input)?;
        Ok(output.to_string())
    }
}

/// Export a [`Connector`] as the plugin's `connector` world.
#[macro_export]
macro_rules! connector {
    ($ty:ident) => {
        impl $crate::Guest for $ty {
            fn describe() -> $crate::Manifest {
                $crate::runtime::describe::<$ty>()
            }
            fn invoke(operation: String, input: String) -> Result<String, $crate::Error> {
                $crate::runtime::invoke::<$ty>(&operation, &input)
            }
            fn handle_webhook(received: $crate::Received) -> Result<Vec<$crate::Event>, $crate::Error> {
                <$ty as $crate::Connector>::handle_webhook(received)
            }
        }
        $crate::bindings::export!($ty with_types_in $crate::bindings);
    };
}

/// Log through the host, tagged with the connector by the host.
pub fn log(level: log::Level, message: impl AsRef<str>) {
    log::log(level, message.as_ref());
}
