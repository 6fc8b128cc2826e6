//! `GET /info` (version, state, features, authentication, as EventStoreDB's `InfoController`
//! answers) and `GET /ping`.

use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;

use super::{SharedNode, SERVER_VERSION};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Info {
    db_version: &'static str,
    es_version: &'static str,
    /// The node state in lower case (`leader`, `follower`).
    state: String,
    features: Features,
    authentication: Authentication,
}

/// The optional subsystems and whether this node runs them. None of them exists yet.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Features {
    projections: bool,
    user_management: bool,
    atom_pub: bool,
}

/// Whether the node is secure (`router` adds it to every request; absent = insecure).
#[derive(Debug, Clone, Copy)]
pub struct SecurityMode {
    pub secure: bool,
}

#[derive(Debug, Serialize)]
struct Authentication {
    /// `insecure` (no authentication, no TLS), or `internal` (users in the log), as
    /// EventStoreDB names its providers.
    #[serde(rename = "type")]
    kind: &'static str,
    properties: serde_json::Map<String, serde_json::Value>,
}

pub(super) async fn get_info(
    State(node): State<SharedNode>,
    mode: Option<Extension<SecurityMode>>,
) -> Json<Info> {
    let secure = mode.is_some_and(|Extension(mode)| mode.secure);
    Json(Info {
        db_version: SERVER_VERSION,
        es_version: SERVER_VERSION,
        state: node.status().state.name().to_ascii_lowercase(),
        features: Features {
            projections: false,
            user_management: secure,
            atom_pub: false,
        },
        authentication: Authentication {
            kind: if secure { "internal" } else { "insecure" },
            properties: serde_json::Map::new(),
        },
    })
}

/// The `msgTypeId` of `/ping`'s answer. EventStoreDB serializes its internal
/// `HttpMessage.TextMessage` there, whose id it assigns when it starts, from its message
/// classes: the number differs between versions (the Node client's tests accept any
/// number), so Stele answers a fixed one.
pub const PING_MSG_TYPE_ID: u32 = 1;

/// `/ping`'s body, as EventStoreDB writes it: `{"msgTypeId": <n>, "text": "..."}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Ping {
    msg_type_id: u32,
    text: &'static str,
}

pub(super) async fn ping() -> Json<Ping> {
    Json(Ping {
        msg_type_id: PING_MSG_TYPE_ID,
        text: "Ping request successfully handled",
    })
}
