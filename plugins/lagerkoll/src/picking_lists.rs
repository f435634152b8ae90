//! Picking lists: NEW, PACKING, PACKED, CLOSED; assigned to warehouse workers.
use crate::api::{param, read, write, Body, Default, Endpoint, Kind, Output, Param, Worker};
use crate::models::{PickingList, PickingListProduct, PickingListProducts, PickingListsResponse, PurchaseOrdersResponse};
use crate::params::*;
use crate::scalars::Schema;
use spoke_pdk::{json, Error, Method, Op, Value};

const LIST: Output = Output::Record { schema: PickingList::schema, read: read::<PickingList>, unwrap: None };
const ONE_LIST: Output = Output::Record { schema: PickingList::schema, read: read::<PickingList>, unwrap: Some("lists") };
const LISTS_PAGE: Output =
    Output::Page { key: "lists", schema: PickingListsResponse::schema, read: read::<PickingListsResponse> };
const ART_OR_STOCK_PLACE: &[&str] = &["art", "stock_place"];
const SORT_STOCK_PLACE: Param = param("sort_column", Kind::Enum(ART_OR_STOCK_PLACE), Default::Text("stock_place"), "");

/// A picked product's batches must add up to its picked amount.
fn check_picked(product: &Value, path: &str) -> Result<(), Error> {
    let picked = product.get("pickedAmount").and_then(Value::as_f64);
    let Some(picked) = picked else {
        return Err(Error::invalid_input(format!("{path}.pickedAmount"), "is required"));
    };
    if let Some(batches) = product.get("batches").and_then(Value::as_array).filter(|b| !b.is_empty()) {
        let sum: f64 = batches.iter().map(|b| b.get("pickedAmount").and_then(Value::as_f64).unwrap_or(0.0)).sum();
        if (sum - picked).abs() > 1e-9 {
            return Err(Error::invalid_input(
                format!("{path}.pickedAmount"),
                format!("is {picked} but the batches' pickedAmount add up to {sum}; they must be equal"),
            ));
        }
    }
    Ok(())
}

fn check_pick_many(products: &Value) -> Result<(), Error> {
    for (i, p) in products.as_array().into_iter().flatten().enumerate() {
        let path = format!("products[{i}]");
        for key in ["customerOrderProductId", "articleId"] {
            if p.get(key).is_none_or(Value::is_null) {
                return Err(Error::invalid_input(format!("{path}.{key}"), "is required to update a picking list product"));
            }
        }
        check_picked(p, &path)?;
    }
    Ok(())
}

fn check_pick_one(product: &Value) -> Result<(), Error> {
    check_picked(product, "product")
}

fn products_schema() -> Value {
    json!({"type": "array", "minItems": 1, "items": PickingListProduct::schema()})
}

/// The input's product list is sent as the documented PickingListProducts.
fn write_products(products: &Value) -> Result<Value, Error> {
    write::<PickingListProducts>(&json!({ "products": products }))
}

const fn list_put(name: &'static str, description: &'static str, path: &'static str, output: Output, worker: Worker) -> Endpoint {
    Endpoint { name, description, method: Method::Put, path, params: &[], body: Body::None, output, worker }
}

pub static LIST_ORDER_PICKING_LISTS: Endpoint = Endpoint {
    name: "list_order_picking_lists",
    description: "Get the picking lists of a customer order",
    method: Method::Get,
    path: "/v1/customer_orders/{order_id}/picking_lists",
    params: &[SORT_STOCK_PLACE, SORT_ORDER_ASC],
    body: Body::None,
    output: LISTS_PAGE,
    worker: Worker::None,
};
pub static GET_PICKING_LIST: Endpoint = Endpoint {
    name: "get_picking_list",
    description: "Get one picking list of a customer order",
    method: Method::Get,
    path: "/v1/customer_orders/{order_id}/picking_lists/{list_id}",
    params: &[param("sort_column", Kind::Enum(&["art", "name", "stock_place"]), Default::Text("stock_place"), ""), SORT_ORDER_ASC],
    body: Body::None,
    output: ONE_LIST,
    worker: Worker::None,
};
pub static LIST_MY_PICKING_LISTS: Endpoint = Endpoint {
    name: "list_my_picking_lists",
    description: "Get the picking lists assigned to you (the user or device), by search query",
    method: Method::Get,
    path: "/v1/customer_orders/picking_lists",
    params: &[
        QUERY,
        param("return_unassigned_lists", Kind::Bool, Default::Bool(true), "also return lists nobody is assigned to"),
        param("sort_column", Kind::Enum(ART_OR_STOCK_PLACE), Default::None, ""),
        SORT_ORDER_ASC,
    ],
    body: Body::None,
    output: LISTS_PAGE,
    worker: Worker::Optional,
};
pub static LIST_UNASSIGNED_PICKING_LISTS: Endpoint = Endpoint {
    name: "list_unassigned_picking_lists",
    description: "Get all picking lists nobody is assigned to",
    method: Method::Get,
    path: "/v1/customer_orders/picking_lists/new",
    params: &[PAGE, LIMIT, SORT_STOCK_PLACE, SORT_ORDER_ASC],
    body: Body::None,
    output: LISTS_PAGE,
    worker: Worker::None,
};
pub static LIST_ASSIGNED_PICKING_LISTS: Endpoint = Endpoint {
    name: "list_assigned_picking_lists",
    description: "Get all picking lists somebody is assigned to",
    method: Method::Get,
    path: "/v1/customer_orders/picking_lists/assigned",
    params: &[PAGE, LIMIT, param("filter_your_lists", Kind::Bool, Default::Bool(false), "leave out the lists assigned to you")],
    body: Body::None,
    output: LISTS_PAGE,
    worker: Worker::Optional,
};
pub static SEARCH_PICKING_LIST_ARTICLES: Endpoint = Endpoint {
    name: "search_picking_list_articles",
    description: "Search a picking list's articles by article id, name, barcode, batch/serial barcode or unit barcode",
    method: Method::Get,
    path: "/v1/customer_orders/{order_id}/picking_lists/{list_id}/articles",
    params: &[QUERY, PAGE, LIMIT],
    body: Body::None,
    output: Output::Page { key: "products", schema: PickingListProducts::schema, read: read::<PickingListProducts> },
    worker: Worker::None,
};
pub static CREATE_PICKING_LIST_REST: Endpoint = Endpoint {
    name: "create_picking_list_rest",
    description: "Create a rest list from what a picking list did not pick",
    method: Method::Post,
    path: "/v1/customer_orders/{order_id}/picking_lists/{list_id}/rest",
    params: &[],
    body: Body::None,
    output: Output::Page { key: "orders", schema: PurchaseOrdersResponse::schema, read: read::<PurchaseOrdersResponse> },
    worker: Worker::None,
};
pub static ASSIGN_PICKING_LIST: Endpoint = list_put(
    "assign_picking_list",
    "Assign a picking list to the current user or device (needs user_id or device_id)",
    "/v1/customer_orders/{order_id}/picking_lists/{list_id}/assign",
    LIST,
    Worker::Required,
);
pub static ASSIGN_PICKING_LIST_TO_USER: Endpoint = list_put(
    "assign_picking_list_to_user",
    "Assign a picking list to a user",
    "/v1/customer_orders/{order_id}/picking_lists/{list_id}/assign/{assigned_user_id}",
    LIST,
    Worker::None,
);
pub static FINISH_PICKING_LIST: Endpoint = list_put(
    "finish_picking_list",
    "Finish a picking list (state PACKED)",
    "/v1/customer_orders/{order_id}/picking_lists/{list_id}/finish",
    LIST,
    Worker::None,
);
pub static PICK_ARTICLES: Endpoint = Endpoint {
    name: "pick_articles",
    description: "Set the picked amounts (and batches) of several articles of a picking list",
    method: Method::Put,
    path: "/v1/customer_orders/{order_id}/picking_lists/{list_id}/pick",
    params: &[],
    body: Body::Model {
        key: "products",
        description: "the picked products: customerOrderProductId, articleId, pickedAmount and optionally batches",
        schema: products_schema,
        write: write_products,
        required: &[],
        check: check_pick_many,
    },
    output: Output::Record { schema: PickingListProducts::schema, read: read::<PickingListProducts>, unwrap: None },
    worker: Worker::None,
};
pub static SET_PICKING_LIST_PACKING: Endpoint = list_put(
    "set_picking_list_packing",
    "Change a picking list's state to PACKING",
    "/v1/customer_orders/{order_id}/picking_lists/{list_id}/packing",
    Output::Done,
    Worker::None,
);
pub static PICK_ARTICLE: Endpoint = Endpoint {
    name: "pick_article",
    description: "Pick one article of a picking list (needs user_id or device_id)",
    method: Method::Put,
    path: "/v1/customer_orders/{order_id}/picking_lists/{list_id}/pick/{article_id}",
    params: &[],
    body: Body::Model {
        key: "product",
        description: "the picked product: pickedAmount and optionally batches",
        schema: PickingListProduct::schema,
        write: write::<PickingListProduct>,
        required: &["pickedAmount"],
        check: check_pick_one,
    },
    output: Output::Record { schema: PickingListProduct::schema, read: read::<PickingListProduct>, unwrap: None },
    worker: Worker::Required,
};

pub fn operations() -> Vec<Op> {
    crate::ops!(
        LIST_ORDER_PICKING_LISTS,
        GET_PICKING_LIST,
        LIST_MY_PICKING_LISTS,
        LIST_UNASSIGNED_PICKING_LISTS,
        LIST_ASSIGNED_PICKING_LISTS,
        SEARCH_PICKING_LIST_ARTICLES,
        CREATE_PICKING_LIST_REST,
        ASSIGN_PICKING_LIST,
        ASSIGN_PICKING_LIST_TO_USER,
        FINISH_PICKING_LIST,
        PICK_ARTICLES,
        SET_PICKING_LIST_PACKING,
        PICK_ARTICLE,
    )
}
