//! Stored upstream tokens (`storeToken`) through the real upstream: kept
//! encrypted on the user's link, replaced at every sign-in, read back from
//! `GET /realms/{r}/broker/{alias}/token` by a bearer whose user holds the
//! `broker` client role `read-token` (granted at creation with
//! `addReadTokenRoleOnCreate`, or through the admin API), and refreshed at
//! the upstream once the stored access token has expired.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use federa_broker::{SessionStore, UserStore as _};
use federa_tests::browser::Browser;
use federa_tests::world::{World, REALM};
use federa_tests::TestDb;
use serde_json::{json, Value};

/// `GET .../broker/{alias}/token` with an optional bearer token.
async fn broker_token(w: &World, alias: &str, bearer: Option<&str>) -> (u16, Value) {
    let url = format!("{}/broker/{alias}/token", w.issuer());
    let mut req = reqwest::Client::new().get(url);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn stored_tokens(db: TestDb, store: federa_storage::DbStore, sessions: Arc<dyn SessionStore>) {
    let w = World::builder()
        .idp(json!({"storeToken": true, "addReadTokenRoleOnCreate": true}))
        .start(db, store, sessions)
        .await;
    let first = w.sign_in(&Browser::new()).await;
    let (status, stored) = broker_token(&w, "node", Some(&first.access_token)).await;
    assert_eq!(status, 200, "{stored}");
    let upstream_access = stored["access_token"].as_str().unwrap().to_owned();
    assert!(stored["id_token"].is_string() && stored["token_type"].is_string(), "{stored}");
    assert!(stored["expires_in"].as_i64().unwrap() > 0, "{stored}");
    assert_ne!(upstream_access, first.access_token, "the upstream's token, not Federa's");

    // At rest the tokens are encrypted: the row never holds the token itself.
    let user = first.id_claims()["sub"].as_str().unwrap().to_owned();
    let kept = w.store.link_token(REALM, &user, "node").await.unwrap().unwrap();
    assert!(kept.expose().contains(&upstream_access));
    let raw = raw_token_column(&w).await;
    assert!(!raw.contains(&upstream_access) && raw.split('.').count() == 5, "a JWE: {raw}");

    // A second sign-in (a new upstream sign-in) replaces them.
    let second = w.sign_in(&Browser::new()).await;
    let (status, again) = broker_token(&w, "node", Some(&second.access_token)).await;
    assert_eq!(status, 200, "{again}");
    assert_ne!(again["access_token"], json!(upstream_access), "replaced at the second sign-in");
    // Any live token of the user reads the same, current, tokens.
    assert_eq!(broker_token(&w, "node", Some(&first.access_token)).await.1["access_token"], again["access_token"]);

    // 401 without a valid bearer.
    assert_eq!(broker_token(&w, "node", None).await.0, 401);
    assert_eq!(broker_token(&w, "node", Some("not-a-token")).await.0, 401);
    assert_eq!(broker_token(&w, "node", Some(&second.id_token)).await.0, 401, "an ID token is no bearer");
    // 400 when nothing is stored for that alias.
    assert_eq!(broker_token(&w, "nope", Some(&second.access_token)).await.0, 400);

    // 403 once the role is revoked; the admin API shows and grants it.
    let path = format!("users/{user}/role-mappings/clients/broker");
    let (status, roles) = w.admin(reqwest::Method::GET, &path, Value::Null).await;
    assert_eq!((status, roles[0]["name"].clone()), (200, json!("read-token")), "{roles}");
    let read_token = json!([{"name": "read-token"}]);
    assert_eq!(w.admin(reqwest::Method::DELETE, &path, read_token.clone()).await.0, 204);
    let (status, body) = broker_token(&w, "node", Some(&second.access_token)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(w.admin(reqwest::Method::GET, &path, Value::Null).await.1, json!([]));
    assert_eq!(w.admin(reqwest::Method::POST, &path, json!([{"name": "manage-account"}])).await.0, 404);
    assert_eq!(w.admin(reqwest::Method::POST, &path, read_token).await.0, 204);
    assert_eq!(broker_token(&w, "node", Some(&second.access_token)).await.0, 200);

    // With storeToken off, nothing is answered.
    let idp_path = "identity-provider/instances/node";
    let (_, mut idp) = w.admin(reqwest::Method::GET, idp_path, Value::Null).await;
    idp["storeToken"] = json!(false);
    idp["config"]["clientSecret"] = json!(federa_tests::world::UPSTREAM_SECRET);
    assert_eq!(w.admin(reqwest::Method::PUT, idp_path, idp).await.0, 204);
    assert_eq!(broker_token(&w, "node", Some(&second.access_token)).await.0, 400);
}

/// The stored token column of the realm's only link, as the database has it.
async fn raw_token_column(w: &World) -> String {
    use diesel::prelude::*;
    let url = w.db.url.clone();
    tokio::task::spawn_blocking(move || {
        let sql = "SELECT token_enc AS value FROM federated_identities";
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            value: String,
        }
        let rows: Vec<Row> = if let Some(path) = url.strip_prefix("sqlite://") {
            let mut c = diesel::SqliteConnection::establish(path).unwrap();
            diesel::sql_query(sql).load(&mut c).unwrap()
        } else {
            let mut c = diesel::PgConnection::establish(&url).unwrap();
            diesel::sql_query(sql).load(&mut c).unwrap()
        };
        rows.into_iter().next().unwrap().value
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_tokens_on_sqlite() {
    let db = TestDb::sqlite();
    let store = db.store();
    let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
    stored_tokens(db, store, sessions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_tokens_on_postgres_with_redis() {
    let Some(db) = TestDb::postgres("stored_tokens::stored_tokens_on_postgres_with_redis") else { return };
    let Some(redis) = federa_tests::redis_sessions("stored_tokens::stored_tokens_on_postgres_with_redis").await else {
        return;
    };
    let store = db.store();
    stored_tokens(db, store, Arc::new(redis)).await;
}

/// Without `addReadTokenRoleOnCreate`, a created user may not read the
/// tokens until an admin grants the role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_token_is_required() {
    let w = World::builder().idp(json!({"storeToken": true})).start_sqlite().await;
    let tokens = w.sign_in(&Browser::new()).await;
    let (status, body) = broker_token(&w, "node", Some(&tokens.access_token)).await;
    assert_eq!(status, 403, "{body}");
    let user = tokens.id_claims()["sub"].as_str().unwrap().to_owned();
    let path = format!("users/{user}/role-mappings/clients/broker");
    assert_eq!(w.admin(reqwest::Method::POST, &path, json!([{"name": "read-token"}])).await.0, 204);
    assert_eq!(broker_token(&w, "node", Some(&tokens.access_token)).await.0, 200);
}

/// An expired upstream access token is refreshed at the upstream (with the
/// provider's client authentication) before it is answered, and the new
/// tokens are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_upstream_token_is_refreshed() {
    let w = World::builder()
        .idp(json!({"storeToken": true, "addReadTokenRoleOnCreate": true}))
        // offline_access, granted with consent, brings a refresh token.
        .idp_config(json!({"defaultScope": "openid profile email offline_access", "prompt": "consent"}))
        .node_client(json!({"grant_types": ["authorization_code", "refresh_token"], "access_token_ttl": 2}))
        .start_sqlite()
        .await;
    let tokens = w.sign_in(&Browser::new()).await;
    let (status, stored) = broker_token(&w, "node", Some(&tokens.access_token)).await;
    assert_eq!(status, 200, "{stored}");
    assert!(stored["refresh_token"].is_string(), "the upstream issued a refresh token: {stored}");
    let first = stored["access_token"].as_str().unwrap().to_owned();
    let user = tokens.id_claims()["sub"].as_str().unwrap().to_owned();

    // Once the 2 s access token has expired, reading refreshes it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let fresh = loop {
        let (status, now) = broker_token(&w, "node", Some(&tokens.access_token)).await;
        assert_eq!(status, 200, "{now}");
        if now["access_token"] != json!(first) {
            break now;
        }
        assert!(Instant::now() < deadline, "the stored token was never refreshed: {now}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(fresh["expires_in"].as_i64().unwrap() > 0, "{fresh}");
    assert!(fresh["refresh_token"].is_string() && fresh["id_token"].is_string(), "{fresh}");
    // The refreshed tokens are what is stored now, and they work upstream.
    let kept = w.store.link_token(REALM, &user, "node").await.unwrap().unwrap();
    let kept: Value = serde_json::from_str(kept.expose()).unwrap();
    assert_eq!(kept["access_token"], fresh["access_token"]);
    let r = reqwest::Client::new()
        .get(w.node.url("/me"))
        .bearer_auth(fresh["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "the refreshed token opens the upstream's userinfo");
}

/// Several simultaneous reads of an expired stored token refresh it at the
/// upstream once: each answers the same new access token (two refreshes
/// with one refresh token would give two, or fail at an upstream that
/// rotates refresh tokens), and that token is what is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_reads_refresh_once() {
    let w = World::builder()
        .idp(json!({"storeToken": true, "addReadTokenRoleOnCreate": true}))
        .idp_config(json!({"defaultScope": "openid profile email offline_access", "prompt": "consent"}))
        // Long enough that the refreshed token outlives the reads waiting for it.
        .node_client(json!({"grant_types": ["authorization_code", "refresh_token"], "access_token_ttl": 3}))
        .start_sqlite()
        .await;
    let tokens = w.sign_in(&Browser::new()).await;
    let user = tokens.id_claims()["sub"].as_str().unwrap().to_owned();
    let kept = |v: &Value| v["access_token"].as_str().unwrap().to_owned();
    let first = w.store.link_token(REALM, &user, "node").await.unwrap().unwrap();
    let first: Value = serde_json::from_str(first.expose()).unwrap();
    // Wait (on the stored expiry, not a fixed time) until the stored access token has expired.
    let expires_at = first["expires_at"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 <= expires_at {
        assert!(Instant::now() < deadline, "the stored token never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let read = || broker_token(&w, "node", Some(&tokens.access_token));
    let (a, b, c, d, e, f) = tokio::join!(read(), read(), read(), read(), read(), read());
    let answers = [a, b, c, d, e, f];
    for (status, body) in &answers {
        assert_eq!(*status, 200, "every simultaneous read is answered: {body}");
    }
    let fresh: Vec<String> = answers.iter().map(|(_, b)| kept(b)).collect();
    assert_ne!(fresh[0], kept(&first), "the expired token was refreshed");
    assert!(fresh.iter().all(|t| *t == fresh[0]), "one refresh, one new access token for all: {fresh:?}");
    let stored = w.store.link_token(REALM, &user, "node").await.unwrap().unwrap();
    let stored: Value = serde_json::from_str(stored.expose()).unwrap();
    assert_eq!(kept(&stored), fresh[0], "the answered token is the stored one");
}

/// A realm import (Keycloak's export shape) grants the `broker` client's
/// `read-token` from a user's `clientRoles`; other clients' roles are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_client_roles_grant_read_token() {
    let w = World::builder()
        .idp(json!({"storeToken": true}))
        .realm(json!({"users": [{
            "username": "alice",
            "clientRoles": {"broker": ["read-token"], "account": ["manage-account"]},
            "federatedIdentities": [{"identityProvider": "node", "userId": "sub-alice", "userName": "alice"}]
        }]}))
        .start_sqlite()
        .await;
    let tokens = w.sign_in(&Browser::new()).await;
    let (status, body) = broker_token(&w, "node", Some(&tokens.access_token)).await;
    assert_eq!(status, 200, "the linked, imported user holds read-token: {body}");
    let user = tokens.id_claims()["sub"].as_str().unwrap().to_owned();
    let (_, roles) =
        w.admin(reqwest::Method::GET, &format!("users/{user}/role-mappings/clients/account"), Value::Null).await;
    assert_eq!(roles, json!([]));
}
