//! The simulator's vendor-side records and their documented JSON shapes.
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Outbound order statuses the simulator uses (the docs only show 1).
pub const OBO_STATUS_OPEN: i64 = 1;
pub const OBO_STATUS_CANCELLED: i64 = 9;

/// A warehouse stock item: the stock list record plus what the webhook
/// payload tells about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StockItem {
    pub stock_item_id: i64,
    pub outbound_order_id: i64,
    pub outbound_order_item_id: i64,
    pub outbound_shipment_id: i64,
    pub outbound_shipment_item_id: i64,
    pub supplier: String,
    pub supplier_id: i64,
    pub article_id: String,
    pub barcode: String,
    pub description: String,
    pub frame_id: String,
    pub battery_id: String,
    pub key_id: String,
    pub lock_id: String,
    pub license_plate_number: String,
    pub purchase_price_cents: i64,
    pub purchase_price_cents_packinglist: i64,
    pub dealer_rrp_cents: i64,
    pub claimed_for_account_id: Option<i64>,
    pub claimed_for_store_id: Option<i64>,
    pub customer_id: i64,
    pub customer_order_id: i64,
    pub order_reference_id: String,
    pub order_reference_text: String,
    pub is_blocked_for_claiming: bool,
    pub is_claimed_for_obo: bool,
    pub is_sold_to_customer: bool,
    pub is_assembled: bool,
    pub is_shipped: bool,
    pub is_delivered: bool,
    pub is_deleted: bool,
    pub stocked_at: String,
    pub shipped_at: Option<String>,
    pub location: String,
    pub rack_name: String,
    pub labels: Vec<String>,
}

impl Default for StockItem {
    fn default() -> Self {
        StockItem {
            stock_item_id: 0,
            outbound_order_id: 0,
            outbound_order_item_id: 0,
            outbound_shipment_id: 0,
            outbound_shipment_item_id: 0,
            supplier: "Gazelle".into(),
            supplier_id: 2113,
            article_id: "G1539".into(),
            barcode: "8717231346426".into(),
            description: "Orange C8 HMB H8".into(),
            frame_id: String::new(),
            battery_id: String::new(),
            key_id: String::new(),
            lock_id: String::new(),
            license_plate_number: String::new(),
            purchase_price_cents: 0,
            purchase_price_cents_packinglist: 0,
            dealer_rrp_cents: 0,
            claimed_for_account_id: None,
            claimed_for_store_id: None,
            customer_id: 0,
            customer_order_id: 0,
            order_reference_id: String::new(),
            order_reference_text: String::new(),
            is_blocked_for_claiming: false,
            is_claimed_for_obo: false,
            is_sold_to_customer: false,
            is_assembled: false,
            is_shipped: false,
            is_delivered: false,
            is_deleted: false,
            stocked_at: "2021-10-22 11:33:03".into(),
            shipped_at: None,
            location: "R-1-2".into(),
            rack_name: "R".into(),
            labels: vec![],
        }
    }
}

impl StockItem {
    /// A record of GET stock/items.json.
    pub fn list_json(&self) -> Value {
        json!({
            "stock_item_id": self.stock_item_id,
            "outbound_order_id": self.outbound_order_id,
            "supplier": self.supplier,
            "article_id": self.article_id,
            "barcode": self.barcode,
            "description": self.description,
            "frame_id": self.frame_id,
            "purchase_price_cents": self.purchase_price_cents,
            "purchase_price_cents_packinglist": self.purchase_price_cents_packinglist,
            "dealer_rrp_cents": self.dealer_rrp_cents,
            "claimed_for_account_id": self.claimed_for_account_id,
            "claimed_for_store_id": self.claimed_for_store_id,
            "is_blocked_for_claiming": self.is_blocked_for_claiming,
            "is_claimed_for_obo": self.is_claimed_for_obo,
            "is_sold_to_customer": self.is_sold_to_customer,
            "is_shipped": self.is_shipped,
            "is_deleted": self.is_deleted,
            "stocked_at": self.stocked_at,
            "shipped_at": self.shipped_at,
            "custom_variable_1": "", "custom_variable_2": "", "custom_variable_3": "",
            "custom_variable_4": "", "custom_variable_5": "",
        })
    }

    /// The payload of the warehouse_stock_item.* webhooks.
    pub fn webhook_payload(&self) -> Value {
        json!({
            "warehouse_stock_item_id": self.stock_item_id,
            "warehouse_outbound_order_id": self.outbound_order_id,
            "warehouse_outbound_order_item_id": self.outbound_order_item_id,
            "warehouse_outbound_shipment_id": self.outbound_shipment_id,
            "warehouse_outbound_shipment_item_id": self.outbound_shipment_item_id,
            "warehouse_location": {"location": self.location, "rack_name": self.rack_name},
            "supplier_id": self.supplier_id,
            "article_id": self.article_id,
            "barcode": self.barcode,
            "battery_id": self.battery_id,
            "customer_id": self.customer_id,
            "customer_order_id": self.customer_order_id,
            "employee_first_name": "Sim",
            "employee_last_name": "Ulator",
            "frame_id": self.frame_id,
            "is_assembled": self.is_assembled,
            "is_shipped": self.is_shipped,
            "is_delivered": self.is_delivered,
            "key_id": self.key_id,
            "lock_id": self.lock_id,
            "license_plate_number": self.license_plate_number,
            "order_reference_id": self.order_reference_id,
            "order_reference_text": self.order_reference_text,
            "labels": self.labels,
            "sub_order_items": [],
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OutboundItem {
    pub outbound_order_item_id: i64,
    pub item_type_id: i64,
    pub is_active: bool,
    pub barcode: String,
    pub description: String,
    pub quantity: i64,
    pub quantity_claimed: i64,
    pub quantity_shipped: i64,
    pub is_blocked_for_claiming: bool,
    pub remark: String,
    pub reference: String,
    pub is_sold_to_customer: bool,
    pub is_attached_to_outbound_item_id: Option<i64>,
    pub is_pooled_within_stores: bool,
}

impl Default for OutboundItem {
    fn default() -> Self {
        OutboundItem {
            outbound_order_item_id: 0,
            item_type_id: 2,
            is_active: true,
            barcode: "8713568215084".into(),
            description: "Batavus".into(),
            quantity: 1,
            quantity_claimed: 0,
            quantity_shipped: 0,
            is_blocked_for_claiming: false,
            remark: String::new(),
            reference: String::new(),
            is_sold_to_customer: false,
            is_attached_to_outbound_item_id: None,
            is_pooled_within_stores: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OutboundOrder {
    pub outbound_order_id: i64,
    pub outbound_order_type_id: i64,
    pub outbound_order_status_id: i64,
    pub dealer_id: i64,
    pub account_id: i64,
    pub store_id: i64,
    pub created_at: String,
    pub datetime_preferred_delivery: Option<String>,
    pub sales_order_id: Option<i64>,
    pub ecommerce_reference_id: String,
    pub order_reference_text: String,
    pub order_items: Vec<OutboundItem>,
}

impl Default for OutboundOrder {
    fn default() -> Self {
        OutboundOrder {
            outbound_order_id: 0,
            outbound_order_type_id: 1,
            outbound_order_status_id: OBO_STATUS_OPEN,
            dealer_id: 4807,
            account_id: 4807,
            store_id: 1,
            created_at: "2022-07-05 11:07:48".into(),
            datetime_preferred_delivery: None,
            sales_order_id: None,
            ecommerce_reference_id: String::new(),
            order_reference_text: String::new(),
            order_items: vec![],
        }
    }
}

impl OutboundOrder {
    pub fn is_cancelled(&self) -> bool {
        self.outbound_order_status_id == OBO_STATUS_CANCELLED
    }
    pub fn is_pool(&self) -> bool {
        self.order_items.iter().any(|i| i.is_pooled_within_stores)
    }

    /// The payload of warehouse_outbound_order.created_or_updated.
    pub fn webhook_payload(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            map.remove("ecommerce_reference_id");
        }
        v
    }

    /// Records of open-orders.json: active items with quantity shipped < quantity.
    pub fn open_items(&self) -> Vec<Value> {
        if self.is_cancelled() {
            return vec![];
        }
        self.order_items
            .iter()
            .filter(|i| i.is_active && i.quantity_shipped < i.quantity)
            .map(|i| {
                json!({
                    "dealer_id": self.dealer_id,
                    "outbound_order_id": self.outbound_order_id,
                    "outbound_order_item_id": i.outbound_order_item_id,
                    "created_at": self.created_at,
                    "ecommerce_reference_id": self.ecommerce_reference_id,
                    "ecommerce_reference_text": self.order_reference_text,
                    "barcode": i.barcode,
                    "description": i.description,
                    "quantity": i.quantity,
                    "quantity_claimed": i.quantity_claimed,
                    "quantity_shipped": i.quantity_shipped,
                    "reference": i.reference,
                    "is_sold_to_customer": i.is_sold_to_customer,
                    "is_blocked_for_claiming": i.is_blocked_for_claiming,
                    "is_pooled_within_stores": i.is_pooled_within_stores,
                })
            })
            .collect()
    }
}

/// What stock-info knows about a barcode.
#[derive(Debug, Clone)]
pub struct Article {
    pub article_id: String,
    pub supplier_id: i64,
    /// stock_stores records.
    pub stores: Vec<Value>,
    pub warehouse_quantity: i64,
    pub supplier_has_stock: bool,
    pub delivery_date_supplier: Option<String>,
    pub delivery_date_backlog: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SalesOrder {
    pub store_id: i64,
    pub delivery_method_id: i64,
    pub item_ids: Vec<i64>,
    /// Customers the order is split over; one invoice each.
    pub customer_ids: Vec<i64>,
    pub amount_due_cents: i64,
    pub invoiced: bool,
    pub cancelled: bool,
}

/// Everything a reset puts back.
#[derive(Debug, Clone, Default)]
pub struct Data {
    pub backlog: Vec<Value>,
    pub delivered: Vec<Value>,
    pub assemblies: Vec<Value>,
    pub articles: BTreeMap<String, Article>,
    pub stock_items: BTreeMap<i64, StockItem>,
    pub pos_items: Vec<Value>,
    pub outbound_orders: BTreeMap<i64, OutboundOrder>,
    pub keys: Vec<Value>,
    pub stores: Vec<Value>,
    pub locator_stock: Vec<Value>,
    pub leads: BTreeMap<String, Value>,
    /// What each lead's creator sent, for `Options::echo_created_leads`.
    pub lead_echoes: BTreeMap<String, Value>,
    pub sales_orders: BTreeMap<i64, SalesOrder>,
    /// Store numbers of the account (update-store targets).
    pub account_stores: Vec<i64>,
    pub next_id: i64,
}

impl Data {
    pub fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }
}
