//! The simulator's in-memory warehouse. Records are kept as the JSON WICS
//! shows, so metafields and fields the docs do not list pass through.
use serde_json::{json, Value};

/// The customer number every record of the simulated account carries.
pub const CUSTOMER_NUMBER: i64 = 14;
pub const WAREHOUSE: &str = "WHS";

/// Order status codes and the descriptions WICS shows for them.
pub const ORDER_CREATED: (&str, &str) = ("00", "Aangemaakt");
pub const ORDER_SHIPPED: (&str, &str) = ("90", "Verzonden");
pub const ANNOUNCEMENT_CREATED: (&str, &str) = ("00", "Aangemaakt");
pub const ANNOUNCEMENT_RECEIVED: (&str, &str) = ("60", "Opgeslagen");

/// A quantity of one item at one location, under one EANSSCC barcode.
#[derive(Debug, Clone)]
pub struct StockLine {
    pub item_code: String,
    pub warehouse: String,
    pub location: String,
    pub eansscc: String,
    pub lot_number: String,
    pub best_before: Option<String>,
    pub quantity: i64,
    pub serial_numbers: Vec<String>,
}

/// A webhook subscription, scoped to the API user that made it.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: i64,
    pub apikey: String,
    pub topic: String,
    pub url: String,
}

#[derive(Debug, Default)]
pub struct State {
    pub announcements: Vec<Value>,
    pub receipts: Vec<Value>,
    pub orders: Vec<Value>,
    pub shipments: Vec<Value>,
    pub items: Vec<Value>,
    pub stock: Vec<StockLine>,
    pub subscriptions: Vec<Subscription>,
    next_number: i64,
    /// Topic and payload of every vendor-side event not yet handed to delivery.
    pub outbox: Vec<(String, Value)>,
}

impl State {
    pub fn new() -> Self {
        State { next_number: 1000, ..Default::default() }
    }

    /// The next WICS number (order, announcement, receipt, shipment, EANSSCC...).
    pub fn next_number(&mut self) -> i64 {
        self.next_number += 1;
        self.next_number
    }

    pub fn emit(&mut self, topic: &str, payload: Value) {
        self.outbox.push((topic.to_string(), payload));
    }

    pub fn item(&self, code: &str) -> Option<&Value> {
        self.items.iter().find(|i| i["code"] == code)
    }

    pub fn item_description(&self, code: &str) -> Value {
        self.item(code).map(|i| i["description"].clone()).unwrap_or(Value::Null)
    }

    /// Stock of an item per warehouse: physical from stock lines, netto
    /// salable less what open orders reserve, announced from open announcements.
    pub fn stock_record(&self, code: &str) -> Value {
        let mut warehouses: Vec<String> = self.stock.iter().filter(|l| l.item_code == code).map(|l| l.warehouse.clone()).collect();
        warehouses.push(WAREHOUSE.into());
        warehouses.sort();
        warehouses.dedup();
        let per_warehouse: Vec<Value> = warehouses
            .iter()
            .map(|wh| {
                let physical: i64 = self.stock.iter().filter(|l| l.item_code == code && &l.warehouse == wh).map(|l| l.quantity).sum();
                let reserved = if wh == WAREHOUSE { self.reserved(code) } else { 0 };
                let announced = if wh == WAREHOUSE { self.announced(code) } else { 0 };
                json!({"announced": announced, "physical": physical, "nettoSalable": physical - reserved, "warehouseCode": wh})
            })
            .collect();
        let total = |key: &str| per_warehouse.iter().map(|w| w[key].as_i64().unwrap_or(0)).sum::<i64>();
        json!({
            "itemCode": code,
            "itemDescription": self.item_description(code),
            "physical": total("physical"),
            "nettoSalable": total("nettoSalable"),
            "announced": total("announced"),
            "customerNumber": CUSTOMER_NUMBER,
            "warehouses": per_warehouse,
        })
    }

    /// The STOCK webhook's payload for an item.
    pub fn stock_event(&self, code: &str) -> Value {
        let mut record = self.stock_record(code);
        if let Some(map) = record.as_object_mut() {
            map.remove("warehouses");
            map.insert("stockKeeping".into(), Value::Null);
        }
        record
    }

    fn reserved(&self, code: &str) -> i64 {
        self.orders
            .iter()
            .filter(|o| o["statusCode"] != ORDER_SHIPPED.1)
            .flat_map(|o| o["lines"].as_array().cloned().unwrap_or_default())
            .filter(|l| l["itemCode"] == code)
            .map(|l| l["quantity"].as_i64().unwrap_or(0))
            .sum()
    }

    fn announced(&self, code: &str) -> i64 {
        self.announcements
            .iter()
            .filter(|a| a["statusCode"] == ANNOUNCEMENT_CREATED.0)
            .flat_map(|a| a["lines"].as_array().cloned().unwrap_or_default())
            .filter(|l| l["itemCode"] == code)
            .map(|l| l["quantityExpected"].as_i64().unwrap_or(0))
            .sum()
    }

    pub fn stock_detail(&self, line: &StockLine) -> Value {
        json!({
            "itemCode": line.item_code,
            "itemDescription": self.item_description(&line.item_code),
            "customerNr": CUSTOMER_NUMBER,
            "warehouseCode": line.warehouse,
            "location": line.location,
            "stockStatusCode": "31",
            "stockStatusDescription": "Vrij",
            "bestBefore": line.best_before,
            "lotNumber": line.lot_number,
            "quantitySKU": line.quantity,
            "skuCode": "ST",
            "quantityHU": line.quantity,
            "huCode": "ST",
            "eansscc": line.eansscc,
        })
    }

    /// Add `delta` of an item at a location (new EANSSCC when none is there)
    /// and emit STOCK and STOCKMUTATION. Returns the EANSSCC used.
    pub fn mutate_stock(&mut self, code: &str, delta: i64, location: &str, reason: (i64, &str), now_rfc3339: &str, serials: Vec<String>) -> String {
        let existing = self.stock.iter().position(|l| l.item_code == code && l.location == location);
        let index = match existing {
            Some(i) => i,
            None => {
                let eansscc = format!("WICS{}", self.next_number());
                self.stock.push(StockLine {
                    item_code: code.into(),
                    warehouse: WAREHOUSE.into(),
                    location: location.into(),
                    eansscc,
                    lot_number: String::new(),
                    best_before: None,
                    quantity: 0,
                    serial_numbers: Vec::new(),
                });
                self.stock.len() - 1
            }
        };
        let line = &mut self.stock[index];
        line.quantity += delta;
        if delta > 0 {
            line.serial_numbers.extend(serials);
        } else {
            line.serial_numbers.retain(|s| !serials.contains(s));
        }
        let line = line.clone();
        self.emit("STOCKMUTATION", json!({
            "EANSSCC": line.eansscc,
            "bestBeforeDate": line.best_before,
            "customerNumber": CUSTOMER_NUMBER,
            "hasSerialNumbers": !line.serial_numbers.is_empty(),
            "itemCode": code,
            "location": location,
            "lotNumber": line.lot_number,
            "quantity": delta,
            "reasonCode": reason.0,
            "reasonCodeDescription": reason.1,
            "registrationDate": now_rfc3339,
            "stockKeepingUnit": "ST",
            "stockStatus": 31,
            "typeMove": 99,
            "warehouseCode": line.warehouse,
        }));
        let stock = self.stock_event(code);
        self.emit("STOCK", stock);
        line.eansscc
    }

    /// Realistic sample data: cables with stock, one with serial numbers.
    pub fn seed(&mut self) {
        let items = [
            ("16080", "Jack Kabel 16080", "8710000160800", 40),
            ("16082", "Jack Kabel 1m", "8710000160824", 120),
            ("16084", "Speaker kabel", "8710000160848", 35),
            ("190130", "XLR Kabel", "8710001901306", 7),
            ("PEN001", "Pen blauw 001", "8710000000017", 2500),
        ];
        for (i, (code, description, barcode, quantity)) in items.into_iter().enumerate() {
            self.items.push(json!({
                "code": code, "internalDescription": description, "description": description,
                "itemGroup": "ALG", "defaultUnit": "ST", "assembled": false, "statusCode": "30", "barcode": barcode,
            }));
            let serials: Vec<String> = if code == "190130" { (1..=7).map(|n| format!("TB{n:02}AA")).collect() } else { Vec::new() };
            self.stock.push(StockLine {
                item_code: code.into(),
                warehouse: WAREHOUSE.into(),
                location: format!("AA0{}D4", i + 1),
                eansscc: format!("WICS05{i:02}"),
                lot_number: if code == "16082" { "654321".into() } else { String::new() },
                best_before: (code == "16082").then(|| "2026-11-11".into()),
                quantity,
                serial_numbers: serials,
            });
        }
    }
}

/// Every record whose fields match the query's filters (`field=value` or
/// `field[op]=value`), or the name of what could not be understood.
pub fn filter(records: Vec<Value>, query: &[(String, String)]) -> Result<Vec<Value>, String> {
    let mut conditions = Vec::new();
    for (key, value) in query {
        if key == "page" || key == "pageSize" {
            continue;
        }
        let (field, op) = match key.split_once('[') {
            Some((field, rest)) => (field, rest.strip_suffix(']').ok_or_else(|| format!("Invalid filter {key}"))?),
            None => (key.as_str(), "eq"),
        };
        if !["eq", "neq", "gt", "lt", "gte", "lte"].contains(&op) {
            return Err(format!("Unknown filter operator [{op}] on {field}"));
        }
        conditions.push((field.to_string(), op.to_string(), value.clone()));
    }
    Ok(records.into_iter().filter(|r| conditions.iter().all(|(f, op, v)| matches(&r[f.as_str()], op, v))).collect())
}

fn matches(field: &Value, op: &str, wanted: &str) -> bool {
    use std::cmp::Ordering;
    let ordering = match field {
        Value::Null => return op == "neq",
        Value::Number(n) => match (n.as_f64(), wanted.parse::<f64>()) {
            (Some(a), Ok(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
            _ => return op == "neq",
        },
        Value::Bool(b) => match wanted.parse::<bool>() {
            Ok(w) => b.cmp(&w),
            Err(_) => return op == "neq",
        },
        // Dates are yyyy-mm-dd, so text order is date order.
        Value::String(s) => match (s.parse::<f64>(), wanted.parse::<f64>()) {
            (Ok(a), Ok(b)) if !s.contains('-') => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
            _ => s.as_str().cmp(wanted),
        },
        other => other.to_string().as_str().cmp(wanted),
    };
    match op {
        "eq" => ordering == Ordering::Equal,
        "neq" => ordering != Ordering::Equal,
        "gt" => ordering == Ordering::Greater,
        "lt" => ordering == Ordering::Less,
        "gte" => ordering != Ordering::Less,
        _ => ordering != Ordering::Greater,
    }
}

/// The page the query asks for (default page 1 of 20).
pub fn page(records: Vec<Value>, query: &[(String, String)]) -> Result<Vec<Value>, String> {
    let number = |name: &str, default: usize| -> Result<usize, String> {
        match query.iter().find(|(k, _)| k == name) {
            None => Ok(default),
            Some((_, v)) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| format!("{name} must be a positive integer")),
        }
    };
    let (page, size) = (number("page", 1)?, number("pageSize", 20)?);
    Ok(records.into_iter().skip((page - 1).saturating_mul(size)).take(size).collect())
}


#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn operators_on_numbers_dates_and_text() {
        let records = vec![
            json!({"nettoSalable": 500, "receiptDate": "2022-04-17", "reference": "A"}),
            json!({"nettoSalable": 1000, "receiptDate": "2022-04-18", "reference": "B"}),
            json!({"nettoSalable": 2000, "receiptDate": "2022-04-19", "reference": "C"}),
        ];
        let refs = |query: &[(&str, &str)]| -> Vec<String> {
            filter(records.clone(), &q(query)).unwrap().iter().map(|r| r["reference"].as_str().unwrap().to_string()).collect()
        };
        assert_eq!(refs(&[("nettoSalable[gte]", "1000")]), ["B", "C"]);
        assert_eq!(refs(&[("nettoSalable[lt]", "1000")]), ["A"]);
        assert_eq!(refs(&[("receiptDate", "2022-04-18")]), ["B"]);
        assert_eq!(refs(&[("receiptDate[gte]", "2022-04-18"), ("reference[neq]", "C")]), ["B"]);
        assert!(filter(records, &q(&[("reference[like]", "A")])).is_err());
    }

    #[test]
    fn pages() {
        let records: Vec<Value> = (0..45).map(|i| json!(i)).collect();
        assert_eq!(page(records.clone(), &[]).unwrap().len(), 20);
        assert_eq!(page(records.clone(), &q(&[("page", "3")])).unwrap(), (40..45).map(|i| json!(i)).collect::<Vec<_>>());
        assert_eq!(page(records, &q(&[("page", "2"), ("pageSize", "40")])).unwrap().len(), 5);
    }
}
