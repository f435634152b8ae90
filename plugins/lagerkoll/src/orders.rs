//! Customer orders: reading, creating, rows, and every state change.
use crate::api::{Worker, no_check, param, read, write, Body, Default, Endpoint, Kind, Output, Param};
use crate::models::{
    Article, CustomerOrder, CustomerOrderCost, CustomerOrderProduct, CustomerOrdersResponse, PurchaseOrdersResponse,
    ORDER_STATE_FILTERS,
};
use crate::params::*;
use crate::scalars::Schema;
use spoke_pdk::{Error, Method, Op, Value};

const ORDER: Output = Output::Record { schema: CustomerOrder::schema, read: read::<CustomerOrder>, unwrap: None };
/// Get-by-id answers a CustomerOrdersResponse holding the one order.
const ONE_ORDER: Output = Output::Record { schema: CustomerOrder::schema, read: read::<CustomerOrder>, unwrap: Some("orders") };
const ORDERS_PAGE: Output =
    Output::Page { key: "orders", schema: CustomerOrdersResponse::schema, read: read::<CustomerOrdersResponse> };
/// The bulk state changes are documented as answering one order or a
/// CustomerOrdersResponse; either way the output is `{orders: [...]}`.
const ORDER_LIST: Output = Output::List { key: "orders", schema: CustomerOrder::schema, read: read::<CustomerOrder> };
const PURCHASE_ORDERS: Output =
    Output::Page { key: "orders", schema: PurchaseOrdersResponse::schema, read: read::<PurchaseOrdersResponse> };

const SEND_PARAMS: &[Param] = &[FINISH_PICKINGLISTS, CREATE_REST_ORDER];
const STATE_FILTER: Kind = Kind::IntEnum(&ORDER_STATE_FILTERS);

/// A batch row needs a batch id or a serial number.
fn check_batches(batches: Option<&Value>, path: &str) -> Result<(), Error> {
    for (i, b) in batches.and_then(Value::as_array).into_iter().flatten().enumerate() {
        let set = |k: &str| b.get(k).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        if !set("batchId") && !set("serialNr") {
            return Err(Error::invalid_input(format!("{path}.batches[{i}]"), "needs batchId or serialNr"));
        }
    }
    Ok(())
}

/// An article row needs an ordered amount; a free-text row only a description.
fn check_new_row(row: &Value, path: &str) -> Result<(), Error> {
    let has = |k: &str| row.get(k).is_some_and(|v| !v.is_null());
    if has("articleId") {
        if !has("orderedAmount") {
            return Err(Error::invalid_input(format!("{path}.orderedAmount"), "is required for an article row"));
        }
    } else if !has("description") {
        return Err(Error::invalid_input(format!("{path}.articleId"), "is required unless the row is a free-text row with a description"));
    }
    check_batches(row.get("batches"), path)
}

fn check_new_order(order: &Value) -> Result<(), Error> {
    for (i, row) in order.get("products").and_then(Value::as_array).into_iter().flatten().enumerate() {
        check_new_row(row, &format!("order.products[{i}]"))?;
    }
    Ok(())
}

fn check_add_row(row: &Value) -> Result<(), Error> {
    check_new_row(row, "row")
}

/// Rows are matched by id or row index.
fn check_existing_row(row: &Value) -> Result<(), Error> {
    if row.get("id").is_none_or(Value::is_null) && row.get("rowIndex").is_none_or(Value::is_null) {
        return Err(Error::invalid_input("row.id", "is required (or row.rowIndex) to find the row"));
    }
    check_batches(row.get("batches"), "row")
}

const fn order_body(description: &'static str, required: &'static [&'static str], check: fn(&Value) -> Result<(), Error>) -> Body {
    Body::Model { key: "order", description, schema: CustomerOrder::schema, write: write::<CustomerOrder>, required, check }
}

const fn row_body(description: &'static str, check: fn(&Value) -> Result<(), Error>) -> Body {
    Body::Model { key: "row", description, schema: CustomerOrderProduct::schema, write: write::<CustomerOrderProduct>, required: &[], check }
}

const fn state_change(name: &'static str, description: &'static str, path: &'static str, params: &'static [Param]) -> Endpoint {
    Endpoint { name, description, method: Method::Put, path, params, body: Body::None, output: ORDER, worker: Worker::None }
}

const fn bulk(name: &'static str, description: &'static str, path: &'static str, params: &'static [Param]) -> Endpoint {
    Endpoint { name, description, method: Method::Put, path, params, body: Body::OrderIds, output: ORDER_LIST, worker: Worker::None }
}

const fn get(name: &'static str, description: &'static str, path: &'static str, params: &'static [Param], output: Output) -> Endpoint {
    Endpoint { name, description, method: Method::Get, path, params, body: Body::None, output, worker: Worker::None }
}

pub static GET_ORDER_BY_EXTERNAL_ID: Endpoint = get(
    "get_order_by_external_id",
    "Get one customer order by the order id of an external system",
    "/v1/customer_orders/external/{external_id}",
    &[],
    ONE_ORDER,
);
pub static GET_ORDER: Endpoint = get("get_order", "Get one customer order by id", "/v1/customer_orders/{id}", &[], ONE_ORDER);
pub static LIST_ORDERS: Endpoint = get(
    "list_orders",
    "List customer orders, filtered by customer, state, change time or free text",
    "/v1/customer_orders",
    &[
        param("customer_id", Kind::Int, Default::None, "only this customer's orders"),
        param("state", STATE_FILTER, Default::Int(-1), "-1 = all states"),
        SINCE,
        PAGE,
        LIMIT,
        QUERY,
        param(
            "sort_column",
            Kind::Enum(&["id", "customer", "order_date", "delivery_date", "delivered_date", "state", "way_of_delivery", "order_value"]),
            Default::Text("id"),
            "",
        ),
        ORDER_DESC,
    ],
    ORDERS_PAGE,
);
pub static LIST_ORDERS_BY_ARTICLE: Endpoint = get(
    "list_orders_by_article",
    "List customer orders containing an article, optionally one batch or serial number",
    "/v1/customer_orders/article/{article_id}",
    &[
        param("batch", Kind::Text, Default::None, "only orders with this batch"),
        param("serialnumber", Kind::Text, Default::None, "only orders with this serial number"),
        param("max_state", STATE_FILTER, Default::None, "only orders up to this state"),
        FROM,
        TO,
        PAGE,
        LIMIT,
        param("sort_column", Kind::Enum(&["id", "customer", "order_date", "delivery_date", "delivered_date", "state"]), Default::Text("id"), ""),
        ORDER_DESC,
    ],
    ORDERS_PAGE,
);
pub static LIST_ORDER_PURCHASE_ORDERS: Endpoint = get(
    "list_order_purchase_orders",
    "List the drop-shipment purchase orders of a customer order",
    "/v1/customer_orders/{order_id}/purchase_orders",
    &[],
    PURCHASE_ORDERS,
);
pub static LIST_ORDERS_BY_STATE: Endpoint = get(
    "list_orders_by_state",
    "List customer orders in one state",
    "/v1/customer_orders/state/{state}",
    &[FROM, TO, PAGE, LIMIT, param("sort_column", Kind::Enum(&["id", "delivery_date", "delivered_date"]), Default::Text("id"), ""), ORDER_DESC],
    ORDERS_PAGE,
);
pub static LIST_ORDER_PRODUCTS: Endpoint = get(
    "list_order_products",
    "List the articles of a customer order with their details",
    "/v1/customer_orders/{id}/products",
    &[],
    Output::List { key: "products", schema: Article::schema, read: read::<Article> },
);
pub static GET_ORDER_COST: Endpoint = get(
    "get_order_cost",
    "Get the cost of a customer order per article",
    "/v1/customer_orders/cost/{id}",
    &[],
    Output::Record { schema: CustomerOrderCost::schema, read: read::<CustomerOrderCost>, unwrap: None },
);
pub static ADD_ORDER: Endpoint = Endpoint {
    name: "add_order",
    description: "Add a new customer order",
    method: Method::Post,
    path: "/v1/customer_orders",
    params: &[],
    body: order_body("the new order; customerId must point to an existing customer", &["customerId"], check_new_order),
    output: ORDER,
    worker: Worker::None,
};
pub static ADD_ORDER_ROW: Endpoint = Endpoint {
    name: "add_order_row",
    description: "Add an article or free-text row to a customer order",
    method: Method::Post,
    path: "/v1/customer_orders/{id}/product",
    params: &[],
    body: row_body("the new row", check_add_row),
    output: ORDER,
    worker: Worker::None,
};
pub static CREATE_DROP_SHIPMENT: Endpoint = Endpoint {
    name: "create_drop_shipment",
    description: "Create drop-shipment purchase orders from a customer order and move it to DROP SHIPMENT",
    method: Method::Post,
    path: "/v1/customer_orders/{order_id}/dropshipment",
    params: &[param(
        "is_dropshipment",
        Kind::Bool,
        Default::Bool(true),
        "true: remove the order's picking lists and mark it drop shipment; false: only create purchase orders matching the order",
    )],
    body: Body::None,
    output: PURCHASE_ORDERS,
    worker: Worker::None,
};
pub static INVOICE_ORDER: Endpoint = state_change(
    "invoice_order",
    "Set a customer order to INVOICED (an invoicing integration such as Fortnox then creates the invoice)",
    "/v1/customer_orders/{order_id}/invoice",
    &[INVOICE_TYPE],
);
pub static MARK_ORDER_DELIVERED: Endpoint = state_change(
    "mark_order_delivered",
    "Mark a sent or freight-booked customer order as delivered",
    "/v1/customer_orders/{order_id}/delivered",
    &[],
);
pub static SEND_ORDER: Endpoint = state_change("send_order", "Set a customer order to SENT", "/v1/customer_orders/{order_id}/send", SEND_PARAMS);
pub static MARK_ORDER_READY_FOR_PACKING: Endpoint = state_change(
    "mark_order_ready_for_packing",
    "Set a customer order to READY_FOR_PACKING; its picking lists are created",
    "/v1/customer_orders/{order_id}/ready_for_packing",
    &[],
);
pub static MARK_ORDERS_READY_FOR_PACKING: Endpoint = bulk(
    "mark_orders_ready_for_packing",
    "Set several customer orders to READY_FOR_PACKING; their picking lists are created",
    "/v1/customer_orders/ready_for_packing",
    &[],
);
pub static CANCEL_ORDER: Endpoint = state_change(
    "cancel_order",
    "Cancel a customer order; it is then closed for good",
    "/v1/customer_orders/{order_id}/cancel",
    &[],
);
pub static CANCEL_DROP_SHIPMENT: Endpoint = state_change(
    "cancel_drop_shipment",
    "Cancel the drop-shipment purchase orders of a customer order and set it back to READY_FOR_PACKING",
    "/v1/customer_orders/{order_id}/dropshipment/cancel",
    &[],
);
pub static INVOICE_ORDERS: Endpoint =
    bulk("invoice_orders", "Set several customer orders to INVOICED", "/v1/customer_orders/invoice", &[INVOICE_TYPE]);
pub static MARK_ORDER_FREIGHT_BOOKED: Endpoint = state_change(
    "mark_order_freight_booked",
    "Set a customer order to freight booked",
    "/v1/customer_orders/{order_id}/freight_booked",
    &[],
);
pub static SEND_ORDERS: Endpoint = bulk("send_orders", "Set several customer orders to SENT", "/v1/customer_orders/send", SEND_PARAMS);
pub static UPDATE_ORDER: Endpoint = Endpoint {
    name: "update_order",
    description: "Update a customer order (not its state; once invoiced only externalInvoiceReference1/2 change)",
    method: Method::Put,
    path: "/v1/customer_orders/{id}",
    params: &[],
    body: order_body("the fields to change; state is ignored here", &[], no_check),
    output: ORDER,
    worker: Worker::None,
};
pub static UPDATE_ORDER_ROW: Endpoint = Endpoint {
    name: "update_order_row",
    description: "Update an article or free-text row of a customer order, found by row id or row index",
    method: Method::Put,
    path: "/v1/customer_orders/{id}/product",
    params: &[],
    body: row_body("the row with its id (or rowIndex) and the fields to change", check_existing_row),
    output: ORDER,
    worker: Worker::None,
};
pub static REMOVE_ORDER_ROW: Endpoint = Endpoint {
    name: "remove_order_row",
    description: "Remove an article or free-text row of a customer order, found by row id or row index",
    method: Method::Put,
    path: "/v1/customer_orders/{id}/product/remove",
    params: &[],
    body: row_body("the row to remove, with its id (or rowIndex)", check_existing_row),
    output: ORDER,
    worker: Worker::None,
};
pub static SEND_ORDER_CONFIRMATION: Endpoint = Endpoint {
    name: "send_order_confirmation",
    description: "E-mail the order confirmation PDF of a customer order",
    method: Method::Put,
    path: "/v1/customer_orders/{order_id}/confirmation/send",
    params: &[],
    body: Body::Email,
    output: Output::Done,
    worker: Worker::None,
};
pub static MARK_ORDER_PACKED: Endpoint =
    state_change("mark_order_packed", "Set a customer order to PACKED", "/v1/customer_orders/{order_id}/packed", SEND_PARAMS);

pub fn operations() -> Vec<Op> {
    crate::ops!(
        GET_ORDER_BY_EXTERNAL_ID,
        GET_ORDER,
        LIST_ORDERS,
        LIST_ORDERS_BY_ARTICLE,
        LIST_ORDER_PURCHASE_ORDERS,
        LIST_ORDERS_BY_STATE,
        LIST_ORDER_PRODUCTS,
        GET_ORDER_COST,
        ADD_ORDER,
        ADD_ORDER_ROW,
        CREATE_DROP_SHIPMENT,
        INVOICE_ORDER,
        MARK_ORDER_DELIVERED,
        SEND_ORDER,
        MARK_ORDER_READY_FOR_PACKING,
        MARK_ORDERS_READY_FOR_PACKING,
        CANCEL_ORDER,
        CANCEL_DROP_SHIPMENT,
        INVOICE_ORDERS,
        MARK_ORDER_FREIGHT_BOOKED,
        SEND_ORDERS,
        UPDATE_ORDER,
        UPDATE_ORDER_ROW,
        REMOVE_ORDER_ROW,
        SEND_ORDER_CONFIRMATION,
        MARK_ORDER_PACKED,
    )
}
