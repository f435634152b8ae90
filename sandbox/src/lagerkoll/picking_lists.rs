//! Picking lists: NEW (0) → PACKING (10) → PACKED (20) → CLOSED (30).
use super::data::*;
use super::orders::sync_picked;
use super::{err, path_id, ApiResult, Reply, Req, Worker};
use axum::http::Method;
use serde_json::{json, Value};

pub fn route(state: &mut State, req: &Req, m: &Method, segs: &[&str]) -> ApiResult<Option<Reply>> {
    let reply = match (m, segs) {
        (&Method::GET, ["picking_lists"]) => yours(state, req)?,
        (&Method::GET, ["picking_lists", "new"]) => listing(state, req, |l, _| l.worker_id.is_none() && l.worker_name.is_none())?,
        (&Method::GET, ["picking_lists", "assigned"]) => {
            let skip_mine = req.q_bool("filter_your_lists", false)?;
            let me = worker_key(state, req)?;
            listing(state, req, move |l, _| {
                let assigned = l.worker_id.is_some() || l.worker_name.is_some();
                assigned && !(skip_mine && me.as_ref().is_some_and(|me| is_mine(l, me)))
            })?
        }
        (&Method::GET, [oid, "picking_lists"]) => {
            let oid = path_id(oid, 900701, "customer order")?;
            state.order(oid)?;
            let (sort, desc) = sorting(req, &["art", "stock_place"])?;
            let lists: Vec<Value> = state.order_lists(oid).iter().map(|l| state.render_list(l, &sort, desc)).collect();
            Reply::Json(response(lists, 0, 1, None))
        }
        (&Method::GET, [oid, "picking_lists", lid]) => {
            let id = list_id(state, oid, lid)?;
            let (sort, desc) = sorting(req, &["art", "name", "stock_place"])?;
            Reply::Json(response(vec![state.render_list(&state.lists[&id], &sort, desc)], 0, 1, None))
        }
        (&Method::GET, [oid, "picking_lists", lid, "articles"]) => {
            let id = list_id(state, oid, lid)?;
            let query = req.q("query").map(str::to_lowercase);
            let products: Vec<Value> = state.lists[&id]
                .products
                .iter()
                .filter(|p| query.as_ref().is_none_or(|q| matches_article(state, p, q)))
                .map(|p| state.render_pick_product(p))
                .collect();
            let (_, _, products) = page(products, req.q_int("page", 0)?, req.q_int("limit", 50)?)?;
            Reply::Json(json!({"products": products}))
        }
        (&Method::POST, [oid, "picking_lists", lid, "rest"]) => {
            let id = list_id(state, oid, lid)?;
            let list = &state.lists[&id];
            let order_id = list.order_id;
            let needs: Vec<(String, f64)> = list.products.iter().filter(|p| p.picked < p.ordered).map(|p| (p.article_id.clone(), p.ordered - p.picked)).collect();
            let ids = if needs.is_empty() { vec![] } else { state.create_purchase_orders(order_id, needs, 900713)? };
            Reply::Json(state.purchase_orders_response(&ids))
        }
        (&Method::PUT, [oid, "picking_lists", lid, "assign"]) => {
            let id = open_list(state, oid, lid)?;
            let (worker_id, name) = match req.worker() {
                None => return Err(bad(900713, "user_id", "this request requires a user_id or device_id header")),
                Some(Worker::User(u)) => {
                    let (uid, name) = state.user_name(&u).ok_or_else(|| bad(900713, "user_id", format!("user {u:?} does not exist")))?;
                    (Some(uid), name)
                }
                Some(Worker::Device(d)) => (None, format!("device {d}")),
            };
            assign(state, id, worker_id, name)?
        }
        (&Method::PUT, [oid, "picking_lists", lid, "assign", uid]) => {
            let id = open_list(state, oid, lid)?;
            let (uid, name) = state.user_name(uid).ok_or_else(|| bad(900713, "assigned_user_id", format!("user {uid:?} does not exist")))?;
            assign(state, id, Some(uid), name)?
        }
        (&Method::PUT, [oid, "picking_lists", lid, "finish"]) => {
            let id = open_list(state, oid, lid)?;
            let now = state.now();
            let l = state.lists.get_mut(&id).unwrap();
            l.state = LIST_PACKED;
            l.finished_ms = Some(now);
            Reply::Json(state.render_list(&state.lists[&id], "stock_place", false))
        }
        (&Method::PUT, [oid, "picking_lists", lid, "packing"]) => {
            let id = list_id(state, oid, lid)?;
            let l = &state.lists[&id];
            if l.state != LIST_NEW {
                return Err(err(409, 900713, format!("picking list {id} is in state {}; only a NEW list starts packing", l.state)));
            }
            let order_id = l.order_id;
            state.lists.get_mut(&id).unwrap().state = LIST_PACKING;
            if state.order(order_id)?.state == READY_FOR_PACKING {
                let now = state.now();
                let o = state.order_mut(order_id)?;
                o.state = PACKING;
                o.updated_ms = now;
            }
            Reply::Empty
        }
        (&Method::PUT, [oid, "picking_lists", lid, "pick"]) => {
            let id = open_list(state, oid, lid)?;
            let body = req.json()?;
            let given = body.get("products").and_then(Value::as_array).ok_or_else(|| bad(900713, "products", "the body must be {\"products\": [...]}"))?;
            let mut updates = Vec::new();
            for (i, p) in given.iter().enumerate() {
                let row = p.get("customerOrderProductId").and_then(Value::as_i64);
                let pos = state.lists[&id].products.iter().position(|x| Some(x.row_id) == row)
                    .ok_or_else(|| bad(900713, &format!("products[{i}].customerOrderProductId"), format!("picking list {id} has no product {row:?}")))?;
                updates.push((pos, checked_pick(&state.lists[&id].products[pos], p, &format!("products[{i}]"))?));
            }
            let mut changed = Vec::new();
            for (pos, (picked, batches)) in updates {
                let product = &mut state.lists.get_mut(&id).unwrap().products[pos];
                product.picked = picked;
                if let Some(b) = batches {
                    product.batches = b;
                }
                changed.push(pos);
            }
            let order_id = state.lists[&id].order_id;
            sync_picked(state, order_id);
            let products: Vec<Value> = changed.iter().map(|pos| state.render_pick_product(&state.lists[&id].products[*pos])).collect();
            Reply::Json(json!({"products": products}))
        }
        (&Method::PUT, [oid, "picking_lists", lid, "pick", article @ ..]) if !article.is_empty() => {
            let id = open_list(state, oid, lid)?;
            if req.worker().is_none() {
                return Err(bad(900713, "user_id", "this request requires a user_id or device_id header"));
            }
            let article = article.join("/");
            let pos = state.lists[&id].products.iter().position(|p| p.article_id == article)
                .ok_or_else(|| bad(900713, "articleId", format!("article {article:?} is not on picking list {id}")))?;
            let body = req.json()?;
            let (picked, batches) = checked_pick(&state.lists[&id].products[pos], &body, "")?;
            let product = &mut state.lists.get_mut(&id).unwrap().products[pos];
            product.picked = picked;
            if let Some(b) = batches {
                product.batches = b;
            }
            let order_id = state.lists[&id].order_id;
            sync_picked(state, order_id);
            Reply::Json(state.render_pick_product(&state.lists[&id].products[pos]))
        }
        _ => return Ok(None),
    };
    Ok(Some(reply))
}

fn response(lists: Vec<Value>, page: i64, pages: i64, page_size: Option<i64>) -> Value {
    let n = lists.len() as i64;
    json!({"page": page, "pages": pages, "pageSize": page_size.unwrap_or(n), "listsCount": n, "since": 0, "lists": lists})
}

fn sorting(req: &Req, columns: &[&str]) -> ApiResult<(String, bool)> {
    let sort = req.q_enum("sort_column", columns, "stock_place")?;
    let desc = req.q_enum("sort_order", &["asc", "desc"], "asc")? == "desc";
    Ok((sort, desc))
}

/// The list `lid` of order `oid`, or the documented 900711.
fn list_id(state: &State, oid: &str, lid: &str) -> ApiResult<i64> {
    let oid = path_id(oid, 900711, "customer order")?;
    let lid = path_id(lid, 900711, "picking list")?;
    match state.lists.get(&lid) {
        Some(l) if l.order_id == oid => Ok(lid),
        _ => Err(err(404, 900711, format!("customer order {oid} has no picking list {lid}"))),
    }
}

/// A list that can still be worked on (NEW or PACKING).
fn open_list(state: &State, oid: &str, lid: &str) -> ApiResult<i64> {
    let id = list_id(state, oid, lid)?;
    let l = &state.lists[&id];
    if !matches!(l.state, LIST_NEW | LIST_PACKING) {
        return Err(err(409, 900713, format!("picking list {id} is in state {} and can no longer change", l.state)));
    }
    Ok(id)
}

fn assign(state: &mut State, id: i64, worker_id: Option<i64>, name: String) -> ApiResult<Reply> {
    let now = state.now();
    let l = state.lists.get_mut(&id).unwrap();
    l.worker_id = worker_id;
    l.worker_name = Some(name);
    l.started_ms = Some(now);
    Ok(Reply::Json(state.render_list(&state.lists[&id], "stock_place", false)))
}

/// How the caller is recorded on lists assigned to them.
fn worker_key(state: &State, req: &Req) -> ApiResult<Option<String>> {
    Ok(match req.worker() {
        None => None,
        Some(Worker::User(u)) => Some(state.user_name(&u).map(|(_, n)| n).unwrap_or(u)),
        Some(Worker::Device(d)) => Some(format!("device {d}")),
    })
}

fn is_mine(l: &PickList, me: &str) -> bool {
    l.worker_name.as_deref() == Some(me)
}

fn yours(state: &State, req: &Req) -> ApiResult<Reply> {
    let me = worker_key(state, req)?;
    let unassigned = req.q_bool("return_unassigned_lists", true)?;
    let query = req.q("query").map(str::to_lowercase);
    let sort = match req.q("sort_column") { Some(_) => req.q_enum("sort_column", &["art", "stock_place"], "stock_place")?, None => "stock_place".into() };
    let desc = req.q_enum("sort_order", &["asc", "desc"], "asc")? == "desc";
    let lists: Vec<Value> = state
        .lists
        .values()
        .filter(|l| matches!(l.state, LIST_NEW | LIST_PACKING))
        .filter(|l| me.as_ref().is_some_and(|me| is_mine(l, me)) || (unassigned && l.worker_name.is_none()))
        .map(|l| state.render_list(l, &sort, desc))
        .filter(|l| query.as_ref().is_none_or(|q| ["title", "customerName", "orderId"].iter().any(|k| l[k].to_string().to_lowercase().contains(q.as_str()))))
        .collect();
    Ok(Reply::Json(response(lists, 0, 1, None)))
}

/// Open lists matching `keep`, one page of them.
fn listing(state: &State, req: &Req, keep: impl Fn(&PickList, &State) -> bool) -> ApiResult<Reply> {
    let (sort, desc) = if req.q("sort_order").is_some() || req.q("sort_column").is_some() { sorting(req, &["art", "stock_place"])? } else { ("stock_place".into(), false) };
    let lists: Vec<Value> = state
        .lists
        .values()
        .filter(|l| matches!(l.state, LIST_NEW | LIST_PACKING) && keep(l, state))
        .map(|l| state.render_list(l, &sort, desc))
        .collect();
    let count = lists.len() as i64;
    let limit = req.q_int("limit", 50)?;
    let (p, pages, lists) = page(lists, req.q_int("page", 0)?, limit)?;
    let mut out = response(lists, p, pages, Some(limit));
    out["listsCount"] = json!(count);
    Ok(Reply::Json(out))
}

fn matches_article(state: &State, p: &PickProduct, q: &str) -> bool {
    let a = state.articles.get(p.article_id.as_str());
    let mut texts = vec![p.article_id.to_lowercase()];
    if let Some(a) = a {
        texts.push(a.name.to_lowercase());
        texts.push(a.barcode.to_lowercase());
        texts.extend(a.batches.iter().map(|b| b.barcode.to_lowercase()));
        texts.extend(a.units.iter().map(|u| u.3.to_lowercase()));
    }
    texts.iter().any(|t| !t.is_empty() && t.contains(q))
}

/// The picked amount and batches of one product update, checked.
fn checked_pick(product: &PickProduct, body: &Value, path: &str) -> ApiResult<(f64, Option<Value>)> {
    let field = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
    let picked = body.get("pickedAmount").and_then(Value::as_f64).ok_or_else(|| bad(900713, &field("pickedAmount"), "pickedAmount is mandatory"))?;
    if picked < 0.0 || picked > product.ordered {
        return Err(bad(900713, &field("pickedAmount"), format!("pickedAmount {picked} must be between 0 and the ordered {}", product.ordered)));
    }
    let batches = body.get("batches").filter(|b| !b.is_null()).cloned();
    if let Some(list) = batches.as_ref().and_then(Value::as_array).filter(|l| !l.is_empty()) {
        let sum: f64 = list.iter().map(|b| num(b.get("pickedAmount"))).sum();
        if (sum - picked).abs() > 1e-9 {
            return Err(bad(900713, &field("batches"), format!("batches add up to {sum}, pickedAmount is {picked}")));
        }
    }
    Ok((picked, batches))
}
