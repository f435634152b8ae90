//! Webhooks: verify `X-CycleSoftware-Signature` (HMAC-SHA256 of the raw body
//! with the account's hash secret) and normalize the three documented
//! events. The dedupe id is the delivery UUID, which a redelivery repeats.
use crate::models::{OutboundOrderPayload, StockItemPayload, WebhookEnvelope};
use crate::time::rfc3339_from_unix;
use spoke_pdk::auth::{self, SignatureEncoding};
use spoke_pdk::{config, webhook, Error, ErrorKind, Event, Received, Value, WebhookTopic};

pub const OUTBOUND_ORDER_CHANGED: &str = "warehouse_outbound_order.created_or_updated";
pub const STOCK_ITEM_UPDATED: &str = "warehouse_stock_item.updated";
pub const STOCK_ITEM_RELEASED: &str = "warehouse_stock_item.released_for_shipment";

/// The credential field holding the account's hash secret.
pub const SECRET_FIELD: &str = "hash_secret";

pub fn topics() -> Vec<WebhookTopic> {
    [
        (OUTBOUND_ORDER_CHANGED, "An outbound order was created or updated; subject = outbound_order_id."),
        (STOCK_ITEM_UPDATED, "A warehouse stock item was updated; subject = warehouse_stock_item_id."),
        (STOCK_ITEM_RELEASED, "A warehouse stock item was released for shipment; subject = warehouse_stock_item_id."),
    ]
    .into_iter()
    .map(|(name, description)| WebhookTopic { name: name.into(), description: description.into() })
    .collect()
}

/// The docs name neither the hash's encoding nor its form, so the setting
/// `signature_encoding` pins it; unset accepts hex or base64.
pub fn signature_encoding(setting: Option<&str>) -> Result<SignatureEncoding, Error> {
    match setting.map(str::trim) {
        None | Some("") => Ok(SignatureEncoding::HexOrBase64),
        Some("hex") => Ok(SignatureEncoding::Hex),
        Some("base64") => Ok(SignatureEncoding::Base64),
        Some(other) => Err(Error::internal(format!("setting signature_encoding is {other:?}; use \"hex\" or \"base64\" (or leave it unset)"))),
    }
}

pub fn handle(received: Received) -> Result<Vec<Event>, Error> {
    let signature = webhook::header(&received, "x-cyclesoftware-signature")
        .ok_or_else(|| Error::new(ErrorKind::Unauthorized, "webhook has no X-CycleSoftware-Signature header"))?;
    let encoding = signature_encoding(config::get("signature_encoding").as_deref())?;
    if !auth::verify_hmac_sha256(SECRET_FIELD, &received.body, signature.trim(), encoding) {
        return Err(Error::new(ErrorKind::Unauthorized, "X-CycleSoftware-Signature does not match the body"));
    }
    normalize(
        &received.body,
        webhook::header(&received, "x-cyclesoftware-delivery"),
        webhook::header(&received, "x-cyclesoftware-event"),
    )
}

fn parse<T: serde::de::DeserializeOwned>(payload: &Value, event: &str) -> Result<T, Error> {
    spoke_pdk::read::lenient(payload.clone()).map_err(|e| Error::invalid_input("payload", format!("{event} payload: {e}")))
}

/// A verified body to its event. Pure, so the documented examples can be
/// checked without a host.
pub fn normalize(body: &[u8], delivery: Option<&str>, event_header: Option<&str>) -> Result<Vec<Event>, Error> {
    let envelope: WebhookEnvelope =
        serde_json::from_slice(body).map_err(|e| Error::invalid_input("", format!("webhook body is not the documented envelope: {e}")))?;
    if let Some(name) = event_header.filter(|h| *h != envelope.event_name) {
        return Err(Error::invalid_input("event_name", format!("X-CycleSoftware-Event {name:?} differs from the body's {:?}", envelope.event_name)));
    }
    let (subject, payload) = match envelope.event_name.as_str() {
        OUTBOUND_ORDER_CHANGED => {
            let p: OutboundOrderPayload = parse(&envelope.payload, &envelope.event_name)?;
            (p.outbound_order_id, crate::client::to_json(&p)?)
        }
        STOCK_ITEM_UPDATED | STOCK_ITEM_RELEASED => {
            let p: StockItemPayload = parse(&envelope.payload, &envelope.event_name)?;
            (p.warehouse_stock_item_id, crate::client::to_json(&p)?)
        }
        other => {
            return Err(Error::new(ErrorKind::Unsupported, format!("unknown CycleSoftware webhook event {other:?}")));
        }
    };
    // The header and the body's id carry the same delivery UUID.
    let id = delivery.map(str::trim).filter(|d| !d.is_empty()).unwrap_or(&envelope.id).to_string();
    // The event carries the vendor's documented envelope, its payload checked.
    let data = serde_json::json!({
        "id": envelope.id,
        "account_id": envelope.account_id,
        "event_name": envelope.event_name,
        "event_timestamp": envelope.event_timestamp,
        "payload": payload,
    });
    Ok(vec![Event {
        id,
        topic: envelope.event_name,
        occurred_at: Some(rfc3339_from_unix(envelope.event_timestamp)),
        subject: Some(subject.to_string()),
        payload: data.to_string(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &str = include_str!("../../../tests/vendors/fixtures/cyclesoftware/outbound_order_created_or_updated.json");
    const UPDATED: &str = include_str!("../../../tests/vendors/fixtures/cyclesoftware/stock_item_updated.json");
    const RELEASED: &str = include_str!("../../../tests/vendors/fixtures/cyclesoftware/stock_item_released_for_shipment.json");

    #[test]
    fn documented_examples_normalize() {
        let ev = &normalize(ORDER.as_bytes(), Some("180c1fd6-04ab-4215-b55a-0d8710961c95"), Some(OUTBOUND_ORDER_CHANGED)).unwrap()[0];
        assert_eq!(ev.topic, OUTBOUND_ORDER_CHANGED);
        assert_eq!(ev.id, "180c1fd6-04ab-4215-b55a-0d8710961c95");
        assert_eq!(ev.subject.as_deref(), Some("463681"));
        assert_eq!(ev.occurred_at.as_deref(), Some("2022-07-05T09:07:48.444Z"));
        let payload: Value = serde_json::from_str(&ev.payload).unwrap();
        assert_eq!(payload["payload"]["order_items"][0]["barcode"], "8713568215084");

        for (body, topic) in [(UPDATED, STOCK_ITEM_UPDATED), (RELEASED, STOCK_ITEM_RELEASED)] {
            let ev = &normalize(body.as_bytes(), None, None).unwrap()[0];
            assert_eq!(ev.topic, topic);
            assert_eq!(ev.subject.as_deref(), Some("285"));
            let payload: Value = serde_json::from_str(&ev.payload).unwrap();
            assert_eq!(payload["payload"]["warehouse_location"]["location"], "R-1-2");
        }
    }

    #[test]
    fn the_delivery_header_is_the_dedupe_id() {
        let a = normalize(UPDATED.as_bytes(), Some("d-1"), None).unwrap();
        let b = normalize(UPDATED.as_bytes(), Some("d-1"), None).unwrap();
        assert_eq!(a[0].id, "d-1");
        assert_eq!(a[0].id, b[0].id);
    }

    #[test]
    fn mismatched_event_header_or_unknown_event_is_refused() {
        let err = normalize(UPDATED.as_bytes(), None, Some(STOCK_ITEM_RELEASED)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        let other = UPDATED.replace(STOCK_ITEM_UPDATED, "sales_order.created");
        assert_eq!(normalize(other.as_bytes(), None, None).unwrap_err().kind, ErrorKind::Unsupported);
        let broken = UPDATED.replace("\"warehouse_stock_item_id\": 285", "\"warehouse_stock_item_id\": \"x\"");
        assert_eq!(normalize(broken.as_bytes(), None, None).unwrap_err().kind, ErrorKind::InvalidInput);
    }

    #[test]
    fn signature_encoding_setting() {
        assert!(matches!(signature_encoding(None), Ok(SignatureEncoding::HexOrBase64)));
        assert!(matches!(signature_encoding(Some("hex")), Ok(SignatureEncoding::Hex)));
        assert!(matches!(signature_encoding(Some("base64")), Ok(SignatureEncoding::Base64)));
        assert!(signature_encoding(Some("sha1")).is_err());
    }
}
