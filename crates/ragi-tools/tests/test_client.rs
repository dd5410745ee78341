//! Tests of the in-process test client (`ragi_tools::test`) itself, with small raw apps
//! written against the `ragi` interface.

mod test_client {
    pub mod support;

    mod cookies;
    mod disconnect;
    mod http;
    mod lifespan;
    mod misuse;
    mod sse;
    mod toolkit;
    mod ws;
}
