//! HTTP/1.1 framing: request heads, request bodies, response heads and body framing.
//!
//! Why our own framing over `httparse` rather than hyper: hyper cannot report a disconnect while
//! a request body is unread or a pipelined request is buffered, because its connection only
//! looks at the socket when the service asks for body bytes. ragi's driver owns the socket and
//! keeps watching it in every state, so it needs the framing as plain functions and state
//! machines it can call between its own reads and writes. `httparse` does the tokenising;
//! everything RFC 9112 says about which requests to refuse lives in [`request`].

pub(crate) mod body;
pub(crate) mod request;
pub(crate) mod response;
