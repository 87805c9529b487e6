//! Identity-provider options that shape the upstream request and the login
//! page, end to end against the real upstream (node oidc-provider):
//! `loginHint`, `uiLocales` and `forwardParameters` travel upstream only
//! when configured, and a nonce unless `disableNonce`; `filteredByClaim` answers a `prompt=none` request with
//! `access_denied` and creates nothing; `guiOrder`, `displayName`,
//! `hideOnLoginPage` and `enabled` decide what the login page lists and
//! which hints work.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use federa_broker::SessionStore;

use federa_tests::browser::{links, query_params, Browser, Page};
use federa_tests::world::{World, ALIAS, APP_CB, REALM};
use federa_tests::{TestDb, ADMIN_TOKEN};
use serde_json::{json, Value};

/// Changes keys of the node provider's config through the admin API (an
/// empty string unsets a key).
async fn set_config(w: &World, changes: Value) {
    let (status, mut idp) =
        w.admin(reqwest::Method::GET, &format!("identity-provider/instances/{ALIAS}"), Value::Null).await;
    assert_eq!(status, 200);
    for (k, v) in changes.as_object().unwrap() {
        idp["config"][k] = v.clone();
    }
    let (status, body) = w.admin(reqwest::Method::PUT, &format!("identity-provider/instances/{ALIAS}"), idp).await;
    assert_eq!(status, 204, "{body}");
}

/// A sign-in of the app in `browser` with `extra` parameters; where it
/// ended and the query of the request Federa sent to the node upstream.
async fn attempt(w: &World, browser: &Browser, extra: &[(&str, &str)]) -> (Page, BTreeMap<String, String>) {
    let app = w.app().await;
    let (page, _, _) = w.authorize(browser, &app, APP_CB, &["email"], extra).await;
    let upstream =
        page.hops.iter().find(|h| h.starts_with(&w.node.url("/auth"))).map(|h| query_params(h)).unwrap_or_default();
    (page, upstream)
}

fn code(page: &Page) -> bool {
    page.url.starts_with(APP_CB) && query_params(&page.url).contains_key("code")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_hint_ui_locales_and_forwarded_parameters_travel_only_when_configured() {
    let w = World::builder()
        .idp_config(json!({"loginHint": "true", "uiLocales": "true", "forwardParameters": "x_tenant, acr_values"}))
        .realm(json!({"defaultLocale": "de-CH"}))
        .start_sqlite()
        .await;
    let extra = [("login_hint", "carol"), ("ui_locales", "fr-CA de"), ("x_tenant", "t-42"), ("x_other", "kept-here")];
    let (page, up) = attempt(&w, &Browser::new(), &extra).await;
    assert!(code(&page), "{:#?}", page.hops);
    assert_eq!(up.get("login_hint").map(String::as_str), Some("carol"), "{up:?}");
    assert_eq!(up.get("ui_locales").map(String::as_str), Some("fr-CA de"), "{up:?}");
    assert_eq!(up.get("x_tenant").map(String::as_str), Some("t-42"), "{up:?}");
    assert!(!up.contains_key("x_other") && !up.contains_key("acr_values"), "only what is listed and sent: {up:?}");
    assert!(w.users().await.iter().any(|u| u["username"] == "carol"), "the upstream signed carol in");
    assert!(up.get("nonce").is_some_and(|n| n.len() >= 16), "a nonce by default: {up:?}");
    // Without the app's preference, the realm's locale.
    let (page, up) = attempt(&w, &Browser::new(), &[]).await;
    assert!(code(&page), "{:#?}", page.hops);
    assert_eq!(up.get("ui_locales").map(String::as_str), Some("de-CH"), "{up:?}");

    set_config(
        &w,
        json!({"loginHint": "false", "uiLocales": "false", "forwardParameters": "", "disableNonce": "true"}),
    )
    .await;
    let (page, up) = attempt(&w, &Browser::new(), &extra).await;
    assert!(code(&page), "signs in without a nonce: {:#?}", page.hops);
    assert!(!up.is_empty(), "the upstream request was seen: {:#?}", page.hops);
    for name in ["login_hint", "ui_locales", "x_tenant", "x_other", "nonce"] {
        assert!(!up.contains_key(name), "{name} is not sent when not configured: {up:?}");
    }
}

/// The node provider forwarding prompt=none, filtering on an email domain its users lack.
fn filtered() -> federa_tests::world::Builder {
    World::builder().idp_config(json!({
        "acceptsPromptNoneForwardFromClient": "true",
        "filteredByClaim": "true", "claimFilterName": "email", "claimFilterValue": ".*@partner\\.test",
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_claim_answers_prompt_none_with_access_denied_and_creates_nothing() {
    prompt_none_refused(filtered().start_sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_claim_with_prompt_none_on_postgres() {
    let Some(db) = TestDb::postgres("idp_options::a_filtered_claim_with_prompt_none_on_postgres") else { return };
    let store = db.store();
    let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
    prompt_none_refused(filtered().start(db, store, sessions).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_claim_with_prompt_none_with_sessions_on_redis() {
    let test = "idp_options::a_filtered_claim_with_prompt_none_with_sessions_on_redis";
    let Some(redis) = federa_tests::redis_sessions(test).await else { return };
    let db = TestDb::sqlite();
    let store = db.store();
    prompt_none_refused(filtered().start(db, store, Arc::new(redis)).await).await;
}

async fn prompt_none_refused(w: World) {
    let browser = Browser::new();
    // An interactive attempt: refused with a page, and the upstream keeps its session.
    let (page, _) = attempt(&w, &browser, &[]).await;
    assert!(!code(&page) && page.body.contains("not permitted"), "{:#?}\n{}", page.hops, page.body);

    let (page, up) = attempt(&w, &browser, &[("prompt", "none")]).await;
    assert_eq!(up.get("prompt").map(String::as_str), Some("none"), "prompt=none went upstream: {:#?}", page.hops);
    let answer = query_params(&page.url);
    assert!(page.url.starts_with(APP_CB), "answered to the app: {:#?}", page.hops);
    assert_eq!(answer.get("error").map(String::as_str), Some("access_denied"), "{answer:?}");
    assert!(!answer.contains_key("code"));
    assert_eq!(answer.get("iss"), Some(&w.issuer()));
    assert!(w.users().await.is_empty(), "nothing created");
    assert!(!w.has_cookie(&browser), "no session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_follows_gui_order_display_name_hide_on_login_page_and_enabled() {
    let w = World::start(TestDb::sqlite()).await;
    let add = |alias: &str, top: Value, config: Value| {
        let mut idp = json!({"alias": alias, "providerId": "oidc", "config": {
            "clientId": "federa", "issuer": format!("http://{alias}.test"),
            "authorizationUrl": format!("http://{alias}.test/auth"), "tokenUrl": format!("http://{alias}.test/token")}});
        for (k, v) in top.as_object().unwrap() {
            idp[k] = v.clone();
        }
        for (k, v) in config.as_object().unwrap() {
            idp["config"][k] = v.clone();
        }
        let url = format!("{}/{REALM}/identity-provider/instances", w.fed.admin());
        async move {
            let r = reqwest::Client::new().post(url).bearer_auth(ADMIN_TOKEN).json(&idp).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 201);
        }
    };
    // Aliases in the opposite order of guiOrder, so that sorting by alias fails.
    add("aaa", json!({"displayName": "Zeta Provider"}), json!({"guiOrder": "9"})).await;
    add("zzz", json!({"displayName": "Alpha Provider"}), json!({"guiOrder": "0"})).await;
    add("hidden", json!({"displayName": "Hidden Provider"}), json!({"hideOnLoginPage": "true"})).await;
    add("off", json!({"displayName": "Off Provider", "enabled": false}), json!({})).await;

    let (page, _) = attempt(&w, &Browser::new(), &[]).await;
    assert_eq!(page.status, 200, "the login page: {:#?}", page.hops);
    let names: Vec<String> = links(&page.body).into_iter().map(|(_, text)| text.trim().to_owned()).collect();
    let at = |name: &str| names.iter().position(|n| n.contains(name));
    let (alpha, zeta, node) = (at("Alpha Provider"), at("Zeta Provider"), at("Node IdP"));
    assert!(alpha.is_some() && zeta.is_some() && node.is_some(), "{names:?}");
    assert!(alpha < zeta && zeta < node, "by guiOrder, then unordered ones: {names:?}");
    assert!(!names.iter().any(|n| n == "aaa" || n == "zzz"), "display names, not aliases: {names:?}");
    assert!(at("Hidden").is_none() && at("Off").is_none(), "{names:?}");
    assert!(!page.body.contains("/broker/off/") && !page.body.contains("/broker/hidden/"));

    // A hint reaches a hidden provider, never a disabled one.
    let auth = |hint: &str| {
        format!(
            "{}?client_id=app&redirect_uri={}&response_type=code&scope=openid&state=s&kc_idp_hint={hint}",
            w.endpoint("auth"),
            url::form_urlencoded::byte_serialize(APP_CB.as_bytes()).collect::<String>()
        )
    };
    let page = Browser::new().navigate(&auth("hidden"), "http://hidden.test/").await;
    assert!(page.url.starts_with("http://hidden.test/auth?"), "{:#?}", page.hops);
    let page = Browser::new().navigate(&auth("off"), APP_CB).await;
    assert_eq!(query_params(&page.url).get("error").map(String::as_str), Some("invalid_request"), "{:#?}", page.hops);

    // Nor through the login page's link.
    let browser = Browser::new();
    let (page, _) = attempt(&w, &browser, &[]).await;
    let (link, _) = links(&page.body).into_iter().find(|(_, t)| t.contains("Alpha Provider")).unwrap();
    let page = browser.navigate(&link.replace("/broker/zzz/", "/broker/off/"), "http://off.test/").await;
    assert!(page.body.contains("Unknown identity provider"), "{:#?}\n{}", page.hops, page.body);
    let page = browser.navigate(&link.replace("/broker/zzz/", "/broker/hidden/"), "http://hidden.test/").await;
    assert!(
        page.url.starts_with("http://hidden.test/auth?"),
        "the same flow works with a hidden one: {:#?}",
        page.hops
    );
}
