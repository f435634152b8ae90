//! Announcements: inbound deliveries the warehouse should expect.
use crate::client::{self, op};
use crate::models::Announcement;
use crate::spec::{any, array, date, integer, object, output_object, string, Fields};
use spoke_pdk::{Method, Op, Value};

const LIST: &str = "/api/announcement";
const ONE: &str = "/api/announcement/{identifier}";
const ID: (&str, &str) = ("identifier", "the announcement's number or reference");

fn line_fields() -> Fields {
    vec![
        ("lineNumber", integer()),
        ("itemCode", string()),
        ("itemDescription", string()),
        ("unit", string()),
        ("quantityExpected", integer()),
        ("lotNumber", string()),
        ("bestBeforeDate", date()),
        ("metaFields", any()),
    ]
}

/// The header fields, with `lines` items of the given schema.
fn fields(line: Value) -> Fields {
    vec![
        ("reference", string()),
        ("additionalReference", string()),
        ("plannedDate", date()),
        ("type", string()),
        ("warehouseCode", string()),
        ("warehouse", string()),
        ("door", string()),
        ("supplier", integer()),
        ("carrier", integer()),
        ("stockStatus", integer()),
        ("metaFields", any()),
        ("lines", array(line)),
    ]
}

/// An announcement as WICS answers it.
pub fn record_schema() -> Value {
    let mut all = vec![("number", string())];
    all.extend(fields(output_object(&line_fields())));
    output_object(&all)
}

fn filters() -> Fields {
    vec![
        ("number", string()),
        ("reference", string()),
        ("additionalReference", string()),
        ("plannedDate", date()),
        ("type", string()),
        ("warehouseCode", string()),
        ("supplier", integer()),
        ("carrier", integer()),
        ("stockStatus", integer()),
    ]
}

const LINE_REQUIRED: [&str; 4] = ["itemCode", "quantityExpected", "lotNumber", "bestBeforeDate"];

pub fn ops() -> Vec<Op> {
    vec![
        Op {
            paged: true,
            ..op("list_announcements", "List announcements, filtered and paged", Method::Get, LIST,
                client::list_input(&filters()), client::list_output(record_schema()),
                |input| client::list::<Announcement>(LIST, input, "an announcement"))
        },
        op("get_announcement", "Get one announcement with its lines", Method::Get, ONE,
            client::path_input(&[ID]), record_schema(),
            |input| client::get::<Announcement>(ONE, input, "an announcement")),
        op("create_announcement", "Create an announcement (expected inbound delivery)", Method::Post, LIST,
            client::write_input(&[], &fields(object(&line_fields(), &LINE_REQUIRED)), &["reference", "plannedDate", "stockStatus", "supplier"]),
            client::write_output(),
            |input| client::write(Method::Post, LIST, input, Some(client::body_of::<Announcement>(LIST, input)?))),
        op("update_announcement", "Update an announcement", Method::Put, ONE,
            client::write_input(&[ID], &fields(object(&line_fields(), &[])), &[]),
            client::write_output(),
            |input| client::write(Method::Put, ONE, input, Some(client::body_of::<Announcement>(ONE, input)?))),
        op("delete_announcement", "Delete an announcement", Method::Delete, ONE,
            client::path_input(&[ID]), client::write_output(),
            |input| client::write(Method::Delete, ONE, input, None)),
    ]
}

