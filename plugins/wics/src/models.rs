//! Typed models of the records the WICS docs describe.
//!
//! Every field is optional here: which fields are required depends on the
//! operation and is enforced by its input schema. Fields the docs do not
//! list are kept in `extra`, and `metaFields` is an untyped JSON value, so
//! nothing a caller or WICS sends is lost on the way through. Decimals are
//! `serde_json::Number` so `12` stays `12` and `12.10` is not rounded to a
//! float's idea of it.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// Declares a record with camelCase names, optional fields that are left out
/// when absent, and a catch-all for undocumented fields.
macro_rules! record {
    ($(#[$meta:meta])* $name:ident { $( $(#[$field_meta:meta])* $field:ident : $ty:ty ),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $(
                $(#[$field_meta])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
            /// Fields the docs do not list, passed through untouched.
            #[serde(flatten)]
            pub extra: Map<String, Value>,
        }
    };
}

record!(
    /// An announcement (expected inbound delivery) and its lines.
    Announcement {
        number: String,
        reference: String,
        additional_reference: String,
        planned_date: String,
        r#type: String,
        warehouse_code: String,
        /// The create/update examples write `warehouse`; the tables `warehouseCode`.
        warehouse: String,
        door: String,
        supplier: i64,
        carrier: i64,
        stock_status: i64,
        meta_fields: Value,
        lines: Vec<AnnouncementLine>,
    }
);

record!(AnnouncementLine {
    line_number: i64,
    item_code: String,
    item_description: String,
    unit: String,
    quantity_expected: i64,
    lot_number: String,
    best_before_date: String,
    meta_fields: Value,
});

record!(
    /// A receipt: what actually arrived for an announcement.
    Receipt {
        number: String,
        reference: String,
        receipt_date: String,
        remarks: String,
        warehouse: String,
        warehouse_code: String,
        stock_status_code: String,
        stock_status_description: String,
        type_code: String,
        type_description: String,
        status_code: String,
        status_description: String,
        has_serial_numbers: bool,
        customer_number: i64,
        meta_fields: Value,
        lines: Vec<ReceiptLine>,
    }
);

record!(ReceiptLine {
    line_number: i64,
    item_code: String,
    item_description: String,
    quantity_expected: i64,
    quantity_received: i64,
    unit: String,
    status_code: String,
    status_description: String,
    stock_status_code: String,
    stock_status_description: String,
    has_serial_numbers: bool,
    best_before_date: String,
    lot_number: String,
    #[serde(rename = "EANSSCC")]
    eansscc: String,
    warehouse_code: String,
    meta_fields: Value,
});

record!(
    /// Serial numbers of one receipt, shipment or EANSSCC line. The docs call
    /// `lineNumber` a string but show a number, so it is kept as JSON.
    SerialNumberGroup {
        item_code: String,
        description: String,
        line_number: Value,
        serial_numbers: Vec<Vec<String>>,
    }
);

record!(OrderSerialNumber {
    item_code: String,
    description: String,
    serial_number: String,
});

record!(
    /// An outbound order.
    Order {
        number: String,
        reference: String,
        additional_reference: String,
        delivery_date: String,
        note: String,
        shipping_tag: String,
        tag: String,
        pickup_point: String,
        terms_of_delivery: String,
        method: String,
        webshop_id: i64,
        paid: bool,
        warehouse_code: String,
        r#type: String,
        priority: i64,
        ride_number: i64,
        ride: Ride,
        status_code: String,
        edi: Map<String, Value>,
        texts: Texts,
        prices: OrderPrices,
        invoice_address: Address,
        delivery_address: Address,
        meta_fields: Value,
        lines: Vec<OrderLine>,
    }
);

record!(Ride {
    number: Number,
    route_code: String,
    stop_number: Number,
});

record!(OrderPrices {
    currency: String,
    total_price_net: Number,
    total_price_gross: Number,
    total_discount: Number,
    handling_cost: Number,
    shipping_cost: Number,
    rembours: Number,
});

record!(Texts {
    picking: String,
    scanner: String,
    packing_table: String,
    packing_slip: String,
    shipping_label: String,
});

record!(
    /// An invoice or delivery address.
    Address {
        number: i64,
        name: String,
        name_extension: String,
        company: String,
        street: String,
        /// "May be empty on a foreign address": a number, or empty.
        street_number: Value,
        extension: String,
        second_address_line: String,
        third_address_line: String,
        zipcode: String,
        city: String,
        state: String,
        country: String,
        phone_number: String,
        mobile_number: String,
        email: String,
        language: String,
    }
);

record!(OrderLine {
    line_number: i64,
    item_code: String,
    item_description: String,
    quantity: i64,
    quantity_delivered: i64,
    unit: String,
    variant_code: String,
    sales_unit_code: String,
    prices: LinePrices,
    lotnumbers: Vec<LotReservation>,
    texts: Texts,
    meta_fields: Value,
});

record!(LinePrices {
    vat_percentage: Number,
    unit_price_net: Number,
    unit_price_gross: Number,
    price_net: Number,
    price_gross: Number,
    discount: Number,
});

record!(LotReservation {
    lotnumber: String,
    quantity: i64,
});

record!(
    /// A shipment of an order (also the SHIPMENT webhook's payload). The docs
    /// call `colloId` an integer and show a string, so it is kept as JSON.
    Shipment {
        shipment_nr: i64,
        collo_id: Value,
        order_reference: String,
        additional_reference: String,
        delivery_date: String,
        shipper_code: String,
        shipper_name: String,
        track_and_trace: String,
        track_and_trace_url: String,
        has_serial_numbers: bool,
        meta_fields: Value,
        shipping_lines: Vec<ShipmentLine>,
    }
);

record!(ShipmentLine {
    order_line: i64,
    order_line_external: Value,
    item_code: String,
    item_description: String,
    quantity_ordered: i64,
    quantity_delivered: i64,
    unit: String,
    has_serial_numbers: bool,
    best_before_date: String,
    lot_number: String,
    #[serde(rename = "EANSSCC")]
    eansscc: String,
    meta_fields: Value,
});

record!(
    /// An article. The list example writes `statusCode` as "30", the create
    /// example as 30, and `weight` as "3.75": those are kept as JSON.
    Item {
        code: String,
        internal_description: String,
        description: String,
        assembled: bool,
        assembly_type: String,
        item_group: String,
        default_unit: String,
        status_code: Value,
        barcode: String,
        safety_data_sheet: String,
        traceability: String,
        weight: Value,
        best_before: BestBefore,
        components: Vec<Component>,
        units: Vec<ItemUnit>,
        warehouses: Vec<ItemWarehouse>,
    }
);

record!(BestBefore {
    receipt_date_entry: String,
    best_before_period: i64,
    quarantine_period: i64,
    warranty_period: i64,
});

record!(Component {
    code: String,
    sku_code: String,
    quantity: Number,
});

record!(ItemUnit {
    unit: String,
    width: Number,
    length: Number,
    height: Number,
    #[serde(rename = "amountSKU")]
    amount_sku: i64,
    barcode: String,
});

record!(ItemWarehouse {
    code: String,
    minimum_quantity: i64,
    maximum_quantity: i64,
    safe_quantity: i64,
    reorder_quantity: i64,
});

record!(
    /// Stock of one item over all warehouses (also the STOCK webhook's payload).
    Stock {
        item_code: String,
        item_description: String,
        stock_keeping: Value,
        physical: Number,
        netto_salable: Number,
        announced: Number,
        customer_number: i64,
        warehouses: Vec<StockWarehouse>,
    }
);

record!(StockWarehouse {
    announced: Number,
    physical: Number,
    netto_salable: Number,
    warehouse_code: String,
});

record!(
    /// One stock location line.
    StockDetail {
        item_code: String,
        item_description: String,
        customer_nr: i64,
        warehouse_code: String,
        location: String,
        stock_status_code: String,
        stock_status_description: String,
        best_before: String,
        lot_number: String,
        #[serde(rename = "quantitySKU")]
        quantity_sku: Number,
        sku_code: String,
        #[serde(rename = "quantityHU")]
        quantity_hu: Number,
        hu_code: String,
        eansscc: String,
    }
);

record!(
    /// The STOCKMUTATION webhook's payload.
    StockMutation {
        #[serde(rename = "EANSSCC")]
        eansscc: String,
        best_before_date: String,
        customer_number: i64,
        has_serial_numbers: bool,
        item_code: String,
        location: String,
        lot_number: String,
        quantity: Number,
        reason_code: i64,
        reason_code_description: String,
        registration_date: String,
        stock_keeping_unit: String,
        stock_status: i64,
        type_move: i64,
        warehouse_code: String,
    }
);

record!(
    /// The ANNOUNCEMENTSTATUS and ORDERSTATUS webhooks' payload.
    StatusChange {
        announcement_nr: i64,
        order_nr: i64,
        reference: String,
        order_reference: String,
        status_code: String,
        status_description: String,
        old_status_code: String,
        old_status_description: String,
    }
);

record!(
    /// The ORDERLINESTATUS and PICKSLIPLINESTATUS webhooks' payload.
    LineStatusChange {
        order_nr: i64,
        order_reference: String,
        lines: Vec<LineStatus>,
    }
);

record!(LineStatus {
    line_number: i64,
    status_code: String,
    status_description: String,
    old_status_code: String,
    old_status_description: String,
});

record!(
    /// The RMA (return) webhook's payload.
    Rma {
        order_reference: String,
        lines: Vec<RmaLine>,
    }
);

record!(RmaLine {
    line_number: i64,
    item_code: String,
    item_description: String,
    quantity: Number,
    questions: Vec<RmaQuestion>,
});

record!(RmaQuestion {
    question_number: i64,
    question: String,
    answer_number: i64,
    answer: String,
});

record!(
    /// A webhook subscription.
    WebhookSubscription {
        id: Value,
        topic: String,
        url: String,
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metafields_and_unknown_fields_survive_a_round_trip() {
        let input = json!({
            "reference": "SO1", "deliveryDate": "2022-08-15",
            "metaFields": {"ERP_App": {"division": 2479893, "guid": "99566b2c"}},
            "somethingNew": [1, 2],
            "prices": {"totalPriceNet": 12.10, "rembours": 3},
            "lines": [{"itemCode": "16082", "quantity": 1, "metaFields": {"wishlist": "WISH_1024"}}]
        });
        let order: Order = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(order.lines.as_ref().unwrap()[0].quantity, Some(1));
        assert_eq!(serde_json::to_value(&order).unwrap(), input);
    }

    #[test]
    fn a_wrong_type_is_refused() {
        let err = serde_json::from_value::<Order>(json!({"priority": "high"})).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
    }
}
