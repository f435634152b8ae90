//! Warehouse outbound orders (open items, pool-to-regular, cancel) and
//! shipments (an item delivered or not delivered).
use crate::client::{call, call_value, page_list, to_json};
use crate::errors::BadRequest;
use crate::models::{CancelOutboundOrderAnswer, OpenOrderItem};
use crate::op;
use crate::types::{all_pages, array_of, doc, envelope, input, record, t};
use spoke_pdk::http::{fill_path, Request};
use spoke_pdk::{json, Error, Method, Op, Value};

const OPEN_ORDERS: &str = "/api/v1/warehouse/outbound/order/open-orders.json";
const POOL_TO_REGULAR: &str = "/api/v1/warehouse/outbound/order/{outbound_order_id}/pool-to-regular.json";
const CANCEL_ORDER: &str = "/api/v1/warehouse/outbound/order/{outbound_order_id}/cancel.json";
const DELIVERED: &str = "/api/v1/warehouse/outbound/item/{stock_item_id}/delivered.json";
const NOT_DELIVERED: &str = "/api/v1/warehouse/outbound/item/{stock_item_id}/not-delivered.json";

fn open_item() -> Value {
    record(&[
        ("dealer_id", t("integer")),
        ("outbound_order_id", t("integer")),
        ("outbound_order_item_id", t("integer")),
        ("created_at", t("datetime")),
        ("ecommerce_reference_id", t("string")),
        ("ecommerce_reference_text", t("string")),
        ("barcode", t("string")),
        ("description", t("string")),
        ("quantity", t("integer")),
        ("quantity_claimed", t("integer")),
        ("quantity_shipped", t("integer")),
        ("reference", t("string")),
        ("is_sold_to_customer", t("boolean")),
        ("is_blocked_for_claiming", t("boolean")),
        ("is_pooled_within_stores", t("boolean")),
    ])
}

fn list_open_outbound_order_items(input: &Value) -> Result<Value, Error> {
    page_list::<OpenOrderItem>(|| Request::get(OPEN_ORDERS), input)
}

/// A POST with only an id in the path and the plain `{error, error_message}`
/// answer; the vendor refusing it is a conflict with the thing's state.
fn post_state_change(template: &str, input: &Value) -> Result<Value, Error> {
    call_value(Request::post(fill_path(template, input)?), BadRequest::Conflict)
}

fn pool_to_regular(input: &Value) -> Result<Value, Error> {
    post_state_change(POOL_TO_REGULAR, input)
}

fn cancel_outbound_order(input: &Value) -> Result<Value, Error> {
    let answer: CancelOutboundOrderAnswer = call(Request::post(fill_path(CANCEL_ORDER, input)?), BadRequest::Conflict)?;
    Ok(json!({ "result": to_json(&answer.result)? }))
}

fn mark_item_delivered(input: &Value) -> Result<Value, Error> {
    post_state_change(DELIVERED, input)
}

fn mark_item_not_delivered(input: &Value) -> Result<Value, Error> {
    post_state_change(NOT_DELIVERED, input)
}

fn id_input(name: &str, text: &str) -> Value {
    input(&[(name, doc(t("id"), text))], &[name])
}

pub fn operations() -> Vec<Op> {
    let order_id = || id_input("outbound_order_id", "outbound order id");
    let stock_item_id = || id_input("stock_item_id", "stock item id in the warehouse");
    vec![
        Op {
            paged: true,
            ..op(
                "list_open_outbound_order_items",
                "Open outbound order items (quantity shipped < quantity), by page.",
                Method::Get,
                OPEN_ORDERS,
                input(
                    &[("page", doc(json!({"type": "integer", "minimum": 1}), "page number, from 1 (default 1)")), ("all_pages", all_pages())],
                    &[],
                ),
                envelope(&[
                    ("data", array_of(open_item())),
                    ("pagination", record(&[("page", t("integer")), ("count", t("integer")), ("has_next_page", t("boolean"))])),
                ]),
                list_open_outbound_order_items,
            )
        },
        Op {
            // Converting an order that is already regular leaves it regular.
            idempotent: true,
            ..op(
                "pool_to_regular",
                "Convert a POOL outbound order to a regular order.",
                Method::Post,
                POOL_TO_REGULAR,
                order_id(),
                envelope(&[]),
                pool_to_regular,
            )
        },
        op(
            "cancel_outbound_order",
            "Cancel an outbound order; also attempts to cancel the related supplier order in POS.",
            Method::Post,
            CANCEL_ORDER,
            order_id(),
            envelope(&[("result", array_of(record(&[("outbound_order_item_id", t("integer")), ("unclaimed_stock", t("integer"))])))]),
            cancel_outbound_order,
        ),
        Op {
            idempotent: true,
            ..op(
                "mark_item_delivered",
                "Mark the shipment of a stock item as delivered.",
                Method::Post,
                DELIVERED,
                stock_item_id(),
                envelope(&[]),
                mark_item_delivered,
            )
        },
        Op {
            idempotent: true,
            ..op(
                "mark_item_not_delivered",
                "Mark the shipment of a stock item as not delivered (the package could not be delivered).",
                Method::Post,
                NOT_DELIVERED,
                stock_item_id(),
                envelope(&[]),
                mark_item_not_delivered,
            )
        },
    ]
}
