//! Client authentication with a JWT at an upstream token endpoint (OpenID
//! Connect Core 1.0 section 9, RFC 7523 section 2.2): `client_secret_jwt`
//! signs with the client secret (HMAC), `private_key_jwt` with a private key
//! whose public half the upstream knows (Federa's realm key, published in the
//! realm's JWKS).

use josekit::jws::{JwsSigner, HS256, HS384, HS512};
use serde_json::{json, Map, Value};

use crate::jwt::JwtError;

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
}
