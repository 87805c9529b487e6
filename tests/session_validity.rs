//! A session is only as good as what it came from, end to end against the
//! real upstream (node oidc-provider) and, for an upstream that ignores
//! `prompt=login`, the misbehaving one: a provider disabled, a user unlinked
//! or disabled ends the SSO session at its next reuse (prompt=none answers
//! `login_required`, its access token stops opening userinfo); a new sign-in
//! in the same browser ends the session it replaces; a client's `max_age`
//! never yields a code without a fresh upstream authentication, whatever
//! `passMaxAge`; and the tokens of a code presented twice stop working
//! (RFC 6749 section 4.1.2).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use federa_tests::bad_idp::{BadIdp, Misbehaviour};
use federa_tests::browser::{query_params, Browser};
use federa_tests::world::{claims_of, Tokens, World, APP_CB, APP_SECRET, REALM};
use reqwest::Method;
use serde_json::{json, Value};

/// The public sid of a sign-in's session.
fn sid(tokens: &Tokens) -> String {
    tokens.id_claims()["sid"].as_str().expect("a sid").to_owned()
}

/// The one user's id.
async fn user_id(w: &World) -> String {
    let users = w.users().await;
    assert_eq!(users.len(), 1, "{users:?}");
    users[0]["id"].as_str().unwrap().to_owned()
}

/// Signs in, checks the session answers prompt=none, applies `change`, and
/// checks that the session is then refused and ended.
async fn session_ends_after(change: impl AsyncFnOnce(&World)) {
    let w = World::builder().start_sqlite().await;
    let browser = Browser::new();
    let tokens = w.sign_in(&browser).await;
    assert!(w.silent(&browser).await.is_ok(), "the session answers prompt=none");

    change(&w).await;

    assert_eq!(w.silent(&browser).await, Err("login_required".to_owned()));
    assert!(w.record(&sid(&tokens)).await.is_none(), "the session was ended");
    assert_eq!(w.userinfo(&tokens.access_token).await, 401, "its access token no longer opens userinfo");
    assert!(!w.active(&tokens.access_token).await, "nor introspects active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_the_provider_ends_its_sessions_at_their_next_use() {
    session_ends_after(async |w: &World| {
        let path = "identity-provider/instances/node";
        let (status, mut idp) = w.admin(Method::GET, path, Value::Null).await;
        assert_eq!(status, 200, "{idp}");
        idp["enabled"] = json!(false);
        let (status, body) = w.admin(Method::PUT, path, idp).await;
        assert_eq!(status, 204, "{body}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlinking_the_user_ends_their_sessions_at_their_next_use() {
    session_ends_after(async |w: &World| {
        let id = user_id(w).await;
        let (status, body) = w.admin(Method::DELETE, &format!("users/{id}/federated-identity/node"), Value::Null).await;
        assert_eq!(status, 204, "{body}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_the_user_ends_their_sessions_at_their_next_use() {
    session_ends_after(async |w: &World| {
        let id = user_id(w).await;
        let (status, mut user) = w.admin(Method::GET, &format!("users/{id}"), Value::Null).await;
        assert_eq!(status, 200, "{user}");
        user["enabled"] = json!(false);
        let (status, body) = w.admin(Method::PUT, &format!("users/{id}"), user).await;
        assert_eq!(status, 204, "{body}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sign_in_in_the_browser_ends_the_session_it_replaces() {
    let w = World::builder().start_sqlite().await;
    let browser = Browser::new();
    let first = w.sign_in(&browser).await;
    // prompt=login goes upstream again despite the session; its answer opens
    // a new session, which takes the browser's cookie.
    let app = w.app().await;
    let (page, verifier, nonce) = w.authorize(&browser, &app, APP_CB, &[], &[("prompt", "login")]).await;
    assert!(page.hops.iter().any(|h| h.starts_with(&w.node.issuer)), "went upstream: {:#?}", page.hops);
    let second = w.redeem(&app, &page, verifier, &nonce).await;
    assert_ne!(sid(&first), sid(&second), "a new session");

    assert!(w.record(&sid(&first)).await.is_none(), "the replaced session ended");
    assert_eq!(w.userinfo(&first.access_token).await, 401);
    assert!(w.record(&sid(&second)).await.is_some());
    assert_eq!(w.userinfo(&second.access_token).await, 200);
    assert!(w.silent(&browser).await.is_ok(), "the new session answers");
}

/// Makes the SSO session look as if its user authenticated `age` seconds
/// earlier; returns the new auth_time.
async fn age_session(w: &World, tokens: &Tokens, age: i64) -> i64 {
    let key = format!("sso:{REALM}:{}", sid(tokens));
    let mut sso: Value = serde_json::from_str(&w.sessions.get(&key).await.unwrap().unwrap()).unwrap();
    let old = sso["auth_time"].as_i64().unwrap() - age;
    sso["auth_time"] = json!(old);
    w.sessions.put(&key, &sso.to_string(), std::time::Duration::from_secs(3600)).await.unwrap();
    old
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_older_than_the_session_always_authenticates_upstream_again() {
    for pass_max_age in ["false", "true"] {
        let w = World::builder().idp_config(json!({"passMaxAge": pass_max_age})).start_sqlite().await;
        let browser = Browser::new();
        let tokens = w.sign_in(&browser).await;
        let old = age_session(&w, &tokens, 1000).await;
        let app = w.app().await;
        let (page, verifier, nonce) = w.authorize(&browser, &app, APP_CB, &[], &[("max_age", "600")]).await;
        let upstream: Vec<&String> = page.hops.iter().filter(|h| h.starts_with(&w.node.issuer)).collect();
        assert!(!upstream.is_empty(), "passMaxAge={pass_max_age}: the upstream was visited: {:#?}", page.hops);
        let fresh = w.redeem(&app, &page, verifier, &nonce).await;
        let auth_time = claims_of(&fresh.id_token)["auth_time"].as_i64().unwrap();
        assert!(auth_time > old + 600, "passMaxAge={pass_max_age}: auth_time {auth_time} within max_age");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_auth_time_older_than_max_age_is_refused_to_the_app() {
    let bad = BadIdp::start(Misbehaviour::StaleAuthTime, "federa", "bad-secret-123");
    let w = World::builder().start_sqlite().await;
    for (alias, pass_max_age) in [("stale", "false"), ("stale-told", "true")] {
        let idp = json!({"alias": alias, "providerId": "oidc", "config": {
            "issuer": bad.issuer, "clientId": "federa", "clientSecret": "bad-secret-123",
            "clientAuthMethod": "client_secret_basic", "passMaxAge": pass_max_age,
            "acceptsPromptNoneForwardFromClient": "true"}});
        let (status, body) = w.admin(Method::POST, "identity-provider/instances", idp).await;
        assert_eq!(status, 201, "{body}");
    }
    let app = w.app().await;
    for alias in ["stale", "stale-told"] {
        for prompt in [None, Some("none")] {
            let mut extra = vec![("kc_idp_hint", alias), ("max_age", "600")];
            extra.extend(prompt.map(|p| ("prompt", p)));
            let browser = Browser::new();
            let (page, _, _) = w.authorize(&browser, &app, APP_CB, &[], &extra).await;
            let p = query_params(&page.url);
            assert!(page.url.starts_with(APP_CB), "{alias} {prompt:?}: to the app: {:#?}", page.hops);
            assert!(page.hops.iter().any(|h| h.starts_with(&bad.issuer)), "{alias} {prompt:?}: went upstream");
            assert_eq!(p.get("code"), None, "{alias} {prompt:?}: no code: {:#?}", page.hops);
            assert_eq!(p.get("error").map(String::as_str), Some("login_required"), "{alias} {prompt:?}");
            assert!(!w.has_cookie(&browser), "{alias} {prompt:?}: no session");
        }
        // Without max_age the same provider signs the user in.
        let browser = Browser::new();
        let (page, _, _) = w.authorize(&browser, &app, APP_CB, &[], &[("kc_idp_hint", alias)]).await;
        assert!(query_params(&page.url).contains_key("code"), "{alias}: {:#?}", page.hops);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tokens_of_a_code_presented_twice_stop_working() {
    let w = World::builder().start_sqlite().await;
    let browser = Browser::new();
    let app = w.app().await;
    let (page, verifier, _) = w.authorize(&browser, &app, APP_CB, &[], &[]).await;
    let code = query_params(&page.url).get("code").cloned().expect("a code");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", APP_CB),
        ("code_verifier", verifier.secret().as_str()),
    ];
    let (status, body) = w.post_form("token", &form, Some(("app", APP_SECRET))).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert!(w.active(&access).await);
    assert!(w.active(&refresh).await);
    assert_eq!(w.userinfo(&access).await, 200);

    let (status, body) = w.post_form("token", &form, Some(("app", APP_SECRET))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert!(!w.active(&access).await, "the first use's access token is revoked");
    assert_eq!(w.userinfo(&access).await, 401);
    assert!(!w.active(&refresh).await, "the first use's refresh token is revoked");
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
    let (status, body) = w.post_form("token", &form, Some(("app", APP_SECRET))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
}
