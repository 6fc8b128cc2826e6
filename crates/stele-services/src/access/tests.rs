//! Access checks against a real in-memory node: ACLs are cached across requests, yet a
//! changed `$acl` or `$settings` applies to the very next check.

use bytes::Bytes;
use stele_core::access::{AnonymousAccess, Principal, StreamAccess};
use stele_core::{ContentType, ExpectedRevision, ProposedEvent, StreamName};
use uuid::Uuid;

use super::*;

async fn write(node: &Node, stream: &str, data: &str) {
    let event = ProposedEvent {
        id: Uuid::new_v4(),
        event_type: "$metadata".into(),
        content_type: ContentType::Json,
        custom_metadata: Bytes::new(),
        data: Bytes::from(data.to_owned()),
    };
    node.append(
        StreamName::new(stream).unwrap(),
        ExpectedRevision::Any,
        vec![event],
        true,
    )
    .await
    .expect("the write succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_acl_gives_way_to_a_new_one_at_the_next_check() {
    let node = crate::test_node().await;
    let access = AccessControl::secure(node.clone(), AnonymousAccess::default());
    let ouro = Principal::User {
        name: "ouro".into(),
        groups: Vec::new(),
    };
    let read = |access: &AccessControl| {
        let (access, ouro) = (access.clone(), ouro.clone());
        async move {
            access
                .check_stream(&ouro, "orders", StreamAccess::Read)
                .await
        }
    };
    assert_eq!(
        read(&access).await,
        Ok(()),
        "the default user ACL lets anyone read"
    );
    assert_eq!(access.acls.len(), 1, "the ACL is cached");
    assert_eq!(read(&access).await, Ok(()));

    write(&node, "$$orders", r#"{"$acl":{"$r":"$admins"}}"#).await;
    assert_eq!(
        read(&access).await,
        Err(Denied),
        "the new ACL applies at once"
    );
    write(&node, "$$orders", r#"{"$acl":{"$r":["ouro"]}}"#).await;
    assert_eq!(read(&access).await, Ok(()));

    // The defaults: a stream without an ACL follows `$settings`.
    let other = |access: &AccessControl| {
        let (access, ouro) = (access.clone(), ouro.clone());
        async move {
            access
                .check_stream(&ouro, "invoices", StreamAccess::Write)
                .await
        }
    };
    assert_eq!(other(&access).await, Ok(()));
    write(
        &node,
        "$settings",
        r#"{"$userStreamAcl":{"$w":"$admins"},"$systemStreamAcl":{"$r":"$admins"}}"#,
    )
    .await;
    assert_eq!(
        other(&access).await,
        Err(Denied),
        "new defaults apply at once"
    );
}
