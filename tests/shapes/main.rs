//! Every simulator answer has the shape of the vendor docs' example response
//! for its endpoint: the same fields, each of the same JSON type (see
//! `spoke_tests::shape_differences` for how nulls, lists and metafields
//! compare). The examples are read from the docs themselves
//! (`spoke_tests::vendor_docs`), the answers over real HTTP on loopback, with
//! valid credentials and the docs' own request bodies, after creating what
//! each request needs. So a simulator cannot flatter the connectors with a
//! field, or a looser type, the real vendor does not send.
mod cyclesoftware;
mod lagerkoll;
mod wics;

use serde_json::Value;
use spoke_tests::vendor_docs::{self, Endpoint};
use std::collections::{BTreeMap, HashMap};

/// The endpoints whose docs show no example response (print endpoints answer
/// a PDF; the rest document only the request). Pinned, so an example the
/// reader stops finding, or a new endpoint without one, fails the test.
const WITHOUT_EXAMPLE: [(&str, &str, &str); 13] = [
    ("wics", "DELETE", "/api/announcement/{identifier}"),
    ("wics", "POST", "/api/announcement"),
    ("lagerkoll", "PUT", "/v1/customer_orders/{order_id}/confirmation/send"),
    ("lagerkoll", "GET", "/v1/customer_orders/{id}/invoice/print"),
    ("lagerkoll", "GET", "/v1/customer_orders/offers/{offer_id}/print"),
    ("lagerkoll", "PUT", "/v1/customer_orders/offers/{offer_id}/send"),
    ("lagerkoll", "PUT", "/v1/customer_orders/{order_id}/picking_lists/{list_id}/packing"),
    ("lagerkoll", "GET", "/v1/customer_orders/{order_id}/pickinglist/{list_id}/print"),
    ("lagerkoll", "GET", "/v1/customer_orders/{id}/print"),
    ("lagerkoll", "GET", "/v1/customer_orders/{id}/delivery_note/print"),
    ("lagerkoll", "GET", "/v1/customer_orders/delivery_notes/print"),
    ("lagerkoll", "GET", "/v1/customer_orders/print_labels"),
    ("lagerkoll", "GET", "/v1/customer_orders/pickinglists/print"),
];

/// What one simulator answered, per documented endpoint (method and the
/// path as `endpoints.tsv` writes it): the first 2xx JSON answer.
pub struct Recorder {
    client: reqwest::Client,
    base: String,
    headers: Vec<(&'static str, String)>,
    pub answers: HashMap<(String, String), Value>,
}

impl Recorder {
    pub fn new(base: String, headers: Vec<(&'static str, String)>) -> Recorder {
        spoke_tests::spoke::install_tls();
        Recorder { client: reqwest::Client::new(), base, headers, answers: HashMap::new() }
    }

    /// Send `method url_path` with a JSON body (none if null) and `extra`
    /// headers; the answer must be 2xx. Recorded for `documented`, the
    /// endpoint's path as the docs write it.
    pub async fn send_with(&mut self, method: &str, documented: &str, url_path: &str, body: &Value, extra: &[(&str, &str)]) -> Value {
        let mut request = self.request(method, url_path);
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        if !body.is_null() {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        self.finish(method, documented, url_path, request).await
    }

    pub async fn send(&mut self, method: &str, documented: &str, url_path: &str, body: &Value) -> Value {
        self.send_with(method, documented, url_path, body, &[]).await
    }

    /// Like [`Recorder::send`] with a form body.
    pub async fn send_form(&mut self, method: &str, documented: &str, url_path: &str, form: &str) -> Value {
        let request = self.request(method, url_path).header("content-type", "application/x-www-form-urlencoded").body(form.to_string());
        self.finish(method, documented, url_path, request).await
    }

    /// `method url_path` with the simulator's credentials.
    fn request(&self, method: &str, url_path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method.parse().unwrap(), format!("{}{url_path}", self.base));
        self.headers.iter().fold(request, |request, (name, value)| request.header(*name, value))
    }

    async fn finish(&mut self, method: &str, documented: &str, url_path: &str, request: reqwest::RequestBuilder) -> Value {
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {url_path}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {url_path} answered {status}: {text}");
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        self.answers.entry((method.to_string(), documented.to_string())).or_insert_with(|| value.clone());
        value
    }
}

#[tokio::test]
async fn every_example_response_has_the_documented_shape() {
    let mut answers: HashMap<(String, String, String), Value> = HashMap::new();
    for (vendor, recorded) in [
        ("cyclesoftware", cyclesoftware::answers().await),
        ("wics", wics::answers().await),
        ("lagerkoll", lagerkoll::answers().await),
    ] {
        answers.extend(recorded.into_iter().map(|((method, path), v)| ((vendor.to_string(), method, path), v)));
    }

    let documented = vendor_docs::example_responses();
    let mut compared: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let (mut skipped, mut problems, mut unchecked) = (Vec::new(), Vec::new(), Vec::new());
    for (endpoint, example) in &documented {
        let key = (endpoint.vendor.clone(), endpoint.method.clone(), endpoint.path.clone());
        let answer = answers.remove(&key);
        let count = compared.entry(endpoint.vendor.as_str()).or_default();
        count.1 += 1;
        let Some(example) = example else {
            skipped.push(endpoint.clone());
            continue;
        };
        let Some(answer) = answer else {
            problems.push(format!("{endpoint}: the docs show an example response, the test sent no request"));
            continue;
        };
        count.0 += 1;
        let report = spoke_tests::shape_report(example, &answer);
        problems.extend(report.differences.iter().map(|d| format!("{endpoint}: {d}")));
        unchecked.extend(report.unchecked.iter().map(|d| format!("{endpoint}: {d}")));
    }
    // A request recorded for a path the docs do not list is a typo in the test.
    for (vendor, method, path) in answers.keys() {
        problems.push(format!("{vendor} {method} {path}: answered, but not a documented endpoint"));
    }

    let total: usize = compared.values().map(|c| c.0).sum();
    println!("compared {total} of {} endpoints with the docs' example responses:", documented.len());
    for (vendor, (n, of)) in &compared {
        println!("  {vendor}: {n} of {of}");
    }
    println!("skipped, no example response in the docs ({}):", skipped.len());
    for endpoint in &skipped {
        println!("  {endpoint}");
    }
    if !unchecked.is_empty() {
        println!("documented lists answered empty, their elements unchecked ({}):", unchecked.len());
        for u in &unchecked {
            println!("  {u}");
        }
    }

    let skipped: Vec<(&str, &str, &str)> = skipped.iter().map(|e: &Endpoint| (e.vendor.as_str(), e.method.as_str(), e.path.as_str())).collect();
    let mut expected = WITHOUT_EXAMPLE.to_vec();
    expected.sort();
    let mut skipped_sorted = skipped.clone();
    skipped_sorted.sort();
    assert_eq!(skipped_sorted, expected, "the endpoints without an example response in the docs");
    assert!(problems.is_empty(), "answers that differ from the docs' examples ({}):\n{}", problems.len(), problems.join("\n"));
}
