//! The wics connector through the real host against the WICS simulator.
use serde_json::{json, Value};
use spoke_sandbox::wics::{Limits, Options, Simulator};
use spoke_tests::{spoke, TestHost, Webhook};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "demo-apikey";
const SECRET: &str = "demo-apisecret";
const TOPICS: [&str; 9] =
    ["SHIPMENT", "RECEIPT", "STOCK", "STOCKMUTATION", "ANNOUNCEMENTSTATUS", "ORDERSTATUS", "ORDERLINESTATUS", "PICKSLIPLINESTATUS", "RMA"];

fn config(url: &str, secret: &str, extra: &str) -> String {
    format!(
        r#"
[connectors.wics]
plugin = "wics"
base_url = "{url}"
[connectors.wics.credentials]
apikey = "value:{KEY}"
apisecret = "value:{secret}"
{extra}
"#
    )
}

async fn start(opts: Options) -> (Simulator, TestHost) {
    let sim = Simulator::start(opts).await.expect("simulator");
    let host = TestHost::start(&config(&sim.url(), SECRET, "")).await.expect("host");
    (sim, host)
}

async fn call(host: &TestHost, op: &str, input: Value) -> Value {
    match host.call("wics", op, input.clone()).await {
        Ok(out) => out,
        Err(e) => panic!("{op}({input}) failed: {e:?}"),
    }
}

async fn call_err(host: &TestHost, op: &str, input: Value) -> spoke::CallError {
    match host.call("wics", op, input.clone()).await {
        Ok(out) => panic!("{op}({input}) should fail, got {out}"),
        Err(e) => e,
    }
}

fn basic(key: &str, secret: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}")))
}

fn address() -> Value {
    json!({
        "name": "Hans de Groot", "company": "WICS", "street": "Concordiaweg", "streetNumber": 157, "extension": "A",
        "zipcode": "4206BK", "city": "Gorinchem", "country": "NL", "email": "info@wics.nl", "language": "NL"
    })
}

fn order(reference: &str) -> Value {
    json!({
        "reference": reference,
        "deliveryDate": "2022-08-15",
        "method": "WEB",
        "webshopId": 2,
        "priority": 2,
        "ride": {"number": 160622, "routeCode": "400", "stopNumber": 4},
        "prices": {"totalPriceNet": 12.10, "totalPriceGross": 10, "shippingCost": 2},
        "invoiceAddress": address(),
        "deliveryAddress": address(),
        "metaFields": {"ERP_App": {"division": 2479893, "guid": "99566b2c-27dd-47d4-b7dc-492f048566c8"}},
        "lines": [
            {"lineNumber": 1, "itemCode": "16082", "itemDescription": "Jack kabel 1m", "quantity": 2,
             "metaFields": {"Webshop_app": {"external_line": 73.0, "guid": "444d244f"}}},
            {"lineNumber": 2, "itemCode": "190130", "quantity": 1}
        ]
    })
}

fn announcement(reference: &str) -> Value {
    json!({
        "reference": reference, "plannedDate": "2022-08-12", "type": "005", "warehouse": "WHS", "door": "D01",
        "carrier": 9000000, "stockStatus": 31, "supplier": 86,
        "metaFields": {"wishlist": "WISH_1024"},
        "lines": [{"lineNumber": 1, "itemCode": "16080", "quantityExpected": 30, "lotNumber": "6851993", "bestBeforeDate": "2024-02-14",
                   "metaFields": {"Webshop_app": {"guid": "809eee3f"}}}]
    })
}

#[tokio::test]
async fn describe_lists_every_endpoint_and_the_documented_limits() {
    let (_sim, host) = start(Options::default()).await;
    let manifest = host.host.manifest("wics").expect("manifest");
    assert_eq!(manifest.operations.len(), 32);
    for op in &manifest.operations {
        assert!(op.path.starts_with("/api/"), "{}", op.name);
        assert_eq!(op.input_schema["type"], "object", "{}", op.name);
        assert!(op.output_schema.is_object(), "{}", op.name);
    }
    let text = serde_json::to_value(&manifest).unwrap();
    let policies = text["rate_policies"].as_array().unwrap();
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0]["name"], "api-user");
    assert_eq!(policies[0]["penalty_seconds"], json!([60, 300, 900]));
    let windows: Vec<(u64, u64)> =
        policies[0]["windows"].as_array().unwrap().iter().map(|w| (w["limit"].as_u64().unwrap(), w["seconds"].as_u64().unwrap())).collect();
    assert_eq!(windows, [(150, 60), (20_000, 86_400)]);
    let topics: BTreeSet<String> = manifest.webhook_topics.iter().map(|t| t.name.clone()).collect();
    assert_eq!(topics, TOPICS.iter().map(|t| t.to_string()).collect());
}

#[tokio::test]
async fn login_verifies_the_credentials() {
    let (sim, host) = start(Options::default()).await;
    let out = call(&host, "login", json!({})).await;
    assert_eq!(out["authenticated"], true);
    assert!(out["message"].as_str().unwrap().contains(KEY));

    let wrong = TestHost::start(&config(&sim.url(), "not-the-secret", "")).await.unwrap();
    let err = call_err(&wrong, "login", json!({})).await;
    assert_eq!(err.kind.as_str(), "unauthorized");
    assert_eq!(err.status, Some(401));
    assert!(!err.message.contains("not-the-secret"));
}

#[tokio::test]
async fn announcements_and_receipts() {
    let (sim, host) = start(Options::default()).await;
    let created = call(&host, "create_announcement", announcement("PO150002")).await;
    let number = created["identifier"].as_str().unwrap().to_string();

    let got = call(&host, "get_announcement", json!({"identifier": "PO150002"})).await;
    assert_eq!(got["number"], number.as_str());
    // The docs' Get Announcement example shows no metafields and no door:
    // the answer has neither (tests/shapes compares every answer).
    assert!(got.get("metaFields").is_none_or(Value::is_null), "{got}");

    call(&host, "update_announcement", json!({"identifier": number, "door": "D45", "carrier": 9001000})).await;
    let got = call(&host, "get_announcement", json!({"identifier": number})).await;
    assert_eq!(got["carrier"], 9001000);

    call(&host, "create_announcement", announcement("PO150003")).await;
    let listed = call(&host, "list_announcements", json!({"filters": {"reference": {"neq": "PO150003"}, "stockStatus": 31}})).await;
    let refs: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|a| a["reference"].as_str().unwrap()).collect();
    assert_eq!(refs, ["PO150002"]);

    call(&host, "delete_announcement", json!({"identifier": "PO150003"})).await;
    let err = call_err(&host, "get_announcement", json!({"identifier": "PO150003"})).await;
    assert_eq!(err.kind.as_str(), "not-found");

    let receipt = sim
        .receive_announcement(json!({"identifier": "PO150002", "lines": [{"itemCode": "16080", "quantityReceived": 28, "serialNumbers": ["SN-1", "SN-2"]}]}))
        .unwrap();
    let receipt_number = receipt["number"].as_str().unwrap();
    let today = receipt["receiptDate"].as_str().unwrap();
    let listed = call(&host, "list_receipts", json!({"filters": {"receiptDate": {"gte": today}, "reference": "PO150002"}})).await;
    assert_eq!(listed["count"], 1);
    let listed = call(&host, "list_receipts", json!({"filters": {"receiptDate": {"gt": today}}})).await;
    assert_eq!(listed["count"], 0);
    let got = call(&host, "get_receipt", json!({"identifier": receipt_number})).await;
    assert_eq!(got["lines"][0]["quantityReceived"], 28);
    let serials = call(&host, "list_receipt_serial_numbers", json!({"identifier": receipt_number})).await;
    assert_eq!(serials[0]["serialNumbers"], json!([["SN-1"], ["SN-2"]]));

    let err = call_err(&host, "update_announcement", json!({"identifier": "PO150002", "door": "D1"})).await;
    assert_eq!(err.kind.as_str(), "conflict");
    assert!(err.message.contains("already received"), "{}", err.message);
}

/// Like an order's (wics_errors_keep_their_message_and_code), an
/// announcement's reference is not documented as unique, and WICS documents
/// no "already exists" answer: a second one with the same reference is made,
/// not refused (docs/vendor-notes.md).
#[tokio::test]
async fn announcement_references_may_repeat() {
    let (_sim, host) = start(Options::default()).await;
    let first = call(&host, "create_announcement", announcement("PO-TWICE")).await;
    let second = call(&host, "create_announcement", announcement("PO-TWICE")).await;
    assert_ne!(first["identifier"], second["identifier"]);
    let listed = call(&host, "list_announcements", json!({"filters": {"reference": "PO-TWICE"}})).await;
    assert_eq!(listed["count"], 2, "{listed}");
}

#[tokio::test]
async fn orders_shipments_and_serial_numbers() {
    let (sim, host) = start(Options::default()).await;
    let created = call(&host, "create_order", order("SO510001")).await;
    let number = created["identifier"].as_str().unwrap().to_string();
    let got = call(&host, "get_order", json!({"identifier": "SO510001"})).await;
    assert_eq!(got["number"], number.as_str());
    assert_eq!(got["paid"], true);
    assert_eq!(got["prices"]["totalPriceNet"], 12.1);
    // Metafields come back in the SHIPMENT webhook, not in the documented
    // order answer (every_webhook_has_the_documented_shape, the chain).
    assert!(got.get("metaFields").is_none_or(Value::is_null), "{got}");

    call(&host, "create_order", json!({"reference": "SO510002", "deliveryDate": "2022-09-01", "priority": 3, "paid": false,
        "lines": [{"itemCode": "16084", "quantity": 1}]})).await;
    let high = call(&host, "list_orders", json!({"filters": {"priority": {"lte": 2}}})).await;
    assert_eq!(high["items"].as_array().unwrap().iter().map(|o| o["reference"].clone()).collect::<Vec<_>>(), [json!("SO510001")]);
    let later = call(&host, "list_orders", json!({"filters": {"deliveryDate": {"gt": "2022-08-15"}}})).await;
    assert_eq!(later["items"][0]["reference"], "SO510002");
    assert_eq!(later["count"], 1);

    call(&host, "update_order", json!({"identifier": "SO510002", "note": "Inpakken met cadeaupapier"})).await;
    assert_eq!(call(&host, "get_order", json!({"identifier": "SO510002"})).await["note"], "Inpakken met cadeaupapier");
    call(&host, "set_order_paid", json!({"reference": "SO510002"})).await;
    assert_eq!(call(&host, "get_order", json!({"identifier": "SO510002"})).await["paid"], true);
    call(&host, "delete_order", json!({"identifier": "SO510002"})).await;
    assert_eq!(call_err(&host, "get_order", json!({"identifier": "SO510002"})).await.kind.as_str(), "not-found");

    let shipment = sim.ship_order(json!({"reference": "SO510001", "trackAndTrace": "3SDEVC0052846", "serialNumbers": {"190130": ["TB01AA"]}})).unwrap();
    let shipments = call(&host, "list_order_shipments", json!({"reference": "SO510001"})).await;
    assert_eq!(shipments[0]["trackAndTrace"], "3SDEVC0052846");
    assert_eq!(shipments[0]["shippingLines"][0]["itemCode"], "16082");
    let serials = call(&host, "list_order_serial_numbers", json!({"identifier": "SO510001"})).await;
    assert_eq!(serials, json!([{"itemCode": "190130", "description": "XLR Kabel", "serialNumber": "TB01AA"}]));
    let by_shipment = call(&host, "list_shipment_serial_numbers", json!({"identifier": shipment["shipmentNr"].to_string()})).await;
    assert_eq!(by_shipment[0]["serialNumbers"], json!([["TB01AA"]]));

    let err = call_err(&host, "delete_order", json!({"identifier": "SO510001"})).await;
    assert_eq!(err.kind.as_str(), "conflict");
    assert!(err.message.contains("already shipped"), "{}", err.message);
}

#[tokio::test]
async fn items_and_stock() {
    let (sim, host) = start(Options::default()).await;
    call(&host, "create_item", json!({"code": "starterset-01", "description": "School startset", "internalDescription": "School startset",
        "itemGroup": "DIV", "defaultUnit": "ST", "statusCode": 30, "weight": "3.75", "barcode": "1398854674",
        "units": [{"unit": "ST", "length": 13, "width": 5, "height": 7, "amountSKU": 1, "barcode": "1398854674"}]})).await;
    call(&host, "create_items", json!({"items": [{"code": "bulk-1", "description": "Bulk one"}, {"code": "bulk-2", "description": "Bulk two", "barcode": "2000000000002"}]})).await;
    call(&host, "update_item", json!({"identifier": "bulk-1", "statusCode": 10, "weight": "1"})).await;
    let listed = call(&host, "list_items", json!({"filters": {"code": "bulk-1"}})).await;
    // The docs' item example shows the status code as a string ("30"), and
    // no weight: the list answers in that shape.
    assert_eq!(listed["items"][0]["statusCode"], "10");
    let err = call_err(&host, "create_item", json!({"code": "bulk-1"})).await;
    assert_eq!(err.kind.as_str(), "conflict");

    assert_eq!(call(&host, "get_item_code_by_ean", json!({"EAN": "1398854674"})).await["itemCode"], "starterset-01");
    assert_eq!(call(&host, "get_ean_by_item_code", json!({"itemCode": "bulk-2"})).await["ean"], "2000000000002");
    assert_eq!(call_err(&host, "get_item_code_by_ean", json!({"EAN": "999"})).await.kind.as_str(), "not-found");

    let big = call(&host, "list_stock", json!({"filters": {"nettoSalable": {"gte": 1000}}})).await;
    assert_eq!(big["items"].as_array().unwrap().iter().map(|s| s["itemCode"].clone()).collect::<Vec<_>>(), [json!("PEN001")]);

    sim.change_stock(json!({"itemCode": "16084", "quantity": 5})).unwrap();
    let stock = call(&host, "get_stock", json!({"itemCode": "16084"})).await;
    assert_eq!(stock["physical"], 40);
    assert_eq!(stock["warehouses"][0]["warehouseCode"], "WHS");

    let details = call(&host, "list_stock_details", json!({"filters": {"itemCode": "190130"}})).await;
    assert_eq!(details["count"], 1);
    let item_details = call(&host, "get_stock_details", json!({"itemCode": "190130"})).await;
    let eansscc = item_details[0]["eansscc"].as_str().unwrap();
    assert_eq!(details["items"][0]["eansscc"], eansscc);
    let serials = call(&host, "list_stock_serial_numbers", json!({"EANSSCC": eansscc})).await;
    assert_eq!(serials[0]["serialNumbers"][0].as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn lists_return_one_page_or_walk_every_page() {
    let (sim, host) = start(Options::default()).await;
    for i in 0..7 {
        call(&host, "create_item", json!({"code": format!("page-{i}"), "description": "paging"})).await;
    }
    let page = call(&host, "list_items", json!({"page": 2, "pageSize": 3, "filters": {"description": "paging"}})).await;
    let codes: Vec<&str> = page["items"].as_array().unwrap().iter().map(|i| i["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["page-3", "page-4", "page-5"]);
    let before = sim.request_count();
    let all = call(&host, "list_items", json!({"all_pages": true, "pageSize": 3, "filters": {"description": "paging"}})).await;
    assert_eq!(all["count"], 7);
    assert_eq!(all["pages_fetched"], 3);
    assert_eq!(sim.request_count() - before, 3);
    let stock = call(&host, "list_stock", json!({"all_pages": true, "pageSize": 2})).await;
    assert_eq!(stock["count"], 12, "5 seeded items and 7 new ones each have a stock record");
}

#[tokio::test]
async fn invalid_input_is_refused_before_anything_is_sent() {
    let (sim, host) = start(Options::default()).await;
    let cases = [
        ("create_order", json!({"reference": "X"}), "deliveryDate"),
        ("create_order", json!({"deliveryDate": "2022-08-15", "lines": [{"itemCode": "16082"}]}), "lines[0].quantity"),
        ("create_order", json!({"deliveryDate": "2022-08-15", "priority": "high"}), "priority"),
        ("create_order", json!({"deliveryDate": "15-08-2022"}), "deliveryDate"),
        ("create_order", json!({"deliveryDate": "2022-08-15", "deliveryAddress": {"name": "A", "streetNumber": 1, "zipcode": "1", "city": "C", "country": "NL"}}), "deliveryAddress.email"),
        ("create_announcement", json!({"reference": "PO1", "plannedDate": "2022-08-12", "stockStatus": 31}), "supplier"),
        ("create_announcement", json!({"reference": "PO1", "plannedDate": "2022-08-12", "stockStatus": 31, "supplier": 86, "lines": [{"itemCode": "16080", "quantityExpected": 1, "lotNumber": "1"}]}), "lines[0].bestBeforeDate"),
        ("create_webhook", json!({"topic": "STOCK"}), "url"),
        ("create_webhook", json!({"topic": "PARCEL", "url": "http://127.0.0.1:1/x"}), "topic"),
        ("get_order", json!({}), "identifier"),
        ("list_stock", json!({"filters": {"nettoSalable": {"approx": 3}}}), "filters.nettoSalable.approx"),
        ("list_stock", json!({"filters": {"nettoSalable": {"gte": "lots"}}}), "filters.nettoSalable.gte"),
        ("create_items", json!({"items": []}), "items"),
        ("create_item", json!({"code": "x", "internalDescription": "this internal description is far longer than forty characters"}), "internalDescription"),
    ];
    for (op, input, field) in cases {
        let err = call_err(&host, op, input).await;
        assert_eq!(err.kind.as_str(), "invalid-input", "{op}: {err:?}");
        assert_eq!(err.field.as_deref(), Some(field), "{op}: {}", err.message);
        assert!(err.message.contains(field), "{op}: the message names the field: {}", err.message);
    }
    assert_eq!(sim.request_count(), 0, "the simulator saw nothing");
}

#[tokio::test]
async fn wics_errors_keep_their_message_and_code() {
    let (_sim, host) = start(Options::default()).await;
    let err = call_err(&host, "get_order", json!({"identifier": "NOPE"})).await;
    assert_eq!(err.kind.as_str(), "not-found");
    assert_eq!(err.status, Some(404));
    assert_eq!(err.vendor_code.as_deref(), Some("404"));
    assert!(err.message.contains("Order NOPE not found"), "{}", err.message);
    // The docs do not make references unique: a second order with the same
    // reference is made, not refused (docs/vendor-notes.md).
    let first = call(&host, "create_order", order("DUP")).await;
    let second = call(&host, "create_order", order("DUP")).await;
    assert_ne!(first["identifier"], second["identifier"]);
    let listed = call(&host, "list_orders", json!({"filters": {"reference": "DUP"}})).await;
    assert_eq!(listed["count"], 2, "{listed}");
    // A rule the schema cannot know: the item must exist at WICS. WICS
    // refused what was sent: `vendor`, not `invalid-input` (nothing sent).
    let err = call_err(&host, "create_order", json!({"deliveryDate": "2022-08-15", "lines": [{"itemCode": "NO-SUCH-ITEM", "quantity": 1}]})).await;
    assert_eq!((err.kind.as_str(), err.status), ("vendor", Some(400)));
    assert!(err.message.contains("NO-SUCH-ITEM"), "{}", err.message);
}

/// A loopback endpoint that records webhook deliveries and answers with a
/// status the test chooses.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(String, Option<String>, Vec<u8>)>>>,
    status: Arc<std::sync::atomic::AtomicU16>,
    _server: tokio::task::JoinHandle<()>,
}

async fn receiver() -> Receiver {
    use axum::extract::State;
    type Shared = (Arc<Mutex<Vec<(String, Option<String>, Vec<u8>)>>>, Arc<std::sync::atomic::AtomicU16>);
    let got = Arc::new(Mutex::new(Vec::new()));
    let status = Arc::new(std::sync::atomic::AtomicU16::new(200));
    let app = axum::Router::new()
        .route(
            "/{*path}",
            axum::routing::post(|State((got, status)): State<Shared>, uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(String::from);
                got.lock().unwrap().push((uri.path().to_string(), auth, body.to_vec()));
                axum::http::StatusCode::from_u16(status.load(std::sync::atomic::Ordering::SeqCst)).unwrap()
            }),
        )
        .with_state((got.clone(), status.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver { url, got, status, _server: server }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Hand a delivery to the host as the webhook endpoint of the subscribed path would.
async fn deliver_to_host(host: &TestHost, path: &str, authorization: Option<String>, body: Vec<u8>) -> Result<Vec<spoke::Event>, spoke::CallError> {
    let received = spoke::Received {
        method: "POST".into(),
        path: path.to_string(),
        query: String::new(),
        headers: authorization.into_iter().map(|a| ("authorization".to_string(), a)).collect(),
        body,
    };
    host.host.webhook("wics", &received).await
}

#[tokio::test]
async fn subscriptions_receive_events_when_things_happen() {
    let (sim, host) = start(Options::default()).await;
    let rx = receiver().await;
    let mut ids = Vec::new();
    for topic in TOPICS {
        let out = call(&host, "create_webhook", json!({"topic": topic, "url": format!("{}/hooks/wics/{}", rx.url, topic.to_ascii_lowercase())})).await;
        ids.push(out["identifier"].as_str().unwrap().to_string());
    }
    let listed = call(&host, "list_webhooks", json!({})).await;
    assert_eq!(listed["count"], 9);

    call(&host, "create_order", order("SO-HOOK")).await;
    sim.ship_order(json!({"reference": "SO-HOOK", "trackAndTrace": "3STRACK"})).unwrap();
    call(&host, "create_announcement", announcement("PO-HOOK")).await;
    sim.receive_announcement(json!({"identifier": "PO-HOOK"})).unwrap();
    sim.register_return(json!({"orderReference": "SO-HOOK", "lines": [{"lineNumber": 1, "itemCode": "16082", "quantity": 1,
        "questions": [{"questionNumber": 4, "question": "Is het artikel beschadigd?", "answerNumber": 2, "answer": "Ja"}]}]})).unwrap();

    let mut seen = BTreeSet::new();
    wait_for("a delivery of every topic", || {
        let got = rx.got.lock().unwrap();
        got.iter().map(|(path, _, _)| path.rsplit('/').next().unwrap().to_ascii_uppercase()).collect::<BTreeSet<_>>().len() == 9
    })
    .await;
    let deliveries = rx.got.lock().unwrap().clone();
    for (path, auth, body) in deliveries {
        assert_eq!(auth.as_deref(), Some(basic(KEY, SECRET).as_str()), "signed with the subscriber's key and secret");
        let events = deliver_to_host(&host, &path, auth, body).await.expect("the host accepts a WICS delivery");
        assert_eq!(events.len(), 1);
        let event = &events[0];
        seen.insert(event.topic.clone());
        match event.topic.as_str() {
            "SHIPMENT" => {
                assert_eq!(event.subject.as_deref(), Some("SO-HOOK"));
                assert_eq!(event.payload["trackAndTrace"], "3STRACK");
                // Metafields come back on the shipment lines, as the docs list them.
                assert_eq!(event.payload["shippingLines"][0]["metaFields"], order("SO-HOOK")["lines"][0]["metaFields"]);
                assert!(event.payload.get("additionalReference").is_none(), "not in the documented SHIPMENT payload");
            }
            "ORDERSTATUS" | "ORDERLINESTATUS" | "PICKSLIPLINESTATUS" | "RMA" => assert_eq!(event.subject.as_deref(), Some("SO-HOOK")),
            "RECEIPT" | "ANNOUNCEMENTSTATUS" => assert_eq!(event.subject.as_deref(), Some("PO-HOOK")),
            "STOCK" | "STOCKMUTATION" => assert!(["16082", "190130", "16080"].contains(&event.subject.as_deref().unwrap())),
            other => panic!("unexpected topic {other}"),
        }
    }
    assert_eq!(seen.len(), 9, "{seen:?}");

    for id in &ids[1..] {
        call(&host, "delete_webhook", json!({"identifier": id})).await;
    }
    assert_eq!(call(&host, "list_webhooks", json!({})).await["items"][0]["topic"], "SHIPMENT");
}

/// WICS sends no delivery id and retries only what was not answered 200, so
/// the same stock level delivered again after a change is a change of its
/// own: 5 → 4 → 5 is three stored events, not two. A redelivered shipment
/// (same `shipmentNr`) is the same event.
#[tokio::test]
async fn the_same_stock_level_twice_with_a_change_between_is_three_events() {
    let (_sim, host) = start(Options::default()).await;
    let served = host.serve().await;
    let client = reqwest::Client::new();
    let post = |topic: &str, body: Value| {
        let request = client
            .post(format!("{}/hooks/wics/{topic}", served.url))
            .header("authorization", basic(KEY, SECRET))
            .header("content-type", "application/json")
            .body(body.to_string());
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let stock = |level: i64| json!({"itemCode": "CS1001", "itemDescription": "Pillow one size", "stockKeeping": null,
        "physical": level, "nettoSalable": level, "announced": 0, "customerNumber": 10011});
    for level in [5, 4, 5] {
        assert_eq!(post("stock", stock(level)).await, 200);
    }
    let events = host.host.store().list_events(&spoke::store::EventFilter { topic: Some("STOCK".into()), limit: 100, ..Default::default() }).unwrap();
    assert_eq!(events.len(), 3, "every change is kept: {events:?}");

    let shipment: Value = serde_json::from_str(&std::fs::read_to_string(spoke_tests::workspace().join("tests/vendors/fixtures/wics/shipment.json")).unwrap()).unwrap();
    assert_eq!(post("shipment", shipment.clone()).await, 200);
    assert_eq!(post("shipment", shipment).await, 200);
    let shipments = host.host.store().list_events(&spoke::store::EventFilter { topic: Some("SHIPMENT".into()), limit: 100, ..Default::default() }).unwrap();
    assert_eq!(shipments.len(), 1, "a redelivered shipment is one event: {shipments:?}");
}

/// The simulator sends every topic with exactly the fields, and the JSON
/// types, of the docs' example (read from tests/vendors/vendor-docs/).
#[tokio::test]
async fn every_webhook_has_the_documented_shape() {
    let (sim, host) = start(Options::default()).await;
    let rx = receiver().await;
    for topic in TOPICS {
        call(&host, "create_webhook", json!({"topic": topic, "url": format!("{}/hooks/wics/{}", rx.url, topic.to_ascii_lowercase())})).await;
    }
    call(&host, "create_order", order("SO-SHAPE")).await;
    sim.ship_order(json!({"reference": "SO-SHAPE", "serialNumbers": {"190130": ["TB01AA"]}})).unwrap();
    call(&host, "create_announcement", announcement("PO-SHAPE")).await;
    sim.receive_announcement(json!({"identifier": "PO-SHAPE"})).unwrap();
    sim.register_return(json!({"orderReference": "SO-SHAPE", "lines": [{"lineNumber": 1, "itemCode": "16082", "itemDescription": "Jack Kabel 1m", "quantity": 1,
        "questions": [{"questionNumber": 4, "question": "Is het artikel beschadigd?", "answerNumber": 2, "answer": "Ja"}]}]})).unwrap();
    wait_for("a delivery of every topic", || {
        let got = rx.got.lock().unwrap();
        got.iter().map(|(path, _, _)| path.rsplit('/').next().unwrap().to_string()).collect::<BTreeSet<_>>().len() == 9
    })
    .await;
    let examples = spoke_tests::vendor_docs::webhook_examples();
    let mut problems = Vec::new();
    for (path, _, body) in rx.got.lock().unwrap().iter() {
        let topic = path.rsplit('/').next().unwrap();
        let doc = examples.iter().find(|(v, e, _)| v == "wics" && e.eq_ignore_ascii_case(topic)).and_then(|(_, _, x)| x.clone());
        let doc = doc.unwrap_or_else(|| panic!("no documented example for {topic}"));
        let got: Value = serde_json::from_slice(body).unwrap();
        problems.extend(spoke_tests::shape_differences(&doc, &got).into_iter().map(|d| format!("{topic}: {d}")));
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "webhooks that differ from the docs:\n{}", problems.join("\n"));
}

#[tokio::test]
async fn a_refused_delivery_is_retried_on_the_documented_schedule() {
    let (sim, host) = start(Options::default()).await;
    let rx = receiver().await;
    call(&host, "create_webhook", json!({"topic": "STOCK", "url": format!("{}/hooks/wics/stock", rx.url)})).await;
    rx.status.store(500, std::sync::atomic::Ordering::SeqCst);
    sim.change_stock(json!({"itemCode": "16080", "quantity": -1})).unwrap();
    wait_for("the first attempt", || sim.deliveries().first().is_some_and(|d| d.attempts == 1)).await;
    let first = sim.deliveries()[0].clone();
    assert!(!first.delivered);
    assert_eq!(first.next_due_ms, Some(first.first_attempt_ms + 90_000));

    // Not before 1.5 minutes have passed on the simulated clock.
    sim.advance_ms(60_000);
    sim.deliver_due().await;
    assert_eq!(sim.deliveries()[0].attempts, 1);
    sim.advance_ms(30_000);
    sim.deliver_due().await;
    wait_for("the first retry", || sim.deliveries()[0].attempts == 2).await;
    assert_eq!(sim.deliveries()[0].next_due_ms, Some(first.first_attempt_ms + 270_000), "second retry at 4.5 minutes");

    rx.status.store(200, std::sync::atomic::Ordering::SeqCst);
    sim.advance_ms(180_000);
    sim.deliver_due().await;
    wait_for("the delivery", || sim.deliveries()[0].delivered).await;
    assert_eq!(sim.deliveries()[0].attempts, 3);
    assert_eq!(rx.got.lock().unwrap().len(), 3, "two refused attempts and the accepted one");
    let bodies: BTreeSet<Vec<u8>> = rx.got.lock().unwrap().iter().map(|(_, _, b)| b.clone()).collect();
    assert_eq!(bodies.len(), 1, "every attempt carries the same content, so it dedupes to one event id");
}

fn fixture(topic: &str) -> Vec<u8> {
    let path = spoke_tests::workspace().join(format!("tests/vendors/fixtures/wics/{}.json", topic.to_ascii_lowercase()));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn documented_topic_examples_normalize_and_wrong_credentials_are_refused() {
    let (_sim, host) = start(Options::default()).await;
    let expected = [
        ("SHIPMENT", "WT 95"),
        ("RECEIPT", "WT 93"),
        ("STOCK", "CS1001"),
        ("STOCKMUTATION", "16080"),
        ("ANNOUNCEMENTSTATUS", "WT-2508-4"),
        ("ORDERSTATUS", "WT-2508-4"),
        ("ORDERLINESTATUS", "WT-2508-4"),
        ("PICKSLIPLINESTATUS", "Exact ShopOrder 1050"),
        ("RMA", "200122"),
    ];
    let mut ids = BTreeSet::new();
    for (topic, subject) in expected {
        let body = fixture(topic);
        let path = format!("/{}", topic.to_ascii_lowercase());
        let events = deliver_to_host(&host, &path, Some(basic(KEY, SECRET)), body.clone()).await.unwrap_or_else(|e| panic!("{topic}: {e:?}"));
        assert_eq!(events.len(), 1, "{topic}");
        let event = &events[0];
        assert_eq!(event.topic, topic);
        assert_eq!(event.subject.as_deref(), Some(subject), "{topic}");
        assert_eq!(event.payload, serde_json::from_slice::<Value>(&body).unwrap(), "{topic}: payload passes through");
        // A redelivered shipment or receipt (WICS' own number) is the same
        // event; the same state again is a change of its own.
        let again = deliver_to_host(&host, &path, Some(basic(KEY, SECRET)), body.clone()).await.unwrap();
        if matches!(topic, "SHIPMENT" | "RECEIPT") {
            assert_eq!(again[0].id, event.id, "{topic}");
        } else {
            assert_ne!(again[0].id, event.id, "{topic}");
        }
        ids.insert(event.id.clone());

        let refused = deliver_to_host(&host, &path, Some(basic(KEY, "wrong-secret")), body.clone()).await.unwrap_err();
        assert_eq!(refused.kind.as_str(), "unauthorized", "{topic}");
        let refused = deliver_to_host(&host, &path, None, body).await.unwrap_err();
        assert_eq!(refused.kind.as_str(), "unauthorized", "{topic}");
    }
    assert_eq!(ids.len(), 9);

    // Without a topic in the URL the payload's shape tells (except the two line status topics).
    let events = host.webhook("wics", Webhook { headers: vec![("Authorization".into(), basic(KEY, SECRET))], body: fixture("SHIPMENT") }).await.unwrap();
    assert_eq!(events[0].topic, "SHIPMENT");
    assert_eq!(events[0].occurred_at.as_deref(), Some("2021-09-13T00:00:00.000+02:00"));
    // The docs write the header as `Basic {apikey}:{apisecret}`: accepted too.
    let raw = format!("Basic {KEY}:{SECRET}");
    let events = host.webhook("wics", Webhook { headers: vec![("authorization".into(), raw)], body: fixture("STOCK") }).await.unwrap();
    assert_eq!(events[0].topic, "STOCK");
    let err = host.webhook("wics", Webhook { headers: vec![("authorization".into(), basic("someone", "else"))], body: fixture("STOCK") }).await.unwrap_err();
    assert_eq!(err.kind.as_str(), "unauthorized");
}

#[tokio::test]
async fn calls_as_fast_as_possible_stay_within_the_limit() {
    const LIMIT: u32 = 15;
    const WINDOW_MS: i64 = 2_000;
    const WINDOWS: u64 = 3;
    let sim = Simulator::start(Options { limits: Limits { per_minute: LIMIT, minute_ms: WINDOW_MS, ..Limits::default() }, ..Options::default() })
        .await
        .unwrap();
    let extra = format!("[connectors.wics.rate_limits.api-user]\nwindows = [{{ limit = {LIMIT}, seconds = {} }}]\n", WINDOW_MS / 1000);
    let host = Arc::new(TestHost::start(&config(&sim.url(), SECRET, &extra)).await.unwrap());

    // Load the plugin, then let that call's window pass so every window starts full.
    call(&host, "login", json!({})).await;
    tokio::time::sleep(Duration::from_millis(WINDOW_MS as u64 + 100)).await;
    let start = Instant::now();
    let run_for = Duration::from_millis(WINDOW_MS as u64 * WINDOWS);
    let done = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for _ in 0..6 {
        let (host, done) = (host.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            while start.elapsed() < run_for {
                let result = host.call("wics", "login", json!({})).await;
                let at = start.elapsed();
                match result {
                    Ok(_) if at < run_for => done.lock().unwrap().push(at),
                    Ok(_) => {}
                    Err(e) if e.kind.as_str() == "rate-limited" || e.kind.as_str() == "timeout" => {}
                    Err(e) => panic!("unexpected error {e:?}"),
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(sim.violations(), 0, "the host never made WICS block the user");
    let done = done.lock().unwrap();
    for window in 0..WINDOWS {
        let from = Duration::from_millis(window * WINDOW_MS as u64);
        let to = from + Duration::from_millis(WINDOW_MS as u64);
        let in_window = done.iter().filter(|at| **at >= from && **at < to).count();
        eprintln!("window {window}: {in_window} calls completed (limit {LIMIT})");
        assert!(in_window * 10 >= LIMIT as usize * 9, "window {window}: only {in_window} of {LIMIT} allowed calls completed");
    }
}

#[tokio::test]
async fn a_block_by_wics_is_a_rate_limited_error_and_the_host_does_not_escalate_it() {
    // The host believes the documented 150/minute; this simulator allows 3 per 10 s.
    let limits = Limits { per_minute: 3, minute_ms: 10_000, ..Limits::default() };
    let sim = Simulator::start(Options { limits, ..Options::default() }).await.unwrap();
    // Fail at once instead of waiting out WICS' one-minute block.
    let host = TestHost::start(&config(&sim.url(), SECRET, "[limits]\nmax_rate_wait_secs = 1\n")).await.unwrap();
    for _ in 0..3 {
        call(&host, "login", json!({})).await;
    }
    let err = call_err(&host, "login", json!({})).await;
    assert_eq!(err.kind.as_str(), "rate-limited", "{err:?}");
    assert_eq!(err.status, Some(429));
    assert!(err.message.contains("First violation level"), "WICS' message is kept: {}", err.message);
    // WICS sends no Retry-After: the wait is the plugin's first penalty rung.
    let left = err.retry_after_ms.unwrap();
    assert!((55_000..=60_000).contains(&left), "told {left} ms of a 60 s block");
    assert_eq!(sim.violations(), 1);
    // The host honours the block: the next call is refused without reaching
    // WICS, so the block never escalates to five minutes.
    let requests = sim.request_count();
    let err = call_err(&host, "get_stock", json!({"itemCode": "16080"})).await;
    assert_eq!(err.kind.as_str(), "rate-limited", "{err:?}");
    assert_eq!(sim.request_count(), requests);
    assert_eq!(sim.violations(), 1);
}
