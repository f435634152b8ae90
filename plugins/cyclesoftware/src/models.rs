//! Typed records of the CycleSoftware docs. Answers are parsed into these so
//! a drifting vendor shape is an error naming the field, not a silent guess.
//! `?type` fields are `Option`; dates stay text in the vendor's format.
use serde::{Deserialize, Serialize};

/// `pagination` of the offset style (`next_offset`) and of the page style
/// (`page`, `count`, `has_next_page`); each endpoint uses one of them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pagination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_next_page: Option<bool>,
}

/// `{error, error_message, data, pagination}`.
#[derive(Debug, Deserialize)]
pub struct DataPage<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

// ---- warehouse: inbound, workshop ----

#[derive(Debug, Serialize, Deserialize)]
pub struct Assignment {
    pub assigned_to_entity_type_id: i64,
    pub assigned_to_entity_id: i64,
    pub outbound_order_id: i64,
    pub reference: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BacklogItem {
    pub id: i64,
    pub supplier_id: i64,
    pub is_sold_to_customer: bool,
    pub in_transit: bool,
    pub article_id: String,
    pub barcode: String,
    pub supplier_reference: String,
    pub supplier_reference_2: String,
    pub delivery_date: String,
    pub original_delivery_date: String,
    pub external_remarks: String,
    pub internal_remarks: Option<String>,
    pub created_at: String,
    pub modified_at: String,
    pub assignment: Option<Assignment>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DeliveredItem {
    pub article_id: String,
    pub barcode: String,
    pub datetime_delivered: String,
    pub inbound_delivery_id: i64,
    pub inbound_delivery_item_id: i64,
    pub packinglist_number: String,
    pub purchase_price_cents: i64,
    pub quantity_missing: i64,
    pub quantity_packinglist: i64,
    pub quantity_scanned: i64,
    pub quantity_stocked: i64,
    pub supplier_id: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WorkshopAssembly {
    pub stock_item_id: i64,
    pub is_assembled: bool,
    pub released_by: String,
    pub scheduled_for_release_at: String,
    pub released_for_shipment_at: String,
    pub claimed_by_dealer_id: i64,
    pub outbound_order_id: i64,
    pub outbound_order_item_id: i64,
    pub outbound_shipment_id: i64,
    pub outbound_shipment_item_id: i64,
    pub is_sold_to_customer: bool,
}

// ---- warehouse: stock ----

#[derive(Debug, Serialize, Deserialize)]
pub struct StockInfo {
    pub status: bool,
    pub result_items: Vec<StockInfoItem>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StockInfoItem {
    pub barcode: String,
    pub stock_available: bool,
    pub delivery_date: Option<String>,
    pub delivery_date_supplier: Option<String>,
    pub delivery_date_backlog: Option<String>,
    pub stock_supplier: Option<bool>,
    pub stock_quantity: i64,
    pub stock_quantity_stores: i64,
    pub stock_quantity_warehouse: i64,
    pub stock_stores: Vec<StockStore>,
    pub supplier_id: Option<String>,
    pub article_id: String,
    /// Present with `stock_items=1`; the docs do not describe its records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_items: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StockStore {
    pub dealer_id: i64,
    pub store_name: String,
    pub store_phone: String,
    pub quantity: i64,
    pub quantity_demo: i64,
    pub quantity_used: i64,
    pub quantity_rental: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WarehouseStockItem {
    pub stock_item_id: i64,
    pub outbound_order_id: i64,
    pub supplier: String,
    pub article_id: String,
    pub barcode: String,
    pub description: String,
    pub frame_id: String,
    pub purchase_price_cents: i64,
    pub purchase_price_cents_packinglist: i64,
    pub dealer_rrp_cents: i64,
    pub claimed_for_account_id: Option<i64>,
    pub claimed_for_store_id: Option<i64>,
    pub is_blocked_for_claiming: bool,
    pub is_claimed_for_obo: bool,
    pub is_sold_to_customer: bool,
    pub is_shipped: bool,
    pub is_deleted: bool,
    pub stocked_at: String,
    pub shipped_at: Option<String>,
    pub custom_variable_1: String,
    pub custom_variable_2: String,
    pub custom_variable_3: String,
    pub custom_variable_4: String,
    pub custom_variable_5: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PosStockItem {
    pub account_id: i64,
    pub store_id: i64,
    pub object_id: i64,
    pub sales_order_id: i64,
    pub supplier: String,
    pub article_id: String,
    pub barcode: String,
    pub description: String,
    pub frame_id: String,
    pub purchase_price_cents: i64,
    pub purchase_price_cents_packinglist: i64,
    pub dealer_rrp_cents: i64,
    pub is_sold_to_customer: bool,
    pub is_demo: bool,
    pub has_invoice: bool,
    pub stocked_at: String,
    pub custom_variable_1: String,
    pub custom_variable_2: String,
    pub custom_variable_3: String,
    pub custom_variable_4: String,
    pub custom_variable_5: String,
    pub is_deleted: bool,
    pub is_rental: bool,
    pub is_used: bool,
}

// ---- warehouse: outbound orders, shipments ----

#[derive(Debug, Serialize, Deserialize)]
pub struct OpenOrderItem {
    pub dealer_id: i64,
    pub outbound_order_id: i64,
    pub outbound_order_item_id: i64,
    pub created_at: String,
    pub ecommerce_reference_id: String,
    pub ecommerce_reference_text: String,
    pub barcode: String,
    pub description: String,
    pub quantity: i64,
    pub quantity_claimed: i64,
    pub quantity_shipped: i64,
    pub reference: String,
    pub is_sold_to_customer: bool,
    pub is_blocked_for_claiming: bool,
    pub is_pooled_within_stores: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UnclaimedStock {
    pub outbound_order_item_id: i64,
    pub unclaimed_stock: i64,
}

#[derive(Debug, Deserialize)]
pub struct CancelOutboundOrderAnswer {
    #[serde(default)]
    pub result: Vec<UnclaimedStock>,
}

// ---- platform: keys, stock-in-store locator ----

#[derive(Debug, Serialize, Deserialize)]
pub struct Store {
    pub store_id: String,
    pub store_gln: String,
    pub store_name: String,
    pub store_address: String,
    pub store_postal_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_city: Option<String>,
    pub store_country_code: String,
    pub store_phone_number: String,
    pub store_email: String,
    pub store_coordinates: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_meta_data: Option<StoreMetaData>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StoreMetaData {
    #[serde(default)]
    pub drg_dealer_number: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PlatformKey {
    pub key: String,
    pub is_active: bool,
    pub store: Store,
}

#[derive(Debug, Deserialize)]
pub struct KeysAnswer {
    pub keys: Vec<PlatformKey>,
}

#[derive(Debug, Deserialize)]
pub struct StoresAnswer {
    pub stores: Vec<Store>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LocatedStock {
    pub store_id: String,
    pub object_id: i64,
    pub barcode: String,
    pub article_id: String,
    pub brand_name: String,
    pub is_demo: bool,
}

#[derive(Debug, Deserialize)]
pub struct LocatorStockAnswer {
    pub stores: Vec<Store>,
    pub stock: Vec<LocatedStock>,
}

// ---- platform: sales leads ----
//
// Leads are passed on as CycleSoftware answers them (see leads.rs): no model.

// ---- sales orders ----

#[derive(Debug, Serialize, Deserialize)]
pub struct UpdateStoreResult {
    pub created_store_order_id: Option<i64>,
    pub affected_supplier_order_ids: Vec<i64>,
    pub cancelled_store_order_ids: Vec<i64>,
    pub cancelled_supplier_order_ids: Vec<i64>,
    pub updated_outbound_order_ids: Option<Vec<i64>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UpdateDeliveryMethodResult {
    pub created_delivery_address_id: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Invoice {
    pub invoice_number: i64,
    pub customer_id: i64,
    pub sent_messages: SentMessages,
    pub documents: Vec<InvoiceDocument>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SentMessages {
    pub phone_message: bool,
    pub email_message: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct InvoiceDocument {
    pub document_mime_type: String,
    pub document_base64: String,
}

#[derive(Debug, Deserialize)]
pub struct InvoicesAnswer {
    pub invoices: Vec<Invoice>,
}

// ---- webhooks ----

/// Every webhook body: the same envelope around a per-event payload.
#[derive(Debug, Deserialize)]
pub struct WebhookEnvelope {
    pub id: String,
    pub account_id: i64,
    pub event_name: String,
    pub event_timestamp: f64,
    pub payload: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OutboundOrderPayload {
    pub outbound_order_id: i64,
    pub outbound_order_type_id: i64,
    pub outbound_order_status_id: i64,
    pub dealer_id: i64,
    pub account_id: i64,
    pub store_id: i64,
    pub created_at: String,
    pub datetime_preferred_delivery: Option<String>,
    pub sales_order_id: Option<i64>,
    pub order_reference_text: String,
    pub order_items: Vec<OutboundOrderItem>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OutboundOrderItem {
    pub outbound_order_item_id: i64,
    pub item_type_id: i64,
    pub is_active: bool,
    pub barcode: String,
    pub quantity: i64,
    pub quantity_claimed: i64,
    pub quantity_shipped: i64,
    pub is_blocked_for_claiming: bool,
    pub description: String,
    pub remark: String,
    pub reference: String,
    pub is_sold_to_customer: bool,
    pub is_attached_to_outbound_item_id: Option<i64>,
    pub is_pooled_within_stores: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StockItemPayload {
    pub warehouse_stock_item_id: i64,
    pub warehouse_outbound_order_id: i64,
    pub warehouse_outbound_order_item_id: i64,
    pub warehouse_outbound_shipment_id: i64,
    pub warehouse_outbound_shipment_item_id: i64,
    pub warehouse_location: WarehouseLocation,
    pub supplier_id: i64,
    pub article_id: String,
    pub barcode: String,
    pub battery_id: String,
    pub customer_id: i64,
    pub customer_order_id: i64,
    pub employee_first_name: String,
    pub employee_last_name: String,
    pub frame_id: String,
    pub is_assembled: bool,
    pub is_shipped: bool,
    pub is_delivered: bool,
    pub key_id: String,
    pub lock_id: String,
    pub license_plate_number: String,
    pub order_reference_id: String,
    pub order_reference_text: String,
    pub labels: Vec<String>,
    pub sub_order_items: Vec<SubOrderItem>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WarehouseLocation {
    pub location: String,
    pub rack_name: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SubOrderItem {
    pub article_id: String,
    pub barcode: String,
    pub is_active: bool,
    pub is_included: bool,
    pub quantity: i64,
    pub quantity_claimed: i64,
    pub reference: String,
    pub remark: String,
}
