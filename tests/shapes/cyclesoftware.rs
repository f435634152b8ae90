//! Every documented CycleSoftware endpoint, called the way the docs show it.
use super::Recorder;
use base64::Engine;
use serde_json::{json, Value};
use spoke_sandbox::cyclesoftware::{Options, Simulator};
use std::collections::HashMap;

/// The docs' create-lead body.
fn lead() -> Value {
    json!({
        "store_id": "1-1", "type": "test_ride", "status": "open", "title": "Kieskeurig: proefrit Batavus Crescendo",
        "message": "NaamKlant wil een proefrit maken", "costs_ex_vat_cents": 1500,
        "options": {"test_ride_requested": true, "phone_call_requested": true, "finance_information_requested": false, "insurance_information_requested": false},
        "object": {"description": "Batavus Crescendo", "object_id": 11212, "article_number": null, "barcode": "877474749349"},
        "exchange_object": {"exchange_description": null, "exchange_remarks": null},
        "customer": {"customer_address_id": null, "address_type": "lead", "customer_id": null, "is_business_address": false, "company_name": "",
            "name": "NaamKlant", "street": "Hoofdstraat", "house_number": "10", "house_number_postfix": "B", "postal_code": "5238HL",
            "city": "Berlicum", "country_code": "NL", "phone_number": "0612345678", "email": "", "notes": "Bellen tussen 12.00-17.00"}
    })
}

fn address() -> Value {
    json!({"is_business_address": false, "company_name": null, "name": "Name 1", "street": "Streetname", "house_number": "1",
        "house_number_postfix": "a", "postal_code": "1000AA", "city": "Amsterdam", "country_code": "NL", "phone_number": "073031111",
        "email": "test@test.com", "notes": "Some note"})
}

pub async fn answers() -> HashMap<(String, String), Value> {
    let opts = Options::default();
    let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", opts.username, opts.password)));
    let sim = Simulator::start(opts).await.expect("CycleSoftware simulator");
    let mut r = Recorder::new(sim.url(), vec![("authorization", auth)]);
    let none = Value::Null;
    let dates = "start_date=2000-01-01&end_date=2100-12-31";

    r.send("GET", "/api/v1/warehouse/inbound/backlog.json", "/api/v1/warehouse/inbound/backlog.json", &none).await;
    r.send("GET", "/api/v1/warehouse/inbound/delivered-items.json", &format!("/api/v1/warehouse/inbound/delivered-items.json?{dates}"), &none).await;
    r.send("GET", "/api/v1/warehouse/workshop/assemblies.json", &format!("/api/v1/warehouse/workshop/assemblies.json?{dates}"), &none).await;
    r.send("GET", "/app/api/whm/stockinfo/{barcodes}", "/app/api/whm/stockinfo/8719461035781/8719461035782", &none).await;
    r.send("POST", "/app/api/whm/stockinfo/", "/app/api/whm/stockinfo/", &json!({"barcodes": ["8719461035781", "8719461035782"]})).await;
    r.send("GET", "/api/v1/warehouse/stock/items.json", "/api/v1/warehouse/stock/items.json", &none).await;
    r.send("GET", "/api/v1/warehouse/stock/pos-items.json", "/api/v1/warehouse/stock/pos-items.json", &none).await;
    r.send("GET", "/api/v1/warehouse/outbound/order/open-orders.json", "/api/v1/warehouse/outbound/order/open-orders.json?page=1", &none).await;
    let order = "/api/v1/warehouse/outbound/order";
    r.send("POST", &format!("{order}/{{outbound_order_id}}/pool-to-regular.json"), &format!("{order}/240/pool-to-regular.json"), &none).await;
    r.send("POST", &format!("{order}/{{outbound_order_id}}/cancel.json"), &format!("{order}/225/cancel.json"), &none).await;
    let item = "/api/v1/warehouse/outbound/item";
    r.send("POST", &format!("{item}/{{stock_item_id}}/delivered.json"), &format!("{item}/109993/delivered.json"), &none).await;
    r.send("POST", &format!("{item}/{{stock_item_id}}/not-delivered.json"), &format!("{item}/109993/not-delivered.json"), &none).await;

    r.send("GET", "/api/v1/platform/authentication/keys.json", "/api/v1/platform/authentication/keys.json", &none).await;
    r.send("GET", "/api/v1/stock-in-store-locator/stores.json", "/api/v1/stock-in-store-locator/stores.json", &none).await;
    r.send("POST", "/api/v1/stock-in-store-locator/stock.json", "/api/v1/stock-in-store-locator/stock.json",
        &json!([{"barcode": "8717144186799"}, {"barcode": "8717231204726"}])).await;
    let created = r.send("POST", "/api/v1/leads/create.json", "/api/v1/leads/create.json", &lead()).await;
    let uuid = created["sales_lead"]["uuid"].as_str().expect("lead uuid").to_string();
    r.send("GET", "/api/v1/leads/{uuid}.json", &format!("/api/v1/leads/{uuid}.json"), &none).await;
    r.send("POST", "/api/v1/leads/{uuid}/cancel.json", &format!("/api/v1/leads/{uuid}/cancel.json"), &none).await;

    let sales = "/api/v1/sales/orders";
    r.send("POST", &format!("{sales}/{{sales_order_id}}/update-store.json"), &format!("{sales}/102323/update-store.json"),
        &json!({"to_store_id": 2, "default_mode": 2, "new_delivery_method_id": 3, "new_delivery_address": address(),
            "items": [{"item_id": 1, "mode": 1}, {"item_id": 2, "mode": 1}]})).await;
    r.send("POST", &format!("{sales}/{{sales_order_id}}/update-delivery-method.json"), &format!("{sales}/102323/update-delivery-method.json"),
        &json!({"new_delivery_method_id": 3, "new_delivery_address": address()})).await;
    r.send("POST", &format!("{sales}/{{sales_order_id}}/cancel.json"), &format!("{sales}/121212/cancel.json?cancellation_type_id=1&delete_exchange=true"), &none).await;
    r.send_form("POST", &format!("{sales}/{{sales_order_id}}/create-invoices.json"), &format!("{sales}/1000/create-invoices.json"),
        "employee_id=1005&order_status_id=9&book=1&customer_messages=1&allow_resend_messages=1").await;
    r.answers
}
