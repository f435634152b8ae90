//! The host's own view of a connector manifest. Plugins built against any
//! WIT version are converted into these types (see `plugin::v0_1_0`), so the
//! rest of the host and embedders see one shape.
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    pub name: String,
    pub description: String,
    pub method: Method,
    pub path: String,
    pub input_schema: serde_json::Value,
    pub output_schema: serde_json::Value,
    pub idempotent: bool,
    pub paged: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum AuthMethod {
    Basic { username_field: String, password_field: String },
    /// (header name, credential field)
    Headers { headers: Vec<(String, String)> },
    Bearer { field: String },
    /// (query parameter, credential field)
    Query { params: Vec<(String, String)> },
}

impl AuthMethod {
    /// The credential fields this method reads.
    pub fn fields(&self) -> Vec<&str> {
        match self {
            AuthMethod::Basic { username_field, password_field } => vec![username_field, password_field],
            AuthMethod::Headers { headers } => headers.iter().map(|(_, f)| f.as_str()).collect(),
            AuthMethod::Bearer { field } => vec![field],
            AuthMethod::Query { params } => params.iter().map(|(_, f)| f.as_str()).collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AuthScheme {
    pub name: String,
    pub description: String,
    pub method: AuthMethod,
    pub optional: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Window {
    pub limit: u32,
    pub seconds: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderMeaning {
    Limit,
    Remaining,
    ResetSeconds,
    ResetAt,
}

#[derive(Debug, Clone, Serialize)]
pub struct RateHeader {
    pub name: String,
    pub meaning: HeaderMeaning,
    pub window_seconds: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct RatePolicy {
    pub name: String,
    pub description: String,
    /// Operations drawing from this bucket; empty means all.
    pub operations: Vec<String>,
    pub windows: Vec<Window>,
    pub headers: Vec<RateHeader>,
    pub penalty_seconds: Vec<u32>,
}

impl RatePolicy {
    pub fn applies_to(&self, operation: &str) -> bool {
        self.operations.is_empty() || self.operations.iter().any(|o| o == operation)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BaseUrl {
    pub key: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebhookTopic {
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub vendor: String,
    pub description: String,
    pub base_urls: Vec<BaseUrl>,
    pub auth_schemes: Vec<AuthScheme>,
    pub rate_policies: Vec<RatePolicy>,
    pub operations: Vec<Operation>,
    pub webhook_topics: Vec<WebhookTopic>,
}

impl Manifest {
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.name == name)
    }
    pub fn auth_scheme(&self, name: &str) -> Option<&AuthScheme> {
        self.auth_schemes.iter().find(|s| s.name == name)
    }
}

/// A webhook request as the host received it.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A normalized event produced by a plugin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: String,
    pub topic: String,
    pub occurred_at: Option<String>,
    pub subject: Option<String>,
    pub payload: serde_json::Value,
}
