//! Platform API: the dealers' authentication keys and the stock-in-store
//! locator.
use crate::client::{call, to_json};
use crate::errors::BadRequest;
use crate::models::{KeysAnswer, LocatorStockAnswer, StoresAnswer};
use crate::op;
use crate::types::{array_of, doc, envelope, input, record, t};
use spoke_pdk::http::Request;
use spoke_pdk::{json, Error, Method, Op, Value};

const KEYS: &str = "/api/v1/platform/authentication/keys.json";
const STORES: &str = "/api/v1/stock-in-store-locator/stores.json";
const STOCK: &str = "/api/v1/stock-in-store-locator/stock.json";

fn store(with_key_fields: bool) -> Value {
    let mut fields = vec![
        ("store_id", doc(t("string"), "[account]-[store], e.g. 1-1")),
        ("store_gln", t("string")),
        ("store_name", t("string")),
        ("store_address", t("string")),
        ("store_postal_code", t("string")),
        ("store_country_code", t("string")),
        ("store_phone_number", t("string")),
        ("store_email", t("string")),
        ("store_coordinates", doc(t("float[]"), "[latitude, longitude]")),
    ];
    if with_key_fields {
        fields.push(("store_city", t("string")));
        fields.push(("store_meta_data", record(&[("drg_dealer_number", t("?string"))])));
    }
    record(&fields)
}

fn list_platform_keys(_: &Value) -> Result<Value, Error> {
    let answer: KeysAnswer = call(Request::get(KEYS), BadRequest::Refused)?;
    Ok(json!({ "keys": to_json(&answer.keys)? }))
}

fn list_locator_stores(_: &Value) -> Result<Value, Error> {
    let answer: StoresAnswer = call(Request::get(STORES), BadRequest::Refused)?;
    Ok(json!({ "stores": to_json(&answer.stores)? }))
}

/// The body is the docs' bare array of `{"barcode": ...}` (or article id)
/// objects; each needs one of the two.
fn locate_stock(input: &Value) -> Result<Value, Error> {
    let items = input["items"].as_array().cloned().unwrap_or_default();
    for (i, item) in items.iter().enumerate() {
        let has = |k: &str| item.get(k).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        if !has("barcode") && !has("article_id") {
            return Err(Error::invalid_input(format!("items[{i}]"), "needs a barcode or an article_id"));
        }
    }
    let answer: LocatorStockAnswer = call(Request::post(STOCK).json(&Value::Array(items)), BadRequest::Refused)?;
    Ok(json!({ "stores": to_json(&answer.stores)?, "stock": to_json(&answer.stock)? }))
}

pub fn operations() -> Vec<Op> {
    let located = record(&[
        ("store_id", t("string")),
        ("object_id", t("integer")),
        ("barcode", t("string")),
        ("article_id", t("string")),
        ("brand_name", t("string")),
        ("is_demo", t("boolean")),
    ]);
    let lookup = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {"barcode": {"type": "string", "minLength": 1}, "article_id": {"type": "string", "minLength": 1}}
    });
    vec![
        op(
            "list_platform_keys",
            "The API keys of the dealers' stores associated with this platform account.",
            Method::Get,
            KEYS,
            input(&[], &[]),
            envelope(&[("keys", array_of(record(&[("key", t("string")), ("is_active", t("boolean")), ("store", store(true))])))]),
            list_platform_keys,
        ),
        op(
            "list_locator_stores",
            "Stores taking part in the stock-in-store locator.",
            Method::Get,
            STORES,
            input(&[], &[]),
            envelope(&[("stores", array_of(store(false)))]),
            list_locator_stores,
        ),
        Op {
            idempotent: true,
            ..op(
                "locate_stock",
                "Which associated stores have objects with the given barcodes / article ids in stock.",
                Method::Post,
                STOCK,
                input(&[("items", doc(json!({"type": "array", "minItems": 1, "items": lookup}), "objects to locate"))], &["items"]),
                envelope(&[("stores", array_of(store(false))), ("stock", array_of(located))]),
                locate_stock,
            )
        },
    ]
}
