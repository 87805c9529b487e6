//! Federa as a relying party of an upstream OpenID Provider: its endpoints
//! (given, or discovered and cached), the authorization request, the code
//! exchange, and the upstream JWKS cache (by kid; refetched for an unknown kid
//! at most once per interval).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use federa_protocol::discovery::ProviderMetadata;
use federa_protocol::PkceMethod;

use crate::model;

/// How long a discovery document or JWKS is trusted before it is read again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// How long a failed discovery is remembered, so that a down upstream does
/// not cost a request per sign-in.
const FAILURE_TTL: Duration = Duration::from_secs(30);
/// The shortest time between two JWKS fetches caused by unknown kids.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// The largest upstream answer Federa reads (discovery, JWKS, token,
/// userinfo): a hostile or broken upstream cannot make it buffer more.
pub const MAX_UPSTREAM_BODY: usize = 1 << 20;

/// Reads an upstream answer as JSON, refusing bodies over [`MAX_UPSTREAM_BODY`].
pub async fn read_json<T: serde::de::DeserializeOwned>(mut resp: reqwest::Response) -> Result<T, String> {
    if resp.content_length().is_some_and(|l| l > MAX_UPSTREAM_BODY as u64) {
        return Err(format!("the answer is larger than {MAX_UPSTREAM_BODY} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_UPSTREAM_BODY {
            return Err(format!("the answer is larger than {MAX_UPSTREAM_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("the answer is not the expected JSON: {e}"))
}

/// An upstream provider's model with its endpoints resolved from its
/// configuration and, where needed, its discovery document. It derefs to the
/// model, so `up.alias` reads the configured setting.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The configured provider.
    pub cfg: Arc<model::Upstream>,
    /// The authorization endpoint.
    pub authorization_url: String,
    /// The token endpoint.
    pub token_url: String,
    /// The userinfo endpoint, unless disabled.
    pub userinfo_url: Option<String>,
    /// The JWKS URL.
    pub jwks_url: Option<String>,
    /// The issuer its ID tokens must name.
    pub issuer: Option<String>,
    /// The PKCE method, when PKCE is used.
    pub pkce: Option<PkceMethod>,
    /// Whether the upstream says it sends `iss` in responses (RFC 9207).
    pub sends_iss: bool,
}

impl std::ops::Deref for Upstream {
    type Target = model::Upstream;
    fn deref(&self) -> &model::Upstream {
        &self.cfg
    }
}

/// Why an upstream cannot be used; the message is for the admin's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("identity provider {alias:?}: {message}")]
pub struct UpstreamError {
    /// The alias.
    pub alias: String,
    /// What is wrong.
    pub message: String,
}

/// A cached discovery document (`None`: the last fetch failed).
struct MetadataEntry {
    fetched: Instant,
    used: Instant,
    document: Option<ProviderMetadata>,
}

/// A cached key set.
struct JwksEntry {
    fetched: Instant,
    used: Instant,
    /// The last fetch caused by a token naming a kid the set lacked.
    forced: Option<Instant>,
    set: serde_json::Value,
}

/// How often the background refresh reads the discovery documents and key
/// sets of the providers in use again ([`UpstreamCache::refresh`]).
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// A cached document or key set counts as in use when a sign-in read it
/// within this time; others are not refreshed, and dropped.
const IN_USE: Duration = Duration::from_secs(3600);

/// Caches of upstream discovery documents and key sets.
pub struct UpstreamCache {
    metadata: Mutex<HashMap<String, MetadataEntry>>,
    jwks: Mutex<HashMap<String, JwksEntry>>,
    refetch_interval: Duration,
    verifiers: Arc<federa_protocol::jwt::VerifierCache>,
}

impl Default for UpstreamCache {
    fn default() -> Self {
        Self::with_refetch_interval(JWKS_REFETCH_INTERVAL)
    }
}

/// The kids of a key set, for the log.
fn kids(set: &serde_json::Value) -> Vec<String> {
    set.get("keys")
        .and_then(serde_json::Value::as_array)
        .map(|keys| {
            keys.iter().map(|k| k.get("kid").and_then(serde_json::Value::as_str).unwrap_or("-").to_owned()).collect()
        })
        .unwrap_or_default()
}

impl UpstreamCache {
    /// Caches whose key sets are fetched again for an unknown kid at most once per `interval`.
    pub fn with_refetch_interval(interval: Duration) -> Self {
        Self {
            metadata: Mutex::default(),
            jwks: Mutex::default(),
            refetch_interval: interval,
            verifiers: Arc::default(),
        }
    }

    /// Forgets every discovery document, key set and parsed key, so the next
    /// sign-in reads them from the upstreams again (an upstream rotated its
    /// keys or moved its endpoints). Only this instance's caches: each
    /// instance holds its own copies of this public data.
    pub fn clear(&self) {
        if let Ok(mut m) = self.metadata.lock() {
            m.clear();
        }
        if let Ok(mut j) = self.jwks.lock() {
            j.clear();
        }
        self.verifiers.clear();
    }

    /// Upstream public keys, each parsed once into a verifier.
    pub fn verifiers(&self) -> Arc<federa_protocol::jwt::VerifierCache> {
        self.verifiers.clone()
    }

    /// Reads the discovery documents and key sets that sign-ins used within
    /// the last hour again, and drops the others: an upstream's new
    /// endpoints or keys reach this instance within [`REFRESH_EVERY`]
    /// without an admin's action. A failed read keeps the copy held (and is
    /// logged). [`crate::flow::Broker::spawn_upstream_refresh`] runs it.
    pub async fn refresh(&self, http: &reqwest::Client) {
        let in_use = |used: Instant| used.elapsed() < IN_USE;
        let documents: Vec<String> = match self.metadata.lock() {
            Ok(mut m) => {
                m.retain(|_, e| in_use(e.used));
                m.keys().cloned().collect()
            }
            Err(_) => Vec::new(),
        };
        for url in documents {
            if let Some(document) = fetch_metadata(http, &url).await {
                if let Ok(mut m) = self.metadata.lock() {
                    if let Some(e) = m.get_mut(&url) {
                        if e.document.as_ref() != Some(&document) {
                            log::info!("discovery document {url} changed; the new one is used from now on");
                        }
                        e.document = Some(document);
                        e.fetched = Instant::now();
                    }
                }
            }
        }
        let sets: Vec<String> = match self.jwks.lock() {
            Ok(mut j) => {
                j.retain(|_, e| in_use(e.used));
                j.keys().cloned().collect()
            }
            Err(_) => Vec::new(),
        };
        for url in sets {
            match fetch_jwks(http, &url).await {
                Ok(set) => {
                    if let Ok(mut j) = self.jwks.lock() {
                        if let Some(e) = j.get_mut(&url) {
                            if e.set != set {
                                log::info!("upstream key set {url} changed: kids {:?}", kids(&set));
                            }
                            e.set = set;
                            e.fetched = Instant::now();
                        }
                    }
                }
                Err(e) => log::warn!("background refresh: {e}; the key set held is kept"),
            }
        }
    }

    /// The discovery document at `url`, from the cache or fetched.
    async fn metadata(&self, http: &reqwest::Client, url: &str) -> Option<ProviderMetadata> {
        if let Ok(mut cache) = self.metadata.lock() {
            if let Some(e) = cache.get_mut(url) {
                let ttl = if e.document.is_some() { METADATA_TTL } else { FAILURE_TTL };
                if e.fetched.elapsed() < ttl {
                    e.used = Instant::now();
                    return e.document.clone();
                }
            }
        }
        let fetched = fetch_metadata(http, url).await;
        if let Ok(mut cache) = self.metadata.lock() {
            let now = Instant::now();
            cache.insert(url.to_owned(), MetadataEntry { fetched: now, used: now, document: fetched.clone() });
        }
        fetched
    }

    /// Resolves an identity provider's endpoints: configured ones win, the
    /// rest come from its discovery document.
    pub async fn resolve(&self, http: &reqwest::Client, idp: &Arc<model::Upstream>) -> Result<Upstream, UpstreamError> {
        let err = |message: String| UpstreamError { alias: idp.alias.clone(), message };
        let explicit = idp.authorization_url.is_some() && idp.token_url.is_some();
        let meta = match &idp.discovery_url {
            Some(url) => self.metadata(http, url).await,
            None => None,
        };
        if !explicit && meta.is_none() {
            return Err(err(format!(
                "no authorizationUrl/tokenUrl configured and the discovery document {} cannot be read",
                idp.discovery_url.as_deref().unwrap_or_default()
            )));
        }
        let pick =
            |given: &Option<url::Url>, from_meta: Option<String>| given.as_ref().map(url::Url::to_string).or(from_meta);
        let authorization_url =
            pick(&idp.authorization_url, meta.as_ref().map(|m| m.authorization_endpoint.clone())).unwrap_or_default();
        let token_url = pick(&idp.token_url, meta.as_ref().and_then(|m| m.token_endpoint.clone()))
            .ok_or_else(|| err("no token endpoint".into()))?;
        let userinfo_url = if idp.disable_userinfo {
            None
        } else {
            pick(&idp.userinfo_url, meta.as_ref().and_then(|m| m.userinfo_endpoint.clone()))
        };
        let jwks_url = pick(&idp.jwks_url, meta.as_ref().map(|m| m.jwks_uri.clone()));
        let issuer = idp.issuer.clone().or_else(|| meta.as_ref().map(|m| m.issuer.clone()));
        let pkce = idp.pkce.or_else(|| {
            meta.as_ref()
                .is_some_and(|m| m.code_challenge_methods_supported.iter().any(|x| x == "S256"))
                .then_some(PkceMethod::S256)
        });
        Ok(Upstream {
            cfg: idp.clone(),
            authorization_url,
            token_url,
            userinfo_url,
            jwks_url,
            issuer,
            pkce,
            sends_iss: meta.as_ref().is_some_and(|m| m.authorization_response_iss_parameter_supported),
        })
    }

    /// The key set at `url`; `refresh_for_kid` asks for a fresh copy because
    /// a token named a kid the cached set lacks: granted at most once per
    /// interval per key set, so tokens naming unknown kids cannot make Federa
    /// hammer the upstream, while the first token signed with a rotated key
    /// is checked with the new set at once.
    pub async fn jwks(
        &self,
        http: &reqwest::Client,
        url: &str,
        refresh_for_kid: bool,
    ) -> Result<serde_json::Value, String> {
        let mut forced = None;
        if let Ok(mut cache) = self.jwks.lock() {
            if let Some(e) = cache.get_mut(url) {
                e.used = Instant::now();
                let fresh = e.fetched.elapsed() < METADATA_TTL;
                let may_refetch = e.forced.is_none_or(|at| at.elapsed() >= self.refetch_interval);
                if fresh && !(refresh_for_kid && may_refetch) {
                    return Ok(e.set.clone());
                }
                if refresh_for_kid && may_refetch {
                    forced = Some(Instant::now());
                    // Claimed now, so that concurrent sign-ins do not all refetch.
                    e.forced = forced;
                } else {
                    forced = e.forced;
                }
            }
        }
        let set = fetch_jwks(http, url).await?;
        log::info!(
            "upstream key set {url} fetched{}: kids {:?}",
            if refresh_for_kid { " for a token naming a kid it lacked" } else { "" },
            kids(&set)
        );
        if let Ok(mut cache) = self.jwks.lock() {
            let now = Instant::now();
            cache.insert(url.to_owned(), JwksEntry { fetched: now, used: now, forced, set: set.clone() });
        }
        Ok(set)
    }
}

/// Fetches a discovery document; a failure is logged and `None`.
async fn fetch_metadata(http: &reqwest::Client, url: &str) -> Option<ProviderMetadata> {
    match http.get(url).send().await {
        Ok(r) if r.status().is_success() => match read_json::<ProviderMetadata>(r).await {
            Ok(m) => Some(m),
            Err(e) => {
                log::warn!("discovery document {url} cannot be read: {e}");
                None
            }
        },
        Ok(r) => {
            log::warn!("discovery document {url} answered {}", r.status());
            None
        }
        Err(e) => {
            log::warn!("discovery document {url} cannot be fetched: {e}");
            None
        }
    }
}

/// Fetches a key set, which must hold a `keys` array.
async fn fetch_jwks(http: &reqwest::Client, url: &str) -> Result<serde_json::Value, String> {
    let resp = http.get(url).send().await.map_err(|e| format!("JWKS {url} cannot be fetched: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("JWKS {url} answered {}", resp.status()));
    }
    let set: serde_json::Value = read_json(resp).await.map_err(|e| format!("JWKS {url}: {e}"))?;
    if !set.get("keys").is_some_and(serde_json::Value::is_array) {
        return Err(format!("JWKS {url} has no keys array"));
    }
    Ok(set)
}

impl super::Broker {
    /// A request to the upstream's token endpoint (the code exchange, a
    /// refresh of stored tokens), authenticated with the provider's
    /// `clientAuthMethod`; the JSON object it answers, or why not (for the
    /// log: it may name the endpoint, never a secret).
    pub(super) async fn upstream_token_request(
        &self,
        up: &Upstream,
        realm: &super::RealmInfo,
        mut form: Vec<(&str, &str)>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        use base64::Engine as _;
        use federa_protocol::{client_assertion, ClientAuthMethod, Secret};
        use serde_json::Value;

        let assertion = match up.auth_method {
            ClientAuthMethod::SecretJwt | ClientAuthMethod::PrivateKeyJwt => {
                Some(self.client_assertion(up, realm).await?)
            }
            ClientAuthMethod::SecretBasic | ClientAuthMethod::SecretPost => None,
        };
        let secret = up.client_secret.as_ref().map(Secret::expose).unwrap_or_default();
        let mut request = self.http.post(&up.token_url).header("Accept", "application/json");
        match up.auth_method {
            ClientAuthMethod::SecretBasic => {
                // RFC 6749 section 2.3.1: both parts form-urlencoded first.
                let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair = format!("{}:{}", enc(&up.client_id), enc(secret));
                let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
                request = request.header("Authorization", format!("Basic {b64}"));
            }
            ClientAuthMethod::SecretPost => {
                form.push(("client_id", &up.client_id));
                form.push(("client_secret", secret));
            }
            ClientAuthMethod::SecretJwt | ClientAuthMethod::PrivateKeyJwt => {
                form.push(("client_id", &up.client_id));
                form.push(("client_assertion_type", client_assertion::ASSERTION_TYPE));
                form.push(("client_assertion", assertion.as_deref().unwrap_or_default()));
            }
        }
        let resp = request
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("token endpoint {} cannot be reached: {e}", up.token_url))?;
        let status = resp.status();
        let body: Value = read_json(resp).await.unwrap_or(Value::Null);
        if !status.is_success() {
            let error = body.get("error").and_then(Value::as_str).unwrap_or("?");
            let desc = body.get("error_description").and_then(Value::as_str).unwrap_or("");
            let hint = if error == "invalid_client" || status.as_u16() == 401 {
                "; check the provider's clientId, clientSecret and clientAuthMethod"
            } else {
                ""
            };
            return Err(format!(
                "token endpoint {} answered {status}: error={error:?} error_description={desc:?}{hint}",
                up.token_url
            ));
        }
        match body {
            Value::Object(m) => Ok(m),
            _ => Err("the token response is not a JSON object".into()),
        }
    }

    /// A client assertion for the upstream's token endpoint (OIDC Core
    /// section 9): signed with the client secret (client_secret_jwt) or the
    /// realm's key, which the realm's JWKS publishes (private_key_jwt).
    async fn client_assertion(&self, up: &Upstream, realm: &super::RealmInfo) -> Result<String, String> {
        use federa_protocol::{client_assertion, ClientAuthMethod, Secret};

        let claims = client_assertion::claims(&up.client_id, &up.token_url, &super::random_token(), super::now());
        let signed = match up.auth_method {
            ClientAuthMethod::SecretJwt => {
                let alg = up.assertion_alg.as_deref().unwrap_or("HS256");
                let secret = up.client_secret.as_ref().map(Secret::expose).unwrap_or_default();
                client_assertion::sign_with_secret(alg, secret, &claims)
            }
            _ => {
                let keys = self
                    .keys
                    .get(self.store.as_ref(), &realm.name)
                    .await
                    .map_err(|e| format!("the realm's keys cannot be read: {e}"))?;
                if let Some(alg) = up.assertion_alg.as_deref().filter(|a| *a != keys.signer.alg()) {
                    return Err(format!(
                        "clientAssertionSigningAlg {alg} differs from the realm key's algorithm {}; private_key_jwt signs with the realm key",
                        keys.signer.alg()
                    ));
                }
                keys.signer.sign("JWT", &claims)
            }
        };
        signed.map_err(|e| format!("the client assertion cannot be signed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A one-route HTTP server answering a JWKS, counting its requests.
    fn jwks_server() -> (String, Arc<AtomicUsize>) {
        serve(r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"a","y":"b"}]}"#.to_owned())
    }

    /// A one-route HTTP server answering `body`, counting its requests.
    fn serve(body: String) -> (String, Arc<AtomicUsize>) {
        let (url, hits, _) = serve_changing(body);
        (url, hits)
    }

    /// A one-route HTTP server answering the body held, which the test may
    /// change, counting its requests.
    fn serve_changing(body: String) -> (String, Arc<AtomicUsize>, Arc<std::sync::Mutex<String>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let held = Arc::new(std::sync::Mutex::new(body));
        let current = held.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                counter.fetch_add(1, Ordering::SeqCst);
                let body = current.lock().unwrap().clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (url, hits, held)
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_at_most_once_per_interval() {
        let http = reqwest::Client::new();
        let (url, hits) = jwks_server();

        let cache = UpstreamCache::default();
        let set = cache.jwks(&http, &url, false).await.unwrap();
        assert_eq!(set["keys"][0]["kid"], "k1");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        cache.jwks(&http, &url, false).await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 1, "a known key set is served from the cache");
        cache.jwks(&http, &url, true).await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 2, "the first unknown kid refetches at once (a rotation)");
        cache.jwks(&http, &url, true).await.unwrap();
        cache.jwks(&http, &url, true).await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 2, "more unknown kids within the interval do not refetch");

        cache.clear();
        cache.jwks(&http, &url, false).await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 3, "a cleared cache reads the key set again");

        let eager = UpstreamCache::with_refetch_interval(Duration::ZERO);
        eager.jwks(&http, &url, false).await.unwrap();
        eager.jwks(&http, &url, true).await.unwrap();
        eager.jwks(&http, &url, true).await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 6, "an unknown kid after the interval refetches");
    }

    #[tokio::test]
    async fn the_background_refresh_rereads_what_is_in_use() {
        let http = reqwest::Client::new();
        let (url, hits, body) = serve_changing(r#"{"keys":[{"kty":"EC","kid":"old"}]}"#.to_owned());
        let doc = |jwks: &str| {
            format!(
                r#"{{"issuer":"https://op.test","authorization_endpoint":"https://op.test/{jwks}/auth","jwks_uri":"https://op.test/{jwks}"}}"#
            )
        };
        let (meta_url, meta_hits, meta_body) = serve_changing(doc("a"));
        let cache = UpstreamCache::default();
        assert_eq!(cache.jwks(&http, &url, false).await.unwrap()["keys"][0]["kid"], "old");
        assert_eq!(cache.metadata(&http, &meta_url).await.unwrap().jwks_uri, "https://op.test/a");

        *body.lock().unwrap() = r#"{"keys":[{"kty":"EC","kid":"old"},{"kty":"EC","kid":"new"}]}"#.to_owned();
        *meta_body.lock().unwrap() = doc("b");
        cache.refresh(&http).await;
        assert_eq!((hits.load(Ordering::SeqCst), meta_hits.load(Ordering::SeqCst)), (2, 2));
        let set = cache.jwks(&http, &url, false).await.unwrap();
        assert_eq!(set["keys"][1]["kid"], "new", "the refreshed set is served");
        assert_eq!(cache.metadata(&http, &meta_url).await.unwrap().jwks_uri, "https://op.test/b");
        assert_eq!((hits.load(Ordering::SeqCst), meta_hits.load(Ordering::SeqCst)), (2, 2), "from the cache");

        // A set no sign-in used for an hour is dropped, not refreshed.
        if let Ok(mut j) = cache.jwks.lock() {
            for e in j.values_mut() {
                e.used = Instant::now().checked_sub(IN_USE + Duration::from_secs(1)).unwrap();
            }
        }
        cache.refresh(&http).await;
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert!(cache.jwks.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_oversized_answer_is_refused() {
        let padding = "x".repeat(MAX_UPSTREAM_BODY);
        let (url, _) = serve(format!(r#"{{"keys":[],"pad":"{padding}"}}"#));
        let err = UpstreamCache::default().jwks(&reqwest::Client::new(), &url, false).await.unwrap_err();
        assert!(err.contains("larger than"), "{err}");
    }
}
