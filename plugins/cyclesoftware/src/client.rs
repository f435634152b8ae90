//! Sending requests the CycleSoftware way: Basic auth, JSON answers checked
//! for the error envelope, both pagination styles.
use crate::errors::{self, BadRequest};
use crate::models::{DataPage, Pagination};
use serde::de::DeserializeOwned;
use serde::Serialize;
use spoke_pdk::http::Request;
use spoke_pdk::{json, Error, Value};

/// The manifest auth scheme every endpoint uses (username + password).
pub const AUTH: &str = "basic";

/// A walk of `all_pages` stops here rather than loop on a vendor that keeps
/// answering "more".
const MAX_PAGES: usize = 10_000;

/// Send with credentials and parse a successful answer into `T`.
pub fn call<T: DeserializeOwned>(req: Request, bad_request: BadRequest) -> Result<T, Error> {
    let resp = req.auth(AUTH).header("accept", "application/json").send()?;
    if let Some(err) = errors::check(&resp, bad_request) {
        return Err(err);
    }
    resp.json()
}

/// Send and return the answer as JSON without its `error`/`error_message`
/// envelope fields (they only say "no error" once `call` has checked them).
pub fn call_value(req: Request, bad_request: BadRequest) -> Result<Value, Error> {
    let mut v: Value = call(req, bad_request)?;
    if let Some(map) = v.as_object_mut() {
        map.remove("error");
        map.remove("error_message");
    }
    Ok(v)
}

/// Typed record(s) back to JSON for the caller.
pub fn to_json<T: Serialize>(value: &T) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::internal(format!("cannot encode output: {e}")))
}

/// Copy the named input fields that are present into the query string.
pub fn with_query(mut req: Request, input: &Value, names: &[&str]) -> Request {
    for name in names {
        if let Some(value) = input.get(*name) {
            req = req.query_value(*name, value);
        }
    }
    req
}

fn wants_all_pages(input: &Value) -> bool {
    input.get("all_pages").and_then(Value::as_bool).unwrap_or(false)
}

/// A list with the default pagination: `?offset=` in, `pagination.next_offset`
/// out. One page, or every page from `offset` on with `all_pages`.
pub fn offset_list<T: DeserializeOwned + Serialize>(build: impl Fn() -> Request, input: &Value) -> Result<Value, Error> {
    let all = wants_all_pages(input);
    let mut offset = input.get("offset").and_then(Value::as_i64);
    let mut items: Vec<T> = Vec::new();
    for _ in 0..MAX_PAGES {
        let req = match offset {
            Some(o) => build().query("offset", o.to_string()),
            None => build(),
        };
        let page: DataPage<T> = call(req, BadRequest::Refused)?;
        items.extend(page.data);
        let next = page.pagination.and_then(|p| p.next_offset);
        match next {
            Some(n) if all => {
                if offset.is_some_and(|o| n <= o) {
                    return Err(Error::internal(format!("CycleSoftware pagination did not advance (offset {n} after {offset:?})")));
                }
                offset = Some(n);
            }
            _ => return Ok(json!({"data": to_json(&items)?, "pagination": {"next_offset": next}})),
        }
    }
    Err(Error::internal(format!("stopped after {MAX_PAGES} pages")))
}

/// A list paged by `?page=` with `pagination.has_next_page`. One page, or
/// every page from `page` on with `all_pages`.
pub fn page_list<T: DeserializeOwned + Serialize>(build: impl Fn() -> Request, input: &Value) -> Result<Value, Error> {
    let all = wants_all_pages(input);
    let first = input.get("page").and_then(Value::as_i64).unwrap_or(1);
    let mut items: Vec<T> = Vec::new();
    for page in first..first + MAX_PAGES as i64 {
        let answer: DataPage<T> = call(build().query("page", page.to_string()), BadRequest::Refused)?;
        items.extend(answer.data);
        let pagination = answer.pagination.unwrap_or_default();
        let has_next = pagination.has_next_page.unwrap_or(false);
        if !(all && has_next) {
            let summary = if all {
                Pagination { page: Some(page), count: Some(items.len() as i64), has_next_page: Some(false), next_offset: None }
            } else {
                pagination
            };
            return Ok(json!({"data": to_json(&items)?, "pagination": to_json(&summary)?}));
        }
    }
    Err(Error::internal(format!("stopped after {MAX_PAGES} pages")))
}
