//! Client authentication with a JWT at Federa's own endpoints (OpenID
//! Connect Core 1.0 section 9, RFC 7523 sections 2.2 and 3, RFC 7521
//! section 4.2): `private_key_jwt` for `client-jwt` clients, whose keys come
//! from `jwks.string` or from `jwks.url` (served here by a small HTTP
//! server), and `client_secret_jwt` for `client-secret-jwt` clients. The
//! assertions are made by an independent JOSE library (`jsonwebtoken`), never
//! by Federa's code; every refusal is the same `invalid_client` (401).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use federa_tests::world::World;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The secret of the client-secret-jwt client (long enough for HS256).
const HS_SECRET: &str = "hs-client-secret-0123456789abcdef-0123456789";

/// An RSA key pair: the private key as PEM for `jsonwebtoken`, the public
/// half as a JWK with `kid`.
struct RsaKey {
    pem: Vec<u8>,
    jwk: Value,
    kid: String,
}

impl RsaKey {
    fn new(kid: &str) -> Self {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let b64 = |n: &openssl::bn::BigNumRef| URL_SAFE_NO_PAD.encode(n.to_vec());
        let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(rsa.n()), "e": b64(rsa.e())});
        Self { pem: rsa.private_key_to_pem().unwrap(), jwk, kid: kid.to_owned() }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The claims of RFC 7523 section 3 for `client_id` and `aud`, with a fresh
/// jti, a 60 s lifetime, and `changes` applied (a null removes a claim).
fn claims(client_id: &str, aud: &str, changes: Value) -> Value {
    let mut c = json!({
        "iss": client_id, "sub": client_id, "aud": aud, "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now(), "exp": now() + 60,
    });
    for (k, v) in changes.as_object().cloned().unwrap_or_default() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(&k);
        } else {
            c[k] = v;
        }
    }
    c
}

/// A private_key_jwt assertion signed by `key` (RS256, its kid).
fn rs256(key: &RsaKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(&key.pem).unwrap()).unwrap()
}

/// A client_secret_jwt assertion (HS256 with `secret`).
fn hs256(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

/// An unsigned JWT (`alg: none`), which no JOSE library makes willingly.
fn unsigned(claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.", part(&json!({"alg": "none", "typ": "JWT"})), part(claims))
}

/// A client_credentials request authenticated by `assertion`.
async fn token(w: &World, assertion: &str) -> (u16, Value) {
    w.post_form(
        "token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
        None,
    )
    .await
}

/// An introspection of `token` by the client the assertion authenticates.
async fn introspect(w: &World, assertion: &str, token: &str) -> (u16, Value) {
    w.post_form(
        "token/introspect",
        &[("token", token), ("client_assertion_type", ASSERTION_TYPE), ("client_assertion", assertion)],
        None,
    )
    .await
}

fn assert_invalid_client((status, body): (u16, Value), what: &str) {
    assert_eq!(status, 401, "{what}: {body}");
    assert_eq!(body["error"], "invalid_client", "{what}: {body}");
}

/// A JWK Set served over HTTP, replaceable, counting its fetches.
struct JwksServer {
    url: String,
    set: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(set: Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let (set, hits) = (Arc::new(Mutex::new(set)), Arc::new(AtomicUsize::new(0)));
        let (served, counted) = (set.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let body = served.lock().unwrap().to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { url, set, hits }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_with_a_jwks_string_authenticates_once_per_assertion() {
    let key = RsaKey::new("svc-key-1");
    let stranger = RsaKey::new("svc-key-1");
    let w = World::builder()
        .client(json!({
            "clientId": "svc-jwt", "clientAuthenticatorType": "client-jwt", "serviceAccountsEnabled": true,
            "secret": "a-secret-left-over-from-another-type-0123456789",
            "attributes": {"jwks.string": json!({"keys": [key.jwk]}).to_string()},
        }))
        .start_sqlite()
        .await;
    let token_url = w.endpoint("token");
    let good = |changes: Value| rs256(&key, &key.kid, &claims("svc-jwt", &token_url, changes));

    // The token endpoint, then introspection with another assertion whose
    // audience is the issuer (Keycloak accepts it too).
    let first = good(json!({}));
    let (status, body) = token(&w, &first).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let by_issuer = rs256(&key, &key.kid, &claims("svc-jwt", &w.issuer(), json!({})));
    let (status, body) = introspect(&w, &by_issuer, &access).await;
    assert_eq!((status, &body["active"]), (200, &json!(true)), "{body}");
    assert_eq!(body["client_id"], "svc-jwt");

    // The same assertion a second time, at either endpoint.
    assert_invalid_client(token(&w, &first).await, "replayed at the token endpoint");
    assert_invalid_client(introspect(&w, &by_issuer, &access).await, "replayed at introspection");

    // What the checks refuse.
    let refused = [
        ("a wrong aud", good(json!({"aud": "https://elsewhere.test/token"}))),
        ("an expired one", good(json!({"iat": now() - 600, "exp": now() - 300}))),
        ("one without exp", good(json!({"exp": null}))),
        ("one living an hour", good(json!({"exp": now() + 3600}))),
        ("one not yet valid", good(json!({"nbf": now() + 600}))),
        ("one without jti", good(json!({"jti": null}))),
        ("iss other than the client", good(json!({"iss": "other"}))),
        ("signed by another key", rs256(&stranger, &key.kid, &claims("svc-jwt", &token_url, json!({})))),
        ("an unknown kid", rs256(&key, "nope", &claims("svc-jwt", &token_url, json!({})))),
        ("alg none", unsigned(&claims("svc-jwt", &token_url, json!({})))),
        (
            "HS256 keyed with the stored secret",
            hs256("a-secret-left-over-from-another-type-0123456789", &claims("svc-jwt", &token_url, json!({}))),
        ),
    ];
    for (what, assertion) in &refused {
        assert_invalid_client(token(&w, assertion).await, what);
    }

    // A client-jwt client has no usable secret, in any form.
    let (status, body) = w.admin(reqwest::Method::GET, "clients?clientId=svc-jwt", Value::Null).await;
    assert_eq!(status, 200);
    assert!(body[0].get("secret").is_none_or(Value::is_null), "{body}");
    let secret = "a-secret-left-over-from-another-type-0123456789";
    let form = [("grant_type", "client_credentials")];
    assert_invalid_client(w.post_form("token", &form, Some(("svc-jwt", secret))).await, "Basic");
    let form = [("grant_type", "client_credentials"), ("client_id", "svc-jwt"), ("client_secret", secret)];
    assert_invalid_client(w.post_form("token", &form, None).await, "client_secret_post");

    // Revocation authenticates the same way.
    let revoke_aud = w.endpoint("revoke");
    let revoke = rs256(&key, &key.kid, &claims("svc-jwt", &revoke_aud, json!({})));
    let form = [("token", access.as_str()), ("client_assertion_type", ASSERTION_TYPE), ("client_assertion", &revoke)];
    let (status, body) = w.post_form("revoke", &form, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = introspect(&w, &good(json!({})), &access).await;
    assert_eq!((status, &body["active"]), (200, &json!(false)), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_with_a_jwks_url_is_fetched_and_refetched_for_a_new_kid() {
    let key = RsaKey::new("url-key-1");
    let rotated = RsaKey::new("url-key-2");
    let server = JwksServer::start(json!({"keys": [key.jwk]}));
    let w = World::builder()
        .client(json!({
            "clientId": "svc-url", "clientAuthenticatorType": "client-jwt", "serviceAccountsEnabled": true,
            "attributes": {"use.jwks.url": "true", "jwks.url": server.url},
        }))
        .start_sqlite()
        .await;
    let token_url = w.endpoint("token");
    let sign = |k: &RsaKey| rs256(k, &k.kid, &claims("svc-url", &token_url, json!({})));

    let (status, body) = token(&w, &sign(&key)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = token(&w, &sign(&key)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "the set is cached");

    // The client rotates its key: an assertion naming the new kid makes
    // Federa fetch the set again, at most once per interval, so the first
    // tries may be refused; it is accepted within the interval's bound.
    *server.set.lock().unwrap() = json!({"keys": [key.jwk, rotated.jwk]});
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = token(&w, &sign(&rotated)).await;
        if status == 200 {
            break;
        }
        assert_invalid_client((status, body), "a new kid before the refetch");
        assert!(Instant::now() < deadline, "the rotated key was never fetched");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let hits = server.hits.load(Ordering::SeqCst);
    assert!((2..=3).contains(&hits), "refetches are rate-limited: {hits} fetches");
    // A key the set never had stays refused, without a fetch per request.
    let stranger = RsaKey::new("url-key-3");
    for _ in 0..5 {
        assert_invalid_client(token(&w, &sign(&stranger)).await, "an unknown kid");
    }
    assert!(server.hits.load(Ordering::SeqCst) <= hits + 1, "an unknown kid does not fetch every time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_jwt_with_hs256() {
    let key = RsaKey::new("hs-client-rsa");
    let w = World::builder()
        .client(json!({
            "clientId": "svc-hs", "clientAuthenticatorType": "client-secret-jwt", "serviceAccountsEnabled": true,
            "secret": HS_SECRET, "attributes": {"jwks.string": json!({"keys": [key.jwk]}).to_string()},
        }))
        .start_sqlite()
        .await;
    let token_url = w.endpoint("token");
    let assertion = hs256(HS_SECRET, &claims("svc-hs", &token_url, json!({})));
    let (status, body) = token(&w, &assertion).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let (status, body) = introspect(&w, &hs256(HS_SECRET, &claims("svc-hs", &token_url, json!({}))), &access).await;
    assert_eq!((status, &body["active"]), (200, &json!(true)), "{body}");

    assert_invalid_client(token(&w, &assertion).await, "replayed");
    let other = hs256("another-secret-of-sufficient-length-0123456789", &claims("svc-hs", &token_url, json!({})));
    assert_invalid_client(token(&w, &other).await, "another secret");
    let by_key = rs256(&key, &key.kid, &claims("svc-hs", &token_url, json!({})));
    assert_invalid_client(token(&w, &by_key).await, "a private key for a client-secret-jwt client");
    assert_invalid_client(token(&w, &unsigned(&claims("svc-hs", &token_url, json!({})))).await, "alg none");
    // Its method is the assertion: the secret itself does not authenticate it.
    let form = [("grant_type", "client_credentials")];
    assert_invalid_client(w.post_form("token", &form, Some(("svc-hs", HS_SECRET))).await, "Basic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_the_jwt_methods_and_algorithms() {
    let w = World::builder().start_sqlite().await;
    let doc: Value =
        reqwest::get(format!("{}/.well-known/openid-configuration", w.issuer())).await.unwrap().json().await.unwrap();
    for endpoint in ["token", "introspection", "revocation"] {
        let methods = doc[format!("{endpoint}_endpoint_auth_methods_supported")].as_array().unwrap().clone();
        assert!(methods.contains(&json!("client_secret_jwt")) && methods.contains(&json!("private_key_jwt")), "{doc}");
        let algs = doc[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")].as_array().unwrap().clone();
        assert!(algs.contains(&json!("HS256")) && algs.contains(&json!("RS256")), "{doc}");
        assert!(!algs.contains(&json!("none")), "{doc}");
    }
}

/// The same assertion sent eight times at once: its `jti` is added to the
/// session store only if absent, atomically, so exactly one request passes.
async fn racing_replays_are_refused(
    db: federa_tests::TestDb,
    store: federa_storage::DbStore,
    sessions: Arc<dyn federa_broker::SessionStore>,
) {
    let key = RsaKey::new("race-key");
    let w = World::builder()
        .client(json!({
            "clientId": "svc-race", "clientAuthenticatorType": "client-jwt", "serviceAccountsEnabled": true,
            "attributes": {"jwks.string": json!({"keys": [key.jwk]}).to_string()},
        }))
        .start(db, store, sessions)
        .await;
    let assertion = rs256(&key, &key.kid, &claims("svc-race", &w.endpoint("token"), json!({})));
    let url = w.endpoint("token");
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let (url, assertion) = (url.clone(), assertion.clone());
            tokio::spawn(async move {
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", assertion.as_str()),
                ];
                let r = reqwest::Client::new().post(url).form(&form).send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    let mut passed = 0;
    for t in tries {
        let (status, body) = t.await.unwrap();
        if status == 200 {
            passed += 1;
        } else {
            assert_invalid_client((status, body), "a racing replay");
        }
    }
    assert_eq!(passed, 1, "exactly one use of the assertion");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_replays_on_sqlite() {
    let db = federa_tests::TestDb::sqlite();
    let store = db.store();
    let sessions = Arc::new(store.embedded_sessions());
    racing_replays_are_refused(db, store, sessions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_replays_on_postgres() {
    let Some(db) = federa_tests::TestDb::postgres("client_jwt::racing_replays_on_postgres") else { return };
    let store = db.store();
    let sessions = Arc::new(store.embedded_sessions());
    racing_replays_are_refused(db, store, sessions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_replays_on_redis() {
    let Some(redis) = federa_tests::redis_sessions("client_jwt::racing_replays_on_redis").await else { return };
    let db = federa_tests::TestDb::sqlite();
    let store = db.store();
    racing_replays_are_refused(db, store, Arc::new(redis)).await;
}
