//! OpenID Connect Back-Channel Logout 1.0 both ways, and upstream logout,
//! end to end: the real upstream (node oidc-provider) sends its Logout
//! Tokens to Federa, Federa sends its own to the apps' receivers (small HTTP
//! servers here), and an RP-initiated logout at Federa ends the upstream
//! session through `logoutUrl`. Federa's Logout Tokens are checked with an
//! independent JOSE library (`jsonwebtoken`) against the realm's JWKS;
//! crafted Logout Tokens are signed with `jsonwebtoken` too, by a key whose
//! public half is a provider's configured key (`publicKeySignatureVerifier`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use federa_broker::SessionStore;
use federa_tests::browser::{query_params, Browser};
use federa_tests::world::{claims_of, World, ALIAS, APP_BYE, REALM, SPA_CB};
use federa_tests::TestDb;
use josekit::jwk::KeyPair as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Where the node upstream posts its Logout Tokens.
const FEDERA_BCL: &str = "{federa}/realms/e2e/protocol/openid-connect/logout/backchannel-logout";
/// How long a background effect may take before a test gives up on it.
const DEADLINE: Duration = Duration::from_secs(20);

/// How a [`Receiver`] answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// 200 at once.
    Ok,
    /// Never: the connection stays open, unanswered.
    Hang,
    /// 503 to the first request, 200 after.
    FailOnce,
    /// 503 until [`Receiver::heal`], 200 after.
    FailUntilHealed,
}

/// A back-channel logout receiver of an app: records every POST body, and
/// answers as told.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
    healed: Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    async fn start(answer: Answer) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/bcl", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        let healed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let is_healed = healed.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let kept = kept.clone();
                let is_healed = is_healed.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let body = loop {
                        let n = stream.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text[..end]
                                .lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + length {
                                break text[end + 4..end + 4 + length].to_owned();
                            }
                        }
                    };
                    let first = {
                        let mut bodies = kept.lock().unwrap();
                        bodies.push(body);
                        bodies.len() == 1
                    };
                    let status = match answer {
                        // Holds the connection open and never answers.
                        Answer::Hang => std::future::pending::<&str>().await,
                        Answer::FailOnce if first => "503 Service Unavailable",
                        Answer::FailUntilHealed if !is_healed.load(std::sync::atomic::Ordering::SeqCst) => {
                            "503 Service Unavailable"
                        }
                        _ => "200 OK",
                    };
                    let head = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    let _ = stream.write_all(head.as_bytes()).await;
                });
            }
        });
        Receiver { url, bodies, healed }
    }

    /// From now on, a [`Answer::FailUntilHealed`] receiver answers 200.
    fn heal(&self) {
        self.healed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The Logout Tokens received so far.
    fn tokens(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| {
                let form: std::collections::HashMap<String, String> =
                    url::form_urlencoded::parse(b.as_bytes()).into_owned().collect();
                form.get("logout_token").cloned().unwrap_or_else(|| panic!("no logout_token in {b:?}"))
            })
            .collect()
    }

    /// Waits (up to [`DEADLINE`]) until `n` Logout Tokens have arrived.
    async fn wait_for(&self, n: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let got = self.tokens();
            if got.len() >= n {
                return got;
            }
            assert!(start.elapsed() < DEADLINE, "{} logout token(s) arrived, {n} expected", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Checks a Logout Token Federa sent, with `jsonwebtoken` and the realm's
/// JWKS (signature, `iss`, `aud`, `iat`, `exp`), and answers its claims.
async fn verified_logout_token(w: &World, token: &str, client_id: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"), "explicitly typed (section 2.4)");
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(w.endpoint("certs")).await.unwrap().json().await.unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("signed by a key of the realm's JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[client_id]);
    validation.set_issuer(&[w.issuer()]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap().claims;
    assert_eq!(claims["events"], json!({ EVENT: {} }), "{claims}");
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()), "{claims}");
    claims
}

/// Whether the node upstream still has the browser's session: a
/// `prompt=none` request there answers a code, or `login_required`.
async fn node_session(w: &World, browser: &Browser) -> bool {
    let cb = format!("{}/broker/{ALIAS}/endpoint", w.issuer());
    let url = format!(
        "{}?client_id=federa&response_type=code&scope=openid&prompt=none&state=s&nonce=n&redirect_uri={}",
        w.node.url("/auth"),
        url::form_urlencoded::byte_serialize(cb.as_bytes()).collect::<String>()
    );
    let page = browser.navigate(&url, &cb).await;
    let params = query_params(&page.url);
    match (params.get("code"), params.get("error").map(String::as_str)) {
        (Some(_), _) => true,
        (None, Some("login_required")) => false,
        other => panic!("{other:?}: {:#?}", page.hops),
    }
}

/// A world whose upstream sends its Logout Tokens to Federa, whose app has
/// a back-channel logout receiver, and whose realm has two more providers
/// with a configured key (`forger`, enabled; `off`, disabled), hidden.
async fn world(db: TestDb, store: federa_storage::DbStore, sessions: Arc<dyn SessionStore>, app: &Receiver) -> World {
    World::builder()
        .node_client(json!({"backchannel_logout_uri": FEDERA_BCL, "backchannel_logout_session_required": true}))
        .app_attributes(json!({"backchannel.logout.url": app.url}))
        .start(db, store, sessions)
        .await
}

async fn sqlite() -> (TestDb, federa_storage::DbStore, Arc<dyn SessionStore>) {
    let db = TestDb::sqlite();
    let store = db.store();
    let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
    (db, store, sessions)
}

/// The person signs out at the upstream (node's RP-initiated logout, in
/// the browser): node's Logout Token ends the Federa session, and the app
/// that took part in it gets Federa's Logout Token; the SPA, without a
/// back-channel URL, gets none, and nothing else is sent.
async fn upstream_logout_reaches_federa_and_the_app(w: World, app: Receiver) {
    let browser = Browser::new();
    let tokens = w.sign_in(&browser).await;
    let spa = w.sign_in_to(&browser, "spa", None, SPA_CB, &[]).await;
    let sid = claims_of(&tokens.access_token)["sid"].as_str().unwrap().to_owned();
    let user = claims_of(&tokens.access_token)["sub"].as_str().unwrap().to_owned();
    assert!(w.record(&sid).await.is_some());
    assert!(app.tokens().is_empty(), "nothing is sent while the session lives");

    // Node's sign-out page submits itself; node then posts its Logout
    // Token to Federa before it answers.
    let done = "http://upstream-signed-out.test/";
    let page = browser.navigate(&w.node.url("/session/end?client_id=federa"), done).await;
    assert!(page.body.contains("signed out of the upstream"), "{:#?}\n{}", page.hops, page.body);

    assert_eq!(w.userinfo(&tokens.access_token).await, 401, "the Federa session has ended");
    assert_eq!(w.userinfo(&spa.access_token).await, 401);
    assert!(w.record(&sid).await.is_none());
    assert_eq!(w.silent(&browser).await, Err("login_required".to_owned()));

    let received = app.wait_for(1).await;
    let claims = verified_logout_token(&w, &received[0], "app").await;
    assert_eq!(claims["sid"], sid.as_str(), "{claims}");
    assert_eq!(claims["sub"], user.as_str(), "{claims}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.tokens().len(), 1, "one session, one app with a receiver: one token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_logout_on_sqlite() {
    let app = Receiver::start(Answer::Ok).await;
    let (db, store, sessions) = sqlite().await;
    upstream_logout_reaches_federa_and_the_app(world(db, store, sessions, &app).await, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_logout_on_postgres() {
    let Some(db) = TestDb::postgres("backchannel::upstream_logout_on_postgres") else { return };
    let app = Receiver::start(Answer::Ok).await;
    let store = db.store();
    let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
    upstream_logout_reaches_federa_and_the_app(world(db, store, sessions, &app).await, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_logout_with_sessions_on_redis() {
    let Some(redis) = federa_tests::redis_sessions("backchannel::upstream_logout_with_sessions_on_redis").await else {
        return;
    };
    let app = Receiver::start(Answer::Ok).await;
    let db = TestDb::sqlite();
    let store = db.store();
    upstream_logout_reaches_federa_and_the_app(world(db, store, Arc::new(redis), &app).await, app).await;
}

/// An RSA key of the test's own, and a provider of the realm configured
/// with its public half.
struct Forger {
    encoding: EncodingKey,
    pem: String,
}

impl Forger {
    fn new() -> Forger {
        let pair = josekit::jws::RS256.generate_key_pair(2048).unwrap();
        Forger {
            encoding: EncodingKey::from_rsa_pem(&pair.to_pem_private_key()).unwrap(),
            pem: String::from_utf8(pair.to_pem_public_key()).unwrap(),
        }
    }

    /// Adds a hidden provider `alias` with issuer `https://{alias}.test`
    /// that trusts this key.
    async fn provider(&self, w: &World, alias: &str, enabled: bool) {
        let iss = format!("https://{alias}.test");
        let idp = json!({"alias": alias, "providerId": "oidc", "enabled": enabled, "config": {
            "clientId": "federa-at-forger", "issuer": iss, "authorizationUrl": format!("{iss}/auth"),
            "tokenUrl": format!("{iss}/token"), "useJwksUrl": "false", "publicKeySignatureVerifier": self.pem,
            "publicKeySignatureVerifierKeyId": "forger-1", "hideOnLoginPage": "true", "allowedClockSkew": "5"}});
        let (status, body) = w.admin(reqwest::Method::POST, "identity-provider/instances", idp).await;
        assert_eq!(status, 201, "{body}");
    }

    /// A Logout Token signed with this key.
    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("forger-1".into());
        header.typ = Some("logout+jwt".into());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn now() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// A correct Logout Token of `iss` for `aud`, with a fresh `jti`.
fn logout_claims(iss: &str, aud: &str, sub: &str, sid: Option<&str>) -> Value {
    let mut c = json!({"iss": iss, "aud": aud, "iat": now(), "exp": now() + 120, "jti": uuid::Uuid::new_v4().to_string(),
                       "sub": sub, "events": { EVENT: {} }});
    if let Some(sid) = sid {
        c["sid"] = json!(sid);
    }
    c
}

async fn post_logout_token(w: &World, token: &str) -> (u16, Option<String>, Value) {
    let r = reqwest::Client::new()
        .post(w.endpoint("logout/backchannel-logout"))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let cache = r.headers().get("cache-control").map(|v| v.to_str().unwrap().to_owned());
    (status, cache, r.json().await.unwrap_or(Value::Null))
}

/// Forged, replayed, wrongly addressed, nonce-carrying and otherwise bad
/// Logout Tokens answer 400 `invalid_request` and end nothing; a correct
/// one answers 200 once.
async fn bad_logout_tokens_end_nothing(w: World, app: Receiver) {
    let forger = Forger::new();
    forger.provider(&w, "forger", true).await;
    forger.provider(&w, "off", false).await;
    let browser = Browser::new();
    let tokens = w.sign_in(&browser).await;
    let sid = claims_of(&tokens.access_token)["sid"].as_str().unwrap().to_owned();
    let up_sid = w.record(&sid).await.unwrap()["upstream_sid"].as_str().unwrap().to_owned();
    let node = w.node.issuer.clone();

    let refused = |why: &'static str| {
        move |(status, cache, body): (u16, Option<String>, Value)| {
            assert_eq!(status, 400, "{why}: {body}");
            assert_eq!(body["error"], "invalid_request", "{why}: {body}");
            assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{why}: {body}");
            assert_eq!(cache.as_deref(), Some("no-store"), "{why}");
        }
    };
    // Naming alice's node session exactly, but signed by a key that is not node's.
    let forged = forger.sign(&logout_claims(&node, "federa", "sub-alice", Some(&up_sid)));
    refused("forged")(post_logout_token(&w, &forged).await);
    // An issuer no provider of the realm has.
    let unknown = forger.sign(&logout_claims("https://unknown.test", "federa-at-forger", "sub-alice", None));
    refused("unknown issuer")(post_logout_token(&w, &unknown).await);
    // Not addressed to Federa's client id at the provider.
    let misaddressed = forger.sign(&logout_claims("https://forger.test", "someone-else", "sub-alice", None));
    refused("wrong audience")(post_logout_token(&w, &misaddressed).await);
    // A nonce: an ID token, not a Logout Token.
    let mut with_nonce = logout_claims("https://forger.test", "federa-at-forger", "sub-alice", None);
    with_nonce["nonce"] = json!("n");
    refused("nonce")(post_logout_token(&w, &forger.sign(&with_nonce)).await);
    // No event, neither sub nor sid, issued in the future, not a JWT, none at all.
    let mut no_event = logout_claims("https://forger.test", "federa-at-forger", "sub-alice", None);
    no_event["events"] = json!({});
    refused("no event")(post_logout_token(&w, &forger.sign(&no_event)).await);
    let mut no_subject = logout_claims("https://forger.test", "federa-at-forger", "x", None);
    no_subject.as_object_mut().unwrap().remove("sub");
    refused("no sub or sid")(post_logout_token(&w, &forger.sign(&no_subject)).await);
    let mut future = logout_claims("https://forger.test", "federa-at-forger", "sub-alice", None);
    future["iat"] = json!(now() + 3600);
    refused("future")(post_logout_token(&w, &forger.sign(&future)).await);
    refused("garbage")(post_logout_token(&w, "not.a.jwt").await);
    refused("missing")(post_logout_token(&w, "").await);
    // A disabled provider's correct token.
    let off = forger.sign(&logout_claims("https://off.test", "federa-at-forger", "sub-alice", None));
    refused("disabled provider")(post_logout_token(&w, &off).await);

    // A correct one is accepted once; its replay is refused.
    let good = forger.sign(&logout_claims("https://forger.test", "federa-at-forger", "sub-nobody", None));
    let (status, cache, body) = post_logout_token(&w, &good).await;
    assert_eq!((status, cache.as_deref()), (200, Some("no-store")), "{body}");
    refused("replayed")(post_logout_token(&w, &good).await);
    // Replays racing each other: exactly one is accepted.
    let raced = forger.sign(&logout_claims("https://forger.test", "federa-at-forger", "sub-nobody", None));
    let answers =
        futures_join(post_logout_token(&w, &raced), post_logout_token(&w, &raced), post_logout_token(&w, &raced)).await;
    let accepted = answers.iter().filter(|(s, _, _)| *s == 200).count();
    assert_eq!(accepted, 1, "{answers:?}");

    // Nothing ended.
    assert_eq!(w.userinfo(&tokens.access_token).await, 200, "alice's session lives");
    assert!(w.record(&sid).await.is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.tokens().is_empty(), "no session ended, no logout sent");
}

async fn futures_join<F: std::future::Future>(a: F, b: F, c: F) -> Vec<F::Output> {
    let (a, b, c) = tokio::join!(a, b, c);
    vec![a, b, c]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_logout_tokens_on_sqlite() {
    let app = Receiver::start(Answer::Ok).await;
    let (db, store, sessions) = sqlite().await;
    bad_logout_tokens_end_nothing(world(db, store, sessions, &app).await, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_logout_tokens_on_postgres() {
    let Some(db) = TestDb::postgres("backchannel::bad_logout_tokens_on_postgres") else { return };
    let app = Receiver::start(Answer::Ok).await;
    let store = db.store();
    let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
    bad_logout_tokens_end_nothing(world(db, store, sessions, &app).await, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_logout_tokens_with_sessions_on_redis() {
    let Some(redis) = federa_tests::redis_sessions("backchannel::bad_logout_tokens_with_sessions_on_redis").await
    else {
        return;
    };
    let app = Receiver::start(Answer::Ok).await;
    let db = TestDb::sqlite();
    let store = db.store();
    bad_logout_tokens_end_nothing(world(db, store, Arc::new(redis), &app).await, app).await;
}

/// A Federa session through the `forger` provider for upstream subject
/// `sub` (and upstream session `up_sid`), written straight to the session
/// store as the sign-in writer would; its public sid.
async fn forger_session(w: &World, sub: &str, up_sid: Option<&str>) -> String {
    use federa_broker::store::{Entry, EntryKind};
    let sid = uuid::Uuid::new_v4().simple().to_string();
    let ttl = Duration::from_secs(600);
    let mut record = json!({"user_id": "u-forged", "auth_time": now(), "idp": "forger", "upstream_sub": sub});
    let mut entries = vec![Entry {
        key: format!("sso-up-sub:{REALM}:forger:{sub}"),
        value: sid.clone(),
        ttl,
        kind: EntryKind::IndexMember,
    }];
    if let Some(up) = up_sid {
        record["upstream_sid"] = json!(up);
        entries.push(Entry {
            key: format!("sso-up-sid:{REALM}:forger:{up}"),
            value: sid.clone(),
            ttl,
            kind: EntryKind::IndexMember,
        });
    }
    entries.push(Entry { key: format!("sso:{REALM}:{sid}"), value: record.to_string(), ttl, kind: EntryKind::Value });
    w.sessions.put_many(entries).await.unwrap();
    sid
}

/// A Logout Token with only `sub` ends every session of that upstream
/// subject at that provider; one with `sid` and `sub` ends that upstream
/// session only when the subject matches; other providers' sessions stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_tokens_find_sessions_by_sid_or_sub() {
    let app = Receiver::start(Answer::Ok).await;
    let (db, store, sessions) = sqlite().await;
    let w = world(db, store, sessions, &app).await;
    let forger = Forger::new();
    forger.provider(&w, "forger", true).await;
    let tokens = w.sign_in(&Browser::new()).await;
    let iss = "https://forger.test";
    let (one, two) = (forger_session(&w, "sub-x", Some("up-1")).await, forger_session(&w, "sub-x", None).await);
    let other = forger_session(&w, "sub-y", Some("up-2")).await;

    // sid with another subject: nothing.
    let mismatched = forger.sign(&logout_claims(iss, "federa-at-forger", "sub-y", Some("up-1")));
    assert_eq!(post_logout_token(&w, &mismatched).await.0, 200);
    assert!(w.record(&one).await.is_some(), "up-1 is sub-x's, not sub-y's");
    // sid and sub: that upstream session only.
    let by_sid = forger.sign(&logout_claims(iss, "federa-at-forger", "sub-x", Some("up-1")));
    assert_eq!(post_logout_token(&w, &by_sid).await.0, 200);
    assert!(w.record(&one).await.is_none() && w.record(&two).await.is_some());
    // sub alone: every session of the subject.
    let mut by_sub = logout_claims(iss, "federa-at-forger", "sub-x", None);
    by_sub.as_object_mut().unwrap().remove("sid");
    assert_eq!(post_logout_token(&w, &forger.sign(&by_sub)).await.0, 200);
    assert!(w.record(&two).await.is_none());
    assert!(w.record(&other).await.is_some(), "another subject's session stays");
    assert_eq!(w.userinfo(&tokens.access_token).await, 200, "the node session stays");
}

/// The RP-initiated logout URL of the app, trusted (with its ID token).
fn app_logout(w: &World, id_token: &str, state: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "{}?id_token_hint={}&post_logout_redirect_uri={}&state={}",
        w.endpoint("logout"),
        enc(id_token),
        enc(APP_BYE),
        enc(state)
    )
}

/// An app receiver that never answers does not hold up the logout: the
/// answer comes at once, while the delivery waits on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_hold_up_logout() {
    let hanging = Receiver::start(Answer::Hang).await;
    let (db, store, sessions) = sqlite().await;
    let w = world(db, store, sessions, &hanging).await;
    let browser = Browser::new();
    let tokens = w.sign_in(&browser).await;

    let started = Instant::now();
    let page = browser.navigate(&app_logout(&w, &tokens.id_token, "bye-1"), APP_BYE).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "the logout took {took:?}");
    assert_eq!(query_params(&page.url).get("state").map(String::as_str), Some("bye-1"), "{:#?}", page.hops);
    assert_eq!(w.userinfo(&tokens.access_token).await, 401);
    // The delivery did start (and is still waiting for an answer).
    let received = hanging.wait_for(1).await;
    verified_logout_token(&w, &received[0], "app").await;
}

/// The admin API's user logout sends the back-channel logouts too (one per
/// session, each naming its session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_logout_sends_backchannel_logouts() {
    let app = Receiver::start(Answer::Ok).await;
    let (db, store, sessions) = sqlite().await;
    let w = world(db, store, sessions, &app).await;
    let (one, two) = (Browser::new(), Browser::new());
    let first = w.sign_in(&one).await;
    let second = w.sign_in(&two).await;
    let user = claims_of(&first.access_token)["sub"].as_str().unwrap().to_owned();
    let (status, _) = w.admin(reqwest::Method::POST, &format!("users/{user}/logout"), Value::Null).await;
    assert_eq!(status, 204);
    let received = app.wait_for(2).await;
    let mut sids = Vec::new();
    for token in &received {
        let claims = verified_logout_token(&w, token, "app").await;
        assert_eq!(claims["sub"], user.as_str());
        sids.push(claims["sid"].as_str().unwrap().to_owned());
    }
    sids.sort();
    let mut want: Vec<String> =
        [&first, &second].iter().map(|t| claims_of(&t.access_token)["sid"].as_str().unwrap().to_owned()).collect();
    want.sort();
    assert_eq!(sids, want);
}

/// A receiver that fails at first gets the Logout Token again, after a
/// backoff, and the same token each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_retried() {
    let flaky = Receiver::start(Answer::FailOnce).await;
    let (db, store, sessions) = sqlite().await;
    let w = world(db, store, sessions, &flaky).await;
    let tokens = w.sign_in(&Browser::new()).await;
    let user = claims_of(&tokens.access_token)["sub"].as_str().unwrap().to_owned();
    let (status, _) = w.admin(reqwest::Method::POST, &format!("users/{user}/logout"), Value::Null).await;
    assert_eq!(status, 204);
    let received = flaky.wait_for(2).await;
    assert_eq!(received[0], received[1], "the same token, delivered again");
    verified_logout_token(&w, &received[1], "app").await;
}

/// RP-initiated logout with a provider that has `logoutUrl`: the browser
/// goes through the upstream's logout (which ends the upstream session),
/// comes back to Federa's `logout_response`, and ends at the app's
/// post-logout redirect URI with the app's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp_logout_goes_through_the_upstream_logout() {
    let app = Receiver::start(Answer::Ok).await;
    let (db, store, sessions) = sqlite().await;
    let w = World::builder()
        .idp_config(json!({"logoutUrl": "{node}/session/end"}))
        .app_attributes(json!({"backchannel.logout.url": app.url}))
        .start(db, store, sessions)
        .await;
    let browser = Browser::new();
    let tokens = w.sign_in(&browser).await;
    assert!(node_session(&w, &browser).await, "signed in upstream");

    let page = browser.navigate(&app_logout(&w, &tokens.id_token, "st/1 2"), APP_BYE).await;
    assert!(page.url.starts_with(APP_BYE), "{:#?}", page.hops);
    assert_eq!(query_params(&page.url).get("state").map(String::as_str), Some("st/1 2"));
    let through_node = page.hops.iter().any(|h| h.starts_with(&w.node.url("/session/end")));
    let back = format!("{}/broker/{ALIAS}/endpoint/logout_response", w.issuer());
    let through_federa = page.hops.iter().any(|h| h.starts_with(&back));
    assert!(through_node && through_federa, "{:#?}", page.hops);
    let to_node = page.hops.iter().find(|h| h.starts_with(&w.node.url("/session/end"))).unwrap();
    assert!(query_params(to_node).contains_key("id_token_hint"), "{to_node}");

    assert!(!node_session(&w, &browser).await, "the upstream session has ended");
    assert_eq!(w.userinfo(&tokens.access_token).await, 401);
    app.wait_for(1).await;

    // The way back is used once: a second visit shows the signed-out page.
    let again = browser.navigate(&format!("{back}?state=whatever"), "http://nowhere.test/").await;
    assert!(!again.url.starts_with(APP_BYE), "{:#?}", again.hops);
}

/// With `backchannelSupported`, Federa ends the upstream session itself
/// (server to server, `id_token_hint`), and the browser goes straight to
/// the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp_logout_ends_the_upstream_session_server_to_server() {
    let (db, store, sessions) = sqlite().await;
    let w = World::builder()
        .idp_config(json!({"logoutUrl": "{node}/backchannel/session/end", "backchannelSupported": "true"}))
        // So that node's ID tokens name its session (`sid`).
        .node_client(json!({"backchannel_logout_uri": FEDERA_BCL, "backchannel_logout_session_required": true}))
        .start(db, store, sessions)
        .await;
    let browser = Browser::new();
    let tokens = w.sign_in(&browser).await;
    assert!(node_session(&w, &browser).await, "signed in upstream");

    let page = browser.navigate(&app_logout(&w, &tokens.id_token, "s2s"), APP_BYE).await;
    assert_eq!(query_params(&page.url).get("state").map(String::as_str), Some("s2s"), "{:#?}", page.hops);
    assert!(
        !page.hops.iter().any(|h| h.starts_with(&w.node.issuer)),
        "the browser never went upstream: {:#?}",
        page.hops
    );
    assert!(!node_session(&w, &browser).await, "the upstream session has ended");
    assert_eq!(w.userinfo(&tokens.access_token).await, 401);
}

/// Discovery says Federa sends back-channel logouts, with `sid`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_backchannel_logout() {
    let (db, store, sessions) = sqlite().await;
    let w = World::builder().start(db, store, sessions).await;
    let doc: Value =
        reqwest::get(format!("{}/.well-known/openid-configuration", w.issuer())).await.unwrap().json().await.unwrap();
    assert_eq!(doc["backchannel_logout_supported"], true);
    assert_eq!(doc["backchannel_logout_session_supported"], true);
}

/// A delivery outlives the instance that queued it, and is made once: the
/// app's receiver fails while the first instance tries; that instance
/// stops; two other instances over the same database and session store
/// sweep the outbox at the same time once the receiver works again, and
/// exactly one of them delivers the same Logout Token.
async fn the_outbox_survives_a_restart_and_delivers_once(mut w: World, app: Receiver) {
    let tokens = w.sign_in(&Browser::new()).await;
    let user = claims_of(&tokens.access_token)["sub"].as_str().unwrap().to_owned();
    let (status, _) = w.admin(reqwest::Method::POST, &format!("users/{user}/logout"), Value::Null).await;
    assert_eq!(status, 204);
    // The first attempt, at once, failed (503).
    let first = app.wait_for(1).await[0].clone();
    verified_logout_token(&w, &first, "app").await;
    assert_eq!(w.sessions.index_members("bcl-outbox").await.unwrap().len(), 1, "queued in the outbox");

    let (b, c) = (
        federa_tests::RunningFedera::start(&w.store, w.sessions.clone()),
        federa_tests::RunningFedera::start(&w.store, w.sessions.clone()),
    );
    let old = std::mem::replace(&mut w.fed, b);
    old.shutdown().await;
    app.heal();
    let before = app.tokens().len();

    let start = Instant::now();
    let mut delivered = 0;
    while delivered == 0 {
        assert!(start.elapsed() < DEADLINE, "no sweep delivered the pending logout");
        let (x, y) =
            tokio::join!(w.fed.state.broker.sweep_backchannel_outbox(), c.state.broker.sweep_backchannel_outbox());
        delivered += x + y;
        if delivered == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(delivered, 1, "one of the two sweeps delivered it");
    let received = app.tokens();
    assert_eq!(received.len(), before + 1, "delivered exactly once");
    assert_eq!(received.last(), Some(&first), "the same Logout Token");
    // Nothing is left to deliver.
    assert!(w.sessions.index_members("bcl-outbox").await.unwrap().is_empty());
    let (x, y) = tokio::join!(w.fed.state.broker.sweep_backchannel_outbox(), c.state.broker.sweep_backchannel_outbox());
    assert_eq!((x, y), (0, 0));
    assert_eq!(app.tokens().len(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_survives_a_restart_on_sqlite() {
    let app = Receiver::start(Answer::FailUntilHealed).await;
    let (db, store, sessions) = sqlite().await;
    the_outbox_survives_a_restart_and_delivers_once(world(db, store, sessions, &app).await, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_survives_a_restart_on_postgres_and_redis() {
    let Some(db) = TestDb::postgres("backchannel::the_outbox_survives_a_restart_on_postgres_and_redis") else {
        return;
    };
    let Some(redis) =
        federa_tests::redis_sessions("backchannel::the_outbox_survives_a_restart_on_postgres_and_redis").await
    else {
        return;
    };
    let app = Receiver::start(Answer::FailUntilHealed).await;
    let store = db.store();
    the_outbox_survives_a_restart_and_delivers_once(world(db, store, Arc::new(redis), &app).await, app).await;
}

/// With `validateSignature` off (node's ID tokens trusted on the TLS
/// connection to its token endpoint), node's Logout Tokens, which anyone
/// could post, are still checked with its JWKS: one signed by another key
/// is refused, node's own ends the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_tokens_are_verified_with_validate_signature_off() {
    let app = Receiver::start(Answer::Ok).await;
    let (db, store, sessions) = sqlite().await;
    let w = World::builder()
        .node_client(json!({"backchannel_logout_uri": FEDERA_BCL, "backchannel_logout_session_required": true}))
        .app_attributes(json!({"backchannel.logout.url": app.url}))
        .idp_config(json!({"validateSignature": "false"}))
        .start(db, store, sessions)
        .await;
    let forged = Forger::new().sign(&logout_claims(&w.node.issuer, "federa", "sub-alice", None));
    let (status, _, body) = post_logout_token(&w, &forged).await;
    assert_eq!(status, 400, "{body}");
    upstream_logout_reaches_federa_and_the_app(w, app).await;
}
