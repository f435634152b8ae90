//! Webhook subscriptions (`/api/webhook`) and turning WICS' deliveries into
//! events. WICS sends no topic and no delivery id in the body: the topic comes
//! from the subscribed URL (its last path segment, or `?topic=`), else from
//! the payload's shape. For the id see [`event_id`].
use crate::client::{self, op};
use crate::models::WebhookSubscription;
use crate::spec::{output_object, string};
use base64::Engine;
use spoke_pdk::http::scalar_text;
use spoke_pdk::{auth, json, webhook, Error, ErrorKind, Event, Method, Op, Received, Value, WebhookTopic};

const LIST: &str = "/api/webhook";
const ONE: &str = "/api/webhook/{identifier}";

/// Every topic WICS publishes, with what it reports.
pub const TOPICS: [(&str, &str); 9] = [
    ("SHIPMENT", "an order was shipped (lines, track and trace, metafields)"),
    ("RECEIPT", "goods were received against an announcement"),
    ("STOCK", "the stock level of an item changed"),
    ("STOCKMUTATION", "one stock mutation (location, quantity, reason)"),
    ("ANNOUNCEMENTSTATUS", "an announcement changed status"),
    ("ORDERSTATUS", "an order changed status"),
    ("ORDERLINESTATUS", "order lines changed status"),
    ("PICKSLIPLINESTATUS", "pickslip lines changed status"),
    ("RMA", "a return was registered, with the answers to its questions"),
];

pub fn topics() -> Vec<WebhookTopic> {
    TOPICS.iter().map(|(name, description)| WebhookTopic { name: name.to_string(), description: description.to_string() }).collect()
}

fn subscription_schema() -> Value {
    output_object(&[("id", json!({"type": ["integer", "string"]})), ("topic", string()), ("url", string())])
}

pub fn ops() -> Vec<Op> {
    let topic_names: Vec<&str> = TOPICS.iter().map(|(name, _)| *name).collect();
    vec![
        Op {
            paged: true,
            ..op("list_webhooks", "List this API user's webhook subscriptions", Method::Get, LIST,
                client::list_input(&[]), client::list_output(subscription_schema()),
                |input| client::list::<WebhookSubscription>(LIST, input, "a webhook subscription"))
        },
        op("create_webhook", "Subscribe a URL to a topic", Method::Post, LIST,
            json!({"type": "object", "required": ["topic", "url"], "additionalProperties": false, "properties": {
                "topic": {"type": "string", "enum": topic_names},
                "url": {"type": "string", "minLength": 1, "description": "called with a POST per event; end it in the topic (e.g. /hooks/wics/stock) so the connector knows the topic"}
            }}),
            client::write_output(),
            |input| client::write(Method::Post, LIST, input, Some(input.clone()))),
        op("delete_webhook", "Unsubscribe a webhook", Method::Delete, ONE,
            client::path_input(&[("identifier", "the subscription id")]), client::write_output(),
            |input| client::write(Method::Delete, ONE, input, None)),
    ]
}

/// True when the `Authorization` header carries this connector's API key and
/// secret. The docs write the header as `Basic {apikey}:{apisecret}`, so a
/// value that is not base64 (it has a colon) is encoded before comparing.
pub fn authorized(authorization: &str) -> bool {
    let Some(credentials) = authorization.trim().strip_prefix("Basic ").or_else(|| authorization.trim().strip_prefix("basic ")) else {
        return false;
    };
    let credentials = credentials.trim();
    if credentials.contains(':') {
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        auth::verify_basic(client::AUTH, &format!("Basic {encoded}"))
    } else {
        auth::verify_basic(client::AUTH, &format!("Basic {credentials}"))
    }
}

fn canonical_topic(text: &str) -> Option<&'static str> {
    let wanted: String = text.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_uppercase();
    TOPICS.iter().map(|(name, _)| *name).find(|name| *name == wanted)
}

/// The topic from the URL the subscription was made with.
fn topic_from_request(path: &str, query: &str) -> Option<&'static str> {
    let from_query = query.split('&').filter_map(|pair| pair.split_once('=')).find(|(k, _)| *k == "topic").and_then(|(_, v)| canonical_topic(v));
    from_query.or_else(|| path.split('/').rev().find(|s| !s.is_empty()).and_then(canonical_topic))
}

/// The topic a payload's fields give away. ORDERLINESTATUS and
/// PICKSLIPLINESTATUS look alike, so they need the URL.
pub fn topic_from_shape(payload: &Value) -> Result<&'static str, Error> {
    let has = |key: &str| payload.get(key).is_some();
    let lines_have = |key: &str| payload.get("lines").and_then(Value::as_array).and_then(|l| l.first()).is_some_and(|l| l.get(key).is_some());
    let topic = if has("shipmentNr") || has("shippingLines") {
        "SHIPMENT"
    } else if has("receiptDate") {
        "RECEIPT"
    } else if has("typeMove") || has("reasonCode") {
        "STOCKMUTATION"
    } else if has("nettoSalable") {
        "STOCK"
    } else if has("announcementNr") {
        "ANNOUNCEMENTSTATUS"
    } else if lines_have("questions") {
        "RMA"
    } else if has("orderNr") && has("lines") {
        return Err(Error::invalid_input("", "an order line status payload: cannot tell ORDERLINESTATUS from PICKSLIPLINESTATUS; subscribe with a URL ending in the topic (…/orderlinestatus or …/picksliplinestatus)"));
    } else if has("orderNr") && has("statusCode") {
        "ORDERSTATUS"
    } else {
        return Err(Error::invalid_input("", "the payload matches no WICS webhook topic; subscribe with a URL ending in the topic"));
    };
    Ok(topic)
}

fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(scalar_text).filter(|s| !s.is_empty())
}

/// WICS dates look like "2021-09-13T00:00:00.000+02:00"; the STOCKMUTATION
/// example has a stray space before the T. Anything else is not reported.
pub fn occurred_at(raw: Option<&str>) -> Option<String> {
    let cleaned = raw?.trim().replace(" T", "T");
    let cleaned = if cleaned.len() >= 19 && cleaned.as_bytes()[10] == b' ' { format!("{}T{}", &cleaned[..10], &cleaned[11..]) } else { cleaned };
    spoke_pdk::schema::validate(&json!({"type": "string", "format": "date-time"}), &Value::String(cleaned.clone())).ok().map(|_| cleaned)
}

/// The subject (order reference, item code, ...) and time of a payload of
/// `topic`, read from the documented fields as they come: a payload that
/// leaves one out, or sends it in another type, is still an event.
fn describe(topic: &str, payload: &Value) -> Result<(Option<String>, Option<String>), Error> {
    let (subject_fields, date_field): (&[&str], Option<&str>) = match topic {
        "SHIPMENT" => (&["orderReference"], Some("deliveryDate")),
        "RECEIPT" => (&["reference", "number"], Some("receiptDate")),
        "STOCK" => (&["itemCode"], None),
        "STOCKMUTATION" => (&["itemCode"], Some("registrationDate")),
        "ANNOUNCEMENTSTATUS" => (&["reference", "announcementNr"], None),
        "ORDERSTATUS" | "ORDERLINESTATUS" | "PICKSLIPLINESTATUS" => (&["orderReference", "orderNr"], None),
        "RMA" => (&["orderReference"], None),
        other => return Err(Error::new(ErrorKind::Unsupported, format!("unknown WICS topic {other}"))),
    };
    let subject = subject_fields.iter().find_map(|field| text(payload.get(*field)));
    let at = date_field.and_then(|field| payload.get(field)).and_then(Value::as_str).and_then(|d| occurred_at(Some(d)));
    Ok((subject, at))
}

/// Verify and normalize one delivery into its event.
pub fn handle(received: Received) -> Result<Vec<Event>, Error> {
    let authorization = webhook::header(&received, "authorization").unwrap_or_default();
    if !authorized(authorization) {
        return Err(Error::new(ErrorKind::Unauthorized, "the Authorization header does not carry this connector's WICS API key and secret"));
    }
    let payload: Value = serde_json::from_slice(&received.body).map_err(|e| Error::invalid_input("", format!("body is not JSON: {e}")))?;
    if !payload.is_object() {
        return Err(Error::invalid_input("", "body is not a JSON object"));
    }
    let topic = match topic_from_request(&received.path, &received.query) {
        Some(topic) => topic,
        None => topic_from_shape(&payload)?,
    };
    Ok(vec![normalize(topic, payload)?])
}

/// The dedupe id of a delivery. WICS sends no delivery id and retries only
/// after an answer other than 200, that is, only what the host did not
/// store; so a true redelivery is rare, and most topics carry state (a stock
/// level, a status) that can repeat as a genuine change: stock 5 → 4 → 5 is
/// three events. Those get an id of their own per delivery; a rare duplicate
/// is processed rather than a change lost. A shipment and a receipt happen
/// once and carry WICS' own number for it, so their id is that number: a
/// redelivered shipment is the same event.
pub fn event_id(topic: &str, payload: &Value, canonical: &str) -> String {
    let number = match topic {
        "SHIPMENT" => payload.get("shipmentNr"),
        "RECEIPT" => payload.get("number"),
        _ => None,
    };
    match text(number) {
        Some(number) => webhook::stable_id(&[topic.as_bytes(), number.as_bytes()]),
        None => webhook::unique_id(&[topic.as_bytes(), canonical.as_bytes()]),
    }
}

/// The event of a verified payload, untouched (canonical JSON: sorted keys,
/// no whitespace).
pub fn normalize(topic: &'static str, payload: Value) -> Result<Event, Error> {
    let (subject, occurred_at) = describe(topic, &payload)?;
    let canonical = payload.to_string();
    Ok(Event {
        id: event_id(topic, &payload, &canonical),
        topic: topic.to_string(),
        occurred_at,
        subject: subject.or_else(|| text(payload.get("itemCode"))),
        payload: canonical,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(topic: &str) -> Value {
        let path = format!("{}/../../tests/vendors/fixtures/wics/{}.json", env!("CARGO_MANIFEST_DIR"), topic.to_ascii_lowercase());
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn every_documented_example_normalizes() {
        let expected = [
            ("SHIPMENT", Some("WT 95"), Some("2021-09-13T00:00:00.000+02:00")),
            ("RECEIPT", Some("WT 93"), Some("2021-09-13T00:00:00.000+02:00")),
            ("STOCK", Some("CS1001"), None),
            ("STOCKMUTATION", Some("16080"), Some("2022-05-02T09:48:11.000+02:00")),
            ("ANNOUNCEMENTSTATUS", Some("WT-2508-4"), None),
            ("ORDERSTATUS", Some("WT-2508-4"), None),
            ("ORDERLINESTATUS", Some("WT-2508-4"), None),
            ("PICKSLIPLINESTATUS", Some("Exact ShopOrder 1050"), None),
            ("RMA", Some("200122"), None),
        ];
        for (topic, subject, at) in expected {
            let payload = fixture(topic);
            let by_url = topic_from_request(&format!("/{}", topic.to_ascii_lowercase()), "").unwrap();
            assert_eq!(by_url, topic);
            let event = normalize(by_url, payload.clone()).unwrap();
            assert_eq!(event.topic, topic);
            assert_eq!(event.subject.as_deref(), subject, "{topic}");
            assert_eq!(event.occurred_at.as_deref(), at, "{topic}");
            assert_eq!(serde_json::from_str::<Value>(&event.payload).unwrap(), payload, "{topic} payload untouched");
            let again = normalize(by_url, payload.clone()).unwrap().id;
            if matches!(topic, "SHIPMENT" | "RECEIPT") {
                assert_eq!(event.id, again, "{topic}: a redelivered shipment or receipt is the same event");
            } else {
                assert_ne!(event.id, again, "{topic}: the same state delivered again is a change of its own");
            }
            if !topic.ends_with("LINESTATUS") {
                assert_eq!(topic_from_shape(&payload).unwrap(), topic);
            }
        }
    }

    /// The documented examples with fields removed, nulled or sent in a
    /// looser type still normalize.
    #[test]
    fn examples_with_fields_removed_or_loosened_still_normalize() {
        for topic in ["SHIPMENT", "RECEIPT", "STOCK", "STOCKMUTATION", "ORDERSTATUS", "RMA"] {
            let mut payload = fixture(topic);
            let map = payload.as_object_mut().unwrap();
            let keys: Vec<String> = map.keys().cloned().collect();
            for (i, key) in keys.iter().enumerate() {
                if i % 2 == 0 {
                    map.remove(key);
                } else if let Some(Value::Number(n)) = map.get(key).cloned() {
                    map.insert(key.clone(), json!(n.to_string()));
                } else {
                    map.insert(key.clone(), Value::Null);
                }
            }
            normalize(topic, payload).unwrap_or_else(|e| panic!("{topic}: {}", e.message));
        }
    }

    #[test]
    fn line_status_topics_need_the_url() {
        assert!(topic_from_shape(&fixture("ORDERLINESTATUS")).is_err());
        assert_eq!(topic_from_request("/hooks/x", "topic=pickslip_line_status"), Some("PICKSLIPLINESTATUS"));
        assert_eq!(topic_from_request("/order-line-status/", ""), Some("ORDERLINESTATUS"));
    }

    #[test]
    fn ids_differ_by_topic_and_shipment() {
        let shipment = fixture("SHIPMENT");
        let mut other = shipment.clone();
        other["shipmentNr"] = json!(9314);
        let a = normalize("SHIPMENT", shipment).unwrap().id;
        assert_ne!(a, normalize("SHIPMENT", other).unwrap().id);
    }

    #[test]
    fn a_payload_of_another_shape_is_still_an_event() {
        // WICS retries anything but a 200 and then drops it: a field of an
        // unexpected type must not cost the event.
        let event = normalize("SHIPMENT", json!({"shipmentNr": "not a number", "orderReference": 95})).unwrap();
        assert_eq!(event.subject.as_deref(), Some("95"));
    }
}
