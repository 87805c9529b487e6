//! OIDC Core 3.1.2.1 `prompt` and `max_age` through the broker, end to end
//! against the real upstream (node oidc-provider, which signs in as the
//! `login_hint`, default alice, and keeps its own session cookie in the
//! test's browser): `prompt=none` answered by Federa or forwarded upstream
//! (`acceptsPromptNoneForwardFromClient`), the upstream's own answer passed
//! to the app, `prompt=login`, `max_age` with and without `passMaxAge`, the
//! `auth_time` of Federa's ID token, and the provider's configured `prompt`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use federa_broker::flow::state::sso_key_public;
use federa_tests::browser::{query_params, Browser};
use federa_tests::world::{Authorization, World, APP_CB, REALM};
use serde_json::{json, Value};

/// The world with the node provider configured with `idp_config` on top of
/// the basics and `syncMode` FORCE.
async fn start(idp_config: Value) -> World {
    World::builder().idp_config(json!({"syncMode": "FORCE"})).idp_config(idp_config).start_sqlite().await
}

/// What the upstream saw of one authorization request through the app.
trait Upstream {
    /// The upstream authorization requests among the hops, parsed.
    fn upstream_requests(&self, w: &World) -> Vec<BTreeMap<String, String>>;
    /// The one upstream authorization request, or a failure naming the hops.
    fn upstream_request(&self, w: &World) -> BTreeMap<String, String>;
    /// The parameters of the upstream's answer at Federa's endpoint.
    fn upstream_callback(&self) -> BTreeMap<String, String>;
    /// Whether the upstream showed its sign-in or consent interaction (it
    /// authenticated the user again rather than answering from its session).
    fn upstream_interacted(&self, w: &World) -> bool;
}

impl Upstream for Authorization {
    fn upstream_requests(&self, w: &World) -> Vec<BTreeMap<String, String>> {
        let auth = w.node.url("/auth");
        self.page.hops.iter().filter(|h| h.starts_with(&format!("{auth}?"))).map(|h| query_params(h)).collect()
    }

    fn upstream_request(&self, w: &World) -> BTreeMap<String, String> {
        let all = self.upstream_requests(w);
        assert_eq!(all.len(), 1, "one upstream authorization request: {:#?}", self.page.hops);
        all.into_iter().next().unwrap()
    }

    fn upstream_callback(&self) -> BTreeMap<String, String> {
        let endpoint = format!("/realms/{REALM}/broker/node/endpoint");
        let hop = self.page.hops.iter().find(|h| h.contains(&endpoint));
        query_params(hop.unwrap_or_else(|| panic!("no answer from the upstream: {:#?}", self.page.hops)))
    }

    fn upstream_interacted(&self, w: &World) -> bool {
        self.page.hops.iter().any(|h| h.starts_with(&w.node.url("/interaction/")))
    }
}

/// The app's authorization request (PKCE, nonce, state) with `extra`
/// parameters, followed by `browser` until it reaches the app.
async fn authorize(w: &World, browser: &Browser, extra: &[(&str, &str)]) -> Authorization {
    w.authorization(browser, &w.app().await, APP_CB, &[], extra).await
}

/// Redeems the attempt's code with the client library and returns the
/// claims of Federa's ID token (verified by the library).
async fn id_token_claims(w: &World, attempt: Authorization) -> Value {
    let p = attempt.params();
    assert_eq!(p.get("state").map(String::as_str), Some(attempt.state.secret().as_str()));
    assert_eq!(p.get("iss").map(String::as_str), Some(w.issuer().as_str()));
    assert!(p.contains_key("code"), "no code at the app: {:#?}", attempt.page.hops);
    let tokens = w.redeem(&w.app().await, &attempt.page, attempt.verifier, &attempt.nonce).await;
    Value::Object(tokens.id_claims())
}

/// A full sign-in through the upstream; returns Federa's ID token claims.
async fn sign_in(w: &World, browser: &Browser) -> Value {
    let attempt = authorize(w, browser, &[]).await;
    assert!(attempt.page.url.starts_with(APP_CB), "signed in: {:#?}", attempt.page.hops);
    assert!(attempt.upstream_interacted(w), "a first sign-in goes through the upstream: {:#?}", attempt.page.hops);
    id_token_claims(w, attempt).await
}

/// The store key of the SSO session a token's `sid` names.
fn session_key(claims: &Value) -> String {
    sso_key_public(REALM, claims["sid"].as_str().expect("a sid claim"))
}

/// Ends Federa's SSO session only: the browser keeps its cookies, so the
/// upstream's session lives on.
async fn drop_federa_session(w: &World, claims: &Value) {
    let gone = w.sessions.take(&session_key(claims)).await.unwrap();
    assert!(gone.is_some(), "the session named by the ID token's sid was stored");
}

/// Makes Federa's SSO session look as if its user authenticated `age` seconds ago.
async fn age_federa_session(w: &World, claims: &Value, age: i64) -> i64 {
    let key = session_key(claims);
    let mut sso: Value = serde_json::from_str(&w.sessions.get(&key).await.unwrap().unwrap()).unwrap();
    let old = sso["auth_time"].as_i64().expect("auth_time in the session record") - age;
    sso["auth_time"] = json!(old);
    w.sessions.put(&key, &sso.to_string(), std::time::Duration::from_secs(3600)).await.unwrap();
    old
}

fn no_upstream_hop(w: &World, attempt: &Authorization) {
    assert!(
        !attempt.page.hops.iter().any(|h| h.starts_with(&w.node.issuer)),
        "went upstream: {:#?}",
        attempt.page.hops
    );
}

#[tokio::test]
async fn prompt_none_without_a_session_is_login_required_unless_the_provider_accepts_it() {
    let w = start(json!({})).await;
    let browser = Browser::new();

    // No session anywhere.
    let attempt = authorize(&w, &browser, &[("prompt", "none")]).await;
    let p = attempt.params();
    assert!(attempt.page.url.starts_with(APP_CB), "{:#?}", attempt.page.hops);
    assert_eq!(p.get("error").map(String::as_str), Some("login_required"), "{:#?}", attempt.page.hops);
    assert_eq!(p.get("state").map(String::as_str), Some(attempt.state.secret().as_str()));
    assert_eq!(p.get("iss").map(String::as_str), Some(w.issuer().as_str()));
    assert!(!p.contains_key("code"));
    no_upstream_hop(&w, &attempt);

    // The upstream has a session but Federa does not: the provider does not
    // accept a forwarded prompt=none, so still nothing goes upstream.
    let claims = sign_in(&w, &browser).await;
    drop_federa_session(&w, &claims).await;
    let attempt = authorize(&w, &browser, &[("prompt", "none"), ("kc_idp_hint", "node")]).await;
    assert_eq!(attempt.params().get("error").map(String::as_str), Some("login_required"), "{:#?}", attempt.page.hops);
    no_upstream_hop(&w, &attempt);
}

#[tokio::test]
async fn forwarded_prompt_none_returns_a_code_silently_while_the_upstream_has_a_session() {
    let w = start(json!({"acceptsPromptNoneForwardFromClient": "true"})).await;
    let browser = Browser::new();
    let first = sign_in(&w, &browser).await;
    drop_federa_session(&w, &first).await;

    let attempt = authorize(&w, &browser, &[("prompt", "none")]).await;
    assert!(attempt.page.url.starts_with(APP_CB), "{:#?}", attempt.page.hops);
    let up = attempt.upstream_request(&w);
    assert_eq!(up.get("prompt").map(String::as_str), Some("none"), "prompt=none travels upstream: {up:?}");
    assert!(!attempt.upstream_interacted(&w), "no sign-in page anywhere: {:#?}", attempt.page.hops);
    let claims = id_token_claims(&w, attempt).await;
    assert_eq!(claims["sub"], first["sub"], "the same user");
    assert_ne!(claims["sid"], first["sid"], "a new Federa session");

    // That new session now answers prompt=none by itself.
    let attempt = authorize(&w, &browser, &[("prompt", "none")]).await;
    assert!(attempt.params().contains_key("code"), "{:#?}", attempt.page.hops);
    no_upstream_hop(&w, &attempt);
}

#[tokio::test]
async fn forwarded_prompt_none_passes_the_upstreams_login_required_to_the_app() {
    let w = start(json!({"acceptsPromptNoneForwardFromClient": "true"})).await;
    let browser = Browser::new();

    let attempt = authorize(&w, &browser, &[("prompt", "none")]).await;
    assert!(attempt.page.url.starts_with(APP_CB), "{:#?}", attempt.page.hops);
    let up = attempt.upstream_request(&w);
    assert_eq!(up.get("prompt").map(String::as_str), Some("none"), "{up:?}");
    // The upstream answered login_required itself, at Federa's endpoint.
    let upstream_answer = attempt.upstream_callback();
    assert_eq!(upstream_answer.get("error").map(String::as_str), Some("login_required"), "{upstream_answer:?}");

    let p = attempt.params();
    assert_eq!(p.get("error").map(String::as_str), Some("login_required"), "{p:?}");
    assert_eq!(
        p.get("error_description"),
        upstream_answer.get("error_description"),
        "the upstream's description reaches the app"
    );
    assert_eq!(p.get("state").map(String::as_str), Some(attempt.state.secret().as_str()), "the app's state");
    assert_eq!(p.get("iss").map(String::as_str), Some(w.issuer().as_str()), "Federa's iss, not the upstream's");
    assert!(!p.contains_key("code"));
    assert!(!attempt.upstream_interacted(&w));
}

#[tokio::test]
async fn prompt_login_authenticates_upstream_again_despite_a_session() {
    let w = start(json!({})).await;
    let browser = Browser::new();
    let first = sign_in(&w, &browser).await;

    // The session answers a plain request without going upstream...
    let attempt = authorize(&w, &browser, &[]).await;
    no_upstream_hop(&w, &attempt);
    assert!(attempt.params().contains_key("code"));

    // ...but not prompt=login.
    let attempt = authorize(&w, &browser, &[("prompt", "login")]).await;
    assert!(attempt.page.url.starts_with(APP_CB), "{:#?}", attempt.page.hops);
    let up = attempt.upstream_request(&w);
    assert_eq!(up.get("prompt").map(String::as_str), Some("login"), "{up:?}");
    assert!(attempt.upstream_interacted(&w), "the upstream signed the user in again: {:#?}", attempt.page.hops);
    let claims = id_token_claims(&w, attempt).await;
    assert_eq!(claims["sub"], first["sub"]);
    assert!(claims["auth_time"].as_i64() >= first["auth_time"].as_i64());
}

#[tokio::test]
async fn max_age_reauthenticates_through_the_upstream() {
    let w = start(json!({})).await;
    let browser = Browser::new();
    let first = sign_in(&w, &browser).await;

    // A session younger than max_age answers at once.
    let attempt = authorize(&w, &browser, &[("max_age", "600")]).await;
    no_upstream_hop(&w, &attempt);
    let claims = id_token_claims(&w, attempt).await;
    assert_eq!(claims["auth_time"], first["auth_time"]);

    // An older one goes upstream. max_age is not passed (passMaxAge off), so
    // Federa asks the upstream for a new login: left to its session, the
    // upstream would answer with an auth_time the app did not accept.
    let old = age_federa_session(&w, &first, 1000).await;
    let attempt = authorize(&w, &browser, &[("max_age", "600")]).await;
    assert!(attempt.page.url.starts_with(APP_CB), "{:#?}", attempt.page.hops);
    let up = attempt.upstream_request(&w);
    assert_eq!(up.get("max_age"), None, "passMaxAge is off: {up:?}");
    assert_eq!(up.get("prompt").map(String::as_str), Some("login"), "{up:?}");
    assert!(attempt.upstream_interacted(&w), "{:#?}", attempt.page.hops);
    let claims = id_token_claims(&w, attempt).await;
    let auth_time = claims["auth_time"].as_i64().unwrap();
    assert!(auth_time >= first["auth_time"].as_i64().unwrap() && auth_time > old + 400, "{claims}");

    // max_age=0 always re-authenticates.
    let attempt = authorize(&w, &browser, &[("max_age", "0")]).await;
    assert_eq!(attempt.upstream_request(&w).get("prompt").map(String::as_str), Some("login"));
    assert!(attempt.params().contains_key("code"), "{:#?}", attempt.page.hops);
}

#[tokio::test]
async fn pass_max_age_forwards_max_age_and_the_upstreams_auth_time_is_kept() {
    let w = start(json!({"passMaxAge": "true"})).await;
    let browser = Browser::new();
    let first = sign_in(&w, &browser).await;
    let upstream_auth_time = first["auth_time"].as_i64().expect("auth_time in Federa's ID token");

    let old = age_federa_session(&w, &first, 1000).await;
    let attempt = authorize(&w, &browser, &[("max_age", "600")]).await;
    assert!(attempt.page.url.starts_with(APP_CB), "{:#?}", attempt.page.hops);
    let up = attempt.upstream_request(&w);
    assert_eq!(up.get("max_age").map(String::as_str), Some("600"), "passMaxAge forwards max_age: {up:?}");
    assert_eq!(up.get("prompt"), None, "the upstream judges max_age itself: {up:?}");
    // The upstream's session is younger than 600 s: it answers from it.
    assert!(!attempt.upstream_interacted(&w), "{:#?}", attempt.page.hops);
    let claims = id_token_claims(&w, attempt).await;
    // Told max_age, the upstream states its auth_time: the first sign-in's
    // (the node does not send one unasked, so Federa's first session took the
    // moment its answer arrived, at most a few seconds later).
    let auth_time = claims["auth_time"].as_i64().unwrap();
    assert!(auth_time <= upstream_auth_time && auth_time >= upstream_auth_time - 5, "{claims} vs {first}");
    assert!(auth_time > old + 400, "not the aged session's: {claims}");

    // The new Federa session carries that auth_time on: a later request answers from it.
    let attempt = authorize(&w, &browser, &[("max_age", "600")]).await;
    no_upstream_hop(&w, &attempt);
    let claims = id_token_claims(&w, attempt).await;
    assert_eq!(claims["auth_time"].as_i64(), Some(auth_time));
}

#[tokio::test]
async fn the_configured_prompt_is_sent_upstream() {
    let w = start(json!({"prompt": "consent"})).await;
    let browser = Browser::new();

    let attempt = authorize(&w, &browser, &[]).await;
    assert!(attempt.page.url.starts_with(APP_CB), "{:#?}", attempt.page.hops);
    let up = attempt.upstream_request(&w);
    assert_eq!(up.get("prompt").map(String::as_str), Some("consent"), "{up:?}");
    let first = id_token_claims(&w, attempt).await;

    // A client's prompt=login is added to it, not put in its place.
    let attempt = authorize(&w, &browser, &[("prompt", "login")]).await;
    let up = attempt.upstream_request(&w);
    let sent: Vec<&str> = up.get("prompt").map(|p| p.split(' ').collect()).unwrap_or_default();
    assert!(sent.contains(&"login") && sent.contains(&"consent"), "{up:?}");
    let claims = id_token_claims(&w, attempt).await;
    assert_eq!(claims["sub"], first["sub"]);
}

#[tokio::test]
async fn forwarded_prompt_none_honours_max_age_without_pass_max_age() {
    let w = start(json!({"acceptsPromptNoneForwardFromClient": "true"})).await;
    let browser = Browser::new();
    let first = sign_in(&w, &browser).await;
    drop_federa_session(&w, &first).await;

    // The upstream answers prompt=none from its session, not told max_age:
    // max_age=0 can never be met that way, so the app hears login_required.
    let attempt = authorize(&w, &browser, &[("prompt", "none"), ("max_age", "0")]).await;
    assert_eq!(attempt.upstream_request(&w).get("prompt").map(String::as_str), Some("none"));
    assert!(!attempt.upstream_interacted(&w), "{:#?}", attempt.page.hops);
    let p = attempt.params();
    assert_eq!(p.get("error").map(String::as_str), Some("login_required"), "{:#?}", attempt.page.hops);
    assert_eq!(p.get("state").map(String::as_str), Some(attempt.state.secret().as_str()));
    assert_eq!(p.get("iss").map(String::as_str), Some(w.issuer().as_str()));
    assert!(!p.contains_key("code"));

    // Within any max_age, an upstream that does not say when the user
    // signed in (the node sends no auth_time unless asked) cannot prove it:
    // still login_required, although the upstream sent a code.
    let attempt = authorize(&w, &browser, &[("prompt", "none"), ("max_age", "600")]).await;
    assert!(attempt.upstream_callback().contains_key("code"), "{:#?}", attempt.page.hops);
    assert_eq!(attempt.params().get("error").map(String::as_str), Some("login_required"), "{:#?}", attempt.page.hops);

    // Without max_age the same request signs in silently.
    let attempt = authorize(&w, &browser, &[("prompt", "none")]).await;
    assert!(attempt.params().contains_key("code"), "{:#?}", attempt.page.hops);
}

#[tokio::test]
async fn forwarded_prompt_none_with_pass_max_age_leaves_max_age_to_the_upstream() {
    let w = start(json!({"acceptsPromptNoneForwardFromClient": "true", "passMaxAge": "true"})).await;
    let browser = Browser::new();
    let first = sign_in(&w, &browser).await;
    drop_federa_session(&w, &first).await;

    // max_age=0: the upstream itself answers login_required.
    let attempt = authorize(&w, &browser, &[("prompt", "none"), ("max_age", "0")]).await;
    let up = attempt.upstream_request(&w);
    assert_eq!(
        (up.get("prompt").map(String::as_str), up.get("max_age").map(String::as_str)),
        (Some("none"), Some("0"))
    );
    assert_eq!(attempt.upstream_callback().get("error").map(String::as_str), Some("login_required"));
    assert_eq!(attempt.params().get("error").map(String::as_str), Some("login_required"), "{:#?}", attempt.page.hops);

    // Within max_age: a code, silently, carrying the upstream's auth_time.
    let attempt = authorize(&w, &browser, &[("prompt", "none"), ("max_age", "600")]).await;
    assert_eq!(attempt.upstream_request(&w).get("max_age").map(String::as_str), Some("600"));
    assert!(!attempt.upstream_interacted(&w), "{:#?}", attempt.page.hops);
    let claims = id_token_claims(&w, attempt).await;
    let first_time = first["auth_time"].as_i64().unwrap();
    let auth_time = claims["auth_time"].as_i64().unwrap();
    assert!(auth_time <= first_time && auth_time >= first_time - 5, "{claims} vs {first}");
}
