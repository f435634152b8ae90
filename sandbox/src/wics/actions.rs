//! Things that happen in the warehouse rather than through the API: an order
//! is shipped, an announcement received, stock counted, a return registered.
//! Each changes the state and emits the webhook events WICS would.
use super::dates;
use super::store::{State, ANNOUNCEMENT_CREATED, ANNOUNCEMENT_RECEIVED, CUSTOMER_NUMBER, ORDER_CREATED, ORDER_SHIPPED, WAREHOUSE};
use serde_json::{json, Value};

fn text<'a>(request: &'a Value, key: &str) -> Option<&'a str> {
    request.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn metafields(record: &Value) -> Value {
    record.get("metaFields").cloned().unwrap_or(json!(""))
}

/// Where an item is stored (its first stock line), or a receiving location.
fn location_of(state: &State, code: &str) -> String {
    state.stock.iter().find(|l| l.item_code == code).map(|l| l.location.clone()).unwrap_or_else(|| "AA01A1".into())
}

fn serials_for(request: &Value, code: &str) -> Vec<String> {
    request["serialNumbers"][code].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect()
}

pub fn ship_order(state: &mut State, now_ms: i64, request: &Value) -> Result<Value, String> {
    let reference = text(request, "reference").ok_or("reference is required")?;
    let index = state
        .orders
        .iter()
        .position(|o| o["reference"] == reference || o["number"] == reference)
        .ok_or_else(|| format!("order {reference} not found"))?;
    if state.orders[index]["statusCode"] == ORDER_SHIPPED.1 {
        return Err(format!("order {reference} is already shipped"));
    }
    let (_, now) = dates(now_ms);
    let order = state.orders[index].clone();
    let order_nr: i64 = order["number"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0);
    let shipment_nr = state.next_number();
    let track = text(request, "trackAndTrace").map(String::from).unwrap_or_else(|| format!("3SDEVC{shipment_nr:07}"));
    let zipcode = order["deliveryAddress"]["zipcode"].as_str().unwrap_or("").replace(' ', "");
    let lines: Vec<Value> = order["lines"].as_array().cloned().unwrap_or_default();

    // The order leaves the warehouse: it no longer reserves stock.
    state.orders[index]["statusCode"] = json!(ORDER_SHIPPED.1);
    if let Some(order_lines) = state.orders[index]["lines"].as_array_mut() {
        for line in order_lines {
            line["quantityDelivered"] = line["quantity"].clone();
        }
    }

    let mut shipping_lines = Vec::new();
    let mut line_statuses = Vec::new();
    for line in &lines {
        let code = line["itemCode"].as_str().unwrap_or_default().to_string();
        let quantity = line["quantity"].as_i64().unwrap_or(0);
        let serials = serials_for(request, &code);
        let location = location_of(state, &code);
        let eansscc = state.mutate_stock(&code, -quantity, &location, (20, "Uitlevering order"), &now, serials.clone());
        let stock_line = state.stock.iter().find(|l| l.eansscc == eansscc).cloned();
        shipping_lines.push(json!({
            "metaFields": metafields(line),
            "orderLine": line["lineNumber"],
            "orderLineExternal": null,
            "itemCode": code,
            "itemDescription": line.get("itemDescription").cloned().unwrap_or_else(|| state.item_description(&code)),
            "quantityOrdered": quantity,
            "quantityDelivered": quantity,
            "unit": line.get("unit").cloned().unwrap_or(json!("ST")),
            "hasSerialNumbers": !serials.is_empty(),
            "bestBeforeDate": stock_line.as_ref().and_then(|l| l.best_before.clone()),
            "lotNumber": stock_line.as_ref().map(|l| l.lot_number.clone()).unwrap_or_default(),
            "EANSSCC": eansscc,
            "serialNumbers": serials,
        }));
        line_statuses.push(json!({
            "lineNumber": line["lineNumber"], "statusCode": ORDER_SHIPPED.0, "statusDescription": ORDER_SHIPPED.1,
            "oldStatusCode": ORDER_CREATED.0, "oldStatusDescription": ORDER_CREATED.1,
        }));
    }
    let has_serials = shipping_lines.iter().any(|l| l["hasSerialNumbers"] == true);
    let shipment = json!({
        "metaFields": metafields(&order),
        "shipmentNr": shipment_nr,
        "colloId": (shipment_nr + 5000).to_string(),
        "orderReference": order["reference"],
        "additionalReference": order.get("additionalReference").cloned().unwrap_or(json!("")),
        "deliveryDate": now,
        "shipperCode": text(request, "shipperCode").unwrap_or("9000000"),
        "shipperName": text(request, "shipperName").unwrap_or("PostNL"),
        "trackAndTrace": track,
        "trackAndTraceUrl": format!("http://postnl.nl/tracktrace/?D=NL&B={track}&P={zipcode}&L=NL&T=C"),
        "hasSerialNumbers": has_serials,
        "shippingLines": shipping_lines,
    });
    state.shipments.push(shipment.clone());
    let public = super::api::strip_serials(&shipment, "shippingLines");
    let event = shipment_event(&public);
    state.emit("ORDERSTATUS", json!({
        "orderNr": order_nr, "orderReference": order["reference"], "statusCode": ORDER_SHIPPED.0, "statusDescription": ORDER_SHIPPED.1,
        "oldStatusCode": ORDER_CREATED.0, "oldStatusDescription": ORDER_CREATED.1,
    }));
    state.emit("ORDERLINESTATUS", json!({"orderNr": order_nr, "orderReference": order["reference"], "lines": line_statuses}));
    let pickslip: Vec<Value> = line_statuses
        .iter()
        .map(|l| json!({"lineNumber": l["lineNumber"], "statusCode": "60", "statusDescription": "Afgehandeld, volledige levering", "oldStatusCode": "40", "oldStatusDescription": "In uitvoering"}))
        .collect();
    state.emit("PICKSLIPLINESTATUS", json!({"orderNr": order_nr, "orderReference": order["reference"], "lines": pickslip}));
    state.emit("SHIPMENT", event);
    Ok(public)
}

/// The SHIPMENT webhook body: exactly the documented example's fields. The
/// API's shipment list also has `colloId` and `additionalReference`; the
/// webhook does not, so a connector cannot lean on them. Metafields come
/// back on the shipment lines (the docs list "Shipment lines" among the
/// entities with metafields, not the shipment header): the header's
/// `metaFields` is the example's empty string.
fn shipment_event(shipment: &Value) -> Value {
    let mut event = shipment.clone();
    if let Some(map) = event.as_object_mut() {
        map.remove("colloId");
        map.remove("additionalReference");
        map.insert("metaFields".into(), json!(""));
    }
    event
}

pub fn receive_announcement(state: &mut State, now_ms: i64, request: &Value) -> Result<Value, String> {
    let id = text(request, "identifier").ok_or("identifier is required")?;
    let index = state
        .announcements
        .iter()
        .position(|a| a["reference"] == id || a["number"] == id)
        .ok_or_else(|| format!("announcement {id} not found"))?;
    if state.announcements[index]["statusCode"] != ANNOUNCEMENT_CREATED.0 {
        return Err(format!("announcement {id} is already received"));
    }
    let (today, now) = dates(now_ms);
    let announcement = state.announcements[index].clone();
    state.announcements[index]["statusCode"] = json!(ANNOUNCEMENT_RECEIVED.0);
    state.announcements[index]["statusDescription"] = json!(ANNOUNCEMENT_RECEIVED.1);
    let received_override: Vec<Value> = request["lines"].as_array().cloned().unwrap_or_default();
    let mut lines = Vec::new();
    for line in announcement["lines"].as_array().cloned().unwrap_or_default() {
        let code = line["itemCode"].as_str().unwrap_or_default().to_string();
        let given = received_override.iter().find(|r| r["itemCode"] == code.as_str() || (r["lineNumber"] == line["lineNumber"] && !r["lineNumber"].is_null()));
        let quantity = given.and_then(|g| g["quantityReceived"].as_i64()).unwrap_or_else(|| line["quantityExpected"].as_i64().unwrap_or(0));
        let serials: Vec<String> = given.map(|g| g["serialNumbers"].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default();
        let location = location_of(state, &code);
        let eansscc = state.mutate_stock(&code, quantity, &location, (30, "Ontvangst"), &now, serials.clone());
        lines.push(json!({
            "metaFields": metafields(&line),
            "lineNumber": line["lineNumber"],
            "itemCode": code,
            "itemDescription": line.get("itemDescription").cloned().unwrap_or_else(|| state.item_description(&code)),
            "quantityExpected": line["quantityExpected"],
            "quantityReceived": quantity,
            "unit": line.get("unit").cloned().unwrap_or(json!("ST")),
            "statusCode": ANNOUNCEMENT_RECEIVED.0,
            "statusDescription": ANNOUNCEMENT_RECEIVED.1,
            "hasSerialNumbers": !serials.is_empty(),
            "bestBeforeDate": line.get("bestBeforeDate").cloned().unwrap_or(Value::Null),
            "lotNumber": line.get("lotNumber").cloned().unwrap_or(json!("")),
            "EANSSCC": eansscc,
            "stockStatusCode": "31",
            "stockStatusDescription": "Vrij",
            "warehouseCode": WAREHOUSE,
            "serialNumbers": serials,
        }));
    }
    let number = state.next_number().to_string();
    let receipt = json!({
        "metaFields": metafields(&announcement),
        "number": number,
        "reference": announcement["reference"],
        "receiptDate": today,
        "remarks": "",
        "warehouse": announcement.get("warehouseCode").cloned().unwrap_or(json!(WAREHOUSE)),
        "stockStatusCode": "31",
        "stockStatusDescription": "Vrij",
        "typeCode": announcement.get("type").cloned().unwrap_or(json!("005")),
        "typeDescription": "Normaal, wel naar RF",
        "statusCode": ANNOUNCEMENT_RECEIVED.0,
        "statusDescription": ANNOUNCEMENT_RECEIVED.1,
        "hasSerialNumbers": lines.iter().any(|l| l["hasSerialNumbers"] == true),
        "customerNumber": CUSTOMER_NUMBER,
        "lines": lines,
    });
    state.receipts.push(receipt.clone());
    let public = super::api::strip_serials(&receipt, "lines");
    // The RECEIPT webhook body: the documented example's fields only.
    let mut event = public.clone();
    event["receiptDate"] = json!(now);
    if let Some(map) = event.as_object_mut() {
        map.remove("typeCode");
        map.remove("typeDescription");
    }
    if let Some(lines) = event["lines"].as_array_mut() {
        for line in lines.iter_mut().filter_map(Value::as_object_mut) {
            line.remove("warehouseCode");
        }
    }
    state.emit("ANNOUNCEMENTSTATUS", json!({
        "announcementNr": announcement["number"].as_str().and_then(|n| n.parse::<i64>().ok()).unwrap_or(0),
        "reference": announcement["reference"],
        "statusCode": ANNOUNCEMENT_RECEIVED.0, "statusDescription": ANNOUNCEMENT_RECEIVED.1,
        "oldStatusCode": ANNOUNCEMENT_CREATED.0, "oldStatusDescription": ANNOUNCEMENT_CREATED.1,
    }));
    state.emit("RECEIPT", event);
    Ok(public)
}

pub fn change_stock(state: &mut State, now_ms: i64, request: &Value) -> Result<Value, String> {
    let code = text(request, "itemCode").ok_or("itemCode is required")?.to_string();
    let quantity = request["quantity"].as_i64().ok_or("quantity (a whole number, + or -) is required")?;
    if state.item(&code).is_none() {
        return Err(format!("item {code} not found"));
    }
    let location = text(request, "location").map(String::from).unwrap_or_else(|| location_of(state, &code));
    let (_, now) = dates(now_ms);
    let serials = request["serialNumbers"].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect();
    state.mutate_stock(&code, quantity, &location, (10, "Manuele creatie / mutatie"), &now, serials);
    Ok(state.stock_record(&code))
}

pub fn register_return(state: &mut State, request: &Value) -> Result<Value, String> {
    let reference = text(request, "orderReference").ok_or("orderReference is required")?;
    if !state.orders.iter().any(|o| o["reference"] == reference) {
        return Err(format!("order {reference} not found"));
    }
    let payload = json!({"orderReference": reference, "lines": request.get("lines").cloned().unwrap_or(json!([]))});
    state.emit("RMA", payload.clone());
    Ok(payload)
}
