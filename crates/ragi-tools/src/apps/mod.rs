//! Ready-made apps: static files, and the small apps that route between apps.
//!
//! * [`static_files`] — a directory served with conditional requests, ranges, precompressed
//!   siblings, indexes, listings and an SPA mode, traversal refused in every spelling;
//! * [`not_found`] — a 404 in the scope's family;
//! * [`redirect`] — a redirect to a fixed or computed location;
//! * [`health`] — a liveness answer;
//! * [`cascade`] — apps tried in turn, the first that does not answer 404 wins;
//! * [`url_map`] — apps mounted at path prefixes, `root_path` set;
//! * [`throttle`] — a bandwidth limit on response bodies.

pub mod cascade;
pub mod health;
pub mod not_found;
pub mod redirect;
pub mod static_files;
pub mod throttle;
pub mod url_map;
