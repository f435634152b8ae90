//! The print endpoints: real (minimal) PDF files, and an Excel labels file.
use super::data::*;
use super::orders::compare;
use super::{err, path_id, ApiResult, Reply, Req};
use axum::http::Method;
use serde_json::Value;

pub const PDF: &str = "application/pdf";
/// SpreadsheetML 2003, which Excel opens as a workbook.
pub const EXCEL: &str = "application/vnd.ms-excel";

pub fn route(state: &mut State, req: &Req, m: &Method, segs: &[&str]) -> ApiResult<Option<Reply>> {
    if m != Method::GET {
        return Ok(None);
    }
    let reply = match segs {
        [id, "invoice", "print"] => {
            let id = path_id(id, 900701, "customer order")?;
            let order = state.order(id)?;
            if order.state != INVOICED {
                return Err(err(404, 900701, format!("customer order {id} has no invoice (state {})", order.state)));
            }
            pdf_reply(&format!("Invoice for customer order {id}"), order_lines(state, id))
        }
        ["offers", id, "print"] => {
            let id = path_id(id, 900761, "offer")?;
            let offer = state.offers.get(&id).ok_or_else(|| err(404, 900761, format!("offer {id} not found")))?;
            let rendered = state.render_offer(offer);
            let mut lines = vec![format!("Customer: {}", rendered["customerName"].as_str().unwrap_or(""))];
            for r in rendered["rows"].as_array().into_iter().flatten() {
                lines.push(format!("{} {} x {} = {}", r["articleId"].as_str().unwrap_or("-"), r["articleName"].as_str().unwrap_or(""), r["amount"], r["totalPrice"]));
            }
            pdf_reply(&format!("Offer {id}"), lines)
        }
        [oid, "pickinglist", lid, "print"] => {
            let oid = path_id(oid, 900711, "customer order")?;
            let lid = path_id(lid, 900711, "picking list")?;
            let list = state.lists.get(&lid).filter(|l| l.order_id == oid).ok_or_else(|| err(404, 900711, format!("customer order {oid} has no picking list {lid}")))?;
            pdf_reply(&format!("Picking list {lid} for customer order {oid}"), list_lines(state, list))
        }
        [id, "delivery_note", "print"] => {
            let id = path_id(id, 900701, "customer order")?;
            state.order(id)?;
            let mut lines = order_lines(state, id);
            if let Some(list) = req.q("picking_list_id") {
                let lid = path_id(list, 900711, "picking list")?;
                let list = state.lists.get(&lid).filter(|l| l.order_id == id).ok_or_else(|| err(404, 900711, format!("customer order {id} has no picking list {lid}")))?;
                lines = list_lines(state, list);
            }
            pdf_reply(&format!("Delivery note for customer order {id}"), lines)
        }
        ["delivery_notes", "print"] => {
            let ids = selected_orders(state, req, true)?;
            let mut lines = Vec::new();
            for id in &ids {
                lines.push(format!("--- Delivery note for customer order {id}"));
                lines.extend(order_lines(state, *id));
            }
            pdf_reply(&format!("Delivery notes ({} orders)", ids.len()), lines)
        }
        ["print_labels"] => {
            let ids = selected_orders(state, req, false)?;
            Reply::File { content_type: EXCEL, bytes: labels(state, &ids) }
        }
        ["pickinglists", "print"] => {
            let ready: Vec<&PickList> = state.lists.values().filter(|l| l.state == LIST_NEW).collect();
            let (_, _, ready) = page(ready, req.q_int("page", 0)?, req.q_int("page_size", 25)?)?;
            let mut lines = Vec::new();
            for l in &ready {
                lines.push(format!("--- Picking list {} for customer order {}", l.id, l.order_id));
                lines.extend(list_lines(state, l));
            }
            pdf_reply(&format!("Picking lists ({})", ready.len()), lines)
        }
        [id, "print"] => {
            let id = path_id(id, 900701, "customer order")?;
            state.order(id)?;
            pdf_reply(&format!("Customer order {id}"), order_lines(state, id))
        }
        _ => return Ok(None),
    };
    Ok(Some(reply))
}

/// The orders a bulk print covers: by state (delivery notes only), sorted, one page.
fn selected_orders(state: &State, req: &Req, by_state: bool) -> ApiResult<Vec<i64>> {
    let wanted = if by_state {
        let s = req.q_int("state", PACKED)?;
        if !ORDER_STATES.contains(&s) {
            return Err(bad(900101, "state", format!("state {s} is not allowed; allowed values: {ORDER_STATES:?}")));
        }
        Some(s)
    } else {
        None
    };
    let sort = req.q_enum("sort_column", &["id", "delivery_date", "delivered_date", "state"], "id")?;
    let desc = req.q_enum("sort_order", &["asc", "desc"], "asc")? == "desc";
    let mut orders: Vec<Value> = state.orders.values().filter(|o| wanted.is_none_or(|s| o.state == s)).map(|o| state.render_order(o)).collect();
    let key = match sort.as_str() {
        "delivery_date" => "deliveryDate",
        "delivered_date" => "deliveredDate",
        "state" => "state",
        _ => "orderId",
    };
    orders.sort_by(|a, b| compare(&a[key], &b[key]).then(compare(&a["orderId"], &b["orderId"])));
    if desc {
        orders.reverse();
    }
    let (_, _, orders) = page(orders, req.q_int("page", 0)?, req.q_int("page_size", 25)?)?;
    Ok(orders.iter().filter_map(|o| o["orderId"].as_i64()).collect())
}

fn order_lines(state: &State, id: i64) -> Vec<String> {
    let o = state.render_order(&state.orders[&id]);
    let mut lines = vec![
        format!("Customer: {} ({})", o["customerName"].as_str().unwrap_or(""), o["customerId"]),
        format!("Deliver to: {}, {} {}", o["deliveryAddress1"].as_str().unwrap_or(""), o["deliveryZipCode"].as_str().unwrap_or(""), o["deliveryCity"].as_str().unwrap_or("")),
        format!("State: {}", o["state"]),
    ];
    for r in o["products"].as_array().into_iter().flatten() {
        lines.push(format!("{} {} x {} = {:.2}", r["articleId"].as_str().unwrap_or("-"), r["description"].as_str().unwrap_or(""), r["orderedAmount"], r["totalPrice"].as_f64().unwrap_or(0.0)));
    }
    lines.push(format!("Order value: {:.2} {}", o["orderValue"].as_f64().unwrap_or(0.0), o["currency"].as_str().unwrap_or("")));
    lines
}

fn list_lines(state: &State, l: &PickList) -> Vec<String> {
    l.products
        .iter()
        .map(|p| {
            let a = state.articles.get(p.article_id.as_str());
            format!("[{}] {} {}: {} of {}", a.map(|a| a.stock_place).unwrap_or(""), p.article_id, a.map(|a| a.name).unwrap_or(""), p.picked, p.ordered)
        })
        .collect()
}

fn pdf_reply(title: &str, lines: Vec<String>) -> Reply {
    Reply::File { content_type: PDF, bytes: pdf(title, &lines) }
}

/// A one-page PDF 1.4 with Helvetica text and a correct cross-reference table.
pub fn pdf(title: &str, lines: &[String]) -> Vec<u8> {
    let escape = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                '(' | ')' | '\\' => format!("\\{c}"),
                c if c.is_ascii() && !c.is_control() => c.to_string(),
                _ => "?".into(),
            })
            .collect()
    };
    let mut content = String::from("BT /F1 12 Tf 50 800 Td 15 TL\n");
    for line in std::iter::once(title).chain(lines.iter().map(String::as_str)).take(50) {
        content.push_str(&format!("({}) Tj T*\n", escape(line)));
    }
    content.push_str("ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>".to_string(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
    ];
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes());
    out
}

fn labels(state: &State, ids: &[i64]) -> Vec<u8> {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let cell = |s: &str| format!("<Cell><Data ss:Type=\"String\">{}</Data></Cell>", esc(s));
    let mut rows = String::from("<Row>");
    for h in ["Order", "Name", "Address", "Zip", "City", "Country"] {
        rows.push_str(&cell(h));
    }
    rows.push_str("</Row>");
    for id in ids {
        let o = state.render_order(&state.orders[id]);
        rows.push_str("<Row>");
        rows.push_str(&cell(&id.to_string()));
        for k in ["deliveryName", "deliveryAddress1", "deliveryZipCode", "deliveryCity", "deliveryCountry"] {
            rows.push_str(&cell(o[k].as_str().unwrap_or("")));
        }
        rows.push_str("</Row>");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<?mso-application progid=\"Excel.Sheet\"?>\n<Workbook xmlns=\"urn:schemas-microsoft-com:office:spreadsheet\" xmlns:ss=\"urn:schemas-microsoft-com:office:spreadsheet\"><Worksheet ss:Name=\"Labels\"><Table>{rows}</Table></Worksheet></Workbook>\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::pdf;

    #[test]
    fn pdf_cross_reference_points_at_each_object() {
        let bytes = pdf("Invoice (1)", &["Cykellås".to_string()]);
        // Offsets are byte offsets; the binary comment line is not UTF-8.
        let at = |off: usize, what: &str| bytes[off..].starts_with(what.as_bytes());
        let tail = String::from_utf8(bytes[bytes.len() - 40..].to_vec()).unwrap();
        let startxref: usize = tail.rsplit("startxref\n").next().unwrap().lines().next().unwrap().parse().unwrap();
        assert!(at(startxref, "xref\n0 6\n"));
        let table = String::from_utf8(bytes[startxref..].to_vec()).unwrap();
        let entries: Vec<usize> = table.lines().skip(3).take(5).map(|l| l[..10].parse().unwrap()).collect();
        for (i, off) in entries.iter().enumerate() {
            assert!(at(*off, &format!("{} 0 obj", i + 1)), "object {}", i + 1);
        }
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("(Invoice \\(1\\)) Tj"));
        assert!(text.contains("(Cykell?s) Tj"));
    }
}
