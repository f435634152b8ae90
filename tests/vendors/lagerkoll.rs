//! The lagerkoll connector through the real host against the Lagerkoll simulator.
use base64::Engine;
use serde_json::{json, Value};
use spoke_sandbox::lagerkoll::{Options, Simulator};
use spoke_tests::{spoke, TestHost};
use std::collections::BTreeSet;

fn config(url: &str, extra: &str) -> String {
    format!(
        r#"
[connectors.lagerkoll]
plugin = "lagerkoll"
base_url = "{url}"
[connectors.lagerkoll.credentials]
store = "value:4711"
api_key = "value:lk-demo-key"
user_id = "value:1001"
user_token = "value:tok-anna"
{extra}
"#
    )
}

async fn start_with(opts: Options, extra: &str) -> (Simulator, TestHost) {
    let sim = Simulator::start(opts).await.expect("simulator");
    let host = TestHost::start(&config(&sim.url(), extra)).await.expect("host");
    (sim, host)
}

async fn start() -> (Simulator, TestHost) {
    start_with(Options::default(), "").await
}

async fn call(host: &TestHost, op: &str, input: Value) -> Value {
    match host.call("lagerkoll", op, input.clone()).await {
        Ok(out) => out,
        Err(e) => panic!("{op}({input}) failed: {e:?}"),
    }
}

async fn call_err(host: &TestHost, op: &str, input: Value) -> spoke::CallError {
    match host.call("lagerkoll", op, input.clone()).await {
        Ok(out) => panic!("{op}({input}) should fail, got {out}"),
        Err(e) => e,
    }
}

/// Input refused by the plugin: invalid-input naming `field`, nothing sent.
async fn refused(sim: &Simulator, host: &TestHost, op: &str, input: Value, field: &str) -> spoke::CallError {
    let before = sim.request_count();
    let e = call_err(host, op, input).await;
    assert_eq!(e.kind.as_str(), "invalid-input", "{e:?}");
    assert_eq!(e.field.as_deref(), Some(field), "{e:?}");
    assert_eq!(sim.request_count(), before, "invalid input must send nothing");
    e
}

fn conflict(e: &spoke::CallError, code: &str) {
    assert_eq!(e.kind.as_str(), "conflict", "{e:?}");
    assert_eq!(e.vendor_code.as_deref(), Some(code), "{e:?}");
}

fn order_body(customer: i64, rows: Value) -> Value {
    json!({"order": {"customerId": customer, "products": rows, "orderDate": "2024-04-19T22:26:11.411Z", "freight": 49.0}})
}

async fn new_order(host: &TestHost, rows: Value) -> i64 {
    let out = call(host, "add_order", order_body(1, rows)).await;
    out["orderId"].as_i64().expect("orderId")
}

async fn state_of(host: &TestHost, id: i64) -> i64 {
    call(host, "get_order", json!({"id": id})).await["state"].as_i64().unwrap()
}

async fn first_list(host: &TestHost, order: i64) -> i64 {
    let lists = call(host, "list_order_picking_lists", json!({"order_id": order})).await;
    lists["lists"][0]["id"].as_i64().expect("a picking list")
}

fn decode(file: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(file["base64"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn orders_are_created_read_listed_and_edited() {
    let (sim, host) = start().await;
    let rows = json!([
        {"articleId": "A-100", "orderedAmount": 2},
        {"articleId": "BIKE/26", "orderedAmount": 1, "batches": [{"serialNr": "SN-26-0001"}]},
        {"description": "Tack för ordern!"}
    ]);
    let mut body = order_body(1, rows);
    body["order"]["externalOrderId"] = json!("EXT-1");
    let order = call(&host, "add_order", body).await;
    let id = order["orderId"].as_i64().unwrap();
    assert_eq!(order["state"], 0);
    assert_eq!(order["customerName"], "Cykelboden AB");
    // The RFC 3339 input arrives as milliseconds, and comes back with both renderings.
    assert_eq!(order["orderDate"], 1713565571411i64);
    assert_eq!(order["orderDateRfc3339"], "2024-04-19T22:26:11.411Z");
    assert_eq!(order["products"].as_array().unwrap().len(), 3);
    assert_eq!(order["orderValue"].as_f64().unwrap(), 2.0 * 499.0 + 5995.0 + 49.0);

    assert_eq!(call(&host, "get_order", json!({"id": id})).await["orderId"], id);
    assert_eq!(call(&host, "get_order_by_external_id", json!({"external_id": "EXT-1"})).await["orderId"], id);
    let e = call_err(&host, "get_order", json!({"id": 987654})).await;
    assert_eq!((e.kind.as_str(), e.vendor_code.as_deref()), ("not-found", Some("900701")));

    let listed = call(&host, "list_orders", json!({"customer_id": 1, "sort_column": "order_value", "order": "asc", "query": "EXT-1"})).await;
    assert_eq!(listed["ordersCount"], 1);
    assert_eq!(listed["orders"][0]["orderId"], id);
    let by_article = call(&host, "list_orders_by_article", json!({"article_id": "BIKE/26", "serialnumber": "SN-26-0001"})).await;
    assert_eq!(by_article["orders"][0]["orderId"], id);
    let other_serial = call(&host, "list_orders_by_article", json!({"article_id": "BIKE/26", "serialnumber": "SN-26-0002"})).await;
    assert_eq!(other_serial["ordersCount"], 0);
    let by_state = call(&host, "list_orders_by_state", json!({"state": 0, "sort_column": "delivery_date"})).await;
    assert!(by_state["orders"].as_array().unwrap().iter().any(|o| o["orderId"] == id));

    let products = call(&host, "list_order_products", json!({"id": id})).await;
    let ids: BTreeSet<&str> = products["products"].as_array().unwrap().iter().map(|p| p["articleId"].as_str().unwrap()).collect();
    assert_eq!(ids, BTreeSet::from(["A-100", "BIKE/26"]));
    let cost = call(&host, "get_order_cost", json!({"id": id})).await;
    assert_eq!(cost["orderId"], id);
    assert_eq!(cost["productCosts"].as_array().unwrap().len(), 2);
    assert_eq!(call(&host, "list_order_purchase_orders", json!({"order_id": id})).await["orders"], json!([]));

    let added = call(&host, "add_order_row", json!({"id": id, "row": {"articleId": "T-700", "orderedAmount": 2}})).await;
    let row = added["products"].as_array().unwrap().iter().find(|p| p["articleId"] == "T-700").unwrap().clone();
    let updated = call(&host, "update_order_row", json!({"id": id, "row": {"id": row["id"], "orderedAmount": 3}})).await;
    assert_eq!(updated["products"].as_array().unwrap().iter().find(|p| p["id"] == row["id"]).unwrap()["orderedAmount"], 3.0);
    let removed = call(&host, "remove_order_row", json!({"id": id, "row": {"id": row["id"]}})).await;
    assert_eq!(removed["products"].as_array().unwrap().len(), 3);
    let changed = call(&host, "update_order", json!({"id": id, "order": {"comments": "Ring på", "deliveryDate": "2024-05-01T08:00:00+02:00"}})).await;
    assert_eq!(changed["comments"], "Ring på");
    assert_eq!(changed["deliveryDateRfc3339"], "2024-05-01T06:00:00.000Z");
    assert_eq!(call(&host, "send_order_confirmation", json!({"order_id": id, "email": "kund@example.se"})).await, json!({"ok": true}));
    assert!(sim.emails().contains(&("order_confirmation".into(), id, "kund@example.se".into())));

    // Refused before sending, naming the field (and the allowed values).
    refused(&sim, &host, "add_order", json!({"order": {"products": []}}), "order.customerId").await;
    refused(&sim, &host, "add_order", json!({"order": {"customerId": 1, "products": [{"articleId": "A-100"}]}}), "order.products[0].orderedAmount").await;
    let e = refused(&sim, &host, "list_orders", json!({"sort_column": "price"}), "sort_column").await;
    assert!(e.message.contains("way_of_delivery"), "{}", e.message);
    refused(&sim, &host, "list_orders", json!({"state": 7}), "state").await;
    refused(&sim, &host, "update_order_row", json!({"id": id, "row": {"orderedAmount": 1}}), "row.id").await;
    // The vendor's own refusal keeps its code and field, and is `vendor`:
    // something was sent (`invalid-input` means nothing was).
    let e = call_err(&host, "add_order", order_body(999, json!([]))).await;
    assert_eq!((e.kind.as_str(), e.vendor_code.as_deref(), e.field.as_deref()), ("vendor", Some("900702"), Some("customerId")));
}

#[tokio::test]
async fn all_pages_walks_every_page() {
    let (_sim, host) = start().await;
    let mut ids = BTreeSet::new();
    for _ in 0..5 {
        ids.insert(new_order(&host, json!([{"articleId": "A-100", "orderedAmount": 1}])).await);
    }
    let one = call(&host, "list_orders", json!({"limit": 2})).await;
    assert_eq!(one["orders"].as_array().unwrap().len(), 2);
    assert_eq!(one["pages"], 3);
    let all = call(&host, "list_orders", json!({"limit": 2, "all_pages": true})).await;
    let got: BTreeSet<i64> = all["orders"].as_array().unwrap().iter().map(|o| o["orderId"].as_i64().unwrap()).collect();
    assert_eq!(got, ids);
}

/// The action names of the simulator's state table and their operations.
const ACTIONS: [(&str, &str, &str); 9] = [
    ("ready_for_packing", "mark_order_ready_for_packing", "900703"),
    ("packed", "mark_order_packed", "900703"),
    ("freight_booked", "mark_order_freight_booked", "900703"),
    ("send", "send_order", "900703"),
    ("delivered", "mark_order_delivered", "900703"),
    ("invoice", "invoice_order", "900703"),
    ("cancel", "cancel_order", "900703"),
    ("dropshipment", "create_drop_shipment", "900732"),
    ("dropshipment_cancel", "cancel_drop_shipment", "900732"),
];

/// Which states each action may start from, as the documentation's flow gives it.
fn legal(action: &str, state: i64) -> bool {
    let from: &[i64] = match action {
        "ready_for_packing" => &[0],
        "packed" => &[5, 10],
        "freight_booked" => &[20, 30],
        "send" => &[5, 10, 20, 30, 45],
        "delivered" => &[40, 45],
        "invoice" => &[15, 20, 30, 40, 45],
        "cancel" => &[0, 5, 10, 15, 20],
        "dropshipment" => &[0, 5],
        "dropshipment_cancel" => &[15],
        _ => &[],
    };
    from.contains(&state)
}

fn id_input(op: &str, id: i64) -> Value {
    if op == "create_drop_shipment" || op.starts_with("mark_") || op.ends_with("_order") || op == "cancel_drop_shipment" {
        json!({"order_id": id})
    } else {
        json!({"id": id})
    }
}

#[tokio::test]
async fn orders_walk_every_legal_state_change_and_refuse_every_illegal_one() {
    // Some 300 requests: a roomier limit keeps the test off the real minute window.
    let roomy = Options { limit_per_window: 10_000, ..Default::default() };
    let (_sim, host) = start_with(roomy, "[connectors.lagerkoll.rate_limits.general]\nwindows = [{ limit = 10000, seconds = 60 }]").await;
    let rows = json!([{"articleId": "A-100", "orderedAmount": 2}, {"articleId": "A-200", "orderedAmount": 1}]);
    let mut in_state = std::collections::BTreeMap::new();

    // NEW → READY_FOR_PACKING (picking list) → PACKING → PACKED → FREIGHT BOOKED → SENT (delivered) → INVOICED
    let a = new_order(&host, rows.clone()).await;
    in_state.insert(0, new_order(&host, rows.clone()).await);
    assert_eq!(call(&host, "mark_order_ready_for_packing", json!({"order_id": a})).await["state"], 5);
    let list = first_list(&host, a).await;
    in_state.insert(5, {
        let b = new_order(&host, rows.clone()).await;
        call(&host, "mark_order_ready_for_packing", json!({"order_id": b})).await;
        b
    });
    call(&host, "set_picking_list_packing", json!({"order_id": a, "list_id": list})).await;
    assert_eq!(state_of(&host, a).await, 10);
    in_state.insert(10, {
        let b = new_order(&host, rows.clone()).await;
        call(&host, "mark_order_ready_for_packing", json!({"order_id": b})).await;
        let l = first_list(&host, b).await;
        call(&host, "set_picking_list_packing", json!({"order_id": b, "list_id": l})).await;
        b
    });
    // Unfinished picking lists keep an order from PACKED unless asked to finish them.
    conflict(&call_err(&host, "mark_order_packed", json!({"order_id": a})).await, "900703");
    assert_eq!(call(&host, "mark_order_packed", json!({"order_id": a, "finish_pickinglists": true})).await["state"], 20);
    in_state.insert(20, {
        let b = new_order(&host, rows.clone()).await;
        call(&host, "mark_order_ready_for_packing", json!({"order_id": b})).await;
        call(&host, "mark_order_packed", json!({"order_id": b, "finish_pickinglists": true})).await;
        b
    });
    assert_eq!(call(&host, "mark_order_freight_booked", json!({"order_id": a})).await["state"], 45);
    in_state.insert(45, {
        let c = new_order(&host, rows.clone()).await;
        call(&host, "mark_order_ready_for_packing", json!({"order_id": c})).await;
        call(&host, "mark_order_packed", json!({"order_id": c, "finish_pickinglists": true})).await;
        call(&host, "mark_order_freight_booked", json!({"order_id": c})).await;
        c
    });
    let sent = call(&host, "send_order", json!({"order_id": a})).await;
    assert_eq!(sent["state"], 40);
    assert!(sent["products"].as_array().unwrap().iter().all(|p| p["deliveredAmount"] == p["orderedAmount"]));
    let delivered = call(&host, "mark_order_delivered", json!({"order_id": a})).await;
    assert_eq!(delivered["state"], 40);
    assert!(delivered["deliveredDate"].as_i64().is_some() && delivered["deliveredDateRfc3339"].is_string());
    in_state.insert(40, {
        let c = new_order(&host, rows.clone()).await;
        call(&host, "mark_order_ready_for_packing", json!({"order_id": c})).await;
        call(&host, "send_order", json!({"order_id": c, "finish_pickinglists": true})).await;
        c
    });
    assert_eq!(call(&host, "invoice_order", json!({"order_id": a, "type": "card"})).await["state"], 60);
    in_state.insert(60, a);
    // After invoicing only the external invoice references change.
    let after = call(&host, "update_order", json!({"id": a, "order": {"comments": "late edit", "externalInvoiceReference1": "FX-1"}})).await;
    assert_eq!(after["externalInvoiceReference1"], "FX-1");
    assert!(after.get("comments").is_none());

    // PARTLY SENT: half picked, then the rest.
    let p = new_order(&host, json!([{"articleId": "A-100", "orderedAmount": 2}])).await;
    call(&host, "mark_order_ready_for_packing", json!({"order_id": p})).await;
    let pl = first_list(&host, p).await;
    let list = call(&host, "get_picking_list", json!({"order_id": p, "list_id": pl})).await;
    let product = list["products"][0]["customerOrderProductId"].clone();
    call(&host, "pick_articles", json!({"order_id": p, "list_id": pl, "products": [{"customerOrderProductId": product, "articleId": "A-100", "pickedAmount": 1}]})).await;
    call(&host, "finish_picking_list", json!({"order_id": p, "list_id": pl})).await;
    call(&host, "mark_order_packed", json!({"order_id": p})).await;
    assert_eq!(call(&host, "send_order", json!({"order_id": p})).await["state"], 30);
    in_state.insert(30, p);
    let q = new_order(&host, json!([{"articleId": "A-100", "orderedAmount": 2}])).await;
    call(&host, "mark_order_ready_for_packing", json!({"order_id": q})).await;
    let ql = first_list(&host, q).await;
    let qp = call(&host, "get_picking_list", json!({"order_id": q, "list_id": ql})).await["products"][0]["customerOrderProductId"].clone();
    call(&host, "pick_articles", json!({"order_id": q, "list_id": ql, "products": [{"customerOrderProductId": qp, "articleId": "A-100", "pickedAmount": 1}]})).await;
    call(&host, "mark_order_packed", json!({"order_id": q, "finish_pickinglists": true})).await;
    call(&host, "mark_order_freight_booked", json!({"order_id": q})).await;
    assert_eq!(call(&host, "send_order", json!({"order_id": q})).await["state"], 30);
    assert_eq!(call(&host, "mark_order_freight_booked", json!({"order_id": q})).await["state"], 45);

    // create_rest_order: what was not picked moves to a new order, this one is SENT.
    let r = new_order(&host, json!([{"articleId": "A-100", "orderedAmount": 3}])).await;
    call(&host, "mark_order_ready_for_packing", json!({"order_id": r})).await;
    let rl = first_list(&host, r).await;
    let rp = call(&host, "get_picking_list", json!({"order_id": r, "list_id": rl})).await["products"][0]["customerOrderProductId"].clone();
    call(&host, "pick_articles", json!({"order_id": r, "list_id": rl, "products": [{"customerOrderProductId": rp, "articleId": "A-100", "pickedAmount": 1}]})).await;
    let before = call(&host, "list_orders", json!({"state": 0, "limit": 500})).await["ordersCount"].as_i64().unwrap();
    call(&host, "finish_picking_list", json!({"order_id": r, "list_id": rl})).await;
    assert_eq!(call(&host, "send_order", json!({"order_id": r, "create_rest_order": true})).await["state"], 40);
    assert_eq!(call(&host, "list_orders", json!({"state": 0, "limit": 500})).await["ordersCount"].as_i64().unwrap(), before + 1);

    // DROP SHIPMENT and back; CANCELLED.
    let d = new_order(&host, rows.clone()).await;
    call(&host, "mark_order_ready_for_packing", json!({"order_id": d})).await;
    let pos = call(&host, "create_drop_shipment", json!({"order_id": d})).await;
    assert_eq!(pos["orders"].as_array().unwrap().len(), 1);
    assert_eq!(pos["orders"][0]["supplierId"], 10);
    assert_eq!(state_of(&host, d).await, 15);
    assert_eq!(call(&host, "list_order_purchase_orders", json!({"order_id": d})).await["orders"].as_array().unwrap().len(), 1);
    assert_eq!(call(&host, "cancel_drop_shipment", json!({"order_id": d})).await["state"], 5);
    call(&host, "create_drop_shipment", json!({"order_id": d})).await;
    in_state.insert(15, d);
    let only_pos = new_order(&host, rows.clone()).await;
    call(&host, "create_drop_shipment", json!({"order_id": only_pos, "is_dropshipment": false})).await;
    assert_eq!(state_of(&host, only_pos).await, 0);
    let c = new_order(&host, rows.clone()).await;
    assert_eq!(call(&host, "cancel_order", json!({"order_id": c})).await["state"], 50);
    in_state.insert(50, c);
    conflict(&call_err(&host, "update_order", json!({"id": c, "order": {"comments": "x"}})).await, "900703");
    conflict(&call_err(&host, "add_order_row", json!({"id": in_state[&20], "row": {"articleId": "A-100", "orderedAmount": 1}})).await, "900703");

    // A zero-value order cannot be invoiced.
    let zero = call(&host, "add_order", json!({"order": {"customerId": 2, "products": [{"description": "text only"}]}})).await["orderId"].as_i64().unwrap();
    call(&host, "mark_order_ready_for_packing", json!({"order_id": zero})).await;
    call(&host, "mark_order_packed", json!({"order_id": zero})).await;
    conflict(&call_err(&host, "invoice_order", json!({"order_id": zero})).await, "900752");

    // Every illegal change from every state is refused with the documented code.
    for (state, id) in &in_state {
        assert_eq!(state_of(&host, *id).await, *state, "order {id}");
        for (action, op, code) in ACTIONS {
            if legal(action, *state) {
                continue;
            }
            let e = call_err(&host, op, id_input(op, *id)).await;
            conflict(&e, code);
            assert_eq!(state_of(&host, *id).await, *state, "{op} changed order {id}");
        }
    }
    assert_eq!(in_state.len(), 10);
}

#[tokio::test]
async fn bulk_state_changes() {
    let (sim, host) = start().await;
    let rows = json!([{"articleId": "A-100", "orderedAmount": 1}]);
    let (a, b) = (new_order(&host, rows.clone()).await, new_order(&host, rows.clone()).await);
    let ready = call(&host, "mark_orders_ready_for_packing", json!({"order_ids": [a, b]})).await;
    assert_eq!(ready["orders"].as_array().unwrap().len(), 1);
    assert_eq!((state_of(&host, a).await, state_of(&host, b).await), (5, 5));
    call(&host, "send_orders", json!({"order_ids": [a, b], "finish_pickinglists": true})).await;
    assert_eq!((state_of(&host, a).await, state_of(&host, b).await), (40, 40));
    let invoiced = call(&host, "invoice_orders", json!({"order_ids": [a, b], "type": "cash"})).await;
    assert_eq!(invoiced["orders"].as_array().unwrap().iter().map(|o| o["state"].as_i64().unwrap()).collect::<Vec<_>>(), vec![60, 60]);
    refused(&sim, &host, "invoice_orders", json!({"order_ids": [a], "type": "bitcoin"}), "type").await;
    refused(&sim, &host, "send_orders", json!({"order_ids": []}), "order_ids").await;
}

#[tokio::test]
async fn offers_from_new_to_approved_or_cancelled() {
    let (sim, host) = start().await;
    let offer = json!({"customerId": 1, "customerName": "Cykelboden AB", "customerPhone": "+46 8 123 45", "customerEmail": "order@cykelboden.se",
        "pricelistId": 1, "currency": "SEK", "validDate": "2024-06-30T00:00:00Z",
        "rows": [{"articleId": "A-100", "amount": 10, "salesPrice": 449, "purchasePrice": 210, "purchaseCurrency": "SEK"}]});
    let added = call(&host, "add_offer", json!({"offer": offer})).await;
    let id = added["offerId"].as_i64().unwrap();
    assert_eq!(added["state"], 0);
    assert_eq!(added["validDate"], 1719705600000i64);
    assert_eq!(added["rows"][0]["totalPrice"], 4490.0);
    refused(&sim, &host, "add_offer", json!({"offer": {"customerName": "x"}}), "offer.customerPhone").await;
    let listed = call(&host, "list_offers", json!({"state": 0, "sort_column": "created_date"})).await;
    assert!(listed["offers"].as_array().unwrap().iter().any(|o| o["offerId"] == id));
    assert_eq!(call(&host, "get_offer", json!({"offer_id": id})).await["offerId"], id);
    let row_id = added["rows"][0]["id"].clone();
    let updated = call(&host, "update_offer", json!({"offer_id": id, "offer": {"description": "Vår", "rows": [{"id": row_id, "amount": 12}]}})).await;
    assert_eq!(updated["rows"][0]["amount"], 12.0);
    let pdf = decode(&call(&host, "print_offer", json!({"offer_id": id})).await);
    assert!(pdf.starts_with(b"%PDF-"));
    assert_eq!(call(&host, "send_offer", json!({"offer_id": id, "email": "inkop@cykelboden.se"})).await["ok"], true);
    let approved = call(&host, "approve_offer", json!({"offer_id": id})).await;
    assert_eq!(approved["state"], 1);
    let order_id = approved["customerOrderId"].as_i64().unwrap();
    assert_eq!(call(&host, "get_order", json!({"id": order_id})).await["products"][0]["orderedAmount"], 12.0);
    assert_eq!(call(&host, "list_order_offers", json!({"order_id": order_id})).await["offers"][0]["offerId"], id);
    let e = call_err(&host, "update_offer", json!({"offer_id": id, "offer": {"description": "too late"}})).await;
    conflict(&e, "900763");
    let second = call(&host, "add_offer", json!({"offer": offer})).await["offerId"].as_i64().unwrap();
    assert_eq!(call(&host, "cancel_offer", json!({"offer_id": second})).await["state"], 2);
    conflict(&call_err(&host, "approve_offer", json!({"offer_id": second})).await, "900763");
    let e = call_err(&host, "get_offer", json!({"offer_id": 424242})).await;
    assert_eq!((e.kind.as_str(), e.vendor_code.as_deref()), ("not-found", Some("900761")));
}

#[tokio::test]
async fn picking_lists_are_assigned_picked_and_finished() {
    let (sim, host) = start().await;
    let order = new_order(&host, json!([{"articleId": "A-200", "orderedAmount": 2}, {"articleId": "BIKE/26", "orderedAmount": 1}])).await;
    call(&host, "mark_order_ready_for_packing", json!({"order_id": order})).await;
    let list = first_list(&host, order).await;
    let got = call(&host, "get_picking_list", json!({"order_id": order, "list_id": list, "sort_column": "art", "sort_order": "desc"})).await;
    assert_eq!(got["products"][0]["articleId"], "BIKE/26");
    assert_eq!(got["state"], 0);
    let new = call(&host, "list_unassigned_picking_lists", json!({"all_pages": true, "limit": 1})).await;
    assert!(new["lists"].as_array().unwrap().iter().any(|l| l["id"] == list));
    // The documentation requires a user_id or device_id header: refused before sending without one.
    refused(&sim, &host, "assign_picking_list", json!({"order_id": order, "list_id": list}), "device_id").await;
    let assigned = call(&host, "assign_picking_list", json!({"order_id": order, "list_id": list, "device_id": "scanner-7"})).await;
    assert_eq!(assigned["warehouseWorkerName"], "device scanner-7");
    assert!(assigned["startedDateRfc3339"].is_string());
    let mine = call(&host, "list_my_picking_lists", json!({"device_id": "scanner-7", "return_unassigned_lists": false})).await;
    assert_eq!(mine["lists"].as_array().unwrap().iter().map(|l| l["id"].clone()).collect::<Vec<_>>(), vec![json!(list)]);
    let assigned_lists = call(&host, "list_assigned_picking_lists", json!({})).await;
    assert!(assigned_lists["lists"].as_array().unwrap().iter().any(|l| l["id"] == list));
    let to_bo = call(&host, "assign_picking_list_to_user", json!({"order_id": order, "list_id": list, "assigned_user_id": 1002})).await;
    assert_eq!((to_bo["warehouseWorkerId"].as_i64(), to_bo["warehouseWorkerName"].as_str()), (Some(1002), Some("Bo Plock")));
    let found = call(&host, "search_picking_list_articles", json!({"order_id": order, "list_id": list, "query": "7350000000024"})).await;
    assert_eq!(found["products"].as_array().unwrap().len(), 1);
    assert_eq!(found["products"][0]["articleId"], "A-200");
    // An article id with a slash reaches the right product.
    let picked = call(&host, "pick_article", json!({"order_id": order, "list_id": list, "article_id": "BIKE/26", "device_id": "scanner-7",
        "product": {"pickedAmount": 1, "batches": [{"serialNr": "SN-26-0001", "pickedAmount": 1}]}})).await;
    assert_eq!(picked["pickedAmount"], 1.0);
    refused(&sim, &host, "pick_article", json!({"order_id": order, "list_id": list, "article_id": "BIKE/26", "device_id": "d",
        "product": {"pickedAmount": 1, "batches": [{"serialNr": "SN-26-0001", "pickedAmount": 2}]}}), "product.pickedAmount").await;
    let row = got["products"][1]["customerOrderProductId"].clone();
    let many = call(&host, "pick_articles", json!({"order_id": order, "list_id": list, "products": [{"customerOrderProductId": row, "articleId": "A-200", "pickedAmount": 1}]})).await;
    assert_eq!(many["products"][0]["pickedAmount"], 1.0);
    assert_eq!(call(&host, "get_order", json!({"id": order})).await["products"][0]["pickedAmount"], 1.0);
    let e = call_err(&host, "pick_articles", json!({"order_id": order, "list_id": list, "products": [{"customerOrderProductId": row, "articleId": "A-200", "pickedAmount": 5}]})).await;
    assert_eq!((e.vendor_code.as_deref(), e.field.as_deref()), (Some("900713"), Some("products[0].pickedAmount")));
    let rest = call(&host, "create_picking_list_rest", json!({"order_id": order, "list_id": list})).await;
    assert_eq!(rest["orders"][0]["articles"][0]["articleId"], "A-200");
    assert_eq!(rest["orders"][0]["articles"][0]["orderedAmount"], 1.0);
    assert!(decode(&call(&host, "print_picking_list", json!({"order_id": order, "list_id": list})).await).starts_with(b"%PDF-"));
    assert!(decode(&call(&host, "print_picking_lists", json!({"page_size": 5})).await).starts_with(b"%PDF-"));
    call(&host, "set_picking_list_packing", json!({"order_id": order, "list_id": list})).await;
    assert_eq!(state_of(&host, order).await, 10);
    assert_eq!(call(&host, "finish_picking_list", json!({"order_id": order, "list_id": list})).await["state"], 20);
    conflict(&call_err(&host, "set_picking_list_packing", json!({"order_id": order, "list_id": list})).await, "900713");
    let e = call_err(&host, "get_picking_list", json!({"order_id": order, "list_id": 1})).await;
    assert_eq!((e.kind.as_str(), e.vendor_code.as_deref()), ("not-found", Some("900711")));
}

#[tokio::test]
async fn printed_documents_are_the_bytes_the_simulator_served() {
    let (sim, host) = start().await;
    let a = new_order(&host, json!([{"articleId": "A-100", "orderedAmount": 1}])).await;
    let b = new_order(&host, json!([{"articleId": "A-200", "orderedAmount": 1}])).await;
    let e = call_err(&host, "print_invoice", json!({"id": a})).await;
    assert_eq!(e.vendor_code.as_deref(), Some("900701"));
    call(&host, "mark_order_ready_for_packing", json!({"order_id": a})).await;
    call(&host, "send_order", json!({"order_id": a, "finish_pickinglists": true})).await;
    call(&host, "invoice_order", json!({"order_id": a})).await;
    let file = call(&host, "print_invoice", json!({"id": a})).await;
    assert_eq!(file["content_type"], "application/pdf");
    let bytes = decode(&file);
    let served = sim.served_files();
    let (path, _, served_bytes) = served.last().unwrap();
    assert_eq!(path, &format!("/v1/customer_orders/{a}/invoice/print"));
    assert_eq!(&bytes, served_bytes, "the invoice must round-trip byte for byte");
    assert_eq!(file["size"], bytes.len());
    assert!(bytes.starts_with(b"%PDF-1.4") && bytes.ends_with(b"%%EOF\n"));
    assert!(String::from_utf8_lossy(&bytes).contains(&format!("Invoice for customer order {a}")));

    let pa = decode(&call(&host, "print_order", json!({"id": a})).await);
    let pb = decode(&call(&host, "print_order", json!({"id": b})).await);
    assert_ne!(pa, pb);
    assert!(decode(&call(&host, "print_delivery_note", json!({"id": a})).await).starts_with(b"%PDF-"));
    assert!(decode(&call(&host, "print_delivery_notes", json!({"state": 0, "sort_order": "desc"})).await).starts_with(b"%PDF-"));
    let labels = call(&host, "print_labels", json!({"page_size": 10})).await;
    assert_eq!(labels["content_type"], "application/vnd.ms-excel");
    assert!(String::from_utf8(decode(&labels)).unwrap().contains("Cykelboden AB"));
    refused(&sim, &host, "print_delivery_notes", json!({"state": -1}), "state").await;
}

#[tokio::test]
async fn rest_articles_by_supplier_and_purchase_order() {
    let (_sim, host) = start().await;
    let order = new_order(&host, json!([{"articleId": "T-700", "orderedAmount": 4}, {"articleId": "A-100", "orderedAmount": 1}])).await;
    let rest = call(&host, "list_rest_articles_by_supplier", json!({"supplier_id": 20, "sort_column": "available"})).await;
    assert_eq!(rest["articles"][0]["id"], "T-700");
    assert_eq!(rest["articles"][0]["deliver"], 4.0);
    assert_eq!(rest["articles"][0]["customerOrders"][0]["id"], order);
    assert!(rest["articles"][0]["customerOrders"][0]["desiredDeliveryRfc3339"].is_string());
    let pos = call(&host, "create_drop_shipment", json!({"order_id": order, "is_dropshipment": false})).await;
    let po = pos["orders"].as_array().unwrap().iter().find(|p| p["supplierId"] == 20).unwrap()["id"].as_i64().unwrap();
    let by_po = call(&host, "list_rest_articles_by_purchase_order", json!({"order_id": po})).await;
    assert_eq!(by_po["articles"][0]["id"], "T-700");
    let e = call_err(&host, "list_rest_articles_by_supplier", json!({"supplier_id": 99})).await;
    assert_eq!((e.kind.as_str(), e.vendor_code.as_deref()), ("not-found", Some("900721")));
}

#[tokio::test]
async fn credentials_either_scheme_and_refused_ones() {
    let (sim, host) = start_with(Options { api_key: "another-key".into(), ..Default::default() }, "").await;
    let e = call_err(&host, "list_orders", json!({})).await;
    assert_eq!((e.kind.as_str(), e.vendor_code.as_deref()), ("unauthorized", Some("900001")));
    assert!(!e.message.contains("lk-demo-key"));
    drop((sim, host));
    // The user-token scheme: the host sends store, user_id and user_token, so
    // assigning a picking list needs no device id.
    let (_sim, host) = start_with(Options::default(), "[connectors.lagerkoll.settings]\nauth_scheme = \"user-token\"").await;
    let order = new_order(&host, json!([{"articleId": "A-100", "orderedAmount": 1}])).await;
    call(&host, "mark_order_ready_for_packing", json!({"order_id": order})).await;
    let list = first_list(&host, order).await;
    let assigned = call(&host, "assign_picking_list", json!({"order_id": order, "list_id": list})).await;
    assert_eq!(assigned["warehouseWorkerName"], "Anna Lager");
    let mine = call(&host, "list_my_picking_lists", json!({})).await;
    assert_eq!(mine["lists"][0]["id"], list);
}

/// The documented `user_id` worker header goes out with the api-key scheme
/// (only the headers of the scheme a request uses are the host's), and the
/// documented base URL, with its path and trailing slash, joins without
/// doubling the path.
#[tokio::test]
async fn the_worker_header_and_the_documented_base_url() {
    let sim = Simulator::start(Options::default()).await.expect("simulator");
    let host = TestHost::start(&config(&format!("{}/v1/customer_orders/", sim.url()), "")).await.expect("host");
    let order = new_order(&host, json!([{"articleId": "A-100", "orderedAmount": 1}])).await;
    call(&host, "mark_order_ready_for_packing", json!({"order_id": order})).await;
    let list = first_list(&host, order).await;
    let assigned = call(&host, "assign_picking_list", json!({"order_id": order, "list_id": list, "user_id": 1002})).await;
    assert_eq!((assigned["warehouseWorkerId"].as_i64(), assigned["warehouseWorkerName"].as_str()), (Some(1002), Some("Bo Plock")));
}

#[tokio::test]
async fn xml_answers_are_refused_not_misread() {
    let (sim, host) = start().await;
    let order = new_order(&host, json!([{"articleId": "A-100", "orderedAmount": 1}])).await;
    sim.set_xml(true);
    let e = call_err(&host, "get_order", json!({"id": order})).await;
    assert_eq!(e.kind.as_str(), "internal", "{e:?}");
    assert!(e.message.contains("XML"), "{}", e.message);
    // XML error bodies still give their code.
    let e = call_err(&host, "get_order", json!({"id": 5})).await;
    assert_eq!((e.kind.as_str(), e.vendor_code.as_deref()), ("not-found", Some("900701")));
}

#[tokio::test]
async fn a_saturating_client_uses_the_budget_without_a_single_429() {
    let opts = Options { limit_per_window: 10, window_ms: 1000, ..Default::default() };
    let (sim, host) = start_with(opts, "[connectors.lagerkoll.rate_limits.general]\nwindows = [{ limit = 10, seconds = 1 }]").await;
    let order = new_order(&host, json!([{"articleId": "A-100", "orderedAmount": 1}])).await;
    let calls: Vec<_> = (0..34).map(|_| host.call("lagerkoll", "get_order", json!({"id": order}))).collect();
    for result in futures::future::join_all(calls).await {
        result.expect("every call succeeds");
    }
    assert_eq!(sim.violations(), 0, "the host must never exceed the documented limit");
    assert!(sim.peak_window_hits() >= 9, "at least 90% of the budget used, got {}", sim.peak_window_hits());
    assert_eq!(sim.request_count(), 35);
}

#[tokio::test]
async fn a_429_is_honoured_or_reported_with_retry_after() {
    // The simulator's window is tighter than the host's: the host meets 429s,
    // waits the Retry-After and succeeds.
    let (sim, host) = start_with(Options { limit_per_window: 3, window_ms: 1000, ..Default::default() }, "").await;
    for _ in 0..5 {
        call(&host, "list_orders", json!({})).await;
    }
    assert!(sim.violations() >= 1);
    // A Retry-After beyond the host's wait bound reaches the script as rate-limited.
    let (sim, host) = start_with(Options { limit_per_window: 1, window_ms: 3_600_000, ..Default::default() }, "").await;
    call(&host, "list_orders", json!({})).await;
    let e = call_err(&host, "list_orders", json!({})).await;
    assert_eq!((e.kind.as_str(), e.vendor_code.as_deref()), ("rate-limited", Some("900429")), "{e:?}");
    assert!(e.retry_after_ms.unwrap() > 3_000_000, "{e:?}");
    assert_eq!(sim.violations(), 1);
}
