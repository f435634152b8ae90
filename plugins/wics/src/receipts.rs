//! Receipts: what the warehouse actually received.
use crate::client::{self, op};
use crate::models::{Receipt, SerialNumberGroup};
use crate::spec::{any, array, boolean, date, integer, output_object, string, Fields};
use spoke_pdk::{Method, Op, Value};

const LIST: &str = "/api/receipt";
const ONE: &str = "/api/receipt/{identifier}";
const SERIALS: &str = "/api/receipt/{identifier}/serialnumber";
const ID: (&str, &str) = ("identifier", "the receipt's number");

fn header_fields() -> Fields {
    vec![
        ("number", string()),
        ("reference", string()),
        ("receiptDate", date()),
        ("warehouseCode", string()),
        ("stockStatusCode", string()),
        ("stockStatusDescription", string()),
        ("typeCode", string()),
        ("typeDescription", string()),
        ("statusCode", string()),
        ("statusDescription", string()),
        ("hasSerialNumbers", boolean()),
        ("customerNumber", integer()),
    ]
}

fn line_fields() -> Fields {
    vec![
        ("lineNumber", integer()),
        ("itemCode", string()),
        ("itemDescription", string()),
        ("quantityReceived", integer()),
        ("quantityExpected", integer()),
        ("unit", string()),
        ("statusCode", string()),
        ("statusDescription", string()),
        ("stockStatusCode", string()),
        ("stockStatusDescription", string()),
        ("hasSerialNumbers", boolean()),
        ("bestBeforeDate", string()),
        ("lotNumber", string()),
        ("EANSSCC", string()),
        ("warehouseCode", string()),
        ("metaFields", any()),
    ]
}

pub fn record_schema() -> Value {
    let mut fields = header_fields();
    fields.push(("warehouse", string()));
    fields.push(("metaFields", any()));
    fields.push(("lines", array(output_object(&line_fields()))));
    output_object(&fields)
}

/// Serial numbers grouped per line, as receipts, shipments and stock list them.
pub fn serial_group_schema() -> Value {
    output_object(&[
        ("itemCode", string()),
        ("description", string()),
        ("lineNumber", spoke_pdk::json!({"type": ["integer", "string"]})),
        ("serialNumbers", array(array(string()))),
    ])
}

pub fn ops() -> Vec<Op> {
    vec![
        Op {
            paged: true,
            ..op("list_receipts", "List receipts, filtered and paged", Method::Get, LIST,
                client::list_input(&header_fields()), client::list_output(record_schema()),
                |input| client::list::<Receipt>(LIST, input, "a receipt"))
        },
        op("get_receipt", "Get one receipt with its lines", Method::Get, ONE,
            client::path_input(&[ID]), record_schema(),
            |input| client::get::<Receipt>(ONE, input, "a receipt")),
        op("list_receipt_serial_numbers", "List the serial numbers received on a receipt", Method::Get, SERIALS,
            client::path_input(&[ID]), array(serial_group_schema()),
            |input| client::get::<Vec<SerialNumberGroup>>(SERIALS, input, "receipt serial numbers")),
    ]
}
