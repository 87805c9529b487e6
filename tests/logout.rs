//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) end to end:
//! a real upstream (node oidc-provider), Federa on a real socket, a
//! cookie-keeping browser and the app driven by the `openidconnect` client
//! library to sign in. What is checked after a logout is what a user or an
//! attacker would see: where the browser goes, whether the old access token
//! still opens userinfo, and whether the next sign-in has to go upstream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use federa_broker::KeyStore;
use federa_tests::browser::{forms, query_params, Browser, Page};
use federa_tests::on_both;
use federa_tests::world::{claims_of, World, APP_BYE, APP_CB, REALM, SPA_BYE};
use federa_tests::TestDb;
use serde_json::{json, Value};

/// The hidden field of Federa's confirmation form.
const CONFIRM_FIELD: &str = "federa_confirm";

/// The realm's logout endpoint with `params`.
fn logout_url(w: &World, params: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    format!("{}?{query}", w.endpoint("logout"))
}

/// Signs the browser in to the app; returns the ID token and the access token.
async fn sign_in(w: &World, browser: &Browser) -> (String, String) {
    let tokens = w.sign_in(browser).await;
    (tokens.id_token, tokens.access_token)
}

/// The confirmation page's form: its action and one-time token.
fn confirmation(page: &Page) -> (String, String) {
    assert_eq!(page.status, 200, "{:#?}\n{}", page.hops, page.body);
    assert!(page.body.contains("Sign out of End to end?"), "{}", page.body);
    let form = forms(&page.body).into_iter().next().unwrap_or_else(|| panic!("no form: {}", page.body));
    assert_eq!(form.method, "post");
    let token = form.field(CONFIRM_FIELD).unwrap_or_else(|| panic!("no token: {}", page.body)).to_owned();
    assert!(token.len() >= 32, "{token}");
    (form.action, token)
}

/// The error page a refused logout shows: no redirect, and what it says.
fn assert_refused(page: &Page, says: &str) {
    assert_eq!(page.status, 400, "{:#?}\n{}", page.hops, page.body);
    assert!(page.location.is_none(), "never a redirect: {:?}", page.location);
    assert!(!page.hops.iter().any(|h| h.contains(".test/")), "went to an app: {:#?}", page.hops);
    assert!(page.body.contains(says), "{says:?} not in {}", page.body);
}

/// A trusted logout: an ID token of this session and a registered URI.
async fn logout_with_id_token_hint(w: &World) {
    let browser = Browser::new();
    let (id_token, access) = sign_in(w, &browser).await;
    assert!(w.has_cookie(&browser));

    let url = logout_url(w, &[("id_token_hint", &id_token), ("post_logout_redirect_uri", APP_BYE), ("state", "s&1")]);
    let page = browser.navigate(&url, APP_BYE).await;
    assert!(page.url.starts_with(APP_BYE), "{:#?}\n{}", page.hops, page.body);
    assert_eq!(page.status, 302);
    assert_eq!(query_params(&page.url).get("state").map(String::as_str), Some("s&1"));
    assert!(!w.has_cookie(&browser), "the session cookie is expired");
    assert_eq!(w.userinfo(&access).await, 401, "the session of the access token has ended");
    assert!(!w.has_sso(&browser).await, "the next sign-in goes upstream again");

    // The same with "+": the app's redirect URIs are post-logout redirect URIs too.
    let (id_token, access) = sign_in(w, &browser).await;
    let page = browser
        .navigate(&logout_url(w, &[("id_token_hint", &id_token), ("post_logout_redirect_uri", APP_CB)]), APP_CB)
        .await;
    assert_eq!(page.url, APP_CB, "no state, the URI as registered: {:#?}", page.hops);
    assert_eq!(w.userinfo(&access).await, 401);

    // Without a redirect URI: the signed-out page, with the headers of every page.
    let (id_token, access) = sign_in(w, &browser).await;
    let r = browser.client().get(logout_url(w, &[("id_token_hint", &id_token)])).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let csp = r.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let body = r.text().await.unwrap();
    assert!(body.contains("You are signed out"), "{body}");
    assert_eq!(w.userinfo(&access).await, 401);
    assert!(!w.has_cookie(&browser));
}

async fn trusted_logout(db: TestDb) {
    let w = World::start(db).await;
    // Discovery tells clients where to go.
    let doc: Value =
        reqwest::get(format!("{}/.well-known/openid-configuration", w.issuer())).await.unwrap().json().await.unwrap();
    assert_eq!(doc["end_session_endpoint"], format!("{}/protocol/openid-connect/logout", w.issuer()));
    logout_with_id_token_hint(&w).await;
}

/// A redirect URI that is not registered for the application named by the
/// hint or client_id is refused with a page, and nothing ends.
async fn unregistered_redirects_are_refused(db: TestDb) {
    let w = World::start(db).await;
    let browser = Browser::new();
    let (id_token, access) = sign_in(&w, &browser).await;
    let hint = ("id_token_hint", id_token.as_str());
    for (params, says) in [
        (vec![hint, ("post_logout_redirect_uri", "http://evil.test/bye")], "not registered"),
        (vec![hint, ("post_logout_redirect_uri", "http://app.test/bye/")], "not registered"),
        // Registered, but for another application than the hint's.
        (vec![hint, ("post_logout_redirect_uri", SPA_BYE)], "not registered"),
        (vec![hint, ("client_id", "spa"), ("post_logout_redirect_uri", SPA_BYE)], "client_id"),
        (vec![("client_id", "spa"), ("post_logout_redirect_uri", APP_BYE)], "not registered"),
        (vec![("client_id", "nobody"), ("post_logout_redirect_uri", APP_BYE)], "Unknown application"),
        // No application named at all.
        (vec![("post_logout_redirect_uri", APP_BYE), ("state", "x")], "id_token_hint or client_id"),
        (vec![hint, hint], "id_token_hint must not be sent more than once"),
    ] {
        let page = browser.navigate(&logout_url(&w, &params), "http://evil.test").await;
        assert_refused(&page, says);
    }
    assert_eq!(w.userinfo(&access).await, 200, "the session is intact");
    assert!(w.has_cookie(&browser));
    assert!(w.has_sso(&browser).await, "still signed in");
}

/// Without an ID token of this session the person is asked first; only the
/// form's one-time token, from this browser, ends the session.
async fn confirmation_without_hint(db: TestDb) {
    let w = World::start(db).await;
    let browser = Browser::new();
    let (_, access) = sign_in(&w, &browser).await;
    let ask = logout_url(&w, &[("client_id", "app"), ("post_logout_redirect_uri", APP_BYE), ("state", "st")]);

    let r = browser.client().get(&ask).send().await.unwrap();
    let csp = r.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(csp.contains(&format!("form-action {}", w.fed.base)), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");
    assert_eq!(r.headers().get("x-frame-options").and_then(|v| v.to_str().ok()), Some("DENY"));
    let page = browser.navigate(&ask, APP_BYE).await;
    let (action, token) = confirmation(&page);
    assert!(page.body.contains("The App asks to sign you out."), "{}", page.body);
    assert_eq!(action, format!("{}/protocol/openid-connect/logout", w.issuer()));
    assert_eq!(w.userinfo(&access).await, 200, "nothing ends before the answer");

    // Wrong and empty tokens are refused; a POST without one is a new request, asked again.
    for wrong in ["not-the-token", ""] {
        let page = browser.post_form(&action, &[(CONFIRM_FIELD, wrong)], APP_BYE).await;
        assert_refused(&page, "Sign-out expired");
    }
    let page = browser.post_form(&action, &[], APP_BYE).await;
    confirmation(&page);
    // A GET never confirms: the token would travel in a URL.
    let page = browser.navigate(&logout_url(&w, &[(CONFIRM_FIELD, &token)]), APP_BYE).await;
    confirmation(&page);
    // The right token from another browser (without this session) is refused, and used up.
    let other = Browser::new();
    let page = other.post_form(&action, &[(CONFIRM_FIELD, &token)], APP_BYE).await;
    assert_refused(&page, "Sign-out expired");
    let page = browser.post_form(&action, &[(CONFIRM_FIELD, &token)], APP_BYE).await;
    assert_refused(&page, "Sign-out expired");
    assert_eq!(w.userinfo(&access).await, 200, "the session is intact");
    assert!(w.has_sso(&browser).await);

    // A fresh page, answered by this browser: signed out, and sent back with state.
    let (action, token) = confirmation(&browser.navigate(&ask, APP_BYE).await);
    let page = browser.post_form(&action, &[(CONFIRM_FIELD, &token)], APP_BYE).await;
    assert!(page.url.starts_with(APP_BYE), "{:#?}\n{}", page.hops, page.body);
    assert_eq!(query_params(&page.url).get("state").map(String::as_str), Some("st"));
    assert_eq!(w.userinfo(&access).await, 401);
    assert!(!w.has_cookie(&browser));
    // Once only.
    let page = browser.post_form(&action, &[(CONFIRM_FIELD, &token)], APP_BYE).await;
    assert_refused(&page, "Sign-out expired");
    assert!(!w.has_sso(&browser).await);

    // Without a redirect URI, the confirmed sign-out ends on the signed-out page.
    let (_, access) = sign_in(&w, &browser).await;
    let (action, token) = confirmation(&browser.navigate(&logout_url(&w, &[]), APP_BYE).await);
    let page = browser.post_form(&action, &[(CONFIRM_FIELD, &token)], APP_BYE).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("You are signed out"), "{}", page.body);
    assert_eq!(w.userinfo(&access).await, 401);
}

/// An id_token_hint that Federa did not sign, or that is not an ID token,
/// is not trusted: the person is asked, and it names no application.
async fn forged_hints_are_not_trusted(db: TestDb) {
    let w = World::start(db).await;
    let browser = Browser::new();
    let (id_token, access) = sign_in(&w, &browser).await;
    let mut parts: Vec<String> = id_token.split('.').map(str::to_owned).collect();
    let mut sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&parts[2]).unwrap();
    sig[0] ^= 1;
    parts[2] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig);
    let forged = parts.join(".");
    for hint in [forged.as_str(), access.as_str(), "not.a.jwt"] {
        let page = browser.navigate(&logout_url(&w, &[("id_token_hint", hint)]), APP_BYE).await;
        confirmation(&page);
        let with_redirect = [("id_token_hint", hint), ("post_logout_redirect_uri", APP_BYE)];
        let page = browser.navigate(&logout_url(&w, &with_redirect), APP_BYE).await;
        assert_refused(&page, "id_token_hint or client_id");
    }
    assert_eq!(w.userinfo(&access).await, 200, "the session is intact");

    // An ID token of the realm that has expired is still a valid hint (section 2).
    let key = w.store.signing_keys(REALM).await.unwrap().into_iter().find(|k| k.active).unwrap();
    let signer =
        federa_protocol::TokenSigner::from_pem(&key.alg, &key.kid, key.private_pem.expose().as_bytes()).unwrap();
    let mut claims = claims_of(&id_token);
    let exp = claims["iat"].as_i64().unwrap() - 3600;
    claims.insert("exp".into(), json!(exp));
    let expired = signer.sign("JWT", &claims).unwrap();
    let page = browser
        .navigate(&logout_url(&w, &[("id_token_hint", &expired), ("post_logout_redirect_uri", APP_BYE)]), APP_BYE)
        .await;
    assert!(page.url.starts_with(APP_BYE), "{:#?}\n{}", page.hops, page.body);
    assert_eq!(w.userinfo(&access).await, 401);
}

/// The hint's session ends without the browser's cookie (an app signing the
/// user out from elsewhere); a hint naming another session than the
/// browser's own is asked about, and confirming ends both.
async fn sessions_named_by_the_hint(db: TestDb) {
    let w = World::start(db).await;
    let browser = Browser::new();
    let (id_token, access) = sign_in(&w, &browser).await;
    let elsewhere = Browser::new();
    let page = elsewhere.navigate(&logout_url(&w, &[("id_token_hint", &id_token)]), APP_BYE).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("You are signed out"), "{}", page.body);
    assert_eq!(w.userinfo(&access).await, 401, "the hint's session has ended");
    assert!(!w.has_sso(&browser).await);

    // Two browsers, two sessions: the first one's hint in the second browser.
    let (hint_a, access_a) = sign_in(&w, &browser).await;
    let (_, access_b) = sign_in(&w, &elsewhere).await;
    let url = logout_url(&w, &[("id_token_hint", &hint_a), ("post_logout_redirect_uri", APP_BYE)]);
    let (action, token) = confirmation(&elsewhere.navigate(&url, APP_BYE).await);
    assert_eq!((w.userinfo(&access_a).await, w.userinfo(&access_b).await), (200, 200), "asked first");
    let page = elsewhere.post_form(&action, &[(CONFIRM_FIELD, &token)], APP_BYE).await;
    assert!(page.url.starts_with(APP_BYE), "{:#?}\n{}", page.hops, page.body);
    assert_eq!((w.userinfo(&access_a).await, w.userinfo(&access_b).await), (401, 401));

    // No session and no hint: nothing to end, the signed-out page.
    let page = Browser::new().navigate(&logout_url(&w, &[]), APP_BYE).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("You are signed out"), "{}", page.body);
}

/// The trusted logout with the session store on Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_logout_with_sessions_on_redis() {
    let Some(w) = World::builder().start_on_redis("logout::trusted_logout_with_sessions_on_redis").await else {
        return;
    };
    logout_with_id_token_hint(&w).await;
}

on_both!(trusted_logout);
on_both!(unregistered_redirects_are_refused);
on_both!(confirmation_without_hint);
on_both!(forged_hints_are_not_trusted);
on_both!(sessions_named_by_the_hint);
