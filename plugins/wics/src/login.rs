//! Login: the endpoint that only verifies the credentials.
use crate::client::{self, op};
use crate::spec::{boolean, output_object, string};
use spoke_pdk::http::Request;
use spoke_pdk::{json, Method, Op};

const LOGIN: &str = "/api/login";

pub fn ops() -> Vec<Op> {
    vec![op(
        "login",
        "Verify the API key and secret; WICS answers with the company and customer name",
        Method::Get,
        LOGIN,
        json!({"type": "object", "additionalProperties": false, "properties": {}}),
        output_object(&[("authenticated", boolean()), ("message", string())]),
        |_| {
            let envelope = client::send(Request::get(LOGIN))?;
            Ok(json!({ "authenticated": true, "message": envelope.message }))
        },
    )]
}
