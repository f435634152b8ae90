//! Warehouse stock: stock info per barcode (GET with the barcodes in the
//! path, POST with a list) and the warehouse and POS stock lists.
use crate::client::{call, to_json, with_query};
use crate::errors::BadRequest;
use crate::models::{PosStockItem, StockInfo, WarehouseStockItem};
use crate::op;
use crate::types::{array_of, doc, envelope, input, record, t};
use serde::Deserialize;
use spoke_pdk::http::{encode_segment, Request};
use spoke_pdk::{json, Error, Method, Op, Value};

const STOCK_INFO_GET: &str = "/app/api/whm/stockinfo/{barcodes}";
const STOCK_INFO_POST: &str = "/app/api/whm/stockinfo/";
const WAREHOUSE_ITEMS: &str = "/api/v1/warehouse/stock/items.json";
const POS_ITEMS: &str = "/api/v1/warehouse/stock/pos-items.json";

/// The documented query switches of stock-info, sent on GET and POST alike.
const STOCK_INFO_FLAGS: [&str; 6] = [
    "stock_items",
    "no_remote_supplier_check",
    "only_supplier_stock",
    "only_supplier_id",
    "remote_supplier_check_if_not_in_warehouse",
    "always_remote_supplier_check",
];

fn stock_info_input() -> Value {
    input(
        &[
            (
                "barcodes",
                doc(
                    json!({"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1, "maxLength": 64}}),
                    "article barcodes to look up",
                ),
            ),
            ("stock_items", doc(t("switch"), "1: include details about the stock items")),
            ("no_remote_supplier_check", doc(t("switch"), "1: no remote supplier checks")),
            ("only_supplier_stock", doc(t("switch"), "1: only remote supplier stock; store and warehouse stock are ignored")),
            ("only_supplier_id", doc(t("id"), "only this supplier is included in supplier stock checks")),
            ("remote_supplier_check_if_not_in_warehouse", doc(t("switch"), "1: check the supplier when the warehouse has no stock")),
            ("always_remote_supplier_check", doc(t("switch"), "1: always check the supplier")),
        ],
        &["barcodes"],
    )
}

fn stock_info_output() -> Value {
    let store = record(&[
        ("dealer_id", t("integer")),
        ("store_name", t("string")),
        ("store_phone", t("string")),
        ("quantity", t("integer")),
        ("quantity_demo", t("integer")),
        ("quantity_used", t("integer")),
        ("quantity_rental", t("integer")),
    ]);
    let item = record(&[
        ("barcode", t("string")),
        ("stock_available", t("boolean")),
        // The docs type these `?date` but their example writes dd-mm-yyyy,
        // so the output does not promise a format.
        ("delivery_date", t("?string")),
        ("delivery_date_supplier", t("?string")),
        ("delivery_date_backlog", t("?string")),
        ("stock_supplier", t("?boolean")),
        ("stock_quantity", t("integer")),
        ("stock_quantity_stores", t("integer")),
        ("stock_quantity_warehouse", t("integer")),
        ("stock_stores", array_of(store)),
        ("supplier_id", t("?string")),
        ("article_id", t("string")),
        ("stock_items", doc(array_of(t("object")), "with stock_items=1: the stock items (records not described by the docs)")),
    ]);
    envelope(&[("data", record(&[("status", t("boolean")), ("result_items", array_of(item))]))])
}

/// Barcodes become path segments on GET; a separator or space in one would
/// change the path, so only plain barcode characters pass.
fn checked_barcodes(input: &Value) -> Result<Vec<String>, Error> {
    let list = input["barcodes"].as_array().cloned().unwrap_or_default();
    list.iter()
        .enumerate()
        .map(|(i, b)| {
            let text = b.as_str().unwrap_or_default();
            if text.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c)) && text != "." && text != ".." {
                Ok(text.to_string())
            } else {
                Err(Error::invalid_input(format!("barcodes[{i}]"), format!("{text:?} may only contain letters, digits, '-', '_' and '.'")))
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct StockInfoAnswer {
    data: StockInfo,
}

fn stock_info(req: Request, input: &Value) -> Result<Value, Error> {
    let answer: StockInfoAnswer = call(with_query(req, input, &STOCK_INFO_FLAGS), BadRequest::Refused)?;
    Ok(json!({"data": to_json(&answer.data)?}))
}

fn get_stock_info(input: &Value) -> Result<Value, Error> {
    let barcodes = checked_barcodes(input)?;
    // The docs write the GET form with a trailing slash after the last barcode.
    let path = format!("/app/api/whm/stockinfo/{}/", barcodes.iter().map(|b| encode_segment(b)).collect::<Vec<_>>().join("/"));
    stock_info(Request::get(path), input)
}

fn query_stock_info(input: &Value) -> Result<Value, Error> {
    let barcodes = checked_barcodes(input)?;
    stock_info(Request::post(STOCK_INFO_POST).json(&json!({ "barcodes": barcodes })), input)
}

#[derive(Deserialize)]
struct ListAnswer<T> {
    data: Vec<T>,
}

fn list_warehouse_stock(_: &Value) -> Result<Value, Error> {
    let answer: ListAnswer<WarehouseStockItem> = call(Request::get(WAREHOUSE_ITEMS), BadRequest::Refused)?;
    Ok(json!({"data": to_json(&answer.data)?}))
}

fn list_pos_stock(_: &Value) -> Result<Value, Error> {
    let answer: ListAnswer<PosStockItem> = call(Request::get(POS_ITEMS), BadRequest::Refused)?;
    Ok(json!({"data": to_json(&answer.data)?}))
}

fn custom_variables() -> Vec<(&'static str, Value)> {
    ["custom_variable_1", "custom_variable_2", "custom_variable_3", "custom_variable_4", "custom_variable_5"]
        .into_iter()
        .map(|k| (k, t("string")))
        .collect()
}

fn warehouse_item() -> Value {
    let mut fields = vec![
        ("stock_item_id", t("integer")),
        ("outbound_order_id", t("integer")),
        ("supplier", t("string")),
        ("article_id", t("string")),
        ("barcode", t("string")),
        ("description", t("string")),
        ("frame_id", t("string")),
        ("purchase_price_cents", t("cents")),
        ("purchase_price_cents_packinglist", t("cents")),
        ("dealer_rrp_cents", t("cents")),
        ("claimed_for_account_id", t("?integer")),
        ("claimed_for_store_id", t("?integer")),
        ("is_blocked_for_claiming", t("boolean")),
        ("is_claimed_for_obo", t("boolean")),
        ("is_sold_to_customer", t("boolean")),
        ("is_shipped", t("boolean")),
        ("is_deleted", t("boolean")),
        ("stocked_at", t("datetime")),
        ("shipped_at", t("?datetime")),
    ];
    fields.extend(custom_variables());
    record(&fields)
}

fn pos_item() -> Value {
    let mut fields = vec![
        ("account_id", t("integer")),
        ("store_id", t("integer")),
        ("object_id", t("integer")),
        ("sales_order_id", t("integer")),
        ("supplier", t("string")),
        ("article_id", t("string")),
        ("barcode", t("string")),
        ("description", t("string")),
        ("frame_id", t("string")),
        ("purchase_price_cents", t("cents")),
        ("purchase_price_cents_packinglist", t("cents")),
        ("dealer_rrp_cents", t("cents")),
        ("is_sold_to_customer", t("boolean")),
        ("is_demo", t("boolean")),
        ("has_invoice", t("boolean")),
        ("stocked_at", t("date")),
        ("is_deleted", t("boolean")),
        ("is_rental", t("boolean")),
        ("is_used", t("boolean")),
    ];
    fields.extend(custom_variables());
    record(&fields)
}

pub fn operations() -> Vec<Op> {
    vec![
        op(
            "get_stock_info",
            "Stock availability (stores, warehouse, supplier) for barcodes given in the path (GET).",
            Method::Get,
            STOCK_INFO_GET,
            stock_info_input(),
            stock_info_output(),
            get_stock_info,
        ),
        Op {
            // A lookup: posting the same list twice changes nothing.
            idempotent: true,
            ..op(
                "query_stock_info",
                "Stock availability (stores, warehouse, supplier) for a posted list of barcodes (POST).",
                Method::Post,
                STOCK_INFO_POST,
                stock_info_input(),
                stock_info_output(),
                query_stock_info,
            )
        },
        op(
            "list_warehouse_stock",
            "Every object in the warehouse.",
            Method::Get,
            WAREHOUSE_ITEMS,
            input(&[], &[]),
            envelope(&[("data", array_of(warehouse_item()))]),
            list_warehouse_stock,
        ),
        op(
            "list_pos_stock",
            "Every stocked object in the POS stores.",
            Method::Get,
            POS_ITEMS,
            input(&[], &[]),
            envelope(&[("data", array_of(pos_item()))]),
            list_pos_stock,
        ),
    ]
}
