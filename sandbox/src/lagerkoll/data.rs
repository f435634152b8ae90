//! The simulator's in-memory state: reference data (customers, articles,
//! suppliers, users), orders, offers, picking lists, purchase orders, and how
//! they are rendered as the documented classes.
use super::classes;
use super::{err, err_field, ApiError, ApiResult, Options, Req};
use crate::shape::conform;
use crate::{Clock, RollingWindow};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub const NEW: i64 = 0;
pub const READY_FOR_PACKING: i64 = 5;
pub const PACKING: i64 = 10;
pub const DROP_SHIPMENT: i64 = 15;
pub const PACKED: i64 = 20;
pub const PARTLY_SENT: i64 = 30;
pub const SENT: i64 = 40;
/// Not named by the documentation; listed among the state filters. Used for "freight booked".
pub const FREIGHT_BOOKED: i64 = 45;
pub const CANCELLED: i64 = 50;
pub const INVOICED: i64 = 60;
pub const ORDER_STATES: [i64; 10] = [NEW, READY_FOR_PACKING, PACKING, DROP_SHIPMENT, PACKED, PARTLY_SENT, SENT, FREIGHT_BOOKED, CANCELLED, INVOICED];

pub const LIST_NEW: i64 = 0;
pub const LIST_PACKING: i64 = 10;
pub const LIST_PACKED: i64 = 20;
pub const LIST_CLOSED: i64 = 30;

pub struct Customer {
    pub id: i64,
    pub name: &'static str,
    pub email: &'static str,
    pub phone: &'static str,
    pub address: &'static str,
    pub zip: &'static str,
    pub city: &'static str,
    pub country: &'static str,
    pub currency: &'static str,
}

pub struct Batch {
    pub batch_id: Option<&'static str>,
    pub serial_nr: Option<&'static str>,
    pub barcode: &'static str,
    pub amount: f64,
    pub best_before: Option<i64>,
}

pub struct Article {
    pub id: &'static str,
    pub name: &'static str,
    pub price: f64,
    pub buy_price: f64,
    pub vat: f64,
    pub stock: f64,
    pub supplier_id: Option<i64>,
    pub barcode: &'static str,
    pub stock_place: &'static str,
    pub weight: f64,
    /// (unit id, name, conversion, barcode) besides the base unit "st".
    pub units: Vec<(i64, &'static str, f64, &'static str)>,
    pub batches: Vec<Batch>,
}

pub struct Order {
    pub id: i64,
    pub state: i64,
    /// The writable CustomerOrder fields as last set.
    pub doc: Map<String, Value>,
    pub rows: Vec<Map<String, Value>>,
    pub updated_ms: i64,
    pub delivered_ms: Option<i64>,
    pub drop_shipment: bool,
}

pub struct PickProduct {
    pub row_id: i64,
    pub article_id: String,
    pub ordered: f64,
    pub picked: f64,
    pub batches: Value,
}

pub struct PickList {
    pub id: i64,
    pub order_id: i64,
    pub state: i64,
    pub worker_id: Option<i64>,
    pub worker_name: Option<String>,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub products: Vec<PickProduct>,
}

pub struct Offer {
    pub id: i64,
    pub state: i64,
    pub doc: Map<String, Value>,
    pub rows: Vec<Map<String, Value>>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub customer_order_id: Option<i64>,
}

pub struct PurchaseOrder {
    pub id: i64,
    pub supplier_id: i64,
    pub customer_order_id: Option<i64>,
    pub state: i64,
    /// (article id, ordered amount)
    pub articles: Vec<(String, f64)>,
    pub created_ms: i64,
}

pub struct State {
    pub opts: Options,
    pub clock: Clock,
    pub window: RollingWindow,
    pub requests: u64,
    pub violations: u64,
    pub peak_window_hits: u32,
    pub force_xml: bool,
    pub emails: Vec<(String, i64, String)>,
    pub served_files: Vec<(String, String, Vec<u8>)>,
    pub customers: BTreeMap<i64, Customer>,
    pub articles: BTreeMap<&'static str, Article>,
    pub suppliers: BTreeMap<i64, &'static str>,
    pub orders: BTreeMap<i64, Order>,
    pub offers: BTreeMap<i64, Offer>,
    pub lists: BTreeMap<i64, PickList>,
    pub purchase_orders: BTreeMap<i64, PurchaseOrder>,
    next_id: i64,
}

pub const CURRENCIES: &[&str] = &["SEK", "EUR", "NOK", "DKK", "USD"];
pub const PRICELISTS: &[i64] = &[-1, 1, 2];
pub const WAYS_OF_DELIVERY: &[(&str, &str)] = &[("POST", "PostNord paket"), ("DHL", "DHL Freight"), ("PICKUP", "Hämtas i butik")];
pub const DELIVERY_TERMS: &[(&str, &str)] = &[("FVL", "Fritt vårt lager"), ("FCA", "Free carrier")];
pub const PAYMENT_TERMS: &[(&str, &str)] = &[("10", "10 dagar netto"), ("30", "30 dagar netto"), ("K", "Kontant")];
pub const COST_CENTERS: &[i64] = &[100, 200];

fn customers() -> BTreeMap<i64, Customer> {
    [
        Customer { id: 1, name: "Cykelboden AB", email: "order@cykelboden.se", phone: "+46 8 123 45", address: "Storgatan 1", zip: "111 22", city: "Stockholm", country: "SE", currency: "SEK" },
        Customer { id: 2, name: "Fjellsykkel AS", email: "innkjop@fjellsykkel.no", phone: "+47 22 33 44", address: "Karl Johans gate 5", zip: "0154", city: "Oslo", country: "NO", currency: "NOK" },
        Customer { id: 3, name: "Radhaus GmbH", email: "", phone: "+49 30 555", address: "Hauptstraße 9", zip: "10115", city: "Berlin", country: "DE", currency: "EUR" },
    ]
    .into_iter()
    .map(|c| (c.id, c))
    .collect()
}

fn articles() -> BTreeMap<&'static str, Article> {
    let a = |id, name, price, buy_price, stock, supplier_id, barcode, stock_place, weight| Article {
        id, name, price, buy_price, vat: 25.0, stock, supplier_id, barcode, stock_place, weight, units: vec![], batches: vec![],
    };
    let mut list = vec![
        a("A-100", "Cykelhjälm Urban", 499.0, 210.0, 40.0, Some(10), "7350000000017", "A-01-1", 0.4),
        a("A-200", "Cykellås Kätting", 349.0, 120.0, 3.0, Some(10), "7350000000024", "A-02-3", 1.2),
        a("BIKE/26", "Stadscykel 26\"", 5995.0, 3100.0, 6.0, Some(20), "7350000000031", "C-10-1", 16.0),
        a("T-700", "Däck 700x35", 299.0, 95.0, 0.0, Some(20), "7350000000048", "B-04-2", 0.6),
        a("SERV-1", "Service grund", 695.0, 0.0, 0.0, None, "", "", 0.0),
    ];
    list[0].units.push((2, "kartong", 10.0, "7350000000918"));
    list[1].batches.push(Batch { batch_id: Some("L-2024-01"), serial_nr: None, barcode: "BL202401", amount: 3.0, best_before: None });
    list[2].batches.push(Batch { batch_id: None, serial_nr: Some("SN-26-0001"), barcode: "SN260001", amount: 1.0, best_before: None });
    list[2].batches.push(Batch { batch_id: None, serial_nr: Some("SN-26-0002"), barcode: "SN260002", amount: 1.0, best_before: None });
    list.into_iter().map(|a| (a.id, a)).collect()
}

impl State {
    pub fn new(opts: Options, clock: Clock) -> State {
        let window = RollingWindow::new(opts.limit_per_window, opts.window_ms);
        State {
            opts,
            clock,
            window,
            requests: 0,
            violations: 0,
            peak_window_hits: 0,
            force_xml: false,
            emails: Vec::new(),
            served_files: Vec::new(),
            customers: customers(),
            articles: articles(),
            suppliers: [(10, "Nordic Bike Parts AB"), (20, "Velo Import GmbH")].into_iter().collect(),
            orders: BTreeMap::new(),
            offers: BTreeMap::new(),
            lists: BTreeMap::new(),
            purchase_orders: BTreeMap::new(),
            next_id: 1000,
        }
    }

    /// Back to reference data only, counters at zero (the clock keeps its offset).
    pub fn reset(&mut self) {
        let opts = self.opts.clone();
        *self = State::new(opts, self.clock.clone());
    }

    pub fn set_limit(&mut self, limit: u32, window_ms: i64) {
        self.opts.limit_per_window = limit;
        self.opts.window_ms = window_ms;
        self.window = RollingWindow::new(limit, window_ms);
        self.peak_window_hits = 0;
    }

    pub fn stats(&self) -> Value {
        json!({
            "requests": self.requests,
            "violations": self.violations,
            "peak_window_hits": self.peak_window_hits,
            "limit_per_window": self.window.limit,
            "window_ms": self.window.window_ms,
            "now_ms": self.clock.now_ms(),
            "orders": self.orders.len(),
            "offers": self.offers.len(),
            "picking_lists": self.lists.len(),
            "purchase_orders": self.purchase_orders.len(),
            "emails": self.emails.len(),
            "xml": self.force_xml,
        })
    }

    pub fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// `store` + `api_key`, or `store` + `user_id` + `user_token`.
    pub fn authenticate(&self, req: &Req) -> ApiResult<()> {
        let store_ok = req.header("store").is_some_and(|s| s == self.opts.store);
        let key_ok = req.header("api_key").is_some_and(|k| k == self.opts.api_key);
        let user_ok = match (req.header("user_id"), req.header("user_token")) {
            (Some(id), Some(token)) => self.opts.users.iter().any(|u| u.id.to_string() == id && u.token == token),
            _ => false,
        };
        if store_ok && (key_ok || user_ok) {
            Ok(())
        } else {
            Err(err(401, 900001, "Credentials don't match"))
        }
    }

    /// A user id (from a header or path) that must belong to a known user.
    pub fn user_name(&self, id: &str) -> Option<(i64, String)> {
        self.opts.users.iter().find(|u| u.id.to_string() == id).map(|u| (u.id, u.name.clone()))
    }

    /// Sample orders in several states and an offer, for `spoke sandbox`.
    pub fn seed(&mut self) {
        let now = self.now();
        for (customer, rows, state) in [
            (1, vec![("A-100", 2.0), ("A-200", 1.0)], NEW),
            (2, vec![("BIKE/26", 1.0)], READY_FOR_PACKING),
            (3, vec![("T-700", 4.0), ("A-100", 1.0)], NEW),
        ] {
            let id = self.next_id();
            let rows: Vec<Map<String, Value>> = rows
                .into_iter()
                .map(|(a, n)| json!({"articleId": a, "orderedAmount": n}).as_object().cloned().unwrap())
                .collect();
            let mut doc = Map::new();
            doc.insert("customerId".into(), json!(customer));
            doc.insert("externalOrderId".into(), json!(format!("WEB-{id}")));
            doc.insert("orderDate".into(), json!(now));
            doc.insert("deliveryDate".into(), json!(now + 3 * 86_400_000));
            let mut order = Order { id, state: NEW, doc, rows: vec![], updated_ms: now, delivered_ms: None, drop_shipment: false };
            for row in rows {
                self.add_row(&mut order, row);
            }
            self.orders.insert(id, order);
            if state == READY_FOR_PACKING {
                self.orders.get_mut(&id).unwrap().state = READY_FOR_PACKING;
                self.create_lists(id);
            }
        }
        let id = self.next_id();
        let mut doc = Map::new();
        for (k, v) in [("customerId", json!(1)), ("customerName", json!("Cykelboden AB")), ("customerPhone", json!("+46 8 123 45")),
            ("customerEmail", json!("order@cykelboden.se")), ("pricelistId", json!(1)), ("currency", json!("SEK")),
            ("description", json!("Vårkampanj hjälmar")), ("validDate", json!(now + 30 * 86_400_000))] {
            doc.insert(k.into(), v);
        }
        let rows = vec![json!({"id": self.next_id(), "articleId": "A-100", "amount": 20.0, "salesPrice": 449.0, "purchasePrice": 210.0, "purchaseCurrency": "SEK"})
            .as_object().cloned().unwrap()];
        self.offers.insert(id, Offer { id, state: 0, doc, rows, created_ms: now, updated_ms: now, customer_order_id: None });
    }

    // ----- orders -----

    pub fn order(&self, id: i64) -> ApiResult<&Order> {
        self.orders.get(&id).ok_or_else(|| err(404, 900701, format!("Customer order {id} not found")))
    }

    pub fn order_mut(&mut self, id: i64) -> ApiResult<&mut Order> {
        self.orders.get_mut(&id).ok_or_else(|| err(404, 900701, format!("Customer order {id} not found")))
    }

    /// Give a new row its id, row index and documented defaults.
    pub fn add_row(&mut self, order: &mut Order, mut row: Map<String, Value>) {
        let id = self.next_id();
        row.insert("id".into(), json!(id));
        let index = order.rows.iter().filter_map(|r| r.get("rowIndex").and_then(Value::as_i64)).max().unwrap_or(0) + 1;
        row.entry("rowIndex").or_insert(json!(index));
        row.entry("pickedAmount").or_insert(json!(0.0));
        row.entry("deliveredAmount").or_insert(json!(0.0));
        row.entry("discountType").or_insert(json!("AMOUNT"));
        row.entry("discount").or_insert(json!(0.0));
        if let Some(a) = row.get("articleId").and_then(Value::as_str).and_then(|a| self.articles.get(a)) {
            row.entry("piecePrice").or_insert(json!(a.price));
            row.entry("description").or_insert(json!(a.name));
            row.entry("weight").or_insert(json!(a.weight));
        }
        order.rows.push(row);
    }

    pub fn create_lists(&mut self, order_id: i64) {
        let products: Vec<PickProduct> = self.orders[&order_id]
            .rows
            .iter()
            .filter_map(|r| {
                let article = r.get("articleId").and_then(Value::as_str)?;
                Some(PickProduct {
                    row_id: r["id"].as_i64().unwrap_or(0),
                    article_id: article.to_string(),
                    ordered: num(r.get("orderedAmount")),
                    picked: 0.0,
                    batches: r.get("batches").cloned().unwrap_or(json!([])),
                })
            })
            .collect();
        // Free-text rows are not picked: an order of only those gets no list.
        if products.is_empty() {
            return;
        }
        let id = self.next_id();
        self.lists.insert(id, PickList { id, order_id, state: LIST_NEW, worker_id: None, worker_name: None, started_ms: None, finished_ms: None, products });
    }

    /// Picking lists still NEW are rebuilt when rows change.
    pub fn rebuild_new_lists(&mut self, order_id: i64) {
        let had = self.lists.values().any(|l| l.order_id == order_id && l.state == LIST_NEW);
        self.lists.retain(|_, l| !(l.order_id == order_id && l.state == LIST_NEW));
        if had {
            self.create_lists(order_id);
        }
    }

    pub fn order_lists(&self, order_id: i64) -> Vec<&PickList> {
        self.lists.values().filter(|l| l.order_id == order_id).collect()
    }

    pub fn close_lists(&mut self, order_id: i64) {
        let now = self.now();
        for l in self.lists.values_mut().filter(|l| l.order_id == order_id && l.state != LIST_CLOSED) {
            l.state = LIST_CLOSED;
            l.finished_ms.get_or_insert(now);
        }
    }

    fn row_totals(&self, row: &Map<String, Value>) -> (f64, f64, f64) {
        let amount = num(row.get("orderedAmount"));
        let total = row.get("totalPrice").and_then(Value::as_f64).unwrap_or(num(row.get("piecePrice")) * amount);
        let discount = match row.get("discountType").and_then(Value::as_str) {
            Some("PERCENT") => total * num(row.get("discount")) / 100.0,
            _ => num(row.get("discount")),
        };
        let vat = row.get("articleId").and_then(Value::as_str).and_then(|a| self.articles.get(a)).map(|a| a.vat).unwrap_or(0.0);
        (total, discount, vat)
    }

    pub fn order_value(&self, order: &Order) -> f64 {
        let rows: f64 = order.rows.iter().map(|r| {
            let (total, discount, _) = self.row_totals(r);
            total - discount
        }).sum();
        rows + num(order.doc.get("freight")) + num(order.doc.get("administrationFee"))
    }

    /// The documented CustomerOrder.
    pub fn render_order(&self, order: &Order) -> Value {
        let mut doc = order.doc.clone();
        let customer = order.doc.get("customerId").and_then(Value::as_i64).and_then(|c| self.customers.get(&c));
        doc.insert("orderId".into(), json!(order.id));
        doc.insert("state".into(), json!(order.state));
        doc.insert("storeGroupId".into(), json!(1));
        if let Some(c) = customer {
            doc.insert("customerName".into(), json!(c.name));
            for (key, value) in [("deliveryAddress1", c.address), ("deliveryZipCode", c.zip), ("deliveryCity", c.city), ("deliveryCountry", c.country), ("currency", c.currency), ("deliveryName", c.name)] {
                if doc.get(key).is_none_or(Value::is_null) {
                    doc.insert(key.into(), json!(value));
                }
            }
        }
        doc.entry("vatIncluded").or_insert(json!(true));
        doc.entry("pricelistId").or_insert(json!(-1));
        doc.entry("currencyRate").or_insert(json!(1.0));
        for (key, table) in [("wayOfDelivery", WAYS_OF_DELIVERY), ("deliveryTerm", DELIVERY_TERMS), ("paymentTerm", PAYMENT_TERMS)] {
            if let Some(code) = doc.get(key).and_then(Value::as_str) {
                let desc = table.iter().find(|(c, _)| *c == code).map(|(_, d)| *d);
                doc.insert(format!("{key}Desc"), json!(desc));
            }
        }
        if let Some(ms) = order.delivered_ms {
            doc.insert("deliveredDate".into(), json!(ms));
        }
        let (mut total, mut discount) = (0.0, 0.0);
        let mut in_stock = Vec::new();
        let products: Vec<Value> = order
            .rows
            .iter()
            .map(|r| {
                let (t, d, vat) = self.row_totals(r);
                total += t;
                discount += d;
                let mut row = r.clone();
                row.insert("totalPrice".into(), json!(t));
                row.insert("vat".into(), json!(vat));
                row.insert("storeId".into(), json!(self.opts.store.parse::<i64>().unwrap_or(0)));
                row.insert("storeGroupId".into(), json!(1));
                if let Some(a) = r.get("articleId").and_then(Value::as_str).and_then(|a| self.articles.get(a)) {
                    row.insert("availableAmount".into(), json!(a.stock));
                    row.insert("tg".into(), json!(if t > 0.0 { (t - d - a.buy_price * num(r.get("orderedAmount"))) / t * 100.0 } else { 0.0 }));
                    in_stock.push(a.stock >= num(r.get("orderedAmount")));
                }
                Value::Object(row)
            })
            .collect();
        doc.insert("products".into(), Value::Array(products));
        doc.insert("totalPrice".into(), json!(total));
        doc.insert("totalDiscount".into(), json!(discount));
        doc.insert("orderValue".into(), json!(self.order_value(order)));
        let status = if in_stock.iter().all(|s| *s) { 1 } else if in_stock.iter().any(|s| *s) { 2 } else { 3 };
        doc.insert("deliveryStatus".into(), json!(status));
        conform(classes::CUSTOMER_ORDER, &Value::Object(doc))
    }

    pub fn render_article(&self, a: &Article) -> Value {
        let batch = |b: &Batch| json!({"articleId": a.id, "articleName": a.name, "batchId": b.batch_id, "serialNr": b.serial_nr,
            "amount": b.amount, "reserved": 0.0, "barcode": b.barcode, "bestBefore": b.best_before});
        let batches: Vec<Value> = a.batches.iter().filter(|b| b.batch_id.is_some()).map(batch).collect();
        let serials: Vec<Value> = a.batches.iter().filter(|b| b.serial_nr.is_some()).map(batch).collect();
        let article = json!({
            "articleId": a.id, "name": a.name, "active": true, "bundled": false, "description": a.name, "category": "övrigt",
            "amount": a.stock, "reserved": 0.0, "barcode": a.barcode, "barcodeType": "EAN", "price": a.price,
            "supplier": a.supplier_id, "supplierName": a.supplier_id.and_then(|s| self.suppliers.get(&s)),
            "supplierBuyPrice": a.buy_price, "unit": "st", "vat": a.vat,
            "type": if a.stock_place.is_empty() { "Service" } else { "Stock" }, "stock": !a.stock_place.is_empty(),
            "weight": a.weight, "stockPlace": a.stock_place,
            "batches": {"totalBatches": batches.len(), "batches": batches, "totalSerialNumbers": serials.len(), "serialNumbers": serials},
            "availableAmount": a.stock,
        });
        conform(classes::ARTICLE, &article)
    }

    /// An article's units besides its base unit, as the documented ArticleUnit.
    fn article_units(&self, a: &Article) -> Vec<Value> {
        a.units
            .iter()
            .map(|(id, name, convert, barcode)| json!({"unit": {"id": id, "name": name}, "articleId": a.id, "storegroupId": 1, "convert": convert, "barcode": barcode}))
            .collect()
    }

    pub fn render_pick_product(&self, p: &PickProduct) -> Value {
        let a = self.articles.get(p.article_id.as_str());
        let product = json!({
            "customerOrderProductId": p.row_id, "articleId": p.article_id, "name": a.map(|a| a.name),
            "barcode": a.map(|a| a.barcode), "orderedAmount": p.ordered, "pickedAmount": p.picked,
            "stockAmount": a.map(|a| a.stock), "stockPlace": a.map(|a| a.stock_place),
            "unit": {"id": 1, "name": "st", "externalId": "st"}, "bundled": false, "parts": [], "batches": p.batches,
            "units": a.map(|a| self.article_units(a)).unwrap_or_default(),
            "orderedAmountWithUnits": format!("{} st", p.ordered),
        });
        conform(classes::PICKING_LIST_PRODUCT, &product)
    }

    pub fn render_list(&self, l: &PickList, sort: &str, descending: bool) -> Value {
        let order = self.orders.get(&l.order_id);
        let customer = order.and_then(|o| o.doc.get("customerId")).and_then(Value::as_i64).and_then(|c| self.customers.get(&c));
        let mut products: Vec<&PickProduct> = l.products.iter().collect();
        let key = |p: &PickProduct| -> String {
            let a = self.articles.get(p.article_id.as_str());
            match sort {
                "art" => p.article_id.clone(),
                "name" => a.map(|a| a.name.to_string()).unwrap_or_default(),
                _ => a.map(|a| a.stock_place.to_string()).unwrap_or_default(),
            }
        };
        products.sort_by_key(|p| key(p));
        if descending {
            products.reverse();
        }
        let list = json!({
            "id": l.id, "orderId": l.order_id, "storeId": self.opts.store.parse::<i64>().unwrap_or(0),
            "title": format!("Order {}", l.order_id), "state": l.state,
            "warehouseWorkerId": l.worker_id, "warehouseWorkerName": l.worker_name,
            "startedDate": l.started_ms, "finishedDate": l.finished_ms,
            "deliveryDate": order.and_then(|o| o.doc.get("deliveryDate")).cloned(),
            "customerName": customer.map(|c| c.name), "orderComment": order.and_then(|o| o.doc.get("comments")).cloned(),
            "products": products.iter().map(|p| self.render_pick_product(p)).collect::<Vec<_>>(),
        });
        conform(classes::PICKING_LIST, &list)
    }

    pub fn render_offer(&self, o: &Offer) -> Value {
        let mut doc = o.doc.clone();
        doc.insert("offerId".into(), json!(o.id));
        doc.insert("state".into(), json!(o.state));
        doc.insert("createdDate".into(), json!(o.created_ms));
        doc.insert("customerOrderId".into(), json!(o.customer_order_id));
        doc.insert("rate".into(), json!(1.0));
        let rows: Vec<Value> = o
            .rows
            .iter()
            .map(|r| {
                let mut row = r.clone();
                let amount = num(r.get("amount"));
                let price = num(r.get("salesPrice"));
                let discount = match r.get("discountType").and_then(Value::as_str) {
                    Some("PERCENT") => amount * price * num(r.get("discount")) / 100.0,
                    _ => num(r.get("discount")),
                };
                row.insert("totalPrice".into(), json!(amount * price - discount));
                row.insert("storeId".into(), json!(self.opts.store.parse::<i64>().unwrap_or(0)));
                row.insert("unit".into(), json!("st"));
                row.insert("unitId".into(), json!(1));
                row.insert("purchaseRate".into(), json!(1.0));
                row.entry("discountType").or_insert(json!("AMOUNT"));
                row.entry("discount").or_insert(json!(0.0));
                Value::Object(row)
            })
            .collect();
        doc.insert("rows".into(), Value::Array(rows));
        conform(classes::OFFER, &Value::Object(doc))
    }

    pub fn render_po(&self, po: &PurchaseOrder) -> Value {
        let articles: Vec<Value> = po
            .articles
            .iter()
            .map(|(id, amount)| {
                let a = self.articles.get(id.as_str());
                json!({"articleId": id, "articleName": a.map(|a| a.name), "orderedAmount": amount, "deliveredAmount": 0.0,
                    "availableAmount": a.map(|a| a.stock), "purchasePrice": a.map(|a| a.buy_price), "unit": "st",
                    "type": "Stock", "stock": true, "batches": [], "units": a.map(|a| self.article_units(a)).unwrap_or_default()})
            })
            .collect();
        let value: f64 = po.articles.iter().map(|(id, n)| n * self.articles.get(id.as_str()).map(|a| a.buy_price).unwrap_or(0.0)).sum();
        let po = json!({
            "id": po.id, "storeId": self.opts.store.parse::<i64>().unwrap_or(0), "poReference": format!("PO-{}", po.id),
            "supplierId": po.supplier_id, "supplierName": self.suppliers.get(&po.supplier_id), "state": po.state,
            "customerOrderId": po.customer_order_id, "deliveryDate": po.created_ms + 7 * 86_400_000,
            "productCount": po.articles.len(), "orderValue": value, "orderValueCurrency": "SEK", "orderValueStore": value,
            "isPickNPack": false, "articles": articles,
        });
        conform(classes::PURCHASE_ORDER, &po)
    }

    /// Purchase orders, one per supplier, for what `rows` need.
    pub fn create_purchase_orders(&mut self, customer_order_id: i64, needs: Vec<(String, f64)>, code: i64) -> ApiResult<Vec<i64>> {
        let mut by_supplier: BTreeMap<i64, Vec<(String, f64)>> = BTreeMap::new();
        for (article, amount) in needs {
            let supplier = self.articles.get(article.as_str()).and_then(|a| a.supplier_id).ok_or_else(|| {
                err_field(409, code, "articleId", format!("article {article} has no supplier"))
            })?;
            by_supplier.entry(supplier).or_default().push((article, amount));
        }
        let now = self.now();
        let mut ids = Vec::new();
        for (supplier_id, articles) in by_supplier {
            let id = self.next_id();
            self.purchase_orders.insert(id, PurchaseOrder { id, supplier_id, customer_order_id: Some(customer_order_id), state: 0, articles, created_ms: now });
            ids.push(id);
        }
        Ok(ids)
    }

    pub fn purchase_orders_response(&self, ids: &[i64]) -> Value {
        let orders: Vec<Value> = ids.iter().filter_map(|id| self.purchase_orders.get(id)).map(|po| self.render_po(po)).collect();
        json!({"page": 0, "pages": 1, "pageSize": orders.len(), "ordersCount": orders.len(), "orders": orders})
    }
}

pub fn num(v: Option<&Value>) -> f64 {
    v.and_then(|v| v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))).unwrap_or(0.0)
}

/// One page of `items` as (page, pages, items); `limit` must be positive.
pub fn page<T>(items: Vec<T>, page: i64, limit: i64) -> ApiResult<(i64, i64, Vec<T>)> {
    if page < 0 {
        return Err(err_field(400, 900101, "page", "page must be 0 or more"));
    }
    if limit < 1 {
        return Err(err_field(400, 900101, "limit", "limit must be 1 or more"));
    }
    let pages = (items.len() as i64 + limit - 1) / limit;
    let items = items.into_iter().skip((page * limit) as usize).take(limit as usize).collect();
    Ok((page, pages, items))
}

/// The field-named error of a body that breaks a documented rule.
pub fn bad(code: i64, field: &str, message: impl Into<String>) -> ApiError {
    err_field(400, code, field, message)
}
