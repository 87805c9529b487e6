//! OpenID Connect Back-Channel Logout 1.0: the Logout Token (section 2.4),
//! checked as a relying party receives one from an upstream (section 2.6),
//! and its claims built as an OpenID Provider sends one (section 2.4).
//!
//! No I/O and no clock: callers pass the provider's JWK Set and `now`.

use serde_json::{json, Map, Value};

use crate::id_token::{numeric_date, required_str, verify_with_jwks, IdTokenError};
use crate::jwt::{decode_object, CompactJws};

/// The member of `events` that makes a JWT a Logout Token (section 2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The explicit type of a Logout Token (section 2.4, RFC 8725 section 3.11).
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";

/// What a relying party expects of a Logout Token from one provider.
#[derive(Debug, Clone, Copy)]
pub struct LogoutExpectations<'a> {
    /// The provider's issuer; `iss` must equal it.
    pub issuer: &'a str,
    /// The relying party's client id there; `aud` must contain it.
    pub client_id: &'a str,
    /// The public-key JWS algorithms accepted; `none` and HMAC never are.
    pub allowed_algs: &'a [&'a str],
    /// Now, seconds since the epoch.
    pub now: i64,
    /// Seconds of leeway for clock differences (the provider's `allowedClockSkew`).
    pub clock_skew: i64,
    /// The oldest a token may be, by its `iat`, before the skew: a replay
    /// of an older one cannot be told apart by its `jti` once that record
    /// expires, so it is refused outright.
    pub max_age: i64,
}

/// A Logout Token whose signature and claims were checked by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutToken {
    /// The upstream subject, when given.
    pub sub: Option<String>,
    /// The upstream session, when given.
    pub sid: Option<String>,
    /// Its unique id.
    pub jti: String,
    /// When it was issued.
    pub iat: i64,
}

/// Why a Logout Token was refused; the message says which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutTokenError {
    /// The signature, algorithm, key, issuer or audience check failed (the
    /// same rules as an ID token's).
    #[error("{0}")]
    Jwt(#[from] IdTokenError),
    /// A claim required of a Logout Token is absent or malformed, or one it
    /// must not carry is there.
    #[error("{0}")]
    Claims(String),
}

fn bad(why: impl Into<String>) -> LogoutTokenError {
    LogoutTokenError::Claims(why.into())
}

/// The `iss` of a compact JWS, read without verifying anything: which
/// provider to check the token against.
pub fn peek_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let claims = decode_object(payload, "payload").ok()?;
    claims.get("iss").and_then(Value::as_str).map(str::to_owned)
}

/// Checks a Logout Token (Back-Channel Logout 1.0 section 2.6): a JWS (not
/// `none`, not HMAC) signed by a key of `jwks`, `iss` the provider's, `aud`
/// containing the client id (and `azp`, when present, the client id),
/// `iat` neither in the future nor older than `max_age` (both with the
/// skew), `exp` when present not passed, `events` holding the back-channel
/// logout member as a JSON object, `sub` or `sid` (or both) present, no
/// `nonce`, a `jti`. A `typ` header, when present, must be `logout+jwt` or
/// `JWT`, so that an ID token or an access token cannot be replayed here.
pub fn verify(token: &str, jwks: &Value, exp: &LogoutExpectations<'_>) -> Result<LogoutToken, LogoutTokenError> {
    verify_inner(token, jwks, exp, None)
}

/// [`verify`], with the keys parsed once and kept in `cache`.
pub fn verify_cached(
    token: &str,
    jwks: &Value,
    exp: &LogoutExpectations<'_>,
    cache: &crate::jwt::VerifierCache,
) -> Result<LogoutToken, LogoutTokenError> {
    verify_inner(token, jwks, exp, Some(cache))
}

fn verify_inner(
    token: &str,
    jwks: &Value,
    exp: &LogoutExpectations<'_>,
    cache: Option<&crate::jwt::VerifierCache>,
) -> Result<LogoutToken, LogoutTokenError> {
    let jws = CompactJws::parse(token).map_err(IdTokenError::Malformed)?;
    let alg = jws.alg();
    if alg.eq_ignore_ascii_case("none") || !exp.allowed_algs.contains(&alg) {
        return Err(IdTokenError::AlgorithmNotAllowed(alg.to_owned()).into());
    }
    match jws.header.get("typ") {
        None => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case(LOGOUT_TOKEN_TYP) || t.eq_ignore_ascii_case("JWT") => {}
        Some(other) => return Err(bad(format!("typ {other} is not logout+jwt"))),
    }
    verify_with_jwks(&jws, jwks, alg, cache)?;
    check_claims(&jws.claims, exp)
}

fn check_claims(claims: &Map<String, Value>, exp: &LogoutExpectations<'_>) -> Result<LogoutToken, LogoutTokenError> {
    let iss = required_str(claims, "iss")?;
    if iss != exp.issuer {
        return Err(IdTokenError::WrongIssuer { expected: exp.issuer.to_owned(), got: iss.to_owned() }.into());
    }
    let aud: Vec<&str> = match claims.get("aud") {
        None => return Err(IdTokenError::MissingClaim("aud").into()),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(IdTokenError::Malformed("aud is not a string or an array".to_owned()).into()),
    };
    if !aud.contains(&exp.client_id) {
        return Err(IdTokenError::WrongAudience.into());
    }
    if claims.get("azp").is_some_and(|azp| azp.as_str() != Some(exp.client_id)) {
        return Err(IdTokenError::WrongAuthorizedParty.into());
    }
    let iat = numeric_date(claims, "iat")?.ok_or(IdTokenError::MissingClaim("iat"))?;
    if iat > exp.now.saturating_add(exp.clock_skew) {
        return Err(IdTokenError::IssuedInFuture.into());
    }
    if iat < exp.now.saturating_sub(exp.max_age).saturating_sub(exp.clock_skew) {
        return Err(bad(format!("it was issued more than {} seconds ago", exp.max_age)));
    }
    if numeric_date(claims, "exp")?.is_some_and(|e| e.saturating_add(exp.clock_skew) <= exp.now) {
        return Err(IdTokenError::Expired.into());
    }
    if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > exp.now.saturating_add(exp.clock_skew)) {
        return Err(IdTokenError::IssuedInFuture.into());
    }
    match claims.get("events").and_then(|e| e.get(BACKCHANNEL_LOGOUT_EVENT)) {
        Some(Value::Object(_)) => {}
        Some(_) => return Err(bad("its back-channel logout event is not a JSON object")),
        None => return Err(bad(format!("events has no member {BACKCHANNEL_LOGOUT_EVENT}"))),
    }
    if claims.contains_key("nonce") {
        return Err(bad("it carries a nonce, which a Logout Token must not"));
    }
    let text = |name: &'static str| -> Result<Option<String>, LogoutTokenError> {
        match claims.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(bad(format!("{name} is not a non-empty string"))),
        }
    };
    let (sub, sid) = (text("sub")?, text("sid")?);
    if sub.is_none() && sid.is_none() {
        return Err(bad("it has neither sub nor sid"));
    }
    let jti = text("jti")?.ok_or_else(|| bad("it has no jti"))?;
    Ok(LogoutToken { sub, sid, jti, iat })
}

/// The claims of a Logout Token an OpenID Provider sends (section 2.4):
/// `iss`, `aud` (the client), `iat`, `exp`, `jti`, `events`, `sub`, and
/// `sid` when given. Signed with `typ` [`LOGOUT_TOKEN_TYP`].
pub fn claims(
    issuer: &str,
    client_id: &str,
    sub: &str,
    sid: Option<&str>,
    jti: &str,
    now: i64,
    lifetime: i64,
) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("iss".into(), json!(issuer));
    c.insert("aud".into(), json!(client_id));
    c.insert("iat".into(), json!(now));
    c.insert("exp".into(), json!(now.saturating_add(lifetime)));
    c.insert("jti".into(), json!(jti));
    c.insert("sub".into(), json!(sub));
    if let Some(sid) = sid {
        c.insert("sid".into(), json!(sid));
    }
    c.insert("events".into(), json!({ BACKCHANNEL_LOGOUT_EVENT: {} }));
    c
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use josekit::jwk::KeyPair as _;
    use josekit::jws::ES256;

    use super::*;
    use crate::jwt::tests::sign_raw;
    use crate::TokenSigner;

    const ISS: &str = "https://idp.example";
    const NOW: i64 = 1_700_000_000;

    struct Keys {
        signer: TokenSigner,
        other: TokenSigner,
        jwks: Value,
    }

    fn keys() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| {
            let pair = ES256.generate_key_pair().unwrap();
            let other = ES256.generate_key_pair().unwrap();
            let mut jwk = pair.to_jwk_public_key();
            jwk.set_key_id("k1");
            let jwk: Map<String, Value> = jwk.into();
            Keys {
                signer: TokenSigner::from_pem("ES256", "k1", &pair.to_pem_private_key()).unwrap(),
                other: TokenSigner::from_pem("ES256", "k1", &other.to_pem_private_key()).unwrap(),
                jwks: json!({ "keys": [jwk] }),
            }
        })
    }

    fn expect() -> LogoutExpectations<'static> {
        LogoutExpectations {
            issuer: ISS,
            client_id: "federa",
            allowed_algs: crate::id_token::DEFAULT_ALGS,
            now: NOW,
            clock_skew: 5,
            max_age: 300,
        }
    }

    fn token(changes: Value) -> String {
        let mut c = claims(ISS, "federa", "alice", Some("s1"), "j1", NOW - 1, 120);
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.remove(k);
            } else {
                c.insert(k.clone(), v.clone());
            }
        }
        keys().signer.sign(LOGOUT_TOKEN_TYP, &c).unwrap()
    }

    #[test]
    fn a_good_token_is_accepted() {
        let t = verify(&token(json!({})), &keys().jwks, &expect()).unwrap();
        assert_eq!(
            t,
            LogoutToken { sub: Some("alice".into()), sid: Some("s1".into()), jti: "j1".into(), iat: NOW - 1 }
        );
        assert_eq!(peek_issuer(&token(json!({}))).as_deref(), Some(ISS));
        let only_sid = verify(&token(json!({"sub": null})), &keys().jwks, &expect()).unwrap();
        assert_eq!((only_sid.sub, only_sid.sid.as_deref()), (None, Some("s1")));
        assert!(verify(&token(json!({"sid": null, "exp": null})), &keys().jwks, &expect()).is_ok());
    }

    #[test]
    fn each_rule_of_section_2_6_refuses() {
        let refused = |changes: Value| {
            let r = verify(&token(changes.clone()), &keys().jwks, &expect());
            assert!(r.is_err(), "{changes} was accepted");
        };
        refused(json!({"iss": "https://evil.example"}));
        refused(json!({"aud": "someone-else"}));
        refused(json!({"aud": ["federa", "x"], "azp": "x"}));
        refused(json!({"iat": NOW + 60}));
        refused(json!({"iat": NOW - 3600}));
        refused(json!({"iat": null}));
        refused(json!({"exp": NOW - 60}));
        refused(json!({"events": null}));
        refused(json!({"events": {"http://schemas.openid.net/event/backchannel-logout": "yes"}}));
        refused(json!({"events": {"other": {}}}));
        refused(json!({"sub": null, "sid": null}));
        refused(json!({"nonce": "n"}));
        refused(json!({"jti": null}));
        refused(json!({"sid": 3}));
    }

    #[test]
    fn only_the_providers_key_and_a_real_algorithm_verify() {
        let c = claims(ISS, "federa", "alice", None, "j", NOW, 60);
        let forged = keys().other.sign(LOGOUT_TOKEN_TYP, &c).unwrap();
        assert!(verify(&forged, &keys().jwks, &expect()).is_err());
        let hmac = josekit::jws::HS256.signer_from_bytes([7u8; 32]).unwrap();
        let none = sign_raw(&json!({"alg": "none"}), &c, &hmac);
        assert!(verify(&none, &keys().jwks, &expect()).is_err());
        let hs = sign_raw(&json!({"alg": "HS256"}), &c, &hmac);
        assert!(verify(&hs, &keys().jwks, &expect()).is_err());
        let at = keys().signer.sign("at+jwt", &c).unwrap();
        assert!(verify(&at, &keys().jwks, &expect()).is_err(), "an access token is not a logout token");
    }
}
