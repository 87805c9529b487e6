//! How Federa authenticates at an upstream token endpoint, against the real
//! upstream (node oidc-provider) configured for each method: client_secret_jwt
//! (an HMAC assertion with the client secret) and private_key_jwt (an
//! assertion signed with the realm's key, whose public half the upstream reads
//! from the realm's JWKS). A wrong secret is refused by the upstream, and the
//! sign-in ends on Federa's error page.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use federa_broker::SessionStore;
use federa_tests::browser::{query_params, Browser};
use federa_tests::upstream::NodeIdp;
use federa_tests::{RunningFedera, TestDb, ADMIN_TOKEN};
use serde_json::{json, Value};

const REALM: &str = "upauth";
const APP_CB: &str = "http://app.test/cb";
/// Long enough for HS256 (RFC 7518 section 3.2: at least 32 bytes).
const JWT_SECRET: &str = "a-client-secret-for-hs256-assertions-7c1f0e9a";
/// Long enough for HS384 (48 bytes).
const LONG_SECRET: &str = "a-client-secret-long-enough-for-hs384-and-hs512-assertions-5d2e8b";

async fn admin(fed: &RunningFedera, method: reqwest::Method, path: &str, body: Value) -> u16 {
    let r = reqwest::Client::new()
        .request(method, format!("{}{path}", fed.admin()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

async fn sign_in(fed: &RunningFedera, alias: &str) -> federa_tests::browser::Page {
    let url = format!(
        "{}/realms/{REALM}/protocol/openid-connect/auth?client_id=app&redirect_uri={}&response_type=code&scope=openid&state=st&kc_idp_hint={alias}&login_hint=user-of-{alias}",
        fed.base,
        url::form_urlencoded::byte_serialize(APP_CB.as_bytes()).collect::<String>()
    );
    Browser::new().navigate(&url, APP_CB).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_assertions_authenticate_federa_at_the_upstream() {
    federa_tests::logs::start();
    let db = TestDb::sqlite();
    let store = db.store();
    let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
    let fed = RunningFedera::start(&store, sessions);
    let realm =
        json!({"realm": REALM, "clients": [{"clientId": "app", "secret": "app-secret", "redirectUris": [APP_CB]}]});
    assert_eq!(admin(&fed, reqwest::Method::POST, "", realm).await, 201);
    // The upstream knows Federa's realm key from the realm's published JWKS.
    let jwks: Value = reqwest::get(format!("{}/realms/{REALM}/protocol/openid-connect/certs", fed.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let callback = |alias: &str| format!("{}/realms/{REALM}/broker/{alias}/endpoint", fed.base);
    let node = NodeIdp::start(json!([
        {"client_id": "fed-hmac", "client_secret": JWT_SECRET, "token_endpoint_auth_method": "client_secret_jwt",
         "redirect_uris": [callback("hmac"), callback("wrong")]},
        {"client_id": "fed-key", "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks,
         "redirect_uris": [callback("key"), callback("es256")]},
        // oidc-provider accepts HS256 client assertions and not HS384 (its
        // default enabledJWA): an assertion signed as configured is refused.
        {"client_id": "fed-hs384", "client_secret": LONG_SECRET, "token_endpoint_auth_method": "client_secret_jwt",
         "redirect_uris": [callback("hs384")]},
    ]));
    let idp = |alias: &str, client: &str, method: &str, secret: Option<&str>| {
        // Each provider signs in a user of its own (the login hint names them).
        let mut config =
            json!({"issuer": node.issuer, "clientId": client, "clientAuthMethod": method, "loginHint": "true"});
        if let Some(s) = secret {
            config["clientSecret"] = json!(s);
        }
        json!({"alias": alias, "providerId": "oidc", "config": config})
    };
    let path = format!("/{REALM}/identity-provider/instances");
    for body in [
        idp("hmac", "fed-hmac", "client_secret_jwt", Some(JWT_SECRET)),
        idp("key", "fed-key", "private_key_jwt", None),
        idp("wrong", "fed-hmac", "client_secret_jwt", Some("another-secret-of-enough-length-0123456789")),
    ] {
        assert_eq!(admin(&fed, reqwest::Method::POST, &path, body).await, 201);
    }
    // clientAssertionSigningAlg is what the assertion is signed with.
    let mut hs384 = idp("hs384", "fed-hs384", "client_secret_jwt", Some(LONG_SECRET));
    hs384["config"]["clientAssertionSigningAlg"] = json!("HS384");
    let mut es256 = idp("es256", "fed-key", "private_key_jwt", None);
    es256["config"]["clientAssertionSigningAlg"] = json!("ES256");
    for body in [hs384, es256] {
        assert_eq!(admin(&fed, reqwest::Method::POST, &path, body).await, 201);
    }

    for alias in ["hmac", "key"] {
        let page = sign_in(&fed, alias).await;
        let refused = federa_tests::logs::containing(&format!("sign-in through {alias:?} refused"));
        assert!(page.url.starts_with(APP_CB), "{alias}: {:#?}\n{refused:#?}", page.hops);
        assert!(query_params(&page.url).contains_key("code"), "{alias}: {}", page.url);
    }
    // An assertion the upstream cannot verify: its token endpoint refuses, and so does Federa.
    let page = sign_in(&fed, "wrong").await;
    assert_eq!(page.status, 400, "{:#?}", page.hops);
    assert!(!page.url.starts_with(APP_CB), "nothing reaches the app: {:#?}", page.hops);
    assert!(page.body.contains("Sign-in failed"), "{}", page.body);
    let refused = federa_tests::logs::containing("sign-in through \"wrong\" refused");
    assert!(refused.iter().any(|l| l.contains("invalid_client")), "the upstream refused the assertion: {refused:#?}");

    // HS384, as configured: the upstream, which accepts only HS256, refuses it
    // (were the setting ignored, the HS256 default would sign in).
    let page = sign_in(&fed, "hs384").await;
    assert_eq!(page.status, 400, "{:#?}", page.hops);
    let refused = federa_tests::logs::containing("sign-in through \"hs384\" refused");
    assert!(refused.iter().any(|l| l.contains("invalid_client")), "HS384 was sent and refused: {refused:#?}");
    // ES256 for private_key_jwt: not the realm key's algorithm (RS256), so
    // Federa refuses to sign rather than send something else.
    let page = sign_in(&fed, "es256").await;
    assert_eq!(page.status, 400, "{:#?}", page.hops);
    let refused = federa_tests::logs::containing("sign-in through \"es256\" refused");
    assert!(refused.iter().any(|l| l.contains("clientAssertionSigningAlg ES256")), "{refused:#?}");
}

/// The PEM of an RSA public JWK.
fn rsa_pem(jwk: &Value) -> String {
    use base64::Engine as _;
    let part = |k: &str| {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwk[k].as_str().unwrap()).unwrap();
        openssl::bn::BigNum::from_slice(&bytes).unwrap()
    };
    let rsa = openssl::rsa::Rsa::from_public_components(part("n"), part("e")).unwrap();
    String::from_utf8(openssl::pkey::PKey::from_rsa(rsa).unwrap().public_key_to_pem().unwrap()).unwrap()
}

/// `useJwksUrl: false` with `publicKeySignatureVerifier`: the ID token is
/// checked with the configured key (PEM), never the upstream's JWKS, and a
/// configured key id must be the token's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_upstream_key_checks_the_id_token() {
    federa_tests::logs::start();
    let db = TestDb::sqlite();
    let store = db.store();
    let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
    let fed = RunningFedera::start(&store, sessions);
    let realm =
        json!({"realm": REALM, "clients": [{"clientId": "app", "secret": "app-secret", "redirectUris": [APP_CB]}]});
    assert_eq!(admin(&fed, reqwest::Method::POST, "", realm).await, 201);
    let callback = |alias: &str| format!("{}/realms/{REALM}/broker/{alias}/endpoint", fed.base);
    let aliases = ["pinned", "wrongkid", "otherkey"];
    let node = NodeIdp::start(json!([{
        "client_id": "fed", "client_secret": "node-secret", "token_endpoint_auth_method": "client_secret_basic",
        "redirect_uris": aliases.iter().map(|a| callback(a)).collect::<Vec<_>>(),
    }]));
    let jwks: Value = reqwest::get(node.url("/jwks")).await.unwrap().json().await.unwrap();
    let key = jwks["keys"].as_array().unwrap().iter().find(|k| k["kty"] == "RSA").unwrap().clone();
    let kid = key["kid"].as_str().unwrap().to_owned();
    let other = openssl::rsa::Rsa::generate(2048).unwrap();
    let other_pem = String::from_utf8(other.public_key_to_pem().unwrap()).unwrap();
    for (alias, pem, key_id) in [
        ("pinned", rsa_pem(&key), kid.clone()),
        ("wrongkid", rsa_pem(&key), "another-kid".into()),
        ("otherkey", other_pem, kid),
    ] {
        let body = json!({"alias": alias, "providerId": "oidc", "config": {
            "issuer": node.issuer, "clientId": "fed", "clientSecret": "node-secret", "clientAuthMethod": "client_secret_basic",
            "loginHint": "true", "useJwksUrl": "false", "validateSignature": "true",
            "publicKeySignatureVerifier": pem, "publicKeySignatureVerifierKeyId": key_id}});
        assert_eq!(
            admin(&fed, reqwest::Method::POST, &format!("/{REALM}/identity-provider/instances"), body).await,
            201
        );
    }
    let page = sign_in(&fed, "pinned").await;
    assert!(page.url.starts_with(APP_CB), "{:#?}", page.hops);
    for (alias, reason) in [("wrongkid", "is not publicKeySignatureVerifierKeyId"), ("otherkey", "signature")] {
        let page = sign_in(&fed, alias).await;
        assert_eq!(page.status, 400, "{alias}: {:#?}", page.hops);
        let refused = federa_tests::logs::containing(&format!("sign-in through {alias:?} refused"));
        assert!(refused.iter().any(|l| l.contains(reason)), "{alias}: {refused:#?}");
    }
    // A PEM that is no key is refused at the admin API, naming the field.
    let bad = json!({"alias": "bad", "providerId": "oidc", "config": {"issuer": node.issuer, "clientId": "fed",
        "useJwksUrl": "false", "publicKeySignatureVerifier": "not a key"}});
    assert_eq!(admin(&fed, reqwest::Method::POST, &format!("/{REALM}/identity-provider/instances"), bad).await, 400);
}
