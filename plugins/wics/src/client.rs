//! The request patterns every WICS operation is made of: get a record, list
//! records (filters, one page or all), write a record, and the op table entry.
use crate::errors::{self, Envelope};
use crate::spec::{self, Fields};
use serde::de::DeserializeOwned;
use serde::Serialize;
use spoke_pdk::http::{fill_path, scalar_text, Request};
use spoke_pdk::{json, Error, ErrorKind, Method, Op, Value};

/// The manifest auth scheme carrying the API key and secret.
pub const AUTH: &str = "basic";

/// Page size used when walking every page and the caller did not choose one.
pub const WALK_PAGE_SIZE: u64 = 100;
/// Upper bound on pages walked, so a vendor that ignores `page` cannot loop us forever.
const MAX_PAGES: u64 = 10_000;

/// The filter operators WICS understands, as `field[op]=value`.
pub const OPERATORS: [&str; 6] = ["eq", "neq", "gt", "lt", "gte", "lte"];

/// Send a request with the WICS credentials and unwrap its envelope.
pub fn send(request: Request) -> Result<Envelope, Error> {
    let response = request.auth(AUTH).header("accept", "application/json").send()?;
    errors::check(&response)
}

/// A value read through a typed model (documented fields typed, others
/// untouched); a record the model cannot take comes back as WICS sent it,
/// never as an error (see `spoke_pdk::read::through`).
pub fn typed<T: DeserializeOwned + Serialize>(value: Value, _what: &str) -> Result<Value, Error> {
    Ok(spoke_pdk::read::through::<T>(value))
}

/// Names of the `{placeholders}` in a vendor path.
fn placeholders(path: &str) -> Vec<&str> {
    path.split('{').skip(1).filter_map(|rest| rest.split_once('}').map(|(name, _)| name)).collect()
}

/// GET one record (or a list the vendor does not page) and type-check it.
pub fn get<T: DeserializeOwned + Serialize>(path: &str, input: &Value, what: &str) -> Result<Value, Error> {
    let envelope = send(Request::get(fill_path(path, input)?))?;
    typed::<T>(envelope.data, what)
}

/// The request body of a write: the input minus path placeholders, passed
/// through the typed model `T` so extra fields and metafields survive.
pub fn body_of<T: DeserializeOwned + Serialize>(path: &str, input: &Value) -> Result<Value, Error> {
    let mut body = input.as_object().cloned().unwrap_or_default();
    for name in placeholders(path) {
        body.remove(name);
    }
    let record: T = serde_json::from_value(Value::Object(body)).map_err(|e| Error::invalid_input("", e.to_string()))?;
    serde_json::to_value(record).map_err(|e| Error::internal(e.to_string()))
}

/// A create/update/delete/action answer: the identifier WICS names, and its message.
pub fn write_result(envelope: Envelope) -> Value {
    let identifier = match &envelope.data {
        Value::Array(ids) => ids.first().and_then(scalar_text),
        Value::Null => None,
        other => scalar_text(other),
    };
    json!({ "identifier": identifier, "message": envelope.message.unwrap_or_default() })
}

/// Send `body` (if any) to the path filled from `input` and report the answer.
pub fn write(method: Method, path: &str, input: &Value, body: Option<Value>) -> Result<Value, Error> {
    let mut request = Request::new(method, fill_path(path, input)?);
    if let Some(body) = body {
        request = request.json(&body);
    }
    Ok(write_result(send(request)?))
}

/// The schema of one filterable field: a value (equals) or an object of
/// operators. Booleans only compare for (in)equality.
fn filter_schema(scalar: &Value) -> Value {
    let scalar_type = scalar.get("type").and_then(Value::as_str).unwrap_or("string");
    let operators: &[&str] = if scalar_type == "boolean" { &OPERATORS[..2] } else { &OPERATORS };
    let mut schema = scalar.clone();
    schema["type"] = json!([scalar_type, "object"]);
    let properties: serde_json::Map<String, Value> = operators.iter().map(|op| (op.to_string(), scalar.clone())).collect();
    schema["properties"] = Value::Object(properties);
    schema["additionalProperties"] = Value::Bool(false);
    schema
}

/// Input schema of a list operation: documented filters, `page`, `pageSize`
/// and `all_pages`.
pub fn list_input(filters: &[(&'static str, Value)]) -> Value {
    let filter_fields: Fields = filters.iter().map(|(name, scalar)| (*name, filter_schema(scalar))).collect();
    let mut fields: Fields = vec![
        ("page", json!({"type": "integer", "minimum": 1, "description": "the page to return (1 = first)"})),
        ("pageSize", json!({"type": "integer", "minimum": 1, "description": "records per page"})),
        ("all_pages", spec::with_description(spec::boolean(), "walk every page from `page` (default 1) and return all records")),
    ];
    if !filters.is_empty() {
        fields.push((
            "filters",
            spec::with_description(
                spec::closed_object(&filter_fields, &[]),
                "field = value (equals) or field = {op: value} with op one of eq, neq, gt, lt, gte, lte; dates as yyyy-mm-dd",
            ),
        ));
    }
    spec::closed_object(&fields, &[])
}

/// Output schema of a list operation.
pub fn list_output(record: Value) -> Value {
    json!({
        "type": "object",
        "properties": {
            "items": spec::array(record),
            "count": spec::integer(),
            "page": spec::nullable(spec::integer()),
            "pages_fetched": spec::integer(),
            "message": spec::nullable(spec::string()),
        }
    })
}

/// The query of a list request: `field=value` for equals, `field[op]=value`
/// otherwise, then `page` and `pageSize`.
pub fn list_query(input: &Value, page: Option<u64>, page_size: Option<u64>) -> Vec<(String, String)> {
    let mut query = Vec::new();
    for (field, condition) in input.get("filters").and_then(Value::as_object).into_iter().flatten() {
        match condition {
            Value::Object(operators) => {
                for (op, value) in operators {
                    let Some(text) = scalar_text(value) else { continue };
                    let name = if op == "eq" { field.clone() } else { format!("{field}[{op}]") };
                    query.push((name, text));
                }
            }
            value => {
                if let Some(text) = scalar_text(value) {
                    query.push((field.clone(), text));
                }
            }
        }
    }
    if let Some(page) = page {
        query.push(("page".into(), page.to_string()));
    }
    if let Some(size) = page_size {
        query.push(("pageSize".into(), size.to_string()));
    }
    query
}

fn fetch_page(path: &str, input: &Value, page: Option<u64>, page_size: Option<u64>) -> Result<(Vec<Value>, Option<String>), Error> {
    let mut request = Request::get(fill_path(path, input)?);
    for (name, value) in list_query(input, page, page_size) {
        request = request.query(name, value);
    }
    let envelope = send(request)?;
    let items = match envelope.data {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => return Err(Error::internal(format!("WICS answered a list with data that is not a list: {}", other.to_string().chars().take(80).collect::<String>()))),
    };
    Ok((items, envelope.message))
}

/// A list operation: one page, or every page when `all_pages` is true. Each
/// record is checked against the typed model `T`.
pub fn list<T: DeserializeOwned + Serialize>(path: &str, input: &Value, what: &str) -> Result<Value, Error> {
    let page = input.get("page").and_then(Value::as_u64);
    let page_size = input.get("pageSize").and_then(Value::as_u64);
    let (raw, pages_fetched, message) = if input.get("all_pages").and_then(Value::as_bool) == Some(true) {
        walk_pages(path, input, page.unwrap_or(1), page_size.unwrap_or(WALK_PAGE_SIZE))?
    } else {
        let (items, message) = fetch_page(path, input, page, page_size)?;
        (items, 1, message)
    };
    let items = raw.into_iter().map(|item| typed::<T>(item, what)).collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "count": items.len(),
        "items": items,
        "page": page,
        "pages_fetched": pages_fetched,
        "message": message,
    }))
}

/// Fetch pages from `first` until one comes back short (or empty).
fn walk_pages(path: &str, input: &Value, first: u64, size: u64) -> Result<(Vec<Value>, u64, Option<String>), Error> {
    let mut all = Vec::new();
    let mut message = None;
    for page in first..first + MAX_PAGES {
        let (items, page_message) = match fetch_page(path, input, Some(page), Some(size)) {
            // Some WICS lists answer 404 past their last page.
            Err(e) if e.kind == ErrorKind::NotFound && page > first => break,
            other => other?,
        };
        message = message.or(page_message);
        let short = (items.len() as u64) < size;
        all.extend(items);
        if short {
            return Ok((all, page - first + 1, message));
        }
    }
    Ok((all, MAX_PAGES, message))
}

/// An operation table entry. GET, PUT and DELETE are idempotent; POST is not
/// unless the caller says so afterwards.
pub fn op(
    name: &'static str,
    description: &'static str,
    method: Method,
    path: &'static str,
    input: Value,
    output: Value,
    handler: fn(&Value) -> Result<Value, Error>,
) -> Op {
    Op {
        name,
        description,
        idempotent: !matches!(method, Method::Post | Method::Patch),
        method,
        path,
        input,
        output,
        paged: false,
        handler,
    }
}

/// Input schema of an operation that takes only its path placeholders.
pub fn path_input(params: &[(&'static str, &str)]) -> Value {
    let fields: Fields = params.iter().map(|(name, description)| spec::path_param(name, description)).collect();
    let required: Vec<&str> = params.iter().map(|(name, _)| *name).collect();
    spec::closed_object(&fields, &required)
}

/// Input schema of a write: path placeholders plus the record's fields.
pub fn write_input(params: &[(&'static str, &str)], record: &[(&'static str, Value)], required: &[&str]) -> Value {
    let mut fields: Fields = params.iter().map(|(name, description)| spec::path_param(name, description)).collect();
    fields.extend(record.iter().cloned());
    let mut all_required: Vec<&str> = params.iter().map(|(name, _)| *name).collect();
    all_required.extend_from_slice(required);
    spec::object(&fields, &all_required)
}

/// The output of a write.
pub fn write_output() -> Value {
    spec::output_object(&[("identifier", spec::string()), ("message", spec::string())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_bracketed_operators() {
        let input = json!({"filters": {
            "nettoSalable": {"gte": 1000, "lt": 5000},
            "reference": "SO1",
            "receiptDate": {"eq": "2022-04-18"},
            "paid": {"neq": false}
        }});
        let query = list_query(&input, Some(2), Some(50));
        let text: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            text,
            ["nettoSalable[gte]=1000", "nettoSalable[lt]=5000", "paid[neq]=false", "receiptDate=2022-04-18", "reference=SO1", "page=2", "pageSize=50"]
        );
    }

    #[test]
    fn filter_schema_checks_operators_and_types() {
        let schema = list_input(&[("nettoSalable", spec::number()), ("receiptDate", spec::date()), ("paid", spec::boolean())]);
        let ok = json!({"filters": {"nettoSalable": {"gte": 1000}, "receiptDate": {"lte": "2022-04-18"}}, "page": 1});
        spoke_pdk::schema::validate(&schema, &ok).unwrap();
        let bad_op = json!({"filters": {"nettoSalable": {"approx": 1}}});
        let err = spoke_pdk::schema::validate(&schema, &bad_op).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("filters.nettoSalable.approx"));
        let bad_type = json!({"filters": {"nettoSalable": {"gte": "lots"}}});
        assert_eq!(spoke_pdk::schema::validate(&schema, &bad_type).unwrap_err().field.as_deref(), Some("filters.nettoSalable.gte"));
        let bad_date = json!({"filters": {"receiptDate": "18-04-2022"}});
        assert_eq!(spoke_pdk::schema::validate(&schema, &bad_date).unwrap_err().field.as_deref(), Some("filters.receiptDate"));
        let bool_gt = json!({"filters": {"paid": {"gt": true}}});
        assert!(spoke_pdk::schema::validate(&schema, &bool_gt).is_err());
        let unknown = json!({"filters": {"colour": "red"}});
        assert!(spoke_pdk::schema::validate(&schema, &unknown).is_err());
    }

    #[test]
    fn write_bodies_drop_path_fields_and_keep_metafields() {
        let input = json!({"identifier": "SO1", "note": "x", "metaFields": {"a": {"b": 1}}});
        let body = body_of::<crate::models::Order>("/api/order/{identifier}", &input).unwrap();
        assert_eq!(body, json!({"note": "x", "metaFields": {"a": {"b": 1}}}));
    }

    #[test]
    fn write_result_reads_the_identifier_list() {
        let env = Envelope { data: json!(["13295"]), message: Some("created".into()), ..Default::default() };
        assert_eq!(write_result(env), json!({"identifier": "13295", "message": "created"}));
    }
}
