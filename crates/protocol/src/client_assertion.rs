//! Client authentication with a JWT at an upstream token endpoint (OpenID
//! Connect Core 1.0 section 9, RFC 7523 section 2.2): `client_secret_jwt`
//! signs with the client secret (HMAC), `private_key_jwt` with a private key
//! whose public half the upstream knows (Federa's realm key, published in the
//! realm's JWKS).
//!
//! It also verifies the assertions Federa's own clients present at its token,
//! introspection and revocation endpoints ([`verify`], RFC 7523 section 3,
//! RFC 7521 section 4.2): the same two methods, checked the other way round.

use josekit::jws::{JwsSigner, HS256, HS384, HS512};
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;

use crate::id_token::{hmac_signer, numeric_date, verify_with_jwks, IdTokenError};
use crate::jwt::{CompactJws, JwtError, VerifierCache};

/// `client_assertion_type` for a JWT (RFC 7523 section 2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid: short, it is used at once.
pub const LIFETIME_SECS: i64 = 60;

/// The claims OIDC Core section 9 requires: `iss` and `sub` the client id,
/// `aud` the token endpoint, a `jti` used once, `iat` and a short `exp`.
pub fn claims(client_id: &str, token_endpoint: &str, jti: &str, now: i64) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("iss".into(), json!(client_id));
    c.insert("sub".into(), json!(client_id));
    c.insert("aud".into(), json!(token_endpoint));
    c.insert("jti".into(), json!(jti));
    c.insert("iat".into(), json!(now));
    c.insert("exp".into(), json!(now + LIFETIME_SECS));
    c
}

/// The HMAC algorithms `client_secret_jwt` may use.
pub const HMAC_ALGS: &[&str] = &["HS256", "HS384", "HS512"];

/// Signs `claims` with the client secret (`client_secret_jwt`). A secret
/// shorter than the hash output is refused (RFC 7518 section 3.2).
pub fn sign_with_secret(alg: &str, secret: &str, claims: &Map<String, Value>) -> Result<String, JwtError> {
    let key = |e: josekit::JoseError| JwtError::Key(e.to_string());
    let signer: Box<dyn JwsSigner> = match alg {
        "HS256" => Box::new(HS256.signer_from_bytes(secret.as_bytes()).map_err(key)?),
        "HS384" => Box::new(HS384.signer_from_bytes(secret.as_bytes()).map_err(key)?),
        "HS512" => Box::new(HS512.signer_from_bytes(secret.as_bytes()).map_err(key)?),
        other => return Err(JwtError::AlgorithmNotAllowed(other.to_owned())),
    };
    let min = match alg {
        "HS256" => 32,
        "HS384" => 48,
        _ => 64,
    };
    if secret.len() < min {
        return Err(JwtError::Key(format!(
            "{alg} needs a client secret of at least {min} bytes (RFC 7518 section 3.2)"
        )));
    }
    crate::jwt::compact_jws(&json!({ "alg": alg, "typ": "JWT" }), claims, signer.as_ref())
}

/// The furthest ahead of now an assertion presented to Federa may expire:
/// an assertion is made for one request (RFC 7523 section 3, item 4 lets the
/// server bound its lifetime), so a long-lived one is refused rather than
/// kept replayable for long. Keycloak's clients make them live 60 s.
pub const MAX_ACCEPTED_LIFETIME_SECS: i64 = 300;

/// The leeway for the client's clock, on `exp`, `iat` and `nbf`.
pub const CLOCK_SKEW_SECS: i64 = 10;

/// The key an assertion presented to Federa must be signed with.
#[derive(Clone, Copy)]
pub enum AssertionKey<'a> {
    /// `client_secret_jwt`: HS256, HS384 or HS512 keyed with the client
    /// secret's octets (OpenID Connect Core 1.0 section 9), which must be at
    /// least as long as the hash (RFC 7518 section 3.2).
    Secret(&'a str),
    /// `private_key_jwt`: a public key of the client's JWK Set
    /// (`{"keys": [...]}`), chosen by `kid` and fitting the algorithm.
    Jwks(&'a Value),
}

impl std::fmt::Debug for AssertionKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(***)"),
            Self::Jwks(set) => f.debug_tuple("Jwks").field(set).finish(),
        }
    }
}

/// What an assertion presented to Federa must say.
#[derive(Debug, Clone, Copy)]
pub struct AssertionCheck<'a> {
    /// The client it authenticates: `iss` and `sub` must both equal it (RFC
    /// 7523 section 3, items 1 and 2).
    pub client_id: &'a str,
    /// Federa's identifiers the `aud` claim may name, one of which it must
    /// (item 3): the realm's issuer and its endpoints that authenticate
    /// clients.
    pub audiences: &'a [String],
    /// The current time, seconds since the epoch.
    pub now: i64,
}

/// An assertion whose signature and claims verified: what the caller still
/// has to record so that it is used once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// Its `jti`.
    pub jti: String,
    /// Its `exp`: the `jti` must be remembered until then.
    pub exp: i64,
}

/// Why a client assertion was refused. Every one of them is the same
/// `invalid_client` to the client; the reason is for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Not a compact JWS with JSON object parts, or a claim of the wrong type.
    #[error("malformed client assertion: {0}")]
    Malformed(String),
    /// `none`, an algorithm that does not suit the client's method or key, or
    /// an HMAC with a secret too short for it.
    #[error("client assertion algorithm not allowed: {0}")]
    AlgorithmNotAllowed(String),
    /// No key of the client's JWK Set matches (the token's `kid`): the
    /// caller may fetch the set again and retry once.
    #[error("no key of the client's JWK Set matches the assertion (kid {0:?})")]
    UnknownKey(Option<String>),
    /// The signature does not verify.
    #[error("the client assertion's signature does not verify")]
    BadSignature,
    /// A claim is missing or says something else than it must.
    #[error("client assertion: {0}")]
    Claim(String),
}

impl From<IdTokenError> for AssertionError {
    fn from(e: IdTokenError) -> Self {
        match e {
            IdTokenError::Malformed(m) => Self::Malformed(m),
            IdTokenError::AlgorithmNotAllowed(a) => Self::AlgorithmNotAllowed(a),
            IdTokenError::UnknownKey(kid) => Self::UnknownKey(kid),
            IdTokenError::TooManyKeys { kid, .. } => Self::UnknownKey(kid),
            IdTokenError::BadSignature => Self::BadSignature,
            other => Self::Claim(other.to_string()),
        }
    }
}

/// Verifies a client assertion presented to Federa (RFC 7523 section 3,
/// OpenID Connect Core 1.0 section 9), with the client's key and the
/// current time passed in.
///
/// The signature first: `none` is refused, [`AssertionKey::Secret`] accepts
/// only HMAC and [`AssertionKey::Jwks`] only a public-key algorithm that
/// fits the key the `kid` names, so the token never chooses how a key is
/// used (RFC 8725 section 3.1). Then the claims: `iss` and `sub` are the
/// client id, `aud` names one of `check.audiences`, `exp` is present, not
/// past (with [`CLOCK_SKEW_SECS`]) and at most [`MAX_ACCEPTED_LIFETIME_SECS`]
/// ahead, `iat` and `nbf`, when present, not in the future, and `jti` is a
/// non-empty string. Recording the `jti` (single use) is the caller's.
pub fn verify(
    token: &str,
    key: AssertionKey<'_>,
    check: &AssertionCheck<'_>,
    cache: Option<&VerifierCache>,
) -> Result<VerifiedAssertion, AssertionError> {
    let jws = CompactJws::parse(token).map_err(AssertionError::Malformed)?;
    let alg = jws.alg();
    if alg.eq_ignore_ascii_case("none") {
        return Err(AssertionError::AlgorithmNotAllowed(alg.to_owned()));
    }
    match key {
        AssertionKey::Secret(secret) => {
            if !HMAC_ALGS.contains(&alg) {
                return Err(AssertionError::AlgorithmNotAllowed(alg.to_owned()));
            }
            let min = match alg {
                "HS256" => 32,
                "HS384" => 48,
                _ => 64,
            };
            if secret.len() < min {
                return Err(AssertionError::AlgorithmNotAllowed(format!(
                    "{alg} with a client secret shorter than {min} bytes (RFC 7518 section 3.2)"
                )));
            }
            let signer =
                hmac_signer(alg, Some(secret))?.ok_or_else(|| AssertionError::AlgorithmNotAllowed(alg.to_owned()))?;
            let mac = signer.sign(jws.signing_input).map_err(|_| AssertionError::BadSignature)?;
            if !bool::from(mac.ct_eq(&jws.signature)) {
                return Err(AssertionError::BadSignature);
            }
        }
        AssertionKey::Jwks(set) => verify_with_jwks(&jws, set, alg, cache)?,
    }
    check_claims(&jws.claims, check)
}

/// The claim checks of [`verify`], after the signature verified.
fn check_claims(claims: &Map<String, Value>, check: &AssertionCheck<'_>) -> Result<VerifiedAssertion, AssertionError> {
    let claim = |m: String| AssertionError::Claim(m);
    let string = |name: &str| match claims.get(name) {
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(_) => Err(AssertionError::Malformed(format!("{name} is not a string"))),
        None => Err(claim(format!("no {name} claim"))),
    };
    for name in ["iss", "sub"] {
        let value = string(name)?;
        if value != check.client_id {
            return Err(claim(format!("{name} {value:?} is not the client id {:?}", check.client_id)));
        }
    }
    let aud: Vec<&str> = match claims.get("aud") {
        None => return Err(claim("no aud claim".to_owned())),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(AssertionError::Malformed("aud is not a string or an array".to_owned())),
    };
    if !aud.iter().any(|a| check.audiences.iter().any(|ours| ours == a)) {
        return Err(claim(format!("aud {aud:?} names neither the issuer nor an endpoint of this realm")));
    }
    let date = |name: &'static str| numeric_date(claims, name).map_err(AssertionError::from);
    let exp = date("exp")?.ok_or_else(|| claim("no exp claim".to_owned()))?;
    if exp.saturating_add(CLOCK_SKEW_SECS) <= check.now {
        return Err(claim("it has expired".to_owned()));
    }
    if exp > check.now.saturating_add(MAX_ACCEPTED_LIFETIME_SECS).saturating_add(CLOCK_SKEW_SECS) {
        return Err(claim(format!("exp is more than {MAX_ACCEPTED_LIFETIME_SECS} s ahead")));
    }
    let latest = check.now.saturating_add(CLOCK_SKEW_SECS);
    if date("iat")?.is_some_and(|t| t > latest) {
        return Err(claim("iat is in the future".to_owned()));
    }
    if date("nbf")?.is_some_and(|t| t > latest) {
        return Err(claim("nbf is in the future".to_owned()));
    }
    let jti = string("jti")?;
    if jti.is_empty() {
        return Err(claim("jti is empty".to_owned()));
    }
    Ok(VerifiedAssertion { jti: jti.to_owned(), exp })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hmac_assertion_verifies_with_the_secret_and_carries_the_claims() {
        let secret = "a-client-secret-that-is-long-enough-for-hs256";
        let c = claims("federa", "https://idp.test/token", "j1", 1000);
        let token = sign_with_secret("HS256", secret, &c).unwrap();
        let verifier = HS256.verifier_from_bytes(secret.as_bytes()).unwrap();
        let (payload, header) = josekit::jwt::decode_with_verifier(&token, &verifier).unwrap();
        assert_eq!(header.algorithm(), Some("HS256"));
        assert_eq!(payload.claim("aud"), Some(&json!("https://idp.test/token")));
        assert_eq!(payload.claim("exp"), Some(&json!(1000 + LIFETIME_SECS)));
        assert_eq!(payload.claim("sub"), Some(&json!("federa")));
    }

    #[test]
    fn short_secrets_and_other_algorithms_are_refused() {
        let c = claims("federa", "https://idp.test/token", "j1", 1000);
        assert!(sign_with_secret("HS256", "short", &c).is_err());
        assert!(sign_with_secret("HS512", &"x".repeat(40), &c).is_err());
        assert!(sign_with_secret("RS256", &"x".repeat(64), &c).is_err());
    }

    const CLIENT: &str = "svc";
    const NOW: i64 = 1_000_000;
    const SECRET: &str = "a-client-secret-that-is-long-enough-for-hs256";

    fn audiences() -> Vec<String> {
        vec!["https://fed.test/realms/r".into(), "https://fed.test/realms/r/protocol/openid-connect/token".into()]
    }

    fn assertion(changes: Value) -> Map<String, Value> {
        let mut c = claims(CLIENT, "https://fed.test/realms/r/protocol/openid-connect/token", "j1", NOW);
        for (k, v) in changes.as_object().cloned().unwrap_or_default() {
            if v.is_null() {
                c.remove(&k);
            } else {
                c.insert(k, v);
            }
        }
        c
    }

    fn check_secret(token: &str) -> Result<VerifiedAssertion, AssertionError> {
        let aud = audiences();
        verify(
            token,
            AssertionKey::Secret(SECRET),
            &AssertionCheck { client_id: CLIENT, audiences: &aud, now: NOW },
            None,
        )
    }

    fn hs(changes: Value) -> String {
        sign_with_secret("HS256", SECRET, &assertion(changes)).unwrap()
    }

    #[test]
    fn a_good_assertion_verifies_and_names_its_jti() {
        assert_eq!(check_secret(&hs(json!({}))), Ok(VerifiedAssertion { jti: "j1".into(), exp: NOW + LIFETIME_SECS }));
        // The issuer as audience, in an array with something else.
        assert!(check_secret(&hs(json!({"aud": ["other", "https://fed.test/realms/r"]}))).is_ok());
    }

    #[test]
    fn claims_table() {
        let cases: &[(Value, &str)] = &[
            (json!({"iss": "other"}), "iss"),
            (json!({"sub": "other"}), "sub"),
            (json!({"iss": null}), "no iss"),
            (json!({"aud": "https://fed.test/realms/other"}), "aud"),
            (json!({"aud": null}), "no aud"),
            (json!({"exp": null}), "no exp"),
            (json!({"exp": NOW - CLOCK_SKEW_SECS}), "expired"),
            (json!({"exp": NOW + MAX_ACCEPTED_LIFETIME_SECS + CLOCK_SKEW_SECS + 1}), "ahead"),
            (json!({"iat": NOW + CLOCK_SKEW_SECS + 1}), "iat"),
            (json!({"nbf": NOW + CLOCK_SKEW_SECS + 1}), "nbf"),
            (json!({"jti": null}), "no jti"),
            (json!({"jti": ""}), "jti is empty"),
        ];
        for (changes, why) in cases {
            let err = check_secret(&hs(changes.clone())).unwrap_err();
            assert!(err.to_string().contains(why), "{changes}: {err}");
        }
        // Within the skew, and at the longest lifetime, it passes.
        assert!(check_secret(&hs(json!({"exp": NOW - CLOCK_SKEW_SECS + 1}))).is_ok());
        assert!(check_secret(&hs(json!({"exp": NOW + MAX_ACCEPTED_LIFETIME_SECS, "nbf": NOW + 5}))).is_ok());
    }

    #[test]
    fn algorithms_must_suit_the_method() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&assertion(json!({}))).unwrap());
        let none = format!("{}.{body}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#));
        assert!(matches!(check_secret(&none), Err(AssertionError::AlgorithmNotAllowed(_))));
        // Another secret, a short secret.
        let other = sign_with_secret("HS256", &"y".repeat(40), &assertion(json!({}))).unwrap();
        assert_eq!(check_secret(&other), Err(AssertionError::BadSignature));
        let aud = audiences();
        let short = AssertionCheck { client_id: CLIENT, audiences: &aud, now: NOW };
        let err = verify(&hs(json!({})), AssertionKey::Secret("short"), &short, None).unwrap_err();
        assert!(matches!(err, AssertionError::AlgorithmNotAllowed(_)), "{err}");

        // private_key_jwt: the client's RSA key verifies; HMAC, a stranger's
        // key and an unknown kid do not.
        let (pem, jwk) = crate::jwt::tests::key_pair("RS256", "k1");
        let set = json!({"keys": [jwk]});
        let signed = |kid: &str, pem: &[u8]| {
            crate::TokenSigner::from_pem("RS256", kid, pem).unwrap().sign("JWT", &assertion(json!({}))).unwrap()
        };
        let jwks = |t: &str| verify(t, AssertionKey::Jwks(&set), &short, None);
        assert!(jwks(&signed("k1", &pem)).is_ok());
        let (stranger, _) = crate::jwt::tests::key_pair("RS256", "k1");
        assert_eq!(jwks(&signed("k1", &stranger)), Err(AssertionError::BadSignature));
        assert_eq!(jwks(&signed("k2", &pem)), Err(AssertionError::UnknownKey(Some("k2".into()))));
        assert!(matches!(jwks(&hs(json!({}))), Err(AssertionError::AlgorithmNotAllowed(_))));
        assert!(matches!(jwks(&none), Err(AssertionError::AlgorithmNotAllowed(_))));
    }
}
