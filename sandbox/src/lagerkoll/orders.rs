//! Customer orders: reads, creation, rows, and the order state machine.
use super::data::*;
use super::{err, err_field, path_id, ApiResult, Reply, Req};
use axum::http::Method;
use serde_json::{json, Map, Value};

/// Writable CustomerOrder fields (state only on POST, products through rows).
const ORDER_FIELDS: &[&str] = &[
    "externalOrderId", "externalDisplayOrderId", "webshopOrderId", "customerId", "customerOrderNumber", "administrationFee",
    "currency", "currencyRate", "comments", "deliveryAddress1", "deliveryAddress2", "deliveryZipCode", "deliveryCity",
    "deliveryCountry", "deliveryDate", "deliveryName", "deliveryEmail", "freight", "orderDate", "ourReference", "phone1",
    "phone2", "remarks", "deliveryTerm", "paymentTerm", "vatIncluded", "wayOfDelivery", "yourReference", "pricelistId",
    "externalInvoiceReference1", "externalInvoiceReference2", "costCenter",
];
const DATE_FIELDS: &[&str] = &["deliveryDate", "orderDate"];
const NUMBER_FIELDS: &[&str] = &["administrationFee", "currencyRate", "freight"];
/// Writable CustomerOrderProduct fields.
const ROW_FIELDS: &[&str] = &[
    "articleId", "rowIndex", "orderedAmount", "pickedAmount", "deliveredAmount", "piecePrice", "totalPrice", "discountType",
    "discount", "description", "costCenter", "isBundled", "weight", "batches", "stockWarning", "availableAmount",
];
const ROW_NUMBERS: &[&str] = &["orderedAmount", "pickedAmount", "deliveredAmount", "piecePrice", "totalPrice", "discount", "weight"];

/// The states each state change may start from (`delivered` only from sent
/// or freight booked, as documented).
pub fn allowed_from(action: &str) -> &'static [i64] {
    match action {
        "ready_for_packing" => &[NEW],
        "packed" => &[READY_FOR_PACKING, PACKING],
        "freight_booked" => &[PACKED, PARTLY_SENT],
        "send" => &[READY_FOR_PACKING, PACKING, PACKED, PARTLY_SENT, FREIGHT_BOOKED],
        "delivered" => &[SENT, FREIGHT_BOOKED],
        "invoice" => &[DROP_SHIPMENT, PACKED, PARTLY_SENT, SENT, FREIGHT_BOOKED],
        "cancel" => &[NEW, READY_FOR_PACKING, PACKING, DROP_SHIPMENT, PACKED],
        "dropshipment" => &[NEW, READY_FOR_PACKING],
        "purchase_orders_only" => &[NEW, READY_FOR_PACKING, PACKING, PACKED],
        "dropshipment_cancel" => &[DROP_SHIPMENT],
        "rows" => &[NEW, READY_FOR_PACKING],
        _ => &[],
    }
}

fn check_from(state: &State, id: i64, action: &str, code: i64) -> ApiResult<()> {
    let current = state.order(id)?.state;
    let allowed = allowed_from(action);
    if allowed.contains(&current) {
        Ok(())
    } else {
        Err(err(409, code, format!("customer order {id} is in state {current}; `{action}` is allowed only from states {allowed:?}")))
    }
}

pub fn route(state: &mut State, req: &Req, m: &Method, segs: &[&str]) -> ApiResult<Option<Reply>> {
    let reply = match (m, segs) {
        (&Method::GET, []) => list(state, req, None, None)?,
        (&Method::POST, []) => add_order(state, req)?,
        (&Method::GET, ["external", ext]) => {
            let found = state.orders.values().find(|o| o.doc.get("externalOrderId").and_then(Value::as_str) == Some(ext));
            let order = found.ok_or_else(|| err(404, 900701, format!("no customer order with external id {ext:?}")))?;
            one(state, order)
        }
        (&Method::GET, ["article", rest @ ..]) if !rest.is_empty() => list(state, req, Some(rest.join("/")), None)?,
        (&Method::GET, ["state", s]) => {
            let s: i64 = s.parse().ok().filter(|s| ORDER_STATES.contains(s)).ok_or_else(|| err_field(400, 900101, "state", format!("state {s:?} is not allowed; allowed values: {ORDER_STATES:?}")))?;
            list(state, req, None, Some(s))?
        }
        (&Method::GET, ["cost", id]) => cost(state, path_id(id, 900701, "customer order")?)?,
        (&Method::PUT, [bulk @ ("ready_for_packing" | "invoice" | "send")]) => bulk_change(state, req, bulk)?,
        (&Method::GET, [id]) => {
            let id = path_id(id, 900701, "customer order")?;
            one(state, state.order(id)?)
        }
        (&Method::PUT, [id]) => update_order(state, req, path_id(id, 900701, "customer order")?)?,
        (&Method::GET, [id, "products"]) => {
            let order = state.order(path_id(id, 900701, "customer order")?)?;
            let products: Vec<Value> = order
                .rows
                .iter()
                .filter_map(|r| r.get("articleId").and_then(Value::as_str).and_then(|a| state.articles.get(a)))
                .map(|a| state.render_article(a))
                .collect();
            // The docs call it a list but show one Article: one product is
            // answered as the example shows it, several as a list of them.
            match <[Value; 1]>::try_from(products) {
                Ok([one]) => Reply::Json(one),
                Err(products) => Reply::Json(Value::Array(products)),
            }
        }
        (&Method::GET, [id, "purchase_orders"]) => {
            let id = path_id(id, 900701, "customer order")?;
            state.order(id)?;
            let ids: Vec<i64> = state.purchase_orders.values().filter(|p| p.customer_order_id == Some(id)).map(|p| p.id).collect();
            Reply::Json(state.purchase_orders_response(&ids))
        }
        (&Method::POST, [id, "product"]) => row_change(state, req, path_id(id, 900701, "customer order")?, RowOp::Add)?,
        (&Method::PUT, [id, "product"]) => row_change(state, req, path_id(id, 900701, "customer order")?, RowOp::Update)?,
        (&Method::PUT, [id, "product", "remove"]) => row_change(state, req, path_id(id, 900701, "customer order")?, RowOp::Remove)?,
        (&Method::POST, [id, "dropshipment"]) => drop_shipment(state, req, path_id(id, 900701, "customer order")?)?,
        (&Method::PUT, [id, "dropshipment", "cancel"]) => {
            let id = path_id(id, 900701, "customer order")?;
            check_from(state, id, "dropshipment_cancel", 900732)?;
            for po in state.purchase_orders.values_mut().filter(|p| p.customer_order_id == Some(id) && p.state == 0) {
                po.state = 4;
            }
            set_state(state, id, READY_FOR_PACKING);
            state.order_mut(id)?.drop_shipment = false;
            state.create_lists(id);
            one_order(state, id)?
        }
        (&Method::PUT, [id, "confirmation", "send"]) => {
            let id = path_id(id, 900701, "customer order")?;
            if state.order(id)?.state == CANCELLED {
                return Err(err(409, 900743, format!("customer order {id} is cancelled")));
            }
            let email = req.json()?.get("email").and_then(Value::as_str).unwrap_or_default().to_string();
            if !email.contains('@') {
                return Err(err_field(400, 900743, "email", format!("{email:?} is not an e-mail address")));
            }
            state.emails.push(("order_confirmation".into(), id, email));
            Reply::Empty
        }
        (&Method::PUT, [id, action]) => {
            let id = path_id(id, 900701, "customer order")?;
            change(state, req, id, action)?;
            one_order(state, id)?
        }
        _ => return Ok(None),
    };
    Ok(Some(reply))
}

/// Get-by-id answers a CustomerOrdersResponse holding the one order.
fn one(state: &State, order: &Order) -> Reply {
    let rendered = state.render_order(order);
    Reply::Json(json!({"page": 0, "pages": 1, "pageSize": 1, "ordersCount": 1, "since": 0,
        "totalCustomerOrderValue": rendered["orderValue"], "orders": [rendered]}))
}

fn one_order(state: &State, id: i64) -> ApiResult<Reply> {
    Ok(Reply::Json(state.render_order(state.order(id)?)))
}

fn set_state(state: &mut State, id: i64, to: i64) {
    let now = state.now();
    if let Some(o) = state.orders.get_mut(&id) {
        o.state = to;
        o.updated_ms = now;
    }
}

fn list(state: &State, req: &Req, article: Option<String>, in_state: Option<i64>) -> ApiResult<Reply> {
    let columns: &[&str] = match (&article, in_state) {
        (None, None) => &["id", "customer", "order_date", "delivery_date", "delivered_date", "state", "way_of_delivery", "order_value"],
        (Some(_), _) => &["id", "customer", "order_date", "delivery_date", "delivered_date", "state"],
        (None, Some(_)) => &["id", "delivery_date", "delivered_date"],
    };
    let sort = req.q_enum("sort_column", columns, "id")?;
    let descending = req.q_enum("order", &["asc", "desc"], "desc")? == "desc";
    let page_no = req.q_int("page", 0)?;
    let limit = req.q_int("limit", 50)?;
    let since = req.q_int("since", 0)?;
    let from = req.q_int("from", 0)?;
    let to = req.q_int("to", 0)?;
    let wanted_state = if article.is_none() && in_state.is_none() {
        let s = req.q_int("state", -1)?;
        if s != -1 && !ORDER_STATES.contains(&s) {
            return Err(err_field(400, 900101, "state", format!("state {s} is not allowed; allowed values: -1,{ORDER_STATES:?}")));
        }
        (s != -1).then_some(s)
    } else {
        in_state
    };
    let max_state = match req.q("max_state") { Some(_) => Some(req.q_int("max_state", 0)?), None => None };
    let customer = match req.q("customer_id") { Some(_) => Some(req.q_int("customer_id", 0)?), None => None };
    let query = req.q("query").map(str::to_lowercase);
    let batch = req.q("batch");
    let serial = req.q("serialnumber");

    let mut orders: Vec<Value> = state
        .orders
        .values()
        .filter(|o| wanted_state.is_none_or(|s| o.state == s))
        .filter(|o| max_state.is_none_or(|s| o.state <= s))
        .filter(|o| customer.is_none_or(|c| o.doc.get("customerId").and_then(Value::as_i64) == Some(c)))
        .filter(|o| o.updated_ms >= since)
        .filter(|o| {
            let date = o.doc.get("orderDate").and_then(Value::as_i64).unwrap_or(0);
            (from == 0 || date >= from) && (to == 0 || date <= to)
        })
        .filter(|o| {
            let Some(article) = &article else { return true };
            o.rows.iter().any(|r| {
                r.get("articleId").and_then(Value::as_str) == Some(article.as_str())
                    && batch.is_none_or(|b| has_batch(r, "batchId", b))
                    && serial.is_none_or(|s| has_batch(r, "serialNr", s))
            })
        })
        .map(|o| state.render_order(o))
        .filter(|o| {
            let Some(q) = &query else { return true };
            ["orderId", "customerName", "externalOrderId", "customerOrderNumber", "yourReference"]
                .iter()
                .any(|k| o.get(k).map(|v| v.to_string().to_lowercase().contains(q.as_str())).unwrap_or(false))
        })
        .collect();
    let key = match sort.as_str() {
        "customer" => "customerName",
        "order_date" => "orderDate",
        "delivery_date" => "deliveryDate",
        "delivered_date" => "deliveredDate",
        "state" => "state",
        "way_of_delivery" => "wayOfDelivery",
        "order_value" => "orderValue",
        _ => "orderId",
    };
    orders.sort_by(|a, b| compare(&a[key], &b[key]).then(compare(&a["orderId"], &b["orderId"])));
    if descending {
        orders.reverse();
    }
    let total_value: f64 = orders.iter().map(|o| o["orderValue"].as_f64().unwrap_or(0.0)).sum();
    let count = orders.len();
    let (page_no, pages, orders) = page(orders, page_no, limit)?;
    Ok(Reply::Json(json!({"page": page_no, "pages": pages, "pageSize": limit, "ordersCount": count, "since": since,
        "totalCustomerOrderValue": total_value, "orders": orders})))
}

fn has_batch(row: &Map<String, Value>, key: &str, wanted: &str) -> bool {
    row.get("batches").and_then(Value::as_array).into_iter().flatten().any(|b| b.get(key).and_then(Value::as_str) == Some(wanted))
}

pub fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    // Documented numbers may be strings ("state": "20"); they sort as numbers.
    let number = |v: &Value| v.as_f64().or_else(|| v.as_str()?.parse().ok());
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => a.as_str().unwrap_or("").cmp(b.as_str().unwrap_or("")),
    }
}

fn cost(state: &State, id: i64) -> ApiResult<Reply> {
    let order = state.order(id)?;
    let costs: Vec<Value> = order
        .rows
        .iter()
        .filter_map(|r| {
            let a = state.articles.get(r.get("articleId").and_then(Value::as_str)?)?;
            let delivered = num(r.get("deliveredAmount"));
            Some(json!({"articleId": a.id, "deliveredAmount": delivered, "totalCost": delivered * a.buy_price}))
        })
        .collect();
    Ok(Reply::Json(crate::shape::conform(super::classes::CUSTOMER_ORDER_COST, &json!({"orderId": id, "productCosts": costs}))))
}

/// Check and copy the writable order fields of `body` into `doc`.
fn apply_order_fields(state: &State, doc: &mut Map<String, Value>, body: &Map<String, Value>, code: i64, only: Option<&[&str]>) -> ApiResult<()> {
    for &key in ORDER_FIELDS {
        if only.is_some_and(|only| !only.contains(&key)) {
            continue;
        }
        let Some(value) = body.get(key) else { continue };
        if value.is_null() {
            doc.remove(key);
            continue;
        }
        let bad_type = |what: &str| bad(code, key, format!("{key} must be {what}, got {value}"));
        if DATE_FIELDS.contains(&key) && !value.is_i64() {
            return Err(bad_type("milliseconds since 1970"));
        }
        if NUMBER_FIELDS.contains(&key) && !value.is_number() {
            return Err(bad_type("a number"));
        }
        if key == "vatIncluded" && !value.is_boolean() {
            return Err(bad_type("a boolean"));
        }
        let text = value.as_str();
        let exists = match key {
            "customerId" => value.as_i64().is_some_and(|c| state.customers.contains_key(&c)),
            "currency" => text.is_some_and(|c| CURRENCIES.contains(&c)),
            "pricelistId" => value.as_i64().is_some_and(|p| PRICELISTS.contains(&p)),
            "wayOfDelivery" => text.is_some_and(|c| WAYS_OF_DELIVERY.iter().any(|(k, _)| *k == c)),
            "deliveryTerm" => text.is_some_and(|c| DELIVERY_TERMS.iter().any(|(k, _)| *k == c)),
            "paymentTerm" => text.is_some_and(|c| PAYMENT_TERMS.iter().any(|(k, _)| *k == c)),
            "costCenter" => value.as_i64().is_some_and(|c| c == -1 || COST_CENTERS.contains(&c)),
            _ => true,
        };
        if !exists {
            return Err(bad(code, key, format!("{key} {value} must point to an existing {key}")));
        }
        if key == "costCenter" && value.as_i64() == Some(-1) {
            doc.remove(key);
        } else {
            doc.insert(key.into(), value.clone());
        }
    }
    Ok(())
}

/// A row as the body gives it, checked; `existing` rows may omit the article.
fn check_row(state: &State, body: &Value, code: i64, new: bool) -> ApiResult<Map<String, Value>> {
    let obj = body.as_object().ok_or_else(|| bad(code, "products", "a row must be an object"))?;
    let mut row = Map::new();
    for &key in ROW_FIELDS {
        if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
            if ROW_NUMBERS.contains(&key) && !v.is_number() {
                return Err(bad(code, key, format!("{key} must be a number, got {v}")));
            }
            row.insert(key.into(), v.clone());
        }
    }
    let article = row.get("articleId").and_then(Value::as_str).map(str::to_string);
    match &article {
        Some(a) if !state.articles.contains_key(a.as_str()) => return Err(bad(code, "articleId", format!("article {a:?} does not exist"))),
        Some(_) if new && num(row.get("orderedAmount")) <= 0.0 => {
            return Err(bad(code, "orderedAmount", "orderedAmount is mandatory and must be positive for an article row"))
        }
        None if new && row.get("description").is_none() => {
            return Err(bad(code, "articleId", "articleId is mandatory unless the row is a free-text row"))
        }
        None if new => {
            // A free-text row: every field but the description is ignored.
            row.retain(|k, _| k == "description" || k == "rowIndex");
        }
        _ => {}
    }
    if let Some(t) = row.get("discountType") {
        if !matches!(t.as_str(), Some("PERCENT" | "AMOUNT")) {
            return Err(bad(code, "discountType", format!("discountType {t} is not allowed; allowed values: PERCENT, AMOUNT")));
        }
    }
    if let Some(c) = row.get("costCenter").and_then(Value::as_i64) {
        if !COST_CENTERS.contains(&c) {
            return Err(bad(code, "costCenter", format!("cost center {c} does not exist")));
        }
    }
    if let Some(batches) = row.get_mut("batches") {
        let list = batches.as_array_mut().ok_or_else(|| bad(code, "batches", "batches must be a list"))?;
        let known = article.as_deref().and_then(|a| state.articles.get(a));
        for b in list.iter_mut() {
            let id = b.get("batchId").and_then(Value::as_str);
            let serial = b.get("serialNr").and_then(Value::as_str);
            if id.is_none() && serial.is_none() {
                return Err(bad(code, "batches", "batch-id or serial-nr must be set"));
            }
            if let Some(a) = known {
                if !a.batches.iter().any(|k| (id.is_some() && k.batch_id == id) || (serial.is_some() && k.serial_nr == serial)) {
                    return Err(bad(code, "batches", format!("article {} has no batch/serial {:?}", a.id, id.or(serial))));
                }
            }
            let obj = b.as_object_mut().ok_or_else(|| bad(code, "batches", "a batch must be an object"))?;
            obj.entry("orderedAmount").or_insert(json!(1.0));
            obj.entry("pickedAmount").or_insert(json!(0.0));
            obj.entry("deliveredAmount").or_insert(json!(0.0));
        }
    }
    Ok(row)
}

fn add_order(state: &mut State, req: &Req) -> ApiResult<Reply> {
    let body = req.json()?;
    let body = body.as_object().ok_or_else(|| bad(900702, "", "the body must be a CustomerOrder object"))?;
    if body.get("customerId").is_none_or(Value::is_null) {
        return Err(bad(900702, "customerId", "customerId is mandatory"));
    }
    let initial = body.get("state").map(|s| s.as_i64().filter(|s| ORDER_STATES.contains(s)).ok_or_else(|| {
        bad(900702, "state", format!("state {s} is not allowed; allowed values: {ORDER_STATES:?}"))
    })).transpose()?.unwrap_or(NEW);
    let now = state.now();
    let mut doc = Map::new();
    apply_order_fields(state, &mut doc, body, 900702, None)?;
    doc.entry("orderDate").or_insert(json!(now));
    let order_date = doc["orderDate"].clone();
    doc.entry("deliveryDate").or_insert(order_date);
    let rows = body
        .get("products")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| check_row(state, r, 900702, true))
        .collect::<ApiResult<Vec<_>>>()?;
    let id = state.next_id();
    let mut order = Order { id, state: NEW, doc, rows: vec![], updated_ms: now, delivered_ms: None, drop_shipment: false };
    for row in rows {
        state.add_row(&mut order, row);
    }
    state.orders.insert(id, order);
    if initial != NEW {
        set_state(state, id, initial);
        if initial == READY_FOR_PACKING {
            state.create_lists(id);
        }
    }
    one_order(state, id)
}

fn update_order(state: &mut State, req: &Req, id: i64) -> ApiResult<Reply> {
    let body = req.json()?;
    let body = body.as_object().ok_or_else(|| bad(900703, "", "the body must be a CustomerOrder object"))?.clone();
    let current = state.order(id)?.state;
    if current == CANCELLED {
        return Err(err(409, 900703, format!("customer order {id} is cancelled and closed")));
    }
    // Once invoiced only the external invoice references change; the rest is ignored.
    let only: Option<&[&str]> = (current == INVOICED).then_some(&["externalInvoiceReference1", "externalInvoiceReference2"]);
    let mut doc = state.order(id)?.doc.clone();
    apply_order_fields(state, &mut doc, &body, 900703, only)?;
    let now = state.now();
    let order = state.order_mut(id)?;
    order.doc = doc;
    order.updated_ms = now;
    if only.is_none() {
        if let Some(products) = body.get("products").and_then(Value::as_array) {
            if !allowed_from("rows").contains(&current) {
                return Err(err(409, 900703, format!("rows of customer order {id} cannot change in state {current}")));
            }
            for p in products {
                let op = if p.get("id").is_some_and(|v| !v.is_null()) { RowOp::Update } else { RowOp::Add };
                apply_row(state, id, p, op)?;
            }
            state.rebuild_new_lists(id);
        }
    }
    one_order(state, id)
}

#[derive(Clone, Copy, PartialEq)]
enum RowOp {
    Add,
    Update,
    Remove,
}

fn row_change(state: &mut State, req: &Req, id: i64, op: RowOp) -> ApiResult<Reply> {
    check_from(state, id, "rows", 900703)?;
    let body = req.json()?;
    apply_row(state, id, &body, op)?;
    state.rebuild_new_lists(id);
    one_order(state, id)
}

fn apply_row(state: &mut State, id: i64, body: &Value, op: RowOp) -> ApiResult<()> {
    let row = check_row(state, body, 900703, op == RowOp::Add)?;
    let mut order = state.orders.remove(&id).ok_or_else(|| err(404, 900701, format!("Customer order {id} not found")))?;
    let result = (|| {
        if op == RowOp::Add {
            state.add_row(&mut order, row);
            return Ok(());
        }
        let row_id = body.get("id").and_then(Value::as_i64);
        let index = body.get("rowIndex").and_then(Value::as_i64);
        let pos = order
            .rows
            .iter()
            .position(|r| match row_id {
                Some(rid) => r.get("id").and_then(Value::as_i64) == Some(rid),
                None => index.is_some() && r.get("rowIndex").and_then(Value::as_i64) == index,
            })
            .ok_or_else(|| bad(900703, "id", format!("customer order {id} has no row with id {row_id:?} / rowIndex {index:?}")))?;
        if op == RowOp::Remove {
            order.rows.remove(pos);
        } else {
            for (k, v) in row {
                order.rows[pos].insert(k, v);
            }
        }
        Ok(())
    })();
    order.updated_ms = state.now();
    state.orders.insert(id, order);
    result
}

/// Open picking lists are finished: what nobody picked counts as picked in full.
fn finish_open_lists(state: &mut State, id: i64) {
    let now = state.now();
    for l in state.lists.values_mut().filter(|l| l.order_id == id && matches!(l.state, LIST_NEW | LIST_PACKING)) {
        for p in &mut l.products {
            if p.picked == 0.0 {
                p.picked = p.ordered;
            }
        }
        l.state = LIST_PACKED;
        l.finished_ms = Some(now);
    }
    sync_picked(state, id);
}

/// Order rows show what their picking lists picked.
pub fn sync_picked(state: &mut State, id: i64) {
    let picked: Vec<(i64, f64)> = state.lists.values().filter(|l| l.order_id == id).flat_map(|l| l.products.iter().map(|p| (p.row_id, p.picked))).collect();
    if let Some(order) = state.orders.get_mut(&id) {
        for row in &mut order.rows {
            let rid = row.get("id").and_then(Value::as_i64);
            let total: f64 = picked.iter().filter(|(r, _)| Some(*r) == rid).map(|(_, n)| n).sum();
            if picked.iter().any(|(r, _)| Some(*r) == rid) {
                row.insert("pickedAmount".into(), json!(total));
            }
        }
    }
}

fn lists_done_or_finish(state: &mut State, req: &Req, id: i64) -> ApiResult<()> {
    if req.q_bool("finish_pickinglists", false)? {
        finish_open_lists(state, id);
        return Ok(());
    }
    let open = state.order_lists(id).iter().filter(|l| matches!(l.state, LIST_NEW | LIST_PACKING)).count();
    if open > 0 {
        return Err(err_field(409, 900703, "finish_pickinglists", format!("customer order {id} has {open} unfinished picking list(s); finish them or set finish_pickinglists=true")));
    }
    Ok(())
}

/// Split what was not picked/delivered into a new NEW order.
fn create_rest_order(state: &mut State, id: i64, done_key: &str) -> i64 {
    let order = &state.orders[&id];
    let rest: Vec<Map<String, Value>> = order
        .rows
        .iter()
        .filter(|r| r.get("articleId").is_some())
        .filter_map(|r| {
            let missing = num(r.get("orderedAmount")) - num(r.get(done_key));
            (missing > 0.0).then(|| json!({"articleId": r["articleId"], "orderedAmount": missing, "piecePrice": r.get("piecePrice")}).as_object().cloned().unwrap())
        })
        .collect();
    if rest.is_empty() {
        return 0;
    }
    let mut doc = order.doc.clone();
    doc.remove("externalOrderId");
    let now = state.now();
    let new_id = state.next_id();
    let mut new = Order { id: new_id, state: NEW, doc, rows: vec![], updated_ms: now, delivered_ms: None, drop_shipment: false };
    for row in rest {
        state.add_row(&mut new, row);
    }
    state.orders.insert(new_id, new);
    // The original keeps only what is done.
    for row in &mut state.orders.get_mut(&id).unwrap().rows {
        if row.get("articleId").is_some() {
            let done = num(row.get(done_key));
            row.insert("orderedAmount".into(), json!(done));
        }
    }
    new_id
}

/// One state change of one order.
fn change(state: &mut State, req: &Req, id: i64, action: &str) -> ApiResult<()> {
    match action {
        "ready_for_packing" => {
            check_from(state, id, action, 900703)?;
            set_state(state, id, READY_FOR_PACKING);
            state.create_lists(id);
        }
        "packed" => {
            check_from(state, id, action, 900703)?;
            lists_done_or_finish(state, req, id)?;
            if req.q_bool("create_rest_order", false)? {
                create_rest_order(state, id, "pickedAmount");
            }
            set_state(state, id, PACKED);
        }
        "freight_booked" => {
            check_from(state, id, action, 900703)?;
            set_state(state, id, FREIGHT_BOOKED);
        }
        "send" => {
            check_from(state, id, action, 900703)?;
            let from = state.order(id)?.state;
            let has_lists = !state.order_lists(id).is_empty();
            if matches!(from, READY_FOR_PACKING | PACKING) {
                lists_done_or_finish(state, req, id)?;
            } else if req.q_bool("finish_pickinglists", false)? {
                finish_open_lists(state, id);
            }
            let rest = req.q_bool("create_rest_order", false)?;
            let order = state.order_mut(id)?;
            for row in order.rows.iter_mut().filter(|r| r.get("articleId").is_some()) {
                // A partly sent order's second sending, or one without picking lists, delivers all.
                let deliver = if from == PARTLY_SENT || !has_lists { num(row.get("orderedAmount")) } else { num(row.get("pickedAmount")) };
                let delivered = num(row.get("deliveredAmount")).max(deliver);
                row.insert("deliveredAmount".into(), json!(delivered));
            }
            let complete = order.rows.iter().filter(|r| r.get("articleId").is_some()).all(|r| num(r.get("deliveredAmount")) >= num(r.get("orderedAmount")));
            let to = if complete {
                SENT
            } else if rest {
                create_rest_order(state, id, "deliveredAmount");
                SENT
            } else {
                PARTLY_SENT
            };
            state.close_lists(id);
            set_state(state, id, to);
        }
        "delivered" => {
            check_from(state, id, action, 900703)?;
            let now = state.now();
            let order = state.order_mut(id)?;
            order.delivered_ms = Some(now);
            for row in order.rows.iter_mut().filter(|r| r.get("articleId").is_some()) {
                let ordered = num(row.get("orderedAmount"));
                row.insert("deliveredAmount".into(), json!(ordered));
            }
            state.close_lists(id);
            set_state(state, id, SENT);
        }
        "invoice" => {
            check_from(state, id, action, 900703)?;
            req.q_enum("type", &["invoice", "cash", "card", "ag"], "invoice")?;
            let value = state.order_value(state.order(id)?);
            if value.abs() < 0.005 {
                return Err(err(409, 900752, format!("Customer order {id} value is 0 and cannot be invoiced")));
            }
            set_state(state, id, INVOICED);
        }
        "cancel" => {
            check_from(state, id, action, 900703)?;
            state.close_lists(id);
            for po in state.purchase_orders.values_mut().filter(|p| p.customer_order_id == Some(id) && p.state == 0) {
                po.state = 4;
            }
            set_state(state, id, CANCELLED);
        }
        _ => return Err(err(404, 900101, format!("no endpoint PUT /v1/customer_orders/{id}/{action}"))),
    }
    Ok(())
}

/// The documented bulk changes; every order is checked before any changes.
fn bulk_change(state: &mut State, req: &Req, action: &str) -> ApiResult<Reply> {
    let body = req.json()?;
    let ids: Vec<i64> = body
        .as_array()
        .ok_or_else(|| bad(900703, "", "the body must be a JSON array of customer order ids"))?
        .iter()
        .map(|v| v.as_i64().ok_or_else(|| bad(900703, "", format!("{v} is not a customer order id"))))
        .collect::<ApiResult<_>>()?;
    if ids.is_empty() {
        return Err(bad(900703, "", "no customer order ids given"));
    }
    for id in &ids {
        check_from(state, *id, action, 900703)?;
    }
    for id in &ids {
        change(state, req, *id, action)?;
    }
    if action == "invoice" {
        let orders: Vec<Value> = ids.iter().map(|id| state.render_order(&state.orders[id])).collect();
        let total: f64 = orders.iter().map(|o| o["orderValue"].as_f64().unwrap_or(0.0)).sum();
        return Ok(Reply::Json(json!({"page": 0, "pages": 1, "pageSize": orders.len(), "ordersCount": orders.len(), "since": 0,
            "totalCustomerOrderValue": total, "orders": orders})));
    }
    // Documented as answering one CustomerOrder: the last one changed.
    one_order(state, *ids.last().unwrap())
}

fn drop_shipment(state: &mut State, req: &Req, id: i64) -> ApiResult<Reply> {
    let full = req.q_bool("is_dropshipment", true)?;
    check_from(state, id, if full { "dropshipment" } else { "purchase_orders_only" }, 900732)?;
    let needs: Vec<(String, f64)> = state
        .order(id)?
        .rows
        .iter()
        .filter_map(|r| Some((r.get("articleId")?.as_str()?.to_string(), num(r.get("orderedAmount")))))
        .filter(|(a, _)| state.articles.get(a.as_str()).is_some_and(|a| !a.stock_place.is_empty()))
        .collect();
    if needs.is_empty() {
        return Err(err(409, 900732, format!("customer order {id} has no stock articles to drop ship")));
    }
    let ids = state.create_purchase_orders(id, needs, 900732)?;
    if full {
        state.lists.retain(|_, l| !(l.order_id == id && l.state != LIST_CLOSED));
        state.order_mut(id)?.drop_shipment = true;
        set_state(state, id, DROP_SHIPMENT);
    }
    Ok(Reply::Json(state.purchase_orders_response(&ids)))
}
