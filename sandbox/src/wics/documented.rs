//! The documented records, each with the fields and JSON types of the docs'
//! example answers (a value of each type: "" a string, 0 a number). The
//! simulator keeps what callers sent; its answers show it through these
//! (`crate::shape::conform`), so no undocumented field leaks out.

/// An order, as "Get Order" answers it.
pub const ORDER: &str = r#"{"number":"","reference":"","additionalReference":"","deliveryDate":"","note":"","pickupPoint":"","termsOfDelivery":"","method":"","webshopId":0,"paid":false,"warehouseCode":"","priority":0,"rideNumber":0,"ride":{"number":0,"routeCode":"","stopNumber":0},"statusCode":"","edi":{"char2":"","char3":"","char4":"","char5":"","char6":"","char7":"","char8":"","char9":"","char10":""},"prices":{"currency":"","totalPriceNet":0,"totalPriceGross":0,"totalDiscount":0,"handlingCost":0,"shippingCost":0,"rembours":0},"invoiceAddress":{"number":0,"name":"","nameExtension":"","street":"","streetNumber":0,"extension":"","secondAddressLine":"","zipcode":"","city":"","state":"","country":"","phoneNumber":"","email":"","language":""},"deliveryAddress":{"number":0,"name":"","nameExtension":"","street":"","streetNumber":0,"extension":"","secondAddressLine":"","zipcode":"","city":"","state":"","country":"","phoneNumber":"","email":"","language":""},"lines":[{"lineNumber":0,"itemCode":"","itemDescription":"","quantity":0,"quantityDelivered":0,"unit":"","prices":{"unitPriceNet":0,"unitPriceGross":0,"priceNet":0,"priceGross":0,"vatPercentage":0,"discount":0}}]}"#;

/// An order, as "List Orders" lists it.
pub const ORDER_HEADER: &str = r#"{"number":"","reference":"","deliveryDate":"","pickupPoint":"","method":"","webshopId":0,"paid":false,"priority":0,"rideNumber":0,"termsOfDelivery":"","ride":{"number":0,"routeCode":"","stopNumber":0},"statusCode":"","prices":{"currency":"","totalPriceNet":0,"totalPriceGross":0,"totalDiscount":0,"handlingCost":0,"shippingCost":0,"rembours":0},"invoiceAddress":{"number":0,"name":"","nameExtension":"","company":"","street":"","streetNumber":0,"zipcode":"","city":"","country":"","phoneNumber":"","email":"","language":""},"deliveryAddress":{"number":0,"name":"","nameExtension":"","company":"","street":"","streetNumber":0,"zipcode":"","city":"","country":"","phoneNumber":"","email":"","language":""}}"#;

/// An announcement, as "Get Announcement" answers it.
pub const ANNOUNCEMENT: &str = r#"{"number":"","reference":"","plannedDate":"","type":"","warehouseCode":"","supplier":0,"carrier":0,"stockStatus":0,"lines":[{"lineNumber":0,"itemCode":"","itemDescription":"","unit":"","quantityExpected":0,"lotNumber":"","bestBeforeDate":""}]}"#;

/// An announcement, as "List Announcements" lists it.
pub const ANNOUNCEMENT_HEADER: &str = r#"{"number":"","reference":"","plannedDate":"","type":"","warehouseCode":"","supplier":0,"carrier":0,"stockStatus":0}"#;

/// A receipt, as "Get Receipt" answers it.
pub const RECEIPT: &str = r#"{"number":"","reference":"","receiptDate":"","warehouse":"","stockStatusCode":"","stockStatusDescription":"","typeCode":"","typeDescription":"","statusCode":"","statusDescription":"","hasSerialNumbers":false,"customerNumber":0,"lines":[{"lineNumber":0,"itemCode":"","itemDescription":"","quantityExpected":0,"quantityReceived":0,"unit":"","statusCode":"","statusDescription":"","stockStatusCode":"","stockStatusDescription":"","hasSerialNumbers":false,"warehouseCode":"","EANSSCC":""}]}"#;

/// A receipt, as "List Receipts" lists it.
pub const RECEIPT_HEADER: &str = r#"{"number":"","reference":"","receiptDate":"","warehouse":"","stockStatusCode":"","stockStatusDescription":"","typeCode":"","typeDescription":"","statusCode":"","statusDescription":"","hasSerialNumbers":false,"customerNumber":0}"#;

/// A shipment, as "List shipments for order" lists it.
pub const SHIPMENT: &str = r#"{"shipmentNr":0,"colloId":"","orderReference":"","additionalReference":"","shipperCode":"","shipperName":"","trackAndTrace":"","trackAndTraceUrl":"","hasSerialNumbers":false,"shippingLines":[{"orderLine":0,"orderLineExternal":0,"itemCode":"","itemDescription":"","quantityOrdered":0,"quantityDelivered":0,"unit":"","hasSerialNumbers":false,"EANSSCC":""}]}"#;

/// An item, as "List Items" lists it.
pub const ITEM: &str = r#"{"code":"","internalDescription":"","description":"","itemGroup":"","defaultUnit":"","assembled":false,"statusCode":""}"#;
