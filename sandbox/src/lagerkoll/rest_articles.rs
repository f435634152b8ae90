//! Rest articles: what open customer orders still wait for, per supplier or purchase order.
use super::classes::REST_ORDER_ARTICLE;
use super::data::*;
use super::orders::compare;
use super::{err, path_id, ApiResult, Reply, Req};
use axum::http::Method;
use serde_json::{json, Value};

/// Orders that still expect deliveries.
const OPEN: &[i64] = &[NEW, READY_FOR_PACKING, PACKING, PACKED, PARTLY_SENT];

pub fn route(state: &mut State, req: &Req, m: &Method, segs: &[&str]) -> ApiResult<Option<Reply>> {
    if m != Method::GET {
        return Ok(None);
    }
    let articles: Vec<String> = match segs {
        ["rest_articles", "supplier", id] => {
            let id = path_id(id, 900721, "supplier")?;
            if !state.suppliers.contains_key(&id) {
                return Err(err(404, 900721, format!("supplier {id} not found")));
            }
            state.articles.values().filter(|a| a.supplier_id == Some(id)).map(|a| a.id.to_string()).collect()
        }
        ["rest_articles", "purchaseorder", id] => {
            let id = path_id(id, 900721, "purchase order")?;
            let po = state.purchase_orders.get(&id).ok_or_else(|| err(404, 900721, format!("purchase order {id} not found")))?;
            po.articles.iter().map(|(a, _)| a.clone()).collect()
        }
        _ => return Ok(None),
    };
    let descending = req.q_enum("order", &["asc", "desc"], "asc")? == "desc";
    let sort = req.q_enum("sort_column", &["deliveryDate", "available"], "deliveryDate")?;
    let mut rest: Vec<Value> = articles.iter().filter_map(|a| rest_article(state, a)).collect();
    let key = if sort == "available" { "available" } else { "date" };
    rest.sort_by(|a, b| compare(&a[key], &b[key]).then(compare(&a["id"], &b["id"])));
    if descending {
        rest.reverse();
    }
    let count = rest.len();
    let limit = req.q_int("limit", 50)?;
    let (p, pages, rest) = page(rest, req.q_int("page", 0)?, limit)?;
    Ok(Some(Reply::Json(json!({"pages": pages, "page": p, "pageSize": limit, "articlesCount": count, "articles": rest}))))
}

/// The RestOrderArticle of one article, if any open order still waits for it.
fn rest_article(state: &State, article: &str) -> Option<Value> {
    let a = state.articles.get(article)?;
    let mut orders = Vec::new();
    let mut deliver = 0.0;
    let mut oldest: Option<i64> = None;
    for o in state.orders.values().filter(|o| OPEN.contains(&o.state)) {
        let missing: f64 = o
            .rows
            .iter()
            .filter(|r| r.get("articleId").and_then(Value::as_str) == Some(article))
            .map(|r| num(r.get("orderedAmount")) - num(r.get("deliveredAmount")))
            .filter(|m| *m > 0.0)
            .sum();
        if missing <= 0.0 {
            continue;
        }
        deliver += missing;
        let date = o.doc.get("deliveryDate").and_then(Value::as_i64);
        oldest = match (oldest, date) { (Some(x), Some(y)) => Some(x.min(y)), (x, y) => x.or(y) };
        let customer = o.doc.get("customerId").and_then(Value::as_i64);
        orders.push(json!({
            "id": o.id,
            "displayId": o.doc.get("externalDisplayOrderId").and_then(Value::as_str).map(str::to_string).unwrap_or(o.id.to_string()),
            "state": o.state.to_string(),
            "customerId": customer,
            "customerName": customer.and_then(|c| state.customers.get(&c)).map(|c| c.name),
            "desiredDelivery": date,
            "reserved": missing.min(a.stock),
        }));
    }
    let rest = json!({"id": a.id, "name": a.name, "date": oldest, "deliver": deliver, "available": a.stock, "customerOrders": orders});
    (!orders.is_empty()).then(|| crate::shape::conform(REST_ORDER_ARTICLE, &rest))
}
