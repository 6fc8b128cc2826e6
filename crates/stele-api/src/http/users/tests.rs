//! The `/users` routes against a real in-memory node, its secure access control and the
//! real user operations (the gRPC service's fixture), with the caller's principal put in
//! each request's extensions as the authentication layer does.

use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, Method, Request};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::grpc::users::tests::{admin, plain, start};

struct Fixture {
    users: Users,
    access: AccessControl,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

async fn fixture() -> Fixture {
    let (_node, users, access) = start().await;
    Fixture { users, access }
}

impl Fixture {
    async fn call(
        &self,
        method: Method,
        uri: &str,
        body: impl Into<Body>,
        as_: Option<&Principal>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(HOST, "node.test:2113")
            .header(CONTENT_TYPE, "application/json")
            .body(body.into())
            .unwrap();
        if let Some(principal) = as_ {
            request.extensions_mut().insert(principal.clone());
        }
        let response = routes(self.users.clone(), self.access.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    async fn admin(&self, method: Method, uri: &str, body: Value) -> Answer {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        self.call(method, uri, body, Some(&admin())).await
    }

    async fn create(&self, login: &str, password: &str) -> Answer {
        let body = json!({
            "loginName": login,
            "fullName": format!("{login} full"),
            "groups": ["readers"],
            "password": password,
        });
        self.admin(Method::POST, "/users", body).await
    }
}

fn logins(list: &Value) -> Vec<&str> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["loginName"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_creates_lists_disables_and_deletes_a_user() {
    let fx = fixture().await;
    let created = fx.create("ouro", "pw").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        created.headers[LOCATION],
        "http://node.test:2113/users/ouro"
    );
    assert_eq!(
        created.json(),
        json!({"loginName": "ouro", "success": true, "error": "Success"})
    );
    // The same password again is a retry; another one a conflict.
    assert_eq!(fx.create("ouro", "pw").await.status, StatusCode::CREATED);
    let conflict = fx.create("ouro", "other").await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.json()["error"], "Conflict");

    let list = fx.admin(Method::GET, "/users", Value::Null).await;
    assert_eq!(list.status, StatusCode::OK);
    let list = list.json();
    assert_eq!(list["success"], true);
    assert_eq!(logins(&list), ["admin", "ops", "ouro"]);
    let ouro = &list["data"][2];
    assert_eq!(ouro["fullName"], "ouro full");
    assert_eq!(ouro["groups"], json!(["readers"]));
    assert_eq!(ouro["disabled"], false);
    assert!(ouro["dateLastUpdated"].as_str().unwrap().ends_with('Z'));
    let rels: Vec<_> = ouro["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rel"].as_str().unwrap())
        .collect();
    assert_eq!(
        rels,
        [
            "reset-password",
            "change-password",
            "edit",
            "delete",
            "disable"
        ]
    );
    assert_eq!(
        ouro["links"][4]["href"],
        "http://node.test:2113/users/ouro/command/disable"
    );
    // With a trailing slash, as EventStoreDB registers it.
    let slash = fx.admin(Method::GET, "/users/", Value::Null).await;
    assert_eq!(logins(&slash.json()), ["admin", "ops", "ouro"]);

    let disabled = fx
        .admin(Method::POST, "/users/ouro/command/disable", Value::Null)
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    let one = fx
        .admin(Method::GET, "/users/ouro", Value::Null)
        .await
        .json();
    assert_eq!(one["data"]["disabled"], true);
    assert_eq!(one["data"]["links"][4]["rel"], "enable");

    let updated = fx
        .admin(
            Method::PUT,
            "/users/ouro",
            json!({"fullName": "Ouro Boros", "groups": ["writers"]}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    let one = fx
        .admin(Method::GET, "/users/ouro", Value::Null)
        .await
        .json();
    assert_eq!(one["data"]["fullName"], "Ouro Boros");
    assert_eq!(one["data"]["groups"], json!(["writers"]));

    let deleted = fx.admin(Method::DELETE, "/users/ouro", Value::Null).await;
    assert_eq!(deleted.status, StatusCode::OK);
    let gone = fx.admin(Method::GET, "/users/ouro", Value::Null).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.json()["error"], "NotFound");
    let again = fx
        .admin(Method::POST, "/users/ouro/command/enable", Value::Null)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let list = fx.admin(Method::GET, "/users", Value::Null).await.json();
    assert_eq!(logins(&list), ["admin", "ops"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_users_and_anonymous_callers_are_refused_with_401() {
    let fx = fixture().await;
    let body = json!({"loginName": "eve", "password": "pw", "groups": ["$admins"]}).to_string();
    let plain = plain("ouro");
    for as_ in [Some(&plain), None] {
        let answer = fx.call(Method::POST, "/users", body.clone(), as_).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        let answer = fx.call(Method::GET, "/users", "", as_).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        let answer = fx.call(Method::DELETE, "/users/admin", "", as_).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let answer = fx.call(Method::GET, "/users/admin", "", None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = fx.call(Method::GET, "/users/$current", "", None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    // Nothing was created or deleted.
    let list = fx.admin(Method::GET, "/users", Value::Null).await.json();
    assert_eq!(logins(&list), ["admin", "ops"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_sees_its_own_details_and_needs_its_current_password_to_change_it() {
    let fx = fixture().await;
    assert_eq!(fx.create("ouro", "pw").await.status, StatusCode::CREATED);
    let ouro = plain("ouro");
    let own = fx.call(Method::GET, "/users/ouro", "", Some(&ouro)).await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.json()["data"]["loginName"], "ouro");
    let current = fx
        .call(Method::GET, "/users/$current", "", Some(&ouro))
        .await;
    assert_eq!(current.json()["data"]["loginName"], "ouro");

    let uri = "/users/ouro/command/change-password";
    let wrong = json!({"currentPassword": "wrong", "newPassword": "new"}).to_string();
    let answer = fx.call(Method::POST, uri, wrong, Some(&ouro)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.json(),
        json!({"loginName": "ouro", "success": false, "error": "Unauthorized"})
    );
    // PascalCase, as EventStoreDB's own samples send.
    let right = json!({"CurrentPassword": "pw", "NewPassword": "new"}).to_string();
    let answer = fx.call(Method::POST, uri, right, Some(&ouro)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // The new password is now the one: a create with it is a retry.
    assert_eq!(fx.create("ouro", "new").await.status, StatusCode::CREATED);

    let reset = fx
        .admin(
            Method::POST,
            "/users/ouro/command/reset-password",
            json!({"newPassword": "reset"}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK);
    assert_eq!(fx.create("ouro", "reset").await.status, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_400_and_oversized_ones_413() {
    let fx = fixture().await;
    let admin = admin();
    let answer = fx
        .call(Method::POST, "/users", "{not json", Some(&admin))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = fx
        .call(Method::POST, "/users", r#"{"password":"pw"}"#, Some(&admin))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body, "the login name is empty");
    let answer = fx
        .call(Method::POST, "/users", r#"{"loginName":"x"}"#, Some(&admin))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body, "'password' is required");
    let answer = fx
        .call(
            Method::POST,
            "/users/admin/command/reset-password",
            "{}",
            Some(&admin),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let huge = format!(
        r#"{{"loginName":"x","password":"{}"}}"#,
        "p".repeat(MAX_USERS_BODY_BYTES)
    );
    let answer = fx.call(Method::POST, "/users", huge, Some(&admin)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    // A password over the service's bound, inside the body limit.
    let long = format!(
        r#"{{"loginName":"x","password":"{}"}}"#,
        "p".repeat(stele_services::users::password::MAX_PASSWORD_BYTES + 1)
    );
    let answer = fx.call(Method::POST, "/users", long, Some(&admin)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[test]
fn dates_and_escaped_links_follow_eventstoredb() {
    // 2024-01-02T03:04:05.678Z in .NET ticks since the Unix epoch.
    assert_eq!(date(17_041_646_456_780_000), "2024-01-02T03:04:05.678Z");
    let user = UserDetails {
        login_name: "a b/ć".into(),
        full_name: String::new(),
        groups: Vec::new(),
        last_updated: None,
        disabled: true,
    };
    let document = document("http://h:1", user);
    assert_eq!(document.date_last_updated, None);
    assert_eq!(document.links[2].href, "http://h:1/users/a%20b%2F%C4%87");
    assert_eq!(
        (document.links[4].rel, document.links[4].href.as_str()),
        ("enable", "http://h:1/users/a%20b%2F%C4%87/command/enable")
    );
    let json = serde_json::to_value(&document).unwrap();
    assert!(json.get("dateLastUpdated").is_none(), "{json}");
}
