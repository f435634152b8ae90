//! Shipments: serial numbers per shipment, and the shipment record shared
//! with the order shipments list and the SHIPMENT webhook.
use crate::client::{self, op};
use crate::models::SerialNumberGroup;
use crate::receipts::serial_group_schema;
use crate::spec::{any, array, boolean, integer, output_object, string};
use spoke_pdk::{json, Method, Op, Value};

const SERIALS: &str = "/api/shipment/{identifier}/serialnumber";

pub fn record_schema() -> Value {
    let line = output_object(&[
        ("orderLine", integer()),
        ("orderLineExternal", integer()),
        ("itemCode", string()),
        ("itemDescription", string()),
        ("quantityOrdered", integer()),
        ("quantityDelivered", integer()),
        ("unit", string()),
        ("hasSerialNumbers", boolean()),
        ("bestBeforeDate", string()),
        ("lotNumber", string()),
        ("EANSSCC", string()),
        ("metaFields", any()),
    ]);
    output_object(&[
        ("shipmentNr", integer()),
        ("colloId", json!({"type": ["integer", "string"]})),
        ("orderReference", string()),
        ("additionalReference", string()),
        ("deliveryDate", string()),
        ("shipperCode", string()),
        ("shipperName", string()),
        ("trackAndTrace", string()),
        ("trackAndTraceUrl", string()),
        ("hasSerialNumbers", boolean()),
        ("metaFields", any()),
        ("shippingLines", array(line)),
    ])
}

pub fn ops() -> Vec<Op> {
    vec![op(
        "list_shipment_serial_numbers",
        "List the serial numbers of a shipment",
        Method::Get,
        SERIALS,
        client::path_input(&[("identifier", "the shipment number")]),
        array(serial_group_schema()),
        |input| client::get::<Vec<SerialNumberGroup>>(SERIALS, input, "shipment serial numbers"),
    )]
}
