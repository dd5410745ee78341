//! The request side: query, cookies and body readers on [`HttpContext`](crate::HttpContext).
//!
//! ```
//! use ragi_tools::{Context, Error, HttpContext, Response};
//!
//! async fn search(cx: HttpContext) -> Result<Response, Error> {
//!     let q = cx.query();
//!     let terms: Vec<&str> = q.get_all("term").collect(); // ?term=a&term=b
//!     let page: u32 = q.get("page").unwrap_or("1").parse().map_err(|_| Error::bad_request("page"))?;
//!     Ok(Response::json(&serde_json::json!({ "terms": terms, "page": page })))
//! }
//! # let _ = search;
//! ```

mod query;

pub use query::Query;
