//! stele-cluster transport: the length-prefixed postcard frames read from the internal TCP port
//! (`transport::read_frame`), as each message type a node reads: the `Hello` that opens a
//! connection, its `HelloReply`, a `Request`, a `Reply` and a streaming-replication reply.
//!
//! Input: a byte choosing the message type, then the bytes a peer sent (length prefix and all).
//!
//! Checks: nothing panics; no allocation larger than the input warrants (the capped allocator
//! in `src/lib.rs` aborts on one: a frame length is a claim, not a size to reserve); a message
//! that decodes is written back by `write_frame` and decodes to the same message.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use stele_cluster::transport::{
    read_frame, write_frame, Hello, HelloReply, Reply, Request, StreamReply,
};
use stele_fuzz::Input;

fuzz_target!(|data: &[u8]| {
    stele_fuzz::init();
    let mut input = Input::new(data);
    let kind = input.byte();
    let frames = input.rest();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        match kind % 5 {
            0 => round_trip::<Hello>(frames).await,
            1 => round_trip::<HelloReply>(frames).await,
            2 => round_trip::<Request>(frames).await,
            3 => round_trip::<Reply>(frames).await,
            _ => round_trip::<StreamReply>(frames).await,
        }
    });
});

/// Reads frames until one fails, as a connection does.
async fn round_trip<T: Serialize + DeserializeOwned + Debug>(mut bytes: &[u8]) {
    loop {
        let message: T = match read_frame(&mut bytes).await {
            Ok(message) => message,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                return;
            }
        };
        let mut written = Vec::new();
        write_frame(&mut written, &message)
            .await
            .expect("a decoded message encodes");
        let again: T = read_frame(&mut written.as_slice())
            .await
            .expect("a re-encoded message decodes");
        assert_eq!(format!("{again:?}"), format!("{message:?}"));
    }
}
