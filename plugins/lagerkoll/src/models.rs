//! The documented data classes ("Classes" in the Lagerkoll documentation),
//! as serde models. Every field is optional because Lagerkoll omits what is
//! not set; fields the documentation does not list are kept in `other` and
//! passed through unchanged. Each model also describes itself as JSON Schema
//! (with the documented defaults and accepted values), which is what the
//! operations publish and what input is validated against.
use crate::scalars::{Flag, Int, Millis, Num, Schema, Text};
use serde::{Deserialize, Serialize};
use spoke_pdk::{json, Value};

/// Suffix of the RFC 3339 sibling added next to every date in the output.
pub const RFC3339_SUFFIX: &str = "Rfc3339";

fn field_schema(mut base: Value, extra: Option<Value>) -> Value {
    if let (Some(obj), Some(Value::Object(extra))) = (base.as_object_mut(), extra) {
        for (k, v) in extra {
            if k == "description" {
                if let Some(Value::String(old)) = obj.get("description") {
                    obj.insert(k, Value::String(format!("{}; {old}", v.as_str().unwrap_or_default())));
                    continue;
                }
            }
            obj.insert(k, v);
        }
    }
    base
}

/// An object schema; every date property gets its documented RFC 3339 sibling.
fn object_schema(title: &str, mut props: serde_json::Map<String, Value>) -> Value {
    let dates: Vec<String> = props
        .iter()
        .filter(|(_, s)| s.get("format").and_then(Value::as_str) == Some("date-time"))
        .map(|(k, _)| k.clone())
        .collect();
    for key in dates {
        props.insert(
            format!("{key}{RFC3339_SUFFIX}"),
            json!({"type": "string", "format": "date-time", "readOnly": true,
                   "description": format!("RFC 3339 (UTC) rendering of `{key}`, added by the connector; ignored on input")}),
        );
    }
    json!({"type": "object", "title": title, "properties": props})
}

macro_rules! model {
    ($(#[$doc:meta])* $name:ident { $( $field:ident : $ty:ty = $json:literal $(=> $extra:tt)? ),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            $(
                #[serde(rename = $json, default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
            /// Fields the documentation does not list, passed through unchanged.
            #[serde(flatten)]
            pub other: serde_json::Map<String, Value>,
        }

        impl Schema for $name {
            fn schema() -> Value {
                #[allow(unused_mut)]
                let mut props = serde_json::Map::new();
                $( props.insert($json.into(), field_schema(<$ty as Schema>::schema(), None $(.or(Some(json!($extra))))?)); )*
                object_schema(stringify!($name), props)
            }
        }
    };
}

const RO: bool = true;

model!(Unit {
    id: Int = "id",
    external_id: Text = "externalId" => {"readOnly": RO},
    name: Text = "name",
});

model!(ArticleUnit {
    storegroup_id: Int = "storegroupId" => {"readOnly": RO},
    article_id: Text = "articleId" => {"readOnly": RO},
    unit: Unit = "unit",
    convert: Num = "convert" => {"description": "conversion coefficient between unit and the article base unit"},
    barcode: Text = "barcode",
});

model!(ArticleBatch {
    article_id: Text = "articleId" => {"readOnly": RO},
    article_name: Text = "articleName" => {"readOnly": RO},
    batch_id: Text = "batchId",
    serial_nr: Text = "serialNr",
    amount: Num = "amount" => {"default": 1},
    reserved: Num = "reserved" => {"readOnly": RO},
    barcode: Text = "barcode",
    best_before: Millis = "bestBefore",
});

model!(ArticleBatches {
    total_batches: Int = "totalBatches",
    batches: Vec<ArticleBatch> = "batches",
    total_serial_numbers: Int = "totalSerialNumbers",
    serial_numbers: Vec<ArticleBatch> = "serialNumbers",
    total_batches_in_stock: Num = "totalBatchesInStock",
    total_batches_reserved: Num = "totalBatchesReserved",
    total_serial_numbers_in_stock: Num = "totalSerialNumbersInStock",
    total_serial_numbers_reserved: Num = "totalSerialNumbersReserved",
});

model!(ArticleLink {
    name: Text = "name",
    url: Text = "url",
    link_type: Text = "type" => {"enum": ["unknown", "webpage", "image", "document", "lagerkoll_document"]},
});

model!(ArticleTag {
    id: Int = "id",
    external_id: Text = "externalId",
    name: Text = "name",
    desc: Text = "desc",
});

model!(BundledArticle {
    article_id: Text = "articleId",
    article_name: Text = "articleName",
    external_id: Text = "externalId",
    amount: Num = "amount" => {"description": "amount of this article for a single bundled article"},
    is_stock: Flag = "isStock",
    stock_warning: Num = "stockWarning",
    stock: Num = "stock",
    reserved: Num = "reserved",
    article_type: Text = "type" => {"enum": ["Stock", "Service"]},
    unit_name: Text = "unitName",
    stock_place: Text = "stockPlace",
    buy_price: Num = "buyPrice",
    buy_price_shipment: Num = "buyPriceShipment",
    buy_price_misc: Num = "buyPriceMisc",
    buy_price_currency: Text = "buyPriceCurrency",
    supplier_id: Int = "supplierId",
    supplier_name: Text = "supplierName",
    supplier_article_id: Text = "supplierArticleId",
});

model!(CustomFieldValidValue {
    value: Text = "value",
    description: Text = "description",
});

model!(CustomField {
    name: Text = "name",
    field_type: Text = "type" => {"enum": ["String", "Number", "Int", "Long", "Float", "Double", "Boolean", "Date", "Json", "JsonArray", "Email"]},
    value: Text = "value",
    valid_values: Vec<CustomFieldValidValue> = "validValues",
});

model!(Price {
    list_id: Int = "listId",
    list_external_id: Text = "listExternalId",
    article_id: Text = "articleId",
    from_quantity: Num = "fromQuantity" => {"default": 0},
    price: Num = "price" => {"default": 0},
});

model!(SupplierArticle {
    supplier: Int = "supplier",
    supplier_name: Text = "supplierName",
    supplier_article_id: Text = "supplierArticleId",
    supplier_automatic_order: Flag = "supplierAutomaticOrder",
    supplier_buy_price: Num = "supplierBuyPrice",
    supplier_buy_price_shipment: Num = "supplierBuyPriceShipment",
    supplier_buy_price_misc: Num = "supplierBuyPriceMisc",
    supplier_buy_currency: Text = "supplierBuyCurrency",
    supplier_buy_rate: Num = "supplierBuyRate" => {"default": 1.0},
});

model!(
    /// An article as returned with a customer order's products.
    Article {
    article_id: Text = "articleId",
    external_id: Text = "externalId",
    active: Flag = "active" => {"default": true},
    name: Text = "name",
    bundled: Flag = "bundled" => {"default": false},
    parts: Vec<BundledArticle> = "parts",
    batches: ArticleBatches = "batches",
    description: Text = "description",
    category: Text = "category" => {"default": "övrigt"},
    amount: Num = "amount" => {"description": "available amount: stock reduced by reserved"},
    reserved: Num = "reserved",
    barcode: Text = "barcode",
    barcode_type: Text = "barcodeType" => {"default": "EAN", "enum": ["EAN", "CODE128", "QR", "UPC"]},
    price: Num = "price",
    prices: Vec<Price> = "prices",
    supplier: Int = "supplier",
    supplier_external_id: Text = "supplierExternalId",
    supplier_name: Text = "supplierName",
    supplier_article_id: Text = "supplierArticleId",
    supplier_automatic_order: Flag = "supplierAutomaticOrder",
    supplier_buy_price: Num = "supplierBuyPrice",
    supplier_buy_price_shipment: Num = "supplierBuyPriceShipment",
    supplier_articles: Vec<SupplierArticle> = "supplierArticles",
    supplier_buy_price_misc: Num = "supplierBuyPriceMisc",
    supplier_buy_currency: Text = "supplierBuyCurrency",
    supplier_buy_rate: Num = "supplierBuyRate",
    unit: Text = "unit" => {"default": "st"},
    vat: Num = "vat" => {"description": "VAT in percent"},
    vat_account: Int = "vatAccount",
    image_last_updated: Int = "imageLastUpdated",
    article_type: Text = "type" => {"enum": ["Stock", "Service"]},
    stock: Flag = "stock" => {"default": true},
    webshop_article: Flag = "webshopArticle" => {"default": false},
    manufacturer: Text = "manufacturer",
    manufacturer_article_id: Text = "manufacturerArticleId",
    custom_fields: Vec<CustomField> = "customFields",
    links: Vec<ArticleLink> = "links",
    tags: Vec<ArticleTag> = "tags",
    width: Num = "width",
    height: Num = "height",
    depth: Num = "depth",
    weight: Num = "weight",
    stock_place: Text = "stockPlace",
    stock_warning: Num = "stockWarning",
    critical_level: Num = "criticalLevel",
    order_level: Num = "orderLevel",
    automatic_order: Flag = "automaticOrder",
    next_delivery_date: Millis = "nextDeliveryDate",
    ordered_amount: Num = "orderedAmount",
    delivered_amount: Num = "deliveredAmount",
    available_amount: Num = "availableAmount",
});

model!(CustomerOrderBatchProduct {
    batch_id: Text = "batchId" => {"description": "batch id or serial number must be set"},
    serial_nr: Text = "serialNr" => {"description": "batch id or serial number must be set"},
    ordered_amount: Num = "orderedAmount" => {"default": 1},
    picked_amount: Num = "pickedAmount" => {"default": 0},
    delivered_amount: Num = "deliveredAmount" => {"default": 0},
    best_before: Millis = "bestBefore" => {"readOnly": RO},
});

pub const DISCOUNT_TYPES: [&str; 2] = ["PERCENT", "AMOUNT"];

model!(
    /// A row (article or free text) of a customer order.
    CustomerOrderProduct {
    id: Int = "id" => {"description": "row id; must be given when updating a row"},
    store_id: Int = "storeId" => {"readOnly": RO},
    store_group_id: Int = "storeGroupId" => {"readOnly": RO},
    article_id: Text = "articleId" => {"description": "mandatory unless this is a free-text row (then only description is used)"},
    row_index: Int = "rowIndex",
    ordered_amount: Num = "orderedAmount",
    picked_amount: Num = "pickedAmount" => {"default": 0},
    delivered_amount: Num = "deliveredAmount" => {"default": 0},
    piece_price: Num = "piecePrice" => {"description": "ex VAT; omitted means the pricelist price"},
    total_price: Num = "totalPrice" => {"description": "ex VAT and discounts; omitted means computed from the pricelist"},
    vat: Num = "vat" => {"readOnly": RO},
    discount_type: Text = "discountType" => {"default": "AMOUNT", "enum": DISCOUNT_TYPES},
    discount: Num = "discount" => {"default": 0},
    description: Text = "description",
    cost_center: Int = "costCenter",
    is_bundled: Flag = "isBundled",
    weight: Num = "weight",
    batches: Vec<CustomerOrderBatchProduct> = "batches" => {"description": "null means no change; otherwise replaces the row's batches"},
    stock_warning: Num = "stockWarning",
    available_amount: Num = "availableAmount",
    tg: Num = "tg" => {"readOnly": RO},
});

/// Customer order states as documented (45 appears only in filters).
pub const ORDER_STATES: [i64; 9] = [0, 5, 10, 15, 20, 30, 40, 50, 60];
/// The `state` filter values of the list endpoints (-1 = all).
pub const ORDER_STATE_FILTERS: [i64; 11] = [-1, 0, 5, 10, 15, 20, 30, 40, 45, 50, 60];
pub const ORDER_STATE_NAMES: &str =
    "NEW = 0, READY_FOR_PACKING = 5, PACKING = 10, DROP SHIPMENT = 15, PACKED = 20, PARTLY SENT = 30, SENT = 40, CANCELLED = 50, INVOICED = 60";

model!(
    /// A customer order.
    CustomerOrder {
    order_id: Int = "orderId" => {"readOnly": RO},
    external_order_id: Text = "externalOrderId",
    external_display_order_id: Text = "externalDisplayOrderId",
    webshop_order_id: Text = "webshopOrderId",
    store_group_id: Int = "storeGroupId" => {"readOnly": RO},
    customer_id: Int = "customerId" => {"description": "must point to an existing customer"},
    customer_name: Text = "customerName" => {"readOnly": RO},
    customer_order_number: Text = "customerOrderNumber",
    state: Int = "state" => {"default": 0, "enum": ORDER_STATES, "description": ORDER_STATE_NAMES},
    administration_fee: Num = "administrationFee",
    currency: Text = "currency",
    currency_rate: Num = "currencyRate",
    comments: Text = "comments",
    delivery_address1: Text = "deliveryAddress1",
    delivery_address2: Text = "deliveryAddress2",
    delivery_zip_code: Text = "deliveryZipCode",
    delivery_city: Text = "deliveryCity",
    delivery_country: Text = "deliveryCountry",
    delivery_date: Millis = "deliveryDate",
    delivery_name: Text = "deliveryName",
    delivery_email: Text = "deliveryEmail",
    freight: Num = "freight",
    order_date: Millis = "orderDate",
    delivered_date: Millis = "deliveredDate" => {"readOnly": RO},
    our_reference: Text = "ourReference",
    phone1: Text = "phone1",
    phone2: Text = "phone2",
    remarks: Text = "remarks",
    delivery_term: Text = "deliveryTerm",
    delivery_term_desc: Text = "deliveryTermDesc" => {"readOnly": RO},
    payment_term: Text = "paymentTerm",
    payment_term_desc: Text = "paymentTermDesc" => {"readOnly": RO},
    vat_included: Flag = "vatIncluded" => {"default": true},
    way_of_delivery: Text = "wayOfDelivery",
    way_of_delivery_desc: Text = "wayOfDeliveryDesc" => {"readOnly": RO},
    your_reference: Text = "yourReference",
    products: Vec<CustomerOrderProduct> = "products",
    pricelist_id: Int = "pricelistId" => {"default": -1},
    external_invoice_reference1: Text = "externalInvoiceReference1",
    external_invoice_reference2: Text = "externalInvoiceReference2",
    cost_center: Int = "costCenter" => {"description": "-1 removes the cost center"},
    total_price: Num = "totalPrice" => {"readOnly": RO},
    total_discount: Num = "totalDiscount" => {"readOnly": RO},
    delivery_status: Int = "deliveryStatus" => {"readOnly": RO, "enum": [1, 2, 3], "description": "1 = all in stock, 2 = not all in stock, 3 = none in stock"},
    order_value: Num = "orderValue" => {"readOnly": RO},
});

model!(CustomerOrderProductCost {
    article_id: Text = "articleId",
    delivered_amount: Num = "deliveredAmount",
    total_cost: Num = "totalCost",
});

model!(CustomerOrderCost {
    order_id: Int = "orderId",
    product_costs: Vec<CustomerOrderProductCost> = "productCosts",
});

model!(CustomerOrdersResponse {
    page: Int = "page",
    pages: Int = "pages",
    page_size: Int = "pageSize",
    orders_count: Int = "ordersCount",
    since: Int = "since",
    total_customer_order_value: Num = "totalCustomerOrderValue",
    orders: Vec<CustomerOrder> = "orders",
});

model!(Email {
    email: Text = "email" => {"minLength": 3},
});

model!(OfferRow {
    id: Int = "id" => {"description": "row id; must be given when updating an offer's row"},
    store_id: Int = "storeId" => {"readOnly": RO},
    article_id: Text = "articleId",
    article_name: Text = "articleName",
    amount: Num = "amount",
    unit_id: Int = "unitId" => {"readOnly": RO},
    unit: Text = "unit" => {"readOnly": RO},
    sales_price: Num = "salesPrice",
    discount_type: Text = "discountType" => {"default": "AMOUNT", "enum": DISCOUNT_TYPES},
    discount: Num = "discount" => {"default": 0},
    purchase_price: Num = "purchasePrice",
    purchase_currency: Text = "purchaseCurrency",
    purchase_rate: Num = "purchaseRate" => {"readOnly": RO},
    supplier_id: Int = "supplierId",
    supplier_name: Text = "supplierName",
    total_price: Num = "totalPrice" => {"readOnly": RO},
});

pub const OFFER_STATES: [i64; 3] = [0, 1, 2];

model!(
    /// An offer (quote) to a customer.
    Offer {
    offer_id: Int = "offerId" => {"readOnly": RO},
    customer_id: Int = "customerId",
    customer_name: Text = "customerName",
    customer_phone: Text = "customerPhone",
    customer_email: Text = "customerEmail",
    state: Int = "state" => {"readOnly": RO, "enum": OFFER_STATES, "description": "0 = NEW, 1 = APPROVED (closed), 2 = CANCELLED"},
    pricelist_id: Int = "pricelistId",
    currency: Text = "currency" => {"minLength": 3, "maxLength": 3, "description": "3-letter code"},
    rate: Num = "rate" => {"readOnly": RO},
    description: Text = "description",
    our_reference: Text = "ourReference",
    valid_date: Millis = "validDate" => {"description": "valid until"},
    created_date: Millis = "createdDate" => {"readOnly": RO},
    customer_order_id: Int = "customerOrderId" => {"readOnly": RO},
    rows: Vec<OfferRow> = "rows",
});

model!(OffersResponse {
    page: Int = "page",
    pages: Int = "pages",
    page_size: Int = "pageSize",
    offers_count: Int = "offersCount",
    since: Int = "since",
    offers: Vec<Offer> = "offers",
});

model!(
    /// One article line of a picking list.
    PickingListProduct {
    customer_order_product_id: Int = "customerOrderProductId" => {"description": "must be sent when updating"},
    article_id: Text = "articleId",
    name: Text = "name" => {"readOnly": RO},
    barcode: Text = "barcode" => {"readOnly": RO},
    ordered_amount: Num = "orderedAmount" => {"readOnly": RO},
    picked_amount: Num = "pickedAmount" => {"description": "must add up to the batches' amounts when the product has batches"},
    stock_amount: Num = "stockAmount" => {"readOnly": RO},
    stock_place: Text = "stockPlace" => {"readOnly": RO},
    unit: Unit = "unit" => {"readOnly": RO},
    bundled: Flag = "bundled" => {"readOnly": RO},
    parts: Vec<BundledArticle> = "parts" => {"readOnly": RO},
    batches: Vec<CustomerOrderBatchProduct> = "batches",
    units: Vec<ArticleUnit> = "units" => {"readOnly": RO},
    ordered_amount_with_units: Text = "orderedAmountWithUnits" => {"readOnly": RO},
});

model!(PickingListProducts {
    products: Vec<PickingListProduct> = "products",
});

pub const PICKING_LIST_STATES: [i64; 4] = [0, 10, 20, 30];

model!(
    /// A picking list of a customer order.
    PickingList {
    id: Int = "id",
    order_id: Int = "orderId",
    store_id: Int = "storeId",
    title: Text = "title",
    state: Int = "state" => {"enum": PICKING_LIST_STATES, "description": "NEW = 0, PACKING = 10, PACKED = 20, CLOSED = 30"},
    warehouse_worker_id: Int = "warehouseWorkerId",
    warehouse_worker_name: Text = "warehouseWorkerName",
    started_date: Millis = "startedDate",
    finished_date: Millis = "finishedDate",
    delivery_date: Millis = "deliveryDate",
    customer_name: Text = "customerName",
    order_comment: Text = "orderComment",
    products: Vec<PickingListProduct> = "products",
});

model!(PickingListsResponse {
    page: Int = "page",
    pages: Int = "pages",
    page_size: Int = "pageSize",
    lists_count: Int = "listsCount",
    since: Int = "since",
    lists: Vec<PickingList> = "lists",
});

model!(PurchaseOrderArticleBatch {
    batch_id: Text = "batchId",
    serial_nr: Text = "serialNr",
    ordered_amount: Num = "orderedAmount" => {"default": 1},
    delivered_amount: Num = "deliveredAmount" => {"default": 1},
    best_before: Millis = "bestBefore",
});

model!(PurchaseOrderArticle {
    id: Int = "id",
    article_id: Text = "articleId",
    article_name: Text = "articleName",
    supplier_article_id: Text = "supplierArticleId",
    ordered_amount: Num = "orderedAmount" => {"default": 0},
    delivered_amount: Num = "deliveredAmount" => {"default": 0},
    available_amount: Num = "availableAmount" => {"default": 0},
    stock_warning: Num = "stockWarning" => {"default": 0},
    purchase_price: Num = "purchasePrice" => {"default": 0},
    purchase_price_misc: Num = "purchasePriceMisc" => {"default": 0},
    purchase_price_shipment: Num = "purchasePriceShipment" => {"default": 0},
    rate: Num = "rate",
    description: Text = "description",
    unit: Text = "unit",
    article_type: Text = "type" => {"enum": ["Stock", "Service"]},
    stock: Flag = "stock",
    batches: Vec<PurchaseOrderArticleBatch> = "batches",
    units: Vec<ArticleUnit> = "units",
    ordered_amount_with_units: Text = "orderedAmountWithUnits",
});

model!(
    /// A purchase order (drop shipment or rest order) at a supplier.
    PurchaseOrder {
    id: Int = "id",
    store_id: Int = "storeId",
    po_reference: Text = "poReference",
    supplier_id: Int = "supplierId",
    supplier_name: Text = "supplierName",
    order_sent_date: Millis = "orderSentDate",
    delivery_date: Millis = "deliveryDate",
    confirmed_delivery_date: Millis = "confirmedDeliveryDate",
    delivered_date: Millis = "deliveredDate",
    payment_terms: Text = "paymentTerms",
    payment_terms_description: Text = "paymentTermsDescription",
    delivery_terms: Text = "deliveryTerms",
    delivery_terms_description: Text = "deliveryTermsDescription",
    delivery_contact: Text = "deliveryContact",
    delivery_company: Text = "deliveryCompany",
    delivery_phone: Text = "deliveryPhone",
    delivery_address: Text = "deliveryAddress",
    delivery_address2: Text = "deliveryAddress2",
    delivery_city: Text = "deliveryCity",
    delivery_zip: Text = "deliveryZip",
    delivery_country: Text = "deliveryCountry",
    contact_person: Text = "contactPerson",
    contact_email: Text = "contactEmail",
    product_count: Int = "productCount",
    state: Int = "state" => {"enum": [0, 1, 2, 3, 4], "description": "NEW = 0, SENT = 1, RECEIVED = 2, FINISHED = 3, CANCELLED = 4"},
    supplier_order_id: Text = "supplierOrderId",
    customer_order_id: Int = "customerOrderId",
    production_order_id: Int = "productionOrderId",
    message: Text = "message",
    is_pick_n_pack: Flag = "isPickNPack" => {"default": false},
    comment: Text = "comment",
    external_invoice_reference: Text = "externalInvoiceReference",
    goods_marking: Text = "goodsMarking",
    order_value: Num = "orderValue",
    order_value_currency: Text = "orderValueCurrency",
    order_value_store: Num = "orderValueStore",
    articles: Vec<PurchaseOrderArticle> = "articles",
});

model!(PurchaseOrdersResponse {
    page: Int = "page",
    pages: Int = "pages",
    page_size: Int = "pageSize",
    orders_count: Int = "ordersCount",
    orders: Vec<PurchaseOrder> = "orders",
});

model!(RestOrderCustomerOrder {
    id: Int = "id",
    display_id: Text = "displayId",
    state: Text = "state" => {"description": ORDER_STATE_NAMES},
    customer_id: Int = "customerId",
    customer_name: Text = "customerName",
    desired_delivery: Millis = "desiredDelivery",
    reserved: Num = "reserved",
});

model!(
    /// An article still to be delivered on customer orders (a rest article).
    RestOrderArticle {
    id: Text = "id",
    name: Text = "name",
    date: Millis = "date" => {"description": "oldest delivery date in the orders"},
    deliver: Num = "deliver",
    available: Num = "available",
    customer_orders: Vec<RestOrderCustomerOrder> = "customerOrders",
});

model!(RestOrderResponse {
    pages: Int = "pages",
    page: Int = "page",
    page_size: Int = "pageSize",
    articles_count: Int = "articlesCount",
    articles: Vec<RestOrderArticle> = "articles",
});

/// The output of the print operations: the file's bytes, never as text.
pub fn file_schema() -> Value {
    json!({"type": "object", "title": "File", "required": ["content_type", "base64"], "properties": {
        "content_type": {"type": "string", "description": "the Content-Type Lagerkoll sent, e.g. application/pdf"},
        "base64": {"type": "string", "description": "the file's bytes, standard base64"},
        "size": {"type": "integer", "description": "number of bytes"}
    }})
}

/// Add `<key>Rfc3339` next to every date of `value`, as its schema says.
pub fn add_rfc3339(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else { return };
            let mut added = Vec::new();
            for (key, item) in map.iter_mut() {
                let Some(sub) = props.get(key) else { continue };
                if sub.get("format").and_then(Value::as_str) == Some("date-time") {
                    if let Some(ms) = item.as_i64() {
                        added.push((format!("{key}{RFC3339_SUFFIX}"), Value::String(crate::time::ms_to_rfc3339(ms))));
                    }
                } else {
                    add_rfc3339(item, sub);
                }
            }
            map.extend(added);
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                items.iter_mut().for_each(|item| add_rfc3339(item, sub));
            }
        }
        _ => {}
    }
}

/// Remove the connector's own `<key>Rfc3339` siblings from a body before it
/// is sent (a script may hand an order it read straight back).
pub fn strip_rfc3339(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let derived: Vec<String> = map
                .keys()
                .filter(|k| k.strip_suffix(RFC3339_SUFFIX).is_some_and(|base| map.contains_key(base)))
                .cloned()
                .collect();
            derived.iter().for_each(|k| {
                map.remove(k);
            });
            map.values_mut().for_each(strip_rfc3339);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_rfc3339),
        _ => {}
    }
}
