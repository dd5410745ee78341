//! The channel layer and the pub/sub apps (SSE pub/sub, WebSocket broadcast and echo, the
//! chat with presence), through the in-process test client.

mod pubsub {
    pub mod support;

    mod broadcast;
    mod chat;
    mod echo;
    mod gaps;
    mod layer;
    mod sse;
}
