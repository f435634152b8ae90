//! The cyclesoftware connector through the real host against its simulator:
//! every operation, errors, both paginations, the rate limits saturated
//! without a 429, and signed webhooks.
use serde_json::{json, Value};
use spoke_sandbox::cyclesoftware::{BucketName, Options, OutboundItem, OutboundOrder, Simulator, StockItem};
use spoke_tests::{TestHost, Webhook};
use std::time::Duration;

const SECRET: &str = "demo-hash-secret";

/// A simulator and a host pointed at it; `extra` adds TOML (settings, limits).
async fn start(opts: Options, extra: &str) -> (Simulator, TestHost) {
    let sim = Simulator::start(opts).await.expect("simulator");
    let host = TestHost::start(&format!(
        r#"
[connectors.cyclesoftware]
plugin = "cyclesoftware"
base_url = "{}"
[connectors.cyclesoftware.credentials]
username = "value:demo"
password = "value:demo-password"
hash_secret = "value:{SECRET}"
{extra}
"#,
        sim.url()
    ))
    .await
    .expect("host");
    (sim, host)
}

async fn call(host: &TestHost, op: &str, input: Value) -> Value {
    host.call("cyclesoftware", op, input).await.unwrap_or_else(|e| panic!("{op}: {e:?}"))
}

async fn call_err(host: &TestHost, op: &str, input: Value) -> spoke::CallError {
    match host.call("cyclesoftware", op, input).await {
        Ok(v) => panic!("{op} should fail, got {v}"),
        Err(e) => e,
    }
}

fn small_pages() -> Options {
    Options { page_size: 2, ..Options::default() }
}

fn ids(list: &Value, key: &str) -> Vec<i64> {
    list.as_array().unwrap().iter().map(|v| v[key].as_i64().unwrap()).collect()
}

// ---- warehouse: inbound and workshop (offset pagination) ----

#[tokio::test]
async fn inbound_backlog_pages_by_offset_and_filters() {
    let (sim, host) = start(small_pages(), "").await;
    let first = call(&host, "list_inbound_backlog", json!({})).await;
    assert_eq!(ids(&first["data"], "id"), [412805, 412843]);
    assert_eq!(first["pagination"]["next_offset"], 2);
    let second = call(&host, "list_inbound_backlog", json!({"offset": 2})).await;
    assert_eq!(ids(&second["data"], "id"), [412855, 412860]);
    let all = call(&host, "list_inbound_backlog", json!({"all_pages": true})).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 5);
    assert_eq!(all["pagination"]["next_offset"], Value::Null);

    let assigned = call(&host, "list_inbound_backlog", json!({"is_assigned": 1, "all_pages": true})).await;
    assert_eq!(ids(&assigned["data"], "id"), [412843]);
    assert_eq!(assigned["data"][0]["assignment"]["outbound_order_id"], 440452);
    let supplier = call(&host, "list_inbound_backlog", json!({"supplier_id": 2113})).await;
    assert_eq!(ids(&supplier["data"], "id"), [412860]);

    let before = sim.request_count();
    let err = call_err(&host, "list_inbound_backlog", json!({"is_assigned": 2})).await;
    assert_eq!(err.kind.as_str(), "invalid-input");
    assert!(err.message.contains("allowed values"), "{}", err.message);
    assert_eq!(sim.request_count(), before, "invalid input sent nothing");
}

#[tokio::test]
async fn delivered_items_and_assemblies_take_a_date_interval() {
    let (sim, host) = start(small_pages(), "").await;
    let all = call(&host, "list_delivered_items", json!({"start_date": "2021-01-02", "end_date": "2021-01-04", "all_pages": true})).await;
    assert_eq!(ids(&all["data"], "inbound_delivery_item_id"), [100002, 100003, 100004]);
    assert_eq!(all["data"][0]["purchase_price_cents"], 10099);
    let page = call(&host, "list_delivered_items", json!({"start_date": "2021-01-01", "end_date": "2021-01-31"})).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["pagination"]["next_offset"], 2);

    let assemblies = call(&host, "list_workshop_assemblies", json!({"start_date": "2021-10-11", "end_date": "2021-10-13", "all_pages": true})).await;
    assert_eq!(ids(&assemblies["data"], "stock_item_id"), [10000, 20000, 30000]);
    assert_eq!(assemblies["data"][0]["released_for_shipment_at"], "2021-10-11");

    let before = sim.request_count();
    let err = call_err(&host, "list_delivered_items", json!({"start_date": "2021-01-05", "end_date": "2021-01-01"})).await;
    assert_eq!((err.kind.as_str(), err.field.as_deref()), ("invalid-input", Some("end_date")));
    let err = call_err(&host, "list_workshop_assemblies", json!({"start_date": "11-10-2021", "end_date": "2021-10-13"})).await;
    assert_eq!((err.kind.as_str(), err.field.as_deref()), ("invalid-input", Some("start_date")));
    let err = call_err(&host, "list_workshop_assemblies", json!({"start_date": "2021-10-11"})).await;
    assert_eq!(err.field.as_deref(), Some("end_date"));
    assert_eq!(sim.request_count(), before);
}

// ---- warehouse: stock ----

#[tokio::test]
async fn stock_info_by_path_and_by_list_with_flags() {
    let (sim, host) = start(Options::default(), "").await;
    let out = call(&host, "get_stock_info", json!({"barcodes": ["8719461035781", "8717231346426"], "always_remote_supplier_check": 1})).await;
    let items = out["data"]["result_items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["barcode"], "8719461035781");
    assert_eq!(items[0]["stock_quantity_stores"], 2);
    assert_eq!(items[0]["stock_supplier"], true);
    assert_eq!(items[1]["stock_quantity_warehouse"], 2);
    assert_eq!(items[1]["stock_supplier"], false);

    let out = call(&host, "get_stock_info", json!({"barcodes": ["8717231346426"], "stock_items": 1, "no_remote_supplier_check": 1})).await;
    let item = &out["data"]["result_items"][0];
    assert_eq!(item["stock_supplier"], Value::Null);
    assert_eq!(ids(&item["stock_items"], "stock_item_id"), [203013, 203014]);

    let out = call(&host, "query_stock_info", json!({"barcodes": ["8717231346426", "0000"], "only_supplier_stock": 1, "only_supplier_id": 2113})).await;
    let items = out["data"]["result_items"].as_array().unwrap();
    assert_eq!(items[0]["stock_quantity"], 0, "only supplier stock ignores the warehouse");
    assert_eq!(items[0]["supplier_id"], "2113");
    assert_eq!(items[1]["stock_available"], false);

    let before = sim.request_count();
    let err = call_err(&host, "get_stock_info", json!({"barcodes": ["87/17"]})).await;
    assert_eq!((err.kind.as_str(), err.field.as_deref()), ("invalid-input", Some("barcodes[0]")));
    let err = call_err(&host, "query_stock_info", json!({"barcodes": []})).await;
    assert_eq!(err.kind.as_str(), "invalid-input");
    assert_eq!(sim.request_count(), before);
}

#[tokio::test]
async fn warehouse_and_pos_stock_lists() {
    let (_sim, host) = start(Options::default(), "").await;
    let wh = call(&host, "list_warehouse_stock", json!({})).await;
    assert_eq!(ids(&wh["data"], "stock_item_id"), [109993, 203013, 203014]);
    assert_eq!(wh["data"][0]["claimed_for_store_id"], 13);
    assert_eq!(wh["data"][1]["shipped_at"], Value::Null);
    let pos = call(&host, "list_pos_stock", json!({})).await;
    assert_eq!(ids(&pos["data"], "object_id"), [1076, 4673]);
    assert_eq!(pos["data"][0]["dealer_rrp_cents"], 259900);
}

// ---- warehouse: outbound orders and shipments ----

#[tokio::test]
async fn open_outbound_order_items_page_by_number() {
    let (_sim, host) = start(small_pages(), "").await;
    let first = call(&host, "list_open_outbound_order_items", json!({})).await;
    assert_eq!(ids(&first["data"], "outbound_order_item_id"), [277, 283]);
    assert_eq!(first["pagination"], json!({"page": 1, "count": 4, "has_next_page": true}));
    let second = call(&host, "list_open_outbound_order_items", json!({"page": 2})).await;
    assert_eq!(ids(&second["data"], "outbound_order_item_id"), [290, 291]);
    assert_eq!(second["pagination"]["has_next_page"], false);
    let all = call(&host, "list_open_outbound_order_items", json!({"all_pages": true})).await;
    assert_eq!(ids(&all["data"], "outbound_order_item_id"), [277, 283, 290, 291], "284 is fully shipped");
    assert_eq!(all["pagination"]["has_next_page"], false);
}

#[tokio::test]
async fn pool_to_regular_and_cancel_outbound_order() {
    let (sim, host) = start(Options::default(), "").await;
    assert!(sim.outbound_order(240).unwrap().is_pool());
    let out = call(&host, "pool_to_regular", json!({"outbound_order_id": 240})).await;
    assert_eq!(out, json!({}));
    assert!(!sim.outbound_order(240).unwrap().is_pool());

    let out = call(&host, "cancel_outbound_order", json!({"outbound_order_id": 225})).await;
    assert_eq!(out["result"], json!([{"outbound_order_item_id": 277, "unclaimed_stock": 1}]));
    assert!(sim.outbound_order(225).unwrap().is_cancelled());
    let err = call_err(&host, "cancel_outbound_order", json!({"outbound_order_id": 225})).await;
    assert_eq!(err.kind.as_str(), "conflict");
    assert!(err.message.contains("already cancelled"), "{}", err.message);
    assert_eq!(err.status, Some(400));
    let err = call_err(&host, "pool_to_regular", json!({"outbound_order_id": 999})).await;
    assert_eq!(err.kind.as_str(), "not-found");
    let err = call_err(&host, "pool_to_regular", json!({"outbound_order_id": 0})).await;
    assert_eq!(err.kind.as_str(), "invalid-input");
}

#[tokio::test]
async fn items_are_marked_delivered_or_not() {
    let (sim, host) = start(Options::default(), "").await;
    call(&host, "mark_item_delivered", json!({"stock_item_id": 109993})).await;
    assert!(sim.stock_item(109993).unwrap().is_delivered);
    call(&host, "mark_item_not_delivered", json!({"stock_item_id": 109993})).await;
    assert!(!sim.stock_item(109993).unwrap().is_delivered);
    let err = call_err(&host, "mark_item_delivered", json!({"stock_item_id": 203013})).await;
    assert_eq!(err.kind.as_str(), "conflict", "not shipped yet");
    let err = call_err(&host, "mark_item_not_delivered", json!({"stock_item_id": 1})).await;
    assert_eq!(err.kind.as_str(), "not-found");
}

// ---- platform ----

#[tokio::test]
async fn platform_keys_and_the_stock_locator() {
    let (sim, host) = start(Options::default(), "").await;
    let keys = call(&host, "list_platform_keys", json!({})).await;
    assert_eq!(keys["keys"][0]["store"]["store_id"], "1-3");
    assert_eq!(keys["keys"][1]["is_active"], false);
    assert_eq!(keys["keys"][1]["store"]["store_meta_data"]["drg_dealer_number"], "888");
    let stores = call(&host, "list_locator_stores", json!({})).await;
    assert_eq!(stores["stores"].as_array().unwrap().len(), 2);
    let located = call(&host, "locate_stock", json!({"items": [{"barcode": "8717231204726"}, {"article_id": "03505002"}]})).await;
    assert_eq!(ids(&located["stock"], "object_id"), [144922, 18695, 18696]);
    assert_eq!(located["stores"].as_array().unwrap().len(), 2);

    let before = sim.request_count();
    let err = call_err(&host, "locate_stock", json!({"items": [{}]})).await;
    assert_eq!((err.kind.as_str(), err.field.as_deref()), ("invalid-input", Some("items[0]")));
    assert_eq!(sim.request_count(), before);
}

fn lead_input(lead_type: &str) -> Value {
    json!({
        "store_id": "1-1",
        "type": lead_type,
        "title": "Kieskeurig: proefrit Batavus Crescendo",
        "message": "NaamKlant wil een proefrit maken",
        "costs_ex_vat_cents": 1500,
        "options": {"test_ride_requested": true, "phone_call_requested": true},
        "object": {"description": "Batavus Crescendo", "object_id": 11212, "article_number": null, "barcode": "877474749349"},
        "customer": {"is_business_address": false, "name": "NaamKlant", "street": "Hoofdstraat", "house_number": "10",
                     "postal_code": "5238HL", "city": "Berlicum", "country_code": "NL", "notes": "Bellen tussen 12.00-17.00"}
    })
}

#[tokio::test]
async fn leads_are_created_read_and_cancelled_while_cancellable() {
    let (sim, host) = start(Options::default(), "").await;
    let created = call(&host, "create_lead", lead_input("test_ride")).await;
    let lead = &created["sales_lead"];
    let uuid = lead["uuid"].as_str().unwrap().to_string();
    assert_eq!((lead["status"].as_str(), lead["type"].as_str()), (Some("open"), Some("test_ride")));
    assert_eq!(lead["customer"]["address_type"], "lead");
    assert_eq!(lead["options"]["test_ride_requested"], true);

    sim.set_lead_status(&uuid, "noticed").unwrap();
    let got = call(&host, "get_lead", json!({"uuid": uuid})).await;
    assert_eq!(got["sales_lead"]["status"], "noticed");
    call(&host, "cancel_lead", json!({"uuid": uuid})).await;
    assert_eq!(sim.lead_status(&uuid).as_deref(), Some("cancelled"));

    // A lead the dealer accepted costs money and cannot be cancelled.
    let other = call(&host, "create_lead", lead_input("sales_offer")).await;
    let other = other["sales_lead"]["uuid"].as_str().unwrap().to_string();
    sim.set_lead_status(&other, "accepted").unwrap();
    assert!(sim.set_lead_status(&other, "open").is_err(), "no way back to open");
    let err = call_err(&host, "cancel_lead", json!({"uuid": other})).await;
    assert_eq!(err.kind.as_str(), "conflict");
    assert!(err.message.contains("accepted"), "{}", err.message);
    sim.set_lead_status(&other, "succeeded").unwrap();
    let got = call(&host, "get_lead", json!({"uuid": other})).await;
    assert_eq!(got["sales_lead"]["status"], "succeeded");

    let err = call_err(&host, "get_lead", json!({"uuid": "0c6b40a4-a217-11e8-92bb-005056a46320"})).await;
    assert_eq!(err.kind.as_str(), "not-found");

    let before = sim.request_count();
    let err = call_err(&host, "create_lead", lead_input("spam")).await;
    assert_eq!((err.kind.as_str(), err.field.as_deref()), ("invalid-input", Some("type")));
    for allowed in ["information", "sales_offer", "test_ride", "contact_request", "exchange", "complaint", "other"] {
        assert!(err.message.contains(allowed), "{}", err.message);
    }
    let mut bad_status = lead_input("other");
    bad_status["status"] = json!("closed");
    let err = call_err(&host, "create_lead", bad_status).await;
    assert!(err.message.contains("succeeded"), "{}", err.message);
    let err = call_err(&host, "get_lead", json!({"uuid": "not-a-uuid-but-36-characters-long!!"})).await;
    assert_eq!(err.field.as_deref(), Some("uuid"));
    let mut bad_store = lead_input("other");
    bad_store["store_id"] = json!("43831");
    assert_eq!(call_err(&host, "create_lead", bad_store).await.field.as_deref(), Some("store_id"));
    assert_eq!(sim.request_count(), before);
}

/// A vendor that answers with only what it was sent (plus the uuid): the
/// lead exists at the dealer after the 200, so the call must succeed and hand
/// back what the vendor said; `get_lead` likewise.
#[tokio::test]
async fn create_lead_with_only_the_required_fields_succeeds_against_a_vendor_that_echoes() {
    let (sim, host) = start(Options { echo_created_leads: true, ..Options::default() }, "").await;
    let minimal = json!({"store_id": "1-1", "type": "sales_offer", "title": "Een fiets", "customer": {"name": "Anna"}});
    let created = call(&host, "create_lead", minimal).await;
    let lead = &created["sales_lead"];
    let uuid = lead["uuid"].as_str().unwrap_or_else(|| panic!("no uuid: {created}")).to_string();
    assert_eq!(lead["customer"], json!({"name": "Anna"}), "passed on as the vendor sent it: {created}");
    assert!(lead["customer"].get("is_business_address").is_none(), "nothing made up: {created}");
    assert_eq!(sim.lead_status(&uuid).as_deref(), Some("open"));
    sim.set_lead_status(&uuid, "accepted").unwrap();
    let got = call(&host, "get_lead", json!({"uuid": uuid})).await;
    assert_eq!(got["sales_lead"]["status"], "accepted");
    assert_eq!(sim.state.lock().data.leads.len(), 1, "one lead at the dealer");
}

// ---- sales orders ----

#[tokio::test]
async fn sales_orders_move_change_cancel_and_invoice() {
    let (sim, host) = start(Options::default(), "").await;
    let address = json!({"is_business_address": false, "company_name": null, "name": "Name 1", "street": "Streetname",
        "house_number": "1", "house_number_postfix": "a", "postal_code": "1000AA", "city": "Amsterdam",
        "country_code": "NL", "phone_number": "073031111", "email": "test@test.com"});
    let moved = call(&host, "update_sales_order_store", json!({"sales_order_id": 102323, "to_store_id": 2, "default_mode": 2,
        "new_delivery_method_id": 3, "new_delivery_address": address, "items": [{"item_id": 1, "mode": 1}, {"item_id": 2}]})).await;
    assert!(moved["created_store_order_id"].as_i64().is_some());
    assert!(moved["affected_supplier_order_ids"].is_array());
    let err = call_err(&host, "update_sales_order_store", json!({"sales_order_id": 102323, "to_store_id": 2, "default_mode": 2})).await;
    assert_eq!(err.kind.as_str(), "conflict", "already in store 2: {}", err.message);

    let changed = call(&host, "update_sales_order_delivery_method", json!({"sales_order_id": 102323, "new_delivery_address": address})).await;
    assert!(changed["created_delivery_address_id"].as_i64().is_some());
    let changed = call(&host, "update_sales_order_delivery_method", json!({"sales_order_id": 102323, "new_delivery_method_id": 3})).await;
    assert_eq!(changed["created_delivery_address_id"], Value::Null);

    call(&host, "cancel_sales_order", json!({"sales_order_id": 121212, "cancellation_type_id": 1, "delete_exchange": true})).await;
    let err = call_err(&host, "cancel_sales_order", json!({"sales_order_id": 121213})).await;
    assert_eq!(err.kind.as_str(), "conflict");
    assert!(err.message.contains("payment amount left"), "{}", err.message);
    let err = call_err(&host, "cancel_sales_order", json!({"sales_order_id": 5})).await;
    assert_eq!(err.kind.as_str(), "not-found");

    let invoices = call(&host, "create_invoices", json!({"sales_order_id": 1000, "employee_id": 1005, "order_status_id": 9,
        "book": true, "customer_messages": true, "allow_resend_messages": true})).await;
    let list = invoices["invoices"].as_array().unwrap();
    assert_eq!(list.iter().map(|i| i["customer_id"].as_i64().unwrap()).collect::<Vec<_>>(), [6298, 9011], "one invoice per customer");
    assert_eq!(list[0]["documents"][0]["document_mime_type"], "application/pdf");
    let err = call_err(&host, "create_invoices", json!({"sales_order_id": 1000, "book": true})).await;
    assert_eq!(err.kind.as_str(), "conflict", "booked: {}", err.message);

    let before = sim.request_count();
    let err = call_err(&host, "update_sales_order_delivery_method", json!({"sales_order_id": 102323})).await;
    assert_eq!(err.kind.as_str(), "invalid-input");
    let err = call_err(&host, "create_invoices", json!({"sales_order_id": 1000, "book": "yes"})).await;
    assert_eq!(err.field.as_deref(), Some("book"));
    assert_eq!(sim.request_count(), before);
}

// ---- errors ----

#[tokio::test]
async fn wrong_credentials_are_unauthorized_in_json_and_xml_form() {
    let sim = Simulator::start(Options { password: "other".into(), ..Options::default() }).await.unwrap();
    let host = TestHost::start(&format!(
        "[connectors.cyclesoftware]\nplugin = \"cyclesoftware\"\nbase_url = \"{}\"\n[connectors.cyclesoftware.credentials]\nusername = \"value:demo\"\npassword = \"value:demo-password\"\n",
        sim.url()
    ))
    .await
    .unwrap();
    let err = call_err(&host, "list_pos_stock", json!({})).await;
    assert_eq!((err.kind.as_str(), err.status), ("unauthorized", Some(401)));
    assert!(err.message.contains("Unauthorized"));
    // /app/api answers in the XML error form.
    let err = call_err(&host, "get_stock_info", json!({"barcodes": ["1"]})).await;
    assert_eq!(err.kind.as_str(), "unauthorized");
    assert!(err.message.contains("Unauthorized") && !err.message.contains('<'), "{}", err.message);
}

#[tokio::test]
async fn a_429_waits_and_the_call_succeeds() {
    // The simulator allows less than the host believes: its 429 makes the
    // host wait and send again; the caller never sees it.
    let opts = Options { minutely_limit: 2, window_ms: 500, ..Options::default() };
    let (sim, host) = start(opts, "[connectors.cyclesoftware.rate_limits.general]\nwindows = [{ limit = 100, seconds = 1 }]\n").await;
    for _ in 0..3 {
        call(&host, "list_open_outbound_order_items", json!({})).await;
    }
    assert!(sim.violations() >= 1, "the third request was refused once");
}

#[tokio::test]
async fn a_spent_daily_budget_is_rate_limited_with_retry_after() {
    let opts = Options { daily_limit: 1, ..Options::default() };
    let (_sim, host) = start(opts, "").await;
    call(&host, "cancel_sales_order", json!({"sales_order_id": 121212})).await;
    let err = call_err(&host, "list_open_outbound_order_items", json!({})).await;
    assert_eq!(err.kind.as_str(), "rate-limited");
    assert!(err.retry_after_ms.is_some_and(|ms| ms > 0), "{err:?}");
}

// ---- rate limits saturated without a 429 ----

/// Sends `count` calls (a whole number of windows' worth) at once and checks
/// that none met a 429 and that at least 90 % of what the bucket allowed
/// over the run was used.
async fn saturate(bucket: BucketName, op: &str, input: Value, count: usize, opts: Options, policy_toml: &str) {
    let (sim, host) = start(opts, policy_toml).await;
    let host = std::sync::Arc::new(host);
    let calls: Vec<_> = (0..count)
        .map(|_| {
            let (host, input, op) = (host.clone(), input.clone(), op.to_string());
            tokio::spawn(async move { host.call("cyclesoftware", &op, input).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap_or_else(|e| panic!("{op}: {e:?}"));
    }
    assert_eq!(sim.violations(), 0, "no 429 at the simulator");
    let (used, allowed) = sim.budget(bucket);
    assert_eq!(used as usize, count);
    assert!(used * 10 >= allowed * 9, "used {used} of {allowed} allowed");
}

#[tokio::test]
async fn general_bucket_is_saturated_without_a_429() {
    let opts = Options { minutely_limit: 10, window_ms: 1000, ..Options::default() };
    let policy = "[connectors.cyclesoftware.rate_limits.general]\nwindows = [{ limit = 10, seconds = 1 }]\n";
    saturate(BucketName::General, "list_open_outbound_order_items", json!({}), 40, opts, policy).await;
}

#[tokio::test]
async fn create_invoices_bucket_is_saturated_without_a_429() {
    let opts = Options { invoice_minutely_limit: 5, window_ms: 1000, ..Options::default() };
    let policy = "[connectors.cyclesoftware.rate_limits.create-invoices]\nwindows = [{ limit = 5, seconds = 1 }]\n";
    // Pro-forma invoices (book = false) can be made again and again.
    saturate(BucketName::CreateInvoices, "create_invoices", json!({"sales_order_id": 1000, "book": false}), 20, opts, policy).await;
}

// ---- webhooks ----

/// The docs' example payloads (repaired where the capture broke them).
fn fixture(name: &str) -> Vec<u8> {
    match name {
        "outbound_order_created_or_updated.json" => include_bytes!("fixtures/cyclesoftware/outbound_order_created_or_updated.json").to_vec(),
        "stock_item_updated.json" => include_bytes!("fixtures/cyclesoftware/stock_item_updated.json").to_vec(),
        "stock_item_released_for_shipment.json" => include_bytes!("fixtures/cyclesoftware/stock_item_released_for_shipment.json").to_vec(),
        other => panic!("no fixture {other}"),
    }
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    spoke_sandbox::cyclesoftware::sign(secret, body, spoke_sandbox::cyclesoftware::SignatureEncoding::Hex)
}

fn signed(body: Vec<u8>, delivery: &str, event: &str, signature: String) -> Webhook {
    Webhook {
        headers: vec![
            ("X-CycleSoftware-Delivery".into(), delivery.into()),
            ("X-CycleSoftware-Event".into(), event.into()),
            ("X-CycleSoftware-Signature".into(), signature),
            ("content-type".into(), "application/json".into()),
        ],
        body,
    }
}

#[tokio::test]
async fn documented_webhooks_normalize_and_redeliveries_keep_their_id() {
    let (_sim, host) = start(Options::default(), "").await;
    let cases = [
        ("outbound_order_created_or_updated.json", "warehouse_outbound_order.created_or_updated", "463681"),
        ("stock_item_updated.json", "warehouse_stock_item.updated", "285"),
        ("stock_item_released_for_shipment.json", "warehouse_stock_item.released_for_shipment", "285"),
    ];
    for (file, topic, subject) in cases {
        let body = fixture(file);
        let delivery: Value = serde_json::from_slice(&body).unwrap();
        let delivery = delivery["id"].as_str().unwrap().to_string();
        let sig = hmac_hex(SECRET, &body);
        let events = host.webhook("cyclesoftware", signed(body.clone(), &delivery, topic, sig.clone())).await.unwrap();
        assert_eq!(events.len(), 1);
        let ev = &events[0];
        assert_eq!((ev.topic.as_str(), ev.subject.as_deref(), ev.id.as_str()), (topic, Some(subject), delivery.as_str()));
        assert_eq!(ev.occurred_at.as_deref(), Some("2022-07-05T09:07:48.444Z"));
        assert_eq!(ev.payload["event_name"], topic);
        let again = host.webhook("cyclesoftware", signed(body, &delivery, topic, sig)).await.unwrap();
        assert_eq!(again[0].id, ev.id, "a redelivery has the same dedupe id");
    }
}

#[tokio::test]
async fn forged_or_altered_webhooks_are_refused() {
    let (_sim, host) = start(Options::default(), "").await;
    let body = fixture("stock_item_updated.json");
    let topic = "warehouse_stock_item.updated";
    let forged = hmac_hex("not-the-secret", &body);
    let err = host.webhook("cyclesoftware", signed(body.clone(), "d-1", topic, forged)).await.unwrap_err();
    assert_eq!(err.kind.as_str(), "unauthorized");

    let good = hmac_hex(SECRET, &body);
    let altered = String::from_utf8(body.clone()).unwrap().replace("\"is_delivered\": false", "\"is_delivered\": true").into_bytes();
    assert_ne!(altered, body);
    let err = host.webhook("cyclesoftware", signed(altered, "d-1", topic, good)).await.unwrap_err();
    assert_eq!(err.kind.as_str(), "unauthorized");

    let unsigned = Webhook { headers: vec![("X-CycleSoftware-Delivery".into(), "d-1".into())], body };
    assert_eq!(host.webhook("cyclesoftware", unsigned).await.unwrap_err().kind.as_str(), "unauthorized");
}

#[tokio::test]
async fn signature_encoding_setting_pins_hex_or_base64() {
    let body = fixture("stock_item_updated.json");
    let topic = "warehouse_stock_item.updated";
    let hex = hmac_hex(SECRET, &body);
    let b64 = spoke_sandbox::cyclesoftware::sign(SECRET, &body, spoke_sandbox::cyclesoftware::SignatureEncoding::Base64);

    let (_sim, host) = start(Options::default(), "[connectors.cyclesoftware.settings]\nsignature_encoding = \"base64\"\n").await;
    host.webhook("cyclesoftware", signed(body.clone(), "d-2", topic, b64.clone())).await.unwrap();
    assert_eq!(host.webhook("cyclesoftware", signed(body.clone(), "d-3", topic, hex.clone())).await.unwrap_err().kind.as_str(), "unauthorized");

    // Unset: either encoding passes.
    let (_sim, host) = start(Options::default(), "").await;
    host.webhook("cyclesoftware", signed(body.clone(), "d-4", topic, b64)).await.unwrap();
    host.webhook("cyclesoftware", signed(body, "d-5", topic, hex)).await.unwrap();
}

/// A loopback receiver that keeps what the simulator delivers.
async fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Webhook>>>) {
    use axum::http::HeaderMap;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Webhook>::new()));
    let keep = got.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let keep = keep.clone();
            async move {
                let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
                keep.lock().unwrap().push(Webhook { headers, body: body.to_vec() });
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, got)
}

async fn wait_for(got: &std::sync::Arc<std::sync::Mutex<Vec<Webhook>>>, n: usize) -> Vec<Webhook> {
    for _ in 0..200 {
        if got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    got.lock().unwrap().clone()
}

/// Every webhook the simulator sends has exactly the fields, and the JSON
/// types, of the docs' example (read from tests/vendors/vendor-docs/).
#[tokio::test]
async fn every_webhook_has_the_documented_shape() {
    let (sim, _host) = start(Options::default(), "").await;
    sim.create_outbound_order(OutboundOrder { order_items: vec![OutboundItem { barcode: "8713568215084".into(), ..Default::default() }], ..Default::default() });
    let item = sim.create_stock_item(StockItem { is_shipped: true, ..Default::default() });
    sim.release_stock_item(item.stock_item_id).unwrap();
    let examples = spoke_tests::vendor_docs::webhook_examples();
    let documented = |event: &str| -> Value {
        let example = examples.iter().find(|(v, e, _)| v == "cyclesoftware" && e == event).and_then(|(_, _, x)| x.clone());
        example.unwrap_or_else(|| panic!("an undocumented event {event}"))
    };
    let deliveries = sim.deliveries();
    let events: std::collections::BTreeSet<String> = deliveries.iter().map(|d| d.event_name.clone()).collect();
    assert_eq!(events.len(), 3, "every documented event: {events:?}");
    let mut problems = Vec::new();
    for d in &deliveries {
        let got: Value = serde_json::from_str(&d.body).unwrap();
        problems.extend(spoke_tests::shape_differences(&documented(&d.event_name), &got).into_iter().map(|p| format!("{}: {p}", d.event_name)));
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "webhooks that differ from the docs:\n{}", problems.join("\n"));
}

#[tokio::test]
async fn simulator_deliveries_verify_and_normalize_through_the_host() {
    let (url, got) = receiver().await;
    let (sim, host) = start(Options { webhook_url: Some(url), ..Options::default() }, "").await;

    let order = sim.create_outbound_order(OutboundOrder {
        order_items: vec![OutboundItem { barcode: "8713568215084".into(), ..Default::default() }],
        ..Default::default()
    });
    let item = sim.create_stock_item(StockItem { is_shipped: true, ..Default::default() });
    sim.release_stock_item(item.stock_item_id).unwrap();
    // An API change sends one too.
    call(&host, "mark_item_delivered", json!({"stock_item_id": item.stock_item_id})).await;

    let delivered = wait_for(&got, 4).await;
    assert_eq!(delivered.len(), 4);
    let mut topics = vec![];
    for hook in &delivered {
        let events = host.webhook("cyclesoftware", hook.clone()).await.unwrap();
        topics.push((events[0].topic.clone(), events[0].subject.clone().unwrap()));
    }
    topics.sort();
    let (order_id, item_id) = (order.outbound_order_id.to_string(), item.stock_item_id.to_string());
    assert_eq!(
        topics,
        [
            ("warehouse_outbound_order.created_or_updated".to_string(), order_id),
            ("warehouse_stock_item.released_for_shipment".to_string(), item_id.clone()),
            ("warehouse_stock_item.updated".to_string(), item_id.clone()),
            ("warehouse_stock_item.updated".to_string(), item_id),
        ]
    );

    // A redelivery repeats the delivery id, so it dedupes to the same event.
    let first = sim.deliveries()[0].clone();
    sim.redeliver(&first.id).unwrap();
    let delivered = wait_for(&got, 5).await;
    let header = |h: &Webhook| h.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("x-cyclesoftware-delivery")).map(|(_, v)| v.clone());
    assert_eq!(header(&delivered[4]), Some(first.id.clone()));
    let again = host.webhook("cyclesoftware", delivered[4].clone()).await.unwrap();
    assert_eq!(again[0].id, first.id);
}

// ---- the control API over HTTP ----

#[tokio::test]
async fn control_api_drives_the_simulator_over_http() {
    spoke::install_tls();
    let (url, got) = receiver().await;
    let sim = Simulator::start(Options { seed: false, ..Options::default() }).await.unwrap();
    let http = reqwest::Client::new();
    let base = sim.url();
    let post = |path: &str, body: Value| http.post(format!("{base}/_control/{path}")).json(&body).send();
    let get = |path: &str| http.get(format!("{base}/_control/{path}")).send();

    assert!(sim.stock_item(109993).is_none(), "unseeded");
    post("seed", json!({})).await.unwrap();
    assert!(sim.stock_item(109993).is_some());
    assert_eq!(post("webhook-url", json!({"url": "http://192.0.2.1/hook"})).await.unwrap().status(), 400, "loopback only");
    post("webhook-url", json!({"url": url})).await.unwrap();

    let order: Value = post("outbound-orders", json!({"order_items": [{"barcode": "1"}]})).await.unwrap().json().await.unwrap();
    assert!(order["outbound_order_id"].as_i64().unwrap() > 0);
    let item: Value = post("stock-items", json!({"barcode": "2"})).await.unwrap().json().await.unwrap();
    let id = item["stock_item_id"].as_i64().unwrap();
    assert_eq!(post(&format!("stock-items/{id}/ship"), json!({})).await.unwrap().status(), 200);
    assert!(sim.stock_item(id).unwrap().is_shipped);
    assert_eq!(wait_for(&got, 3).await.len(), 3);
    let deliveries: Value = get("deliveries").await.unwrap().json().await.unwrap();
    assert_eq!(deliveries.as_array().unwrap().len(), 3);

    post("limits", json!({"minutely_limit": 1, "window_ms": 60_000})).await.unwrap();
    let api = |path: &str| http.get(format!("{base}{path}")).basic_auth("demo", Some("demo-password")).send();
    let first = api("/api/v1/warehouse/outbound/order/open-orders.json").await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-minutely-remaining"], "0");
    assert_eq!(api("/api/v1/warehouse/outbound/order/open-orders.json").await.unwrap().status(), 429);
    let stats: Value = get("stats").await.unwrap().json().await.unwrap();
    assert_eq!((stats["requests"].as_u64(), stats["violations"].as_u64()), (Some(2), Some(1)));
    post("advance", json!({"ms": 60_000})).await.unwrap();
    assert_eq!(api("/api/v1/warehouse/outbound/order/open-orders.json").await.unwrap().status(), 200, "a simulated minute later");

    post("reset", json!({})).await.unwrap();
    let violations: Value = get("violations").await.unwrap().json().await.unwrap();
    assert_eq!(violations["violations"], 0);
}
