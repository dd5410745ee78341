//! (sockets: below)
