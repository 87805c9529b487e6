//! Brokered sign-in end to end, on SQLite and on PostgreSQL: a real
//! third-party OpenID Provider (node oidc-provider) upstream, Federa on a real
//! socket, a cookie-keeping browser, and the downstream app driven by the
//! independent `openidconnect` client library. The negative cases use a small
//! misbehaving upstream written for the purpose.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use federa_broker::SessionStore;
use federa_tests::bad_idp::{BadIdp, Misbehaviour};
use federa_tests::browser::{links, query_params, Browser, Page};
use federa_tests::on_both;
use federa_tests::world::{claims_of, header_of, AppClient, World, APP_CB, APP_SECRET, REALM, SPA_CB, UPSTREAM_SECRET};
use federa_tests::{RunningFedera, TestDb};
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeVerifier, RedirectUrl,
    TokenResponse,
};
use serde_json::{json, Value};

/// The world with the node provider syncing FORCE, passing login_hint, listed first.
fn builder() -> federa_tests::world::Builder {
    World::builder().idp_config(json!({"syncMode": "FORCE", "loginHint": "true", "guiOrder": "1"}))
}

/// Signs in through the app with `extra` parameters (scopes profile and
/// email) and returns where it ended, the verifier, the nonce and the state.
async fn start(
    w: &World,
    browser: &Browser,
    client: &AppClient,
    redirect: &str,
    extra: &[(&str, &str)],
) -> (Page, PkceCodeVerifier, Nonce, CsrfToken) {
    let a = w.authorization(browser, client, redirect, &["email"], extra).await;
    (a.page, a.verifier, a.nonce, a.state)
}

async fn full_login_with_hint(db: TestDb) {
    let w = builder().start_on(db).await;
    let browser = Browser::new();
    let app = w.client("app", Some(APP_SECRET), APP_CB).await;
    let (page, verifier, nonce, csrf) = start(&w, &browser, &app, APP_CB, &[("kc_idp_hint", "node")]).await;
    assert!(page.url.starts_with(APP_CB), "ended at {} after {:#?}", page.url, page.hops);
    assert!(page.hops.iter().any(|h| h.starts_with(&w.node.issuer)), "went upstream: {:#?}", page.hops);
    let p = query_params(&page.url);
    assert_eq!(p.get("state").map(String::as_str), Some(csrf.secret().as_str()));
    assert_eq!(p.get("iss").map(String::as_str), Some(w.issuer().as_str()), "RFC 9207 iss");

    let tokens = w.exchange(&app, p["code"].clone(), verifier).await;
    let id_token = tokens.id_token().unwrap();
    let claims = id_token.claims(&app.id_token_verifier(), &nonce).unwrap();
    assert_eq!(claims.issuer().as_str(), w.issuer());
    assert_eq!(claims.preferred_username().map(|u| u.as_str()), Some("alice"));
    assert_eq!(claims.email().map(|e| e.as_str()), Some("alice@upstream.test"));
    let raw_id = Value::Object(claims_of(&id_token.to_string()));
    for claim in ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "azp", "at_hash"] {
        assert!(raw_id.get(claim).is_some(), "ID token lacks {claim}: {raw_id}");
    }
    assert_eq!(header_of(tokens.access_token().secret())["typ"], "at+jwt", "RFC 9068 access token");

    // The tokens' sid names the session without being its cookie, and an ID
    // token is not accepted as an access token.
    let cookie = browser.cookies(&format!("{}/realms/{REALM}/", w.fed.base)).unwrap_or_default();
    let sid = raw_id["sid"].as_str().unwrap();
    assert!(cookie.contains("FEDERA_SESSION="), "{cookie}");
    assert!(!cookie.contains(sid), "a token must not carry the session cookie");
    let r = reqwest::Client::new()
        .get(format!("{}/protocol/openid-connect/userinfo", w.issuer()))
        .bearer_auth(id_token.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "an ID token at userinfo");

    let info: CoreUserInfoClaims =
        app.user_info(tokens.access_token().clone(), None).unwrap().request_async(&w.http).await.unwrap();
    assert_eq!(info.subject(), claims.subject());
    assert_eq!(info.email().map(|e| e.as_str()), Some("alice@upstream.test"));

    // The user was created just in time and linked to the upstream subject.
    let users = w.users().await;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["username"], "alice");
    assert_eq!(users[0]["id"].as_str(), Some(claims.subject().as_str()));
    let (_, links) = w
        .admin(reqwest::Method::GET, &format!("users/{}/federated-identity", claims.subject().as_str()), Value::Null)
        .await;
    assert_eq!(links, json!([{"identityProvider": "node", "userId": "sub-alice", "userName": "alice"}]));

    // SSO: a second client of the realm signs in without going upstream.
    let spa = w.client("spa", None, SPA_CB).await;
    let (page, verifier, nonce, _) = start(&w, &browser, &spa, SPA_CB, &[]).await;
    assert!(page.url.starts_with(SPA_CB), "{:#?}", page.hops);
    assert!(!page.hops.iter().any(|h| h.starts_with(&w.node.issuer)), "SSO went upstream again: {:#?}", page.hops);
    let code = query_params(&page.url)["code"].clone();
    let tokens = w.exchange(&spa, code, verifier).await;
    let spa_claims = tokens.id_token().unwrap().claims(&spa.id_token_verifier(), &nonce).unwrap();
    assert_eq!(spa_claims.subject(), claims.subject(), "the same user");
    assert_eq!(w.users().await.len(), 1);

    // A second login of the same upstream account finds the user through the link.
    let other = Browser::new();
    let (page, _, _, _) = start(&w, &other, &app, APP_CB, &[("kc_idp_hint", "node")]).await;
    assert!(page.url.starts_with(APP_CB), "{:#?}", page.hops);
    assert_eq!(w.users().await.len(), 1);
    assert_eq!(
        w.users().await[0]["emailVerified"],
        false,
        "the upstream verified alice's address, but this provider is not trusted for email (trustEmail off)"
    );

    // An address another user of the realm holds is never stored as verified.
    let local = json!({"username": "robert", "email": "bob@upstream.test", "emailVerified": true});
    assert_eq!(w.admin(reqwest::Method::POST, "users", local).await.0, 201);
    let (page, _, _, _) =
        start(&w, &Browser::new(), &app, APP_CB, &[("kc_idp_hint", "node"), ("login_hint", "bob")]).await;
    assert!(page.url.starts_with(APP_CB), "{:#?}", page.hops);
    let users = w.users().await;
    let bob = users.iter().find(|u| u["username"] == "bob").expect("bob was created");
    assert_eq!(bob["email"], "bob@upstream.test");
    assert_eq!(bob["emailVerified"], false, "{bob}");
}

async fn login_through_the_chooser(db: TestDb) {
    let w = builder().start_on(db).await;
    let bad = BadIdp::start(Misbehaviour::None, "federa", "bad-secret-123");
    let idp = json!({"alias": "partner", "displayName": "Partner Login", "providerId": "oidc",
        "config": {"issuer": bad.issuer, "clientId": "federa", "clientSecret": "bad-secret-123",
                   "clientAuthMethod": "client_secret_post", "guiOrder": "2"}});
    assert_eq!(w.admin(reqwest::Method::POST, "identity-provider/instances", idp).await.0, 201);

    let browser = Browser::new();
    let app = w.client("app", Some(APP_SECRET), APP_CB).await;
    let (page, verifier, nonce, _) = start(&w, &browser, &app, APP_CB, &[]).await;
    assert_eq!(page.status, 200, "the chooser page: {:#?}", page.hops);
    let found = links(&page.body);
    let names: Vec<&str> = found.iter().map(|(_, t)| t.as_str()).collect();
    let node_at = names.iter().position(|n| n.contains("Node IdP")).expect("Node IdP is listed");
    let partner_at = names.iter().position(|n| n.contains("Partner Login")).expect("Partner Login is listed");
    assert!(node_at < partner_at, "listed by guiOrder: {names:?}");
    let page = browser.navigate(&found[node_at].0, APP_CB).await;
    assert!(page.url.starts_with(APP_CB), "{:#?}", page.hops);
    let code = query_params(&page.url)["code"].clone();
    let tokens = w.exchange(&app, code, verifier).await;
    let claims = tokens.id_token().unwrap().claims(&app.id_token_verifier(), &nonce).unwrap();
    assert_eq!(claims.preferred_username().map(|u| u.as_str()), Some("alice"));

    // The second provider works too, with its own user.
    let other = Browser::new();
    let (page, _, _, _) = start(&w, &other, &app, APP_CB, &[("kc_idp_hint", "partner")]).await;
    assert!(page.url.starts_with(APP_CB), "{:#?}", page.hops);
    assert!(query_params(&page.url).contains_key("code"));
    assert_eq!(w.users().await.len(), 2);
}

async fn refusals(db: TestDb) {
    let w = builder().start_on(db).await;
    let auth = format!("{}/protocol/openid-connect/auth", w.issuer());
    let raw = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // Unregistered redirect_uri and unknown client: a page, never a redirect.
    for (client_id, redirect) in [("app", "http://evil.test/cb"), ("nobody", APP_CB)] {
        let r = raw
            .get(&auth)
            .query(&[
                ("client_id", client_id),
                ("redirect_uri", redirect),
                ("response_type", "code"),
                ("scope", "openid"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{client_id} {redirect}");
        assert!(r.headers().get("location").is_none(), "no redirect to an unverified URI");
        let body = r.text().await.unwrap();
        assert!(body.contains("<html"), "a themed page");
    }

    // A successful login, then the token-endpoint refusals.
    let browser = Browser::new();
    let app = w.client("app", Some(APP_SECRET), APP_CB).await;
    let (page, verifier, _, _) = start(&w, &browser, &app, APP_CB, &[("kc_idp_hint", "node")]).await;
    let code = query_params(&page.url)["code"].clone();
    let wrong = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", APP_CB),
        ("code_verifier", "a-wrong-verifier-that-is-long-enough-to-be-valid-xyz"),
    ];
    let (s, body) = w.post_form("token", &wrong, Some(("app", APP_SECRET))).await;
    assert_eq!((s, body["error"].clone()), (400, json!("invalid_grant")), "wrong PKCE verifier: {body}");
    // The right verifier cannot rescue a code that a failed attempt consumed.
    let right = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", APP_CB),
        ("code_verifier", verifier.secret().as_str()),
    ];
    assert_eq!(w.post_form("token", &right, Some(("app", APP_SECRET))).await.0, 400);

    // A fresh login (SSO, no upstream) for the rest.
    let (page, verifier2, _, _) = start(&w, &browser, &app, APP_CB, &[]).await;
    let code2 = query_params(&page.url)["code"].clone();
    let good = [
        ("grant_type", "authorization_code"),
        ("code", code2.as_str()),
        ("redirect_uri", APP_CB),
        ("code_verifier", verifier2.secret().as_str()),
    ];
    let r = reqwest::Client::new()
        .post(format!("{}/protocol/openid-connect/token", w.issuer()))
        .json(&json!({"grant_type": "authorization_code", "code": code2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request", "a JSON token request");
    let (s, body) = w.post_form("token", &good, Some(("app", "not-the-secret"))).await;
    assert_eq!((s, body["error"].clone()), (401, json!("invalid_client")));
    let (s, body) = w.post_form("token", &good, Some(("app", APP_SECRET))).await;
    assert_eq!(s, 200, "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let userinfo = format!("{}/protocol/openid-connect/userinfo", w.issuer());
    let r = reqwest::Client::new().get(&userinfo).bearer_auth(&access).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Reused: refused, and the tokens issued from it are revoked.
    let (s, body) = w.post_form("token", &good, Some(("app", APP_SECRET))).await;
    assert_eq!((s, body["error"].clone()), (400, json!("invalid_grant")), "reused code");
    let r = reqwest::Client::new().get(&userinfo).bearer_auth(&access).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "the access token of a reused code is revoked");
    assert!(r.headers().get("www-authenticate").is_some_and(|h| h.to_str().unwrap().contains("invalid_token")));

    // client_secret_post works as well as Basic; two methods at once do not.
    let (page, verifier3, _, _) = start(&w, &browser, &app, APP_CB, &[]).await;
    let code3 = query_params(&page.url)["code"].clone();
    let post = [
        ("grant_type", "authorization_code"),
        ("code", code3.as_str()),
        ("redirect_uri", APP_CB),
        ("code_verifier", verifier3.secret().as_str()),
        ("client_id", "app"),
        ("client_secret", APP_SECRET),
    ];
    let (s, body) = w.post_form("token", &post, Some(("app", APP_SECRET))).await;
    assert_eq!((s, body["error"].clone()), (400, json!("invalid_request")), "two client authentication methods");
    let (page, verifier4, _, _) = start(&w, &browser, &app, APP_CB, &[]).await;
    let code4 = query_params(&page.url)["code"].clone();
    let post = [
        ("grant_type", "authorization_code"),
        ("code", code4.as_str()),
        ("redirect_uri", APP_CB),
        ("code_verifier", verifier4.secret().as_str()),
        ("client_id", "app"),
        ("client_secret", APP_SECRET),
    ];
    let (s, body) = w.post_form("token", &post, None).await;
    assert_eq!(s, 200, "client_secret_post: {body}");

    // Replayed and forged state at the callback: an error page, nothing issued.
    let other = Browser::new();
    let (page, _, _, _) = start(&w, &other, &app, APP_CB, &[("kc_idp_hint", "node"), ("prompt", "login")]).await;
    let callback = page.hops.iter().find(|h| h.contains("/broker/node/endpoint")).expect("the callback hop").clone();
    let replay = other.navigate(&callback, APP_CB).await;
    assert_eq!(replay.status, 400, "replayed state: {:#?}", replay.hops);
    assert!(!replay.url.starts_with(APP_CB));
    let mut forged = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            let value = if k == "state" { "forged-state-value".to_owned() } else { v.into_owned() };
            (k.into_owned(), value)
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let forged_page = other.navigate(forged.as_str(), APP_CB).await;
    assert_eq!(forged_page.status, 400);
    assert!(!forged_page.url.starts_with(APP_CB));

    // RFC 9207: an authorization response whose iss is not the upstream's is refused.
    let mixup = Browser::new();
    let endpoint = format!("{}/realms/{REALM}/broker/node/endpoint", w.fed.base);
    let (page, _, _, _) = start(&w, &mixup, &app, &endpoint, &[("kc_idp_hint", "node")]).await;
    let mut answer = url::Url::parse(&page.url).unwrap();
    assert_eq!(
        query_params(answer.as_str()).get("iss").map(String::as_str),
        Some(w.node.issuer.as_str()),
        "oidc-provider sends iss"
    );
    let pairs: Vec<(String, String)> = answer
        .query_pairs()
        .map(|(k, v)| {
            let value = if k == "iss" { "https://attacker.test".to_owned() } else { v.into_owned() };
            (k.into_owned(), value)
        })
        .collect();
    answer.query_pairs_mut().clear().extend_pairs(pairs);
    let refused = mixup.navigate(answer.as_str(), APP_CB).await;
    assert_eq!(refused.status, 400, "a mixed-up iss: {:#?}", refused.hops);
    assert!(!refused.url.starts_with(APP_CB));

    // A form_post answer without the flow cookie (a cross-site POST drops
    // SameSite=Lax cookies) is re-posted by Federa's own page, same-site; a
    // browser that never started the flow is then refused.
    let endpoint_url = format!("{}/realms/{REALM}/broker/node/endpoint", w.fed.base);
    let r = reqwest::Client::new()
        .post(&endpoint_url)
        .form(&[("code", "c0de"), ("state", "st4te"), ("iss", w.node.issuer.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let form = federa_tests::browser::auto_form(&r.text().await.unwrap()).expect("a self-posting page");
    assert_eq!(form.action, endpoint_url);
    assert_eq!((form.field("code"), form.field("state")), (Some("c0de"), Some("st4te")));
    assert_eq!(form.field("federa_resubmit"), Some("1"));
    let again: Vec<(String, String)> = form.fields.clone();
    let r = reqwest::Client::new().post(&endpoint_url).form(&again).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400, "the re-posted answer of an unknown flow is refused, not re-posted again");

    // An upstream refusal reaches the app as the same OAuth error, with state and iss.
    let denied = Browser::new();
    let (page, _, _, csrf) =
        start(&w, &denied, &app, APP_CB, &[("kc_idp_hint", "node"), ("login_hint", "denied")]).await;
    assert!(page.url.starts_with(APP_CB), "{:#?}", page.hops);
    let p = query_params(&page.url);
    assert_eq!(p.get("error").map(String::as_str), Some("access_denied"), "{p:?}");
    assert_eq!(p.get("state").map(String::as_str), Some(csrf.secret().as_str()));
    assert_eq!(p.get("iss").map(String::as_str), Some(w.issuer().as_str()));
    assert!(!p.contains_key("code"));

    // A link-only provider signs nobody in, hinted or not.
    let idp_path = "identity-provider/instances/node".to_owned();
    let (_, mut idp) = w.admin(reqwest::Method::GET, &idp_path, Value::Null).await;
    idp["linkOnly"] = json!(true);
    assert_eq!(w.admin(reqwest::Method::PUT, &idp_path, idp).await.0, 204);
    let users_before = w.users().await.len();
    let (page, _, _, _) = start(&w, &Browser::new(), &app, APP_CB, &[("kc_idp_hint", "node")]).await;
    assert!(!page.hops.iter().any(|h| h.starts_with(&w.node.issuer)), "{:#?}", page.hops);
    assert!(!query_params(&page.url).contains_key("code"), "{:#?}", page.hops);
    assert_eq!(w.users().await.len(), users_before);
}

/// The reason Federa logs when it refuses a sign-in through a provider in
/// `mode` (the page only says that it failed). A match, so a new mode of the
/// test upstream needs its reason here.
fn refusal_reason(mode: Misbehaviour) -> &'static str {
    match mode {
        Misbehaviour::None => unreachable!("a behaving upstream is not refused"),
        Misbehaviour::BadSignature => "ID token: the ID token's signature does not verify",
        Misbehaviour::AlgNone => "ID token: ID token algorithm not allowed: none",
        Misbehaviour::WrongAudience => "ID token: the ID token is not for this client",
        Misbehaviour::WrongIssuer => "ID token: the ID token's issuer is \"https://evil.example\"",
        Misbehaviour::Expired => "ID token: the ID token has expired",
        Misbehaviour::IssuedInFuture => "ID token: the ID token was issued in the future",
        Misbehaviour::NonceMismatch => "ID token: the ID token's nonce does not match",
        // Refused before any key is tried: HS256 is not an algorithm this provider signs with.
        Misbehaviour::HmacWithPublicKey => "ID token: ID token algorithm not allowed: HS256",
        Misbehaviour::UserinfoSubMismatch => "userinfo sub differs from the ID token's",
        Misbehaviour::NoIdToken => "the token response has no id_token",
        Misbehaviour::TokenEndpointError => "answered 400 Bad Request: error=\"invalid_grant\"",
        Misbehaviour::StaleAuthTime => unreachable!("not in ALL: wrong only against a client's max_age"),
    }
}

async fn misbehaving_upstreams(db: TestDb) {
    federa_tests::logs::start();
    let w = builder().start_on(db).await;
    let bad = BadIdp::start(Misbehaviour::None, "federa", "bad-secret-123");
    // An alias of its own, so this test's refusals are told apart in the
    // process-wide log from those of the other variant running alongside.
    let alias = format!("bad-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let idp = json!({"alias": alias, "providerId": "oidc",
        "config": {"issuer": bad.issuer, "clientId": "federa", "clientSecret": "bad-secret-123",
                   "clientAuthMethod": "client_secret_basic"}});
    assert_eq!(w.admin(reqwest::Method::POST, "identity-provider/instances", idp).await.0, 201);
    let app = w.client("app", Some(APP_SECRET), APP_CB).await;
    let marker = format!("sign-in through {alias:?} refused: ");
    // Every misbehaviour the test upstream knows, so a new one is covered here too.
    let modes = Misbehaviour::ALL.into_iter().filter(|m| *m != Misbehaviour::None);
    for mode in modes {
        bad.set_mode(mode);
        let before = bad.token_requests();
        let logged_before = federa_tests::logs::containing(&marker).len();
        let browser = Browser::new();
        let (page, _, _, _) = start(&w, &browser, &app, APP_CB, &[("kc_idp_hint", &alias)]).await;
        assert_eq!(page.status, 400, "{mode:?}: an error page, got {:#?}", page.hops);
        assert!(!page.url.starts_with(APP_CB), "{mode:?}: nothing may reach the app: {:#?}", page.hops);
        assert!(page.body.contains("<html"), "{mode:?}: a themed page");
        assert!(page.body.contains("Sign-in failed"), "{mode:?}: the page of a refused answer: {}", page.body);
        assert_eq!(bad.token_requests(), before + 1, "{mode:?}: the code was exchanged (the check is Federa's)");
        assert!(w.users().await.is_empty(), "{mode:?}: no user may be created");
        // The reason is logged before the page is sent, so it is there now.
        let logged = federa_tests::logs::containing(&marker);
        let new = &logged[logged_before..];
        assert_eq!(new.len(), 1, "{mode:?}: one refusal logged: {new:#?}");
        let expected = refusal_reason(mode);
        assert!(new[0].contains(expected), "{mode:?}: refused for {expected:?}, but the log says {:?}", new[0]);
    }
    // The same upstream, behaving, signs the user in: the refusals were about the misbehaviour.
    bad.set_mode(Misbehaviour::None);
    let logged_before = federa_tests::logs::containing(&marker).len();
    let browser = Browser::new();
    let (page, _, _, _) = start(&w, &browser, &app, APP_CB, &[("kc_idp_hint", &alias)]).await;
    assert!(page.url.starts_with(APP_CB), "{:#?}", page.hops);
    assert_eq!(w.users().await.len(), 1);
    assert_eq!(federa_tests::logs::containing(&marker).len(), logged_before, "nothing refused");
}

async fn session_and_request_options(db: TestDb) {
    let w = builder().start_on(db).await;
    let app = w.client("app", Some(APP_SECRET), APP_CB).await;
    let browser = Browser::new();

    // prompt=none without a session: login_required, at the app, nothing upstream.
    let (page, _, _, csrf) = start(&w, &browser, &app, APP_CB, &[("prompt", "none")]).await;
    let p = query_params(&page.url);
    assert_eq!(p.get("error").map(String::as_str), Some("login_required"), "{:#?}", page.hops);
    assert_eq!(p.get("state").map(String::as_str), Some(csrf.secret().as_str()));
    assert!(!page.hops.iter().any(|h| h.starts_with(&w.node.issuer)));

    // Sign in without a hint: the realm's only visible provider is chosen
    // without a page. The session cookie is scoped to the realm.
    let (page, _, _, _) = start(&w, &browser, &app, APP_CB, &[]).await;
    assert!(page.url.starts_with(APP_CB), "{:#?}", page.hops);
    assert!(page.hops[1].starts_with(&w.node.issuer), "straight upstream: {:#?}", page.hops);
    let cookies = browser.cookies(&format!("{}/realms/{REALM}/", w.fed.base)).unwrap_or_default();
    assert!(cookies.contains("FEDERA_SESSION="), "{cookies}");

    // prompt=none with a session: a code, without going upstream.
    let (page, _, _, _) = start(&w, &browser, &app, APP_CB, &[("prompt", "none")]).await;
    assert!(query_params(&page.url).contains_key("code"), "{:#?}", page.hops);
    assert!(!page.hops.iter().any(|h| h.starts_with(&w.node.issuer)));

    // max_age=0: the session is too old by definition, so the user goes upstream again.
    let (page, _, _, _) = start(&w, &browser, &app, APP_CB, &[("max_age", "0"), ("kc_idp_hint", "node")]).await;
    assert!(query_params(&page.url).contains_key("code"), "{:#?}", page.hops);
    assert!(page.hops.iter().any(|h| h.starts_with(&w.node.issuer)), "max_age=0 re-authenticates: {:#?}", page.hops);

    // response_mode=form_post: an auto-submitting form POSTs code, state and iss to the app.
    let (page, _, _, csrf) = start(&w, &browser, &app, APP_CB, &[("response_mode", "form_post")]).await;
    assert_eq!(page.url, APP_CB, "{:#?}", page.hops);
    let form = federa_tests::browser::auto_form(&page.body).expect("a form_post page");
    assert_eq!(form.action, APP_CB);
    assert!(form.field("code").is_some_and(|c| !c.is_empty()));
    assert_eq!(form.field("state"), Some(csrf.secret().as_str()));
    assert_eq!(form.field("iss"), Some(w.issuer().as_str()));

    // syncMode FORCE: a later login overwrites what changed locally.
    let users = w.users().await;
    let id = users[0]["id"].as_str().unwrap().to_owned();
    let upstream_last = users[0]["lastName"].clone();
    assert!(upstream_last.is_string(), "the upstream's family_name was copied: {users:?}");
    let user_path = format!("users/{id}");
    assert_eq!(w.admin(reqwest::Method::PUT, &user_path, json!({"lastName": "Local"})).await.0, 204);
    let (page, _, _, _) = start(&w, &Browser::new(), &app, APP_CB, &[("kc_idp_hint", "node")]).await;
    assert!(page.url.starts_with(APP_CB));
    let (_, u) = w.admin(reqwest::Method::GET, &user_path, Value::Null).await;
    assert_eq!(u["lastName"], upstream_last, "FORCE restores the upstream's value");

    // syncMode IMPORT: a later login leaves the user as it is.
    let idp_path = "identity-provider/instances/node".to_owned();
    let (_, mut idp) = w.admin(reqwest::Method::GET, &idp_path, Value::Null).await;
    idp["config"]["syncMode"] = json!("IMPORT");
    assert_eq!(w.admin(reqwest::Method::PUT, &idp_path, idp).await.0, 204);
    assert_eq!(w.admin(reqwest::Method::PUT, &user_path, json!({"lastName": "Local"})).await.0, 204);
    let (page, _, _, _) = start(&w, &Browser::new(), &app, APP_CB, &[("kc_idp_hint", "node")]).await;
    assert!(page.url.starts_with(APP_CB), "{:#?}", page.hops);
    let (_, u) = w.admin(reqwest::Method::GET, &user_path, Value::Null).await;
    assert_eq!(u["lastName"], "Local", "IMPORT keeps the local value");
    assert_eq!(w.users().await.len(), 1, "found through the link every time");
}

/// Realms sign with RS256 by default; ES256 and EdDSA are selectable, and a
/// certified client library verifies each.
async fn signing_algorithms(db: TestDb) {
    let w = builder().start_on(db).await;
    let bad = BadIdp::start(Misbehaviour::None, "federa", "bad-secret-123");
    for alg in ["ES256", "EdDSA"] {
        let realm = format!("alg-{}", alg.to_lowercase());
        let body = json!({
            "realm": realm, "defaultSignatureAlgorithm": alg,
            "clients": [{"clientId": "app", "secret": APP_SECRET, "redirectUris": [APP_CB]}],
            "identityProviders": [{"alias": "up", "providerId": "oidc",
                "config": {"issuer": bad.issuer, "clientId": "federa", "clientSecret": "bad-secret-123"}}]
        });
        assert_eq!(w.admin_response(reqwest::Method::POST, "", body).await.status().as_u16(), 201);
        let issuer = format!("{}/realms/{realm}", w.fed.base);
        let meta =
            CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone()).unwrap(), &w.http).await.unwrap();
        let algs: Vec<String> = meta
            .id_token_signing_alg_values_supported()
            .iter()
            .map(|a| serde_json::to_value(a).unwrap().as_str().unwrap().to_owned())
            .collect();
        assert_eq!(algs, vec![alg.to_owned()]);
        let client = CoreClient::from_provider_metadata(
            meta,
            ClientId::new("app".into()),
            Some(ClientSecret::new(APP_SECRET.into())),
        )
        .set_redirect_uri(RedirectUrl::new(APP_CB.into()).unwrap());
        let (page, verifier, nonce, _) = start(&w, &Browser::new(), &client, APP_CB, &[]).await;
        let code = query_params(&page.url).get("code").cloned().unwrap_or_else(|| panic!("{alg}: {:#?}", page.hops));
        let tokens = w.exchange(&client, code, verifier).await;
        let id_token = tokens.id_token().unwrap();
        assert_eq!(header_of(&id_token.to_string())["alg"], alg);
        id_token
            .claims(
                &client.id_token_verifier().set_allowed_algs(vec![serde_json::from_value(json!(alg)).unwrap()]),
                &nonce,
            )
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
    let (_, r) = w.admin(reqwest::Method::GET, "", Value::Null).await;
    assert_eq!(r["defaultSignatureAlgorithm"], "RS256");
}

/// The same brokered sign-in with the session store on Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_sessions_on_redis() {
    let Some(w) = builder().start_on_redis("brokered_login::sign_in_with_sessions_on_redis").await else {
        return;
    };
    let browser = Browser::new();
    let app = w.client("app", Some(APP_SECRET), APP_CB).await;
    let (page, verifier, nonce, _) = start(&w, &browser, &app, APP_CB, &[("kc_idp_hint", "node")]).await;
    let code = query_params(&page.url).get("code").cloned().unwrap_or_else(|| panic!("{:#?}", page.hops));
    let tokens = w.exchange(&app, code, verifier).await;
    let claims = tokens.id_token().unwrap().claims(&app.id_token_verifier(), &nonce).unwrap();
    assert_eq!(claims.preferred_username().map(|u| u.as_str()), Some("alice"));
    // SSO works from the session kept on Redis too.
    let (page, _, _, _) = start(&w, &browser, &app, APP_CB, &[]).await;
    assert!(query_params(&page.url).contains_key("code"), "{:#?}", page.hops);
    assert!(!page.hops.iter().any(|h| h.starts_with(&w.node.issuer)));
}

/// `firstBrokerLoginFlowAlias` and `trustEmail` through the real upstream:
/// a flow Federa does not know refuses first sign-ins (nothing is created)
/// and lets linked users in; a trusted provider's verified address is
/// stored verified.
async fn first_login_policy_and_trusted_email(db: TestDb) {
    let w = builder().start_on(db).await;
    let app = w.client("app", Some(APP_SECRET), APP_CB).await;
    let node = |extra: Value| {
        let mut idp = json!({
            "alias": "node", "displayName": "Node IdP", "providerId": "oidc",
            "config": {
                "issuer": w.node.issuer, "clientId": "federa", "clientSecret": UPSTREAM_SECRET,
                "clientAuthMethod": "client_secret_basic", "defaultScope": "openid profile email"
            }
        });
        idp.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        idp
    };
    let path = "identity-provider/instances/node".to_owned();
    let custom = node(json!({"firstBrokerLoginFlowAlias": "my custom flow", "trustEmail": true}));
    assert_eq!(w.admin(reqwest::Method::PUT, &path, custom.clone()).await.0, 204);

    let (page, _, _, _) = start(&w, &Browser::new(), &app, APP_CB, &[("kc_idp_hint", "node")]).await;
    assert_eq!(page.status, 400, "{:#?}", page.hops);
    assert!(page.body.contains("Sign-in not permitted") && page.body.contains("my custom flow"), "{}", page.body);
    assert!(w.users().await.is_empty(), "nothing is created");

    // The default policy creates the user; trustEmail keeps the upstream's verified address verified.
    assert_eq!(w.admin(reqwest::Method::PUT, &path, node(json!({"trustEmail": true}))).await.0, 204);
    let (page, _, _, _) = start(&w, &Browser::new(), &app, APP_CB, &[("kc_idp_hint", "node")]).await;
    assert!(page.url.starts_with(APP_CB), "{:#?}", page.hops);
    let users = w.users().await;
    assert_eq!((users.len(), users[0]["emailVerified"].clone()), (1, json!(true)), "{users:?}");

    // Once linked, the user signs in whatever the first-login policy says.
    assert_eq!(w.admin(reqwest::Method::PUT, &path, custom).await.0, 204);
    let (page, _, _, _) = start(&w, &Browser::new(), &app, APP_CB, &[("kc_idp_hint", "node")]).await;
    assert!(page.url.starts_with(APP_CB), "{:#?}", page.hops);
    assert_eq!(w.users().await.len(), 1);
}

/// The essential claim (`filteredByClaim`) through the real upstream: a user
/// whose claim does not match is refused with a page and nothing is created;
/// one whose claim matches in full signs in.
async fn essential_claim(db: TestDb) {
    let w = builder().start_on(db).await;
    let app = w.client("app", Some(APP_SECRET), APP_CB).await;
    let node = |pattern: &str| {
        json!({
            "alias": "node", "displayName": "Node IdP", "providerId": "oidc",
            "config": {
                "issuer": w.node.issuer, "clientId": "federa", "clientSecret": UPSTREAM_SECRET,
                "clientAuthMethod": "client_secret_basic", "defaultScope": "openid profile email",
                "loginHint": "true", "filteredByClaim": "true", "claimFilterName": "email", "claimFilterValue": pattern
            }
        })
    };
    let path = "identity-provider/instances/node".to_owned();
    // A prefix is not a match: the value must match in full.
    assert_eq!(w.admin(reqwest::Method::PUT, &path, node("alice@upstream")).await.0, 204);
    let (page, _, _, _) = start(&w, &Browser::new(), &app, APP_CB, &[("kc_idp_hint", "node")]).await;
    assert_eq!(page.status, 400, "{:#?}", page.hops);
    assert!(page.body.contains("Sign-in not permitted"), "{}", page.body);
    assert!(w.users().await.is_empty(), "nothing is created");

    assert_eq!(w.admin(reqwest::Method::PUT, &path, node(r"[a-z]+@upstream\.test")).await.0, 204);
    let (page, _, _, _) = start(&w, &Browser::new(), &app, APP_CB, &[("kc_idp_hint", "node")]).await;
    assert!(page.url.starts_with(APP_CB), "{:#?}", page.hops);
    assert_eq!(w.users().await.len(), 1);
}

/// A restart between the upstream redirect and the callback loses nothing:
/// every step's state is in the stores, none in the instance.
async fn restart_mid_sign_in(db: TestDb) {
    let w = builder().start_on(db).await;
    let browser = Browser::new();
    let app = w.client("app", Some(APP_SECRET), APP_CB).await;
    // Stop at the upstream, before the browser goes there.
    let (page, verifier, nonce, _) = start(&w, &browser, &app, &w.node.issuer, &[("kc_idp_hint", "node")]).await;
    assert!(page.url.starts_with(&w.node.issuer), "{:#?}", page.hops);
    let addr = w.fed.base.trim_start_matches("http://").to_owned();
    let World { fed, node, http, store, sessions: _, db } = w;
    fed.shutdown().await;
    let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
    let fed = RunningFedera::start_at(&store, sessions.clone(), &addr);
    let w = World { fed, node, http, store, sessions, db };

    let page = browser.navigate(&page.url, APP_CB).await;
    let code = query_params(&page.url).get("code").cloned().unwrap_or_else(|| panic!("{:#?}", page.hops));
    let tokens = w.exchange(&app, code, verifier).await;
    let claims = tokens.id_token().unwrap().claims(&app.id_token_verifier(), &nonce).unwrap();
    assert_eq!(claims.preferred_username().map(|u| u.as_str()), Some("alice"));
}

on_both!(full_login_with_hint);
on_both!(login_through_the_chooser);
on_both!(refusals);
on_both!(misbehaving_upstreams);
on_both!(session_and_request_options);
on_both!(signing_algorithms);
on_both!(restart_mid_sign_in);
on_both!(first_login_policy_and_trusted_email);
on_both!(essential_claim);
