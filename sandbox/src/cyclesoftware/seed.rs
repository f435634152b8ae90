//! Sample data taken from the docs' examples, with a few more records so
//! paging has something to walk.
use super::model::*;
use serde_json::{json, Value};

fn backlog_item(id: i64, article: &str, barcode: &str, delivery: &str, assignment: Value) -> Value {
    json!({
        "id": id, "supplier_id": 2403, "is_sold_to_customer": false, "in_transit": false,
        "article_id": article, "barcode": barcode,
        "supplier_reference": "7171648", "supplier_reference_2": "7171648",
        "delivery_date": delivery, "original_delivery_date": "2022-11-14",
        "external_remarks": "", "internal_remarks": null,
        "created_at": "2022-04-21 12:15:56", "modified_at": "2022-04-21 12:18:53",
        "assignment": assignment,
    })
}

fn delivered(n: i64, date: &str) -> Value {
    json!({
        "article_id": format!("ART{n}"), "barcode": format!("100000{n}"),
        "datetime_delivered": format!("{date} 12:00:33"),
        "inbound_delivery_id": 10000, "inbound_delivery_item_id": 100000 + n,
        "packinglist_number": "PB11", "purchase_price_cents": 10099,
        "quantity_missing": 0, "quantity_packinglist": 1, "quantity_scanned": 0,
        "quantity_stocked": 1, "supplier_id": 2113,
    })
}

fn assembly(n: i64, released: &str) -> Value {
    json!({
        "stock_item_id": n * 10000, "is_assembled": n % 2 == 1, "released_by": format!("Name {}", 10 + n),
        "scheduled_for_release_at": "2021-10-10", "released_for_shipment_at": released,
        "claimed_by_dealer_id": 5393, "outbound_order_id": n * 10000 + 1,
        "outbound_order_item_id": n * 10000 + 2, "outbound_shipment_id": n * 10000 + 3,
        "outbound_shipment_item_id": n * 10000 + 4, "is_sold_to_customer": n % 2 == 1,
    })
}

#[allow(clippy::too_many_arguments)] // one column of the docs' store table each
fn store(id: &str, gln: &str, name: &str, address: &str, postal: &str, city: &str, phone: &str, coords: [f64; 2]) -> Value {
    json!({
        "store_id": id, "store_gln": gln, "store_name": name, "store_address": address,
        "store_postal_code": postal, "store_city": city, "store_country_code": "NL",
        "store_phone_number": phone, "store_email": "", "store_coordinates": coords,
    })
}

fn stock_store(dealer: i64, name: &str, quantity: i64, demo: i64) -> Value {
    json!({
        "dealer_id": dealer, "store_name": name, "store_phone": "010-1234567",
        "quantity": quantity, "quantity_demo": demo, "quantity_used": 0, "quantity_rental": 0,
    })
}

fn pos_item(object_id: i64, store_id: i64, supplier: &str, article: &str, barcode: &str, description: &str, demo: bool) -> Value {
    json!({
        "account_id": 1000, "store_id": store_id, "object_id": object_id, "sales_order_id": 0,
        "supplier": supplier, "article_id": article, "barcode": barcode, "description": description,
        "frame_id": "BA5169351", "purchase_price_cents": 219900, "purchase_price_cents_packinglist": 219900,
        "dealer_rrp_cents": 259900, "is_sold_to_customer": false, "is_demo": demo, "has_invoice": false,
        "stocked_at": "2015-12-08",
        "custom_variable_1": "", "custom_variable_2": "", "custom_variable_3": "", "custom_variable_4": "", "custom_variable_5": "",
        "is_deleted": false, "is_used": false, "is_rental": false,
    })
}

pub fn seed() -> Data {
    let mut d = Data { next_id: 900_000, account_stores: vec![1, 2, 3], ..Default::default() };

    d.backlog = vec![
        backlog_item(412805, "LV105", "8719812004282", "2022-11-07", Value::Null),
        backlog_item(
            412843,
            "LV106",
            "8719812004299",
            "2022-10-24",
            json!({"assigned_to_entity_type_id": 20, "assigned_to_entity_id": 564840, "outbound_order_id": 440452, "reference": "yourref_138443"}),
        ),
        backlog_item(412855, "LV107", "8719812004305", "2022-12-26", Value::Null),
    ];
    d.backlog.push({
        let mut item = backlog_item(412860, "SP300", "8717144186799", "2023-01-09", Value::Null);
        item["supplier_id"] = json!(2113);
        item
    });
    d.backlog.push(backlog_item(412861, "LV108", "8719812004312", "2023-01-16", Value::Null));

    d.delivered = (1..=5).map(|n| delivered(n, &format!("2021-01-0{n}"))).collect();
    d.assemblies = (1..=4).map(|n| assembly(n, &format!("2021-10-1{n}"))).collect();

    d.articles.insert(
        "8719461035781".into(),
        Article {
            article_id: "8719461035781".into(),
            supplier_id: 2113,
            stores: vec![stock_store(791825, "Ridderkerk", 1, 1), stock_store(857361, "Breda", 1, 1)],
            warehouse_quantity: 0,
            supplier_has_stock: true,
            delivery_date_supplier: Some("2022-05-01".into()),
            delivery_date_backlog: None,
        },
    );
    d.articles.insert(
        "8717231346426".into(),
        Article {
            article_id: "G1539".into(),
            supplier_id: 2113,
            stores: vec![],
            warehouse_quantity: 2,
            supplier_has_stock: false,
            delivery_date_supplier: None,
            delivery_date_backlog: Some("2022-01-01".into()),
        },
    );

    for item in [
        StockItem {
            stock_item_id: 109993,
            outbound_order_id: 315254,
            supplier: "Leopard".into(),
            supplier_id: 2400,
            article_id: "593005".into(),
            barcode: "8717931438117".into(),
            description: "Leopard Tess 24 inch 2019 M24-39 Zwart Mat".into(),
            frame_id: "17017456".into(),
            purchase_price_cents: 40900,
            purchase_price_cents_packinglist: 40900,
            dealer_rrp_cents: 41900,
            claimed_for_account_id: Some(1000),
            claimed_for_store_id: Some(13),
            is_claimed_for_obo: true,
            is_sold_to_customer: true,
            is_shipped: true,
            stocked_at: "2018-04-24 08:53:20".into(),
            shipped_at: Some("2021-04-13 07:59:29".into()),
            ..Default::default()
        },
        StockItem {
            stock_item_id: 203013,
            frame_id: "61380279".into(),
            purchase_price_cents: 279900,
            purchase_price_cents_packinglist: 279900,
            dealer_rrp_cents: 289900,
            stocked_at: "2020-06-11 10:59:05".into(),
            ..Default::default()
        },
        StockItem {
            stock_item_id: 203014,
            frame_id: "61380280".into(),
            purchase_price_cents: 279900,
            purchase_price_cents_packinglist: 279900,
            dealer_rrp_cents: 289900,
            stocked_at: "2020-06-11 10:59:05".into(),
            ..Default::default()
        },
    ] {
        d.stock_items.insert(item.stock_item_id, item);
    }

    d.pos_items = vec![
        pos_item(1076, 6, "Batavus", "BE100086", "8713568256155", "Batavus STREAM", true),
        pos_item(4673, 2, "Gazelle", "A0828", "8717231240205", "Gazelle Orange C8 Hm", false),
    ];

    let order = |id: i64, pooled: bool, items: &[(i64, &str, &str, i64)]| OutboundOrder {
        outbound_order_id: id,
        ecommerce_reference_id: format!("FV_{id}"),
        order_reference_text: format!("FV_{id}"),
        order_items: items
            .iter()
            .map(|(item_id, barcode, description, shipped)| OutboundItem {
                outbound_order_item_id: *item_id,
                barcode: barcode.to_string(),
                description: description.to_string(),
                quantity_shipped: *shipped,
                reference: format!("POS{id}"),
                is_sold_to_customer: true,
                is_pooled_within_stores: pooled,
                quantity_claimed: 1,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    for o in [
        order(225, false, &[(277, "8717231228326", "Gazelle MS GRACE Dames Black 2014 49", 0)]),
        order(231, false, &[(283, "8713568224574", "Batavus", 0), (284, "8713568224575", "Batavus lock", 1)]),
        order(240, true, &[(290, "8717231346426", "Orange C8 HMB H8", 0)]),
        order(241, false, &[(291, "8719461035781", "Sparta", 0)]),
    ] {
        d.outbound_orders.insert(o.outbound_order_id, o);
    }

    let key_store = |id: &str, gln: &str, address: &str, postal: &str, city: &str, dealer: &str| {
        let mut s = store(id, gln, "CycleSoftware", address, postal, city, "0733030050", [51.69, 5.35]);
        s["store_meta_data"] = json!({"drg_dealer_number": dealer});
        s
    };
    d.keys = vec![
        json!({"key": "Ls6m1ZOgt5JbClmZZHAr8GNhk1qL4Dx0SB7hyyWf", "is_active": true,
               "store": key_store("1-3", "", "Kievitsven 22Z", "5249JJ", "Rosmalen", "999")}),
        json!({"key": "BLs6m1ZOgt5JbClmZZHAr8GNhk1qL4Dx0SB7hyyWf", "is_active": false,
               "store": key_store("1-1", "8718288145482", "Raadhuisplein 1c", "5388GM", "Nistelrode", "888")}),
    ];
    d.stores = vec![
        store("1-1", "8718288145482", "CycleSoftware", "Raadhuisplein 1c", "5388GM", "Nistelrode", "0733030050", [51.70, 5.56]),
        store("5185-1", "8718288145482", "CS-Unit test", "Kievitsven 22", "5249JJ", "Rosmalen", "", [51.72, 5.36]),
    ];
    // The locator's stores carry no city in the docs.
    for s in &mut d.stores {
        s.as_object_mut().map(|m| m.remove("store_city"));
    }
    d.locator_stock = vec![
        json!({"store_id": "5185-1", "object_id": 144922, "barcode": "8717144186799", "article_id": "03505002", "brand_name": "Sparta", "is_demo": false}),
        json!({"store_id": "1-1", "object_id": 18695, "barcode": "8717231204726", "article_id": "30015", "brand_name": "Gazelle", "is_demo": false}),
        json!({"store_id": "1-1", "object_id": 18696, "barcode": "8717231204726", "article_id": "30015", "brand_name": "Gazelle", "is_demo": true}),
    ];

    let sales = |store_id, customers: Vec<i64>, due, invoiced| SalesOrder {
        store_id,
        delivery_method_id: 1,
        item_ids: vec![1, 2],
        customer_ids: customers,
        amount_due_cents: due,
        invoiced,
        cancelled: false,
    };
    d.sales_orders.insert(1000, sales(1, vec![6298, 9011], 0, false));
    d.sales_orders.insert(102323, sales(1, vec![6298], 0, false));
    d.sales_orders.insert(121212, sales(1, vec![9011], 0, false));
    d.sales_orders.insert(121213, sales(1, vec![9011], 25_000, false));
    d.sales_orders.insert(121214, sales(2, vec![9011], 0, true));
    d
}
