//! Protocol cores: sans-I/O state machines, tested without sockets.
//!
//! Nothing here reads or writes a socket or looks at the clock: the connection driver
//! ([`crate::h1`]) feeds bytes in and takes bytes out.

pub(crate) mod h1;
pub(crate) mod ws;
