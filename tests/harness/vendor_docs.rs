//! The vendor docs as data: every documented endpoint (`endpoints.tsv`) and,
//! where the docs show one, its example response as JSON.
//!
//! The docs are the vendors' web pages captured as text
//! (tests/vendors/vendor-docs/, a copy of the specification so a clean clone
//! has it). Examples are found the way a reader finds them: an endpoint's
//! section starts where the docs name its request (`GET` above a path,
//! `GET /path HTTP/1.1`, or Lagerkoll's `GETUrl: /suffix`) and ends where
//! another endpoint's section starts; its example response is the first JSON
//! after the section's response heading ("HTTP Response", "Response",
//! "Successfull response:", "The request returns the following JSON").
//! A GET section without such a heading shows its answer directly (WICS); a
//! POST or PUT without one shows only its request body. The capture damaged
//! some examples (trailing commas, `{...}` placeholders, a missing comma or
//! closing brace, and in one file every line holding only brackets or numbers
//! lost); the readers below repair exactly that damage and nothing else.
use serde_json::{Map, Value};
use std::path::PathBuf;

/// Where the copied vendor docs live.
pub fn docs_dir() -> PathBuf {
    crate::workspace().join("tests/vendors/vendor-docs")
}

/// One documented endpoint, as `endpoints.tsv` lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub vendor: String,
    pub method: String,
    pub path: String,
    /// The doc file that documents it.
    pub source: String,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.vendor, self.method, self.path)
    }
}

/// Every documented endpoint, in `endpoints.tsv` order.
pub fn endpoints() -> Vec<Endpoint> {
    let text = std::fs::read_to_string(docs_dir().join("endpoints.tsv")).expect("tests/vendors/vendor-docs/endpoints.tsv");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 4, "endpoints.tsv line {line:?}");
            Endpoint { vendor: cols[0].into(), method: cols[1].into(), path: cols[2].into(), source: cols[3].into() }
        })
        .collect()
}

/// Every documented endpoint with its example response, if the docs show one.
pub fn example_responses() -> Vec<(Endpoint, Option<Value>)> {
    let endpoints = endpoints();
    let mut sources: Vec<&str> = endpoints.iter().map(|e| e.source.as_str()).collect();
    sources.sort();
    sources.dedup();
    let mut found = std::collections::HashMap::new();
    for source in sources {
        let text = std::fs::read_to_string(docs_dir().join(source)).unwrap_or_else(|e| panic!("{source}: {e}"));
        let documented: Vec<&Endpoint> = endpoints.iter().filter(|e| e.source == source).collect();
        for (endpoint, example) in examples_in(&text, &documented) {
            found.insert(endpoint.clone(), example);
        }
    }
    endpoints.into_iter().map(|e| {
        let example = found.remove(&e).flatten();
        (e, example)
    }).collect()
}

/// The example payload of every documented webhook event (`webhooks.tsv`),
/// as (vendor, event, example). An event's example is the first JSON after
/// the line that names it: WICS' "Topic Order status" heading (the topic
/// without spaces, upper case), CycleSoftware's row of its event table.
pub fn webhook_examples() -> Vec<(String, String, Option<Value>)> {
    let text = std::fs::read_to_string(docs_dir().join("webhooks.tsv")).expect("tests/vendors/vendor-docs/webhooks.tsv");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 4, "webhooks.tsv line {line:?}");
            let (vendor, event, source) = (cols[0], cols[1], cols[3]);
            let doc = std::fs::read_to_string(docs_dir().join(source)).unwrap_or_else(|e| panic!("{source}: {e}"));
            let lines: Vec<&str> = doc.lines().collect();
            let names = |l: &str| {
                let l = l.trim();
                let topic = l.strip_prefix("Topic ").map(|t| t.replace(' ', "").to_ascii_uppercase());
                topic.as_deref() == Some(event) || l.strip_prefix(event).is_some_and(|rest| rest.starts_with(' '))
            };
            let example = lines.iter().position(|l| names(l)).and_then(|named| {
                let first = (named + 1..lines.len()).find(|&i| lines[i].trim_start().starts_with(['{', '[']))?;
                let block: Vec<&str> = lines[first..].iter().take_while(|l| !l.trim().is_empty()).copied().collect();
                Some(parse_example(&block))
            });
            (vendor.to_string(), event.to_string(), example)
        })
        .collect()
}

const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];

/// A request the docs name on a line: (method, path as written, lines it spans).
fn request_named_at(lines: &[&str], i: usize, base_path: &str) -> Option<(String, String, usize)> {
    let line = lines[i].trim();
    // `GET` alone, the path on the next line.
    if METHODS.contains(&line) {
        let next = lines.get(i + 1)?.trim();
        return next.starts_with('/').then(|| (line.to_string(), next.to_string(), 2));
    }
    // `GET /path HTTP/1.1`
    if let Some(request) = line.strip_suffix(" HTTP/1.1") {
        let (method, path) = request.split_once(' ')?;
        return (METHODS.contains(&method) && path.starts_with('/')).then(|| (method.to_string(), path.to_string(), 1));
    }
    // Lagerkoll: `GETUrl: /suffix`, relative to the documented base URL.
    let (method, suffix) = line.split_once("Url:")?;
    METHODS.contains(&method).then(|| (method.to_string(), format!("{base_path}{}", suffix.trim()), 1))
}

/// A path with its parameters (`:id`, `{id}`, `{id : .+}`) as `{}`, without
/// query, `..` segments or trailing slash, and a run of parameters as one
/// (`/stockinfo/:barcode1/:barcode2/../../` is `/stockinfo/{}`).
fn normalize(path: &str) -> String {
    let path = path.split('?').next().unwrap_or("");
    let mut segments: Vec<String> = Vec::new();
    for segment in path.split('/').filter(|s| !s.is_empty() && *s != "..") {
        let mut out = String::new();
        let mut chars = segment.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' => {
                    for c in chars.by_ref() {
                        if c == '}' {
                            break;
                        }
                    }
                    out.push_str("{}");
                }
                ':' => {
                    while chars.peek().is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_') {
                        chars.next();
                    }
                    out.push_str("{}");
                }
                c => out.push(c),
            }
        }
        if !(out == "{}" && segments.last().is_some_and(|s| s == "{}")) {
            segments.push(out);
        }
    }
    format!("/{}", segments.join("/"))
}

/// Whether `pattern` (normalized, `{}` for a parameter) matches a concrete
/// normalized path, a parameter standing for one or more characters of one
/// segment.
fn glob(pattern: &str, path: &str) -> bool {
    match pattern.split_once("{}") {
        None => pattern == path,
        Some((head, tail)) => {
            let Some(rest) = path.strip_prefix(head) else { return false };
            (1..=rest.len()).take_while(|n| !rest[..*n].contains('/')).any(|n| glob(tail, &rest[n..]))
        }
    }
}

/// The documented endpoint a request in the docs names: an exact match of
/// the normalized paths, else the most specific pattern the path fits.
fn endpoint_for<'a>(documented: &[&'a Endpoint], method: &str, path: &str) -> Option<&'a Endpoint> {
    let path = normalize(path);
    let candidates = documented.iter().filter(|e| e.method == method);
    if let Some(exact) = candidates.clone().find(|e| normalize(&e.path) == path) {
        return Some(exact);
    }
    candidates.filter(|e| glob(&normalize(&e.path), &path)).min_by_key(|e| normalize(&e.path).matches("{}").count()).copied()
}

fn is_response_heading(line: &str) -> bool {
    let line = line.trim().trim_start_matches('>').trim().to_ascii_lowercase();
    line == "http response" || line == "response" || line == "successfull response:" || line.contains("returns the following json")
}

/// The example responses in one doc file, for the endpoints it documents.
fn examples_in<'a>(text: &str, documented: &[&'a Endpoint]) -> Vec<(&'a Endpoint, Option<Value>)> {
    let lines: Vec<&str> = text.lines().collect();
    let base_path = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("Base-URL:"))
        .and_then(|url| url.trim().split("://").nth(1))
        .and_then(|rest| rest.find('/').map(|i| rest[i..].trim_end_matches('/').to_string()))
        .unwrap_or_default();
    // Where each named request is, and which lines only name requests.
    let mut starts: Vec<(usize, &Endpoint)> = Vec::new();
    let mut naming = vec![false; lines.len()];
    for i in 0..lines.len() {
        if let Some((method, path, span)) = request_named_at(&lines, i, &base_path) {
            naming[i..i + span].iter_mut().for_each(|n| *n = true);
            if let Some(endpoint) = endpoint_for(documented, &method, &path) {
                starts.push((i, endpoint));
            }
        }
    }
    let mut out = Vec::new();
    for endpoint in documented {
        let Some(&(start, _)) = starts.iter().find(|(_, e)| e == endpoint) else {
            out.push((*endpoint, None));
            continue;
        };
        // Requests named together (one example for several) share what
        // follows; the section ends at the next other endpoint after that.
        let content = (start..lines.len()).find(|&i| !naming[i] && !lines[i].trim().is_empty()).unwrap_or(lines.len());
        let end = starts.iter().find(|(i, e)| *i > content && e != endpoint).map(|(i, _)| *i).unwrap_or(lines.len());
        let heading = (start..end).find(|&i| is_response_heading(lines[i]));
        let from = match heading {
            Some(h) => h + 1,
            None if endpoint.method == "GET" => start,
            None => {
                out.push((*endpoint, None));
                continue;
            }
        };
        let json_start = (from..end).find(|&i| !naming[i] && lines[i].trim_start().starts_with(['{', '[', '"']));
        let example = json_start.map(|first| {
            let block: Vec<&str> = lines[first..end].iter().take_while(|l| !l.trim().is_empty() && !l.trim_start().starts_with("```")).copied().collect();
            parse_example(&block)
        });
        out.push((*endpoint, example));
    }
    out
}

/// An example as JSON: brace-led text by the tolerant reader, text whose
/// bracket lines were lost by its indentation.
pub fn parse_example(block: &[&str]) -> Value {
    if block.first().is_some_and(|l| l.trim_start().starts_with(['{', '['])) {
        let tokens = tokens(&block.join("\n"));
        let mut pos = 0;
        parse_value(&tokens, &mut pos).map(|(v, _)| v).unwrap_or(Value::Null)
    } else {
        parse_indented(block)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open(char),
    Close(char),
    Colon,
    Comma,
    Ellipsis,
    Scalar(Value),
}

fn tokens(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' | '[' => out.push(Token::Open(c)),
            '}' | ']' => out.push(Token::Close(c)),
            ':' => out.push(Token::Colon),
            ',' => out.push(Token::Comma),
            '.' if chars[i..].starts_with(&['.', '.', '.']) => {
                while chars.get(i + 1) == Some(&'.') {
                    i += 1;
                }
                out.push(Token::Ellipsis);
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    s.push(chars[i]);
                    i += 1;
                }
                out.push(Token::Scalar(Value::String(s)));
            }
            c if c.is_ascii_alphanumeric() || c == '-' || c == '+' || c == '.' => {
                let begin = i;
                while i + 1 < chars.len() && (chars[i + 1].is_ascii_alphanumeric() || matches!(chars[i + 1], '-' | '+' | '.')) {
                    i += 1;
                }
                let word: String = chars[begin..=i].iter().collect();
                if let Ok(value) = serde_json::from_str::<Value>(&word) {
                    out.push(Token::Scalar(value));
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// A value and whether it is a `{...}` placeholder. Missing commas and
/// trailing ones, `...` and an unclosed end are read around.
fn parse_value(tokens: &[Token], pos: &mut usize) -> Option<(Value, bool)> {
    let token = tokens.get(*pos)?.clone();
    *pos += 1;
    match token {
        Token::Scalar(v) => Some((v, false)),
        Token::Open('{') => {
            let mut map = Map::new();
            let mut elided = false;
            while let Some(t) = tokens.get(*pos) {
                match t {
                    Token::Close(_) => {
                        *pos += 1;
                        break;
                    }
                    Token::Scalar(Value::String(key)) if tokens.get(*pos + 1) == Some(&Token::Colon) => {
                        let key = key.clone();
                        *pos += 2;
                        if let Some((value, placeholder)) = parse_value(tokens, pos) {
                            if !placeholder {
                                map.insert(key, value);
                            }
                        }
                    }
                    Token::Ellipsis => {
                        elided = true;
                        *pos += 1;
                    }
                    _ => *pos += 1,
                }
            }
            let placeholder = elided && map.is_empty();
            Some((Value::Object(map), placeholder))
        }
        Token::Open(_) => {
            let mut items = Vec::new();
            while let Some(t) = tokens.get(*pos) {
                match t {
                    Token::Close(_) => {
                        *pos += 1;
                        break;
                    }
                    Token::Comma | Token::Ellipsis | Token::Colon => *pos += 1,
                    _ => {
                        if let Some((value, placeholder)) = parse_value(tokens, pos) {
                            if !placeholder {
                                items.push(value);
                            }
                        }
                    }
                }
            }
            Some((Value::Array(items), false))
        }
        Token::Ellipsis => Some((Value::Null, true)),
        Token::Close(_) | Token::Colon | Token::Comma => None,
    }
}

/// An example whose lines holding only brackets (and numbers) were lost,
/// rebuilt from its indentation: a `"key": {` or `"key": [` line opens a
/// container that holds the deeper lines after it; keys directly inside a
/// list are objects, and a key seen twice starts the list's next object.
fn parse_indented(block: &[&str]) -> Value {
    struct Frame {
        indent: usize,
        key: Option<String>,
        value: Value,
        /// An object whose braces were lost, an element of its list.
        element: bool,
    }
    fn close(stack: &mut Vec<Frame>) {
        let frame = stack.pop().unwrap();
        match &mut stack.last_mut().unwrap().value {
            Value::Array(items) => items.push(frame.value),
            Value::Object(map) => {
                map.insert(frame.key.unwrap_or_default(), frame.value);
            }
            _ => unreachable!(),
        }
    }
    let mut stack = vec![Frame { indent: 0, key: None, value: Value::Object(Map::new()), element: false }];
    for line in block {
        let indent = line.len() - line.trim_start().len() + 1;
        let content = line.trim().trim_end_matches(',');
        if content.is_empty() || content.chars().all(|c| "{}[]".contains(c)) {
            continue;
        }
        while stack.len() > 1 && stack.last().unwrap().indent >= indent {
            close(&mut stack);
        }
        let scalar = |text: &str| serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.trim_matches('"').to_string()));
        let Some((key, rest)) = content.strip_prefix('"').and_then(|c| c.split_once("\":")) else {
            if let Value::Array(items) = &mut stack.last_mut().unwrap().value {
                items.push(scalar(content));
            }
            continue;
        };
        let top = stack.last().unwrap();
        let repeated = top.element && top.value.get(key).is_some();
        if repeated {
            close(&mut stack);
        }
        if stack.last().unwrap().value.is_array() {
            stack.push(Frame { indent: indent - 1, key: None, value: Value::Object(Map::new()), element: true });
        }
        let rest = rest.trim();
        match rest {
            "{" => stack.push(Frame { indent, key: Some(key.into()), value: Value::Object(Map::new()), element: false }),
            "[" => stack.push(Frame { indent, key: Some(key.into()), value: Value::Array(Vec::new()), element: false }),
            _ => {
                let value = match rest {
                    "{}" => Value::Object(Map::new()),
                    "[]" => Value::Array(Vec::new()),
                    text => scalar(text),
                };
                if let Value::Object(map) = &mut stack.last_mut().unwrap().value {
                    map.insert(key.into(), value);
                }
            }
        }
    }
    while stack.len() > 1 {
        close(&mut stack);
    }
    stack.pop().unwrap().value
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn damaged_examples_read_as_the_json_they_were() {
        let wics = ["{", "  \"data\": [", "    {\"a\": 1,", "     \"b\": 2", "     \"c\": [1,],", "    },", "    {...},", "  ]", "}"];
        assert_eq!(parse_example(&wics), json!({"data": [{"a": 1, "b": 2, "c": [1]}]}));
        let unclosed = ["{ \"pages\": 1, \"articles\": [{ \"id\": \"id\" }] "];
        assert_eq!(parse_example(&unclosed), json!({"pages": 1, "articles": [{"id": "id"}]}));
        // Lines of only brackets or numbers lost (CycleSoftware platform docs).
        let lost = [
            "    \"error\": false,",
            "    \"keys\": [",
            "            \"key\": \"k1\",",
            "            \"store\": {",
            "                \"store_coordinates\": [",
            "                \"store_meta_data\": {",
            "                    \"drg_dealer_number\": \"999\"",
            "            \"key\": \"k2\",",
            "            \"store\": {",
            "                \"store_id\": \"1-1\"",
        ];
        assert_eq!(
            parse_example(&lost),
            json!({"error": false, "keys": [
                {"key": "k1", "store": {"store_coordinates": [], "store_meta_data": {"drg_dealer_number": "999"}}},
                {"key": "k2", "store": {"store_id": "1-1"}}
            ]})
        );
    }

    #[test]
    fn paths_match_as_the_docs_write_them() {
        assert_eq!(normalize("/app/api/whm/stockinfo/:barcode1/:barcode2/../../?stock_items={0,1}"), "/app/api/whm/stockinfo/{}");
        assert_eq!(normalize("/v1/customer_orders/{order_id}/picking_lists/{list_id}/pick/{article_id : .+}"), "/v1/customer_orders/{}/picking_lists/{}/pick/{}");
        assert!(glob("/api/v1/leads/{}.json", "/api/v1/leads/0c6b40a4-a217.json"));
        assert!(!glob("/api/v1/leads/{}.json", "/api/v1/leads/x/cancel.json"));
    }

    #[test]
    fn every_endpoint_is_found_in_its_doc() {
        let all = example_responses();
        assert_eq!(all.len(), 111);
        let lead = all.iter().find(|(e, _)| e.path == "/api/v1/leads/{uuid}.json").unwrap().1.clone().unwrap();
        assert_eq!(lead["sales_lead"]["customer"]["city"], "Deventer");
        let announcement = all.iter().find(|(e, _)| e.method == "POST" && e.path == "/api/announcement").unwrap();
        assert!(announcement.1.is_none(), "only a request body: {:?}", announcement.1);
    }

    #[test]
    fn every_webhook_event_has_its_example() {
        let all = webhook_examples();
        assert_eq!(all.len(), 12);
        for (vendor, event, example) in &all {
            assert!(example.as_ref().is_some_and(Value::is_object), "{vendor} {event}: {example:?}");
        }
        let example = |event: &str| all.iter().find(|(_, e, _)| e == event).unwrap().2.clone().unwrap();
        assert_eq!(example("ORDERSTATUS")["orderReference"], "WT-2508-4");
        // The receipt's trailing comma is read around.
        assert_eq!(example("RECEIPT")["lines"][0]["stockStatusDescription"], "Vrij");
        assert_eq!(example("warehouse_stock_item.released_for_shipment")["payload"]["warehouse_location"]["rack_name"], "R");
        assert_eq!(example("warehouse_outbound_order.created_or_updated")["payload"]["order_items"][0]["barcode"], "8713568215084");
    }
}
