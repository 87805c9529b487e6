//! The world most end-to-end tests start from: Federa on a real socket, the
//! real upstream OpenID Provider (node oidc-provider, [`NodeIdp`]) brokered
//! as the provider `node`, and a realm [`REALM`] with a confidential app
//! (`app`, [`APP_CB`]) and a public SPA (`spa`, [`SPA_CB`]), signed in to
//! through the independent `openidconnect` client library.
//!
//! ```ignore
//! let w = World::start(TestDb::sqlite()).await;                     // the defaults
//! let w = World::builder()
//!     .idp_config(json!({"acceptsPromptNoneForwardFromClient": "true"}))
//!     .node_client(json!({"backchannel_logout_session_required": true}))
//!     .client(json!({"clientId": "svc", "secret": "s", "serviceAccountsEnabled": true}))
//!     .start(db, store, sessions).await;
//! let tokens = w.sign_in(&Browser::new()).await;
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use federa_broker::SessionStore;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreTokenResponse};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde_json::{json, Value};

use crate::browser::{query_params, Browser, Page};
use crate::upstream::NodeIdp;
use crate::{RunningFedera, TestDb, ADMIN_TOKEN};

/// The realm of the world.
pub const REALM: &str = "e2e";
/// The confidential app's redirect URI.
pub const APP_CB: &str = "http://app.test/cb";
/// The confidential app's registered post-logout redirect URI.
pub const APP_BYE: &str = "http://app.test/bye";
/// The public SPA's redirect URI.
pub const SPA_CB: &str = "http://spa.test/cb";
/// The public SPA's registered post-logout redirect URI.
pub const SPA_BYE: &str = "http://spa.test/bye";
/// The confidential app's secret.
pub const APP_SECRET: &str = "app-secret-5f2d9c81";
/// Federa's secret at the node upstream.
pub const UPSTREAM_SECRET: &str = "federa-at-node-secret-0c7d1e";
/// The provider alias of the node upstream.
pub const ALIAS: &str = "node";

/// A client of Federa as the `openidconnect` crate builds it from discovery.
pub type AppClient =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// What a sign-in gave the app.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The ID token, compact.
    pub id_token: String,
    /// The access token.
    pub access_token: String,
    /// The refresh token, when one was issued.
    pub refresh_token: Option<String>,
}

impl Tokens {
    /// The ID token's claims (not verified: the sign-in verified them).
    pub fn id_claims(&self) -> serde_json::Map<String, Value> {
        claims_of(&self.id_token)
    }
}

/// One authorization request as the app sent it: where the browser ended,
/// and what the app keeps to check the answer and redeem its code.
pub struct Authorization {
    /// Where the browser ended.
    pub page: Page,
    /// The PKCE verifier.
    pub verifier: PkceCodeVerifier,
    /// The nonce sent.
    pub nonce: Nonce,
    /// The state sent.
    pub state: CsrfToken,
}

impl Authorization {
    /// The query parameters where the browser ended.
    pub fn params(&self) -> BTreeMap<String, String> {
        query_params(&self.page.url)
    }
}

/// The payload of a compact JWS, not verified.
pub fn claims_of(jwt: &str) -> serde_json::Map<String, Value> {
    let payload = jwt.split('.').nth(1).unwrap_or_else(|| panic!("not a JWT: {jwt}"));
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The header of a compact JWS.
pub fn header_of(jwt: &str) -> serde_json::Map<String, Value> {
    let header = jwt.split('.').next().unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// Merges the keys of `extra` (an object) into `target` (an object).
fn merge(target: &mut Value, extra: &Value) {
    if let (Some(t), Some(e)) = (target.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            t.insert(k.clone(), v.clone());
        }
    }
}

/// How to set up a [`World`]: what differs from the defaults.
#[derive(Default)]
pub struct Builder {
    idp_config: Value,
    idp_extra: Value,
    node_client: Value,
    realm: Value,
    clients: Vec<Value>,
    app_attributes: Value,
    app_extra: Value,
}

impl Builder {
    /// Keys merged into the `node` provider's `config` map; `{node}` in a
    /// string value stands for the node upstream's issuer URL
    /// (`"logoutUrl": "{node}/session/end"`).
    pub fn idp_config(mut self, extra: Value) -> Self {
        merge_into(&mut self.idp_config, extra);
        self
    }

    /// Keys merged into the `node` provider's representation itself
    /// (`firstBrokerLoginFlowAlias`, `trustEmail`, `storeToken`...).
    pub fn idp(mut self, extra: Value) -> Self {
        merge_into(&mut self.idp_extra, extra);
        self
    }

    /// Keys merged into Federa's client metadata at the node upstream
    /// (oidc-provider's names: `backchannel_logout_uri`, ...); `{federa}` in
    /// a string value stands for Federa's base URL
    /// (`"{federa}/realms/e2e/protocol/openid-connect/logout/backchannel-logout"`).
    pub fn node_client(mut self, extra: Value) -> Self {
        merge_into(&mut self.node_client, extra);
        self
    }

    /// Keys merged into the realm representation (`ssoSessionIdleTimeout`,
    /// `identityProviderMappers`, `users`...).
    pub fn realm(mut self, extra: Value) -> Self {
        merge_into(&mut self.realm, extra);
        self
    }

    /// Another client of the realm.
    pub fn client(mut self, client: Value) -> Self {
        self.clients.push(client);
        self
    }

    /// Keys merged into the `app` client's `attributes`.
    pub fn app_attributes(mut self, extra: Value) -> Self {
        merge_into(&mut self.app_attributes, extra);
        self
    }

    /// Keys merged into the `app` client's representation itself
    /// (`protocolMappers`...).
    pub fn app(mut self, extra: Value) -> Self {
        merge_into(&mut self.app_extra, extra);
        self
    }

    /// Starts the world on a SQLite database with embedded sessions.
    pub async fn start_sqlite(self) -> World {
        let db = TestDb::sqlite();
        let store = db.store();
        let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
        self.start(db, store, sessions).await
    }

    /// Starts the world on `db` with embedded sessions.
    pub async fn start_on(self, db: TestDb) -> World {
        let store = db.store();
        let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
        self.start(db, store, sessions).await
    }

    /// Starts the world on SQLite with its sessions on Redis; `None` (the
    /// test named `test` skipped, saying so) without FEDERA_TEST_REDIS_URL.
    pub async fn start_on_redis(self, test: &str) -> Option<World> {
        let redis = crate::redis_sessions(test).await?;
        let db = TestDb::sqlite();
        let store = db.store();
        Some(self.start(db, store, Arc::new(redis)).await)
    }

    /// Starts the world on a database and a session store.
    pub async fn start(self, db: TestDb, store: federa_storage::DbStore, sessions: Arc<dyn SessionStore>) -> World {
        let fed = RunningFedera::start(&store, sessions.clone());
        let callback = format!("{}/realms/{REALM}/broker/{ALIAS}/endpoint", fed.base);
        let mut node_client = json!({
            "client_id": "federa",
            "client_secret": UPSTREAM_SECRET,
            "redirect_uris": [callback],
            "post_logout_redirect_uris": [format!("{}/realms/{REALM}/broker/{ALIAS}/endpoint/logout_response", fed.base)],
            "token_endpoint_auth_method": "client_secret_basic",
        });
        merge(&mut node_client, &substitute(&self.node_client, "{federa}", &fed.base));
        let node = NodeIdp::start(json!([node_client]));
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .build()
            .unwrap();

        let mut config = json!({
            "issuer": node.issuer, "clientId": "federa", "clientSecret": UPSTREAM_SECRET,
            "clientAuthMethod": "client_secret_basic", "defaultScope": "openid profile email"
        });
        merge(&mut config, &substitute(&self.idp_config, "{node}", &node.issuer));
        let mut idp = json!({"alias": ALIAS, "displayName": "Node IdP", "providerId": "oidc", "config": config});
        merge(&mut idp, &self.idp_extra);
        let mut app_attributes = json!({"post.logout.redirect.uris": format!("{APP_BYE}##+")});
        merge(&mut app_attributes, &self.app_attributes);
        let mut app = json!({"clientId": "app", "name": "The App", "secret": APP_SECRET, "redirectUris": [APP_CB],
                   "attributes": app_attributes});
        merge(&mut app, &self.app_extra);
        let mut clients = vec![
            app,
            json!({"clientId": "spa", "publicClient": true, "redirectUris": [SPA_CB],
                   "attributes": {"post.logout.redirect.uris": SPA_BYE}}),
        ];
        clients.extend(self.clients);
        let mut realm = json!({
            "realm": REALM,
            "displayName": "End to end",
            "clients": clients,
            "identityProviders": [idp],
        });
        merge(&mut realm, &self.realm);

        let w = World { fed, node, http, store, sessions, db };
        let r = reqwest::Client::new().post(w.fed.admin()).bearer_auth(ADMIN_TOKEN).json(&realm).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap_or_default());
        w
    }
}

/// `value` with `placeholder` replaced by `with` in every string.
fn substitute(value: &Value, placeholder: &str, with: &str) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace(placeholder, with)),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, placeholder, with)).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), substitute(v, placeholder, with))).collect())
        }
        other => other.clone(),
    }
}

fn merge_into(target: &mut Value, extra: Value) {
    if target.is_null() {
        *target = json!({});
    }
    merge(target, &extra);
}

/// Federa brokering the node upstream, with a realm and its apps.
pub struct World {
    /// Federa on a real socket.
    pub fed: RunningFedera,
    /// The upstream.
    pub node: NodeIdp,
    /// An HTTP client that does not follow redirects (for `openidconnect`).
    pub http: openidconnect::reqwest::Client,
    /// The database store Federa runs on.
    pub store: federa_storage::DbStore,
    /// The session store Federa runs on.
    pub sessions: Arc<dyn SessionStore>,
    /// The database (dropped with the world).
    pub db: TestDb,
}

impl World {
    /// What to set up, from the defaults.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The default world on `db` with embedded sessions.
    pub async fn start(db: TestDb) -> World {
        let store = db.store();
        let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
        Builder::default().start(db, store, sessions).await
    }

    /// The realm's issuer.
    pub fn issuer(&self) -> String {
        format!("{}/realms/{REALM}", self.fed.base)
    }

    /// An endpoint under `.../protocol/openid-connect/` (`token`, `userinfo`,
    /// `logout`, `token/introspect`, `revoke`, `certs`...).
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}/protocol/openid-connect/{path}", self.issuer())
    }

    /// A client of Federa built by `openidconnect` from discovery.
    pub async fn client(&self, id: &str, secret: Option<&str>, redirect: &str) -> AppClient {
        let meta =
            CoreProviderMetadata::discover_async(IssuerUrl::new(self.issuer()).unwrap(), &self.http).await.unwrap();
        CoreClient::from_provider_metadata(meta, ClientId::new(id.into()), secret.map(|s| ClientSecret::new(s.into())))
            .set_redirect_uri(RedirectUrl::new(redirect.into()).unwrap())
    }

    /// The confidential app.
    pub async fn app(&self) -> AppClient {
        self.client("app", Some(APP_SECRET), APP_CB).await
    }

    /// Starts a sign-in of `client` (scope `openid profile` plus `scopes`,
    /// PKCE S256, `extra` parameters) and follows it to `cb`; returns where
    /// it ended, the PKCE verifier and the nonce.
    pub async fn authorize(
        &self,
        browser: &Browser,
        client: &AppClient,
        cb: &str,
        scopes: &[&str],
        extra: &[(&str, &str)],
    ) -> (Page, PkceCodeVerifier, Nonce) {
        let a = self.authorization(browser, client, cb, scopes, extra).await;
        (a.page, a.verifier, a.nonce)
    }

    /// [`World::authorize`], keeping the state sent as well.
    pub async fn authorization(
        &self,
        browser: &Browser,
        client: &AppClient,
        cb: &str,
        scopes: &[&str],
        extra: &[(&str, &str)],
    ) -> Authorization {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge);
        for s in scopes {
            req = req.add_scope(Scope::new((*s).into()));
        }
        for (k, v) in extra {
            req = req.add_extra_param(*k, *v);
        }
        let (url, state, nonce) = req.url();
        Authorization { page: browser.navigate(url.as_str(), cb).await, verifier, nonce, state }
    }

    /// Exchanges a code with the client library (client authentication,
    /// PKCE); the token response as the library parsed it, not verified.
    pub async fn exchange(&self, client: &AppClient, code: String, verifier: PkceCodeVerifier) -> CoreTokenResponse {
        client
            .exchange_code(AuthorizationCode::new(code))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .unwrap()
    }

    /// Exchanges the code a finished sign-in brought back; the ID token is
    /// verified by `openidconnect` (signature, issuer, audience, nonce).
    pub async fn redeem(&self, client: &AppClient, page: &Page, verifier: PkceCodeVerifier, nonce: &Nonce) -> Tokens {
        let code = query_params(&page.url).get("code").cloned().unwrap_or_else(|| {
            panic!("no code at {}: {:#?}\n{}", page.url, page.hops, page.body);
        });
        let tokens = self.exchange(client, code, verifier).await;
        let id_token = tokens.id_token().expect("an ID token");
        id_token.claims(&client.id_token_verifier(), nonce).unwrap();
        Tokens {
            id_token: id_token.to_string(),
            access_token: tokens.access_token().secret().clone(),
            refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
        }
    }

    /// Signs the browser in to a client with extra scopes; the access token
    /// opens userinfo.
    pub async fn sign_in_to(
        &self,
        browser: &Browser,
        id: &str,
        secret: Option<&str>,
        cb: &str,
        scopes: &[&str],
    ) -> Tokens {
        let client = self.client(id, secret, cb).await;
        let (page, verifier, nonce) = self.authorize(browser, &client, cb, scopes, &[]).await;
        let tokens = self.redeem(&client, &page, verifier, &nonce).await;
        assert_eq!(self.userinfo(&tokens.access_token).await, 200, "signed in");
        tokens
    }

    /// Signs the browser in to the app.
    pub async fn sign_in(&self, browser: &Browser) -> Tokens {
        self.sign_in_to(browser, "app", Some(APP_SECRET), APP_CB, &[]).await
    }

    /// The status of userinfo for an access token.
    pub async fn userinfo(&self, access_token: &str) -> u16 {
        let r = reqwest::Client::new().get(self.endpoint("userinfo")).bearer_auth(access_token).send().await.unwrap();
        r.status().as_u16()
    }

    /// A form POST to a Federa endpoint (`token`, `revoke`...) with HTTP
    /// Basic client authentication when given; the status and JSON body.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
        let (status, text) = self.post_form_text(path, form, basic).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// [`World::post_form`], with the body as sent (to tell an empty body
    /// from one that is not JSON).
    pub async fn post_form_text(
        &self,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (u16, String) {
        let mut req = reqwest::Client::new().post(self.endpoint(path)).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }

    /// Introspects a token as the app; its `active`.
    pub async fn active(&self, token: &str) -> bool {
        let (status, body) = self.post_form("token/introspect", &[("token", token)], Some(("app", APP_SECRET))).await;
        assert_eq!(status, 200, "{body}");
        body["active"].as_bool().unwrap_or_else(|| panic!("no active: {body}"))
    }

    /// Whether the browser's next sign-in to the app is answered from its
    /// Federa session (true) or has to go upstream (false).
    pub async fn has_sso(&self, browser: &Browser) -> bool {
        let app = self.app().await;
        let (page, _, _) = self.authorize(browser, &app, APP_CB, &[], &[]).await;
        assert!(query_params(&page.url).contains_key("code"), "signs in either way: {:#?}", page.hops);
        !page.hops.iter().any(|h| h.starts_with(&self.node.issuer))
    }

    /// What a `prompt=none` sign-in of the app answers: `Ok(code)` or
    /// `Err(error)`.
    pub async fn silent(&self, browser: &Browser) -> Result<String, String> {
        let app = self.app().await;
        let (page, _, _) = self.authorize(browser, &app, APP_CB, &[], &[("prompt", "none")]).await;
        let params = query_params(&page.url);
        match (params.get("code"), params.get("error")) {
            (Some(code), _) => Ok(code.clone()),
            (None, Some(error)) => Err(error.clone()),
            (None, None) => panic!("neither code nor error: {:#?}\n{}", page.hops, page.body),
        }
    }

    /// An admin API call under the realm (`path` after `/admin/realms/e2e/`,
    /// may be empty); the status and the JSON body (Null when empty).
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let path = if path.is_empty() { format!("/{REALM}") } else { format!("/{REALM}/{path}") };
        let r = self.admin_response(method, &path, body).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// An admin API call under `/admin/realms` (`path` empty, or starting
    /// with `/`: other realms too); the response as it came, headers and all.
    pub async fn admin_response(&self, method: reqwest::Method, path: &str, body: Value) -> reqwest::Response {
        let mut req =
            reqwest::Client::new().request(method, format!("{}{path}", self.fed.admin())).bearer_auth(ADMIN_TOKEN);
        if !body.is_null() {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    /// The realm's users, as the admin API lists them.
    pub async fn users(&self) -> Vec<Value> {
        let (status, body) = self.admin(reqwest::Method::GET, "users", Value::Null).await;
        assert_eq!(status, 200, "{body}");
        body.as_array().cloned().unwrap_or_default()
    }

    /// Whether the browser holds a Federa session cookie.
    pub fn has_cookie(&self, browser: &Browser) -> bool {
        browser.cookies(&format!("{}/", self.issuer())).unwrap_or_default().contains("FEDERA_SESSION=")
    }

    /// The stored SSO session record of a public sid.
    pub async fn record(&self, sid: &str) -> Option<Value> {
        let json = self.sessions.get(&format!("sso:{REALM}:{sid}")).await.unwrap()?;
        Some(serde_json::from_str(&json).unwrap())
    }
}
