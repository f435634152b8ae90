//! One generic runner for every Lagerkoll endpoint. Each endpoint is a row in
//! a table (see orders.rs, offers.rs, picking_lists.rs, print.rs,
//! rest_articles.rs): its path, query parameters with their documented
//! defaults and allowed values, body and output models. From a row come both
//! the published operation (input/output JSON Schema) and the request.
use crate::errors;
use crate::models::{self, add_rfc3339, strip_rfc3339};
use crate::scalars::Schema;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;
use spoke_pdk::http::{encode_segment, scalar_text, Request, Response};
use spoke_pdk::{config, json, Error, ErrorKind, Method, Op, Value};

pub const AUTH_SCHEMES: [&str; 2] = ["api-key", "user-token"];
/// Most pages `all_pages` will walk, so a vendor that never says "last page"
/// cannot keep an invocation busy forever.
const MAX_PAGES: i64 = 1000;

#[derive(Clone, Copy)]
pub enum Kind {
    Int,
    Bool,
    Text,
    /// Milliseconds since 1970; input may also be RFC 3339.
    Millis,
    Enum(&'static [&'static str]),
    IntEnum(&'static [i64]),
}

#[derive(Clone, Copy)]
pub enum Default {
    None,
    Int(i64),
    Bool(bool),
    Text(&'static str),
}

/// A documented query parameter ("Valid parameters").
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub default: Default,
    pub description: &'static str,
}

pub const fn param(name: &'static str, kind: Kind, default: Default, description: &'static str) -> Param {
    Param { name, kind, default, description }
}

pub enum Body {
    None,
    /// A model under input key `key`; `required` are its mandatory fields;
    /// `check` covers rules a schema cannot say.
    Model {
        key: &'static str,
        description: &'static str,
        schema: fn() -> Value,
        write: fn(&Value) -> Result<Value, Error>,
        required: &'static [&'static str],
        check: fn(&Value) -> Result<(), Error>,
    },
    /// A JSON array of customer order ids under input key `order_ids`.
    OrderIds,
    /// `{"email": ...}` under input key `email`.
    Email,
}

pub enum Output {
    /// One record; `unwrap` names the list a documented wrapper carries it in
    /// (get by id answers a one-order CustomerOrdersResponse).
    Record { schema: fn() -> Value, read: fn(Value) -> Result<Value, Error>, unwrap: Option<&'static str> },
    /// Records under `key`, whether Lagerkoll answers an array, one record or
    /// a wrapper with `key`.
    List { key: &'static str, schema: fn() -> Value, read: fn(Value) -> Result<Value, Error> },
    /// A documented page wrapper whose items are under `key`.
    Page { key: &'static str, schema: fn() -> Value, read: fn(Value) -> Result<Value, Error> },
    /// File bytes (PDF or Excel), base64 with the content type.
    File,
    /// No documented answer body.
    Done,
}

pub struct Endpoint {
    pub name: &'static str,
    pub description: &'static str,
    pub method: Method,
    /// The full vendor path, e.g. `/v1/customer_orders/{id}/invoice/print`.
    pub path: &'static str,
    pub params: &'static [Param],
    pub body: Body,
    pub output: Output,
    /// Whether a `user_id` or `device_id` header identifies the warehouse worker.
    pub worker: Worker,
}

#[derive(Clone, Copy, PartialEq)]
pub enum Worker {
    None,
    /// Sent when given ("your" lists).
    Optional,
    /// The documentation says the request requires it.
    Required,
}

/// A vendor answer read into the model `T`, liberally (see `spoke_pdk::read`).
pub fn typed<T: DeserializeOwned + Serialize>(value: Value) -> Result<T, serde_json::Error> {
    spoke_pdk::read::lenient(value)
}

/// A vendor record read through its model, with RFC 3339 siblings added; a
/// record the model cannot take comes back as Lagerkoll sent it, never as
/// an error (see `spoke_pdk::read::through`).
pub fn read<T: DeserializeOwned + Serialize + Schema>(value: Value) -> Result<Value, Error> {
    let mut out = spoke_pdk::read::through::<T>(value);
    add_rfc3339(&mut out, &T::schema());
    Ok(out)
}

/// A body read through its model (dates given as RFC 3339 become ms).
pub fn write<T: DeserializeOwned + Serialize>(value: &Value) -> Result<Value, Error> {
    let mut value = value.clone();
    strip_rfc3339(&mut value);
    // The caller's input is read strictly: a wrong type here is the caller's to fix.
    let model: T = serde_json::from_value(value).map_err(|e| Error::invalid_input("", e.to_string()))?;
    serde_json::to_value(model).map_err(|e| Error::internal(e.to_string()))
}


pub fn no_check(_: &Value) -> Result<(), Error> {
    Ok(())
}

fn path_params(path: &str) -> Vec<&str> {
    path.split('{').skip(1).filter_map(|s| s.split('}').next()).collect()
}

/// Path parameters that are vendor strings; every other one is a numeric id.
fn path_param_schema(name: &str) -> Value {
    match name {
        "external_id" => json!({"type": "string", "minLength": 1, "description": "the order id in the external system"}),
        "article_id" => json!({"type": "string", "minLength": 1, "description": "article id; may contain `/` (the path takes the rest of the URL)"}),
        "state" => json!({"type": "integer", "enum": models::ORDER_STATE_FILTERS[1..], "description": models::ORDER_STATE_NAMES}),
        _ => json!({"type": "integer", "minimum": 0}),
    }
}

fn param_schema(p: &Param) -> Value {
    let mut s = match p.kind {
        Kind::Int => json!({"type": "integer"}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Text => json!({"type": "string"}),
        Kind::Millis => json!({"type": ["integer", "string"], "format": "date-time",
            "description": "milliseconds since 1970, or an RFC 3339 date-time"}),
        Kind::Enum(values) => json!({"type": "string", "enum": values}),
        Kind::IntEnum(values) => json!({"type": "integer", "enum": values}),
    };
    let obj = s.as_object_mut().expect("object");
    match p.default {
        Default::None => {}
        Default::Int(n) => {
            obj.insert("default".into(), json!(n));
        }
        Default::Bool(b) => {
            obj.insert("default".into(), json!(b));
        }
        Default::Text(t) => {
            obj.insert("default".into(), json!(t));
        }
    }
    if matches!(p.name, "page" | "limit" | "page_size") {
        obj.insert("minimum".into(), json!(if p.name == "page" { 0 } else { 1 }));
    }
    if !p.description.is_empty() {
        let text = match obj.get("description").and_then(Value::as_str) {
            Some(old) => format!("{}; {old}", p.description),
            None => p.description.to_string(),
        };
        obj.insert("description".into(), json!(text));
    }
    s
}

impl Endpoint {
    fn paged_key(&self) -> Option<&'static str> {
        match self.output {
            Output::Page { key, .. } if self.params.iter().any(|p| p.name == "page") => Some(key),
            _ => None,
        }
    }

    pub fn input_schema(&self) -> Value {
        let mut props = serde_json::Map::new();
        let mut required: Vec<&str> = Vec::new();
        for name in path_params(self.path) {
            props.insert(name.into(), path_param_schema(name));
            required.push(name);
        }
        for p in self.params {
            props.insert(p.name.into(), param_schema(p));
        }
        match &self.body {
            Body::None => {}
            Body::Model { key, description, schema, required: fields, .. } => {
                let mut s = schema();
                if !fields.is_empty() {
                    s["required"] = json!(fields);
                }
                s["description"] = json!(description);
                props.insert((*key).into(), s);
                required.push(key);
            }
            Body::OrderIds => {
                props.insert("order_ids".into(), json!({"type": "array", "minItems": 1,
                    "items": {"type": "integer", "minimum": 0}, "description": "customer order ids"}));
                required.push("order_ids");
            }
            Body::Email => {
                props.insert("email".into(), json!({"type": "string", "minLength": 3, "description": "recipient e-mail address"}));
                required.push("email");
            }
        }
        if self.worker != Worker::None {
            props.insert("user_id".into(), json!({"type": ["integer", "string"], "description": "warehouse worker's user id, sent as the `user_id` header (not needed with the user-token auth scheme)"}));
            props.insert("device_id".into(), json!({"type": "string", "minLength": 1, "description": "device id, sent as the `device_id` header; default: the `device_id` setting"}));
        }
        if self.paged_key().is_some() {
            props.insert("all_pages".into(), json!({"type": "boolean", "default": false, "description": "walk every page from `page` on and return all items"}));
        }
        json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
    }

    pub fn output_schema(&self) -> Value {
        match &self.output {
            Output::Record { schema, .. } | Output::Page { schema, .. } => schema(),
            Output::List { key, schema, .. } => json!({"type": "object", "required": [key], "properties": {
                *key: {"type": "array", "items": schema()}}}),
            Output::File => models::file_schema(),
            Output::Done => json!({"type": "object", "properties": {"ok": {"type": "boolean", "const": true}}}),
        }
    }

    pub fn op(&'static self, handler: fn(&Value) -> Result<Value, Error>) -> Op {
        Op {
            name: self.name,
            description: self.description,
            method: self.method,
            path: self.path,
            input: self.input_schema(),
            output: self.output_schema(),
            idempotent: matches!(self.method, Method::Get),
            paged: self.paged_key().is_some(),
            handler,
        }
    }
}

/// Fill the path; `article_id` is documented as `{article_id : .+}` so its
/// slashes stay path separators and each segment is encoded on its own.
pub fn fill_path(template: &str, input: &Value) -> Result<String, Error> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let end = start + rest[start..].find('}').ok_or_else(|| Error::internal("bad path template"))?;
        out.push_str(&rest[..start]);
        let name = &rest[start + 1..end];
        let value = input.get(name).and_then(scalar_text).unwrap_or_default();
        if value.is_empty() {
            return Err(Error::invalid_input(name, "is required (it is part of the path)"));
        }
        if name == "article_id" {
            if value.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
                return Err(Error::invalid_input(name, "must not contain empty, `.` or `..` segments"));
            }
            out.push_str(&value.split('/').map(encode_segment).collect::<Vec<_>>().join("/"));
        } else {
            out.push_str(&encode_segment(&value));
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A query value as Lagerkoll takes it (dates as milliseconds).
fn query_text(p: &Param, value: &Value) -> Result<Option<String>, Error> {
    if let (Kind::Millis, Value::String(text)) = (p.kind, value) {
        return crate::time::rfc3339_to_ms(text)
            .map(|ms| Some(ms.to_string()))
            .ok_or_else(|| Error::invalid_input(p.name, format!("{text:?} is not an RFC 3339 date-time")));
    }
    Ok(scalar_text(value))
}

/// The auth scheme from the `auth_scheme` setting (default `api-key`).
pub fn auth_scheme() -> Result<&'static str, Error> {
    let chosen = config::get("auth_scheme");
    let chosen = chosen.as_deref().unwrap_or("api-key");
    AUTH_SCHEMES
        .iter()
        .find(|s| **s == chosen)
        .copied()
        .ok_or_else(|| Error::invalid_input("auth_scheme", format!("setting {chosen:?} is not allowed; allowed values: {}", AUTH_SCHEMES.join(", "))))
}

/// The `user_id`/`device_id` header that identifies the worker, or why it is
/// missing when the endpoint requires it.
fn worker_header(input: &Value, scheme: &str, need: Worker) -> Result<Option<(&'static str, String)>, Error> {
    if let Some(id) = input.get("user_id").and_then(scalar_text) {
        return Ok(Some(("user_id", id)));
    }
    if let Some(id) = input.get("device_id").and_then(scalar_text).or_else(|| config::get("device_id")) {
        return Ok(Some(("device_id", id)));
    }
    if scheme == "user-token" || need != Worker::Required {
        // With user-token the host puts the logged-in user's user_id header on the request.
        return Ok(None);
    }
    Err(Error::invalid_input("device_id", "Lagerkoll needs a user_id or device_id header here: give `user_id` or `device_id`, set the `device_id` setting, or use the user-token auth scheme"))
}

/// Build the request for one page of `ep`.
pub fn request(ep: &Endpoint, input: &Value) -> Result<Request, Error> {
    let scheme = auth_scheme()?;
    let mut req = Request::new(ep.method, fill_path(ep.path, input)?).auth(scheme);
    for p in ep.params {
        if let Some(value) = input.get(p.name) {
            if let Some(text) = query_text(p, value)? {
                req = req.query(p.name, text);
            }
        }
    }
    if ep.worker != Worker::None {
        if let Some((name, id)) = worker_header(input, scheme, ep.worker)? {
            req = req.header(name, id);
        }
    }
    req = req.header("accept", if matches!(ep.output, Output::File) { "application/pdf" } else { "application/json" });
    match &ep.body {
        Body::None => {
            if matches!(ep.method, Method::Post | Method::Put) {
                req = req.header("content-type", "application/json");
            }
        }
        Body::Model { key, write, check, .. } => {
            let given = input.get(*key).cloned().unwrap_or(Value::Null);
            check(&given)?;
            let body = write(&given).map_err(|e| match e.kind {
                ErrorKind::InvalidInput => Error::invalid_input(key.to_string(), e.message),
                _ => e,
            })?;
            req = req.json(&body);
        }
        Body::OrderIds => req = req.json(input.get("order_ids").unwrap_or(&json!([]))),
        Body::Email => req = req.json(&json!({"email": input.get("email")})),
    }
    Ok(req)
}

/// The JSON of a successful answer; XML is refused rather than misread.
fn json_body(resp: &Response) -> Result<Value, Error> {
    if resp.is_xml() {
        return Err(Error::new(
            ErrorKind::Internal,
            format!("Lagerkoll answered XML ({}) although JSON was asked for; this connector reads JSON only", resp.header("content-type").unwrap_or("no content-type")),
        )
        .with_status(resp.status));
    }
    resp.json()
}

fn send(ep: &Endpoint, input: &Value) -> Result<Response, Error> {
    let resp = request(ep, input)?.send()?;
    if !resp.is_success() {
        return Err(errors::from_response(&resp));
    }
    Ok(resp)
}

fn items_of(value: &Value, key: &str) -> Option<Vec<Value>> {
    value.get(key).and_then(Value::as_array).cloned()
}

/// Run `ep` with validated input.
pub fn run(ep: &Endpoint, input: &Value) -> Result<Value, Error> {
    match &ep.output {
        Output::File => {
            let resp = send(ep, input)?;
            let content_type = resp.header("content-type").unwrap_or("application/octet-stream").to_string();
            Ok(json!({
                "content_type": content_type,
                "base64": base64::engine::general_purpose::STANDARD.encode(&resp.body),
                "size": resp.body.len(),
            }))
        }
        Output::Done => {
            send(ep, input)?;
            Ok(json!({"ok": true}))
        }
        Output::Record { read, unwrap, .. } => {
            let body = json_body(&send(ep, input)?)?;
            let record = match unwrap.and_then(|key| items_of(&body, key)) {
                Some(items) => items.into_iter().next().ok_or_else(|| {
                    Error::new(ErrorKind::NotFound, format!("Lagerkoll found nothing for {}", ep.name)).with_status(200)
                })?,
                None => body,
            };
            read(record)
        }
        Output::List { key, read, .. } => {
            let body = json_body(&send(ep, input)?)?;
            let items = match body {
                Value::Array(items) => items,
                Value::Object(ref map) if map.contains_key(*key) => items_of(&body, key).unwrap_or_default(),
                Value::Null => Vec::new(),
                single => vec![single],
            };
            let items = items.into_iter().map(read).collect::<Result<Vec<_>, _>>()?;
            Ok(json!({ *key: items }))
        }
        Output::Page { key, read, .. } => {
            let walk = input.get("all_pages").and_then(Value::as_bool).unwrap_or(false) && ep.paged_key().is_some();
            let mut body = json_body(&send(ep, input)?)?;
            if walk {
                let limit = input.get("limit").and_then(Value::as_i64).unwrap_or(50);
                let mut page = input.get("page").and_then(Value::as_i64).unwrap_or(0);
                let mut all = items_of(&body, key).unwrap_or_default();
                let mut last = all.len();
                loop {
                    let more = match body.get("pages").and_then(|p| typed::<crate::scalars::Int>(p.clone()).ok()).map(|p| p.0) {
                        Some(pages) => page + 1 < pages,
                        None => last as i64 >= limit && last > 0,
                    };
                    if !more || page >= MAX_PAGES {
                        break;
                    }
                    page += 1;
                    let mut next_input = input.clone();
                    next_input["page"] = json!(page);
                    body = json_body(&send(ep, &next_input)?)?;
                    let items = items_of(&body, key).unwrap_or_default();
                    last = items.len();
                    all.extend(items);
                }
                body[*key] = Value::Array(all);
            }
            read(body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn article_ids_keep_their_slashes_and_encode_the_rest() {
        let path = fill_path("/v1/customer_orders/article/{article_id}", &json!({"article_id": "AB/12 x"})).unwrap();
        assert_eq!(path, "/v1/customer_orders/article/AB/12%20x");
        assert!(fill_path("/v1/customer_orders/article/{article_id}", &json!({"article_id": "a/../b"})).is_err());
        let path = fill_path("/v1/customer_orders/{order_id}/picking_lists/{list_id}", &json!({"order_id": 7, "list_id": "a/b"})).unwrap();
        assert_eq!(path, "/v1/customer_orders/7/picking_lists/a%2Fb");
        let err = fill_path("/v1/customer_orders/{id}", &json!({})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("id"));
    }

    #[test]
    fn millis_parameters_take_rfc3339() {
        let p = param("from", Kind::Millis, Default::Int(0), "");
        assert_eq!(query_text(&p, &json!("2024-04-19T22:26:11.411Z")).unwrap().unwrap(), "1713565571411");
        assert_eq!(query_text(&p, &json!(5)).unwrap().unwrap(), "5");
        assert!(query_text(&p, &json!("yesterday")).is_err());
    }
}
