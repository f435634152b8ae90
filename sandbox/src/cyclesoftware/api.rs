//! The 22 documented endpoints over the in-memory records.
use super::model::*;
use super::util::*;
use axum::http::Method;
use serde_json::{json, Value};
use std::collections::HashMap;

pub const OUTBOUND_ORDER_CHANGED: &str = "warehouse_outbound_order.created_or_updated";
pub const STOCK_ITEM_UPDATED: &str = "warehouse_stock_item.updated";
pub const STOCK_ITEM_RELEASED: &str = "warehouse_stock_item.released_for_shipment";

pub const LEAD_TYPES: [&str; 7] = ["information", "sales_offer", "test_ride", "contact_request", "exchange", "complaint", "other"];
pub const LEAD_STATUSES: [&str; 7] = ["open", "noticed", "accepted", "declined", "succeeded", "failed", "cancelled"];

/// One API request, parsed.
pub struct Call<'a> {
    pub method: &'a Method,
    pub segs: Vec<&'a str>,
    pub query: HashMap<String, String>,
    pub body: &'a [u8],
}

/// What a handler works with: the records, the time, and where to put
/// the webhook events its changes cause.
pub struct Ctx<'a> {
    pub data: &'a mut Data,
    pub now_ms: i64,
    pub page_size: usize,
    pub events: &'a mut Vec<(&'static str, Value)>,
    /// See `Options::echo_created_leads`.
    pub echo_created_leads: bool,
}

/// Which rate bucket an endpoint draws from: the endpoints the docs show
/// with X-RateLimit headers, create-invoices with its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketName {
    General,
    CreateInvoices,
}

/// The docs limit "endpoints that implement limits" without naming them;
/// the hardest reading is that every endpoint does. create-invoices has its
/// own, smaller bucket.
pub fn bucket_for(method: &Method, segs: &[&str]) -> Option<BucketName> {
    match (method.as_str(), segs) {
        ("POST", ["api", "v1", "sales", "orders", _, "create-invoices.json"]) => Some(BucketName::CreateInvoices),
        _ => Some(BucketName::General),
    }
}

fn id_segment(text: &str, what: &str) -> Result<i64, ApiError> {
    text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| bad_request(format!("Invalid {what}: {text:?}")))
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("Invalid JSON body: {e}")))
}

pub fn route(ctx: &mut Ctx, call: &Call) -> ApiResult {
    let get = call.method == Method::GET;
    let post = call.method == Method::POST;
    let q = &call.query;
    match call.segs.as_slice() {
        ["api", "v1", "warehouse", "inbound", "backlog.json"] if get => backlog(ctx, q),
        ["api", "v1", "warehouse", "inbound", "delivered-items.json"] if get => {
            let (start, end) = (date_param(q, "start_date")?, date_param(q, "end_date")?);
            let items = ctx.data.delivered.iter().filter(|i| in_range(&i["datetime_delivered"], &start, &end)).cloned().collect();
            offset_page(items, q, ctx.page_size)
        }
        ["api", "v1", "warehouse", "workshop", "assemblies.json"] if get => {
            let (start, end) = (date_param(q, "start_date")?, date_param(q, "end_date")?);
            let items = ctx.data.assemblies.iter().filter(|i| in_range(&i["released_for_shipment_at"], &start, &end)).cloned().collect();
            offset_page(items, q, ctx.page_size)
        }
        ["app", "api", "whm", "stockinfo", rest @ ..] if get => {
            let barcodes: Vec<String> = rest.iter().filter(|s| !s.is_empty()).map(|s| percent_decode(s)).collect();
            stock_info(ctx, &barcodes, q)
        }
        ["app", "api", "whm", "stockinfo"] | ["app", "api", "whm", "stockinfo", ""] if post => {
            let body = json_body(call.body)?;
            let barcodes: Vec<String> = body["barcodes"]
                .as_array()
                .ok_or_else(|| bad_request("barcodes must be an array of barcodes"))?
                .iter()
                .map(|b| b.as_str().map(str::to_string).ok_or_else(|| bad_request("barcodes must be strings")))
                .collect::<Result<_, _>>()?;
            stock_info(ctx, &barcodes, q)
        }
        ["api", "v1", "warehouse", "stock", "items.json"] if get => {
            Ok(ok(json!({"data": ctx.data.stock_items.values().map(StockItem::list_json).collect::<Vec<_>>()})))
        }
        ["api", "v1", "warehouse", "stock", "pos-items.json"] if get => Ok(ok(json!({"data": ctx.data.pos_items}))),
        ["api", "v1", "warehouse", "outbound", "order", "open-orders.json"] if get => open_orders(ctx, q),
        ["api", "v1", "warehouse", "outbound", "order", id, "pool-to-regular.json"] if post => pool_to_regular(ctx, id_segment(id, "outbound_order_id")?),
        ["api", "v1", "warehouse", "outbound", "order", id, "cancel.json"] if post => cancel_outbound_order(ctx, id_segment(id, "outbound_order_id")?),
        ["api", "v1", "warehouse", "outbound", "item", id, which @ ("delivered.json" | "not-delivered.json")] if post => {
            set_delivered(ctx, id_segment(id, "stock_item_id")?, *which == "delivered.json")
        }
        ["api", "v1", "platform", "authentication", "keys.json"] if get => Ok(ok(json!({"keys": ctx.data.keys}))),
        ["api", "v1", "stock-in-store-locator", "stores.json"] if get => Ok(ok(json!({"stores": ctx.data.stores}))),
        ["api", "v1", "stock-in-store-locator", "stock.json"] if post => locate_stock(ctx, &json_body(call.body)?),
        ["api", "v1", "leads", "create.json"] if post => create_lead(ctx, &json_body(call.body)?),
        ["api", "v1", "leads", file] if get && file.ends_with(".json") => {
            let uuid = file.trim_end_matches(".json");
            let lead = ctx.data.leads.get(uuid).ok_or_else(|| not_found(format!("Lead {uuid} not found")))?;
            if ctx.echo_created_leads {
                let mut echo = ctx.data.lead_echoes.get(uuid).cloned().unwrap_or_else(|| json!({}));
                echo["uuid"] = lead["uuid"].clone();
                echo["status"] = lead["status"].clone();
                return Ok(ok(json!({"sales_lead": echo})));
            }
            Ok(ok(json!({"sales_lead": lead})))
        }
        ["api", "v1", "leads", uuid, "cancel.json"] if post => cancel_lead(ctx, uuid),
        ["api", "v1", "sales", "orders", id, action] if post => {
            let id = id_segment(id, "sales_order_id")?;
            match *action {
                "update-store.json" => update_store(ctx, id, &json_body(call.body)?),
                "update-delivery-method.json" => update_delivery_method(ctx, id, &json_body(call.body)?),
                "cancel.json" => cancel_sales_order(ctx, id, q),
                "create-invoices.json" => create_invoices(ctx, id, &decode_pairs(&String::from_utf8_lossy(call.body))),
                _ => Err(not_found("Not Found")),
            }
        }
        _ if known_path(&call.segs) => Err(bad_request(format!("Unsupported HTTP method {}", call.method))),
        _ => Err(not_found("Not Found")),
    }
}

/// A path the API serves with another method (a 400 rather than a 404).
fn known_path(segs: &[&str]) -> bool {
    matches!(
        segs,
        ["api", "v1", "warehouse", "inbound", "backlog.json" | "delivered-items.json"]
            | ["api", "v1", "warehouse", "workshop", "assemblies.json"]
            | ["app", "api", "whm", "stockinfo", ..]
            | ["api", "v1", "warehouse", "stock", "items.json" | "pos-items.json"]
            | ["api", "v1", "warehouse", "outbound", "order", "open-orders.json"]
            | ["api", "v1", "warehouse", "outbound", "order", _, "pool-to-regular.json" | "cancel.json"]
            | ["api", "v1", "warehouse", "outbound", "item", _, "delivered.json" | "not-delivered.json"]
            | ["api", "v1", "platform", "authentication", "keys.json"]
            | ["api", "v1", "stock-in-store-locator", "stores.json" | "stock.json"]
            | ["api", "v1", "leads", _]
            | ["api", "v1", "leads", _, "cancel.json"]
            | ["api", "v1", "sales", "orders", _, _]
    )
}

fn in_range(value: &Value, start: &str, end: &str) -> bool {
    let day = value.as_str().map(|s| &s[..s.len().min(10)]).unwrap_or("");
    day >= start && day <= end
}

/// The default pagination: `offset` in, `pagination.next_offset` out.
fn offset_page(items: Vec<Value>, q: &HashMap<String, String>, page_size: usize) -> ApiResult {
    let offset = int_param(q, "offset")?.unwrap_or(0);
    if offset < 0 {
        return Err(bad_request("Invalid GET variable offset"));
    }
    let start = (offset as usize).min(items.len());
    let end = (start + page_size).min(items.len());
    let next = (end < items.len()).then_some(end as i64);
    Ok(ok(json!({"data": items[start..end], "pagination": {"next_offset": next}})))
}

fn backlog(ctx: &mut Ctx, q: &HashMap<String, String>) -> ApiResult {
    let supplier = int_param(q, "supplier_id")?;
    let assigned_only = switch_param(q, "is_assigned")?;
    let items = ctx
        .data
        .backlog
        .iter()
        .filter(|i| supplier.is_none_or(|s| i["supplier_id"] == s))
        .filter(|i| !assigned_only || !i["assignment"].is_null())
        .cloned()
        .collect();
    offset_page(items, q, ctx.page_size)
}

fn stock_info(ctx: &mut Ctx, barcodes: &[String], q: &HashMap<String, String>) -> ApiResult {
    if barcodes.is_empty() {
        return Err(bad_request("No barcodes given"));
    }
    let with_items = switch_param(q, "stock_items")?;
    let no_remote = switch_param(q, "no_remote_supplier_check")?;
    let only_supplier = switch_param(q, "only_supplier_stock")?;
    let only_supplier_id = int_param(q, "only_supplier_id")?;
    let if_not_in_warehouse = switch_param(q, "remote_supplier_check_if_not_in_warehouse")?;
    let always_remote = switch_param(q, "always_remote_supplier_check")?;
    let result_items: Vec<Value> = barcodes
        .iter()
        .map(|barcode| {
            let article = ctx.data.articles.get(barcode);
            let (stores, warehouse) = match article {
                Some(a) if !only_supplier => (a.stores.clone(), a.warehouse_quantity),
                _ => (vec![], 0),
            };
            let in_stores: i64 = stores.iter().map(|s| s["quantity"].as_i64().unwrap_or(0)).sum();
            let check_supplier = !no_remote && (always_remote || only_supplier || (if_not_in_warehouse && warehouse == 0));
            let supplier_stock = article.filter(|_| check_supplier).map(|a| {
                a.supplier_has_stock && only_supplier_id.is_none_or(|id| id == a.supplier_id)
            });
            let mut item = json!({
                "barcode": barcode,
                "stock_available": in_stores + warehouse > 0 || supplier_stock == Some(true),
                "delivery_date": article.and_then(|a| a.delivery_date_backlog.clone().or(a.delivery_date_supplier.clone())),
                "delivery_date_supplier": article.filter(|_| check_supplier).and_then(|a| a.delivery_date_supplier.clone()),
                "delivery_date_backlog": article.and_then(|a| a.delivery_date_backlog.clone()),
                "stock_supplier": supplier_stock,
                "stock_quantity": in_stores + warehouse,
                "stock_quantity_stores": in_stores,
                "stock_quantity_warehouse": warehouse,
                "stock_stores": stores,
                "supplier_id": only_supplier_id.map(|id| id.to_string()),
                "article_id": barcode,
            });
            if with_items {
                item["stock_items"] = json!(ctx
                    .data
                    .stock_items
                    .values()
                    .filter(|s| &s.barcode == barcode && !s.is_deleted)
                    .map(|s| json!({"stock_item_id": s.stock_item_id, "frame_id": s.frame_id, "is_claimed_for_obo": s.is_claimed_for_obo}))
                    .collect::<Vec<_>>());
            }
            item
        })
        .collect();
    Ok(json!({"error": false, "error_message": "", "data": {"status": true, "result_items": result_items}}))
}

/// Page-numbered: `page` in, `pagination.{page,count,has_next_page}` out.
fn open_orders(ctx: &mut Ctx, q: &HashMap<String, String>) -> ApiResult {
    let page = int_param(q, "page")?.unwrap_or(1);
    if page < 1 {
        return Err(bad_request("Invalid GET variable page"));
    }
    let items: Vec<Value> = ctx.data.outbound_orders.values().flat_map(OutboundOrder::open_items).collect();
    let start = ((page as usize - 1) * ctx.page_size).min(items.len());
    let end = (start + ctx.page_size).min(items.len());
    Ok(ok(json!({
        "data": items[start..end],
        "pagination": {"page": page, "count": items.len(), "has_next_page": end < items.len()},
    })))
}

fn order_mut(data: &mut Data, id: i64) -> Result<&mut OutboundOrder, ApiError> {
    data.outbound_orders.get_mut(&id).ok_or_else(|| not_found(format!("Outbound order {id} not found")))
}

fn pool_to_regular(ctx: &mut Ctx, id: i64) -> ApiResult {
    let order = order_mut(ctx.data, id)?;
    if order.is_cancelled() {
        return Err(bad_request(format!("Outbound order {id} is cancelled")));
    }
    // Converting a regular order again changes nothing and is not an error.
    if order.is_pool() {
        order.order_items.iter_mut().for_each(|i| i.is_pooled_within_stores = false);
        ctx.events.push((OUTBOUND_ORDER_CHANGED, order.webhook_payload()));
    }
    Ok(ok(json!({})))
}

fn cancel_outbound_order(ctx: &mut Ctx, id: i64) -> ApiResult {
    let order = order_mut(ctx.data, id)?;
    if order.is_cancelled() {
        return Err(bad_request(format!("Outbound order {id} is already cancelled")));
    }
    if order.order_items.iter().any(|i| i.quantity_shipped > 0) {
        return Err(bad_request(format!("Outbound order {id} has shipped items and cannot be cancelled")));
    }
    order.outbound_order_status_id = OBO_STATUS_CANCELLED;
    let result: Vec<Value> = order
        .order_items
        .iter_mut()
        .map(|i| {
            let released = std::mem::take(&mut i.quantity_claimed);
            i.is_active = false;
            json!({"outbound_order_item_id": i.outbound_order_item_id, "unclaimed_stock": released})
        })
        .collect();
    ctx.events.push((OUTBOUND_ORDER_CHANGED, order.webhook_payload()));
    Ok(ok(json!({"result": result})))
}

fn set_delivered(ctx: &mut Ctx, id: i64, delivered: bool) -> ApiResult {
    let item = ctx.data.stock_items.get_mut(&id).ok_or_else(|| not_found(format!("Stock item {id} not found")))?;
    if !item.is_shipped {
        return Err(bad_request(format!("Stock item {id} is not shipped")));
    }
    item.is_delivered = delivered;
    ctx.events.push((STOCK_ITEM_UPDATED, item.webhook_payload()));
    Ok(ok(json!({})))
}

fn locate_stock(ctx: &mut Ctx, body: &Value) -> ApiResult {
    let wanted = body.as_array().ok_or_else(|| bad_request("Body must be an array of {\"barcode\": ...} objects"))?;
    let matches = |s: &Value| {
        wanted.iter().any(|w| {
            w.get("barcode").and_then(Value::as_str).is_some_and(|b| s["barcode"] == b)
                || w.get("article_id").and_then(Value::as_str).is_some_and(|a| s["article_id"] == a)
        })
    };
    let stock: Vec<Value> = ctx.data.locator_stock.iter().filter(|s| matches(s)).cloned().collect();
    let stores: Vec<Value> = ctx.data.stores.iter().filter(|st| stock.iter().any(|s| s["store_id"] == st["store_id"])).cloned().collect();
    Ok(ok(json!({"stores": stores, "stock": stock})))
}

fn create_lead(ctx: &mut Ctx, body: &Value) -> ApiResult {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let store_id = text(body, "store_id");
    let known_store = ctx.data.stores.iter().chain(ctx.data.keys.iter().map(|k| &k["store"])).any(|s| s["store_id"] == store_id.as_str());
    if !known_store {
        return Err(bad_request(format!("Unknown store_id {store_id:?}")));
    }
    let lead_type = text(body, "type");
    if !LEAD_TYPES.contains(&lead_type.as_str()) {
        return Err(bad_request(format!("Invalid type {lead_type:?}")));
    }
    let status = body.get("status").and_then(Value::as_str).unwrap_or("open");
    if !LEAD_STATUSES.contains(&status) {
        return Err(bad_request(format!("Invalid status {status:?}")));
    }
    if text(body, "title").is_empty() {
        return Err(bad_request("title is required"));
    }
    let customer = body.get("customer").filter(|c| c.is_object()).ok_or_else(|| bad_request("customer is required"))?;
    if text(customer, "name").is_empty() {
        return Err(bad_request("customer.name is required"));
    }
    let flag = |k: &str| body["options"].get(k).and_then(Value::as_bool).unwrap_or(false);
    let nullable_text = |v: &Value, k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    let address_id = ctx.data.next_id();
    let customer_id = ctx.data.next_id();
    let uuid = uuid(address_id as u64, ctx.now_ms);
    let now = iso8601(ctx.now_ms);
    let lead = json!({
        "uuid": uuid,
        "store_id": store_id,
        "type": lead_type,
        "status": status,
        "title": text(body, "title"),
        "message": text(body, "message"),
        "costs_ex_vat_cents": body.get("costs_ex_vat_cents").and_then(Value::as_i64).unwrap_or(0),
        "options": {
            "test_ride_requested": flag("test_ride_requested"),
            "phone_call_requested": flag("phone_call_requested"),
            "finance_information_requested": flag("finance_information_requested"),
            "insurance_information_requested": flag("insurance_information_requested"),
        },
        "object": {
            "description": nullable_text(&body["object"], "description"),
            "object_id": nullable_text(&body["object"], "object_id"),
            "article_number": nullable_text(&body["object"], "article_number"),
            "barcode": nullable_text(&body["object"], "barcode"),
        },
        "exchange_object": {
            "exchange_description": text(&body["exchange_object"], "exchange_description"),
            "exchange_remarks": text(&body["exchange_object"], "exchange_remarks"),
        },
        "customer": {
            "customer_address_id": address_id,
            "address_type": "lead",
            "customer_id": customer_id,
            "is_business_address": customer.get("is_business_address").and_then(Value::as_bool).unwrap_or(false),
            "company_name": text(customer, "company_name"),
            "name": text(customer, "name"),
            "street": text(customer, "street"),
            "house_number": text(customer, "house_number"),
            "house_number_postfix": text(customer, "house_number_postfix"),
            "postal_code": text(customer, "postal_code"),
            "city": text(customer, "city"),
            "country_code": text(customer, "country_code"),
            "phone_number": text(customer, "phone_number"),
            "email": text(customer, "email"),
            "notes": text(customer, "notes"),
        },
        "created_at": now,
        "modified_at": now,
    });
    ctx.data.leads.insert(uuid.clone(), lead.clone());
    if ctx.echo_created_leads {
        let mut echo = body.clone();
        echo["uuid"] = json!(uuid);
        ctx.data.lead_echoes.insert(uuid, echo.clone());
        return Ok(ok(json!({"sales_lead": echo})));
    }
    Ok(ok(json!({"sales_lead": lead})))
}

/// The dealer has not acted yet (no costs apply): the lead may be cancelled.
pub fn lead_is_cancellable(status: &str) -> bool {
    matches!(status, "open" | "noticed")
}

/// Transitions the dealer side can make (through the control API).
pub fn lead_transition_allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("open", "noticed" | "accepted" | "declined" | "cancelled")
            | ("noticed", "accepted" | "declined" | "cancelled")
            | ("accepted", "succeeded" | "failed")
    )
}

fn cancel_lead(ctx: &mut Ctx, uuid: &str) -> ApiResult {
    let now = iso8601(ctx.now_ms);
    let lead = ctx.data.leads.get_mut(uuid).ok_or_else(|| not_found(format!("Lead {uuid} not found")))?;
    let status = lead["status"].as_str().unwrap_or_default().to_string();
    if !lead_is_cancellable(&status) {
        return Err(bad_request(format!("Lead {uuid} has status {status} and cannot be cancelled")));
    }
    lead["status"] = json!("cancelled");
    lead["modified_at"] = json!(now);
    Ok(ok(json!({})))
}

fn sales_order_mut(data: &mut Data, id: i64) -> Result<&mut SalesOrder, ApiError> {
    data.sales_orders.get_mut(&id).ok_or_else(|| not_found(format!("Sales order {id} not found")))
}

fn check_address(address: &Value) -> Result<bool, ApiError> {
    if address.is_null() {
        return Ok(false);
    }
    for k in ["name", "street", "house_number", "postal_code", "city", "country_code"] {
        if address.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(bad_request(format!("new_delivery_address.{k} is required")));
        }
    }
    Ok(true)
}

fn update_store(ctx: &mut Ctx, id: i64, body: &Value) -> ApiResult {
    let to_store = body.get("to_store_id").and_then(Value::as_i64).ok_or_else(|| bad_request("to_store_id is required"))?;
    body.get("default_mode").and_then(Value::as_i64).ok_or_else(|| bad_request("default_mode is required"))?;
    check_address(body.get("new_delivery_address").unwrap_or(&Value::Null))?;
    if !ctx.data.account_stores.contains(&to_store) {
        return Err(bad_request(format!("Unknown store {to_store}")));
    }
    let outbound: Vec<i64> =
        ctx.data.outbound_orders.values().filter(|o| o.sales_order_id == Some(id)).map(|o| o.outbound_order_id).collect();
    let store_order_id = ctx.data.next_id();
    let order = sales_order_mut(ctx.data, id)?;
    if order.cancelled || order.invoiced {
        return Err(bad_request(format!("Sales order {id} is {}", if order.cancelled { "cancelled" } else { "invoiced" })));
    }
    if order.store_id == to_store {
        return Err(bad_request(format!("Sales order {id} is already in store {to_store}")));
    }
    for item in body.get("items").and_then(Value::as_array).into_iter().flatten() {
        let item_id = item.get("item_id").and_then(Value::as_i64).unwrap_or(0);
        if !order.item_ids.contains(&item_id) {
            return Err(bad_request(format!("Item {item_id} is not part of sales order {id}")));
        }
    }
    order.store_id = to_store;
    if let Some(method) = body.get("new_delivery_method_id").and_then(Value::as_i64) {
        order.delivery_method_id = method;
    }
    Ok(ok(json!({
        "created_store_order_id": store_order_id,
        "affected_supplier_order_ids": [id * 10 + 1],
        "cancelled_store_order_ids": [],
        "cancelled_supplier_order_ids": [],
        "updated_outbound_order_ids": outbound,
    })))
}

fn update_delivery_method(ctx: &mut Ctx, id: i64, body: &Value) -> ApiResult {
    let method = body.get("new_delivery_method_id").and_then(Value::as_i64);
    let has_address = check_address(body.get("new_delivery_address").unwrap_or(&Value::Null))?;
    if method.is_none() && !has_address {
        return Err(bad_request("Nothing to update: give new_delivery_method_id and/or new_delivery_address"));
    }
    let address_id = has_address.then(|| ctx.data.next_id());
    let order = sales_order_mut(ctx.data, id)?;
    if order.cancelled {
        return Err(bad_request(format!("Sales order {id} is cancelled")));
    }
    if let Some(m) = method {
        order.delivery_method_id = m;
    }
    Ok(ok(json!({"created_delivery_address_id": address_id})))
}

fn cancel_sales_order(ctx: &mut Ctx, id: i64, q: &HashMap<String, String>) -> ApiResult {
    int_param(q, "cancellation_type_id")?;
    bool_param(q, "delete_exchange", false)?;
    let order = sales_order_mut(ctx.data, id)?;
    if order.cancelled {
        return Err(bad_request(format!("Sales order {id} is already cancelled")));
    }
    if order.invoiced {
        return Err(bad_request(format!("Sales order {id} is invoiced and cannot be cancelled")));
    }
    if order.amount_due_cents > 0 {
        return Err(bad_request(format!("Sales order {id} has a payment amount left and cannot be cancelled")));
    }
    order.cancelled = true;
    Ok(ok(json!({})))
}

fn create_invoices(ctx: &mut Ctx, id: i64, form: &HashMap<String, String>) -> ApiResult {
    for k in ["employee_id", "order_status_id"] {
        int_param(form, k)?;
    }
    let book = bool_param(form, "book", false)?;
    let messages = bool_param(form, "customer_messages", true)?;
    for (k, default) in [("allow_resend_messages", false), ("apply_service_vat_correction", true), ("split_items_as_text_on_default_customer_invoice", true)] {
        bool_param(form, k, default)?;
    }
    let first_number = ctx.data.next_id();
    let order = sales_order_mut(ctx.data, id)?;
    if order.cancelled {
        return Err(bad_request(format!("Sales order {id} is cancelled")));
    }
    if order.invoiced {
        return Err(bad_request(format!("Sales order {id} is already invoiced")));
    }
    order.invoiced = book;
    let invoices: Vec<Value> = order
        .customer_ids
        .iter()
        .enumerate()
        .map(|(i, customer)| {
            json!({
                "invoice_number": 20_000_000 + first_number * 10 + i as i64,
                "customer_id": customer,
                "sent_messages": {"phone_message": messages && i == 0, "email_message": false},
                "documents": [{"document_mime_type": "application/pdf", "document_base64": "JVBERi0xLjcKJQ=="}],
            })
        })
        .collect();
    Ok(ok(json!({"invoices": invoices})))
}
