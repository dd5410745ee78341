//! Small raw apps and helpers shared by the test-client tests.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ragi::{DisconnectReason, Headers, ReceiveEvent, Receiver, SendEvent, Sender};

/// A shared list of what an app observed, in order.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    pub fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }

    pub fn get(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Reads the whole body; the reason if the client left first.
pub async fn read_body(rx: &mut Receiver) -> Result<Vec<u8>, DisconnectReason> {
    let mut body = Vec::new();
    loop {
        match rx.receive().await {
            ReceiveEvent::Request { body: piece, more } => {
                body.extend_from_slice(&piece);
                if !more {
                    return Ok(body);
                }
            }
            ReceiveEvent::Disconnect { reason } => return Err(reason),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Sends a whole response.
pub async fn respond(
    send: &Sender,
    status: u16,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Result<(), ragi::SendError> {
    send.send(SendEvent::response_start(
        status,
        Headers::new().with("content-type", content_type.to_owned()),
    ))
    .await?;
    send.send(SendEvent::body(body)).await
}
