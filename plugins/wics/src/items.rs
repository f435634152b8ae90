//! Items (articles): list, create one or many, update, EAN conversions.
use crate::client::{self, op};
use crate::models::Item;
use crate::spec::{array, boolean, decimal_or_text, integer, number, object, output_object, string, text_max, Fields};
use spoke_pdk::http::Request;
use spoke_pdk::{json, Error, Method, Op, Value};

const LIST: &str = "/api/item";
const MANY: &str = "/api/item/list";
const ONE: &str = "/api/item/{identifier}";
const EAN_TO_ITEM: &str = "/api/item/ean-item/{EAN}";
const ITEM_TO_EAN: &str = "/api/item/item-ean/{itemCode}";

fn best_before() -> Value {
    object(&[
        ("receiptDateEntry", json!({"type": "string", "description": "bestbefore or production"})),
        ("bestBeforePeriod", integer()),
        ("quarantinePeriod", integer()),
        ("warrantyPeriod", integer()),
    ], &[])
}

fn unit() -> Value {
    object(&[("unit", string()), ("width", number()), ("length", number()), ("height", number()), ("amountSKU", integer()), ("barcode", string())], &[])
}

fn traceability() -> Value {
    json!({"type": "string", "enum": ["lot", "serialnumber", "none"]})
}

/// Fields of a new item.
fn create_fields() -> Fields {
    vec![
        ("code", json!({"type": "string", "minLength": 1})),
        ("description", string()),
        ("internalDescription", text_max(40)),
        ("assembled", boolean()),
        ("assemblyType", json!({"type": "string", "description": "picking or stock"})),
        ("barcode", string()),
        ("itemGroup", string()),
        ("defaultUnit", string()),
        ("safetyDataSheet", string()),
        ("statusCode", integer()),
        ("traceability", traceability()),
        ("weight", decimal_or_text()),
        ("bestBefore", best_before()),
        ("components", array(object(&[("code", string()), ("skuCode", string()), ("quantity", number())], &[]))),
        ("units", array(unit())),
        ("warehouses", array(object(&[
            ("code", string()),
            ("minimumQuantity", integer()),
            ("maximumQuantity", integer()),
            ("safeQuantity", integer()),
            ("reorderQuantity", integer()),
        ], &[]))),
    ]
}

/// The fields an update may change.
fn update_fields() -> Fields {
    vec![
        ("description", string()),
        ("assembled", boolean()),
        ("defaultUnit", string()),
        ("safetyDataSheet", string()),
        ("statusCode", integer()),
        ("traceability", traceability()),
        ("weight", decimal_or_text()),
        ("bestBefore", best_before()),
        ("units", array(unit())),
    ]
}

/// The item code is what WICS names the item by; the docs mark nothing
/// required, but an item without one cannot be found again.
const REQUIRED: [&str; 1] = ["code"];

pub fn record_schema() -> Value {
    let mut fields = create_fields();
    fields.iter_mut().find(|(n, _)| *n == "statusCode").expect("statusCode").1 = json!({"type": ["integer", "string"]});
    output_object(&fields)
}

fn filters() -> Fields {
    vec![
        ("code", string()),
        ("internalDescription", string()),
        ("description", string()),
        ("assembled", boolean()),
        ("assemblyType", string()),
        ("itemGroup", string()),
        ("defaultUnit", string()),
        ("statusCode", integer()),
        ("barcode", string()),
    ]
}

/// `create_items`: WICS takes a bare JSON array; our input wraps it in `items`.
fn create_many(input: &Value) -> Result<Value, Error> {
    let items = input.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
    let body = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| client::body_of::<Item>(MANY, &item).map_err(|e| e.with_field(format!("items[{i}]"))))
        .collect::<Result<Vec<_>, _>>()?;
    let envelope = client::send(Request::post(MANY).json(&Value::Array(body)))?;
    Ok(client::write_result(envelope))
}

/// Answer of a conversion: the one code WICS found, under the given name.
fn convert(path: &str, input: &Value, name: &str) -> Result<Value, Error> {
    let envelope = client::send(Request::get(spoke_pdk::http::fill_path(path, input)?))?;
    let code = spoke_pdk::http::scalar_text(&envelope.data)
        .ok_or_else(|| Error::internal(format!("WICS answered a conversion without a {name}")))?;
    let mut out = serde_json::Map::new();
    out.insert(name.into(), Value::String(code));
    out.insert("message".into(), envelope.message.map(Value::String).unwrap_or(Value::Null));
    Ok(Value::Object(out))
}

pub fn ops() -> Vec<Op> {
    let item_schema = object(&create_fields(), &REQUIRED);
    vec![
        Op {
            paged: true,
            ..op("list_items", "List items, filtered and paged", Method::Get, LIST,
                client::list_input(&filters()), client::list_output(record_schema()),
                |input| client::list::<Item>(LIST, input, "an item"))
        },
        op("create_item", "Create an item", Method::Post, LIST,
            client::write_input(&[], &create_fields(), &REQUIRED), client::write_output(),
            |input| client::write(Method::Post, LIST, input, Some(client::body_of::<Item>(LIST, input)?))),
        op("create_items", "Create many items in one request", Method::Post, MANY,
            json!({"type": "object", "required": ["items"], "additionalProperties": false,
                   "properties": {"items": {"type": "array", "minItems": 1, "items": item_schema}}}),
            client::write_output(), create_many),
        op("update_item", "Update an item", Method::Put, ONE,
            client::write_input(&[("identifier", "the item code")], &update_fields(), &[]), client::write_output(),
            |input| client::write(Method::Put, ONE, input, Some(client::body_of::<Item>(ONE, input)?))),
        op("get_item_code_by_ean", "Convert an EAN barcode to the item code", Method::Get, EAN_TO_ITEM,
            client::path_input(&[("EAN", "the EAN barcode")]),
            output_object(&[("itemCode", string()), ("message", string())]),
            |input| convert(EAN_TO_ITEM, input, "itemCode")),
        op("get_ean_by_item_code", "Convert an item code to its EAN barcode", Method::Get, ITEM_TO_EAN,
            client::path_input(&[("itemCode", "the item code")]),
            output_object(&[("ean", string()), ("message", string())]),
            |input| convert(ITEM_TO_EAN, input, "ean")),
    ]
}
