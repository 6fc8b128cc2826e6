//! Compiles `proto/*.proto` with protox (no system `protoc`; the google.protobuf well-known
//! types come bundled with it) and generates prost messages plus tonic clients and servers.

#![allow(clippy::print_stdout, reason = "build scripts talk to cargo on stdout")]

const PROTO_FILES: &[&str] = &[
    "code.proto",
    "status.proto",
    "shared.proto",
    "streams.proto",
    "serverfeatures.proto",
    "gossip.proto",
    "operations.proto",
    "persistent.proto",
    "users.proto",
    "projections.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed=proto/{file}");
    }
    let fds = protox::compile(PROTO_FILES, ["proto"])?;
    // `prost::Name` on every message, so in-band errors pack into `google.protobuf.Any` with
    // the type URL clients test for: `type.googleapis.com/event_store.client.<Name>`.
    let mut config = tonic_build::Config::new();
    config
        .enable_type_names()
        .type_name_domain(["."], "type.googleapis.com");
    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        // Event payloads become `bytes::Bytes`, so decoding slices the request buffer
        // instead of copying, and the domain's `Bytes` pass through unchanged.
        .bytes(["."])
        // Malformed requests are INVALID_ARGUMENT, not INTERNAL (see src/codec.rs).
        .codec_path("crate::codec::StrictProstCodec")
        .compile_fds_with_config(config, fds)?;
    Ok(())
}
