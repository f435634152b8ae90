//! Sales orders: move to another store, change the delivery method,
//! cancel, create invoices (a form-encoded POST with its own 15/minute limit).
use crate::client::{call, call_value, to_json, with_query};
use crate::errors::BadRequest;
use crate::models::{InvoicesAnswer, UpdateDeliveryMethodResult, UpdateStoreResult};
use crate::op;
use crate::types::{array_of, doc, envelope, input, nullable, record, t};
use spoke_pdk::http::{fill_path, scalar_text, Request};
use spoke_pdk::{json, Error, Method, Op, Value};

const UPDATE_STORE: &str = "/api/v1/sales/orders/{sales_order_id}/update-store.json";
const UPDATE_DELIVERY: &str = "/api/v1/sales/orders/{sales_order_id}/update-delivery-method.json";
const CANCEL: &str = "/api/v1/sales/orders/{sales_order_id}/cancel.json";
const CREATE_INVOICES: &str = "/api/v1/sales/orders/{sales_order_id}/create-invoices.json";

/// The optional POST parameters of create-invoices, in the docs' order.
const INVOICE_FIELDS: [&str; 7] = [
    "employee_id",
    "order_status_id",
    "book",
    "customer_messages",
    "allow_resend_messages",
    "apply_service_vat_correction",
    "split_items_as_text_on_default_customer_invoice",
];

fn sales_order_id() -> (&'static str, Value) {
    ("sales_order_id", doc(t("id"), "sales order id (order_id in the SOAP APIs)"))
}

fn delivery_address() -> Value {
    let mut schema = record(&[
        // In the docs' example though not in their property table.
        ("address_type_id", json!({"type": ["integer", "string"]})),
        ("is_business_address", t("boolean")),
        ("company_name", t("?string")),
        ("name", t("string")),
        ("street", t("string")),
        ("house_number", t("string")),
        ("house_number_postfix", t("string")),
        ("postal_code", t("string")),
        ("city", t("string")),
        ("country_code", t("string")),
        ("phone_number", t("string")),
        ("email", t("string")),
        ("notes", t("string")),
    ]);
    schema["additionalProperties"] = json!(false);
    schema["required"] = json!(["name", "street", "house_number", "postal_code", "city", "country_code"]);
    nullable(schema)
}

/// The sales order id goes in the path; the rest of the input is the body.
fn body_without_id(input: &Value) -> Value {
    let mut body = input.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("sales_order_id");
    }
    body
}

fn update_sales_order_store(input: &Value) -> Result<Value, Error> {
    let req = Request::post(fill_path(UPDATE_STORE, input)?).json(&body_without_id(input));
    let answer: UpdateStoreResult = call(req, BadRequest::Conflict)?;
    to_json(&answer)
}

fn update_sales_order_delivery_method(input: &Value) -> Result<Value, Error> {
    if input.get("new_delivery_method_id").is_none_or(Value::is_null) && input.get("new_delivery_address").is_none_or(Value::is_null) {
        return Err(Error::invalid_input("", "give new_delivery_method_id, new_delivery_address or both"));
    }
    let req = Request::post(fill_path(UPDATE_DELIVERY, input)?).json(&body_without_id(input));
    let answer: UpdateDeliveryMethodResult = call(req, BadRequest::Conflict)?;
    to_json(&answer)
}

fn cancel_sales_order(input: &Value) -> Result<Value, Error> {
    let req = with_query(Request::post(fill_path(CANCEL, input)?), input, &["cancellation_type_id", "delete_exchange"]);
    call_value(req, BadRequest::Conflict)
}

/// Form fields as the docs' example writes them: booleans as 1/0.
fn invoice_form(input: &Value) -> Vec<(String, String)> {
    INVOICE_FIELDS
        .iter()
        .filter_map(|name| {
            let text = match input.get(*name)? {
                Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
                other => scalar_text(other)?,
            };
            Some((name.to_string(), text))
        })
        .collect()
}

fn create_invoices(input: &Value) -> Result<Value, Error> {
    let req = Request::post(fill_path(CREATE_INVOICES, input)?).form(&invoice_form(input));
    let answer: InvoicesAnswer = call(req, BadRequest::Conflict)?;
    Ok(json!({ "invoices": to_json(&answer.invoices)? }))
}

pub fn operations() -> Vec<Op> {
    let invoice = record(&[
        ("invoice_number", t("integer")),
        ("customer_id", t("integer")),
        ("sent_messages", record(&[("phone_message", t("boolean")), ("email_message", t("boolean"))])),
        ("documents", array_of(record(&[("document_mime_type", t("string")), ("document_base64", t("string"))]))),
    ]);
    let item = json!({
        "type": "object", "additionalProperties": false, "required": ["item_id"],
        "properties": {"item_id": t("id"), "mode": doc(t("?integer"), "transfer mode for this item (common enum sales_order_store_transfer_modes)")}
    });
    vec![
        op(
            "update_sales_order_store",
            "Move a sales order to another store, optionally changing its delivery method and address.",
            Method::Post,
            UPDATE_STORE,
            input(
                &[
                    sales_order_id(),
                    ("to_store_id", doc(t("id"), "the new store id")),
                    ("default_mode", doc(t("integer"), "default transfer mode (common enum sales_order_store_transfer_modes)")),
                    ("new_delivery_method_id", doc(t("?integer"), "new delivery method (common enum delivery_methods)")),
                    ("new_delivery_address", delivery_address()),
                    ("items", doc(array_of(item), "sales order items with their own transfer mode")),
                ],
                &["sales_order_id", "to_store_id", "default_mode"],
            ),
            envelope(&[
                ("created_store_order_id", t("?integer")),
                ("affected_supplier_order_ids", t("integer[]")),
                ("cancelled_store_order_ids", t("integer[]")),
                ("cancelled_supplier_order_ids", t("integer[]")),
                ("updated_outbound_order_ids", t("?integer[]")),
            ]),
            update_sales_order_store,
        ),
        op(
            "update_sales_order_delivery_method",
            "Change a sales order's delivery method and/or delivery address.",
            Method::Post,
            UPDATE_DELIVERY,
            input(
                &[
                    sales_order_id(),
                    ("new_delivery_method_id", doc(t("?integer"), "new delivery method (common enum delivery_methods)")),
                    ("new_delivery_address", delivery_address()),
                ],
                &["sales_order_id"],
            ),
            envelope(&[("created_delivery_address_id", t("?integer"))]),
            update_sales_order_delivery_method,
        ),
        op(
            "cancel_sales_order",
            "Cancel a sales order (only when nothing is left to pay and it is not invoiced).",
            Method::Post,
            CANCEL,
            input(
                &[
                    sales_order_id(),
                    ("cancellation_type_id", doc(t("id"), "cancellation type (common API cancellation_types)")),
                    ("delete_exchange", doc(t("boolean"), "true: delete the order's exchange objects (default false)")),
                ],
                &["sales_order_id"],
            ),
            envelope(&[]),
            cancel_sales_order,
        ),
        op(
            "create_invoices",
            "Create the invoice(s) of a sales order, one per customer when the order is split. Limited to 15 requests a minute.",
            Method::Post,
            CREATE_INVOICES,
            input(
                &[
                    sales_order_id(),
                    ("employee_id", doc(t("id"), "employee registering the invoice (default: the order's sales employee)")),
                    ("order_status_id", doc(t("id"), "new sales order status (common API)")),
                    ("book", doc(t("boolean"), "true: book in the administration; false: pro-forma (default false)")),
                    ("customer_messages", doc(t("boolean"), "send the customer a phone or e-mail message (default true)")),
                    ("allow_resend_messages", doc(t("boolean"), "send messages again when sent before (default false)")),
                    ("apply_service_vat_correction", doc(t("boolean"), "apply the service VAT correction (default true)")),
                    ("split_items_as_text_on_default_customer_invoice", doc(t("boolean"), "split orders: items as text on the default customer's invoice (default true)")),
                ],
                &["sales_order_id"],
            ),
            envelope(&[("invoices", array_of(invoice))]),
            create_invoices,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoice_form_writes_booleans_as_digits_and_skips_absent_fields() {
        let form = invoice_form(&json!({"sales_order_id": 1000, "employee_id": 1005, "book": true, "customer_messages": false}));
        assert_eq!(
            form,
            vec![("employee_id".into(), "1005".into()), ("book".into(), "1".into()), ("customer_messages".into(), "0".into())]
        );
    }
}
