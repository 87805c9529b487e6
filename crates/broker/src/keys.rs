//! Random secrets and realm signing keys.

use base64::Engine as _;
use federa_protocol::Secret;
use rand::RngCore as _;

use crate::error::BrokerError;

/// A random secret of 32 bytes, base64url without padding (43 characters).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A realm's signing key. The private half is a PEM document and stays a
/// `Secret`; storage encrypts it at rest.
#[derive(Debug)]
pub struct SigningKey {
    /// The JWK `kid`.
    pub kid: String,
    /// The JWS algorithm (`RS256`, `ES256`, `EdDSA`).
    pub alg: String,
    /// The private key, PKCS#8 PEM.
    pub private_pem: Secret,
    /// The public JWK, as JSON.
    pub public_jwk: serde_json::Value,
    /// Creation time, seconds since the epoch.
    pub created_at: i64,
    /// Whether new tokens are signed with it.
    pub active: bool,
}

/// Generates a signing key for `alg` (RSA-2048 for RS256, P-256 for ES256,
/// Ed25519 for EdDSA).
pub fn generate_signing_key(alg: &str, now: i64) -> Result<SigningKey, BrokerError> {
    let fail = |e: josekit::JoseError| BrokerError::Internal(format!("key generation failed: {e}"));
    let (pem, mut jwk) = match alg {
        "RS256" => {
            let kp = josekit::jws::RS256.generate_key_pair(2048).map_err(fail)?;
            (kp.to_pem_private_key(), kp.to_jwk_public_key())
        }
        "ES256" => {
            let kp = josekit::jws::ES256.generate_key_pair().map_err(fail)?;
            (kp.to_pem_private_key(), kp.to_jwk_public_key())
        }
        "EdDSA" => {
            let kp = josekit::jws::EdDSA.generate_key_pair(josekit::jwk::alg::ed::EdCurve::Ed25519).map_err(fail)?;
            (kp.to_pem_private_key(), kp.to_jwk_public_key())
        }
        other => return Err(BrokerError::invalid("defaultSignatureAlgorithm", format!("{other:?} is not supported"))),
    };
    let kid = uuid::Uuid::new_v4().to_string();
    jwk.set_key_id(&kid);
    jwk.set_algorithm(alg);
    jwk.set_key_use("sig");
    let private_pem = String::from_utf8(pem).map_err(|e| BrokerError::Internal(e.to_string()))?;
    Ok(SigningKey {
        kid,
        alg: alg.to_owned(),
        private_pem: Secret::new(private_pem),
        public_jwk: serde_json::Value::Object(jwk.as_ref().clone()),
        created_at: now,
        active: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_each_algorithm_with_a_public_jwk_only() {
        for alg in ["RS256", "ES256", "EdDSA"] {
            let key = generate_signing_key(alg, 1).map_err(|e| e.to_string());
            assert!(key.is_ok(), "{alg}: {key:?}");
            if let Ok(k) = key {
                assert_eq!(k.public_jwk["alg"], alg);
                assert_eq!(k.public_jwk["kid"], k.kid.as_str());
                assert!(k.public_jwk.get("d").is_none(), "{alg} public JWK leaks the private part");
                assert!(k.private_pem.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
            }
        }
        assert!(generate_signing_key("HS256", 1).is_err());
    }

    #[test]
    fn secrets_differ() {
        assert_ne!(random_secret(), random_secret());
        assert_eq!(random_secret().len(), 43);
    }
}
