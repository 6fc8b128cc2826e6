//! The user operations and the authenticator against a real in-memory node.

use stele_cluster::{Direction, Node, StreamReadRequest, StreamReadResult, StreamStart};
use stele_core::access::Principal;
use stele_core::{RecordedEvent, StreamMetadata, StreamName};

use super::password::HashCost;
use super::record::{self, UserRecord};
use super::throttle::{FAILED_LOGIN_WINDOW, MAX_FAILED_LOGINS};
use super::*;

async fn start() -> (Node, Users, Authenticator) {
    let node = crate::test_node().await;
    let users = Users::with_cost(node.clone(), HashCost::MINIMAL);
    let auth = Authenticator::new(node.clone());
    (node, users, auth)
}

fn read(node: &Node, stream: &str) -> Vec<RecordedEvent> {
    let request = StreamReadRequest {
        stream: StreamName::new(stream).unwrap(),
        start: StreamStart::Start,
        direction: Direction::Forwards,
        max_count: 1000,
    };
    match node.read_stream(&request).unwrap() {
        StreamReadResult::Events(events) => events,
        StreamReadResult::NotFound => Vec::new(),
    }
}

fn types(events: &[RecordedEvent]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e.record.event_type.as_str())
        .collect()
}

fn groups(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn user(name: &str, groups_: &[&str]) -> Principal {
    Principal::User {
        name: name.into(),
        groups: groups(groups_),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_is_idempotent_with_the_same_password_and_a_conflict_with_another() {
    let (node, users, auth) = start().await;
    users
        .create("ouro", "Ouro Boros", &groups(&["readers"]), "pw")
        .await
        .unwrap();
    users
        .create("ouro", "Another Name", &groups(&[]), "pw")
        .await
        .unwrap();
    assert_eq!(
        users.create("ouro", "Ouro Boros", &[], "other").await,
        Err(UserError::Conflict {
            login: "ouro".into()
        })
    );
    // One record, one `$User` entry in `$users` (plain text), the ACL in the metadata.
    let stream = read(&node, "$user-ouro");
    assert_eq!(types(&stream), ["$UserCreated"]);
    let stored = UserRecord::decode(&stream[0].record.data).unwrap();
    assert_eq!(stored.full_name, "Ouro Boros");
    assert_eq!(stored.hash_algorithm, record::HASH_ALGORITHM_ARGON2ID);
    assert!(!String::from_utf8_lossy(&stream[0].record.data).contains("\"pw\""));
    let index = read(&node, "$users");
    assert_eq!(types(&index), ["$User"]);
    assert_eq!(&index[0].record.data[..], b"ouro");
    let metadata = read(&node, "$$$user-ouro");
    let acl: serde_json::Value = serde_json::from_slice(&metadata[0].record.data).unwrap();
    assert_eq!(
        acl["$acl"],
        serde_json::json!({"$w": "$admins", "$d": "$admins", "$mw": "$admins"})
    );
    assert_eq!(
        auth.authenticate("ouro", "pw").await,
        Ok(user("ouro", &["readers"]))
    );
    assert_eq!(
        users
            .create("", "x", &[], "pw")
            .await
            .map_err(|e| matches!(e, UserError::Invalid(_))),
        Err(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_replaces_the_name_and_groups_only_and_notifies() {
    let (node, users, auth) = start().await;
    users
        .create("u", "Old", &groups(&["a"]), "pw")
        .await
        .unwrap();
    assert_eq!(auth.authenticate("u", "pw").await, Ok(user("u", &["a"])));
    users
        .update("u", "New", &groups(&["b", "c"]))
        .await
        .unwrap();
    let details = users.details("u").await.unwrap();
    assert_eq!(
        (
            details.full_name.as_str(),
            details.groups.clone(),
            details.disabled
        ),
        ("New", groups(&["b", "c"]), false)
    );
    let last = read(&node, "$user-u").pop().unwrap();
    assert_eq!(last.record.event_type, "$UserUpdated");
    assert_eq!(details.last_updated, Some(last.record.created_ticks));
    // The password is unchanged; the cached principal is not served with the old groups.
    assert_eq!(
        auth.authenticate("u", "pw").await,
        Ok(user("u", &["b", "c"]))
    );
    let notes = read(&node, "$users-password-notifications");
    assert_eq!(types(&notes), ["$PasswordChanged"]);
    assert_eq!(
        record::decode_password_changed(&notes[0].record.data).as_deref(),
        Some("u")
    );
    assert_eq!(
        users.update("nobody", "x", &[]).await,
        Err(UserError::NotFound {
            login: "nobody".into()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_is_refused_at_once_and_accepted_again_once_enabled() {
    let (_node, users, auth) = start().await;
    users.create("u", "", &[], "pw").await.unwrap();
    assert!(auth.authenticate("u", "pw").await.is_ok());
    users.disable("u").await.unwrap();
    assert_eq!(auth.authenticate("u", "pw").await, Err(AuthError::Invalid));
    assert!(users.details("u").await.unwrap().disabled);
    users.enable("u").await.unwrap();
    assert!(auth.authenticate("u", "pw").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_password_needs_the_current_one() {
    let (_node, users, auth) = start().await;
    users.create("u", "", &[], "old").await.unwrap();
    assert!(auth.authenticate("u", "old").await.is_ok());
    assert_eq!(
        users.change_password("u", "wrong", "new").await,
        Err(UserError::AccessDenied)
    );
    assert!(auth.authenticate("u", "old").await.is_ok());
    users.change_password("u", "old", "new").await.unwrap();
    assert_eq!(auth.authenticate("u", "old").await, Err(AuthError::Invalid));
    assert!(auth.authenticate("u", "new").await.is_ok());
    assert_eq!(
        users.change_password("nobody", "a", "b").await,
        Err(UserError::NotFound {
            login: "nobody".into()
        })
    );
}

/// A cached verification must not outlive a password change: the cache entry is for the
/// record's revision, and the change moves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_password_invalidates_the_cached_credentials() {
    let (node, users, auth) = start().await;
    users.create("u", "", &[], "old").await.unwrap();
    assert!(auth.authenticate("u", "old").await.is_ok());
    let hashed = auth.verifications();
    assert!(auth.authenticate("u", "old").await.is_ok());
    assert_eq!(
        auth.verifications(),
        hashed,
        "the second call is served by the cache"
    );
    assert_eq!(auth.cached(), 1);
    users.reset_password("u", "new").await.unwrap();
    assert_eq!(auth.authenticate("u", "old").await, Err(AuthError::Invalid));
    assert!(auth.authenticate("u", "new").await.is_ok());
    assert_eq!(
        types(&read(&node, "$users-password-notifications")),
        ["$PasswordChanged"]
    );
    assert_eq!(
        users.reset_password("nobody", "x").await,
        Err(UserError::NotFound {
            login: "nobody".into()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_user_is_not_found_refused_and_can_be_created_again() {
    let (node, users, auth) = start().await;
    users.create("u", "", &[], "pw").await.unwrap();
    assert!(auth.authenticate("u", "pw").await.is_ok());
    users.delete("u").await.unwrap();
    let not_found = UserError::NotFound { login: "u".into() };
    assert_eq!(users.details("u").await, Err(not_found.clone()));
    assert_eq!(users.delete("u").await, Err(not_found));
    assert_eq!(auth.authenticate("u", "pw").await, Err(AuthError::Invalid));
    assert!(users.all_details().await.unwrap().is_empty());
    // Soft-deleted: `$tb` recorded, the ACL kept.
    let metadata = read(&node, "$$$user-u").pop().unwrap();
    assert!(StreamMetadata::from_json(&metadata.record.data).says_soft_deleted());
    let json: serde_json::Value = serde_json::from_slice(&metadata.record.data).unwrap();
    assert_eq!(json["$acl"]["$w"], "$admins");
    // Created again, with another password: the old one does not pass.
    users.create("u", "", &[], "pw2").await.unwrap();
    assert_eq!(auth.authenticate("u", "pw").await, Err(AuthError::Invalid));
    assert!(auth.authenticate("u", "pw2").await.is_ok());
    assert_eq!(types(&read(&node, "$users")), ["$User"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn details_of_all_users_are_sorted_by_login() {
    let (_node, users, _auth) = start().await;
    for login in ["zed", "amy", "Bob", "mid"] {
        users.create(login, login, &[], "pw").await.unwrap();
    }
    users.delete("mid").await.unwrap();
    users.disable("amy").await.unwrap();
    let all = users.all_details().await.unwrap();
    let logins: Vec<_> = all.iter().map(|d| d.login_name.as_str()).collect();
    assert_eq!(logins, ["Bob", "amy", "zed"]);
    assert!(all[1].disabled && !all[0].disabled);
    assert!(all.iter().all(|d| d.last_updated.is_some_and(|t| t > 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_users_are_created_once_and_concurrent_calls_agree() {
    let (node, users, auth) = start().await;
    let (a, b) = tokio::join!(
        users.ensure_default_users("changeit", "changeit"),
        users.ensure_default_users("changeit", "other"),
    );
    a.unwrap();
    b.unwrap();
    users
        .ensure_default_users("changeit", "changeit")
        .await
        .unwrap();
    assert_eq!(types(&read(&node, "$user-admin")), ["$UserCreated"]);
    assert_eq!(types(&read(&node, "$user-ops")), ["$UserCreated"]);
    assert_eq!(types(&read(&node, "$users")), ["$User", "$User"]);
    let admin = users.details(ADMIN_LOGIN).await.unwrap();
    assert_eq!(admin.full_name, ADMIN_FULL_NAME);
    assert_eq!(admin.groups, groups(&["$admins"]));
    assert_eq!(
        users.details(OPS_LOGIN).await.unwrap().groups,
        groups(&["$ops"])
    );
    let principal = auth.authenticate("admin", "changeit").await.unwrap();
    assert!(principal.is_admin());
    // A changed password is kept by the next call.
    users.reset_password("admin", "secret").await.unwrap();
    users
        .ensure_default_users("changeit", "changeit")
        .await
        .unwrap();
    assert!(auth.authenticate("admin", "secret").await.is_ok());
    let metadata = read(&node, "$$$users-password-notifications");
    assert_eq!(
        StreamMetadata::from_json(&metadata[0].record.data).max_age_secs,
        Some(3600)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_engage_the_rate_limit_without_hashing() {
    let (_node, users, auth) = start().await;
    users.create("u", "", &[], "pw").await.unwrap();
    users.create("v", "", &[], "pw").await.unwrap();
    for _ in 0..MAX_FAILED_LOGINS {
        assert_eq!(
            auth.authenticate("u", "guess").await,
            Err(AuthError::Invalid)
        );
    }
    let hashed = auth.verifications();
    assert_eq!(hashed, u64::from(MAX_FAILED_LOGINS));
    for _ in 0..20 {
        assert_eq!(
            auth.authenticate("u", "guess").await,
            Err(AuthError::Invalid)
        );
    }
    // While limited, even the right password is not checked; other logins are not limited.
    assert_eq!(auth.authenticate("u", "pw").await, Err(AuthError::Invalid));
    assert_eq!(auth.verifications(), hashed, "no hashing while limited");
    assert!(auth.authenticate("v", "pw").await.is_ok());
    // Unknown users cost no hashing either.
    assert_eq!(
        auth.authenticate("nobody", "pw").await,
        Err(AuthError::Invalid)
    );
    assert_eq!(auth.verifications(), hashed + 1);
    tokio::time::sleep(FAILED_LOGIN_WINDOW).await;
    assert!(auth.authenticate("u", "pw").await.is_ok());
}

/// Two changes racing on one user both land: the one that finds the record moved reads it
/// again and applies its change over the other's, so neither is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_changes_to_one_user_both_land() {
    let (_node, users, _auth) = start().await;
    users.create("u", "Old", &[], "pw").await.unwrap();
    for round in 0..10 {
        let name = format!("Name {round}");
        let new_groups = groups(&["g"]);
        let (a, b, c) = tokio::join!(
            users.update("u", &name, &new_groups),
            users.disable("u"),
            users.reset_password("u", "pw2"),
        );
        a.unwrap();
        b.unwrap();
        c.unwrap();
        let details = users.details("u").await.unwrap();
        assert_eq!((details.full_name, details.disabled), (name, true));
        users.enable("u").await.unwrap();
    }
}

/// A client that opens with many calls at once (the official clients share one channel)
/// is verified once, and none of its correct calls is refused by the failed-login count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_logins_are_verified_once_and_all_accepted() {
    let (_node, users, auth) = start().await;
    users.create("u", "", &[], "secret").await.unwrap();
    let calls: Vec<_> = (0..4 * MAX_FAILED_LOGINS)
        .map(|_| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.authenticate("u", "secret").await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), Ok(user("u", &[])));
    }
    assert_eq!(auth.verifications(), 1, "one Argon2 verification");
    assert_eq!(auth.in_flight(), 0, "no flight is left behind");
}

/// A fresh cache hit reads nothing, yet a change to the user (or its metadata) is seen by
/// the very next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_login_sees_a_change_to_the_user_at_once() {
    let (node, users, auth) = start().await;
    users.create("u", "", &[], "secret").await.unwrap();
    assert!(auth.authenticate("u", "secret").await.is_ok());
    let version = node.stream_version("$user-u");
    users.disable("u").await.unwrap();
    assert_ne!(
        node.stream_version("$user-u"),
        version,
        "the change was counted"
    );
    assert_eq!(
        auth.authenticate("u", "secret").await,
        Err(AuthError::Invalid)
    );
    users.enable("u").await.unwrap();
    assert!(auth.authenticate("u", "secret").await.is_ok());
    users.delete("u").await.unwrap();
    assert_eq!(
        auth.authenticate("u", "secret").await,
        Err(AuthError::Invalid)
    );
}
