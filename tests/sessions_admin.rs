//! SSO sessions as records the admin API finds and ends, end to end: a real
//! upstream (node oidc-provider), Federa on a real socket, two browsers of
//! the same person. Listed through `GET .../users/{id}/sessions` (Keycloak's
//! UserSessionRepresentation), ended through `POST .../users/{id}/logout`;
//! what is checked after is what the person would see: the old access tokens
//! refused and the next sign-in going upstream again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use base64::Engine as _;
use federa_broker::SessionStore;
use federa_tests::browser::{query_params, Browser, Page};
use federa_tests::upstream::NodeIdp;
use federa_tests::{RunningFedera, TestDb, ADMIN_TOKEN};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope,
};
use serde_json::{json, Value};

const REALM: &str = "e2e";
const APP_CB: &str = "http://app.test/cb";
const SPA_CB: &str = "http://spa.test/cb";
const APP_SECRET: &str = "app-secret-5f2d9c81";
const UPSTREAM_SECRET: &str = "federa-at-node-secret-0c7d1e";

type Client =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

struct World {
    fed: RunningFedera,
    node: NodeIdp,
    http: openidconnect::reqwest::Client,
    sessions: Arc<dyn SessionStore>,
    _db: TestDb,
}

impl World {
    fn issuer(&self) -> String {
        format!("{}/realms/{REALM}", self.fed.base)
    }

    async fn client(&self, id: &str, secret: Option<&str>, redirect: &str) -> Client {
        let meta =
            CoreProviderMetadata::discover_async(IssuerUrl::new(self.issuer()).unwrap(), &self.http).await.unwrap();
        CoreClient::from_provider_metadata(meta, ClientId::new(id.into()), secret.map(|s| ClientSecret::new(s.into())))
            .set_redirect_uri(RedirectUrl::new(redirect.into()).unwrap())
    }

    async fn userinfo(&self, access_token: &str) -> u16 {
        let r = reqwest::Client::new()
            .get(format!("{}/protocol/openid-connect/userinfo", self.issuer()))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    }

    /// Signs the browser in to a client; returns the access token.
    async fn sign_in(&self, browser: &Browser, id: &str, secret: Option<&str>, cb: &str) -> String {
        let client = self.client(id, secret, cb).await;
        let (page, verifier) = start(browser, &client, cb).await;
        let code = query_params(&page.url).get("code").cloned().unwrap_or_else(|| panic!("{:#?}", page.hops));
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .unwrap();
        let access = tokens.access_token().secret().clone();
        assert_eq!(self.userinfo(&access).await, 200, "signed in");
        access
    }

    /// Whether the browser's next sign-in to the app is answered from its
    /// Federa session (true) or has to go upstream (false).
    async fn has_sso(&self, browser: &Browser) -> bool {
        let app = self.client("app", Some(APP_SECRET), APP_CB).await;
        let (page, _) = start(browser, &app, APP_CB).await;
        assert!(query_params(&page.url).contains_key("code"), "signs in either way: {:#?}", page.hops);
        !page.hops.iter().any(|h| h.starts_with(&self.node.issuer))
    }

    async fn admin_get(&self, path: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(format!("{}/{REALM}/{path}", self.fed.admin()))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn admin_post(&self, path: &str) -> u16 {
        let r = reqwest::Client::new()
            .post(format!("{}/{REALM}/{path}", self.fed.admin()))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    }

    /// The stored SSO session record.
    async fn record(&self, sid: &str) -> Option<Value> {
        let json = self.sessions.get(&format!("sso:{REALM}:{sid}")).await.unwrap()?;
        Some(serde_json::from_str(&json).unwrap())
    }

    async fn members(&self, index: &str) -> Vec<String> {
        let mut m = self.sessions.index_members(index).await.unwrap();
        m.sort();
        m
    }
}

async fn world(db: TestDb, store: federa_storage::DbStore, sessions: Arc<dyn SessionStore>) -> World {
    let fed = RunningFedera::start(&store, sessions.clone());
    let callback = format!("{}/realms/{REALM}/broker/node/endpoint", fed.base);
    let node = NodeIdp::start(json!([{
        "client_id": "federa",
        "client_secret": UPSTREAM_SECRET,
        "redirect_uris": [callback],
        "token_endpoint_auth_method": "client_secret_basic",
        // So that the upstream's ID tokens carry its session id (`sid`).
        "backchannel_logout_uri": format!("{}/realms/{REALM}/broker/node/backchannel-logout", fed.base),
        "backchannel_logout_session_required": true,
    }]));
    let http = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let w = World { fed, node, http, sessions, _db: db };
    let realm = json!({
        "realm": REALM,
        "clients": [
            {"clientId": "app", "secret": APP_SECRET, "redirectUris": [APP_CB]},
            {"clientId": "spa", "publicClient": true, "redirectUris": [SPA_CB]}
        ],
        "identityProviders": [{
            "alias": "node", "providerId": "oidc",
            "config": {
                "issuer": w.node.issuer, "clientId": "federa", "clientSecret": UPSTREAM_SECRET,
                "clientAuthMethod": "client_secret_basic", "defaultScope": "openid profile email"
            }
        }]
    });
    let r = reqwest::Client::new().post(w.fed.admin()).bearer_auth(ADMIN_TOKEN).json(&realm).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap_or_default());
    w
}

async fn start(browser: &Browser, client: &Client, cb: &str) -> (Page, openidconnect::PkceCodeVerifier) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    (browser.navigate(url.as_str(), cb).await, verifier)
}

fn claims_of(jwt: &str) -> serde_json::Map<String, Value> {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// Two browsers of alice: both sessions listed with Keycloak's fields and
/// found by user, upstream sid and upstream sub; one admin logout ends both.
async fn list_and_end(w: World) {
    let before = now_ms() - 1000;
    let (one, two) = (Browser::new(), Browser::new());
    let access_one = w.sign_in(&one, "app", Some(APP_SECRET), APP_CB).await;
    let access_two = w.sign_in(&two, "app", Some(APP_SECRET), APP_CB).await;
    // The second browser's session also serves the SPA (through SSO).
    let access_spa = w.sign_in(&two, "spa", None, SPA_CB).await;
    let (sid_one, sid_two) = (
        claims_of(&access_one)["sid"].as_str().unwrap().to_owned(),
        claims_of(&access_two)["sid"].as_str().unwrap().to_owned(),
    );
    assert_ne!(sid_one, sid_two, "two browsers, two sessions");
    assert_eq!(claims_of(&access_spa)["sid"].as_str(), Some(sid_two.as_str()));
    let user_id = claims_of(&access_one)["sub"].as_str().unwrap().to_owned();

    let (status, list) = w.admin_get(&format!("users/{user_id}/sessions")).await;
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
    assert_eq!(w.members(&format!("sso-up-sid:{REALM}:node:{up_sid}")).await, [sid_one.as_str()]);
    assert_eq!(w.members(&format!("sso-up-sub:{REALM}:node:sub-alice")).await, want);
    assert_eq!(w.members(&format!("sso-user:{REALM}:{user_id}")).await, want);
    // Its use is recorded: the second session answered the SPA from SSO.
    assert_eq!(record["last_access"], 0, "never used for SSO: {record}");
    let used = w.record(&sid_two).await.unwrap();
    assert!(used["last_access"].as_i64().unwrap() * 1000 >= before, "SSO use recorded: {used}");
    let listed = list.iter().find(|s| s["id"] == sid_two.as_str()).unwrap();
    assert_eq!(listed["lastAccess"], used["last_access"].as_i64().unwrap() * 1000, "{listed}");

    // An unknown user: 404 for both.
    assert_eq!(w.admin_get("users/no-such-user/sessions").await.0, 404);
    assert_eq!(w.admin_post("users/no-such-user/logout").await, 404);
    assert_eq!(w.userinfo(&access_one).await, 200, "nothing ended");

    // The admin logout ends them all.
    assert_eq!(w.admin_post(&format!("users/{user_id}/logout")).await, 204);
    let (status, list) = w.admin_get(&format!("users/{user_id}/sessions")).await;
    assert_eq!((status, list), (200, json!([])));
    for access in [&access_one, &access_two, &access_spa] {
        assert_eq!(w.userinfo(access).await, 401, "the session of the access token has ended");
    }
    assert!(w.record(&sid_one).await.is_none() && w.record(&sid_two).await.is_none());
    assert!(w.members(&format!("sso-up-sub:{REALM}:node:sub-alice")).await.is_empty());
    assert!(w.members(&format!("sso-user:{REALM}:{user_id}")).await.is_empty());
    assert!(!w.has_sso(&one).await, "the next sign-in goes upstream again");
    assert!(!w.has_sso(&two).await, "the next sign-in goes upstream again");
    // Which made a new session, listed again.
    let (_, list) = w.admin_get(&format!("users/{user_id}/sessions")).await;
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
