//! The Users service against a real in-memory node (a single node needs no network), its
//! secure access control and the real user operations, with the caller's principal put on
//! each request as the authentication layer does. The fixture serves the HTTP route tests
//! too.

use std::time::Duration;

use futures::StreamExt;
use stele_cluster::Node;
use stele_core::access::{AnonymousAccess, Principal, ADMINS_GROUP};
use stele_proto::users::{
    change_password_req, create_req, delete_req, details_req, disable_req, enable_req,
    reset_password_req, update_req,
};
use stele_services::users::password::HashCost;
use tonic::Code;

use super::*;

/// How long the node may take to become ready.
const READY_DEADLINE: Duration = Duration::from_secs(20);

/// The default users' password in these tests.
pub(crate) const DEFAULT_PASSWORD: &str = "changeit";

/// A ready single node with its default users, the user operations (cheap hashing) and a
/// secure access control with EventStoreDB's default options.
pub(crate) async fn start() -> (Node, Users, AccessControl) {
    let node = Node::start(stele_cluster::fuzzing::single_node_config())
        .await
        .expect("an in-memory node starts");
    assert!(
        node.wait_ready(READY_DEADLINE).await,
        "the node becomes ready"
    );
    let users = Users::with_cost(node.clone(), HashCost::MINIMAL);
    users
        .ensure_default_users(DEFAULT_PASSWORD, DEFAULT_PASSWORD)
        .await
        .expect("the default users are created");
    let access = AccessControl::secure(node.clone(), AnonymousAccess::default());
    (node, users, access)
}

/// The default administrator, as the authentication layer gives it.
pub(crate) fn admin() -> Principal {
    Principal::User {
        name: "admin".into(),
        groups: vec![ADMINS_GROUP.into()],
    }
}

/// A user in no group.
pub(crate) fn plain(name: &str) -> Principal {
    Principal::User {
        name: name.into(),
        groups: Vec::new(),
    }
}

/// A request as the authentication layer hands it on: `as_` in its extensions (none:
/// anonymous).
fn request<T>(message: T, as_: Option<&Principal>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(principal) = as_ {
        request.extensions_mut().insert(principal.clone());
    }
    request
}

fn create_req(login: &str, password: &str, groups: &[&str]) -> CreateReq {
    CreateReq {
        options: Some(create_req::Options {
            login_name: login.into(),
            password: password.into(),
            full_name: format!("{login} full"),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }),
    }
}

fn details_req(login: &str) -> DetailsReq {
    DetailsReq {
        options: Some(details_req::Options {
            login_name: login.into(),
        }),
    }
}

async fn details(
    service: &UsersService,
    login: &str,
    as_: &Principal,
) -> Result<Vec<WireUserDetails>, Status> {
    let stream = service
        .details(request(details_req(login), Some(as_)))
        .await?
        .into_inner();
    let answers: Vec<_> = stream.collect().await;
    answers
        .into_iter()
        .map(|answer| answer.map(|a| a.user_details.expect("details in every answer")))
        .collect()
}

fn assert_denied(status: &Status) {
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), "Access Denied");
    assert_eq!(
        status.metadata().get("exception").map(|v| v.as_bytes()),
        Some(&b"access-denied"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_creates_lists_disables_enables_updates_and_deletes_a_user() {
    let (_node, users, access) = start().await;
    let service = UsersService::new(users, access);
    let admin = admin();
    service
        .create(request(
            create_req("ouro", "pw", &["readers"]),
            Some(&admin),
        ))
        .await
        .unwrap();

    // Every user, sorted by login name, with when each was last written.
    let all = details(&service, "", &admin).await.unwrap();
    let names: Vec<_> = all.iter().map(|u| u.login_name.as_str()).collect();
    assert_eq!(names, ["admin", "ops", "ouro"]);
    let ouro = &all[2];
    assert_eq!(ouro.full_name, "ouro full");
    assert_eq!(ouro.groups, ["readers"]);
    assert!(!ouro.disabled);
    let ticks = ouro.last_updated.as_ref().unwrap().ticks_since_epoch;
    // After 2020-01-01 in .NET ticks since the Unix epoch.
    assert!(ticks > 1_577_836_800 * 10_000_000, "{ticks}");

    service
        .disable(request(
            DisableReq {
                options: Some(disable_req::Options {
                    login_name: "ouro".into(),
                }),
            },
            Some(&admin),
        ))
        .await
        .unwrap();
    assert!(details(&service, "ouro", &admin).await.unwrap()[0].disabled);
    service
        .enable(request(
            EnableReq {
                options: Some(enable_req::Options {
                    login_name: "ouro".into(),
                }),
            },
            Some(&admin),
        ))
        .await
        .unwrap();
    service
        .update(request(
            UpdateReq {
                options: Some(update_req::Options {
                    login_name: "ouro".into(),
                    password: "ignored".into(),
                    full_name: "Ouro Boros".into(),
                    groups: vec!["writers".into()],
                }),
            },
            Some(&admin),
        ))
        .await
        .unwrap();
    let ouro = details(&service, "ouro", &admin).await.unwrap().remove(0);
    assert!(!ouro.disabled);
    assert_eq!(
        (ouro.full_name.as_str(), ouro.groups),
        ("Ouro Boros", vec!["writers".to_owned()])
    );

    service
        .delete(request(
            DeleteReq {
                options: Some(delete_req::Options {
                    login_name: "ouro".into(),
                }),
            },
            Some(&admin),
        ))
        .await
        .unwrap();
    let status = details(&service, "ouro", &admin).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "User 'ouro' is not found.");
    assert_eq!(
        status.metadata().get("exception").map(|v| v.as_bytes()),
        Some(&b"user-not-found"[..])
    );
    let names: Vec<_> = details(&service, "", &admin)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.login_name)
        .collect();
    assert_eq!(names, ["admin", "ops"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_users_and_anonymous_callers_are_denied_the_admin_operations() {
    let (_node, users, access) = start().await;
    let service = UsersService::new(users, access);
    let plain = plain("ouro");
    for as_ in [Some(&plain), None] {
        let status = service
            .create(request(create_req("eve", "pw", &[ADMINS_GROUP]), as_))
            .await
            .unwrap_err();
        assert_denied(&status);
        let status = service
            .reset_password(request(
                ResetPasswordReq {
                    options: Some(reset_password_req::Options {
                        login_name: "admin".into(),
                        new_password: "mine".into(),
                    }),
                },
                as_,
            ))
            .await
            .unwrap_err();
        assert_denied(&status);
    }
    // Listing every user is the administrators'; so is seeing anyone as anonymous.
    assert_denied(&details(&service, "", &plain).await.unwrap_err());
    let status = service
        .details(request(details_req("admin"), None))
        .await
        .err()
        .expect("anonymous may not read details");
    assert_denied(&status);
    // Nothing was created.
    let status = details(&service, "eve", &admin()).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_sees_its_own_details_and_changes_its_password_only_with_the_current_one() {
    let (_node, users, access) = start().await;
    let service = UsersService::new(users.clone(), access);
    service
        .create(request(create_req("ouro", "pw", &[]), Some(&admin())))
        .await
        .unwrap();
    let ouro = plain("ouro");
    let own = details(&service, "ouro", &ouro).await.unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].login_name, "ouro");

    let change = |current: &str, new: &str| ChangePasswordReq {
        options: Some(change_password_req::Options {
            login_name: "ouro".into(),
            current_password: current.into(),
            new_password: new.into(),
        }),
    };
    let status = service
        .change_password(request(change("wrong", "new"), Some(&ouro)))
        .await
        .unwrap_err();
    assert_denied(&status);
    service
        .change_password(request(change("pw", "new"), Some(&ouro)))
        .await
        .unwrap();
    // The old password is now the wrong one; a create with the new one is a retry, with the
    // old one a conflict.
    assert_denied(
        &service
            .change_password(request(change("pw", "x"), Some(&ouro)))
            .await
            .unwrap_err(),
    );
    let status = service
        .create(request(create_req("ouro", "pw", &[]), Some(&admin())))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "Conflict.");
    service
        .create(request(create_req("ouro", "new", &[]), Some(&admin())))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_login_name_or_beyond_the_bounds_are_invalid_arguments() {
    let (_node, users, access) = start().await;
    let service = UsersService::new(users, access);
    let admin = admin();
    let status = service
        .create(request(create_req("", "pw", &[]), Some(&admin)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "the login name is empty");
    let status = service
        .delete(request(DeleteReq { options: None }, Some(&admin)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let long = "x".repeat(record::MAX_LOGIN_NAME_BYTES + 1);
    let status = service
        .create(request(create_req(&long, "pw", &[]), Some(&admin)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let too_many: Vec<String> = (0..=record::MAX_GROUPS).map(|i| format!("g{i}")).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let status = service
        .create(request(create_req("ouro", "pw", &too_many), Some(&admin)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    // The policy comes first: an anonymous caller learns nothing about its input.
    let status = service
        .create(request(create_req("", "pw", &[]), None))
        .await
        .unwrap_err();
    assert_denied(&status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insecure_node_lets_every_caller_manage_users() {
    let (node, users, _) = start().await;
    let service = UsersService::new(users, AccessControl::insecure(node));
    service
        .create(request(create_req("ouro", "pw", &[]), None))
        .await
        .unwrap();
    let names: Vec<_> = details(&service, "", &Principal::System)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.login_name)
        .collect();
    assert_eq!(names, ["admin", "ops", "ouro"]);
}

/// The generated server and client agree over a real HTTP/2 connection: Details streams one
/// message per user, and a user error reaches the client with its trailers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_trailers_reach_a_client_over_grpc() {
    use stele_proto::users::users_client::UsersClient;
    use stele_proto::users::users_server::UsersServer;
    use tokio_stream::wrappers::TcpListenerStream;

    let (_node, users, access) = start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    // Every call runs as the administrator, as if the authentication layer had said so.
    let server = UsersServer::with_interceptor(
        UsersService::new(users, access),
        |mut request: Request<()>| {
            request.extensions_mut().insert(admin());
            Ok(request)
        },
    );
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = UsersClient::new(channel);
    client.create(create_req("ouro", "pw", &[])).await.unwrap();
    let stream = client.details(details_req("")).await.unwrap().into_inner();
    let names: Vec<String> = stream
        .map(|answer| answer.unwrap().user_details.unwrap().login_name)
        .collect()
        .await;
    assert_eq!(names, ["admin", "ops", "ouro"]);
    let status = client
        .create(create_req("ouro", "other", &[]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "Conflict.");
    let trailer = |key: &str| status.metadata().get(key).map(|v| v.as_bytes().to_vec());
    assert_eq!(trailer("exception"), Some(b"user-conflict".to_vec()));
    assert_eq!(trailer("login-name"), Some(b"ouro".to_vec()));
    server.abort();
}
