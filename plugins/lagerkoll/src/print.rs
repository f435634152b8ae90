//! The print endpoints: PDF files (Excel for labels), returned as bytes.
use crate::api::{param, Body, Default, Endpoint, Kind, Output, Param, Worker};
use crate::params::*;
use spoke_pdk::{Method, Op};

const PRINT_STATES: &[i64] = &[0, 5, 10, 15, 20, 30, 40, 45, 50, 60];
const PRINT_SORT: Param =
    param("sort_column", Kind::Enum(&["id", "delivery_date", "delivered_date", "state"]), Default::Text("id"), "");

const fn print(name: &'static str, description: &'static str, path: &'static str, params: &'static [Param]) -> Endpoint {
    Endpoint { name, description, method: Method::Get, path, params, body: Body::None, output: Output::File, worker: Worker::None }
}

pub static PRINT_INVOICE: Endpoint =
    print("print_invoice", "The invoice of a customer order as a PDF file", "/v1/customer_orders/{id}/invoice/print", &[]);
pub static PRINT_PICKING_LIST: Endpoint = print(
    "print_picking_list",
    "A picking list of a customer order as a PDF file",
    "/v1/customer_orders/{order_id}/pickinglist/{list_id}/print",
    &[],
);
pub static PRINT_ORDER: Endpoint = print("print_order", "A customer order as a PDF file", "/v1/customer_orders/{id}/print", &[]);
pub static PRINT_DELIVERY_NOTE: Endpoint = print(
    "print_delivery_note",
    "The delivery note of a customer order as a PDF file",
    "/v1/customer_orders/{id}/delivery_note/print",
    &[param("picking_list_id", Kind::Int, Default::None, "only this picking list's part")],
);
pub static PRINT_DELIVERY_NOTES: Endpoint = print(
    "print_delivery_notes",
    "Delivery notes of all customer orders in a state (default PACKED, ready to be sent) as one PDF file",
    "/v1/customer_orders/delivery_notes/print",
    &[param("state", Kind::IntEnum(PRINT_STATES), Default::Int(20), ""), PAGE, PAGE_SIZE, SORT_ORDER_ASC, PRINT_SORT],
);
pub static PRINT_LABELS: Endpoint = print(
    "print_labels",
    "Customer order data as a labels file (Excel)",
    "/v1/customer_orders/print_labels",
    &[PAGE, PAGE_SIZE, SORT_ORDER_ASC, PRINT_SORT],
);
pub static PRINT_PICKING_LISTS: Endpoint = print(
    "print_picking_lists",
    "All picking lists ready to be picked as one PDF file",
    "/v1/customer_orders/pickinglists/print",
    &[PAGE, PAGE_SIZE],
);

pub fn operations() -> Vec<Op> {
    crate::ops!(
        PRINT_INVOICE,
        PRINT_PICKING_LIST,
        PRINT_ORDER,
        PRINT_DELIVERY_NOTE,
        PRINT_DELIVERY_NOTES,
        PRINT_LABELS,
        PRINT_PICKING_LISTS,
    )
}
