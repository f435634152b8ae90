//! Every documented WICS endpoint, called the way the docs show it.
use super::Recorder;
use base64::Engine;
use serde_json::{json, Value};
use spoke_sandbox::wics::{Options, Simulator};
use std::collections::HashMap;

/// The docs' create-order body, with items the simulator stocks, a line
/// metafield, and a serial-numbered line to ship.
fn order(reference: &str) -> Value {
    json!({
        "reference": reference, "additionalReference": "153266", "deliveryDate": "2022-08-15", "note": "Inpakken met cadeaupapier",
        "shippingTag": "Bezorgen bij een afhaalpunt", "pickupPoint": "134", "termsOfDelivery": "CPT", "method": "WEB", "webshopId": 2,
        "type": "STDRF", "priority": 2, "ride": {"number": 160622, "routeCode": "400", "stopNumber": 4},
        "texts": {"packingTable": "Reclame folder toevoegen."},
        "prices": {"totalPriceNet": 12.10, "totalPriceGross": 10, "totalDiscount": 0, "handlingCost": 1, "shippingCost": 2, "rembours": 3},
        "invoiceAddress": address(), "deliveryAddress": address(),
        "metaFields": {"wishlist": "WISH_1024"},
        "lines": [
            {"lineNumber": 10001, "itemCode": "16082", "itemDescription": "Jack kabel 1m", "quantity": 1,
             "prices": {"unitPriceNet": 11, "unitPriceGross": 12, "priceNet": 23, "priceGross": 15, "vatPercentage": 17, "discount": 20},
             "unit": "DS", "metaFields": {"spoke_lead": "lead-1"}},
            {"lineNumber": 20002, "itemCode": "190130", "itemDescription": "XLR Kabel", "quantity": 1}
        ]
    })
}

fn address() -> Value {
    json!({"name": "Hans de Groot", "nameExtension": "", "company": "WICS", "street": "Concordiaweg", "streetNumber": 157, "extension": "A",
        "secondAddressLine": "Bovenste verdieping", "thirdAddressLine": "", "zipcode": "4206BK", "city": "Gorinchem", "state": "Zuid-Holland",
        "country": "NL", "phoneNumber": "0183507020", "mobileNumber": "", "email": "info@wics.nl", "language": "NL"})
}

fn announcement(reference: &str) -> Value {
    json!({"reference": reference, "additionalReference": "amazon", "plannedDate": "2022-08-12", "type": "005", "warehouse": "WHS",
        "door": "D01", "carrier": 9000000, "stockStatus": 31, "supplier": 86, "metaFields": {"wishlist": "WISH_1024"},
        "lines": [
            {"lineNumber": 1, "itemCode": "16082", "itemDescription": "Jack Kabel 1m", "unit": "ST", "quantityExpected": 1,
             "lotNumber": "6851993", "bestBeforeDate": "2024-02-14", "metaFields": {"guid": "444d244f"}},
            {"lineNumber": 2, "itemCode": "190130", "itemDescription": "XLR Kabel", "unit": "ST", "quantityExpected": 2,
             "lotNumber": "6851994", "bestBeforeDate": "2024-02-14"}
        ]})
}

fn item(code: &str) -> Value {
    json!({"code": code, "description": "School startset", "internalDescription": "School startset", "assembled": false,
        "itemGroup": "DIV", "defaultUnit": "ST", "statusCode": 30, "weight": "3.75",
        "bestBefore": {"receiptDateEntry": "bestbefore", "bestBeforePeriod": 10, "quarantinePeriod": 20, "warrantyPeriod": 30},
        "units": [{"unit": "ST", "length": 13, "width": 5, "height": 7, "amountSKU": 1, "barcode": format!("99{code}")}],
        "warehouses": [{"code": "WHS", "minimumQuantity": 1, "maximumQuantity": 9999, "safeQuantity": 10, "reorderQuantity": 1}]})
}

pub async fn answers() -> HashMap<(String, String), Value> {
    let sim = Simulator::start(Options::default()).await.expect("WICS simulator");
    let (key, secret) = Options::default().users[0].clone();
    let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}")));
    let mut r = Recorder::new(sim.url(), vec![("authorization", auth)]);
    let none = Value::Null;

    r.send("GET", "/api/login", "/api/login", &none).await;
    // A topic nothing here triggers: no delivery is attempted.
    let created = r.send("POST", "/api/webhook", "/api/webhook", &json!({"topic": "RMA", "url": "http://127.0.0.1:9/rma"})).await;
    let webhook = created["data"][0].as_str().expect("webhook id").to_string();
    r.send("GET", "/api/webhook", "/api/webhook", &none).await;

    r.send("POST", "/api/item", "/api/item", &item("SHAPE-1")).await;
    r.send("POST", "/api/item/list", "/api/item/list", &json!([item("SHAPE-2"), item("SHAPE-3")])).await;
    r.send("PUT", "/api/item/{identifier}", "/api/item/SHAPE-1", &json!({"statusCode": 10, "weight": "1"})).await;
    r.send("GET", "/api/item", "/api/item", &none).await;
    r.send("GET", "/api/item/ean-item/{EAN}", "/api/item/ean-item/99SHAPE-1", &none).await;
    r.send("GET", "/api/item/item-ean/{itemCode}", "/api/item/item-ean/SHAPE-1", &none).await;

    r.send("POST", "/api/order", "/api/order", &order("SO-SHAPE-1")).await;
    r.send("POST", "/api/order", "/api/order", &order("SO-SHAPE-2")).await;
    r.send("GET", "/api/order", "/api/order", &none).await;
    r.send("GET", "/api/order/{identifier}", "/api/order/SO-SHAPE-1", &none).await;
    let mut update = order("SO-SHAPE-1");
    update["lines"][0]["quantity"] = json!(2);
    r.send("PUT", "/api/order/{identifier}", "/api/order/SO-SHAPE-1", &update).await;
    r.send("POST", "/api/order/{reference}/paid", "/api/order/SO-SHAPE-1/paid", &none).await;
    r.send("DELETE", "/api/order/{identifier}", "/api/order/SO-SHAPE-2", &none).await;
    sim.ship_order(json!({"reference": "SO-SHAPE-1", "serialNumbers": {"190130": ["TB01AA"]}})).unwrap();
    let shipments = r.send("GET", "/api/order/{reference}/shipment", "/api/order/SO-SHAPE-1/shipment", &none).await;
    let shipment = shipments["data"][0]["shipmentNr"].as_i64().expect("a shipment");
    r.send("GET", "/api/order/{identifier}/serialnumber", "/api/order/SO-SHAPE-1/serialnumber", &none).await;
    r.send("GET", "/api/shipment/{identifier}/serialnumber", &format!("/api/shipment/{shipment}/serialnumber"), &none).await;

    r.send("POST", "/api/announcement", "/api/announcement", &announcement("PO-SHAPE-1")).await;
    r.send("POST", "/api/announcement", "/api/announcement", &announcement("PO-SHAPE-2")).await;
    let mut update = announcement("PO-SHAPE-1");
    update["door"] = json!("D45");
    r.send("PUT", "/api/announcement/{identifier}", "/api/announcement/PO-SHAPE-1", &update).await;
    r.send("GET", "/api/announcement", "/api/announcement", &none).await;
    r.send("GET", "/api/announcement/{identifier}", "/api/announcement/PO-SHAPE-1", &none).await;
    r.send("DELETE", "/api/announcement/{identifier}", "/api/announcement/PO-SHAPE-2", &none).await;
    let receipt = sim
        .receive_announcement(json!({"identifier": "PO-SHAPE-1", "lines": [{"itemCode": "190130", "quantityReceived": 2, "serialNumbers": ["TB11AA", "TB12AA"]}]}))
        .unwrap();
    let receipt = receipt["number"].as_str().expect("receipt number").to_string();
    r.send("GET", "/api/receipt", "/api/receipt", &none).await;
    r.send("GET", "/api/receipt/{identifier}", &format!("/api/receipt/{receipt}"), &none).await;
    r.send("GET", "/api/receipt/{identifier}/serialnumber", &format!("/api/receipt/{receipt}/serialnumber"), &none).await;

    r.send("GET", "/api/stock", "/api/stock", &none).await;
    r.send("GET", "/api/stock/detail", "/api/stock/detail", &none).await;
    r.send("GET", "/api/stock/{itemCode}", "/api/stock/16082", &none).await;
    let details = r.send("GET", "/api/stock/{itemCode}/detail", "/api/stock/190130/detail", &none).await;
    let serialized = details["data"].as_array().into_iter().flatten().find_map(|d| d["eansscc"].as_str()).expect("a 190130 stock line").to_string();
    r.send("GET", "/api/stock/{EANSSCC}/serialnumber", &format!("/api/stock/{serialized}/serialnumber"), &none).await;

    r.send("DELETE", "/api/webhook/{identifier}", &format!("/api/webhook/{webhook}"), &none).await;
    r.answers
}
