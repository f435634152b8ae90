//! Stock: totals per item, location details, serial numbers per EANSSCC.
use crate::client::{self, op};
use crate::models::{SerialNumberGroup, Stock, StockDetail};
use crate::receipts::serial_group_schema;
use crate::spec::{any, array, date, integer, number, output_object, string, Fields};
use spoke_pdk::{Method, Op, Value};

const LIST: &str = "/api/stock";
const ONE: &str = "/api/stock/{itemCode}";
const DETAILS: &str = "/api/stock/detail";
const ITEM_DETAILS: &str = "/api/stock/{itemCode}/detail";
const SERIALS: &str = "/api/stock/{EANSSCC}/serialnumber";
const ITEM_CODE: (&str, &str) = ("itemCode", "the item code");

fn stock_fields() -> Fields {
    vec![
        ("itemCode", string()),
        ("itemDescription", string()),
        ("physical", number()),
        ("nettoSalable", number()),
        ("announced", number()),
        ("customerNumber", integer()),
    ]
}

pub fn record_schema() -> Value {
    let mut fields = stock_fields();
    fields.push(("stockKeeping", any()));
    fields.push((
        "warehouses",
        array(output_object(&[("announced", number()), ("physical", number()), ("nettoSalable", number()), ("warehouseCode", string())])),
    ));
    output_object(&fields)
}

fn detail_fields() -> Fields {
    vec![
        ("itemCode", string()),
        ("itemDescription", string()),
        ("customerNr", integer()),
        ("warehouseCode", string()),
        ("location", string()),
        ("stockStatusCode", string()),
        ("stockStatusDescription", string()),
        ("bestBefore", date()),
        ("lotNumber", string()),
        ("eansscc", string()),
        ("skuCode", string()),
        ("quantitySKU", integer()),
        ("huCode", string()),
        ("quantityHU", integer()),
    ]
}

pub fn ops() -> Vec<Op> {
    let detail_schema = output_object(&detail_fields());
    vec![
        Op {
            paged: true,
            ..op("list_stock", "List stock per item (e.g. filters.nettoSalable.gte = 1000), paged", Method::Get, LIST,
                client::list_input(&stock_fields()), client::list_output(record_schema()),
                |input| client::list::<Stock>(LIST, input, "a stock record"))
        },
        op("get_stock", "Get the stock of one item, per warehouse", Method::Get, ONE,
            client::path_input(&[ITEM_CODE]), record_schema(),
            |input| client::get::<Stock>(ONE, input, "a stock record")),
        Op {
            paged: true,
            ..op("list_stock_details", "List stock per location, lot and EANSSCC, filtered and paged", Method::Get, DETAILS,
                client::list_input(&detail_fields()), client::list_output(detail_schema.clone()),
                |input| client::list::<StockDetail>(DETAILS, input, "a stock detail"))
        },
        op("get_stock_details", "List the stock details of one item", Method::Get, ITEM_DETAILS,
            client::path_input(&[ITEM_CODE]), array(detail_schema),
            |input| client::get::<Vec<StockDetail>>(ITEM_DETAILS, input, "a stock detail")),
        op("list_stock_serial_numbers", "List the serial numbers stored under an EANSSCC", Method::Get, SERIALS,
            client::path_input(&[("EANSSCC", "the EAN/SSCC barcode of the stock")]), array(serial_group_schema()),
            |input| client::get::<Vec<SerialNumberGroup>>(SERIALS, input, "stock serial numbers")),
    ]
}
