//! Offers: NEW (0) until APPROVED (1, closed, becomes a customer order) or CANCELLED (2).
use super::data::*;
use super::orders::compare;
use super::{err, path_id, ApiResult, Reply, Req};
use axum::http::Method;
use serde_json::{json, Map, Value};

const OFFER_FIELDS: &[&str] = &["customerId", "customerName", "customerPhone", "customerEmail", "pricelistId", "currency", "description", "ourReference", "validDate"];
const MANDATORY: &[&str] = &["customerName", "customerPhone", "customerEmail", "pricelistId", "currency"];
const ROW_FIELDS: &[&str] = &["id", "articleId", "articleName", "amount", "salesPrice", "discountType", "discount", "purchasePrice", "purchaseCurrency", "supplierId", "supplierName"];
const ROW_MANDATORY: &[&str] = &["amount", "salesPrice", "purchasePrice", "purchaseCurrency"];

pub fn route(state: &mut State, req: &Req, m: &Method, segs: &[&str]) -> ApiResult<Option<Reply>> {
    let reply = match (m, segs) {
        (&Method::GET, ["offers"]) => list(state, req)?,
        (&Method::POST, ["offers"]) => add(state, req)?,
        (&Method::GET, ["offers", id]) => {
            let offer = offer(state, id)?;
            Reply::Json(response(vec![state.render_offer(offer)], 0, 1, 1, 0))
        }
        (&Method::PUT, ["offers", id]) => update(state, req, id)?,
        (&Method::PUT, ["offers", id, "cancel"]) => {
            let id = check_new(state, id)?;
            state.offers.get_mut(&id).unwrap().state = 2;
            Reply::Json(state.render_offer(&state.offers[&id]))
        }
        (&Method::PUT, ["offers", id, "approve"]) => approve(state, id)?,
        (&Method::PUT, ["offers", id, "send"]) => {
            let o = offer(state, id)?;
            if o.state == 2 {
                return Err(err(409, 900763, format!("offer {} is cancelled", o.id)));
            }
            let id = o.id;
            let email = req.json()?.get("email").and_then(Value::as_str).unwrap_or_default().to_string();
            if !email.contains('@') {
                return Err(bad(900763, "email", format!("{email:?} is not an e-mail address")));
            }
            state.emails.push(("offer".into(), id, email));
            Reply::Empty
        }
        (&Method::GET, [order_id, "offers"]) => {
            let order_id = path_id(order_id, 900701, "customer order")?;
            state.order(order_id)?;
            let offers: Vec<Value> = state.offers.values().filter(|o| o.customer_order_id == Some(order_id)).map(|o| state.render_offer(o)).collect();
            let n = offers.len() as i64;
            Reply::Json(response(offers, 0, 1, n, 0))
        }
        _ => return Ok(None),
    };
    Ok(Some(reply))
}

fn response(offers: Vec<Value>, page: i64, pages: i64, count: i64, since: i64) -> Value {
    json!({"page": page, "pages": pages, "pageSize": offers.len(), "offersCount": count, "since": since, "offers": offers})
}

fn offer<'a>(state: &'a State, id: &str) -> ApiResult<&'a Offer> {
    let id = path_id(id, 900761, "offer")?;
    state.offers.get(&id).ok_or_else(|| err(404, 900761, format!("offer {id} not found")))
}

/// Only a NEW offer may change.
fn check_new(state: &State, id: &str) -> ApiResult<i64> {
    let o = offer(state, id)?;
    if o.state != 0 {
        return Err(err(409, 900763, format!("offer {} is closed (state {}); only NEW offers change", o.id, o.state)));
    }
    Ok(o.id)
}

fn list(state: &State, req: &Req) -> ApiResult<Reply> {
    let since = req.q_int("since", 0)?;
    let wanted = req.q_int("state", -1)?;
    if ![-1, 0, 1, 2].contains(&wanted) {
        return Err(bad(900101, "state", format!("state {wanted} is not allowed; allowed values: -1,0,1,2")));
    }
    let sort = req.q_enum("sort_column", &["id", "customer", "valid_date", "created_date", "state"], "id")?;
    let descending = req.q_enum("order", &["asc", "desc"], "desc")? == "desc";
    let query = req.q("query").map(str::to_lowercase);
    let mut offers: Vec<Value> = state
        .offers
        .values()
        .filter(|o| (wanted == -1 || o.state == wanted) && o.updated_ms >= since)
        .map(|o| state.render_offer(o))
        .filter(|o| query.as_ref().is_none_or(|q| ["customerName", "description", "offerId"].iter().any(|k| o[k].to_string().to_lowercase().contains(q.as_str()))))
        .collect();
    let key = match sort.as_str() {
        "customer" => "customerName",
        "valid_date" => "validDate",
        "created_date" => "createdDate",
        "state" => "state",
        _ => "offerId",
    };
    offers.sort_by(|a, b| compare(&a[key], &b[key]).then(compare(&a["offerId"], &b["offerId"])));
    if descending {
        offers.reverse();
    }
    let count = offers.len() as i64;
    let (p, pages, offers) = page(offers, req.q_int("page", 0)?, req.q_int("limit", 50)?)?;
    Ok(Reply::Json(response(offers, p, pages, count, since)))
}

/// Copy and check the writable fields; `new` applies the POST rules.
/// New rows come back without an id; `give_row_ids` gives them one.
fn apply(state: &State, doc: &mut Map<String, Value>, rows: &mut Vec<Map<String, Value>>, body: &Value, new: bool) -> ApiResult<()> {
    let code = if new { 900762 } else { 900763 };
    let body = body.as_object().ok_or_else(|| bad(code, "", "the body must be an Offer object"))?;
    for &key in OFFER_FIELDS {
        if let Some(v) = body.get(key) {
            doc.insert(key.into(), v.clone());
        }
    }
    if new {
        if let Some(missing) = MANDATORY.iter().find(|k| doc.get(**k).is_none_or(Value::is_null)) {
            return Err(bad(code, missing, format!("{missing} is mandatory")));
        }
    }
    if let Some(c) = doc.get("customerId").and_then(Value::as_i64) {
        if !state.customers.contains_key(&c) {
            return Err(bad(code, "customerId", format!("customer {c} does not exist")));
        }
    }
    if let Some(c) = doc.get("currency").and_then(Value::as_str) {
        if !CURRENCIES.contains(&c) {
            return Err(bad(code, "currency", format!("currency {c:?} does not exist")));
        }
    }
    if doc.get("validDate").is_some_and(|v| !v.is_null() && !v.is_i64()) {
        return Err(bad(code, "validDate", "validDate must be milliseconds since 1970"));
    }
    let Some(given) = body.get("rows").and_then(Value::as_array) else { return Ok(()) };
    // The list replaces the rows; rows with an id update an existing one.
    let mut out = Vec::new();
    for (i, r) in given.iter().enumerate() {
        let r = r.as_object().ok_or_else(|| bad(code, "rows", "a row must be an object"))?;
        let mut row = match r.get("id").and_then(Value::as_i64) {
            Some(id) => rows.iter().find(|x| x.get("id").and_then(Value::as_i64) == Some(id)).cloned()
                .ok_or_else(|| bad(code, &format!("rows[{i}].id"), format!("offer has no row {id}")))?,
            None => {
                for key in ROW_MANDATORY {
                    if r.get(*key).is_none_or(Value::is_null) {
                        return Err(bad(code, &format!("rows[{i}].{key}"), format!("{key} is mandatory for a new row")));
                    }
                }
                Map::new()
            }
        };
        for &key in ROW_FIELDS.iter().filter(|k| **k != "id") {
            if let Some(v) = r.get(key) {
                row.insert(key.into(), v.clone());
            }
        }
        if let Some(a) = row.get("articleId").and_then(Value::as_str) {
            let article = state.articles.get(a).ok_or_else(|| bad(code, &format!("rows[{i}].articleId"), format!("article {a:?} does not exist")))?;
            row.entry("articleName").or_insert(json!(article.name));
        }
        out.push(row);
    }
    *rows = out;
    Ok(())
}

fn add(state: &mut State, req: &Req) -> ApiResult<Reply> {
    let body = req.json()?;
    let (mut doc, mut rows) = (Map::new(), Vec::new());
    apply(state, &mut doc, &mut rows, &body, true)?;
    give_row_ids(state, &mut rows);
    let id = state.next_id();
    let now = state.now();
    state.offers.insert(id, Offer { id, state: 0, doc, rows, created_ms: now, updated_ms: now, customer_order_id: None });
    Ok(Reply::Json(state.render_offer(&state.offers[&id])))
}

fn give_row_ids(state: &mut State, rows: &mut [Map<String, Value>]) {
    for row in rows.iter_mut().filter(|r| !r.contains_key("id")) {
        row.insert("id".into(), json!(state.next_id()));
    }
}

fn update(state: &mut State, req: &Req, id: &str) -> ApiResult<Reply> {
    let id = check_new(state, id)?;
    let body = req.json()?;
    let (mut doc, mut rows) = (state.offers[&id].doc.clone(), state.offers[&id].rows.clone());
    apply(state, &mut doc, &mut rows, &body, false)?;
    give_row_ids(state, &mut rows);
    let now = state.now();
    let o = state.offers.get_mut(&id).unwrap();
    o.doc = doc;
    o.rows = rows;
    o.updated_ms = now;
    Ok(Reply::Json(state.render_offer(&state.offers[&id])))
}

/// Approval closes the offer and makes its rows a NEW customer order.
fn approve(state: &mut State, id: &str) -> ApiResult<Reply> {
    let id = check_new(state, id)?;
    let offer = &state.offers[&id];
    let Some(customer) = offer.doc.get("customerId").and_then(Value::as_i64) else {
        return Err(bad(900763, "customerId", "an offer needs an existing customer to become a customer order"));
    };
    let rows: Vec<Map<String, Value>> = offer
        .rows
        .iter()
        .map(|r| {
            let mut row = Map::new();
            match r.get("articleId") {
                Some(a) => {
                    row.insert("articleId".into(), a.clone());
                    row.insert("orderedAmount".into(), r.get("amount").cloned().unwrap_or(json!(1.0)));
                    row.insert("piecePrice".into(), r.get("salesPrice").cloned().unwrap_or(json!(0.0)));
                    for k in ["discountType", "discount"] {
                        if let Some(v) = r.get(k) {
                            row.insert(k.into(), v.clone());
                        }
                    }
                }
                None => {
                    row.insert("description".into(), r.get("articleName").cloned().unwrap_or(json!("")));
                }
            }
            row
        })
        .collect();
    let mut doc = Map::new();
    doc.insert("customerId".into(), json!(customer));
    for k in ["currency", "pricelistId", "ourReference"] {
        if let Some(v) = offer.doc.get(k) {
            doc.insert(k.into(), v.clone());
        }
    }
    let now = state.now();
    doc.insert("orderDate".into(), json!(now));
    doc.insert("deliveryDate".into(), json!(now));
    let order_id = state.next_id();
    let mut order = Order { id: order_id, state: NEW, doc, rows: vec![], updated_ms: now, delivered_ms: None, drop_shipment: false };
    for row in rows {
        state.add_row(&mut order, row);
    }
    state.orders.insert(order_id, order);
    let o = state.offers.get_mut(&id).unwrap();
    o.state = 1;
    o.customer_order_id = Some(order_id);
    o.updated_ms = now;
    Ok(Reply::Json(state.render_offer(&state.offers[&id])))
}
