//! Groups read with their creator's rights (issue 13), on a secure node: a creator who may
//! not read the source cannot create the group, a `$all` group sees only the streams its
//! creator may read, and links resolve only into such streams.

use bytes::Bytes;
use stele_core::access::{AnonymousAccess, Principal};

use super::tests::{append, event, next, start_with};
use super::*;
use crate::access::AccessControl;

fn user(name: &str) -> Principal {
    Principal::User {
        name: name.to_owned(),
        groups: Vec::new(),
    }
}

fn acl(read: &str) -> Bytes {
    Bytes::from(format!(r#"{{"$acl":{{"$r":"{read}"}}}}"#))
}

fn definition(source: Source, group: &str, creator: Principal, resolve_links: bool) -> Definition {
    Definition {
        key: GroupKey::new(source, group),
        filter: None,
        settings: Settings {
            start_from: StartFrom::Start,
            resolve_links,
            ..Settings::default()
        },
        creator,
    }
}

async fn consumer(persistent: &Subsystem, key: &GroupKey) -> Consumer {
    persistent
        .connect(ConnectRequest {
            key: key.clone(),
            buffer_size: 10,
            connection_name: "rights".to_owned(),
            from: String::new(),
            username: String::new(),
        })
        .await
        .expect("connect")
}

/// The data of what a message shows: the event's, or `None` for an unresolved link.
fn shown(message: &Message) -> Option<String> {
    message
        .event
        .as_ref()
        .map(|e| String::from_utf8_lossy(&e.record.data).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_read_with_their_creators_rights() {
    let (node, persistent) =
        start_with(|node| AccessControl::secure(node, AnonymousAccess::default())).await;
    append(&node, "open-1", vec![event("e", Bytes::from("open"))]).await;
    append(&node, "secret-1", vec![event("e", Bytes::from("secret"))]).await;
    append(
        &node,
        "$$secret-1",
        vec![event("$metadata", acl("$admins"))],
    )
    .await;
    // ouro may read `$all`; the default ACL of user streams lets it read open-1 only.
    append(&node, "$$$all", vec![event("$metadata", acl("ouro"))]).await;
    let links = vec![
        event("$>", Bytes::from("0@secret-1")),
        event("$>", Bytes::from("0@open-1")),
    ];
    append(&node, "links", links).await;
    append(&node, "$$links", vec![event("$metadata", acl("$all"))]).await;

    // Creating needs read access to the source.
    let refused = definition(
        Source::Stream(StreamName::new("secret-1").unwrap()),
        "g",
        user("ouro"),
        false,
    );
    assert_eq!(persistent.create(refused).await, Err(PsError::AccessDenied));
    let refused_all = definition(Source::All, "g", user("nobody"), false);
    assert_eq!(
        persistent.create(refused_all).await,
        Err(PsError::AccessDenied)
    );

    // A stream group's links resolve only into streams its creator may read.
    let links = Source::Stream(StreamName::new("links").unwrap());
    let group = definition(links, "resolving", user("ouro"), true);
    let key = group.key.clone();
    persistent.create(group).await.expect("create");
    let mut consumer_of_links = consumer(&persistent, &key).await;
    let first = next(&mut consumer_of_links).await;
    assert!(first.link.is_some(), "the link is delivered");
    assert_eq!(shown(&first), None, "the secret target stays unresolved");
    assert_eq!(
        shown(&*next(&mut consumer_of_links).await).as_deref(),
        Some("open")
    );

    // The same group made by an admin resolves both.
    let links = Source::Stream(StreamName::new("links").unwrap());
    let group = definition(links, "admin", Principal::System, true);
    let key = group.key.clone();
    persistent.create(group).await.expect("create");
    let mut admins = consumer(&persistent, &key).await;
    assert_eq!(shown(&*next(&mut admins).await).as_deref(), Some("secret"));

    // A `$all` group of ouro's never sees secret-1's event; open-1's it does.
    let group = definition(Source::All, "everything", user("ouro"), false);
    let key = group.key.clone();
    persistent.create(group).await.expect("create");
    let mut everything = consumer(&persistent, &key).await;
    let mut streams = Vec::new();
    while let Ok(Some(Delivery::Message(message))) =
        tokio::time::timeout(std::time::Duration::from_millis(500), everything.next()).await
    {
        let event = message.event.expect("an event");
        streams.push(event.record.stream.as_str().to_owned());
    }
    assert!(streams.contains(&"open-1".to_owned()), "{streams:?}");
    assert!(!streams.contains(&"secret-1".to_owned()), "{streams:?}");

    // Updating keeps the creator: the group still runs with ouro's rights.
    let mut update = definition(Source::All, "everything", Principal::System, false);
    update.settings.message_timeout_ms = 5_000;
    persistent.update(update).await.expect("update");
    let info = persistent.info(&key).await.expect("info");
    assert_eq!(info.definition.creator, user("ouro"));
}
