//! Offers (quotes): NEW until approved (closed, becomes an order) or cancelled.
use crate::api::{Worker, no_check, param, read, write, Body, Default, Endpoint, Kind, Output};
use crate::models::{Offer, OffersResponse, OFFER_STATES};
use crate::params::*;
use crate::scalars::Schema;
use spoke_pdk::{Error, Method, Op, Value};

const OFFER: Output = Output::Record { schema: Offer::schema, read: read::<Offer>, unwrap: None };
const ONE_OFFER: Output = Output::Record { schema: Offer::schema, read: read::<Offer>, unwrap: Some("offers") };
const OFFERS_PAGE: Output = Output::Page { key: "offers", schema: OffersResponse::schema, read: read::<OffersResponse> };
const OFFER_STATE_FILTERS: [i64; 4] = [-1, OFFER_STATES[0], OFFER_STATES[1], OFFER_STATES[2]];

/// Rows of a new offer carry what the documentation marks mandatory on POST.
fn check_new_offer(offer: &Value) -> Result<(), Error> {
    for (i, row) in offer.get("rows").and_then(Value::as_array).into_iter().flatten().enumerate() {
        for key in ["amount", "salesPrice", "purchasePrice", "purchaseCurrency"] {
            if row.get(key).is_none_or(Value::is_null) {
                return Err(Error::invalid_input(format!("offer.rows[{i}].{key}"), "is required for a new offer row"));
            }
        }
    }
    Ok(())
}

const fn offer_body(description: &'static str, required: &'static [&'static str], check: fn(&Value) -> Result<(), Error>) -> Body {
    Body::Model { key: "offer", description, schema: Offer::schema, write: write::<Offer>, required, check }
}

const fn put(name: &'static str, description: &'static str, path: &'static str, body: Body, output: Output) -> Endpoint {
    Endpoint { name, description, method: Method::Put, path, params: &[], body, output, worker: Worker::None }
}

pub static LIST_OFFERS: Endpoint = Endpoint {
    name: "list_offers",
    description: "List offers, filtered by state, change time or free text",
    method: Method::Get,
    path: "/v1/customer_orders/offers",
    params: &[
        SINCE,
        param("state", Kind::IntEnum(&OFFER_STATE_FILTERS), Default::Int(-1), "-1 = all, 0 = NEW, 1 = APPROVED, 2 = CANCELLED"),
        PAGE,
        LIMIT,
        QUERY,
        param("sort_column", Kind::Enum(&["id", "customer", "valid_date", "created_date", "state"]), Default::Text("id"), ""),
        ORDER_DESC,
    ],
    body: Body::None,
    output: OFFERS_PAGE,
    worker: Worker::None,
};
pub static GET_OFFER: Endpoint = Endpoint {
    name: "get_offer",
    description: "Get one offer by id",
    method: Method::Get,
    path: "/v1/customer_orders/offers/{offer_id}",
    params: &[],
    body: Body::None,
    output: ONE_OFFER,
    worker: Worker::None,
};
pub static LIST_ORDER_OFFERS: Endpoint = Endpoint {
    name: "list_order_offers",
    description: "Get the offers of a customer order",
    method: Method::Get,
    path: "/v1/customer_orders/{order_id}/offers",
    params: &[],
    body: Body::None,
    output: OFFERS_PAGE,
    worker: Worker::None,
};
pub static ADD_OFFER: Endpoint = Endpoint {
    name: "add_offer",
    description: "Add a new offer",
    method: Method::Post,
    path: "/v1/customer_orders/offers",
    params: &[],
    body: offer_body(
        "the new offer",
        &["customerName", "customerPhone", "customerEmail", "pricelistId", "currency"],
        check_new_offer,
    ),
    output: OFFER,
    worker: Worker::None,
};
pub static UPDATE_OFFER: Endpoint = put(
    "update_offer",
    "Update an offer that is still NEW (rows are matched by id)",
    "/v1/customer_orders/offers/{offer_id}",
    offer_body("the fields to change", &[], no_check),
    OFFER,
);
pub static CANCEL_OFFER: Endpoint =
    put("cancel_offer", "Cancel an offer; it is then closed", "/v1/customer_orders/offers/{offer_id}/cancel", Body::None, OFFER);
pub static APPROVE_OFFER: Endpoint = put(
    "approve_offer",
    "Approve an offer; it is then closed and connected to a customer order",
    "/v1/customer_orders/offers/{offer_id}/approve",
    Body::None,
    OFFER,
);
pub static SEND_OFFER: Endpoint = put(
    "send_offer",
    "E-mail the offer PDF to the customer",
    "/v1/customer_orders/offers/{offer_id}/send",
    Body::Email,
    Output::Done,
);
pub static PRINT_OFFER: Endpoint = Endpoint {
    name: "print_offer",
    description: "The offer as a PDF file",
    method: Method::Get,
    path: "/v1/customer_orders/offers/{offer_id}/print",
    params: &[],
    body: Body::None,
    output: Output::File,
    worker: Worker::None,
};

pub fn operations() -> Vec<Op> {
    crate::ops!(LIST_OFFERS, GET_OFFER, PRINT_OFFER, LIST_ORDER_OFFERS, ADD_OFFER, UPDATE_OFFER, CANCEL_OFFER, APPROVE_OFFER, SEND_OFFER)
}
