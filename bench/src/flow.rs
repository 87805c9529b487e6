//! One brokered sign-in and one code exchange as an application and a
//! browser make them, plus the admin set-up of the realm they run in.
//!
//! Each sign-in has a fresh, empty `reqwest::cookie::Jar` of its own, which
//! the harness applies by hand: the `Cookie` header of every request comes
//! from the jar, and every response's `Set-Cookie` headers go into it (paths,
//! expiry and removal as a browser would). Redirects are followed by hand.

use std::time::Duration;

use federa_tests::bad_idp::BadIdp;
use federa_tests::upstream::NodeIdp;
use reqwest::cookie::CookieStore as _;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{json, Value};

use crate::util::{http_error, pkce, query_param, random_b64, short, snippet};
use crate::verify::TokenCheck;
use crate::{ADMIN_TOKEN, APP, APP_CB, APP_SECRET, FAST_ALIAS, NODE_ALIAS, REALM, SCOPE};

const FAST_SECRET: &str = "bench-fast-upstream-secret-5e0b";
const NODE_SECRET: &str = "bench-node-upstream-secret-7a4c19e2d05b";
pub const UPSTREAM_CLIENT: &str = "federa";
/// How many requests one sign-in may make before it counts as failed.
const MAX_HOPS: usize = 20;

pub fn fast_upstream() -> BadIdp {
    BadIdp::start(federa_tests::bad_idp::Misbehaviour::None, UPSTREAM_CLIENT, FAST_SECRET)
}

pub fn node_upstream(callback: String) -> NodeIdp {
    NodeIdp::start(json!([{
        "client_id": UPSTREAM_CLIENT,
        "client_secret": NODE_SECRET,
        "redirect_uris": [callback],
        "token_endpoint_auth_method": "client_secret_basic",
    }]))
}

// ---------------------------------------------------------------------------
// Admin set-up.

async fn admin(http: &reqwest::Client, base: &str, path: &str, body: Value) {
    let url = format!("{base}/admin/realms{path}");
    let resp = http.post(&url).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert!((200..300).contains(&status), "POST {url}: {status} {text}");
}

pub async fn create_realm(http: &reqwest::Client, base: &str, fast: &BadIdp) {
    let realm = json!({
        "realm": REALM,
        "displayName": "Benchmark",
        "clients": [{"clientId": APP, "secret": APP_SECRET, "redirectUris": [APP_CB]}],
        "identityProviders": [{
            "alias": FAST_ALIAS, "displayName": "Fast upstream", "providerId": "oidc",
            "config": {
                "issuer": fast.issuer, "clientId": UPSTREAM_CLIENT, "clientSecret": FAST_SECRET,
                "clientAuthMethod": "client_secret_basic", "defaultScope": SCOPE, "loginHint": "true"
            }
        }]
    });
    admin(http, base, "", realm).await;
}

pub async fn add_node_idp(http: &reqwest::Client, base: &str, node: &NodeIdp) {
    let idp = json!({
        "alias": NODE_ALIAS, "displayName": "oidc-provider", "providerId": "oidc",
        "config": {
            "issuer": node.issuer, "clientId": UPSTREAM_CLIENT, "clientSecret": NODE_SECRET,
            "clientAuthMethod": "client_secret_basic", "defaultScope": SCOPE, "loginHint": "true"
        }
    });
    admin(http, base, &format!("/{REALM}/identity-provider/instances"), idp).await;
}

/// How many users the realm has (every brokered sign-in creates one).
pub async fn user_count(http: &reqwest::Client, base: &str) -> Option<usize> {
    let url = format!("{base}/admin/realms/{REALM}/users?briefRepresentation=true&max=1000000");
    let resp = http.get(&url).bearer_auth(ADMIN_TOKEN).send().await.ok()?;
    let users: Value = resp.json().await.ok()?;
    users.as_array().map(Vec::len)
}

// ---------------------------------------------------------------------------
// One sign-in.

/// What every sign-in needs to know.
pub struct Target {
    /// `{federa}/realms/bench`.
    pub issuer: String,
    pub auth: String,
    token: String,
    /// The realm's JWK Set.
    pub certs: String,
}

/// One authorization request of the app, and what it must remember.
pub struct AuthRequest {
    pub url: String,
    pub state: String,
    pub verifier: String,
    pub nonce: String,
}

impl Target {
    pub fn new(federa: &str) -> Target {
        let issuer = format!("{federa}/realms/{REALM}");
        Target {
            auth: format!("{issuer}/protocol/openid-connect/auth"),
            token: format!("{issuer}/protocol/openid-connect/token"),
            certs: format!("{issuer}/protocol/openid-connect/certs"),
            issuer,
        }
    }

    /// The token endpoint.
    pub fn token_url(&self) -> &str {
        &self.token
    }

    pub fn endpoint(&self, alias: &str) -> String {
        format!("{}/broker/{alias}/endpoint", self.issuer)
    }

    /// An authorization request for the app, with a fresh PKCE pair, state and nonce.
    pub fn auth_request(&self, idp_hint: Option<&str>, login_hint: Option<&str>) -> AuthRequest {
        let (verifier, challenge) = pkce();
        let state = random_b64(16);
        let nonce = random_b64(16);
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", APP)
            .append_pair("redirect_uri", APP_CB)
            .append_pair("response_type", "code")
            .append_pair("scope", SCOPE)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(h) = idp_hint {
            q.append_pair("kc_idp_hint", h);
        }
        if let Some(h) = login_hint {
            q.append_pair("login_hint", h);
        }
        AuthRequest { url: format!("{}?{}", self.auth, q.finish()), state, verifier, nonce }
    }
}

/// The per-VU client: keep-alive connections, no cookie store, no redirects.
pub fn vu_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .user_agent("federa-bench/1")
        .build()
        .unwrap()
}

/// GETs `url` and follows redirects by hand with the sign-in's own cookie
/// jar, until a URL that starts with [`APP_CB`] (not requested). Returns the
/// requested URLs and the app's callback URL.
async fn navigate(
    client: &reqwest::Client,
    jar: &reqwest::cookie::Jar,
    start: &str,
) -> Result<(Vec<String>, url::Url), String> {
    let mut hops: Vec<String> = Vec::new();
    let mut current = url::Url::parse(start).map_err(|e| format!("{start}: {e}"))?;
    loop {
        if current.as_str().starts_with(APP_CB) {
            return Ok((hops, current));
        }
        if hops.len() >= MAX_HOPS {
            return Err(format!("no redirect to the app after {MAX_HOPS} requests (last {})", short(current.as_str())));
        }
        hops.push(current.to_string());
        let mut req = client.get(current.clone());
        if let Some(cookies) = jar.cookies(&current) {
            req = req.header(COOKIE, cookies);
        }
        let resp = req.send().await.map_err(|e| format!("GET {}: {}", short(current.as_str()), http_error(e)))?;
        let status = resp.status().as_u16();
        let mut set = resp.headers().get_all(SET_COOKIE).iter();
        jar.set_cookies(&mut set, &current);
        let location = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        // Read to the end, so the connection goes back to the pool.
        let body = resp.text().await.unwrap_or_default();
        match (status, location) {
            (300..=399, Some(loc)) => {
                current = current.join(&loc).map_err(|e| format!("bad Location {loc:?}: {e}"))?;
            }
            _ => return Err(format!("GET {}: {status} {}", short(current.as_str()), snippet(&body))),
        }
    }
}

/// Reads the code from the app's callback, checking state and iss.
pub fn code_from(callback: &url::Url, state: &str, issuer: &str) -> Result<String, String> {
    if let Some(e) = query_param(callback, "error") {
        let d = query_param(callback, "error_description").unwrap_or_default();
        return Err(format!("the app received error={e} ({d})"));
    }
    if query_param(callback, "state").as_deref() != Some(state) {
        return Err("the app received a wrong state".into());
    }
    if query_param(callback, "iss").as_deref() != Some(issuer) {
        return Err("the app received a wrong iss".into());
    }
    query_param(callback, "code").ok_or_else(|| "the app received no code".into())
}

/// The token request of the app; checks for a 200 with an ID token and an
/// access token, and hands them to `check` (which verifies a sample).
pub async fn exchange(
    client: &reqwest::Client,
    target: &Target,
    code: &str,
    verifier: &str,
    nonce: &str,
    check: &TokenCheck,
) -> Result<(), String> {
    let resp = client
        .post(&target.token)
        .basic_auth(APP, Some(APP_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", APP_CB),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .map_err(|e| format!("POST token: {}", http_error(e)))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| format!("POST token: reading the body: {e}"))?;
    if status != 200 {
        return Err(format!("POST token: {status} {}", snippet(&String::from_utf8_lossy(&body))));
    }
    let json: Value = serde_json::from_slice(&body).map_err(|e| format!("POST token: not JSON: {e}"))?;
    let (Some(id_token), Some(access_token)) = (json["id_token"].as_str(), json["access_token"].as_str()) else {
        return Err("POST token: 200 without id_token and access_token".into());
    };
    check.sample(id_token, access_token, nonce)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Fast,
    Node,
}

/// One full brokered sign-in of a new user, with a fresh cookie jar:
/// Federa auth → upstream → Federa callback → app (code) → token.
pub async fn brokered_login(
    client: &reqwest::Client,
    target: &Target,
    upstream: Upstream,
    upstream_issuer: &str,
    login_hint: &str,
    check: &TokenCheck,
) -> Result<reqwest::cookie::Jar, String> {
    let alias = match upstream {
        Upstream::Fast => FAST_ALIAS,
        Upstream::Node => NODE_ALIAS,
    };
    let jar = reqwest::cookie::Jar::default();
    let req = target.auth_request(Some(alias), Some(login_hint));
    let (hops, callback) = navigate(client, &jar, &req.url).await?;
    let endpoint = target.endpoint(alias);
    let route_ok = match upstream {
        // Federa auth → upstream /authorize → Federa callback, nothing else.
        Upstream::Fast => {
            hops.len() == 3
                && hops[1].starts_with(&format!("{upstream_issuer}/authorize"))
                && hops[2].starts_with(&endpoint)
        }
        // Through oidc-provider's interaction redirects, then the callback.
        Upstream::Node => {
            hops.len() >= 3
                && hops[1].starts_with(upstream_issuer)
                && hops.last().is_some_and(|h| h.starts_with(&endpoint))
        }
    };
    if !route_ok {
        let path: Vec<String> = hops.iter().map(|h| short(h)).collect();
        return Err(format!("unexpected redirect chain: {}", path.join(" → ")));
    }
    let code = code_from(&callback, &req.state, &target.issuer)?;
    exchange(client, target, &code, &req.verifier, &req.nonce, check).await?;
    Ok(jar)
}
