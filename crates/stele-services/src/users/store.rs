//! The users' streams over the node: reading a user's latest record, listing the logins of
//! `$users`, and the writes the operations make. Reads run on the blocking pool.

use sha2::{Digest, Sha256};
use stele_cluster::{
    AppendOutcome, Direction, Node, ReadError, StreamReadRequest, StreamReadResult, StreamStart,
};
use stele_core::{ContentType, ExpectedRevision, ProposedEvent, StreamName};

use super::error::UserError;
use super::record::{
    self, UserRecord, PASSWORD_NOTIFICATIONS_STREAM, USERS_STREAM, USER_CREATED, USER_UPDATED,
};

/// `$users` events read per page when listing.
const USERS_PAGE_EVENTS: u64 = 500;

/// `$maxAge` of `$users-password-notifications`, in seconds (EventStoreDB: one hour).
pub(crate) const PASSWORD_NOTIFICATIONS_MAX_AGE_SECS: u64 = 3600;

/// A user's latest record, and where it is.
#[derive(Debug, Clone)]
pub(crate) struct StoredUser {
    pub record: UserRecord,
    /// The revision of the event holding it: any change to the user moves it (a delete makes
    /// the stream not found; a recreation continues the numbering).
    pub revision: u64,
    /// When it was written: .NET ticks since the Unix epoch.
    pub updated_ticks: i64,
}

/// `$user-<login>`, or Invalid for a login that makes no stream name.
pub(crate) fn user_stream(login: &str) -> Result<StreamName, UserError> {
    StreamName::new(record::user_stream_name(login))
        .map_err(|e| UserError::Invalid(format!("login name: {e}")))
}

fn stream(name: &str) -> StreamName {
    StreamName::new(name).expect("a fixed stream name is valid")
}

/// The latest record of `login`; `None` if the user was never created or was deleted.
/// Blocking.
pub(crate) fn read_user(node: &Node, login: &str) -> Result<Option<StoredUser>, UserError> {
    let request = StreamReadRequest {
        stream: user_stream(login)?,
        start: StreamStart::End,
        direction: Direction::Backwards,
        max_count: 1,
    };
    let event = match node.read_stream(&request) {
        Ok(StreamReadResult::Events(events)) => match events.into_iter().next() {
            Some(event) => event,
            None => return Ok(None),
        },
        Ok(StreamReadResult::NotFound) | Err(ReadError::StreamDeleted(_)) => return Ok(None),
        Err(other) => return Err(other.into()),
    };
    let bad = |detail: String| UserError::BadRecord {
        login: login.to_owned(),
        detail,
    };
    let kind = event.record.event_type.as_str();
    if kind != USER_CREATED && kind != USER_UPDATED {
        return Err(bad(format!("the latest event is a {kind}")));
    }
    let record = UserRecord::decode(&event.record.data).map_err(|e| bad(e.to_string()))?;
    if record.login_name != login {
        return Err(bad(format!("it names '{}'", record.login_name)));
    }
    Ok(Some(StoredUser {
        record,
        revision: event.revision.0,
        updated_ticks: event.record.created_ticks,
    }))
}

/// [`read_user`] on the blocking pool.
pub(crate) async fn load(node: &Node, login: &str) -> Result<Option<StoredUser>, UserError> {
    let node = node.clone();
    let login = login.to_owned();
    stele_cluster::blocking::spawn(move || read_user(&node, &login))
        .await
        .map_err(|join| UserError::Internal(join.to_string()))?
}

/// Every login `$users` names, sorted and without repeats (deleted users included: the
/// caller reads each). Blocking.
fn read_logins(node: &Node) -> Result<Vec<String>, UserError> {
    let mut logins = std::collections::BTreeSet::new();
    let mut next = 0;
    loop {
        let request = StreamReadRequest {
            stream: stream(USERS_STREAM),
            start: StreamStart::Revision(next),
            direction: Direction::Forwards,
            max_count: USERS_PAGE_EVENTS,
        };
        let events = match node.read_stream(&request)? {
            StreamReadResult::Events(events) => events,
            StreamReadResult::NotFound => break,
        };
        let Some(last) = events.last() else { break };
        next = last.revision.0 + 1;
        for event in &events {
            if let Some(login) = record::decode_user_index(&event.record.data) {
                logins.insert(login.to_owned());
            }
        }
        if (events.len() as u64) < USERS_PAGE_EVENTS {
            break;
        }
    }
    Ok(logins.into_iter().collect())
}

/// Every existing user, sorted by login name, on the blocking pool.
pub(crate) async fn load_all(node: &Node) -> Result<Vec<StoredUser>, UserError> {
    let node = node.clone();
    stele_cluster::blocking::spawn(move || {
        let mut users = Vec::new();
        for login in read_logins(&node)? {
            if let Some(user) = read_user(&node, &login)? {
                users.push(user);
            }
        }
        Ok(users)
    })
    .await
    .map_err(|join| UserError::Internal(join.to_string()))?
}

/// Appends `events` for an operation on `login`.
pub(crate) async fn append(
    node: &Node,
    login: &str,
    stream: StreamName,
    expected: ExpectedRevision,
    events: Vec<ProposedEvent>,
) -> Result<AppendOutcome, UserError> {
    node.append(stream, expected, events, false)
        .await
        .map_err(|e| UserError::write(login, e))
}

/// Appends `event` (a user record) to `$user-<login>`; `false` when `expected` did not hold.
pub(crate) async fn write_record(
    node: &Node,
    login: &str,
    expected: ExpectedRevision,
    event: ProposedEvent,
) -> Result<bool, UserError> {
    let outcome = append(node, login, user_stream(login)?, expected, vec![event]).await?;
    Ok(matches!(outcome, AppendOutcome::Success { .. }))
}

/// The id of `login`'s `$User` event: derived from the login, so that writing it again is a
/// retry the node recognises, not a second event.
fn user_index_id(login: &str) -> uuid::Uuid {
    let digest = Sha256::new()
        .chain_update(b"stele $users entry\0")
        .chain_update(login.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Lists `login` in `$users` (once, however often called).
pub(crate) async fn write_user_index(node: &Node, login: &str) -> Result<(), UserError> {
    let event = record::user_index_event(login, user_index_id(login));
    append(
        node,
        login,
        stream(USERS_STREAM),
        ExpectedRevision::Any,
        vec![event],
    )
    .await
    .map(drop)
}

/// Writes `json` as the first metadata of `stream` (nothing if it has metadata already).
async fn write_first_metadata(
    node: &Node,
    login: &str,
    stream: &StreamName,
    json: serde_json::Value,
) -> Result<(), UserError> {
    let event = ProposedEvent {
        id: stele_cluster::determinism::new_uuid(),
        event_type: stele_core::metadata::METADATA_EVENT_TYPE.to_owned(),
        content_type: ContentType::Json,
        custom_metadata: bytes::Bytes::new(),
        data: bytes::Bytes::from(json.to_string()),
    };
    let metadata = stream.metadata_stream();
    append(
        node,
        login,
        metadata,
        ExpectedRevision::NoStream,
        vec![event],
    )
    .await
    .map(drop)
}

/// The ACL of `$user-<login>`: writing, deleting and changing its metadata need `$admins`
/// (reading keeps the system streams' default). Written once, before the user's first
/// record; a soft delete and a recreation keep it (the node merges `$tb` into it).
pub(crate) async fn write_user_acl(node: &Node, login: &str) -> Result<(), UserError> {
    let admins = stele_core::access::ADMINS_GROUP;
    let json = serde_json::json!({ "$acl": { "$w": admins, "$d": admins, "$mw": admins } });
    write_first_metadata(node, login, &user_stream(login)?, json).await
}

/// `$users-password-notifications` keeps an hour of notifications.
pub(crate) async fn write_notifications_max_age(node: &Node) -> Result<(), UserError> {
    let json = serde_json::json!({ "$maxAge": PASSWORD_NOTIFICATIONS_MAX_AGE_SECS });
    write_first_metadata(node, "", &stream(PASSWORD_NOTIFICATIONS_STREAM), json).await
}

/// Tells caches (and anyone reading the stream) that `login`'s credentials changed.
pub(crate) async fn notify_password_changed(node: &Node, login: &str) -> Result<(), UserError> {
    let event = record::password_changed_event(login);
    let stream = stream(PASSWORD_NOTIFICATIONS_STREAM);
    append(node, login, stream, ExpectedRevision::Any, vec![event])
        .await
        .map(drop)
}
