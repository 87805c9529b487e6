//! The upstream's keys and metadata, end to end against the real upstream
//! (node oidc-provider) and the misbehaving one (`BadIdp`): a key rotation
//! at the upstream needs no restart (the first token naming a new kid reads
//! the key set again), `validateSignature` = "false" trusts the claims
//! without the signature (every claim still checked, the admin warned),
//! `jwksUrl` wins over discovery, `isAccessTokenJWT` checks the access
//! token and passes its claims on, and `import-config` reads the upstream's
//! discovery document from its URL or from a saved copy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use federa_tests::bad_idp::{BadIdp, Misbehaviour};
use federa_tests::browser::{query_params, Browser, Page};
use federa_tests::world::{World, ALIAS, APP_CB, REALM, UPSTREAM_SECRET};
use federa_tests::{logs, TestDb, ADMIN_TOKEN};
use serde_json::{json, Value};

/// The resource at the node upstream whose access tokens are JWTs (idp.mjs).
const TEST_API: &str = "urn:federa:test-api";

/// The admin API URL of a provider of the realm.
fn idp_url(w: &World, alias: &str) -> String {
    format!("{}/{REALM}/identity-provider/instances/{alias}", w.fed.admin())
}

/// Changes keys of a provider's config through the admin API (an empty
/// string unsets a key); the `Warning` headers of the answer.
async fn set_config(w: &World, alias: &str, changes: Value) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut idp: Value =
        http.get(idp_url(w, alias)).bearer_auth(ADMIN_TOKEN).send().await.unwrap().json().await.unwrap();
    for (k, v) in changes.as_object().unwrap() {
        idp["config"][k] = v.clone();
    }
    let r = http.put(idp_url(w, alias)).bearer_auth(ADMIN_TOKEN).json(&idp).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204, "{}", r.text().await.unwrap_or_default());
    r.headers().get_all("warning").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

/// Starts a sign-in of the app in a fresh browser with `extra` parameters;
/// where it ended.
async fn attempt(w: &World, extra: &[(&str, &str)]) -> Page {
    let app = w.app().await;
    w.authorize(&Browser::new(), &app, APP_CB, &["email"], extra).await.0
}

fn signed_in(page: &Page) -> bool {
    page.url.starts_with(APP_CB) && query_params(&page.url).contains_key("code")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_key_rotation_needs_no_restart() {
    logs::start();
    let w = World::start(TestDb::sqlite()).await;
    w.sign_in(&Browser::new()).await;

    let r = reqwest::Client::new().post(w.node.url("/__test/rotate")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let kid = r.json::<Value>().await.unwrap()["kid"].as_str().unwrap().to_owned();
    let published: Value = reqwest::get(w.node.url("/jwks")).await.unwrap().json().await.unwrap();
    assert_eq!(published["keys"].as_array().unwrap().len(), 2, "old and new keys published: {published}");

    // A fresh browser signs in at once, through the same Federa instance.
    let tokens = w.sign_in(&Browser::new()).await;
    assert_eq!(tokens.id_claims()["preferred_username"], "alice");
    let fetched = logs::containing(&kid);
    assert!(
        fetched.iter().any(|l| l.contains("fetched for a token naming a kid it lacked")),
        "the new key set was read for the new kid: {fetched:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_signature_validation_the_claims_are_still_checked() {
    logs::start();
    let w = World::start(TestDb::sqlite()).await;
    let forged = BadIdp::start(Misbehaviour::BadSignature, "federa", "lax-secret");
    let wrong_nonce = BadIdp::start(Misbehaviour::NonceMismatch, "federa", "lax-secret");
    let provider = |alias: &str, issuer: &str, validate: &str| {
        json!({"alias": alias, "providerId": "oidc", "config": {
            "issuer": issuer, "clientId": "federa", "clientSecret": "lax-secret",
            "clientAuthMethod": "client_secret_post", "validateSignature": validate}})
    };
    let http = reqwest::Client::new();
    let create = |body: Value| {
        let http = http.clone();
        let url = format!("{}/{REALM}/identity-provider/instances", w.fed.admin());
        async move { http.post(url).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap() }
    };
    assert_eq!(create(provider("strict-forged", &forged.issuer, "true")).await.status().as_u16(), 201);
    let r = create(provider("lax-forged", &forged.issuer, "false")).await;
    assert_eq!(r.status().as_u16(), 201);
    let warnings: Vec<String> = r.headers().get_all("warning").iter().map(|v| v.to_str().unwrap().into()).collect();
    assert!(
        warnings.iter().any(|h| h.contains("config.validateSignature") && h.contains("NOT verified")),
        "the admin is told: {warnings:?}"
    );
    assert_eq!(create(provider("lax-nonce", &wrong_nonce.issuer, "false")).await.status().as_u16(), 201);

    let page = attempt(&w, &[("kc_idp_hint", "strict-forged")]).await;
    assert!(!signed_in(&page) && page.body.contains("Sign-in failed"), "{:#?}", page.hops);
    let page = attempt(&w, &[("kc_idp_hint", "lax-forged")]).await;
    assert!(signed_in(&page), "the signature is not checked: {:#?}\n{}", page.hops, page.body);
    let page = attempt(&w, &[("kc_idp_hint", "lax-nonce")]).await;
    assert!(!signed_in(&page), "the nonce still is: {:#?}", page.hops);
    assert!(
        logs::containing("\"lax-nonce\"").iter().any(|l| l.contains("nonce does not match")),
        "{:#?}",
        logs::containing("lax-nonce")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_jwks_url_wins_over_discovery() {
    logs::start();
    let w = World::start(TestDb::sqlite()).await;
    // Federa's own realm keys: not the upstream's, so its ID tokens fail.
    let warnings = set_config(&w, ALIAS, json!({"useJwksUrl": "true", "jwksUrl": w.endpoint("certs")})).await;
    assert!(warnings.is_empty(), "{warnings:?}");
    let page = attempt(&w, &[]).await;
    assert!(!signed_in(&page) && page.body.contains("Sign-in failed"), "{:#?}", page.hops);
    set_config(&w, ALIAS, json!({"jwksUrl": w.node.url("/jwks")})).await;
    assert!(signed_in(&attempt(&w, &[]).await));
    // With signatures not verified, no key set matters.
    set_config(&w, ALIAS, json!({"jwksUrl": w.endpoint("certs"), "validateSignature": "false"})).await;
    assert!(signed_in(&attempt(&w, &[]).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_access_token_is_checked_and_its_claims_passed_on() {
    logs::start();
    let w = World::builder()
        .idp_config(json!({
            // Only the access token carries client_id: a sign-in passes the
            // filter only when its claims are read.
            "filteredByClaim": "true", "claimFilterName": "client_id", "claimFilterValue": "federa",
            // The resource whose access tokens are JWTs; oidc-provider's
            // userinfo does not take them.
            "forwardParameters": "resource", "defaultScope": "openid profile email api", "disableUserInfo": "true",
        }))
        .start_sqlite()
        .await;
    let page = attempt(&w, &[("resource", TEST_API)]).await;
    assert!(!signed_in(&page), "without isAccessTokenJWT the claim is missing: {:#?}", page.hops);
    assert!(page.body.contains("not permitted"), "{}", page.body);

    let warnings = set_config(&w, ALIAS, json!({"isAccessTokenJWT": "true"})).await;
    assert!(warnings.is_empty(), "honoured, so no notice: {warnings:?}");
    let page = attempt(&w, &[("resource", TEST_API)]).await;
    assert!(signed_in(&page), "{:#?}\n{}", page.hops, page.body);

    // An opaque access token (no resource asked for) is refused.
    let before = w.users().await.len();
    let page = attempt(&w, &[("login_hint", "opaque")]).await;
    assert!(!signed_in(&page) && page.body.contains("Sign-in failed"), "{:#?}", page.hops);
    assert!(
        logs::containing("access token (isAccessTokenJWT)").iter().any(|l| l.contains(&format!("{ALIAS:?}"))),
        "{:#?}",
        logs::containing("isAccessTokenJWT")
    );
    assert_eq!(w.users().await.len(), before, "nothing created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_config_reads_the_upstream_from_its_url_or_a_saved_document() {
    let w = World::start(TestDb::sqlite()).await;
    let discovery = w.node.url("/.well-known/openid-configuration");
    let (status, from_url) = w
        .admin(
            reqwest::Method::POST,
            "identity-provider/import-config",
            json!({"providerId": "oidc", "fromUrl": discovery}),
        )
        .await;
    assert_eq!(status, 200, "{from_url}");
    let n = |p: &str| json!(w.node.url(p));
    for (key, value) in [
        ("issuer", json!(w.node.issuer)),
        ("authorizationUrl", n("/auth")),
        ("tokenUrl", n("/token")),
        ("userInfoUrl", n("/me")),
        ("jwksUrl", n("/jwks")),
        ("logoutUrl", n("/session/end")),
        ("useJwksUrl", json!("true")),
        ("validateSignature", json!("true")),
        ("pkceEnabled", json!("true")),
        ("pkceMethod", json!("S256")),
        ("metadataDescriptorUrl", json!(discovery)),
    ] {
        assert_eq!(from_url[key], value, "{key}: {from_url}");
    }

    // A saved copy: the text of the document (as an upload sends it) or the object.
    let text = reqwest::get(&discovery).await.unwrap().text().await.unwrap();
    let mut expected = from_url.clone();
    expected.as_object_mut().unwrap().remove("metadataDescriptorUrl");
    for file in [json!(text), serde_json::from_str::<Value>(&text).unwrap()] {
        let (status, saved) = w
            .admin(
                reqwest::Method::POST,
                "identity-provider/import-config",
                json!({"providerId": "oidc", "file": file}),
            )
            .await;
        assert_eq!((status, &saved), (200, &expected));
    }
    let (status, body) = w
        .admin(
            reqwest::Method::POST,
            "identity-provider/import-config",
            json!({"providerId": "oidc", "file": "{\"issuer\": \"x\"}"}),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("file")), "{body}");

    // The imported map signs people in, as it is.
    let mut config = expected.as_object().unwrap().clone();
    config.insert("clientId".into(), json!("federa"));
    config.insert("clientSecret".into(), json!(UPSTREAM_SECRET));
    config.insert("clientAuthMethod".into(), json!("client_secret_basic"));
    let idp = json!({"alias": ALIAS, "providerId": "oidc", "config": config});
    let (status, body) = w.admin(reqwest::Method::PUT, &format!("identity-provider/instances/{ALIAS}"), idp).await;
    assert_eq!(status, 204, "{body}");
    assert!(signed_in(&attempt(&w, &[]).await));
}
