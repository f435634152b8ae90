//! Every documented Lagerkoll endpoint with an example response, called the
//! way the docs show it.
use super::Recorder;
use serde_json::{json, Value};
use spoke_sandbox::lagerkoll::{Options, Simulator};
use std::collections::HashMap;

const BASE: &str = "/v1/customer_orders";

fn order(external: &str, rows: Value) -> Value {
    json!({"customerId": 1, "externalOrderId": external, "webshopOrderId": external, "customerOrderNumber": external,
        "orderDate": 1713565571411i64, "freight": 49.0, "administrationFee": 10.0, "comments": "comments", "yourReference": "yourReference",
        "wayOfDelivery": "POST", "deliveryTerm": "FVL", "paymentTerm": "30", "products": rows})
}

fn offer() -> Value {
    json!({"ourReference": "ourReference", "customerPhone": "+46 8 123 45", "pricelistId": 1, "validDate": 1713565571460i64,
        "customerEmail": "order@cykelboden.se", "customerId": 1, "description": "description", "currency": "SEK", "customerName": "Cykelboden AB",
        "rows": [{"supplierName": "Nordic Bike Parts AB", "amount": 2.0, "articleName": "Cykelhjälm Urban", "supplierId": 10, "salesPrice": 449.0,
            "articleId": "A-100", "discount": 0.0, "discountType": "AMOUNT", "purchasePrice": 210.0, "purchaseCurrency": "SEK"}]})
}

pub async fn answers() -> HashMap<(String, String), Value> {
    let opts = Options::default();
    let headers = vec![("store", opts.store.clone()), ("api_key", opts.api_key.clone()), ("accept", "application/json".to_string())];
    let worker = opts.users[0].id.to_string();
    let other_worker = opts.users[1].id.to_string();
    let sim = Simulator::start(opts).await.expect("Lagerkoll simulator");
    let mut r = Recorder::new(sim.url(), headers);
    let none = Value::Null;
    let me = [("user_id", worker.as_str())];
    let p = |documented: &str| format!("{BASE}{documented}");

    // An order with two rows, walked through picking to invoiced.
    let rows = json!([{"articleId": "A-100", "orderedAmount": 2.0}, {"articleId": "A-200", "orderedAmount": 1.0, "batches": [{"batchId": "L-2024-01", "orderedAmount": 1.0}]}]);
    let created = r.send("POST", BASE, BASE, &order("WEB-SHAPE-1", rows)).await;
    let id = created["orderId"].as_i64().expect("orderId");
    r.send("GET", &p("/external/{external_id}"), &p("/external/WEB-SHAPE-1"), &none).await;
    r.send("GET", &p("/{id}"), &format!("{BASE}/{id}"), &none).await;
    r.send("GET", BASE, BASE, &none).await;
    r.send("GET", &p("/article/{article_id}"), &p("/article/A-100"), &none).await;
    r.send("GET", &p("/state/{state}"), &p("/state/0"), &none).await;
    r.send("GET", &p("/cost/{id}"), &format!("{BASE}/cost/{id}"), &none).await;
    r.send("PUT", &p("/{id}"), &format!("{BASE}/{id}"), &json!({"comments": "ring first", "ourReference": "ourReference"})).await;
    let added = r.send("POST", &p("/{id}/product"), &format!("{BASE}/{id}/product"), &json!({"articleId": "T-700", "orderedAmount": 1.0})).await;
    let row = added["products"].as_array().into_iter().flatten().find(|p| p["articleId"] == "T-700").expect("the added row")["id"].as_i64().unwrap();
    r.send("PUT", &p("/{id}/product"), &format!("{BASE}/{id}/product"), &json!({"id": row, "articleId": "T-700", "orderedAmount": 2.0})).await;
    r.send("PUT", &p("/{id}/product/remove"), &format!("{BASE}/{id}/product/remove"), &json!({"id": row})).await;

    r.send("PUT", &p("/{order_id}/ready_for_packing"), &format!("{BASE}/{id}/ready_for_packing"), &none).await;
    let lists = r.send("GET", &p("/{order_id}/picking_lists"), &format!("{BASE}/{id}/picking_lists"), &none).await;
    let list = lists["lists"][0]["id"].as_i64().expect("a picking list");
    let at = |rest: &str| format!("{BASE}/{id}/picking_lists/{list}{rest}");
    let documented = |rest: &str| p(&format!("/{{order_id}}/picking_lists/{{list_id}}{rest}"));
    r.send("GET", &documented(""), &at(""), &none).await;
    r.send("GET", &p("/picking_lists/new"), &p("/picking_lists/new"), &none).await;
    let products = r.send("GET", &documented("/articles"), &at("/articles"), &none).await;
    let locks = products["products"].as_array().into_iter().flatten().find(|p| p["articleId"] == "A-200").expect("A-200 on the list");
    let lock_row = locks["customerOrderProductId"].as_i64().unwrap();
    r.send_with("PUT", &documented("/assign"), &at("/assign"), &none, &me).await;
    r.send_with("GET", &p("/picking_lists"), &p("/picking_lists"), &none, &me).await;
    r.send("GET", &p("/picking_lists/assigned"), &p("/picking_lists/assigned"), &none).await;
    let batch = json!([{"batchId": "L-2024-01", "orderedAmount": 1.0, "pickedAmount": 1.0}]);
    r.send("PUT", &documented("/pick"), &at("/pick"), &json!({"products": [{"customerOrderProductId": lock_row, "articleId": "A-200", "pickedAmount": 1.0, "batches": batch}]})).await;
    // What is not picked yet (the helmets) goes on a purchase order.
    r.send("POST", &documented("/rest"), &at("/rest"), &none).await;
    r.send_with("PUT", &documented("/pick/{article_id}"), &at("/pick/A-100"), &json!({"articleId": "A-100", "pickedAmount": 2.0}), &me).await;
    r.send("PUT", &documented("/assign/{assigned_user_id}"), &at(&format!("/assign/{other_worker}")), &none).await;
    r.send("PUT", &documented("/finish"), &at("/finish"), &none).await;
    r.send("PUT", &p("/{order_id}/packed"), &format!("{BASE}/{id}/packed?finish_pickinglists=true"), &none).await;
    r.send("PUT", &p("/{order_id}/freight_booked"), &format!("{BASE}/{id}/freight_booked"), &none).await;
    r.send("PUT", &p("/{order_id}/send"), &format!("{BASE}/{id}/send?create_rest_order=true"), &none).await;
    r.send("PUT", &p("/{order_id}/delivered"), &format!("{BASE}/{id}/delivered"), &none).await;
    r.send("PUT", &p("/{order_id}/invoice"), &format!("{BASE}/{id}/invoice?type=invoice"), &none).await;

    // One row: its products answer is the one Article the docs show (one
    // with batches, so they are compared too).
    let single = r.send("POST", BASE, BASE, &order("WEB-SHAPE-2", json!([{"articleId": "A-200", "orderedAmount": 1.0}]))).await;
    let single = single["orderId"].as_i64().unwrap();
    r.send("GET", &p("/{id}/products"), &format!("{BASE}/{single}/products"), &none).await;

    // Drop shipment and back; rest articles wait for its purchase order.
    r.send("POST", &p("/{order_id}/dropshipment"), &format!("{BASE}/{single}/dropshipment"), &none).await;
    let pos = r.send("GET", &p("/{order_id}/purchase_orders"), &format!("{BASE}/{single}/purchase_orders"), &none).await;
    let po = pos["orders"][0]["id"].as_i64().expect("a purchase order");
    r.send("PUT", &p("/{order_id}/dropshipment/cancel"), &format!("{BASE}/{single}/dropshipment/cancel"), &none).await;
    r.send("GET", &p("/rest_articles/purchaseorder/{order_id}/"), &format!("{BASE}/rest_articles/purchaseorder/{po}/"), &none).await;
    r.send("GET", &p("/rest_articles/supplier/{supplier_id}/"), &p("/rest_articles/supplier/10/"), &none).await;
    r.send("PUT", &p("/{order_id}/cancel"), &format!("{BASE}/{single}/cancel"), &none).await;

    // The bulk changes, on two more orders.
    let mut bulk = Vec::new();
    for external in ["WEB-SHAPE-3", "WEB-SHAPE-4"] {
        let o = r.send("POST", BASE, BASE, &order(external, json!([{"articleId": "A-100", "orderedAmount": 1.0}]))).await;
        bulk.push(o["orderId"].as_i64().unwrap());
    }
    r.send("PUT", &p("/ready_for_packing"), &p("/ready_for_packing"), &json!(bulk)).await;
    r.send("PUT", &p("/send"), &p("/send?finish_pickinglists=true"), &json!(bulk)).await;
    r.send("PUT", &p("/invoice"), &p("/invoice?type=invoice"), &json!(bulk)).await;

    // Offers: one approved (it becomes a customer order), one cancelled.
    let created = r.send("POST", &p("/offers"), &p("/offers"), &offer()).await;
    let offer_id = created["offerId"].as_i64().expect("offerId");
    r.send("GET", &p("/offers"), &p("/offers"), &none).await;
    r.send("GET", &p("/offers/{offer_id}"), &format!("{BASE}/offers/{offer_id}"), &none).await;
    let mut update = offer();
    update["description"] = json!("updated");
    r.send("PUT", &p("/offers/{offer_id}"), &format!("{BASE}/offers/{offer_id}"), &update).await;
    let approved = r.send("PUT", &p("/offers/{offer_id}/approve"), &format!("{BASE}/offers/{offer_id}/approve"), &none).await;
    let from_offer = approved["customerOrderId"].as_i64().expect("the offer's customer order");
    r.send("GET", &p("/{order_id}/offers"), &format!("{BASE}/{from_offer}/offers"), &none).await;
    let second = r.send("POST", &p("/offers"), &p("/offers"), &offer()).await;
    let second = second["offerId"].as_i64().unwrap();
    r.send("PUT", &p("/offers/{offer_id}/cancel"), &format!("{BASE}/offers/{second}/cancel"), &none).await;
    r.answers
}
