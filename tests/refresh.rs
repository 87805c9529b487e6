//! Refresh tokens of Federa's own token endpoint, end to end (RFC 6749
//! sections 1.5, 6 and 10.4; RFC 9700 section 4.14; OIDC Core sections 11
//! and 12): a real upstream (node oidc-provider), Federa on a real socket,
//! the `openidconnect` crate as the app. Rotation, reuse detection revoking
//! the family (its newest refresh token and its access tokens), the SSO
//! session's idle and maximum lifetimes, logout ending a session's refresh
//! tokens but not an offline one, RFC 7009 revocation and RFC 7662
//! introspection, another client's token refused; on SQLite and PostgreSQL
//! with embedded or Redis sessions, and across two instances. Refreshes stop
//! when the provider is disabled or the user unlinked (offline grants too);
//! `offline_access` only for a client given that client scope; an offline
//! family's maximum lifetime when the realm enables one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use federa_broker::SessionStore;
use federa_tests::browser::Browser;
use federa_tests::world::{claims_of, World, APP_BYE, APP_CB, APP_SECRET, REALM};
use federa_tests::{RunningFedera, TestDb};
use openidconnect::{Nonce, OAuth2TokenResponse, RefreshToken, TokenResponse};
use reqwest::Method;
use serde_json::{json, Value};

/// The realm's idle timeout in these tests (seconds).
const IDLE: i64 = 600;

async fn world(db: TestDb, store: federa_storage::DbStore, sessions: Arc<dyn SessionStore>) -> World {
    World::builder().realm(json!({"ssoSessionIdleTimeout": IDLE})).start(db, store, sessions).await
}

fn now() -> i64 {
    federa_tests::world::now_ms() / 1000
}

/// A refresh at a token endpoint (`token_url`) as the app (HTTP Basic) or
/// as a public client (`client_id` in the form); the status and body.
async fn refresh_at(token_url: &str, rt: &str, client: (&str, Option<&str>), scope: Option<&str>) -> (u16, Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let mut req = reqwest::Client::new().post(token_url);
    match client.1 {
        Some(secret) => req = req.basic_auth(client.0, Some(secret)),
        None => form.push(("client_id", client.0)),
    }
    let r = req.form(&form).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn refresh(w: &World, rt: &str, scope: Option<&str>) -> (u16, Value) {
    refresh_at(&w.endpoint("token"), rt, ("app", Some(APP_SECRET)), scope).await
}

fn assert_invalid_grant((status, body): (u16, Value), what: &str) {
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{what}: {body}");
}

fn str_of<'a>(body: &'a Value, name: &str) -> &'a str {
    body[name].as_str().unwrap_or_else(|| panic!("no {name}: {body}"))
}

/// Rotation through `openidconnect`: a new access token, ID token (same
/// `sid` and `auth_time`, no nonce) and refresh token; the old one is used
/// up; a scope narrows and never widens; the session's last use moves.
async fn rotation(w: &World) {
    let browser = Browser::new();
    let first = w.sign_in(&browser).await;
    let rt0 = first.refresh_token.clone().expect("the code grant issues a refresh token");
    let id0 = first.id_claims();
    let sid = id0["sid"].as_str().unwrap().to_owned();
    // Make the session look idle for a while, to see the refresh count as a use.
    let mut record = w.record(&sid).await.unwrap();
    record["last_access"] = json!(now() - IDLE / 2);
    assert!(w.sessions.replace(&format!("sso:{REALM}:{sid}"), &record.to_string()).await.unwrap());

    let app = w.app().await;
    let answer =
        app.exchange_refresh_token(&RefreshToken::new(rt0.clone())).unwrap().request_async(&w.http).await.unwrap();
    let id_token = answer.id_token().expect("an ID token on refresh (OIDC Core 12.2)");
    id_token
        .claims(&app.id_token_verifier(), |n: Option<&Nonce>| match n {
            None => Ok(()),
            Some(_) => Err("a refreshed ID token carries no nonce".to_owned()),
        })
        .unwrap();
    let id1 = claims_of(&id_token.to_string());
    assert_eq!((&id1["sid"], &id1["auth_time"], &id1["sub"]), (&id0["sid"], &id0["auth_time"], &id0["sub"]));
    let rt1 = answer.refresh_token().expect("a new refresh token").secret().clone();
    assert_ne!(rt1, rt0, "rotated");
    let at1 = answer.access_token().secret().clone();
    assert_ne!(at1, first.access_token);
    assert_eq!(w.userinfo(&at1).await, 200);
    let scope: Vec<String> = answer.scopes().unwrap().iter().map(|s| s.to_string()).collect();
    assert!(scope.contains(&"openid".to_owned()) && scope.contains(&"profile".to_owned()), "{scope:?}");
    let last = w.record(&sid).await.unwrap()["last_access"].as_i64().unwrap();
    assert!(last >= now() - 5, "the refresh is a use of the session: {last}");

    // Introspection: the new one active (to its client), the old one not.
    let (status, body) = w.post_form("token/introspect", &[("token", &rt1)], Some(("app", APP_SECRET))).await;
    assert_eq!(status, 200);
    assert_eq!((body["active"].clone(), body["token_type"].clone()), (json!(true), json!("Refresh")), "{body}");
    assert_eq!((body["client_id"].clone(), body["sub"].clone()), (json!("app"), id0["sub"].clone()), "{body}");
    assert!(body["exp"].as_i64().unwrap() > now(), "{body}");
    assert!(!w.active(&rt0).await, "a rotated token is not active");

    // A scope may narrow (the refresh token keeps the grant) but not widen.
    let (status, body) = refresh(w, &rt1, Some("openid email")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")), "{body}");
    let (status, body) = refresh(w, &rt1, Some("openid")).await;
    assert_eq!(status, 200, "a refused scope left the token usable: {body}");
    assert_eq!(str_of(&body, "scope"), "openid");
    let rt2 = str_of(&body, "refresh_token").to_owned();
    let (status, body) = refresh(w, &rt2, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(str_of(&body, "scope").contains("profile"), "the grant's scopes again: {body}");

    // Missing and unknown tokens.
    let (status, body) = w.post_form("token", &[("grant_type", "refresh_token")], Some(("app", APP_SECRET))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    assert_invalid_grant(refresh(w, "no-such-token", None).await, "unknown");
}

/// A used token presented again revokes the family: its newest refresh
/// token and every access token it produced stop working.
async fn reuse(w: &World) {
    let browser = Browser::new();
    let first = w.sign_in(&browser).await;
    let rt0 = first.refresh_token.clone().unwrap();
    let (status, body) = refresh(w, &rt0, None).await;
    assert_eq!(status, 200, "{body}");
    let (rt1, at1) = (str_of(&body, "refresh_token").to_owned(), str_of(&body, "access_token").to_owned());
    assert!(w.active(&at1).await && w.active(&rt1).await);

    assert_invalid_grant(refresh(w, &rt0, None).await, "a used token");
    assert_invalid_grant(refresh(w, &rt1, None).await, "the family's newest token after a reuse");
    assert!(!w.active(&rt1).await);
    assert!(!w.active(&at1).await, "the family's access tokens are revoked");
    assert_eq!(w.userinfo(&at1).await, 401);
    assert_eq!(w.userinfo(&first.access_token).await, 401, "including the code's");
    // The session itself lives on: a new sign-in is answered by SSO.
    assert!(w.has_sso(&browser).await);

    // Two racing uses of one token: at most one wins.
    let fresh = w.sign_in(&browser).await.refresh_token.unwrap();
    let (a, b) = tokio::join!(refresh(w, &fresh, None), refresh(w, &fresh, None));
    let wins = [&a, &b].iter().filter(|(s, _)| *s == 200).count();
    assert!(wins <= 1, "{a:?} {b:?}");
    for (s, body) in [&a, &b] {
        if *s != 200 {
            assert_eq!(body["error"], "invalid_grant", "{body}");
        }
    }
}

/// Another client's refresh token is refused.
async fn other_client(w: &World) {
    let browser = Browser::new();
    let rt = w.sign_in(&browser).await.refresh_token.unwrap();
    let spa = refresh_at(&w.endpoint("token"), &rt, ("spa", None), None).await;
    assert_invalid_grant(spa, "the app's token presented by the SPA");
    let (status, body) = w.post_form("token/introspect", &[("token", &rt)], Some(("app", APP_SECRET))).await;
    assert_eq!((status, body["active"].clone()), (200, json!(false)), "it leaked, so its family ended: {body}");
}

/// The session's idle and maximum lifetimes bound its refresh tokens, and
/// the idle one its SSO answers.
async fn expiry(w: &World) {
    let browser = Browser::new();
    let tokens = w.sign_in(&browser).await;
    let sid = tokens.id_claims()["sid"].as_str().unwrap().to_owned();
    let key = format!("sso:{REALM}:{sid}");
    let record = w.record(&sid).await.unwrap();

    let mut idle = record.clone();
    idle["last_access"] = json!(now() - IDLE - 5);
    idle["started"] = json!(now() - IDLE - 5);
    assert!(w.sessions.replace(&key, &idle.to_string()).await.unwrap());
    let rt = tokens.refresh_token.clone().unwrap();
    assert!(!w.active(&rt).await, "idle longer than ssoSessionIdleTimeout");
    assert_invalid_grant(refresh(w, &rt, None).await, "idle session");
    assert_eq!(w.userinfo(&tokens.access_token).await, 401, "an idle session's access tokens stop too");
    assert!(!w.has_sso(&browser).await, "an idle session does not answer at the authorization endpoint");

    let tokens = w.sign_in(&Browser::new()).await;
    let sid = tokens.id_claims()["sid"].as_str().unwrap().to_owned();
    let mut old = w.record(&sid).await.unwrap();
    old["started"] = json!(now() - 10 * 3600 - 5);
    old["last_access"] = json!(now());
    assert!(w.sessions.replace(&format!("sso:{REALM}:{sid}"), &old.to_string()).await.unwrap());
    assert_invalid_grant(refresh(w, &tokens.refresh_token.unwrap(), None).await, "past ssoSessionMaxLifespan");

    // An offline family idle longer than offlineSessionIdleTimeout (30 days).
    let tokens = w.sign_in_to(&Browser::new(), "app", Some(APP_SECRET), APP_CB, &["offline_access"]).await;
    let family = claims_of(&tokens.access_token)["rfam"].as_str().unwrap().to_owned();
    let fkey = format!("rtf:{REALM}:{family}");
    let mut f: Value = serde_json::from_str(&w.sessions.get(&fkey).await.unwrap().unwrap()).unwrap();
    assert_eq!(f["offline"], true, "{f}");
    f["last_use"] = json!(now() - 31 * 86_400);
    assert!(w.sessions.replace(&fkey, &f.to_string()).await.unwrap());
    assert_invalid_grant(refresh(w, &tokens.refresh_token.unwrap(), None).await, "idle offline family");
}

/// Logout ends a session's refresh tokens, not an offline one; revoking the
/// offline one (RFC 7009) ends it and its access tokens.
async fn logout_and_revocation(w: &World) {
    // RP-initiated logout of one browser.
    let one = Browser::new();
    let tokens = w.sign_in(&one).await;
    let url = format!("{}?id_token_hint={}&post_logout_redirect_uri={APP_BYE}", w.endpoint("logout"), tokens.id_token);
    let page = one.navigate(&url, APP_BYE).await;
    assert!(page.url.starts_with(APP_BYE), "{:#?}", page.hops);
    assert_invalid_grant(refresh(w, &tokens.refresh_token.unwrap(), None).await, "after RP-initiated logout");

    // An admin logout of the user: the session's token dies, the offline one lives.
    let (two, three) = (Browser::new(), Browser::new());
    let normal = w.sign_in(&two).await;
    let offline = w.sign_in_to(&three, "app", Some(APP_SECRET), APP_CB, &["offline_access"]).await;
    let user = normal.id_claims()["sub"].as_str().unwrap().to_owned();
    let (status, _) = w.admin(reqwest::Method::POST, &format!("users/{user}/logout"), Value::Null).await;
    assert_eq!(status, 204);
    assert_invalid_grant(refresh(w, &normal.refresh_token.unwrap(), None).await, "after admin logout");
    assert_eq!(w.userinfo(&normal.access_token).await, 401);
    assert_eq!(w.userinfo(&offline.access_token).await, 200, "an offline grant's access token outlives the session");
    let (status, body) = refresh(w, offline.refresh_token.as_deref().unwrap(), None).await;
    assert_eq!(status, 200, "an offline token outlives the session: {body}");
    let (rt, at) = (str_of(&body, "refresh_token").to_owned(), str_of(&body, "access_token").to_owned());
    assert_eq!(w.userinfo(&at).await, 200);
    assert!(str_of(&body, "scope").contains("offline_access"), "{body}");

    // Another client may not revoke it; its own client may, and that ends the family.
    let spa_revoke = w.post_form("revoke", &[("token", &rt), ("client_id", "spa")], None).await;
    assert_eq!((spa_revoke.0, spa_revoke.1["error"].as_str()), (400, Some("invalid_request")), "{spa_revoke:?}");
    let (status, _) =
        w.post_form("revoke", &[("token", &rt), ("token_type_hint", "refresh_token")], Some(("app", APP_SECRET))).await;
    assert_eq!(status, 200);
    assert!(!w.active(&rt).await);
    assert_eq!(w.userinfo(&at).await, 401, "the family's access tokens end with it");
    assert_eq!(w.userinfo(&offline.access_token).await, 401);
    assert_invalid_grant(refresh(w, &rt, None).await, "a revoked token");
}

async fn all(w: World) {
    let (status, doc) = {
        let r = reqwest::get(format!("{}/.well-known/openid-configuration", w.issuer())).await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200);
    assert!(doc["grant_types_supported"].as_array().unwrap().contains(&json!("refresh_token")), "{doc}");
    rotation(&w).await;
    reuse(&w).await;
    other_client(&w).await;
    expiry(&w).await;
    // Last: the admin logout ends every session of the user.
    logout_and_revocation(&w).await;
}

/// A refresh token issued by one instance is refreshed at another over the
/// same database and session store, and the rotated one is refused at both.
async fn two_instances(w: World) {
    let second = RunningFedera::start(&w.store, w.sessions.clone());
    let other_token = format!("{}/realms/{REALM}/protocol/openid-connect/token", second.base);
    let tokens = w.sign_in(&Browser::new()).await;
    let rt0 = tokens.refresh_token.unwrap();
    let (status, body) = refresh_at(&other_token, &rt0, ("app", Some(APP_SECRET)), None).await;
    assert_eq!(status, 200, "{body}");
    let rt1 = str_of(&body, "refresh_token").to_owned();
    let (status, body) = refresh(&w, &rt1, None).await;
    assert_eq!(status, 200, "back at the first: {body}");
    let rt2 = str_of(&body, "refresh_token").to_owned();
    assert_invalid_grant(refresh_at(&other_token, &rt1, ("app", Some(APP_SECRET)), None).await, "reuse at the second");
    assert_invalid_grant(refresh(&w, &rt2, None).await, "the family is revoked for both");
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite() {
    let db = TestDb::sqlite();
    let store = db.store();
    let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
    all(world(db, store, sessions).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres() {
    let Some(db) = TestDb::postgres("refresh::on_postgres") else { return };
    let store = db.store();
    let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
    all(world(db, store, sessions).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_with_redis() {
    let Some(redis) = federa_tests::redis_sessions("refresh::on_sqlite_with_redis").await else { return };
    let db = TestDb::sqlite();
    let store = db.store();
    all(world(db, store, Arc::new(redis)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_with_redis() {
    let Some(redis) = federa_tests::redis_sessions("refresh::on_postgres_with_redis").await else { return };
    let Some(db) = TestDb::postgres("refresh::on_postgres_with_redis") else { return };
    let store = db.store();
    all(world(db, store, Arc::new(redis)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres() {
    let Some(db) = TestDb::postgres("refresh::two_instances_on_postgres") else { return };
    let store = db.store();
    let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
    two_instances(world(db, store, sessions).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_with_redis() {
    let Some(redis) = federa_tests::redis_sessions("refresh::two_instances_with_redis").await else { return };
    let Some(db) = TestDb::postgres("refresh::two_instances_with_redis") else { return };
    let store = db.store();
    two_instances(world(db, store, Arc::new(redis)).await).await;
}

/// Signs in twice, once with a session-bound grant and once offline, checks
/// both refresh, applies `change`, and checks that neither refreshes again
/// (both families revoked, the session ended), as the session would no
/// longer answer at the authorization endpoint.
async fn refreshes_stop_after(w: World, change: impl AsyncFnOnce(&World)) {
    let session = w.sign_in(&Browser::new()).await;
    let offline = w.sign_in_to(&Browser::new(), "app", Some(APP_SECRET), APP_CB, &["offline_access"]).await;
    let sid = session.id_claims()["sid"].as_str().unwrap().to_owned();
    let mut rts = Vec::new();
    for tokens in [&session, &offline] {
        let (status, body) = refresh(&w, tokens.refresh_token.as_deref().unwrap(), None).await;
        assert_eq!(status, 200, "{body}");
        rts.push(str_of(&body, "refresh_token").to_owned());
    }
    assert!(claims_of(&offline.access_token)["scope"].as_str().unwrap().contains("offline_access"));

    change(&w).await;

    for (rt, what) in rts.iter().zip(["a session's refresh token", "an offline refresh token"]) {
        assert_invalid_grant(refresh(&w, rt, None).await, what);
        assert!(!w.active(rt).await, "{what}: its family is revoked");
    }
    assert!(w.record(&sid).await.is_none(), "the session was ended");
}

async fn disable_provider(w: &World) {
    let path = "identity-provider/instances/node";
    let (status, mut idp) = w.admin(Method::GET, path, Value::Null).await;
    assert_eq!(status, 200, "{idp}");
    idp["enabled"] = json!(false);
    let (status, body) = w.admin(Method::PUT, path, idp).await;
    assert_eq!(status, 204, "{body}");
}

async fn unlink_user(w: &World) {
    let users = w.users().await;
    assert_eq!(users.len(), 1, "{users:?}");
    let id = users[0]["id"].as_str().unwrap();
    let (status, body) = w.admin(Method::DELETE, &format!("users/{id}/federated-identity/node"), Value::Null).await;
    assert_eq!(status, 204, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_the_provider_stops_refreshes() {
    refreshes_stop_after(World::builder().start_sqlite().await, disable_provider).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlinking_the_user_stops_refreshes() {
    refreshes_stop_after(World::builder().start_sqlite().await, unlink_user).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlinking_the_user_stops_refreshes_on_postgres_with_redis() {
    let Some(redis) = federa_tests::redis_sessions("refresh::unlinking_on_postgres_with_redis").await else { return };
    let Some(db) = TestDb::postgres("refresh::unlinking_on_postgres_with_redis") else { return };
    let store = db.store();
    refreshes_stop_after(World::builder().start(db, store, Arc::new(redis)).await, unlink_user).await;
}

/// `offline_access` is granted only to a client whose listed client scopes
/// hold it (a client listing none has it, Keycloak's default); otherwise it
/// is dropped silently and the refresh token stays bound to the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_access_needs_the_client_scope() {
    const OTHER_SECRET: &str = "other-secret-of-the-offline-test";
    let w = World::builder()
        .app(json!({"defaultClientScopes": ["profile", "email"], "optionalClientScopes": ["phone"]}))
        .client(json!({"clientId": "offline-app", "secret": OTHER_SECRET, "redirectUris": [APP_CB],
                       "defaultClientScopes": ["profile"], "optionalClientScopes": ["offline_access"]}))
        .start_sqlite()
        .await;
    let family =
        |tokens: &federa_tests::world::Tokens| claims_of(&tokens.access_token)["rfam"].as_str().unwrap().to_owned();
    let offline_of = async |fam: String| -> Value {
        let f = w.sessions.get(&format!("rtf:{REALM}:{fam}")).await.unwrap().unwrap();
        serde_json::from_str::<Value>(&f).unwrap()["offline"].clone()
    };

    let refused = w.sign_in_to(&Browser::new(), "app", Some(APP_SECRET), APP_CB, &["offline_access"]).await;
    let scope = claims_of(&refused.access_token)["scope"].as_str().unwrap().to_owned();
    assert!(!scope.contains("offline_access") && scope.contains("openid"), "{scope}");
    assert_eq!(offline_of(family(&refused)).await, json!(false));

    let granted = w.sign_in_to(&Browser::new(), "offline-app", Some(OTHER_SECRET), APP_CB, &["offline_access"]).await;
    let scope = claims_of(&granted.access_token)["scope"].as_str().unwrap().to_owned();
    assert!(scope.contains("offline_access"), "{scope}");
    assert_eq!(offline_of(family(&granted)).await, json!(true));
}

/// With `offlineSessionMaxLifespanEnabled`, an offline family ends
/// `offlineSessionMaxLifespan` after it began, however recently used;
/// without it, the same family lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_family_ends_at_the_realms_maximum_when_enabled() {
    for (enabled, what) in [(false, "no maximum"), (true, "past offlineSessionMaxLifespan")] {
        let w = World::builder()
            .realm(json!({"offlineSessionMaxLifespanEnabled": enabled, "offlineSessionMaxLifespan": 3600}))
            .start_sqlite()
            .await;
        let tokens = w.sign_in_to(&Browser::new(), "app", Some(APP_SECRET), APP_CB, &["offline_access"]).await;
        let family = claims_of(&tokens.access_token)["rfam"].as_str().unwrap().to_owned();
        let fkey = format!("rtf:{REALM}:{family}");
        let mut f: Value = serde_json::from_str(&w.sessions.get(&fkey).await.unwrap().unwrap()).unwrap();
        assert_eq!(f["offline"], true, "{f}");
        f["started"] = json!(now() - 3700);
        f["last_use"] = json!(now() - 10);
        assert!(w.sessions.replace(&fkey, &f.to_string()).await.unwrap());
        let answer = refresh(&w, &tokens.refresh_token.unwrap(), None).await;
        if enabled {
            assert_invalid_grant(answer, what);
        } else {
            assert_eq!(answer.0, 200, "{what}: {}", answer.1);
        }
    }
}
