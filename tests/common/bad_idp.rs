//! A small hand-written upstream OpenID Provider that misbehaves on demand,
//! for the attack tests; in [`Misbehaviour::None`] it is a correct and fast
//! ES256 provider, fit to be the upstream of a benchmark.
//!
//! It has one user ([`SUB`], `mallory`, `mallory@bad.test`) and one client,
//! signs everyone in at once (`/authorize` redirects straight back with a
//! code) and keeps its codes and access tokens in memory.
//!
//! Opt-in, for benchmarks that need a new user per sign-in: an `/authorize`
//! request carrying a non-empty `login_hint` signs in the account named by it
//! instead (`sub` = [`HINTED_SUB_PREFIX`] + hint, `preferred_username` = the
//! hint, `email` = hint + [`HINTED_EMAIL_DOMAIN`]), in the ID token and at
//! userinfo. Without `login_hint`, it is the one user as before.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{http::header, web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use josekit::jwk::KeyPair as _;
use josekit::jws::{JwsSigner as _, ES256, HS256, RS256};
use serde::Serialize;

/// The subject of the provider's one user.
pub const SUB: &str = "bad-sub-1";
/// Its `preferred_username`.
pub const USERNAME: &str = "mallory";
/// Its `email`.
pub const EMAIL: &str = "mallory@bad.test";
/// Its `name`.
pub const NAME: &str = "Mallory Bad";
/// The prefix of the subject of an account named by a `login_hint`.
pub const HINTED_SUB_PREFIX: &str = "u-";
/// The domain (with its `@`) of the email of an account named by a `login_hint`.
pub const HINTED_EMAIL_DOMAIN: &str = "@bad.test";
/// The subject the userinfo endpoint answers in
/// [`Misbehaviour::UserinfoSubMismatch`].
pub const OTHER_SUB: &str = "bad-sub-2";
/// The audience of ID tokens in [`Misbehaviour::WrongAudience`].
pub const WRONG_AUDIENCE: &str = "someone-else";
/// The issuer of ID tokens in [`Misbehaviour::WrongIssuer`].
pub const WRONG_ISSUER: &str = "https://evil.example";
/// The nonce of ID tokens in [`Misbehaviour::NonceMismatch`].
pub const WRONG_NONCE: &str = "not-the-nonce";
/// The lifetime of its ID and access tokens, in seconds.
pub const TOKEN_TTL: u64 = 300;
/// The lifetime of its codes, in seconds.
pub const CODE_TTL: u64 = 60;

/// What the provider does wrong. Everything else stays correct, so each
/// mode tests one check of the relying party.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Nothing: a correct ES256 provider.
    None,
    /// The ID token's ES256 signature does not verify (one bit flipped).
    BadSignature,
    /// The ID token is unsigned: header `{"alg":"none"}`, empty signature.
    AlgNone,
    /// The ID token's `aud` is [`WRONG_AUDIENCE`].
    WrongAudience,
    /// The ID token's `iss` is [`WRONG_ISSUER`].
    WrongIssuer,
    /// The ID token expired ten minutes ago.
    Expired,
    /// The ID token is issued an hour from now (and expires two hours from now).
    IssuedInFuture,
    /// The ID token's `nonce` is [`WRONG_NONCE`].
    NonceMismatch,
    /// The ID token is HS256, keyed with the PEM of the RSA public key the
    /// JWKS publishes, and its header names that key's `kid`.
    HmacWithPublicKey,
    /// The ID token is right, but userinfo answers for [`OTHER_SUB`].
    UserinfoSubMismatch,
    /// The token response has no `id_token`.
    NoIdToken,
    /// The token endpoint answers 400 `invalid_grant` (after client
    /// authentication; the code is used up).
    TokenEndpointError,
    /// The ID token is right, but its `auth_time` is twenty minutes old
    /// whatever `prompt` or `max_age` asked (a provider that ignores
    /// `prompt=login`): wrong only against a client's `max_age`, so it is
    /// not in [`Misbehaviour::ALL`].
    StaleAuthTime,
}

const MODES: [Misbehaviour; 13] = [
    Misbehaviour::None,
    Misbehaviour::BadSignature,
    Misbehaviour::AlgNone,
    Misbehaviour::WrongAudience,
    Misbehaviour::WrongIssuer,
    Misbehaviour::Expired,
    Misbehaviour::IssuedInFuture,
    Misbehaviour::NonceMismatch,
    Misbehaviour::HmacWithPublicKey,
    Misbehaviour::UserinfoSubMismatch,
    Misbehaviour::NoIdToken,
    Misbehaviour::TokenEndpointError,
    Misbehaviour::StaleAuthTime,
];

impl Misbehaviour {
    /// Every mode whose answer is wrong whatever the request asked.
    pub const ALL: [Misbehaviour; 12] = [
        Misbehaviour::None,
        Misbehaviour::BadSignature,
        Misbehaviour::AlgNone,
        Misbehaviour::WrongAudience,
        Misbehaviour::WrongIssuer,
        Misbehaviour::Expired,
        Misbehaviour::IssuedInFuture,
        Misbehaviour::NonceMismatch,
        Misbehaviour::HmacWithPublicKey,
        Misbehaviour::UserinfoSubMismatch,
        Misbehaviour::NoIdToken,
        Misbehaviour::TokenEndpointError,
    ];

    fn from_u8(v: u8) -> Misbehaviour {
        MODES.get(usize::from(v)).copied().unwrap_or(Misbehaviour::None)
    }
}

/// A running misbehaving provider on 127.0.0.1, stopped when dropped.
pub struct BadIdp {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub issuer: String,
    shared: Arc<Shared>,
    server: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    scope: String,
    expires: u64,
    /// The `login_hint` of the authorization request, when not empty.
    login_hint: Option<String>,
}

/// An access token: its expiry and the `login_hint` of its code.
struct IssuedToken {
    expires: u64,
    login_hint: Option<String>,
}

/// Who a sign-in is for: the one user, or the account a `login_hint` names.
struct Account {
    sub: String,
    username: String,
    email: String,
}

impl Account {
    fn for_hint(login_hint: Option<&str>) -> Account {
        match login_hint {
            Some(hint) => Account {
                sub: format!("{HINTED_SUB_PREFIX}{hint}"),
                username: hint.to_owned(),
                email: format!("{hint}{HINTED_EMAIL_DOMAIN}"),
            },
            None => Account { sub: SUB.to_owned(), username: USERNAME.to_owned(), email: EMAIL.to_owned() },
        }
    }
}

/// The process's RSA key: generated once (it is slow), published in every
/// provider's JWKS, and used only for [`Misbehaviour::HmacWithPublicKey`].
struct RsaKey {
    kid: String,
    public_pem: Vec<u8>,
    public_jwk: josekit::jwk::Jwk,
}

fn rsa_key() -> &'static RsaKey {
    static KEY: OnceLock<RsaKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let pair = RS256.generate_key_pair(2048).unwrap();
        let kid = format!("bad-rsa-{}", random_token(6));
        let mut public_jwk = pair.to_jwk_public_key();
        public_jwk.set_key_id(&kid);
        public_jwk.set_algorithm("RS256");
        public_jwk.set_key_use("sig");
        RsaKey { kid, public_pem: pair.to_pem_public_key(), public_jwk }
    })
}

struct Shared {
    issuer: String,
    client_id: String,
    client_secret: String,
    mode: AtomicU8,
    token_requests: AtomicUsize,
    codes: Mutex<HashMap<String, CodeGrant>>,
    /// Access token → expiry and account.
    tokens: Mutex<HashMap<String, IssuedToken>>,
    es256: josekit::jws::alg::ecdsa::EcdsaJwsSigner,
    /// The encoded ES256 JWS header, with the kid.
    es256_header: String,
    hs256: josekit::jws::alg::hmac::HmacJwsSigner,
    /// The encoded HS256 JWS header, with the RSA key's kid.
    hs256_header: String,
    discovery: web::Bytes,
    jwks: web::Bytes,
}

#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    iat: u64,
    auth_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    preferred_username: &'a str,
    name: &'a str,
    email: &'a str,
    email_verified: bool,
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'a str,
    expires_in: u64,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a str>,
}

#[derive(Serialize)]
struct UserInfo<'a> {
    sub: &'a str,
    preferred_username: &'a str,
    name: &'a str,
    email: &'a str,
    email_verified: bool,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `bytes` random bytes, base64url.
fn random_token(bytes: usize) -> String {
    let mut buf = [0u8; 32];
    let buf = &mut buf[..bytes.min(32)];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), buf);
    URL_SAFE_NO_PAD.encode(buf)
}

fn b64_json<T: Serialize>(value: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn oauth_error(status: actix_web::http::StatusCode, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "error": error, "error_description": description }))
}

impl Shared {
    fn mode(&self) -> Misbehaviour {
        Misbehaviour::from_u8(self.mode.load(Ordering::Relaxed))
    }

    /// The ID token for a code, as the mode has it.
    fn id_token(&self, mode: Misbehaviour, nonce: Option<&str>, account: &Account) -> String {
        let t = now();
        let mut claims = IdClaims {
            iss: &self.issuer,
            sub: &account.sub,
            aud: &self.client_id,
            exp: t + TOKEN_TTL,
            iat: t,
            auth_time: t,
            nonce,
            preferred_username: &account.username,
            name: NAME,
            email: &account.email,
            email_verified: true,
        };
        match mode {
            Misbehaviour::WrongAudience => claims.aud = WRONG_AUDIENCE,
            Misbehaviour::WrongIssuer => claims.iss = WRONG_ISSUER,
            Misbehaviour::Expired => {
                claims.iat = t - 1200;
                claims.auth_time = t - 1200;
                claims.exp = t - 600;
            }
            Misbehaviour::IssuedInFuture => {
                claims.iat = t + 3600;
                claims.auth_time = t + 3600;
                claims.exp = t + 7200;
            }
            Misbehaviour::NonceMismatch => claims.nonce = Some(WRONG_NONCE),
            Misbehaviour::StaleAuthTime => claims.auth_time = t - 1200,
            _ => {}
        }
        let payload = b64_json(&claims);
        let header = match mode {
            Misbehaviour::AlgNone => "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", // {"alg":"none","typ":"JWT"}
            Misbehaviour::HmacWithPublicKey => &self.hs256_header,
            _ => &self.es256_header,
        };
        let mut jwt = String::with_capacity(header.len() + payload.len() + 100);
        jwt.push_str(header);
        jwt.push('.');
        jwt.push_str(&payload);
        let signature = match mode {
            Misbehaviour::AlgNone => Vec::new(),
            Misbehaviour::HmacWithPublicKey => self.hs256.sign(jwt.as_bytes()).unwrap(),
            _ => {
                let mut s = self.es256.sign(jwt.as_bytes()).unwrap();
                if mode == Misbehaviour::BadSignature {
                    s[0] ^= 0x01;
                }
                s
            }
        };
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut jwt);
        jwt
    }

    /// The client a token request authenticates as (client_secret_basic
    /// or client_secret_post), when its secret is right.
    fn authenticate(&self, req: &HttpRequest, form: &HashMap<String, String>) -> bool {
        let basic = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .map(|(_, creds)| creds.trim());
        let (id, secret) = match (basic, form.get("client_secret")) {
            (Some(_), Some(_)) => return false, // two methods at once
            (Some(creds), None) => {
                let Some(decoded) = STANDARD.decode(creds).ok().and_then(|d| String::from_utf8(d).ok()) else {
                    return false;
                };
                let Some((id, secret)) = decoded.split_once(':') else { return false };
                // RFC 6749 §2.3.1: both are form-urlencoded first.
                (form_decode(id), form_decode(secret))
            }
            (None, Some(secret)) => (form.get("client_id").cloned().unwrap_or_default(), secret.clone()),
            (None, None) => return false,
        };
        id == self.client_id && secret == self.client_secret
    }
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

fn query_map(query: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    map
}

async fn discovery_handler(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(shared.discovery.clone())
}

async fn jwks_handler(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(shared.jwks.clone())
}

async fn authorize(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let q = query_map(req.query_string());
    if q.get("client_id") != Some(&shared.client_id) {
        return HttpResponse::BadRequest().body("bad-idp: unknown client_id");
    }
    let Some(redirect_uri) = q.get("redirect_uri").filter(|r| !r.is_empty()) else {
        return HttpResponse::BadRequest().body("bad-idp: redirect_uri is required");
    };
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let mut location = url::form_urlencoded::Serializer::new(format!("{redirect_uri}{sep}"));
    if q.get("response_type").map(String::as_str) != Some("code") {
        location.append_pair("error", "unsupported_response_type");
    } else {
        let code = random_token(24);
        let t = now();
        let grant = CodeGrant {
            client_id: shared.client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            nonce: q.get("nonce").cloned(),
            code_challenge: q.get("code_challenge").cloned(),
            scope: q.get("scope").cloned().unwrap_or_else(|| "openid".to_owned()),
            expires: t + CODE_TTL,
            login_hint: q.get("login_hint").filter(|h| !h.is_empty()).cloned(),
        };
        let mut codes = shared.codes.lock().unwrap();
        if codes.len() >= 4096 {
            codes.retain(|_, g| g.expires > t);
        }
        codes.insert(code.clone(), grant);
        drop(codes);
        location.append_pair("code", &code);
    }
    if let Some(state) = q.get("state") {
        location.append_pair("state", state);
    }
    location.append_pair("iss", &shared.issuer);
    HttpResponse::Found().insert_header((header::LOCATION, location.finish())).finish()
}

async fn token(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    use actix_web::http::StatusCode;
    shared.token_requests.fetch_add(1, Ordering::Relaxed);
    let form = query_map(std::str::from_utf8(&body).unwrap_or(""));
    if !shared.authenticate(&req, &form) {
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"bad-idp\""))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(
                serde_json::json!({ "error": "invalid_client", "error_description": "client authentication failed" }),
            );
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only authorization_code");
    }
    let Some(grant) = form.get("code").and_then(|c| shared.codes.lock().unwrap().remove(c)) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown or used code");
    };
    let mode = shared.mode();
    if mode == Misbehaviour::TokenEndpointError {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the bad IdP refuses");
    }
    let t = now();
    if grant.expires <= t {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "expired code");
    }
    if grant.client_id != shared.client_id || form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "redirect_uri mismatch");
    }
    if let Some(challenge) = &grant.code_challenge {
        let ok = form.get("code_verifier").is_some_and(|v| {
            use sha2::Digest as _;
            URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(v.as_bytes())) == *challenge
        });
        if !ok {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "PKCE verification failed");
        }
    }
    let access_token = random_token(24);
    {
        let mut tokens = shared.tokens.lock().unwrap();
        if tokens.len() >= 4096 {
            tokens.retain(|_, issued| issued.expires > t);
        }
        tokens
            .insert(access_token.clone(), IssuedToken { expires: t + TOKEN_TTL, login_hint: grant.login_hint.clone() });
    }
    let account = Account::for_hint(grant.login_hint.as_deref());
    let id_token = (mode != Misbehaviour::NoIdToken).then(|| shared.id_token(mode, grant.nonce.as_deref(), &account));
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokenResponse {
            access_token: &access_token,
            token_type: "Bearer",
            expires_in: TOKEN_TTL,
            scope: &grant.scope,
            id_token: id_token.as_deref(),
        })
}

async fn userinfo(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    // The account of a valid token (`Some(login_hint)`), else `None`.
    let valid = bearer.and_then(|t| {
        let tokens = shared.tokens.lock().unwrap();
        tokens.get(t).filter(|issued| issued.expires > now()).map(|issued| issued.login_hint.clone())
    });
    let Some(login_hint) = valid else {
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""))
            .finish();
    };
    let account = Account::for_hint(login_hint.as_deref());
    let sub = if shared.mode() == Misbehaviour::UserinfoSubMismatch { OTHER_SUB } else { account.sub.as_str() };
    HttpResponse::Ok().json(UserInfo {
        sub,
        preferred_username: &account.username,
        name: NAME,
        email: &account.email,
        email_verified: true,
    })
}

impl BadIdp {
    /// Starts the provider on 127.0.0.1 and a free port, accepting the client
    /// `client_id` with `client_secret` (client_secret_basic or
    /// client_secret_post) and any redirect_uri.
    pub fn start(mode: Misbehaviour, client_id: &str, client_secret: &str) -> BadIdp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());

        let ec = ES256.generate_key_pair().unwrap();
        let es_kid = format!("bad-es256-{}", random_token(6));
        let mut es256 = ES256.signer_from_der(ec.to_der_private_key()).unwrap();
        es256.set_key_id(&es_kid);
        let mut ec_jwk = ec.to_jwk_public_key();
        ec_jwk.set_key_id(&es_kid);
        ec_jwk.set_algorithm("ES256");
        ec_jwk.set_key_use("sig");
        let rsa = rsa_key();
        let hs256 = HS256.signer_from_bytes(&rsa.public_pem).unwrap();

        let discovery = serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "scopes_supported": ["openid", "profile", "email"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "preferred_username", "name", "email", "email_verified"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
            "authorization_response_iss_parameter_supported": true,
        });
        let jwks = serde_json::json!({ "keys": [
            serde_json::Value::Object(ec_jwk.as_ref().clone()),
            serde_json::Value::Object(rsa.public_jwk.as_ref().clone()),
        ]});

        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            mode: AtomicU8::new(mode as u8),
            token_requests: AtomicUsize::new(0),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            es256,
            es256_header: b64_json(&serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": es_kid })),
            hs256,
            hs256_header: b64_json(&serde_json::json!({ "alg": "HS256", "typ": "JWT", "kid": rsa.kid })),
            discovery: web::Bytes::from(discovery.to_string()),
            jwks: web::Bytes::from(jwks.to_string()),
        });

        let data = web::Data::from(shared.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("bad-idp".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .route("/.well-known/openid-configuration", web::get().to(discovery_handler))
                            .route("/jwks", web::get().to(jwks_handler))
                            .route("/authorize", web::get().to(authorize))
                            .route("/token", web::post().to(token))
                            .route("/userinfo", web::get().to(userinfo))
                            .route("/userinfo", web::post().to(userinfo))
                    })
                    .workers(1)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener)
                    .unwrap()
                    .run();
                    let _ = tx.send(server.handle());
                    let _ = server.await;
                });
            })
            .unwrap();
        let server = rx.recv().expect("the bad IdP's server thread failed to start");
        BadIdp { issuer, shared, server, thread: Some(thread) }
    }

    /// Changes what it does wrong from the next request on.
    pub fn set_mode(&self, mode: Misbehaviour) {
        self.shared.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// What it does wrong now.
    pub fn mode(&self) -> Misbehaviour {
        self.shared.mode()
    }

    /// How many token requests it answered (whatever the answer).
    pub fn token_requests(&self) -> usize {
        self.shared.token_requests.load(Ordering::Relaxed)
    }

    /// The `kid` of its ES256 key, which signs its ID tokens.
    pub fn es256_kid(&self) -> String {
        self.shared.es256.key_id().unwrap_or_default().to_owned()
    }

    /// A URL on the provider: `issuer` + `path` (`/authorize`, `/token`,
    /// `/userinfo`, `/jwks`, `/.well-known/openid-configuration`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}

impl Drop for BadIdp {
    fn drop(&mut self) {
        // The stop command is sent at once; the returned future only waits.
        drop(self.server.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::browser::{query_params, Browser};

    const REDIRECT: &str = "http://127.0.0.1:9/cb";

    async fn code(idp: &BadIdp, extra: &str) -> String {
        let page = Browser::new()
            .navigate(
                &format!(
                    "{}?client_id=rp&response_type=code&scope=openid&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&state=s1&nonce=n1{extra}",
                    idp.url("/authorize")
                ),
                REDIRECT,
            )
            .await;
        let params = query_params(&page.url);
        assert_eq!(params.get("state").map(String::as_str), Some("s1"));
        assert_eq!(params.get("iss"), Some(&idp.issuer));
        params["code"].clone()
    }

    async fn exchange(idp: &BadIdp, code: &str, extra: &[(&str, &str)]) -> (u16, serde_json::Value) {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT)];
        form.extend_from_slice(extra);
        let resp = reqwest::Client::new()
            .post(idp.url("/token"))
            .basic_auth("rp", Some("rp-secret"))
            .form(&form)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    fn header(jwt: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn good_mode_issues_verifiable_es256_id_tokens() {
        let idp = BadIdp::start(Misbehaviour::None, "rp", "rp-secret");
        let http = reqwest::Client::new();
        let discovery: serde_json::Value =
            http.get(idp.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
        assert_eq!(discovery["issuer"], idp.issuer.as_str());
        assert_eq!(discovery["code_challenge_methods_supported"], serde_json::json!(["S256"]));
        let jwks = http.get(discovery["jwks_uri"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
        let jwks = josekit::jwk::JwkSet::from_bytes(&jwks).unwrap();

        let code = code(&idp, "").await;
        let (status, tokens) = exchange(&idp, &code, &[]).await;
        assert_eq!(status, 200, "{tokens}");
        assert_eq!(tokens["token_type"], "Bearer");
        let id_token = tokens["id_token"].as_str().unwrap();
        assert_eq!(header(id_token)["kid"], idp.es256_kid().as_str());
        let jwk = jwks.get(&idp.es256_kid())[0];
        let verifier = ES256.verifier_from_jwk(jwk).unwrap();
        let (payload, h) = josekit::jwt::decode_with_verifier(id_token, &verifier).unwrap();
        assert_eq!(h.algorithm(), Some("ES256"));
        assert_eq!(payload.issuer(), Some(idp.issuer.as_str()));
        assert_eq!(payload.subject(), Some(SUB));
        assert_eq!(payload.audience(), Some(vec!["rp"]));
        assert_eq!(payload.claim("nonce"), Some(&serde_json::json!("n1")));
        assert_eq!(payload.claim("email"), Some(&serde_json::json!(EMAIL)));

        // Userinfo with the access token.
        let info: serde_json::Value = http
            .get(idp.url("/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["sub"], SUB);
        assert_eq!(info["preferred_username"], USERNAME);

        // Codes are single use; wrong secrets are refused.
        assert_eq!(exchange(&idp, &code, &[]).await.0, 400);
        let code2 = super::tests::code(&idp, "").await;
        let resp = http
            .post(idp.url("/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code2.as_str()),
                ("redirect_uri", REDIRECT),
                ("client_id", "rp"),
                ("client_secret", "wrong"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        // client_secret_post with the right secret.
        let resp = http
            .post(idp.url("/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code2.as_str()),
                ("redirect_uri", REDIRECT),
                ("client_id", "rp"),
                ("client_secret", "rp-secret"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);

        // PKCE (RFC 7636 Appendix B).
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let pkce = "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";
        let c = super::tests::code(&idp, pkce).await;
        assert_eq!(exchange(&idp, &c, &[("code_verifier", "wrong")]).await.0, 400);
        let c = super::tests::code(&idp, pkce).await;
        assert_eq!(exchange(&idp, &c, &[("code_verifier", verifier)]).await.0, 200);

        assert_eq!(idp.token_requests(), 6);
    }

    #[tokio::test]
    async fn misbehaviours() {
        let idp = BadIdp::start(Misbehaviour::AlgNone, "rp", "rp-secret");
        let c = code(&idp, "").await;
        let (_, tokens) = exchange(&idp, &c, &[]).await;
        let id_token = tokens["id_token"].as_str().unwrap();
        assert_eq!(header(id_token)["alg"], "none");
        assert!(id_token.ends_with('.'));

        idp.set_mode(Misbehaviour::HmacWithPublicKey);
        let c = code(&idp, "").await;
        let (_, tokens) = exchange(&idp, &c, &[]).await;
        let id_token = tokens["id_token"].as_str().unwrap();
        let h = header(id_token);
        assert_eq!(h["alg"], "HS256");
        assert_eq!(h["kid"], rsa_key().kid.as_str());
        let hmac = HS256.verifier_from_bytes(&rsa_key().public_pem).unwrap();
        assert!(josekit::jwt::decode_with_verifier(id_token, &hmac).is_ok());

        let jwks: serde_json::Value = reqwest::get(idp.url("/jwks")).await.unwrap().json().await.unwrap();
        assert!(jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == rsa_key().kid.as_str() && k["kty"] == "RSA"));

        type Check = fn(&serde_json::Value, u64) -> bool;
        let checks: [(Misbehaviour, Check); 6] = [
            (Misbehaviour::WrongAudience, |c, _| c["aud"] == WRONG_AUDIENCE),
            (Misbehaviour::WrongIssuer, |c, _| c["iss"] == WRONG_ISSUER),
            (Misbehaviour::NonceMismatch, |c, _| c["nonce"] == WRONG_NONCE),
            (Misbehaviour::Expired, |c, now| c["exp"].as_u64().unwrap() < now),
            (Misbehaviour::IssuedInFuture, |c, now| c["iat"].as_u64().unwrap() > now + 1800),
            (Misbehaviour::UserinfoSubMismatch, |c, _| c["sub"] == SUB),
        ];
        for (mode, check) in checks {
            idp.set_mode(mode);
            let c = code(&idp, "").await;
            let (_, tokens) = exchange(&idp, &c, &[]).await;
            let payload = tokens["id_token"].as_str().unwrap().split('.').nth(1).unwrap().to_owned();
            let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
            assert!(check(&claims, now()), "{mode:?}: {claims}");
        }

        idp.set_mode(Misbehaviour::BadSignature);
        let c = code(&idp, "").await;
        let (_, tokens) = exchange(&idp, &c, &[]).await;
        let jwks =
            josekit::jwk::JwkSet::from_bytes(reqwest::get(idp.url("/jwks")).await.unwrap().bytes().await.unwrap())
                .unwrap();
        let verifier = ES256.verifier_from_jwk(jwks.get(&idp.es256_kid())[0]).unwrap();
        assert!(josekit::jwt::decode_with_verifier(tokens["id_token"].as_str().unwrap(), &verifier).is_err());

        idp.set_mode(Misbehaviour::NoIdToken);
        let c = code(&idp, "").await;
        let (status, tokens) = exchange(&idp, &c, &[]).await;
        assert_eq!(status, 200);
        assert!(tokens.get("id_token").is_none() && tokens["access_token"].is_string());

        idp.set_mode(Misbehaviour::UserinfoSubMismatch);
        let info: serde_json::Value = reqwest::Client::new()
            .get(idp.url("/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["sub"], OTHER_SUB);

        idp.set_mode(Misbehaviour::TokenEndpointError);
        let c = code(&idp, "").await;
        let (status, body) = exchange(&idp, &c, &[]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
        assert_eq!(idp.mode(), Misbehaviour::TokenEndpointError);
        assert_eq!(idp.token_requests(), 11);
    }

    #[tokio::test]
    async fn login_hint_names_a_new_account() {
        let idp = BadIdp::start(Misbehaviour::None, "rp", "rp-secret");
        let claims = |jwt: &str| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
        };
        let c = code(&idp, "&login_hint=bench-7").await;
        let (status, tokens) = exchange(&idp, &c, &[]).await;
        assert_eq!(status, 200, "{tokens}");
        let id = claims(tokens["id_token"].as_str().unwrap());
        assert_eq!(id["sub"], "u-bench-7");
        assert_eq!(id["preferred_username"], "bench-7");
        assert_eq!(id["email"], "bench-7@bad.test");
        let info: serde_json::Value = reqwest::Client::new()
            .get(idp.url("/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["sub"], "u-bench-7");
        assert_eq!(info["preferred_username"], "bench-7");
        assert_eq!(info["email"], "bench-7@bad.test");

        // Without a hint (or with an empty one): the one user, as before.
        for extra in ["", "&login_hint="] {
            let c = code(&idp, extra).await;
            let (_, tokens) = exchange(&idp, &c, &[]).await;
            let id = claims(tokens["id_token"].as_str().unwrap());
            assert_eq!((id["sub"].as_str(), id["preferred_username"].as_str()), (Some(SUB), Some(USERNAME)));
            let info: serde_json::Value = reqwest::Client::new()
                .get(idp.url("/userinfo"))
                .bearer_auth(tokens["access_token"].as_str().unwrap())
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!((info["sub"].as_str(), info["email"].as_str()), (Some(SUB), Some(EMAIL)));
        }
    }

    #[test]
    fn modes_round_trip() {
        for m in Misbehaviour::ALL {
            assert_eq!(Misbehaviour::from_u8(m as u8), m);
        }
    }
}
