//! Query parameters several endpoints share, with their documented defaults.
use crate::api::{param, Default, Kind, Param};

pub const ASC_DESC: &[&str] = &["asc", "desc"];
pub const PAGE: Param = param("page", Kind::Int, Default::Int(0), "page number, from 0");
pub const LIMIT: Param = param("limit", Kind::Int, Default::Int(50), "items per page");
pub const PAGE_SIZE: Param = param("page_size", Kind::Int, Default::Int(25), "items per page");
pub const ORDER_DESC: Param = param("order", Kind::Enum(ASC_DESC), Default::Text("desc"), "sort direction");
pub const ORDER_ASC: Param = param("order", Kind::Enum(ASC_DESC), Default::Text("asc"), "sort direction");
pub const SORT_ORDER_ASC: Param = param("sort_order", Kind::Enum(ASC_DESC), Default::Text("asc"), "sort direction");
pub const QUERY: Param = param("query", Kind::Text, Default::None, "free-text search");
pub const FROM: Param = param("from", Kind::Millis, Default::Int(0), "from this date (0 = no limit)");
pub const TO: Param = param("to", Kind::Millis, Default::Int(0), "up to this date (0 = no limit)");
pub const SINCE: Param = param("since", Kind::Millis, Default::Int(0), "changed since this time (0 = all)");
pub const FINISH_PICKINGLISTS: Param =
    param("finish_pickinglists", Kind::Bool, Default::Bool(false), "also finish the order's picking lists");
pub const CREATE_REST_ORDER: Param =
    param("create_rest_order", Kind::Bool, Default::Bool(false), "put what was not picked on a new rest order");
pub const INVOICE_TYPE: Param =
    param("type", Kind::Enum(&["invoice", "cash", "card", "ag"]), Default::Text("invoice"), "how the order is paid");
