//! The request side: query, cookies and body readers on [`HttpContext`](crate::HttpContext).
//!
//! ```
//! use ragi_tools::{Context, Error, HttpContext, Response};
//!
//! async fn search(cx: HttpContext) -> Result<Response, Error> {
//!     let q = cx.query();
//!     let terms: Vec<&str> = q.get_all("term").collect(); // ?term=a&term=b
//!     let page: u32 = q.get("page").unwrap_or("1").parse().map_err(|_| Error::bad_request("page"))?;
//!     let session = cx.cookie("session");                  // Cookie: session=...
//!     Ok(Response::json(&serde_json::json!({ "terms": terms, "page": page, "session": session })))
//! }
//! # let _ = search;
//! ```
//!
//! * [`Query`]: the query string, multi-valued;
//! * [`cookies`]: the `Cookie` header ([`Cookies`], `Context::cookies` / `cookie`);
//! * [`body`]: the body as bytes, text, JSON or a form, or as a stream, each with a limit
//!   ([`BodyLimits`]);
//! * [`multipart`]: `multipart/form-data`, streamed or collected, with temporary files that
//!   never outlive the request.

pub mod body;
pub mod cookies;
mod form;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod multipart;
mod query;

pub use body::{BodyLimits, BodyReader, BodyStream};
pub use cookies::Cookies;
pub use multipart::{Field, Multipart, MultipartForm, MultipartLimits, Part, PartHead, TempFile};
pub use query::Query;
