//! Orders: outbound orders, their serial numbers, shipments and payment.
use crate::client::{self, op};
use crate::models::{Order, OrderSerialNumber, Shipment};
use crate::spec::{any, array, boolean, date, integer, number, object, output_object, string, Fields};
use crate::shipments;
use spoke_pdk::{json, Method, Op, Value};

const LIST: &str = "/api/order";
const ONE: &str = "/api/order/{identifier}";
const SERIALS: &str = "/api/order/{identifier}/serialnumber";
const SHIPMENTS: &str = "/api/order/{reference}/shipment";
const PAID: &str = "/api/order/{reference}/paid";
const ID: (&str, &str) = ("identifier", "the order's reference (or WICS number)");
const REFERENCE: (&str, &str) = ("reference", "the order's reference");

const ADDRESS_REQUIRED: [&str; 6] = ["name", "streetNumber", "zipcode", "city", "country", "email"];
const LINE_REQUIRED: [&str; 2] = ["itemCode", "quantity"];

fn address_fields() -> Fields {
    vec![
        ("name", string()),
        ("nameExtension", string()),
        ("company", string()),
        ("street", string()),
        ("streetNumber", json!({"type": "integer", "description": "only the number; the addition goes in `extension`"})),
        ("extension", string()),
        ("secondAddressLine", string()),
        ("thirdAddressLine", string()),
        ("zipcode", string()),
        ("city", string()),
        ("state", string()),
        ("country", json!({"type": "string", "minLength": 2, "maxLength": 2, "description": "two-letter country code"})),
        ("phoneNumber", string()),
        ("mobileNumber", string()),
        ("email", string()),
        ("language", string()),
    ]
}

fn decimals(names: &[&'static str]) -> Fields {
    names.iter().map(|name| (*name, number())).collect()
}

fn texts() -> Value {
    object(&[("picking", string()), ("scanner", string()), ("packingTable", string()), ("packingSlip", string()), ("shippingLabel", string())], &[])
}

fn line_fields() -> Fields {
    vec![
        ("lineNumber", integer()),
        ("itemCode", string()),
        ("itemDescription", string()),
        ("quantity", integer()),
        ("unit", string()),
        ("variantCode", string()),
        ("salesUnitCode", string()),
        ("prices", object(&decimals(&["vatPercentage", "unitPriceNet", "unitPriceGross", "priceNet", "priceGross", "discount"]), &[])),
        ("lotnumbers", array(object(&[("lotnumber", string()), ("quantity", integer())], &[]))),
        ("texts", texts()),
        ("metaFields", any()),
    ]
}

/// The header fields; `address` and `line` are the schemas of the addresses and lines.
fn fields(address: Value, line: Value) -> Fields {
    vec![
        ("reference", string()),
        ("additionalReference", string()),
        ("deliveryDate", date()),
        ("paid", json!({"type": "boolean", "description": "default true"})),
        ("webshopId", integer()),
        ("warehouseCode", string()),
        ("note", string()),
        ("shippingTag", string()),
        ("tag", string()),
        ("pickupPoint", string()),
        ("termsOfDelivery", string()),
        ("method", string()),
        ("type", string()),
        ("priority", json!({"type": "integer", "enum": [1, 2, 3], "description": "1 high, 2 medium, 3 low"})),
        ("rideNumber", integer()),
        ("ride", object(&[("number", number()), ("routeCode", string()), ("stopNumber", number())], &[])),
        ("texts", texts()),
        ("prices", object(
            &[vec![("currency", string())], decimals(&["totalPriceNet", "totalPriceGross", "totalDiscount", "handlingCost", "shippingCost", "rembours"])].concat(),
            &[],
        )),
        ("invoiceAddress", address.clone()),
        ("deliveryAddress", address),
        ("metaFields", any()),
        ("lines", array(line)),
    ]
}

fn input_fields() -> Fields {
    fields(object(&address_fields(), &ADDRESS_REQUIRED), object(&line_fields(), &LINE_REQUIRED))
}

pub fn record_schema() -> Value {
    let mut address = address_fields();
    address.push(("number", integer()));
    // "May be empty on a foreign address."
    address.iter_mut().find(|(n, _)| *n == "streetNumber").expect("streetNumber").1 = json!({"type": ["integer", "string"]});
    let mut line = line_fields();
    line.push(("quantityDelivered", integer()));
    let mut all = vec![("number", string()), ("statusCode", string()), ("edi", json!({"type": "object"}))];
    all.extend(fields(output_object(&address), output_object(&line)));
    output_object(&all)
}

fn filters() -> Fields {
    vec![
        ("number", string()),
        ("reference", string()),
        ("additionalReference", string()),
        ("deliveryDate", date()),
        ("webshopId", integer()),
        ("note", string()),
        ("shippingTag", string()),
        ("tag", string()),
        ("pickupPoint", string()),
        ("termsOfDelivery", string()),
        ("method", string()),
        ("type", string()),
        ("priority", integer()),
        ("rideNumber", integer()),
        ("paid", boolean()),
        ("statusCode", string()),
        ("warehouseCode", string()),
    ]
}

fn serial_schema() -> Value {
    output_object(&[("itemCode", string()), ("description", string()), ("serialNumber", string())])
}

pub fn ops() -> Vec<Op> {
    vec![
        Op {
            paged: true,
            ..op("list_orders", "List orders, filtered and paged", Method::Get, LIST,
                client::list_input(&filters()), client::list_output(record_schema()),
                |input| client::list::<Order>(LIST, input, "an order"))
        },
        op("get_order", "Get one order with its lines", Method::Get, ONE,
            client::path_input(&[ID]), record_schema(),
            |input| client::get::<Order>(ONE, input, "an order")),
        op("create_order", "Create an order", Method::Post, LIST,
            client::write_input(&[], &input_fields(), &["deliveryDate"]), client::write_output(),
            |input| client::write(Method::Post, LIST, input, Some(client::body_of::<Order>(LIST, input)?))),
        op("update_order", "Update an order", Method::Put, ONE,
            client::write_input(&[ID], &input_fields(), &[]), client::write_output(),
            |input| client::write(Method::Put, ONE, input, Some(client::body_of::<Order>(ONE, input)?))),
        op("delete_order", "Delete an order", Method::Delete, ONE,
            client::path_input(&[ID]), client::write_output(),
            |input| client::write(Method::Delete, ONE, input, None)),
        op("list_order_serial_numbers", "List the serial numbers shipped on an order", Method::Get, SERIALS,
            client::path_input(&[ID]), array(serial_schema()),
            |input| client::get::<Vec<OrderSerialNumber>>(SERIALS, input, "order serial numbers")),
        op("list_order_shipments", "List the shipments of an order, with track and trace", Method::Get, SHIPMENTS,
            client::path_input(&[REFERENCE]), array(shipments::record_schema()),
            |input| client::get::<Vec<Shipment>>(SHIPMENTS, input, "a shipment")),
        Op {
            // Setting paid twice leaves it paid.
            idempotent: true,
            ..op("set_order_paid", "Mark an order as paid", Method::Post, PAID,
                client::path_input(&[REFERENCE]), client::write_output(),
                |input| client::write(Method::Post, PAID, input, None))
        },
    ]
}
