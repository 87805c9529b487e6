//! Validating an upstream OpenID Provider's ID token (OpenID Connect Core 1.0
//! section 2 for its claims, section 3.1.3.7 for the validation rules), with
//! the algorithm defences of RFC 8725 section 3.1.
//!
//! The caller fetches the provider's JWK Set and passes it in, with the
//! current time; nothing here performs I/O or reads the clock. Only `verify`
//! builds a [`VerifiedIdToken`], so claims that reach the mappers have always
//! been checked.

use std::fmt;

use josekit::jws::{JwsSigner, HS256, HS384, HS512};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::jwt::{
    decode_header, is_public_key_alg, is_signing_key, key_fits_alg, public_key_verifier, CompactJws, VerifierCache,
};

/// The algorithms accepted when a provider's configuration names none: every
/// public-key algorithm of RFC 7518 section 3.1 and RFC 8037 section 3.1 that
/// josekit verifies. HMAC is absent because it needs the client secret and an
/// explicit choice; `none` is absent and refused even where listed.
pub const DEFAULT_ALGS: &[&str] =
    &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

/// The most keys of a JWK Set tried on one token. Each try parses a public
/// key and checks a signature, so a provider's key set holding thousands of
/// keys under one `kid` would otherwise cost seconds of CPU per sign-in. A
/// provider rotating keys publishes two or three under a name, never more.
pub const MAX_CANDIDATE_KEYS: usize = 4;

/// What the relying party expects of an ID token (OpenID Connect Core 1.0
/// section 3.1.3.7).
///
/// `Debug` never prints the client secret.
#[derive(Clone, Copy)]
pub struct Expectations<'a> {
    /// The provider's issuer identifier; `iss` must equal it exactly (step 2).
    pub issuer: &'a str,
    /// Federa's client id at the provider; it must be one of `aud` (step 3).
    /// When `aud` has several values, `azp` must be present and equal it
    /// (step 4), and when `azp` is present it must equal it (step 5).
    pub client_id: &'a str,
    /// The nonce sent in the authentication request. When `Some`, the token's
    /// `nonce` must equal it (step 11, compared in constant time); when `None`,
    /// a nonce in the token is ignored.
    pub nonce: Option<&'a str>,
    /// The JWS algorithms accepted (step 7). `none` is always refused, even if
    /// listed.
    pub allowed_algs: &'a [&'a str],
    /// The client secret. HS256, HS384 and HS512 are accepted only when listed
    /// in `allowed_algs` and a secret is given; they are verified with the
    /// secret's UTF-8 octets (step 8, OpenID Connect Core section 10.1), never
    /// with a JWK.
    pub client_secret: Option<&'a str>,
    /// The current time in seconds since the epoch.
    pub now: i64,
    /// Seconds of leeway for clock differences, applied to `exp`, `iat`, `nbf`
    /// and `auth_time`.
    pub clock_skew: i64,
    /// The `max_age` sent in the authentication request. When `Some`,
    /// `auth_time` must be present and no older than this many seconds plus
    /// the skew (step 13).
    pub max_age: Option<i64>,
}

impl fmt::Debug for Expectations<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expectations")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("nonce", &self.nonce)
            .field("allowed_algs", &self.allowed_algs)
            .field("client_secret", &self.client_secret.map(|_| "***"))
            .field("now", &self.now)
            .field("clock_skew", &self.clock_skew)
            .field("max_age", &self.max_age)
            .finish()
    }
}

/// An ID token whose signature and claims have been checked by [`verify`],
/// the only function that builds one (OpenID Connect Core 1.0 section 2).
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedIdToken {
    claims: Map<String, Value>,
}

impl VerifiedIdToken {
    /// All of the token's claims.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The `sub` claim, which `verify` made sure is a non-empty string.
    pub fn subject(&self) -> &str {
        self.claim_str("sub").unwrap_or_default()
    }

    /// A claim's value when it is a string.
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
}

/// Why an ID token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    /// The token is not a well-formed compact JWS with JSON object parts, or a
    /// claim has the wrong JSON type.
    #[error("malformed ID token: {0}")]
    Malformed(String),
    /// The header's algorithm is `none`, is not allowed, does not suit the key,
    /// or is an HMAC algorithm without a usable client secret.
    #[error("ID token algorithm not allowed: {0}")]
    AlgorithmNotAllowed(String),
    /// No usable signing key in the JWK Set matches the token. It carries the
    /// token's `kid`, so the caller may refetch the JWK Set once and retry.
    #[error("no key in the provider's JWK Set matches the ID token (kid {0:?})")]
    UnknownKey(Option<String>),
    /// More than [`MAX_CANDIDATE_KEYS`] keys of the JWK Set fit the token's
    /// `kid` and algorithm; none is tried.
    #[error(
        "the provider's JWK Set has {count} keys that fit the ID token (kid {kid:?}); at most {MAX_CANDIDATE_KEYS} are tried"
    )]
    TooManyKeys {
        /// The token's `kid`.
        kid: Option<String>,
        /// How many keys fit.
        count: usize,
    },
    /// The signature does not verify.
    #[error("the ID token's signature does not verify")]
    BadSignature,
    /// `iss` is not the provider's issuer.
    #[error("the ID token's issuer is {got:?}, expected {expected:?}")]
    WrongIssuer {
        /// The configured issuer.
        expected: String,
        /// The token's `iss`.
        got: String,
    },
    /// `aud` does not list the client id.
    #[error("the ID token is not for this client")]
    WrongAudience,
    /// `azp` is missing where `aud` has several values, or is not the client id.
    #[error("the ID token's authorized party is not this client")]
    WrongAuthorizedParty,
    /// `exp`, plus the skew, is not after now.
    #[error("the ID token has expired")]
    Expired,
    /// `iat` or `nbf` is later than now plus the skew.
    #[error("the ID token was issued in the future")]
    IssuedInFuture,
    /// A required claim is absent (or, for `sub`, empty).
    #[error("the ID token has no {0} claim")]
    MissingClaim(&'static str),
    /// `nonce` is not the one sent.
    #[error("the ID token's nonce does not match")]
    NonceMismatch,
    /// `auth_time` is older than `max_age` allows.
    #[error("the end-user authenticated too long ago")]
    AuthTooOld,
}

/// Verifies an upstream ID token against the provider's JWK Set and the
/// relying party's expectations (OpenID Connect Core 1.0 section 3.1.3.7).
///
/// In order: the header is parsed and its `alg` must be allowed and not
/// `none`; an HMAC algorithm is verified with the client secret only; any other
/// algorithm with the key of `jwks` (`{"keys": [...]}`, RFC 7517 section 5)
/// whose `kid` is the header's, or, when the header has no `kid`, the one
/// signing key that suits the algorithm. A key suits when its `use`, if
/// present, is "sig", its `alg`, if present, is the header's, and its type and
/// curve are the algorithm's. At most [`MAX_CANDIDATE_KEYS`] keys may fit the
/// token; a set with more is refused before any is tried. Keys embedded in the header (`jwk`, `jku`,
/// `x5u`, `x5c`) are never used. Then `iss`, `aud` and `azp`, `exp`, `iat`,
/// `nbf` when present, `sub`, `nonce` and `auth_time` are checked.
pub fn verify(token: &str, jwks: &Value, exp: &Expectations<'_>) -> Result<VerifiedIdToken, IdTokenError> {
    verify_inner(token, jwks, exp, None)
}

/// [`verify`], with the upstream's public keys parsed once and kept in
/// `cache` (a key is parsed again only when its JWK changes).
pub fn verify_cached(
    token: &str,
    jwks: &Value,
    exp: &Expectations<'_>,
    cache: &VerifierCache,
) -> Result<VerifiedIdToken, IdTokenError> {
    verify_inner(token, jwks, exp, Some(cache))
}

fn verify_inner(
    token: &str,
    jwks: &Value,
    exp: &Expectations<'_>,
    cache: Option<&VerifierCache>,
) -> Result<VerifiedIdToken, IdTokenError> {
    let jws = CompactJws::parse(token).map_err(IdTokenError::Malformed)?;
    let alg = jws.alg();
    if alg.eq_ignore_ascii_case("none") || !exp.allowed_algs.contains(&alg) {
        return Err(IdTokenError::AlgorithmNotAllowed(alg.to_owned()));
    }
    if let Some(hmac) = hmac_signer(alg, exp.client_secret)? {
        let mac = hmac.sign(jws.signing_input).map_err(|_| IdTokenError::BadSignature)?;
        // josekit compares MACs with `!=`; this comparison is constant-time.
        if !bool::from(mac.ct_eq(&jws.signature)) {
            return Err(IdTokenError::BadSignature);
        }
    } else {
        verify_with_jwks(&jws, jwks, alg, cache)?;
    }
    check_claims(&jws.claims, exp)?;
    Ok(VerifiedIdToken { claims: jws.claims })
}

/// Accepts an upstream ID token WITHOUT checking its signature, for a
/// provider whose admin turned signature validation off (Keycloak's
/// `validateSignature` = "false"). OpenID Connect Core 1.0 section 3.1.3.7
/// step 6 allows relying on the TLS connection to the token endpoint instead
/// of the signature when the token came straight from it, which is the only
/// way Federa receives ID tokens. Every claim check of [`verify`] still
/// applies (`iss`, `aud`, `azp`, `exp`, `iat`, `sub`, `nonce`, `auth_time`);
/// the header must still parse, but any `alg` is accepted.
pub fn accept_unsigned(token: &str, exp: &Expectations<'_>) -> Result<VerifiedIdToken, IdTokenError> {
    let jws = CompactJws::parse(token).map_err(IdTokenError::Malformed)?;
    check_claims(&jws.claims, exp)?;
    Ok(VerifiedIdToken { claims: jws.claims })
}

/// What Federa expects of an upstream access token that the provider says
/// is a JWT (Keycloak's `isAccessTokenJWT`): signed by one of the provider's
/// keys (unless `check_signature` is off), issued by it, and not expired.
/// The audience is not checked: an access token is meant for a resource
/// server, not for Federa (RFC 9068 section 4 lets only its audience insist).
#[derive(Debug, Clone, Copy)]
pub struct AccessTokenExpectations<'a> {
    /// The provider's issuer; `iss` must equal it.
    pub issuer: &'a str,
    /// The JWS algorithms accepted; `none` is always refused.
    pub allowed_algs: &'a [&'a str],
    /// Whether the signature is verified (`validateSignature`).
    pub check_signature: bool,
    /// The current time in seconds since the epoch.
    pub now: i64,
    /// Seconds of leeway for `exp`, `iat` and `nbf`.
    pub clock_skew: i64,
}

/// Verifies an upstream access token as a JWT and answers its claims
/// (RFC 9068 section 4, without the audience check): a public-key signature
/// from `jwks` (as for ID tokens), `iss`, `exp` (required), `iat` and `nbf`
/// when present. Something that is not a compact JWS is `Malformed`.
pub fn verify_access_token(
    token: &str,
    jwks: &Value,
    exp: &AccessTokenExpectations<'_>,
    cache: Option<&VerifierCache>,
) -> Result<Map<String, Value>, IdTokenError> {
    let jws = CompactJws::parse(token).map_err(IdTokenError::Malformed)?;
    if exp.check_signature {
        let alg = jws.alg();
        if alg.eq_ignore_ascii_case("none") || !exp.allowed_algs.contains(&alg) {
            return Err(IdTokenError::AlgorithmNotAllowed(alg.to_owned()));
        }
        verify_with_jwks(&jws, jwks, alg, cache)?;
    }
    let claims = jws.claims;
    let iss = required_str(&claims, "iss")?;
    if iss != exp.issuer {
        return Err(IdTokenError::WrongIssuer { expected: exp.issuer.to_owned(), got: iss.to_owned() });
    }
    if required_date(&claims, "exp")?.saturating_add(exp.clock_skew) <= exp.now {
        return Err(IdTokenError::Expired);
    }
    let latest = exp.now.saturating_add(exp.clock_skew);
    for name in ["iat", "nbf"] {
        if numeric_date(&claims, name)?.is_some_and(|t| t > latest) {
            return Err(IdTokenError::IssuedInFuture);
        }
    }
    Ok(claims)
}

/// The kid of a compact JWS header, without verifying anything, so a caller
/// can look the key up in its JWK Set cache before calling [`verify`].
pub fn peek_kid(token: &str) -> Option<String> {
    let header = decode_header(token.split('.').next()?).ok()?;
    header.get("kid").and_then(Value::as_str).map(str::to_owned)
}

/// For an HMAC algorithm, a signer keyed with the client secret; `None` for
/// any other algorithm. Without a secret, or with one shorter than the hash
/// output (which RFC 7518 section 3.2 forbids), the algorithm is refused.
pub(crate) fn hmac_signer(alg: &str, secret: Option<&str>) -> Result<Option<Box<dyn JwsSigner>>, IdTokenError> {
    let refuse = || IdTokenError::AlgorithmNotAllowed(alg.to_owned());
    let signer: Result<Box<dyn JwsSigner>, _> = match (alg, secret) {
        ("HS256" | "HS384" | "HS512", None) => return Err(refuse()),
        ("HS256", Some(s)) => HS256.signer_from_bytes(s.as_bytes()).map(|v| Box::new(v) as _),
        ("HS384", Some(s)) => HS384.signer_from_bytes(s.as_bytes()).map(|v| Box::new(v) as _),
        ("HS512", Some(s)) => HS512.signer_from_bytes(s.as_bytes()).map(|v| Box::new(v) as _),
        _ => return Ok(None),
    };
    signer.map(Some).map_err(|_| refuse())
}

/// Verifies a public-key signature with the key of the JWK Set that the token
/// designates (OpenID Connect Core 1.0 section 10.1.1).
pub(crate) fn verify_with_jwks(
    jws: &CompactJws<'_>,
    jwks: &Value,
    alg: &str,
    cache: Option<&VerifierCache>,
) -> Result<(), IdTokenError> {
    if !is_public_key_alg(alg) {
        return Err(IdTokenError::AlgorithmNotAllowed(alg.to_owned()));
    }
    let kid = jws.kid();
    let keys = jwks.get("keys").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let candidates: Vec<&Value> = match kid {
        Some(kid) => {
            let named: Vec<&Value> = keys
                .iter()
                .filter(|k| k.get("kid").and_then(Value::as_str) == Some(kid) && is_signing_key(k))
                .collect();
            if named.is_empty() {
                return Err(IdTokenError::UnknownKey(Some(kid.to_owned())));
            }
            // The key exists but is not for this algorithm: the token is trying
            // to choose how the key is used (RFC 8725 section 2.1).
            let fitting: Vec<&Value> = named.into_iter().filter(|k| key_fits_alg(k, alg)).collect();
            if fitting.is_empty() {
                return Err(IdTokenError::AlgorithmNotAllowed(alg.to_owned()));
            }
            if fitting.len() > MAX_CANDIDATE_KEYS {
                return Err(IdTokenError::TooManyKeys { kid: Some(kid.to_owned()), count: fitting.len() });
            }
            fitting
        }
        None => {
            let fitting: Vec<&Value> = keys.iter().filter(|k| is_signing_key(k) && key_fits_alg(k, alg)).collect();
            // Without a kid, guessing among several keys is not allowed.
            if fitting.len() != 1 {
                return Err(IdTokenError::UnknownKey(None));
            }
            fitting
        }
    };
    let mut usable = false;
    for key in candidates {
        let verifier = match cache {
            Some(c) => c.get(alg, key),
            None => public_key_verifier(alg, key).map(std::sync::Arc::from),
        };
        let Ok(verifier) = verifier else { continue };
        usable = true;
        if verifier.verify(jws.signing_input, &jws.signature).is_ok() {
            return Ok(());
        }
    }
    if usable {
        Err(IdTokenError::BadSignature)
    } else {
        Err(IdTokenError::UnknownKey(kid.map(str::to_owned)))
    }
}

/// A NumericDate claim (RFC 7519 section 2) as whole seconds, or `None` when
/// absent. A fractional value is rounded down; a huge one saturates.
pub(crate) fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, IdTokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f.floor() as i64))
            .map(Some)
            .ok_or_else(|| IdTokenError::Malformed(format!("{name} is not a number"))),
    }
}

/// A required NumericDate claim.
fn required_date(claims: &Map<String, Value>, name: &'static str) -> Result<i64, IdTokenError> {
    numeric_date(claims, name)?.ok_or(IdTokenError::MissingClaim(name))
}

/// A required string claim.
pub(crate) fn required_str<'c>(claims: &'c Map<String, Value>, name: &'static str) -> Result<&'c str, IdTokenError> {
    match claims.get(name) {
        None => Err(IdTokenError::MissingClaim(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(IdTokenError::Malformed(format!("{name} is not a string"))),
    }
}

/// The claim checks of OpenID Connect Core 1.0 section 3.1.3.7, after the
/// signature has verified.
fn check_claims(claims: &Map<String, Value>, exp: &Expectations<'_>) -> Result<(), IdTokenError> {
    // Step 2: the issuer must match exactly.
    let iss = required_str(claims, "iss")?;
    if iss != exp.issuer {
        return Err(IdTokenError::WrongIssuer { expected: exp.issuer.to_owned(), got: iss.to_owned() });
    }

    // Steps 3 to 5: the audience and the authorized party.
    let aud: Vec<&str> = match claims.get("aud") {
        None => return Err(IdTokenError::MissingClaim("aud")),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or_else(|| IdTokenError::Malformed("aud holds a non-string".to_owned())))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(IdTokenError::Malformed("aud is not a string or an array".to_owned())),
    };
    if !aud.contains(&exp.client_id) {
        return Err(IdTokenError::WrongAudience);
    }
    match claims.get("azp") {
        Some(azp) if azp.as_str() != Some(exp.client_id) => return Err(IdTokenError::WrongAuthorizedParty),
        None if aud.len() > 1 => return Err(IdTokenError::WrongAuthorizedParty),
        _ => {}
    }

    // Step 9: the token must not have expired.
    let expires = required_date(claims, "exp")?;
    if expires.saturating_add(exp.clock_skew) <= exp.now {
        return Err(IdTokenError::Expired);
    }

    // Step 10: the token must not come from the future. `nbf` is not an ID
    // token claim, but RFC 7519 section 4.1.5 forbids accepting a JWT before it.
    let latest = exp.now.saturating_add(exp.clock_skew);
    if required_date(claims, "iat")? > latest {
        return Err(IdTokenError::IssuedInFuture);
    }
    if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > latest) {
        return Err(IdTokenError::IssuedInFuture);
    }

    // Section 2: `sub` is required and never empty.
    if required_str(claims, "sub")?.is_empty() {
        return Err(IdTokenError::MissingClaim("sub"));
    }

    // Step 11: the nonce binds the token to this browser's request.
    if let Some(expected) = exp.nonce {
        let nonce = required_str(claims, "nonce")?;
        if !bool::from(nonce.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(IdTokenError::NonceMismatch);
        }
    }

    // Step 13: with max_age, the authentication must be recent enough.
    if let Some(max_age) = exp.max_age {
        let auth_time = required_date(claims, "auth_time")?;
        if auth_time.saturating_add(max_age).saturating_add(exp.clock_skew) < exp.now {
            return Err(IdTokenError::AuthTooOld);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use josekit::jwk::alg::ed::EdCurve;
    use josekit::jwk::KeyPair;
    use josekit::jws::{EdDSA, ES256, RS256};
    use serde_json::json;

    use super::*;
    use crate::jwt::tests::sign_raw;
    use crate::TokenSigner;

    const ISS: &str = "https://idp.example";
    const CLIENT: &str = "federa";
    const NONCE: &str = "n-0S6_WzA2Mj";
    const SECRET: &str = "a client secret of at least 32 bytes!";
    const NOW: i64 = 1_700_000_000;

    /// The upstream's keys, made once because RSA key generation is slow.
    struct Upstream {
        rs: TokenSigner,
        es: TokenSigner,
        ed: TokenSigner,
        rsa_public_pem: Vec<u8>,
        jwks: Value,
    }

    fn upstream() -> &'static Upstream {
        static UPSTREAM: OnceLock<Upstream> = OnceLock::new();
        UPSTREAM.get_or_init(|| {
            let rsa = RS256.generate_key_pair(2048).unwrap();
            let ec = ES256.generate_key_pair().unwrap();
            let ed = EdDSA.generate_key_pair(EdCurve::Ed25519).unwrap();
            let public = |pair: &dyn KeyPair, kid: &str| {
                let mut jwk = pair.to_jwk_public_key();
                jwk.set_key_id(kid);
                let map: Map<String, Value> = jwk.into();
                Value::Object(map)
            };
            Upstream {
                rs: TokenSigner::from_pem("RS256", "rsa-1", &rsa.to_pem_private_key()).unwrap(),
                es: TokenSigner::from_pem("ES256", "ec-1", &ec.to_pem_private_key()).unwrap(),
                ed: TokenSigner::from_pem("EdDSA", "ed-1", &ed.to_pem_private_key()).unwrap(),
                rsa_public_pem: rsa.to_pem_public_key(),
                jwks: json!({"keys": [public(&rsa, "rsa-1"), public(&ec, "ec-1"), public(&ed, "ed-1")]}),
            }
        })
    }

    fn claims() -> Map<String, Value> {
        json!({
            "iss": ISS, "sub": "alice", "aud": CLIENT, "exp": NOW + 300, "iat": NOW - 10,
            "nonce": NONCE, "auth_time": NOW - 60, "email": "alice@example.com",
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn with(changes: Value) -> Map<String, Value> {
        let mut c = claims();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.remove(k);
            } else {
                c.insert(k.clone(), v.clone());
            }
        }
        c
    }

    fn expect() -> Expectations<'static> {
        Expectations {
            issuer: ISS,
            client_id: CLIENT,
            nonce: Some(NONCE),
            allowed_algs: DEFAULT_ALGS,
            client_secret: None,
            now: NOW,
            clock_skew: 60,
            max_age: None,
        }
    }

    fn rs(claims: &Map<String, Value>) -> String {
        upstream().rs.sign("JWT", claims).unwrap()
    }

    fn check(claims: Map<String, Value>) -> Result<VerifiedIdToken, IdTokenError> {
        verify(&rs(&claims), &upstream().jwks, &expect())
    }

    fn hs256(secret: &[u8], header: Value) -> String {
        sign_raw(&header, &claims(), &HS256.signer_from_bytes(secret).unwrap())
    }

    #[test]
    fn valid_tokens_verify_for_each_key_type() {
        let up = upstream();
        for signer in [&up.rs, &up.es, &up.ed] {
            let token = signer.sign("JWT", &claims()).unwrap();
            let verified = verify(&token, &up.jwks, &expect()).unwrap();
            assert_eq!(verified.subject(), "alice", "{}", signer.alg());
            assert_eq!(verified.claim_str("email"), Some("alice@example.com"));
            assert_eq!(verified.claim_str("exp"), None);
            assert_eq!(verified.claims(), &claims());
        }
    }

    #[test]
    fn alg_none_is_refused_even_when_listed() {
        let token = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap())
        );
        let allowed = ["none", "RS256"];
        let listed = Expectations { allowed_algs: &allowed, ..expect() };
        assert_eq!(verify(&token, &upstream().jwks, &listed), Err(IdTokenError::AlgorithmNotAllowed("none".into())));
        assert_eq!(verify(&token, &upstream().jwks, &expect()), Err(IdTokenError::AlgorithmNotAllowed("none".into())));
        let shouted = token.replacen(
            &URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            &URL_SAFE_NO_PAD.encode(br#"{"alg":"NONE"}"#),
            1,
        );
        let allowed = ["NONE", "RS256"];
        let listed = Expectations { allowed_algs: &allowed, ..expect() };
        assert_eq!(verify(&shouted, &upstream().jwks, &listed), Err(IdTokenError::AlgorithmNotAllowed("NONE".into())));
    }

    #[test]
    fn hs256_keyed_with_the_rsa_public_key_is_refused() {
        // This is the classic algorithm confusion: an HMAC over the token keyed
        // with the provider's public key, which anyone can fetch.
        let up = upstream();
        let refused = Err(IdTokenError::AlgorithmNotAllowed("HS256".into()));
        let public_jwk_text = serde_json::to_vec(&up.jwks["keys"][0]).unwrap();
        for key in [up.rsa_public_pem.as_slice(), public_jwk_text.as_slice()] {
            for header in [json!({"alg": "HS256", "kid": "rsa-1"}), json!({"alg": "HS256"})] {
                let forged = hs256(key, header);
                // HS256 is not allowed, so it is refused.
                assert_eq!(verify(&forged, &up.jwks, &expect()), refused);
                // HS256 is allowed but there is no secret, and the JWK is never used instead.
                let allowed = ["RS256", "HS256"];
                let no_secret = Expectations { allowed_algs: &allowed, ..expect() };
                assert_eq!(verify(&forged, &up.jwks, &no_secret), refused);
                // HS256 is allowed with the real secret, and the forgery does not verify.
                let with_secret = Expectations { client_secret: Some(SECRET), ..no_secret };
                assert_eq!(verify(&forged, &up.jwks, &with_secret), Err(IdTokenError::BadSignature));
            }
        }
    }

    #[test]
    fn hs256_with_the_client_secret_verifies_when_allowed() {
        let token = hs256(SECRET.as_bytes(), json!({"alg": "HS256", "typ": "JWT"}));
        let allowed = ["RS256", "HS256"];
        let exp = Expectations { allowed_algs: &allowed, client_secret: Some(SECRET), ..expect() };
        assert_eq!(verify(&token, &upstream().jwks, &exp).unwrap().subject(), "alice");
        // When HS256 is not listed, it is refused even with the secret.
        let unlisted = Expectations { client_secret: Some(SECRET), ..expect() };
        assert_eq!(verify(&token, &upstream().jwks, &unlisted), Err(IdTokenError::AlgorithmNotAllowed("HS256".into())));
        // A secret shorter than the hash output is refused (RFC 7518 section 3.2).
        let short = hs256(b"0123456789abcdef0123456789abcdef", json!({"alg": "HS256"}));
        let short_exp = Expectations { client_secret: Some("too short"), ..exp };
        assert_eq!(
            verify(&short, &upstream().jwks, &short_exp),
            Err(IdTokenError::AlgorithmNotAllowed("HS256".into()))
        );
    }

    #[test]
    fn a_flipped_signature_byte_is_refused() {
        let up = upstream();
        for signer in [&up.rs, &up.es, &up.ed] {
            let token = signer.sign("JWT", &claims()).unwrap();
            let (input, sig) = token.rsplit_once('.').unwrap();
            let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
            sig[10] ^= 0x01;
            let tampered = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
            assert_eq!(verify(&tampered, &up.jwks, &expect()), Err(IdTokenError::BadSignature), "{}", signer.alg());
        }
        // A changed claim under the original signature is refused.
        let token = rs(&claims());
        let parts: Vec<&str> = token.split('.').collect();
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&with(json!({"sub": "mallory"}))).unwrap());
        let forged = format!("{}.{forged_body}.{}", parts[0], parts[2]);
        assert_eq!(verify(&forged, &up.jwks, &expect()), Err(IdTokenError::BadSignature));
    }

    #[test]
    fn unknown_kid_names_the_kid() {
        let up = upstream();
        let other = RS256.generate_key_pair(2048).unwrap();
        let signer = TokenSigner::from_pem("RS256", "rotated-2", &other.to_pem_private_key()).unwrap();
        let token = signer.sign("JWT", &claims()).unwrap();
        assert_eq!(peek_kid(&token).as_deref(), Some("rotated-2"));
        assert_eq!(verify(&token, &up.jwks, &expect()), Err(IdTokenError::UnknownKey(Some("rotated-2".into()))));
        assert_eq!(verify(&token, &json!({}), &expect()), Err(IdTokenError::UnknownKey(Some("rotated-2".into()))));
    }

    #[test]
    fn without_kid_the_single_fitting_key_is_used() {
        let up = upstream();
        let ec = ES256.generate_key_pair().unwrap();
        let signer = ES256.signer_from_pem(ec.to_pem_private_key()).unwrap();
        let token = sign_raw(&json!({"alg": "ES256"}), &claims(), &signer);
        assert_eq!(peek_kid(&token), None);
        let jwk: Map<String, Value> = ec.to_jwk_public_key().into();
        let jwks = json!({"keys": [up.jwks["keys"][0], jwk, up.jwks["keys"][2]]});
        assert!(verify(&token, &jwks, &expect()).is_ok());
        // With two EC keys and no kid, there is no guessing.
        let two = json!({"keys": [up.jwks["keys"][1], jwk]});
        assert_eq!(verify(&token, &two, &expect()), Err(IdTokenError::UnknownKey(None)));
        // With no EC key at all, nothing fits.
        let none = json!({"keys": [up.jwks["keys"][0]]});
        assert_eq!(verify(&token, &none, &expect()), Err(IdTokenError::UnknownKey(None)));
    }

    #[test]
    fn jwk_alg_use_and_type_must_suit_the_header() {
        let up = upstream();
        let token = rs(&claims());
        let mut labelled = up.jwks["keys"][0].clone();
        labelled["alg"] = json!("RS256");
        labelled["use"] = json!("sig");
        assert!(verify(&token, &json!({"keys": [labelled]}), &expect()).is_ok());

        let mut other_alg = up.jwks["keys"][0].clone();
        other_alg["alg"] = json!("PS256");
        assert_eq!(
            verify(&token, &json!({"keys": [other_alg]}), &expect()),
            Err(IdTokenError::AlgorithmNotAllowed("RS256".into()))
        );

        let mut for_encryption = up.jwks["keys"][0].clone();
        for_encryption["use"] = json!("enc");
        assert_eq!(
            verify(&token, &json!({"keys": [for_encryption]}), &expect()),
            Err(IdTokenError::UnknownKey(Some("rsa-1".into())))
        );

        // A header claiming ES256 for the RSA key's kid is refused.
        let forged = sign_raw(
            &json!({"alg": "ES256", "kid": "rsa-1"}),
            &claims(),
            &ES256.signer_from_pem(ES256.generate_key_pair().unwrap().to_pem_private_key()).unwrap(),
        );
        assert_eq!(verify(&forged, &up.jwks, &expect()), Err(IdTokenError::AlgorithmNotAllowed("ES256".into())));

        // An algorithm outside the allow-list is refused.
        let only_es = ["ES256"];
        let exp = Expectations { allowed_algs: &only_es, ..expect() };
        assert_eq!(verify(&token, &up.jwks, &exp), Err(IdTokenError::AlgorithmNotAllowed("RS256".into())));
    }

    #[test]
    fn keys_tried_per_token_are_bounded() {
        let up = upstream();
        let token = rs(&claims());
        // Another RSA key published under the token's kid: it fits, and fails.
        let stranger = {
            let mut jwk = RS256.generate_key_pair(2048).unwrap().to_jwk_public_key();
            jwk.set_key_id("rsa-1");
            Value::Object(jwk.into())
        };
        let right = up.jwks["keys"][0].clone();

        // Within the bound, the right key verifies wherever it is.
        let mut within = vec![stranger.clone(); MAX_CANDIDATE_KEYS - 1];
        within.push(right.clone());
        assert_eq!(verify(&token, &json!({ "keys": within }), &expect()).unwrap().subject(), "alice");

        // Thousands of keys under one kid: refused before any is tried, even
        // though the right key is among them.
        let mut flood = vec![stranger.clone(); 5000];
        flood.push(right.clone());
        let started = std::time::Instant::now();
        let refused = verify(&token, &json!({ "keys": flood }), &expect());
        assert_eq!(refused, Err(IdTokenError::TooManyKeys { kid: Some("rsa-1".into()), count: 5001 }));
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("5001 keys") && message.contains("at most 4"), "{message}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());

        // Keys that do not fit the algorithm, or are not for signing, do not count.
        let mut others = vec![up.jwks["keys"][1].clone(); 5000];
        let mut enc = stranger.clone();
        enc["use"] = json!("enc");
        others.extend(std::iter::repeat_n(enc, 5000));
        others.push(right);
        let mut renamed = up.jwks["keys"][1].clone();
        renamed["kid"] = json!("rsa-1");
        others.push(renamed);
        assert!(verify(&token, &json!({ "keys": others }), &expect()).is_ok());
    }

    #[test]
    fn issuer_must_match_exactly() {
        assert_eq!(
            check(with(json!({"iss": "https://idp.example/"}))),
            Err(IdTokenError::WrongIssuer { expected: ISS.into(), got: "https://idp.example/".into() })
        );
        assert_eq!(check(with(json!({"iss": null}))), Err(IdTokenError::MissingClaim("iss")));
    }

    #[test]
    fn audience_and_authorized_party() {
        assert_eq!(check(with(json!({"aud": "someone-else"}))), Err(IdTokenError::WrongAudience));
        assert_eq!(check(with(json!({"aud": ["a", "b"], "azp": CLIENT}))), Err(IdTokenError::WrongAudience));
        assert_eq!(check(with(json!({"aud": null}))), Err(IdTokenError::MissingClaim("aud")));
        assert!(check(with(json!({"aud": [CLIENT]}))).is_ok());
        assert_eq!(check(with(json!({"aud": [CLIENT, "api"]}))), Err(IdTokenError::WrongAuthorizedParty));
        assert!(check(with(json!({"aud": [CLIENT, "api"], "azp": CLIENT}))).is_ok());
        assert_eq!(check(with(json!({"aud": [CLIENT, "api"], "azp": "api"}))), Err(IdTokenError::WrongAuthorizedParty));
        assert_eq!(check(with(json!({"azp": "api"}))), Err(IdTokenError::WrongAuthorizedParty));
        assert!(check(with(json!({"azp": CLIENT}))).is_ok());
        assert!(matches!(check(with(json!({"aud": 7}))), Err(IdTokenError::Malformed(_))));
    }

    #[test]
    fn expiry_honours_the_skew() {
        assert!(check(with(json!({"exp": NOW - 30}))).is_ok());
        assert!(check(with(json!({"exp": NOW - 59}))).is_ok());
        assert_eq!(check(with(json!({"exp": NOW - 60}))), Err(IdTokenError::Expired));
        assert_eq!(check(with(json!({"exp": NOW - 3600}))), Err(IdTokenError::Expired));
        assert_eq!(check(with(json!({"exp": null}))), Err(IdTokenError::MissingClaim("exp")));
        assert!(check(with(json!({"exp": (NOW + 300) as f64 + 0.5}))).is_ok());
        assert!(check(with(json!({"exp": u64::MAX}))).is_ok());
        assert!(matches!(check(with(json!({"exp": "tomorrow"}))), Err(IdTokenError::Malformed(_))));
    }

    #[test]
    fn issued_in_the_future_is_refused() {
        assert!(check(with(json!({"iat": NOW + 60}))).is_ok());
        assert_eq!(check(with(json!({"iat": NOW + 61}))), Err(IdTokenError::IssuedInFuture));
        assert_eq!(check(with(json!({"iat": null}))), Err(IdTokenError::MissingClaim("iat")));
        assert_eq!(check(with(json!({"nbf": NOW + 600}))), Err(IdTokenError::IssuedInFuture));
        assert!(check(with(json!({"nbf": NOW}))).is_ok());
    }

    #[test]
    fn subject_is_required() {
        assert_eq!(check(with(json!({"sub": null}))), Err(IdTokenError::MissingClaim("sub")));
        assert_eq!(check(with(json!({"sub": ""}))), Err(IdTokenError::MissingClaim("sub")));
    }

    #[test]
    fn nonce_must_match_when_expected() {
        assert_eq!(check(with(json!({"nonce": "replayed"}))), Err(IdTokenError::NonceMismatch));
        assert_eq!(check(with(json!({"nonce": null}))), Err(IdTokenError::MissingClaim("nonce")));
        let no_nonce = Expectations { nonce: None, ..expect() };
        let up = upstream();
        assert!(verify(&rs(&with(json!({"nonce": "anything"}))), &up.jwks, &no_nonce).is_ok());
        assert!(verify(&rs(&with(json!({"nonce": null}))), &up.jwks, &no_nonce).is_ok());
    }

    #[test]
    fn max_age_needs_a_recent_auth_time() {
        let up = upstream();
        let exp = Expectations { max_age: Some(600), ..expect() };
        assert!(verify(&rs(&with(json!({"auth_time": NOW - 600}))), &up.jwks, &exp).is_ok());
        assert!(verify(&rs(&with(json!({"auth_time": NOW - 660}))), &up.jwks, &exp).is_ok());
        assert_eq!(verify(&rs(&with(json!({"auth_time": NOW - 661}))), &up.jwks, &exp), Err(IdTokenError::AuthTooOld));
        assert_eq!(
            verify(&rs(&with(json!({"auth_time": null}))), &up.jwks, &exp),
            Err(IdTokenError::MissingClaim("auth_time"))
        );
        // Without max_age, auth_time is not needed.
        assert!(check(with(json!({"auth_time": null}))).is_ok());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let jwks = &upstream().jwks;
        for token in ["", "abc", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(matches!(verify(token, jwks, &expect()), Err(IdTokenError::Malformed(_))), "{token}");
        }
        assert_eq!(peek_kid("abc"), None);
        assert_eq!(peek_kid(&rs(&claims())).as_deref(), Some("rsa-1"));
    }

    #[test]
    fn unsigned_acceptance_still_checks_the_claims() {
        let mut forged = rs(&claims());
        forged.push_str("AAAA");
        assert!(check(claims()).is_ok());
        assert_eq!(
            verify(&forged, &upstream().jwks, &expect()).unwrap_err(),
            IdTokenError::BadSignature,
            "verify checks the signature"
        );
        let accepted = accept_unsigned(&forged, &expect()).unwrap();
        assert_eq!(accepted.subject(), "alice");
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap())
        );
        assert!(accept_unsigned(&none, &expect()).is_ok());
        let wrong = rs(&with(json!({"nonce": "other"})));
        assert_eq!(accept_unsigned(&wrong, &expect()).unwrap_err(), IdTokenError::NonceMismatch);
        let stale = rs(&with(json!({"exp": NOW - 100})));
        assert_eq!(accept_unsigned(&stale, &expect()).unwrap_err(), IdTokenError::Expired);
        let elsewhere = rs(&with(json!({"iss": "https://evil.example"})));
        assert!(matches!(accept_unsigned(&elsewhere, &expect()), Err(IdTokenError::WrongIssuer { .. })));
    }

    #[test]
    fn access_tokens_are_checked_without_an_audience() {
        let at = |c: Value| {
            let mut m = c.as_object().unwrap().clone();
            m.entry("iss").or_insert(json!(ISS));
            m.entry("exp").or_insert(json!(NOW + 300));
            rs(&m)
        };
        let exp = AccessTokenExpectations {
            issuer: ISS,
            allowed_algs: DEFAULT_ALGS,
            check_signature: true,
            now: NOW,
            clock_skew: 0,
        };
        let jwks = &upstream().jwks;
        let got =
            verify_access_token(&at(json!({"aud": "https://api.example", "scope": "read"})), jwks, &exp, None).unwrap();
        assert_eq!(got["scope"], "read");
        let no_aud = at(json!({"sub": "alice"}));
        assert!(verify_access_token(&no_aud, jwks, &exp, None).is_ok(), "no audience is needed");
        assert_eq!(
            verify_access_token(&at(json!({"exp": NOW - 1})), jwks, &exp, None).unwrap_err(),
            IdTokenError::Expired
        );
        assert!(matches!(
            verify_access_token(&at(json!({"iss": "https://other.example"})), jwks, &exp, None),
            Err(IdTokenError::WrongIssuer { .. })
        ));
        let mut bad = at(json!({}));
        bad.push_str("AAAA");
        assert_eq!(verify_access_token(&bad, jwks, &exp, None).unwrap_err(), IdTokenError::BadSignature);
        let unchecked = AccessTokenExpectations { check_signature: false, ..exp };
        assert!(verify_access_token(&bad, jwks, &unchecked, None).is_ok(), "validateSignature off");
        assert!(matches!(verify_access_token("an-opaque-token", jwks, &exp, None), Err(IdTokenError::Malformed(_))));
        assert!(matches!(
            verify_access_token(&at(json!({})), &json!({"keys": []}), &exp, None),
            Err(IdTokenError::UnknownKey(_))
        ));
    }

    #[test]
    fn debug_hides_the_client_secret() {
        let exp = Expectations { client_secret: Some(SECRET), ..expect() };
        let shown = format!("{exp:?}");
        assert!(!shown.contains(SECRET));
        assert!(shown.contains("***"));
    }
}
