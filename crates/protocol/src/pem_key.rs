//! A public key given as PEM (a `PUBLIC KEY` or a `CERTIFICATE`), as
//! Keycloak's `publicKeySignatureVerifier` holds it, turned into a public JWK
//! (RFC 7517, RFC 7518 section 6) so that ID tokens are checked by the same
//! code as with a JWK Set.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::bn::BigNumContext;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Public};
use serde_json::{json, Value};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The public JWK of a PEM public key or certificate, with `kid` when given.
/// RSA, EC (P-256, P-384, P-521) and Ed25519 keys are understood.
pub fn jwk_from_pem(pem: &str, kid: Option<&str>) -> Result<Value, String> {
    let pem = pem.trim();
    // Keycloak also accepts the base64 body alone: wrap it as a public key.
    let pem = if pem.starts_with("-----BEGIN") {
        pem.to_owned()
    } else {
        format!("-----BEGIN PUBLIC KEY-----\n{pem}\n-----END PUBLIC KEY-----")
    };
    let key: PKey<Public> = if pem.contains("BEGIN CERTIFICATE") {
        let cert = openssl::x509::X509::from_pem(pem.as_bytes()).map_err(|e| format!("not a certificate: {e}"))?;
        cert.public_key().map_err(|e| format!("the certificate's key cannot be read: {e}"))?
    } else {
        PKey::public_key_from_pem(pem.as_bytes()).map_err(|e| format!("not a PEM public key: {e}"))?
    };
    let mut jwk = match key.id() {
        Id::RSA => {
            let rsa = key.rsa().map_err(|e| e.to_string())?;
            json!({"kty": "RSA", "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec())})
        }
        Id::EC => {
            let ec = key.ec_key().map_err(|e| e.to_string())?;
            let (crv, size) = match ec.group().curve_name() {
                Some(Nid::X9_62_PRIME256V1) => ("P-256", 32),
                Some(Nid::SECP384R1) => ("P-384", 48),
                Some(Nid::SECP521R1) => ("P-521", 66),
                _ => return Err("an EC key must be on P-256, P-384 or P-521".into()),
            };
            let mut ctx = BigNumContext::new().map_err(|e| e.to_string())?;
            let (mut x, mut y) = (
                openssl::bn::BigNum::new().map_err(|e| e.to_string())?,
                openssl::bn::BigNum::new().map_err(|e| e.to_string())?,
            );
            ec.public_key().affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx).map_err(|e| e.to_string())?;
            let pad = |n: &openssl::bn::BigNum| n.to_vec_padded(size).map_err(|e| e.to_string());
            json!({"kty": "EC", "crv": crv, "x": b64(&pad(&x)?), "y": b64(&pad(&y)?)})
        }
        Id::ED25519 => {
            let raw = key.raw_public_key().map_err(|e| e.to_string())?;
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&raw)})
        }
        _ => return Err("only RSA, EC and Ed25519 keys are supported".into()),
    };
    if let Some(kid) = kid {
        jwk["kid"] = json!(kid);
    }
    Ok(jwk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_ec_and_ed25519_keys_become_the_jwks_josekit_reads() {
        use josekit::jwk::KeyPair;
        let rsa = josekit::jwk::alg::rsa::RsaKeyPair::generate(2048).unwrap();
        let ec = josekit::jwk::alg::ec::EcKeyPair::generate(josekit::jwk::alg::ec::EcCurve::P256).unwrap();
        let ed = josekit::jwk::alg::ed::EdKeyPair::generate(josekit::jwk::alg::ed::EdCurve::Ed25519).unwrap();
        for (pair, public) in [
            (rsa.to_pem_public_key(), rsa.to_jwk_public_key()),
            (ec.to_pem_public_key(), ec.to_jwk_public_key()),
            (ed.to_pem_public_key(), ed.to_jwk_public_key()),
        ] {
            let pem = String::from_utf8(pair).unwrap();
            let jwk = jwk_from_pem(&pem, Some("k1")).unwrap();
            for field in ["kty", "crv", "n", "e", "x", "y"] {
                assert_eq!(
                    jwk.get(field).and_then(Value::as_str),
                    public.parameter(field).and_then(Value::as_str),
                    "{field} of {pem}"
                );
            }
            assert_eq!(jwk["kid"], "k1");
        }
        assert!(jwk_from_pem("not a key", None).is_err());
    }
}
