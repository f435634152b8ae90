//! Platform sales leads: create, get, cancel. Types and statuses are the
//! documented enumerations.
use crate::client::call_value;
use crate::errors::BadRequest;
use crate::op;
use crate::types::{doc, envelope, input, nullable, record, t};
use spoke_pdk::http::{fill_path, Request};
use spoke_pdk::{json, Error, Method, Op, Value};

const CREATE: &str = "/api/v1/leads/create.json";
const GET: &str = "/api/v1/leads/{uuid}.json";
const CANCEL: &str = "/api/v1/leads/{uuid}/cancel.json";

pub const LEAD_TYPES: [&str; 7] = ["information", "sales_offer", "test_ride", "contact_request", "exchange", "complaint", "other"];
pub const LEAD_STATUSES: [&str; 7] = ["open", "noticed", "accepted", "declined", "succeeded", "failed", "cancelled"];

fn options() -> Value {
    record(&[
        ("test_ride_requested", t("boolean")),
        ("phone_call_requested", t("boolean")),
        ("finance_information_requested", t("boolean")),
        ("insurance_information_requested", t("boolean")),
    ])
}

fn object() -> Value {
    record(&[
        ("description", t("?string")),
        ("object_id", doc(t("?integer"), "object id in the dealer's stock (see locate_stock)")),
        ("article_number", t("?string")),
        ("barcode", t("?string")),
    ])
}

fn exchange_object() -> Value {
    record(&[("exchange_description", t("?string")), ("exchange_remarks", t("?string"))])
}

fn customer() -> Value {
    record(&[
        ("customer_address_id", t("?integer")),
        ("address_type", t("?string")),
        ("customer_id", t("?integer")),
        ("is_business_address", t("boolean")),
        ("company_name", t("?string")),
        ("name", t("string")),
        ("street", t("string")),
        ("house_number", t("string")),
        ("house_number_postfix", t("string")),
        ("postal_code", t("string")),
        ("city", t("string")),
        ("country_code", doc(t("string"), "ISO 3166 country code")),
        ("phone_number", t("string")),
        ("email", t("string")),
        ("notes", t("string")),
    ])
}

/// Input sub-objects refuse unknown fields, like the top level.
fn closed(mut schema: Value, required: &[&str]) -> Value {
    schema["additionalProperties"] = json!(false);
    schema["required"] = json!(required);
    schema
}

fn lead_output() -> Value {
    envelope(&[(
        "sales_lead",
        record(&[
            ("uuid", t("?string")),
            ("store_id", t("string")),
            ("type", json!({"type": "string", "enum": LEAD_TYPES})),
            ("status", json!({"type": "string", "enum": LEAD_STATUSES})),
            ("title", t("string")),
            ("message", t("string")),
            ("costs_ex_vat_cents", t("cents")),
            ("options", options()),
            ("object", nullable(object())),
            ("exchange_object", nullable(exchange_object())),
            ("customer", customer()),
            ("created_at", t("?date-time")),
            ("modified_at", t("?date-time")),
        ]),
    )])
}

fn create_input() -> Value {
    input(
        &[
            ("store_id", doc(t("string"), "the dealer's store as [account]-[store], e.g. 1-1 (see list_locator_stores)")),
            ("type", doc(json!({"type": "string", "enum": LEAD_TYPES}), "type of the lead")),
            ("status", doc(json!({"type": "string", "enum": LEAD_STATUSES}), "status of the lead (default open)")),
            ("title", json!({"type": "string", "minLength": 1})),
            ("message", t("string")),
            ("costs_ex_vat_cents", doc(t("cents"), "what the platform charges the dealer when the lead is accepted")),
            ("options", closed(options(), &[])),
            ("object", closed(object(), &[])),
            ("exchange_object", closed(exchange_object(), &[])),
            ("customer", closed(customer(), &["name"])),
        ],
        &["store_id", "type", "title", "customer"],
    )
}

/// `[account]-[store]`: two numbers joined by a dash.
fn check_store_id(input: &Value) -> Result<(), Error> {
    let id = input["store_id"].as_str().unwrap_or_default();
    let ok = id.split_once('-').is_some_and(|(a, s)| {
        !a.is_empty() && !s.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) && s.bytes().all(|b| b.is_ascii_digit())
    });
    if ok { Ok(()) } else { Err(Error::invalid_input("store_id", format!("{id:?} is not [account]-[store], e.g. 1-1"))) }
}

pub fn check_uuid(input: &Value) -> Result<(), Error> {
    let text = input["uuid"].as_str().unwrap_or_default();
    let groups: Vec<&str> = text.split('-').collect();
    let ok = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]) && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok { Ok(()) } else { Err(Error::invalid_input("uuid", format!("{text:?} is not a UUID"))) }
}

/// The lead as CycleSoftware answered it. After a 200 the lead exists at the
/// dealer, so nothing in the answer may fail the call: a field left out, null
/// or looser than documented is passed on as sent (the script reads the
/// vendor's own JSON), and only an answer without a `sales_lead` object at all
/// is read as an empty one.
fn lead(mut answer: Value) -> Value {
    let sales_lead = match answer.get_mut("sales_lead").map(Value::take) {
        Some(lead @ Value::Object(_)) => lead,
        _ => json!({}),
    };
    json!({ "sales_lead": sales_lead })
}

fn create_lead(input: &Value) -> Result<Value, Error> {
    check_store_id(input)?;
    let mut body = input.clone();
    if body.get("status").is_none() {
        body["status"] = json!("open");
    }
    Ok(lead(call_value(Request::post(CREATE).json(&body), BadRequest::Refused)?))
}

fn get_lead(input: &Value) -> Result<Value, Error> {
    check_uuid(input)?;
    Ok(lead(call_value(Request::get(fill_path(GET, input)?), BadRequest::Refused)?))
}

fn cancel_lead(input: &Value) -> Result<Value, Error> {
    check_uuid(input)?;
    // A lead the dealer already acted on cannot be cancelled: a conflict.
    call_value(Request::post(fill_path(CANCEL, input)?), BadRequest::Conflict)
}

pub fn operations() -> Vec<Op> {
    let by_uuid = || input(&[("uuid", doc(t("uuid"), "the lead's UUID"))], &["uuid"]);
    vec![
        op("create_lead", "Create a sales lead for a dealer's store.", Method::Post, CREATE, create_input(), lead_output(), create_lead),
        op("get_lead", "A sales lead and its current status.", Method::Get, GET, by_uuid(), lead_output(), get_lead),
        op(
            "cancel_lead",
            "Cancel a sales lead (only while the dealer has not accepted or declined it).",
            Method::Post,
            CANCEL,
            by_uuid(),
            envelope(&[]),
            cancel_lead,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use spoke_pdk::schema::validate;

    #[test]
    fn unknown_lead_type_lists_the_allowed_ones() {
        let bad = json!({"store_id": "1-1", "type": "spam", "title": "x", "customer": {"name": "A"}});
        let err = validate(&create_input(), &bad).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("type"));
        assert!(err.message.contains("test_ride") && err.message.contains("complaint"), "{}", err.message);
    }

    #[test]
    fn store_ids_and_uuids_are_checked() {
        assert!(check_store_id(&json!({"store_id": "1-1"})).is_ok());
        assert!(check_store_id(&json!({"store_id": "43831"})).is_err());
        assert!(check_uuid(&json!({"uuid": "0c6b40a4-a217-11e8-92bb-005056a46320"})).is_ok());
        assert!(check_uuid(&json!({"uuid": "0c6b40a4-a217-11e8-92bb-005056a4632z"})).is_err());
    }
}
