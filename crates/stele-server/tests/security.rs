//! A secure node as users run it (issue 13): certificates made with `stele certs`, TLS on
//! the client port, the official Rust client with `tls=true&tlsCaFile=...`, the default
//! `admin` and `ops` users, stream ACLs, `$all` reads that never show a protected stream,
//! admin operations refused to those without the right over gRPC and HTTP, a plaintext
//! client refused cleanly, and the certificate reloaded without a restart.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use kurrentdb::operations::{Client as OperationsClient, OperationalOptions};
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, Credentials, EventData,
    PersistentSubscriptionOptions, PersistentSubscriptionToAllOptions, ReadAllOptions,
    ReadStreamOptions, StreamAclBuilder, StreamMetadataBuilder,
};
use stele_testkit::{NodeOptions, TestCa, TestNode};

/// Starts a secure in-memory node with certificates from a fresh CA under `dir`.
async fn secure_node(dir: &std::path::Path) -> (TestNode, TestCa) {
    let ca = TestCa::create(STELE, dir);
    let tls = ca.node(&dir.join("node1"), "127.0.0.1", &[]);
    let node = TestNode::start(NodeOptions::in_memory(STELE).secure(tls)).await;
    (node, ca)
}

fn client_for(connection_string: &str) -> Client {
    let settings: ClientSettings = connection_string
        .parse()
        .expect("parsing the connection string");
    Client::new(settings).expect("creating the client")
}

/// The node's connection string without credentials.
fn anonymous_connection_string(node: &TestNode) -> String {
    node.connection_string().replace("admin:changeit@", "")
}

fn as_user(login: &str, password: &str) -> AppendToStreamOptions {
    AppendToStreamOptions::default()
        .authenticated(Credentials::new(login.to_owned(), password.to_owned()))
}

/// Sets `stream`'s ACL (its metadata holds only that), as the client's admin.
async fn set_acl(admin: &Client, stream: &str, acl: StreamAclBuilder) {
    let metadata = StreamMetadataBuilder::new()
        .acl(kurrentdb::Acl::Stream(acl.build()))
        .build();
    admin
        .set_stream_metadata(stream, &Default::default(), &metadata)
        .await
        .unwrap_or_else(|e| panic!("admin sets the ACL of {stream}: {e}"));
}

/// Waits until the default users exist (the node creates them once it leads: `admin`
/// first, then `ops`; a test that uses `ops` right after `admin` works would race it).
async fn wait_for_admin(client: &Client) {
    for options in [AppendToStreamOptions::default(), as_user("ops", "changeit")] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match client
                .append_to_stream("warm-up", &options, json_event("t", 0))
                .await
            {
                Ok(_) => break,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("the default users do not work: {e}"),
            }
        }
    }
}

#[tokio::test]
async fn the_official_client_works_over_tls_with_credentials_and_is_refused_without() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _ca) = secure_node(dir.path()).await;
    let admin = client(&node);
    wait_for_admin(&admin).await;

    // Admin appends and reads over TLS.
    admin
        .append_to_stream(
            "orders",
            &AppendToStreamOptions::default(),
            json_event("placed", 1),
        )
        .await
        .expect("admin appends");
    let events = read_stream(&admin, "orders", &ReadStreamOptions::default())
        .await
        .expect("admin reads");
    assert_eq!(events.len(), 1);

    // Anonymous: no credentials, so the stream operation is refused (PERMISSION_DENIED).
    let anonymous = client_for(&anonymous_connection_string(&node));
    let refused = anonymous
        .append_to_stream(
            "orders",
            &AppendToStreamOptions::default(),
            json_event("placed", 2),
        )
        .await;
    assert!(
        matches!(refused, Err(kurrentdb::Error::AccessDenied)),
        "{refused:?}"
    );
    let refused = read_stream(&anonymous, "orders", &ReadStreamOptions::default()).await;
    assert!(
        matches!(refused, Err(kurrentdb::Error::AccessDenied)),
        "{refused:?}"
    );

    // A wrong password is refused (UNAUTHENTICATED, which the client reports as access denied).
    let refused = admin
        .append_to_stream(
            "orders",
            &as_user("admin", "wrong"),
            json_event("placed", 3),
        )
        .await;
    assert!(
        matches!(refused, Err(kurrentdb::Error::AccessDenied)),
        "{refused:?}"
    );

    // A plaintext client gets a clean failure, and the node keeps serving.
    let plaintext = client_for(&format!(
        "esdb://admin:changeit@127.0.0.1:{}?tls=false",
        node.http_port()
    ));
    let refused = tokio::time::timeout(
        Duration::from_secs(20),
        plaintext.append_to_stream(
            "orders",
            &AppendToStreamOptions::default(),
            json_event("placed", 4),
        ),
    )
    .await
    .expect("the plaintext client gets an answer");
    assert!(refused.is_err(), "a plaintext call must fail: {refused:?}");
    admin
        .append_to_stream(
            "orders",
            &AppendToStreamOptions::default(),
            json_event("placed", 5),
        )
        .await
        .expect("the node still serves TLS clients");
    let log = std::fs::read_to_string(node.log_path()).unwrap();
    assert!(!log.contains("wrong\""), "a password must never be logged");
}

#[tokio::test]
async fn stream_acls_and_all_reads_keep_protected_streams_from_other_users() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _ca) = secure_node(dir.path()).await;
    let admin = client(&node);
    wait_for_admin(&admin).await;
    let ops = Credentials::new("ops".to_owned(), "changeit".to_owned());

    // `secret` is readable by admins only; `public` keeps the default ACL (everyone).
    let admins = StreamAclBuilder::new()
        .add_read_roles("$admins")
        .add_write_roles("$admins");
    set_acl(&admin, "secret", admins).await;
    admin
        .append_to_stream(
            "secret",
            &AppendToStreamOptions::default(),
            json_event("s", 1),
        )
        .await
        .expect("admin writes secret");
    admin
        .append_to_stream("public", &as_user("ops", "changeit"), json_event("p", 1))
        .await
        .expect("ops writes a stream with the default ACL");

    // ops may not read or write `secret`.
    let denied = read_stream(
        &admin,
        "secret",
        &ReadStreamOptions::default().authenticated(ops.clone()),
    )
    .await;
    assert!(
        matches!(denied, Err(kurrentdb::Error::AccessDenied)),
        "{denied:?}"
    );
    let denied = admin
        .append_to_stream("secret", &as_user("ops", "changeit"), json_event("s", 2))
        .await;
    assert!(
        matches!(denied, Err(kurrentdb::Error::AccessDenied)),
        "{denied:?}"
    );

    // `$all` is for admins by default.
    let denied = read_all(
        &admin,
        &ReadAllOptions::default().authenticated(ops.clone()),
    )
    .await;
    assert!(
        matches!(denied, Err(kurrentdb::Error::AccessDenied)),
        "{denied:?}"
    );

    // Widened to everyone through `$$$all`, ops reads `$all` — but never `secret`'s events.
    set_acl(
        &admin,
        "$all",
        StreamAclBuilder::new().add_read_roles("$all"),
    )
    .await;
    let seen = read_all(
        &admin,
        &ReadAllOptions::default().authenticated(ops.clone()),
    )
    .await
    .expect("ops reads $all once widened");
    let streams: Vec<&str> = seen.iter().map(|e| e.stream_id()).collect();
    assert!(streams.contains(&"public"), "{streams:?}");
    assert!(
        !streams.contains(&"secret"),
        "ops saw a protected stream: {streams:?}"
    );
    let everything = read_all(&admin, &ReadAllOptions::default())
        .await
        .expect("admin reads $all");
    assert!(everything.iter().any(|e| e.stream_id() == "secret"));

    // A link never shows what its reader may not read: in a stream ops may read, links to
    // `secret` and to `public` resolve for admin, only the second for ops.
    let links = vec![
        EventData::binary("$>", Bytes::from_static(b"0@secret")),
        EventData::binary("$>", Bytes::from_static(b"0@public")),
    ];
    admin
        .append_to_stream("public-links", &AppendToStreamOptions::default(), links)
        .await
        .expect("admin writes links");
    let resolving = ReadStreamOptions::default().resolve_link_tos();
    let as_ops = resolving.clone().authenticated(ops.clone());
    let targets = resolved_targets(&admin, "public-links", &resolving).await;
    assert_eq!(
        targets,
        [Some("secret".to_owned()), Some("public".to_owned())]
    );
    let targets = resolved_targets(&admin, "public-links", &as_ops).await;
    assert_eq!(targets, [None, Some("public".to_owned())]);
    // The same through `$all`.
    let all_as_ops = ReadAllOptions::default()
        .resolve_link_tos()
        .authenticated(ops.clone());
    let mut read = admin.read_all(&all_as_ops).await.expect("ops reads $all");
    let mut through_all = Vec::new();
    while let Some(event) = read.next().await.expect("reading $all") {
        if event
            .link
            .as_ref()
            .is_some_and(|l| l.stream_id() == "public-links")
        {
            through_all.push(event.event.map(|e| e.stream_id().to_owned()));
        }
    }
    assert_eq!(through_all, [None, Some("public".to_owned())]);
}

/// The stream each link of `stream` resolved to (`None`: left unresolved).
async fn resolved_targets(
    client: &Client,
    stream: &str,
    options: &ReadStreamOptions,
) -> Vec<Option<String>> {
    let mut read = client.read_stream(stream, options).await.expect("read");
    let mut targets = Vec::new();
    while let Some(event) = read.next().await.expect("reading") {
        assert!(event.link.is_some(), "a link event comes with its link");
        targets.push(event.event.map(|e| e.stream_id().to_owned()));
    }
    targets
}

#[tokio::test]
async fn admin_operations_are_refused_to_callers_without_the_right() {
    let dir = tempfile::tempdir().unwrap();
    let (node, ca) = secure_node(dir.path()).await;
    let admin = client(&node);
    wait_for_admin(&admin).await;
    let http = ca.http_client(Duration::from_secs(10));
    let url = node.http_url();

    // HTTP: anonymous and wrong credentials are 401; the node keeps running.
    for (path, credentials) in [
        ("/admin/shutdown", None),
        ("/admin/node/resign", None),
        ("/admin/shutdown", Some(("admin", "wrong"))),
    ] {
        let mut request = http.post(format!("{url}{path}"));
        if let Some((login, password)) = credentials {
            request = request.basic_auth(login, Some(password));
        }
        let response = request.send().await.expect("POST");
        assert_eq!(response.status().as_u16(), 401, "{path} {credentials:?}");
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("X-Basic realm=\"ESDB\"")
        );
    }
    // Stats need an authenticated caller; gossip stays anonymous.
    assert_eq!(
        http.get(format!("{url}/stats"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        http.get(format!("{url}/gossip"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        http.get(format!("{url}/stats"))
            .basic_auth("ops", Some("changeit"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    // gRPC: an anonymous caller may not shut the node down.
    let anonymous: ClientSettings = anonymous_connection_string(&node).parse().unwrap();
    let operations = OperationsClient::new(anonymous).unwrap();
    let refused = operations.shutdown(&OperationalOptions::default()).await;
    assert!(
        matches!(refused, Err(kurrentdb::Error::AccessDenied)),
        "{refused:?}"
    );
    let refused = operations.resign_node(&OperationalOptions::default()).await;
    assert!(
        matches!(refused, Err(kurrentdb::Error::AccessDenied)),
        "{refused:?}"
    );
    admin
        .append_to_stream(
            "still-up",
            &AppendToStreamOptions::default(),
            json_event("t", 1),
        )
        .await
        .expect("the node is still serving");

    // ops may resign (an operator command) over HTTP.
    let response = http
        .post(format!("{url}/admin/node/resign"))
        .basic_auth("ops", Some("changeit"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn a_reloaded_certificate_serves_new_connections_and_old_ones_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let (node, ca) = secure_node(dir.path()).await;
    wait_for_admin(&client(&node)).await;
    let old_http = node.http_client().clone();
    let url = node.http_url();
    assert_eq!(
        old_http
            .get(format!("{url}/ping"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    // A certificate from another CA replaces the files; nothing changes until reload.
    let other = TestCa::create(STELE, &dir.path().join("other"));
    let replacement = other.node(&dir.path().join("replacement"), "127.0.0.1", &[]);
    let tls = node.tls().unwrap().clone();
    for (from, to) in [
        (&replacement.certificate_file, &tls.certificate_file),
        (&replacement.private_key_file, &tls.private_key_file),
    ] {
        let _ = std::fs::remove_file(to);
        std::fs::copy(from, to).unwrap();
    }
    let new_http = replacement.http_client(Duration::from_secs(5));
    assert!(
        new_http.get(format!("{url}/ping")).send().await.is_err(),
        "not reloaded yet"
    );

    let response = old_http
        .post(format!("{url}/admin/reloadconfig"))
        .basic_auth("admin", Some("changeit"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // New connections see the new certificate; the old client's open connection goes on.
    assert_eq!(
        new_http
            .get(format!("{url}/ping"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        old_http
            .get(format!("{url}/ping"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let fresh_old = stele_testkit::NodeTls {
        ca_file: ca.ca_file(),
        ..tls
    }
    .http_client(Duration::from_secs(5));
    assert!(
        fresh_old.get(format!("{url}/ping")).send().await.is_err(),
        "new connections trusting only the old CA fail"
    );
}

#[tokio::test]
async fn without_certificates_the_node_says_which_option_is_missing() {
    let output = std::process::Command::new(STELE)
        .args(["--mem-db"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CertificateFile"), "{stderr}");
    assert!(
        stderr.contains("--insecure") && stderr.contains("--dev"),
        "{stderr}"
    );
}

/// Persistent subscriptions act with their creator's rights: a creator who may not read the
/// source is refused over gRPC and HTTP, and a `$all` group made by `ops` never hands out
/// an event `ops` may not read, whoever consumes it.
#[tokio::test]
async fn persistent_subscriptions_act_with_their_creators_rights() {
    let dir = tempfile::tempdir().unwrap();
    let (node, ca) = secure_node(dir.path()).await;
    let admin = client(&node);
    wait_for_admin(&admin).await;
    let ops = Credentials::new("ops".to_owned(), "changeit".to_owned());
    set_acl(
        &admin,
        "secret",
        StreamAclBuilder::new().add_read_roles("$admins"),
    )
    .await;
    let write = AppendToStreamOptions::default();
    admin
        .append_to_stream("secret", &write, json_event("s", 1))
        .await
        .unwrap();
    admin
        .append_to_stream("public", &write, json_event("p", 1))
        .await
        .unwrap();

    // gRPC: ops (who may manage groups) may not make one over a stream it cannot read.
    let as_ops = PersistentSubscriptionOptions::default().authenticated(ops.clone());
    let refused = admin
        .create_persistent_subscription("secret", "g", &as_ops)
        .await;
    assert!(
        matches!(refused, Err(kurrentdb::Error::AccessDenied)),
        "{refused:?}"
    );
    // HTTP: the same.
    let http = ca.http_client(Duration::from_secs(10));
    let url = node.http_url();
    for (stream, expected) in [("secret", 401), ("public", 201)] {
        let response = http
            .put(format!("{url}/subscriptions/{stream}/http-group"))
            .basic_auth("ops", Some("changeit"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "PUT on {stream}");
    }

    // With `$all` opened to everyone, ops makes a `$all` group; admin consumes it and
    // still sees only what ops may read.
    set_acl(
        &admin,
        "$all",
        StreamAclBuilder::new().add_read_roles("$all"),
    )
    .await;
    let from_start = PersistentSubscriptionToAllOptions::default()
        .start_from(kurrentdb::StreamPosition::Start)
        .authenticated(ops.clone());
    admin
        .create_persistent_subscription_to_all("ops-all", &from_start)
        .await
        .expect("ops creates a $all group");
    admin
        .append_to_stream("public", &write, json_event("last", 2))
        .await
        .unwrap();
    let mut group = admin
        .subscribe_to_persistent_subscription_to_all("ops-all", &Default::default())
        .await
        .expect("admin consumes");
    let mut streams = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(20), group.next())
            .await
            .expect("the group delivers the last event")
            .expect("a delivery");
        group.ack(&event).await.expect("ack");
        let recorded = event.get_original_event();
        streams.push(recorded.stream_id().to_owned());
        if recorded.event_type == "last" {
            break;
        }
    }
    assert!(streams.iter().any(|s| s == "public"), "{streams:?}");
    assert!(
        // (`$$secret` is readable: its `$mr` falls back to the default ACL, everyone.)
        !streams
            .iter()
            .any(|s| s == "secret" || (s.starts_with('$') && !s.starts_with("$$"))),
        "an ops group handed out what ops may not read: {streams:?}"
    );
}
