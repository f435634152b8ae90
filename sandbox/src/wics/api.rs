//! The 32 documented endpoints. One entry point authenticates, rate limits
//! and counts; `route` dispatches on method and path segments to handlers
//! over the locked state.
use super::documented;
use super::store::{self, State, Subscription, ANNOUNCEMENT_CREATED, ORDER_CREATED, ORDER_SHIPPED, WAREHOUSE};
use crate::shape::conform;
use super::{Shared, TOPICS};
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A WICS answer: HTTP status plus the `{code, message, success, data}` envelope.
pub struct Reply {
    pub status: u16,
    pub code: u16,
    pub message: String,
    pub data: Value,
}

pub type Result<T> = std::result::Result<T, Reply>;

impl Reply {
    pub fn ok(message: impl Into<String>, data: Value) -> Reply {
        Reply { status: 200, code: 200, message: message.into(), data }
    }
    pub fn created(message: impl Into<String>, data: Value) -> Reply {
        Reply { status: 201, code: 201, message: message.into(), data }
    }
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply { status, code: status, message: message.into(), data: Value::Null }
    }
    fn not_found(what: &str, id: &str) -> Reply {
        Reply::error(404, format!("{what} {id} not found"))
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let body = json!({"code": self.code, "message": self.message, "success": self.status < 400, "data": self.data});
        let mut response = (StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK), axum::Json(body)).into_response();
        if self.status == 401 {
            response.headers_mut().insert("www-authenticate", HeaderValue::from_static("Basic realm=\"WICS Service Layer\""));
        }
        response
    }
}

/// What a handler knows about the request besides its input.
pub struct Ctx<'a> {
    pub apikey: &'a str,
}

pub async fn api(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    Path(rest): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    let Some(apikey) = shared.authenticate(authorization) else {
        return Reply::error(401, "Unauthorized: the API key or API secret is not valid").into_response();
    };
    if let Err(refusal) = shared.rate_check(&apikey) {
        // The docs name no status, header or body for a block; answer 429
        // without Retry-After, so the client must know the ladder itself.
        return Reply::error(429, refusal.message).into_response();
    }
    let input = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(e) => return Reply::error(400, format!("The request body is not valid JSON: {e}")).into_response(),
        }
    };
    let ctx = Ctx { apikey: &apikey };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let reply = {
        let mut state = shared.state.lock().unwrap();
        route(&mut state, &ctx, &method, &segments, &query, input).unwrap_or_else(|e| e)
    };
    shared.flush_outbox();
    reply.into_response()
}

fn route(state: &mut State, ctx: &Ctx, method: &Method, path: &[&str], query: &[(String, String)], body: Value) -> Result<Reply> {
    match (method.as_str(), path) {
        ("GET", ["login"]) => Ok(Reply::ok(
            format!("API User authenticated succesfully as {} | My company name is: Spoke Demo BV | My customer name is: Demo Webshop", ctx.apikey),
            Value::Null,
        )),

        ("GET", ["announcement"]) => list(state.announcements.clone(), query, "announcements", documented::ANNOUNCEMENT_HEADER),
        ("POST", ["announcement"]) => create_announcement(state, &body),
        ("GET", ["announcement", id]) => {
            let announcement = &state.announcements[find(&state.announcements, id, "Announcement")?];
            Ok(Reply::ok(format!("Announcement {id}"), conform(documented::ANNOUNCEMENT, announcement)))
        }
        ("PUT", ["announcement", id]) => update_announcement(state, id, &body),
        ("DELETE", ["announcement", id]) => {
            let i = find(&state.announcements, id, "Announcement")?;
            if state.announcements[i]["statusCode"] != ANNOUNCEMENT_CREATED.0 {
                return Err(Reply::error(409, format!("Announcement {id} is already received and can not be deleted")));
            }
            state.announcements.remove(i);
            Ok(Reply::ok(format!("{id} deleted succesfully"), Value::Null))
        }

        ("GET", ["receipt"]) => list(state.receipts.clone(), query, "receipts", documented::RECEIPT_HEADER),
        ("GET", ["receipt", id]) => Ok(Reply::ok(format!("Receipt {id}"), conform(documented::RECEIPT, &state.receipts[find(&state.receipts, id, "Receipt")?]))),
        ("GET", ["receipt", id, "serialnumber"]) => {
            let receipt = &state.receipts[find(&state.receipts, id, "Receipt")?];
            serial_groups(receipt, "lines", "lineNumber")
        }

        ("GET", ["order"]) => list(state.orders.clone(), query, "orders", documented::ORDER_HEADER),
        ("POST", ["order"]) => create_order(state, &body),
        ("GET", ["order", id]) => Ok(Reply::ok(format!("Order {id}"), conform(documented::ORDER, &state.orders[find(&state.orders, id, "Order")?]))),
        ("PUT", ["order", id]) => update_order(state, id, &body),
        ("DELETE", ["order", id]) => {
            let i = open_order(state, id)?;
            let order = state.orders.remove(i);
            stock_events(state, &order);
            Ok(Reply::ok(format!("{id} deleted succesfully"), Value::Null))
        }
        ("GET", ["order", id, "serialnumber"]) => {
            let reference = state.orders[find(&state.orders, id, "Order")?]["reference"].clone();
            let serials: Vec<Value> = state
                .shipments
                .iter()
                .filter(|s| s["orderReference"] == reference)
                .flat_map(|s| s["shippingLines"].as_array().cloned().unwrap_or_default())
                .flat_map(|line| {
                    let serials = line["serialNumbers"].as_array().cloned().unwrap_or_default();
                    serials.into_iter().map(move |s| json!({"itemCode": line["itemCode"], "description": line["itemDescription"], "serialNumber": s}))
                })
                .collect();
            Ok(Reply::ok(format!("List of {} serial numbers", serials.len()), Value::Array(serials)))
        }
        ("GET", ["order", id, "shipment"]) => {
            let reference = state.orders[find(&state.orders, id, "Order")?]["reference"].clone();
            let shipments: Vec<Value> = state.shipments.iter().filter(|s| s["orderReference"] == reference).map(|s| conform(documented::SHIPMENT, s)).collect();
            Ok(Reply::ok(format!("List of {} shipments", shipments.len()), Value::Array(shipments)))
        }
        ("POST", ["order", id, "paid"]) => {
            let i = find(&state.orders, id, "Order")?;
            state.orders[i]["paid"] = Value::Bool(true);
            Ok(Reply::ok(format!("Succesfully set order to paid {id}"), Value::Null))
        }

        ("GET", ["item"]) => list(state.items.clone(), query, "items", documented::ITEM),
        ("POST", ["item"]) => {
            let item = check_item(state, &body, "")?;
            let code = item["code"].as_str().unwrap_or_default().to_string();
            state.items.push(item);
            Ok(Reply::created(format!("Item with {code} created successfully"), Value::Null))
        }
        ("POST", ["item", "list"]) => {
            let Some(items) = body.as_array() else { return Err(Reply::error(400, "The request body must be a list of items")) };
            let mut checked = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let item = check_item(state, item, &format!("[{i}]."))?;
                if checked.iter().any(|c: &Value| c["code"] == item["code"]) {
                    return Err(Reply::error(409, format!("Item {} appears twice in the list", item["code"])));
                }
                checked.push(item);
            }
            let codes: Vec<String> = checked.iter().filter_map(|c| c["code"].as_str().map(String::from)).collect();
            state.items.extend(checked);
            Ok(Reply::created(format!("Item with {} created successfully", codes.join(", ")), Value::Null))
        }
        ("PUT", ["item", id]) => {
            let i = state.items.iter().position(|it| it["code"] == *id).ok_or_else(|| Reply::not_found("Item", id))?;
            let changes = object(&body)?;
            check_types(&body, "", &[("statusCode", "integer"), ("bestBefore", "object"), ("units", "array"), ("assembled", "boolean")])?;
            merge(&mut state.items[i], changes);
            Ok(Reply::ok(format!("Item with number {id} has been updated."), json!([id])))
        }
        ("GET", ["item", "ean-item", ean]) => {
            let has_ean = |item: &&Value| item["barcode"] == *ean || item["units"].as_array().is_some_and(|u| u.iter().any(|u| u["barcode"] == *ean));
            let item = state.items.iter().find(has_ean).ok_or_else(|| Reply::error(404, format!("No itemcode found for EAN {ean}")))?;
            Ok(Reply::ok(format!("Found itemcode for EAN {ean}"), item["code"].clone()))
        }
        ("GET", ["item", "item-ean", code]) => {
            let item = state.item(code).ok_or_else(|| Reply::not_found("Item", code))?;
            let ean = [&item["barcode"], &item["units"][0]["barcode"]].into_iter().find(|b| b.is_string()).cloned();
            let ean = ean.ok_or_else(|| Reply::error(404, format!("No EAN found for item code {code}")))?;
            Ok(Reply::ok(format!("Found EAN for item code {code}"), ean))
        }

        ("GET", ["shipment", id, "serialnumber"]) => {
            let shipment = state.shipments.iter().find(|s| s["shipmentNr"].as_i64().is_some_and(|n| id.parse() == Ok(n))).ok_or_else(|| Reply::not_found("Shipment", id))?;
            serial_groups(shipment, "shippingLines", "orderLine")
        }

        ("GET", ["stock"]) => {
            let mut codes: Vec<String> = state.items.iter().filter_map(|i| i["code"].as_str().map(String::from)).collect();
            codes.extend(state.stock.iter().map(|l| l.item_code.clone()));
            codes.sort();
            codes.dedup();
            let records = codes.iter().map(|c| state.stock_record(c)).collect();
            list(records, query, "items", "null")
        }
        ("GET", ["stock", "detail"]) => list(state.stock.iter().map(|l| state.stock_detail(l)).collect(), query, "stock details", "null"),
        ("GET", ["stock", code]) => {
            if state.item(code).is_none() && !state.stock.iter().any(|l| l.item_code == *code) {
                return Err(Reply::error(404, format!("No stock found for item {code}")));
            }
            Ok(Reply::ok(format!("Stock {code}"), state.stock_record(code)))
        }
        ("GET", ["stock", code, "detail"]) => {
            if state.item(code).is_none() {
                return Err(Reply::not_found("Item", code));
            }
            let details: Vec<Value> = state.stock.iter().filter(|l| l.item_code == *code).map(|l| state.stock_detail(l)).collect();
            Ok(Reply::ok(format!("List of {} stock details", details.len()), Value::Array(details)))
        }
        ("GET", ["stock", eansscc, "serialnumber"]) => {
            let lines: Vec<&store::StockLine> = state.stock.iter().filter(|l| l.eansscc == *eansscc).collect();
            if lines.is_empty() {
                return Err(Reply::error(404, format!("No stock found for EANSSCC {eansscc}")));
            }
            let count: usize = lines.iter().map(|l| l.serial_numbers.len()).sum();
            let groups: Vec<Value> = lines
                .iter()
                .map(|l| json!({"itemCode": l.item_code, "description": state.item_description(&l.item_code), "lineNumber": 0, "serialNumbers": [l.serial_numbers]}))
                .collect();
            Ok(Reply::ok(format!("List of {count} serialnumbers"), Value::Array(groups)))
        }

        ("GET", ["webhook"]) => {
            let own: Vec<Value> = state
                .subscriptions
                .iter()
                .filter(|s| s.apikey == ctx.apikey)
                .map(|s| json!({"id": s.id, "topic": s.topic, "url": s.url}))
                .collect();
            let page = store::page(own, query).map_err(|e| Reply::error(400, e))?;
            Ok(Reply::ok("List of Webhooks", Value::Array(page)))
        }
        ("POST", ["webhook"]) => {
            require(&body, "", &["topic", "url"])?;
            let topic = body["topic"].as_str().unwrap_or_default().to_ascii_uppercase();
            if !TOPICS.contains(&topic.as_str()) {
                return Err(Reply::error(400, format!("Topic {} is not supported; supported topics: {}", body["topic"], TOPICS.join(", "))));
            }
            let url = body["url"].as_str().ok_or_else(|| Reply::error(400, "Field url must be a string"))?.to_string();
            if state.subscriptions.iter().any(|s| s.apikey == ctx.apikey && s.topic == topic && s.url == url) {
                return Err(Reply::error(409, format!("A webhook for {topic} on {url} is already registered")));
            }
            let id = state.next_number();
            state.subscriptions.push(Subscription { id, apikey: ctx.apikey.into(), topic, url });
            // Documented as 201 Created with code 200 in the body.
            Ok(Reply { status: 201, ..Reply::ok("Webhook registered", json!([id.to_string()])) })
        }
        ("DELETE", ["webhook", id]) => {
            let i = state
                .subscriptions
                .iter()
                .position(|s| s.apikey == ctx.apikey && s.id.to_string() == *id)
                .ok_or_else(|| Reply::not_found("Webhook", id))?;
            state.subscriptions.remove(i);
            Ok(Reply::ok(format!("{id} deleted succesfully"), Value::Null))
        }

        (_, _) => Err(Reply::error(404, format!("No endpoint {method} /api/{}", path.join("/")))),
    }
}

/// One page of `records` matching the query's filters, each in the
/// documented `shape` (filters see the whole record).
fn list(records: Vec<Value>, query: &[(String, String)], what: &str, shape: &str) -> Result<Reply> {
    let matching = store::filter(records, query).map_err(|e| Reply::error(400, e))?;
    let page: Vec<Value> = store::page(matching, query).map_err(|e| Reply::error(400, e))?.iter().map(|r| conform(shape, r)).collect();
    Ok(Reply::ok(format!("List of {} {what}", page.len()), Value::Array(page)))
}

/// The record whose number or reference is `id`.
fn find(records: &[Value], id: &str, what: &str) -> Result<usize> {
    records
        .iter()
        .position(|r| r["number"] == *id || r["reference"] == *id)
        .ok_or_else(|| Reply::not_found(what, id))
}

fn open_order(state: &State, id: &str) -> Result<usize> {
    let i = find(&state.orders, id, "Order")?;
    if state.orders[i]["statusCode"] == ORDER_SHIPPED.1 {
        return Err(Reply::error(409, format!("Order {id} is already shipped and can not be changed")));
    }
    Ok(i)
}

fn object(body: &Value) -> Result<&Map<String, Value>> {
    body.as_object().ok_or_else(|| Reply::error(400, "The request body must be a JSON object"))
}

/// 400 naming the first of `fields` missing from `body` (at `prefix`).
fn require(body: &Value, prefix: &str, fields: &[&str]) -> Result<()> {
    for field in fields {
        if body.get(field).is_none_or(|v| v.is_null() || v == "") {
            return Err(Reply::error(400, format!("Field {prefix}{field} is required")));
        }
    }
    Ok(())
}

/// 400 naming the first present field of the wrong JSON type.
fn check_types(body: &Value, prefix: &str, fields: &[(&str, &str)]) -> Result<()> {
    for (field, kind) in fields {
        let Some(value) = body.get(field).filter(|v| !v.is_null()) else { continue };
        let ok = match *kind {
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            _ => value.is_object(),
        };
        if !ok {
            return Err(Reply::error(400, format!("Field {prefix}{field} must be of type {kind}")));
        }
    }
    Ok(())
}

/// Each element of `body[key]` (an array) with its path prefix.
fn each<'a>(body: &'a Value, key: &str) -> Vec<(String, &'a Value)> {
    body[key].as_array().map(|lines| lines.iter().enumerate().map(|(i, l)| (format!("{key}[{i}]."), l)).collect()).unwrap_or_default()
}

/// Shallow merge of `changes` into `record` (lines and nested objects replaced).
fn merge(record: &mut Value, changes: &Map<String, Value>) {
    if let Some(map) = record.as_object_mut() {
        for (k, v) in changes {
            map.insert(k.clone(), v.clone());
        }
    }
}

/// Give lines without a line number one (1, 2, ...).
fn number_lines(record: &mut Value) {
    if let Some(lines) = record["lines"].as_array_mut() {
        for (i, line) in lines.iter_mut().enumerate() {
            if line.get("lineNumber").is_none_or(Value::is_null) {
                line["lineNumber"] = json!(i + 1);
            }
        }
    }
}

fn check_announcement(body: &Value, creating: bool) -> Result<()> {
    object(body)?;
    if creating {
        require(body, "", &["reference", "plannedDate", "stockStatus", "supplier"])?;
    }
    check_types(body, "", &[("stockStatus", "integer"), ("supplier", "integer"), ("carrier", "integer"), ("lines", "array")])?;
    for (prefix, line) in each(body, "lines") {
        if creating {
            require(line, &prefix, &["itemCode", "quantityExpected", "lotNumber", "bestBeforeDate"])?;
        }
        check_types(line, &prefix, &[("quantityExpected", "integer"), ("lineNumber", "integer")])?;
    }
    Ok(())
}

fn create_announcement(state: &mut State, body: &Value) -> Result<Reply> {
    check_announcement(body, true)?;
    // Like an order's, an announcement's reference is not documented as
    // unique: a second one with the same reference is just made.
    let number = state.next_number().to_string();
    let mut record = body.clone();
    record["number"] = json!(number);
    let warehouse = body.get("warehouseCode").or(body.get("warehouse")).cloned().unwrap_or(json!(WAREHOUSE));
    record["warehouseCode"] = warehouse;
    record["statusCode"] = json!(ANNOUNCEMENT_CREATED.0);
    record["statusDescription"] = json!(ANNOUNCEMENT_CREATED.1);
    number_lines(&mut record);
    state.emit("ANNOUNCEMENTSTATUS", json!({
        "announcementNr": number.parse::<i64>().unwrap_or(0), "reference": body["reference"],
        "statusCode": ANNOUNCEMENT_CREATED.0, "statusDescription": ANNOUNCEMENT_CREATED.1, "oldStatusCode": "", "oldStatusDescription": "",
    }));
    state.announcements.push(record);
    Ok(Reply::created(format!("Announcement with number {number} created successfully"), json!([number])))
}

fn update_announcement(state: &mut State, id: &str, body: &Value) -> Result<Reply> {
    let i = find(&state.announcements, id, "Announcement")?;
    if state.announcements[i]["statusCode"] != ANNOUNCEMENT_CREATED.0 {
        return Err(Reply::error(409, format!("Announcement {id} is already received and can not be changed")));
    }
    check_announcement(body, false)?;
    merge(&mut state.announcements[i], object(body)?);
    number_lines(&mut state.announcements[i]);
    let number = state.announcements[i]["number"].clone();
    Ok(Reply::ok(format!("Announcement with number {} has been updated.", number.as_str().unwrap_or(id)), json!([number])))
}

/// Order checks shared by create and update: required address and line
/// fields, types, and that each item exists.
fn check_order(state: &State, body: &Value, creating: bool) -> Result<()> {
    object(body)?;
    if creating {
        require(body, "", &["deliveryDate"])?;
    }
    check_types(body, "", &[("webshopId", "integer"), ("priority", "integer"), ("paid", "boolean"), ("lines", "array"), ("ride", "object"), ("prices", "object")])?;
    if let Some(priority) = body["priority"].as_i64() {
        if !(1..=3).contains(&priority) {
            return Err(Reply::error(400, "Field priority must be 1 (high), 2 (medium) or 3 (low)"));
        }
    }
    for key in ["invoiceAddress", "deliveryAddress"] {
        let address = &body[key];
        if address.is_null() {
            continue;
        }
        let prefix = format!("{key}.");
        require(address, &prefix, &["name", "streetNumber", "zipcode", "city", "country", "email"])?;
        check_types(address, &prefix, &[("streetNumber", "integer")])?;
        if address["country"].as_str().is_none_or(|c| c.chars().count() != 2) {
            return Err(Reply::error(400, format!("Field {prefix}country must be two characters")));
        }
    }
    for (prefix, line) in each(body, "lines") {
        require(line, &prefix, &["itemCode", "quantity"])?;
        check_types(line, &prefix, &[("quantity", "integer"), ("lineNumber", "integer")])?;
        let code = line["itemCode"].as_str().unwrap_or_default();
        if state.item(code).is_none() {
            return Err(Reply::error(400, format!("Item {code} ({prefix}itemCode) does not exist")));
        }
    }
    Ok(())
}

fn create_order(state: &mut State, body: &Value) -> Result<Reply> {
    check_order(state, body, true)?;
    // The docs do not say order references are unique, so the hardest
    // reading holds: a second order with the same reference is just made
    // (see docs/vendor-notes.md). A connector must look before it creates.
    let number = state.next_number().to_string();
    let mut record = body.clone();
    record["number"] = json!(number);
    if record.get("reference").is_none_or(Value::is_null) {
        record["reference"] = json!(number);
    }
    record["statusCode"] = json!(ORDER_CREATED.1);
    if record.get("paid").is_none_or(Value::is_null) {
        record["paid"] = json!(true);
    }
    if record.get("warehouseCode").is_none_or(Value::is_null) {
        record["warehouseCode"] = json!(WAREHOUSE);
    }
    number_lines(&mut record);
    if let Some(lines) = record["lines"].as_array_mut() {
        for line in lines {
            line["quantityDelivered"] = json!(0);
        }
    }
    state.emit("ORDERSTATUS", json!({
        "orderNr": number.parse::<i64>().unwrap_or(0), "orderReference": record["reference"],
        "statusCode": ORDER_CREATED.0, "statusDescription": ORDER_CREATED.1, "oldStatusCode": "", "oldStatusDescription": "",
    }));
    state.orders.push(record.clone());
    stock_events(state, &record);
    Ok(Reply::created(format!("Order with number {number} created successfully"), json!([number])))
}

fn update_order(state: &mut State, id: &str, body: &Value) -> Result<Reply> {
    let i = open_order(state, id)?;
    check_order(state, body, false)?;
    let before = state.orders[i].clone();
    merge(&mut state.orders[i], object(body)?);
    number_lines(&mut state.orders[i]);
    let after = state.orders[i].clone();
    stock_events(state, &before);
    stock_events(state, &after);
    let number = after["number"].as_str().unwrap_or(id).to_string();
    Ok(Reply::ok(format!("Order with number {number} has been updated."), json!([number])))
}

/// STOCK events for the items of an order whose reservation changed.
fn stock_events(state: &mut State, order: &Value) {
    let mut codes: Vec<String> = order["lines"].as_array().into_iter().flatten().filter_map(|l| l["itemCode"].as_str().map(String::from)).collect();
    codes.sort();
    codes.dedup();
    for code in codes {
        let event = state.stock_event(&code);
        state.emit("STOCK", event);
    }
}

/// Item checks for create: code present and new, internal description ≤ 40.
fn check_item(state: &State, body: &Value, prefix: &str) -> Result<Value> {
    object(body)?;
    require(body, prefix, &["code"])?;
    check_types(body, prefix, &[("code", "string"), ("statusCode", "integer"), ("assembled", "boolean"), ("units", "array"), ("warehouses", "array"), ("components", "array")])?;
    if body["internalDescription"].as_str().is_some_and(|d| d.chars().count() > 40) {
        return Err(Reply::error(400, format!("Field {prefix}internalDescription may have at most 40 characters")));
    }
    let code = body["code"].as_str().unwrap_or_default();
    if state.item(code).is_some() {
        return Err(Reply::error(409, format!("Item {code} already exists")));
    }
    Ok(body.clone())
}

/// Serial numbers per line, as `{itemCode, description, lineNumber,
/// serialNumbers: [[sn], [sn]]}` (each serial wrapped, as the docs show).
fn serial_groups(record: &Value, lines_key: &str, line_key: &str) -> Result<Reply> {
    let groups: Vec<Value> = record[lines_key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|line| {
            let serials = line["serialNumbers"].as_array().filter(|s| !s.is_empty())?;
            Some(json!({
                "itemCode": line["itemCode"], "description": line["itemDescription"], "lineNumber": line[line_key],
                "serialNumbers": serials.iter().map(|s| json!([s])).collect::<Vec<_>>(),
            }))
        })
        .collect();
    let count: usize = groups.iter().map(|g| g["serialNumbers"].as_array().map_or(0, Vec::len)).sum();
    Ok(Reply::ok(format!("List of {count} serialnumbers"), Value::Array(groups)))
}

/// A shipment or receipt as the API shows it (serial numbers have their own endpoint).
pub fn strip_serials(record: &Value, lines_key: &str) -> Value {
    let mut record = record.clone();
    if let Some(lines) = record[lines_key].as_array_mut() {
        for line in lines {
            if let Some(map) = line.as_object_mut() {
                map.remove("serialNumbers");
            }
        }
    }
    record
}
