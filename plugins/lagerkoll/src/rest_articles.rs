//! Rest articles: what is still to be delivered on customer orders.
use crate::api::{param, read, Body, Default, Endpoint, Kind, Output, Param, Worker};
use crate::models::RestOrderResponse;
use crate::params::*;
use crate::scalars::Schema;
use spoke_pdk::{Method, Op};

const PARAMS: &[Param] = &[
    ORDER_ASC,
    param("sort_column", Kind::Enum(&["deliveryDate", "available"]), Default::Text("deliveryDate"), ""),
    PAGE,
    LIMIT,
];
const ARTICLES: Output = Output::Page { key: "articles", schema: RestOrderResponse::schema, read: read::<RestOrderResponse> };

pub static LIST_REST_ARTICLES_BY_SUPPLIER: Endpoint = Endpoint {
    name: "list_rest_articles_by_supplier",
    description: "Rest articles of a supplier, with the customer orders waiting for them",
    method: Method::Get,
    path: "/v1/customer_orders/rest_articles/supplier/{supplier_id}/",
    params: PARAMS,
    body: Body::None,
    output: ARTICLES,
    worker: Worker::None,
};
pub static LIST_REST_ARTICLES_BY_PURCHASE_ORDER: Endpoint = Endpoint {
    name: "list_rest_articles_by_purchase_order",
    description: "Rest articles of a purchase order, with the customer orders waiting for them",
    method: Method::Get,
    path: "/v1/customer_orders/rest_articles/purchaseorder/{order_id}/",
    params: PARAMS,
    body: Body::None,
    output: ARTICLES,
    worker: Worker::None,
};

pub fn operations() -> Vec<Op> {
    crate::ops!(LIST_REST_ARTICLES_BY_SUPPLIER, LIST_REST_ARTICLES_BY_PURCHASE_ORDER)
}
