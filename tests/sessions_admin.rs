//! SSO sessions as records the admin API finds and ends, end to end: a real
//! upstream (node oidc-provider), Federa on a real socket, two browsers of
//! the same person. Listed through `GET .../users/{id}/sessions` (Keycloak's
//! UserSessionRepresentation), ended through `POST .../users/{id}/logout`;
//! what is checked after is what the person would see: the old access tokens
//! refused and the next sign-in going upstream again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use federa_broker::SessionStore;
use federa_tests::browser::Browser;
use federa_tests::world::{claims_of, now_ms, World, APP_CB, APP_SECRET, REALM, SPA_CB};
use federa_tests::TestDb;
use serde_json::{json, Value};

async fn world(db: TestDb, store: federa_storage::DbStore, sessions: Arc<dyn SessionStore>) -> World {
    World::builder()
        // So that the upstream's ID tokens carry its session id (`sid`).
        .node_client(
            json!({"backchannel_logout_uri": "http://127.0.0.1:9/unused", "backchannel_logout_session_required": true}),
        )
        .start(db, store, sessions)
        .await
}

async fn admin_get(w: &World, path: &str) -> (u16, Value) {
    w.admin(reqwest::Method::GET, path, Value::Null).await
}

async fn admin_post(w: &World, path: &str) -> u16 {
    w.admin(reqwest::Method::POST, path, Value::Null).await.0
}

async fn members(w: &World, index: &str) -> Vec<String> {
    let mut m = w.sessions.index_members(index).await.unwrap();
    m.sort();
    m
}

/// Two browsers of alice: both sessions listed with Keycloak's fields and
/// found by user, upstream sid and upstream sub; one admin logout ends both.
async fn list_and_end(w: World) {
    let before = now_ms() - 1000;
    let (one, two) = (Browser::new(), Browser::new());
    let access_one = w.sign_in_to(&one, "app", Some(APP_SECRET), APP_CB, &[]).await.access_token;
    let access_two = w.sign_in_to(&two, "app", Some(APP_SECRET), APP_CB, &[]).await.access_token;
    // The second browser's session also serves the SPA (through SSO).
    let access_spa = w.sign_in_to(&two, "spa", None, SPA_CB, &[]).await.access_token;
    let (sid_one, sid_two) = (
        claims_of(&access_one)["sid"].as_str().unwrap().to_owned(),
        claims_of(&access_two)["sid"].as_str().unwrap().to_owned(),
    );
    assert_ne!(sid_one, sid_two, "two browsers, two sessions");
    assert_eq!(claims_of(&access_spa)["sid"].as_str(), Some(sid_two.as_str()));
    let user_id = claims_of(&access_one)["sub"].as_str().unwrap().to_owned();

    let (status, list) = admin_get(&w, &format!("users/{user_id}/sessions")).await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:#?}");
    let mut ids: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut want = vec![sid_one.as_str(), sid_two.as_str()];
    want.sort();
    assert_eq!(ids, want);
    for s in &list {
        assert_eq!(s["username"], "alice", "{s}");
        assert_eq!(s["userId"], user_id.as_str(), "{s}");
        assert_eq!(s["ipAddress"], "127.0.0.1", "the browser's address: {s}");
        let start = s["start"].as_i64().unwrap();
        assert!(start >= before && start <= now_ms(), "start is a time in ms: {s}");
        assert!(s["lastAccess"].as_i64().unwrap() >= start, "{s}");
        let clients =
            if s["id"] == sid_one.as_str() { json!({"app": "app"}) } else { json!({"app": "app", "spa": "spa"}) };
        assert_eq!(s["clients"], clients, "{s}");
    }

    // The records name the upstream session and subject, and are found by them.
    let record = w.record(&sid_one).await.unwrap();
    assert_eq!(record["upstream_sub"], "sub-alice", "{record}");
    assert_eq!(record["idp"], "node");
    let up_sid = record["upstream_sid"].as_str().unwrap_or_else(|| panic!("no upstream sid: {record}")).to_owned();
    assert_eq!(members(&w, &format!("sso-up-sid:{REALM}:node:{up_sid}")).await, [sid_one.as_str()]);
    assert_eq!(members(&w, &format!("sso-up-sub:{REALM}:node:sub-alice")).await, want);
    assert_eq!(members(&w, &format!("sso-user:{REALM}:{user_id}")).await, want);
    // Its use is recorded: the second session answered the SPA from SSO.
    assert_eq!(record["last_access"], 0, "never used for SSO: {record}");
    let used = w.record(&sid_two).await.unwrap();
    assert!(used["last_access"].as_i64().unwrap() * 1000 >= before, "SSO use recorded: {used}");
    let listed = list.iter().find(|s| s["id"] == sid_two.as_str()).unwrap();
    assert_eq!(listed["lastAccess"], used["last_access"].as_i64().unwrap() * 1000, "{listed}");

    // An unknown user: 404 for both.
    assert_eq!(admin_get(&w, "users/no-such-user/sessions").await.0, 404);
    assert_eq!(admin_post(&w, "users/no-such-user/logout").await, 404);
    assert_eq!(w.userinfo(&access_one).await, 200, "nothing ended");

    // The admin logout ends them all.
    assert_eq!(admin_post(&w, &format!("users/{user_id}/logout")).await, 204);
    let (status, list) = admin_get(&w, &format!("users/{user_id}/sessions")).await;
    assert_eq!((status, list), (200, json!([])));
    for access in [&access_one, &access_two, &access_spa] {
        assert_eq!(w.userinfo(access).await, 401, "the session of the access token has ended");
    }
    assert!(w.record(&sid_one).await.is_none() && w.record(&sid_two).await.is_none());
    assert!(members(&w, &format!("sso-up-sub:{REALM}:node:sub-alice")).await.is_empty());
    assert!(members(&w, &format!("sso-user:{REALM}:{user_id}")).await.is_empty());
    assert!(!w.has_sso(&one).await, "the next sign-in goes upstream again");
    assert!(!w.has_sso(&two).await, "the next sign-in goes upstream again");
    // Which made a new session, listed again.
    let (_, list) = admin_get(&w, &format!("users/{user_id}/sessions")).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite() {
    let db = TestDb::sqlite();
    let store = db.store();
    let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
    list_and_end(world(db, store, sessions).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres() {
    let Some(db) = TestDb::postgres("sessions_admin::on_postgres") else { return };
    let store = db.store();
    let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
    list_and_end(world(db, store, sessions).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sessions_on_redis() {
    let Some(redis) = federa_tests::redis_sessions("sessions_admin::with_sessions_on_redis").await else { return };
    let db = TestDb::sqlite();
    let store = db.store();
    list_and_end(world(db, store, Arc::new(redis)).await).await;
}
