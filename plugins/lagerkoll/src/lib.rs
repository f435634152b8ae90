//! Spoke connector for the Lagerkoll customer orders API.
//!
//! Every one of the 57 documented endpoints is a row in a table (one module
//! per documented section); `api` turns the rows into operations and runs
//! them. Models of the documented classes are in `models`.
use spoke_pdk::*;

pub mod api;
pub mod errors;
pub mod models;
pub mod offers;
pub mod orders;
pub mod params;
pub mod picking_lists;
pub mod print;
pub mod rest_articles;
pub mod scalars;
pub mod time;

/// Operations from endpoint statics; each handler is a plain fn that runs its row.
#[macro_export]
macro_rules! ops {
    ($($ep:ident),* $(,)?) => {
        vec![$( $ep.op(|input| $crate::api::run(&$ep, input)) ),*]
    };
}

pub struct Lagerkoll;

impl Connector for Lagerkoll {
    fn info() -> Info {
        Info {
            name: "lagerkoll",
            version: env!("CARGO_PKG_VERSION"),
            vendor: "Lagerkoll",
            description: "Lagerkoll customer orders API: orders and their states, offers, picking lists, printed documents, rest articles",
            // The documented base URL; the host does not double its path (see docs/vendor-notes.md).
            base_urls: vec![BaseUrl { key: "default".into(), url: "https://capi.lagerkoll.com/v1/customer_orders/".into() }],
            auth_schemes: vec![
                AuthScheme {
                    name: "api-key".into(),
                    description: "machine to machine: the store id and the API key from where the API was activated (`store`, `api_key` headers)".into(),
                    method: AuthMethod::Headers(vec![("store".into(), "store".into()), ("api_key".into(), "api_key".into())]),
                    optional: true,
                },
                AuthScheme {
                    name: "user-token".into(),
                    description: "a person's login: store id, user id and user token from the login request (`store`, `user_id`, `user_token` headers); chosen with the setting auth_scheme = \"user-token\"".into(),
                    method: AuthMethod::Headers(vec![
                        ("store".into(), "store".into()),
                        ("user_id".into(), "user_id".into()),
                        ("user_token".into(), "user_token".into()),
                    ]),
                    optional: true,
                },
            ],
            rate_policies: vec![RatePolicy {
                name: "general".into(),
                description: "at most 200 requests per minute; above it Lagerkoll answers 429 (code 900429) with Retry-After seconds".into(),
                operations: vec![],
                windows: vec![Window { limit: 200, seconds: 60 }],
                headers: vec![],
                penalty_seconds: vec![],
            }],
            webhook_topics: vec![],
        }
    }

    fn operations() -> Vec<Op> {
        let mut ops = orders::operations();
        ops.extend(offers::operations());
        ops.extend(picking_lists::operations());
        ops.extend(print::operations());
        ops.extend(rest_articles::operations());
        ops
    }

    fn handle_webhook(_received: Received) -> Result<Vec<Event>, Error> {
        Err(Error::new(ErrorKind::Unsupported, "Lagerkoll's customer orders API sends no webhooks"))
    }
}

connector!(Lagerkoll);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::read;
    use crate::models::*;

    /// The Lagerkoll rows of the project's endpoints.tsv.
    const DOCUMENTED: &str = "\
GET /v1/customer_orders/external/{external_id}
GET /v1/customer_orders/{id}
GET /v1/customer_orders
GET /v1/customer_orders/article/{article_id}
GET /v1/customer_orders/{order_id}/purchase_orders
GET /v1/customer_orders/state/{state}
GET /v1/customer_orders/{id}/products
GET /v1/customer_orders/cost/{id}
POST /v1/customer_orders
POST /v1/customer_orders/{id}/product
POST /v1/customer_orders/{order_id}/dropshipment
PUT /v1/customer_orders/{order_id}/invoice
PUT /v1/customer_orders/{order_id}/delivered
PUT /v1/customer_orders/{order_id}/send
PUT /v1/customer_orders/{order_id}/ready_for_packing
PUT /v1/customer_orders/ready_for_packing
PUT /v1/customer_orders/{order_id}/cancel
PUT /v1/customer_orders/{order_id}/dropshipment/cancel
PUT /v1/customer_orders/invoice
PUT /v1/customer_orders/{order_id}/freight_booked
PUT /v1/customer_orders/send
PUT /v1/customer_orders/{id}
PUT /v1/customer_orders/{id}/product
PUT /v1/customer_orders/{id}/product/remove
PUT /v1/customer_orders/{order_id}/confirmation/send
GET /v1/customer_orders/{id}/invoice/print
GET /v1/customer_orders/offers
GET /v1/customer_orders/offers/{offer_id}
GET /v1/customer_orders/offers/{offer_id}/print
GET /v1/customer_orders/{order_id}/offers
POST /v1/customer_orders/offers
PUT /v1/customer_orders/offers/{offer_id}
PUT /v1/customer_orders/offers/{offer_id}/cancel
PUT /v1/customer_orders/offers/{offer_id}/approve
PUT /v1/customer_orders/offers/{offer_id}/send
GET /v1/customer_orders/{order_id}/picking_lists
GET /v1/customer_orders/{order_id}/picking_lists/{list_id}
GET /v1/customer_orders/picking_lists
GET /v1/customer_orders/picking_lists/new
GET /v1/customer_orders/picking_lists/assigned
GET /v1/customer_orders/{order_id}/picking_lists/{list_id}/articles
POST /v1/customer_orders/{order_id}/picking_lists/{list_id}/rest
PUT /v1/customer_orders/{order_id}/picking_lists/{list_id}/assign
PUT /v1/customer_orders/{order_id}/picking_lists/{list_id}/assign/{assigned_user_id}
PUT /v1/customer_orders/{order_id}/picking_lists/{list_id}/finish
PUT /v1/customer_orders/{order_id}/picking_lists/{list_id}/pick
PUT /v1/customer_orders/{order_id}/picking_lists/{list_id}/packing
PUT /v1/customer_orders/{order_id}/picking_lists/{list_id}/pick/{article_id}
GET /v1/customer_orders/{order_id}/pickinglist/{list_id}/print
GET /v1/customer_orders/{id}/print
GET /v1/customer_orders/{id}/delivery_note/print
GET /v1/customer_orders/delivery_notes/print
GET /v1/customer_orders/print_labels
GET /v1/customer_orders/pickinglists/print
GET /v1/customer_orders/rest_articles/supplier/{supplier_id}/
GET /v1/customer_orders/rest_articles/purchaseorder/{order_id}/
PUT /v1/customer_orders/{order_id}/packed";

    fn method_name(m: Method) -> &'static str {
        match m {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
        }
    }

    #[test]
    fn one_operation_per_documented_endpoint() {
        let ops = Lagerkoll::operations();
        let mut ours: Vec<String> = ops.iter().map(|o| format!("{} {}", method_name(o.method), o.path)).collect();
        let mut documented: Vec<String> = DOCUMENTED.lines().map(str::to_string).collect();
        ours.sort();
        documented.sort();
        assert_eq!(ours, documented);
        let mut names: Vec<&str> = ops.iter().map(|o| o.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 57);
        for required in ["add_order", "get_order_by_external_id", "send_order", "update_order", "get_order", "invoice_order", "print_invoice"] {
            assert!(names.contains(&required), "{required}");
        }
    }

    #[test]
    fn documented_examples_read_through_the_models() {
        let order = read::<CustomerOrder>(serde_json::from_str(include_str!("../fixtures/customer_order.json")).unwrap()).unwrap();
        // "state": "0" and "vatIncluded": "true" in the example become typed values.
        assert_eq!(order["state"], json!(0));
        assert_eq!(order["vatIncluded"], json!(true));
        assert_eq!(order["products"][0]["deliveredAmount"], json!(0.0));
        assert_eq!(order["orderDate"], json!(1713565571430i64));
        assert_eq!(order["orderDateRfc3339"], json!("2024-04-19T22:26:11.430Z"));
        assert_eq!(order["products"][0]["batches"][0]["bestBeforeRfc3339"], json!("2024-04-19T22:26:11.430Z"));
        for (text, f) in [
            (include_str!("../fixtures/customer_orders_response.json"), read::<CustomerOrdersResponse> as fn(Value) -> Result<Value, Error>),
            (include_str!("../fixtures/article.json"), read::<Article>),
            (include_str!("../fixtures/purchase_orders_response.json"), read::<PurchaseOrdersResponse>),
            (include_str!("../fixtures/offers_response.json"), read::<OffersResponse>),
            (include_str!("../fixtures/picking_lists_response.json"), read::<PickingListsResponse>),
            (include_str!("../fixtures/picking_list_products.json"), read::<PickingListProducts>),
            (include_str!("../fixtures/rest_order_response.json"), read::<RestOrderResponse>),
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            let out = f(value.clone()).unwrap();
            // Nothing documented is lost on the way through the model.
            assert_keys_kept(&value, &out, "");
        }
    }

    /// The documented examples with fields removed, nulled, added or sent
    /// in a looser type still read: an answer never fails over its shape.
    #[test]
    fn examples_with_fields_removed_or_loosened_still_read() {
        let mut order: Value = serde_json::from_str(include_str!("../fixtures/customer_order.json")).unwrap();
        let map = order.as_object_mut().unwrap();
        let keys: Vec<String> = map.keys().cloned().collect();
        for (i, key) in keys.iter().enumerate() {
            match i % 3 {
                0 => {
                    map.remove(key);
                }
                1 => {
                    map.insert(key.clone(), Value::Null);
                }
                _ => {}
            }
        }
        map.insert("orderId".into(), json!("3023"));
        map.insert("somethingNew".into(), json!({"x": 1}));
        let out = read::<CustomerOrder>(order).unwrap();
        assert_eq!(out["orderId"], json!(3023));
        assert_eq!(out["somethingNew"], json!({"x": 1}), "extra fields pass through");
        read::<CustomerOrder>(json!({})).unwrap();
    }

    fn assert_keys_kept(input: &Value, output: &Value, path: &str) {
        match (input, output) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in a {
                    let sub = b.get(k).unwrap_or_else(|| panic!("{path}.{k} lost"));
                    assert_keys_kept(v, sub, &format!("{path}.{k}"));
                }
            }
            (Value::Array(a), Value::Array(b)) => {
                assert_eq!(a.len(), b.len());
                a.iter().zip(b).for_each(|(x, y)| assert_keys_kept(x, y, path));
            }
            _ => {}
        }
    }

    #[test]
    fn input_is_refused_before_sending_with_the_allowed_values() {
        let ops = Lagerkoll::operations();
        let find = |name: &str| ops.iter().find(|o| o.name == name).unwrap();
        let err = schema::validate(&find("list_orders").input, &json!({"sort_column": "price"})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("sort_column"));
        assert!(err.message.contains("\"order_value\""), "{}", err.message);
        let err = schema::validate(&find("invoice_order").input, &json!({"order_id": 1, "type": "bitcoin"})).unwrap_err();
        assert!(err.message.contains("\"cash\""), "{}", err.message);
        let err = schema::validate(&find("list_orders").input, &json!({"state": 7})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("state"));
        let err = schema::validate(&find("list_orders").input, &json!({"order": "up"})).unwrap_err();
        assert!(err.message.contains("\"asc\""));
        let err = schema::validate(&find("add_order").input, &json!({"order": {"products": []}})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("order.customerId"));
        let err = schema::validate(&find("add_order").input, &json!({"order": {"customerId": 1, "orderDate": "tomorrow"}})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("order.orderDate"));
        schema::validate(&find("add_order").input, &json!({"order": {"customerId": 1, "orderDate": "2024-04-19T22:26:11Z"}})).unwrap();
        let err = schema::validate(&find("add_order").input, &json!({"order": {"customerId": 1, "products": [{"discountType": "FREE"}]}})).unwrap_err();
        assert!(err.message.contains("\"PERCENT\""));
    }

    #[test]
    fn bodies_convert_rfc3339_dates_and_drop_output_siblings() {
        let body = api::write::<CustomerOrder>(&json!({"customerId": 5, "orderDate": "2024-04-19T22:26:11.411Z",
            "deliveryDate": 1713565571411i64, "deliveryDateRfc3339": "2024-04-19T22:26:11.411Z"})).unwrap();
        assert_eq!(body, json!({"customerId": 5, "orderDate": 1713565571411i64, "deliveryDate": 1713565571411i64}));
    }
}
