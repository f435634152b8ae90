//! Warehouse inbound (backlog, delivered items) and workshop assemblies:
//! the offset-paged lists.
use crate::client::{offset_list, with_query};
use crate::models::{BacklogItem, DeliveredItem, WorkshopAssembly};
use crate::types::{all_pages, array_of, doc, envelope, input, record, t};
use crate::op;
use spoke_pdk::http::Request;
use spoke_pdk::{json, Error, Method, Op, Value};

const BACKLOG: &str = "/api/v1/warehouse/inbound/backlog.json";
const DELIVERED: &str = "/api/v1/warehouse/inbound/delivered-items.json";
const ASSEMBLIES: &str = "/api/v1/warehouse/workshop/assemblies.json";

fn offset() -> Value {
    doc(json!({"type": "integer", "minimum": 0}), "pagination offset (a previous answer's pagination.next_offset)")
}

fn offset_output(item: Value) -> Value {
    envelope(&[("data", array_of(item)), ("pagination", record(&[("next_offset", t("?integer"))]))])
}

/// Input of the lists filtered by a required date interval.
fn date_interval_input() -> Value {
    input(
        &[
            ("start_date", doc(t("date"), "start of the interval (yyyy-mm-dd)")),
            ("end_date", doc(t("date"), "end of the interval (yyyy-mm-dd)")),
            ("offset", offset()),
            ("all_pages", all_pages()),
        ],
        &["start_date", "end_date"],
    )
}

/// The interval must not run backwards; the schema cannot compare fields.
fn check_interval(input: &Value) -> Result<(), Error> {
    let start = input["start_date"].as_str().unwrap_or_default();
    let end = input["end_date"].as_str().unwrap_or_default();
    if end < start {
        return Err(Error::invalid_input("end_date", format!("{end} is before start_date {start}")));
    }
    Ok(())
}

fn backlog_item() -> Value {
    record(&[
        ("id", t("integer")),
        ("supplier_id", t("integer")),
        ("is_sold_to_customer", t("boolean")),
        ("in_transit", t("boolean")),
        ("article_id", t("string")),
        ("barcode", t("string")),
        ("supplier_reference", t("string")),
        ("supplier_reference_2", t("string")),
        ("delivery_date", t("date")),
        ("original_delivery_date", t("date")),
        ("external_remarks", t("string")),
        ("internal_remarks", t("?string")),
        ("created_at", t("datetime")),
        ("modified_at", t("datetime")),
        (
            "assignment",
            crate::types::nullable(record(&[
                ("assigned_to_entity_type_id", t("integer")),
                ("assigned_to_entity_id", t("integer")),
                ("outbound_order_id", t("integer")),
                ("reference", t("string")),
            ])),
        ),
    ])
}

fn delivered_item() -> Value {
    record(&[
        ("article_id", t("string")),
        ("barcode", t("string")),
        ("datetime_delivered", t("datetime")),
        ("inbound_delivery_id", t("integer")),
        ("inbound_delivery_item_id", t("integer")),
        ("packinglist_number", t("string")),
        ("purchase_price_cents", t("cents")),
        ("quantity_missing", t("integer")),
        ("quantity_packinglist", t("integer")),
        ("quantity_scanned", t("integer")),
        ("quantity_stocked", t("integer")),
        ("supplier_id", t("integer")),
    ])
}

fn assembly() -> Value {
    record(&[
        ("stock_item_id", t("integer")),
        ("is_assembled", t("boolean")),
        ("released_by", t("string")),
        ("scheduled_for_release_at", t("date")),
        ("released_for_shipment_at", t("date")),
        ("claimed_by_dealer_id", t("integer")),
        ("outbound_order_id", t("integer")),
        ("outbound_order_item_id", t("integer")),
        ("outbound_shipment_id", t("integer")),
        ("outbound_shipment_item_id", t("integer")),
        ("is_sold_to_customer", t("boolean")),
    ])
}

fn list_inbound_backlog(input: &Value) -> Result<Value, Error> {
    offset_list::<BacklogItem>(|| with_query(Request::get(BACKLOG), input, &["supplier_id", "is_assigned"]), input)
}

fn list_delivered_items(input: &Value) -> Result<Value, Error> {
    check_interval(input)?;
    offset_list::<DeliveredItem>(|| with_query(Request::get(DELIVERED), input, &["start_date", "end_date"]), input)
}

fn list_workshop_assemblies(input: &Value) -> Result<Value, Error> {
    check_interval(input)?;
    offset_list::<WorkshopAssembly>(|| with_query(Request::get(ASSEMBLIES), input, &["start_date", "end_date"]), input)
}

pub fn operations() -> Vec<Op> {
    vec![
        Op {
            paged: true,
            ..op(
                "list_inbound_backlog",
                "Goods still to be delivered to the warehouse (inbound backlog), optionally per supplier or only assigned items.",
                Method::Get,
                BACKLOG,
                input(
                    &[
                        ("supplier_id", doc(t("id"), "only this supplier (see the common API for supplier ids)")),
                        ("is_assigned", doc(t("switch"), "1: only items assigned to an outbound order")),
                        ("offset", offset()),
                        ("all_pages", all_pages()),
                    ],
                    &[],
                ),
                offset_output(backlog_item()),
                list_inbound_backlog,
            )
        },
        Op {
            paged: true,
            ..op(
                "list_delivered_items",
                "Inbound goods delivered between start_date and end_date.",
                Method::Get,
                DELIVERED,
                date_interval_input(),
                offset_output(delivered_item()),
                list_delivered_items,
            )
        },
        Op {
            paged: true,
            ..op(
                "list_workshop_assemblies",
                "Stock items assembled / released for shipment by the workshop between start_date and end_date.",
                Method::Get,
                ASSEMBLIES,
                date_interval_input(),
                offset_output(assembly()),
                list_workshop_assemblies,
            )
        },
    ]
}
