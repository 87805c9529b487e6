//! Federa's own JSON Web Tokens: compact JWS (RFC 7515 section 7.1) carrying
//! JWT claims (RFC 7519), signed with one of Federa's keys and explicitly typed
//! (RFC 8725 section 3.11, RFC 9068 section 2.1), plus the left-half hashes of
//! OpenID Connect Core 1.0 section 3.1.3.6 (`at_hash`, `c_hash`).
//!
//! It also holds the compact-serialization parser and the public-key verifier
//! choice that `id_token` shares, so both follow one set of rules: the
//! algorithm comes from an allow-list and must agree with the key (RFC 8725
//! section 3.1), `none` and HMAC are never verified with a public key, and an
//! unknown `crit` header is refused (RFC 7515 section 4.1.11).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwk::Jwk;
use josekit::jws::{EdDSA, JwsSigner, JwsVerifier, ES256, ES384, ES512, PS256, PS384, PS512, RS256, RS384, RS512};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// The algorithms Federa signs its own tokens with.
const OWN_ALGS: &[&str] = &["RS256", "ES256", "EdDSA"];

/// The smallest RSA modulus, in bytes, that Federa signs with: 2048 bits, the
/// minimum of RFC 7518 section 3.3.
const MIN_RSA_BYTES: usize = 256;

/// The length of an Ed25519 signature (RFC 8032 section 5.1.6); an Ed448 key
/// makes longer ones.
const ED25519_SIGNATURE_LEN: usize = 64;

/// Why a token could not be signed or verified.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// A key could not be read or is unfit for its algorithm.
    #[error("unusable key: {0}")]
    Key(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The token is not a well-formed compact JWS carrying a JSON object.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// No key has the token's `kid`, or the token names none.
    #[error("no key matches the token's kid")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// The algorithm is not one Federa signs with, or does not match the key.
    #[error("algorithm not allowed: {0}")]
    AlgorithmNotAllowed(String),
}

/// Signs Federa's own tokens with one private key (RFC 7515 section 5.1).
///
/// `Debug` shows only the key id and algorithm, never key material.
pub struct TokenSigner {
    kid: String,
    alg: String,
    signer: Box<dyn JwsSigner>,
}

impl TokenSigner {
    /// A signer for `alg` ("RS256", "ES256" or "EdDSA") from a PKCS#8 private
    /// key PEM, whose tokens name `kid` in their header.
    ///
    /// RSA keys must have at least 2048 bits (RFC 7518 section 3.3) and EdDSA
    /// keys must be Ed25519, because `half_hash` pairs EdDSA with SHA-512 as
    /// OpenID Connect does for Ed25519 only.
    pub fn from_pem(alg: &str, kid: &str, pem: &[u8]) -> Result<Self, JwtError> {
        let key_err = |e: josekit::JoseError| JwtError::Key(e.to_string());
        let signer: Box<dyn JwsSigner> = match alg {
            "RS256" => Box::new(RS256.signer_from_pem(pem).map_err(key_err)?),
            "ES256" => Box::new(ES256.signer_from_pem(pem).map_err(key_err)?),
            "EdDSA" => Box::new(EdDSA.signer_from_pem(pem).map_err(key_err)?),
            other => return Err(JwtError::AlgorithmNotAllowed(other.to_owned())),
        };
        if alg == "RS256" && signer.signature_len() < MIN_RSA_BYTES {
            return Err(JwtError::Key("an RSA key must have at least 2048 bits".to_owned()));
        }
        if alg == "EdDSA" && signer.signature_len() != ED25519_SIGNATURE_LEN {
            return Err(JwtError::Key("an EdDSA key must be Ed25519".to_owned()));
        }
        Ok(Self { kid: kid.to_owned(), alg: alg.to_owned(), signer })
    }

    /// The key id written in each token's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWS algorithm (RFC 7518 section 3.1 name).
    pub fn alg(&self) -> &str {
        &self.alg
    }

    /// Signs `claims` as a compact JWS whose protected header is
    /// `{"alg", "kid", "typ"}`. `typ` types the token explicitly (RFC 8725
    /// section 3.11), for example "JWT" for an ID token or "at+jwt" for an
    /// access token (RFC 9068 section 2.1), so that one kind cannot be passed
    /// off as another.
    pub fn sign(&self, typ: &str, claims: &Map<String, Value>) -> Result<String, JwtError> {
        let header = serde_json::json!({ "alg": self.alg, "kid": self.kid, "typ": typ });
        compact_jws(&header, claims, self.signer.as_ref())
    }
}

/// `BASE64URL(header) . BASE64URL(claims) . BASE64URL(signature)`
/// (RFC 7515 section 7.1), signed by `signer`.
pub(crate) fn compact_jws(
    header: &Value,
    claims: &Map<String, Value>,
    signer: &dyn JwsSigner,
) -> Result<String, JwtError> {
    let header = serde_json::to_vec(header).map_err(|e| JwtError::Sign(e.to_string()))?;
    let payload = serde_json::to_vec(claims).map_err(|e| JwtError::Sign(e.to_string()))?;
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let signature = signer.sign(token.as_bytes()).map_err(|e| JwtError::Sign(e.to_string()))?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(token)
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

/// The left half of the hash of `value`'s ASCII octets, base64url-encoded
/// (OpenID Connect Core 1.0 section 3.1.3.6 for `at_hash`, section 3.3.2.11
/// for `c_hash`).
///
/// The hash is the one the JWS algorithm uses: SHA-256 for the `*256`
/// algorithms (and ES256K), SHA-384 for `*384`, SHA-512 for `*512` and for
/// EdDSA (with Ed25519). `None` for an algorithm it does not know, including
/// `none`.
pub fn half_hash(alg: &str, value: &str) -> Option<String> {
    let digest: Vec<u8> = match alg {
        "HS256" | "RS256" | "PS256" | "ES256" | "ES256K" => Sha256::digest(value.as_bytes()).to_vec(),
        "HS384" | "RS384" | "PS384" | "ES384" => Sha384::digest(value.as_bytes()).to_vec(),
        "HS512" | "RS512" | "PS512" | "ES512" | "EdDSA" => Sha512::digest(value.as_bytes()).to_vec(),
        _ => return None,
    };
    let half = digest.get(..digest.len() / 2)?;
    Some(URL_SAFE_NO_PAD.encode(half))
}

/// Verifies a compact JWS signed by one of Federa's own keys, such as an
/// access token presented at the userinfo or introspection endpoint, and
/// returns its claims.
///
/// The key is the one in `keys` (public JWKs, RFC 7517 section 4) whose `kid`
/// is the token's; the token's `alg` must be one Federa signs with and must
/// equal the key's `alg` (or, for a key without one, the algorithm its type
/// implies), so a token cannot choose how its key is used (RFC 8725 section
/// 3.1). Nothing about time or audience is checked here: the caller does that
/// with its own clock.
pub fn verify_own(token: &str, keys: &[Value]) -> Result<Map<String, Value>, JwtError> {
    verify_own_inner(token, keys, None)
}

/// [`verify_own`], with each public key parsed once and kept in `cache`.
pub fn verify_own_cached(token: &str, keys: &[Value], cache: &VerifierCache) -> Result<Map<String, Value>, JwtError> {
    verify_own_inner(token, keys, Some(cache))
}

fn verify_own_inner(
    token: &str,
    keys: &[Value],
    cache: Option<&VerifierCache>,
) -> Result<Map<String, Value>, JwtError> {
    let jws = CompactJws::parse(token).map_err(JwtError::Malformed)?;
    let alg = jws.alg();
    if !OWN_ALGS.contains(&alg) {
        return Err(JwtError::AlgorithmNotAllowed(alg.to_owned()));
    }
    let kid = jws.kid().ok_or(JwtError::UnknownKey)?;
    let key = keys
        .iter()
        .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid) && is_signing_key(k))
        .ok_or(JwtError::UnknownKey)?;
    let key_alg = key.get("alg").and_then(Value::as_str).or_else(|| implied_alg(key));
    if key_alg != Some(alg) || !key_fits_alg(key, alg) {
        return Err(JwtError::AlgorithmNotAllowed(alg.to_owned()));
    }
    let verifier = match cache {
        Some(c) => c.get(alg, key),
        None => public_key_verifier(alg, key).map(std::sync::Arc::from),
    }
    .map_err(JwtError::Key)?;
    verifier.verify(jws.signing_input, &jws.signature).map_err(|_| JwtError::BadSignature)?;
    Ok(jws.claims)
}

/// The most verifiers a [`VerifierCache`] keeps; past it the cache starts
/// over, so a key set that changes all the time cannot grow it.
const MAX_CACHED_VERIFIERS: usize = 256;

/// Verifiers built from public JWKs, so that a key is parsed (JWK to an
/// OpenSSL key, a curve point checked) once rather than for every token. An
/// entry is found by the algorithm and the JWK's exact JSON, so a changed key
/// is a new entry, never a stale one.
#[derive(Default)]
pub struct VerifierCache {
    map: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<dyn JwsVerifier>>>,
}

impl VerifierCache {
    /// The verifier of `key` for `alg`, built on first use.
    pub(crate) fn get(&self, alg: &str, key: &Value) -> Result<std::sync::Arc<dyn JwsVerifier>, String> {
        let id = format!("{alg} {key}");
        if let Some(v) = self.map.lock().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(v);
        }
        let verifier: std::sync::Arc<dyn JwsVerifier> = std::sync::Arc::from(public_key_verifier(alg, key)?);
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= MAX_CACHED_VERIFIERS {
                m.clear();
            }
            m.insert(id, verifier.clone());
        }
        Ok(verifier)
    }

    /// Forgets every verifier.
    pub fn clear(&self) {
        if let Ok(mut m) = self.map.lock() {
            m.clear();
        }
    }

    /// How many verifiers are kept.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for VerifierCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierCache({} keys)", self.len())
    }
}

/// The `typ` of a compact JWS's header, read without verifying anything, so
/// an endpoint can refuse a token of the wrong kind (RFC 9068 section 4:
/// an access token is `at+jwt`) before spending a signature check on it.
pub fn peek_typ(token: &str) -> Option<String> {
    let header = decode_header(token.split('.').next()?).ok()?;
    header.get("typ").and_then(Value::as_str).map(str::to_owned)
}

/// The algorithm Federa signs with for a key that does not name one.
fn implied_alg(key: &Value) -> Option<&'static str> {
    match (key.get("kty").and_then(Value::as_str), key.get("crv").and_then(Value::as_str)) {
        (Some("RSA"), _) => Some("RS256"),
        (Some("EC"), Some("P-256")) => Some("ES256"),
        (Some("OKP"), Some("Ed25519")) => Some("EdDSA"),
        _ => None,
    }
}

/// A compact JWS split into its parts and decoded (RFC 7515 section 7.1),
/// before any verification.
pub(crate) struct CompactJws<'a> {
    /// The JOSE header, with a string `alg`.
    pub(crate) header: Map<String, Value>,
    /// The payload, which must be a JSON object (RFC 7519 section 7.2, step 10).
    pub(crate) claims: Map<String, Value>,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`, the signed octets.
    pub(crate) signing_input: &'a [u8],
    /// The decoded signature.
    pub(crate) signature: Vec<u8>,
}

impl<'a> CompactJws<'a> {
    /// Splits and decodes a compact JWS. It refuses anything but three
    /// base64url parts without padding, a header without a string `alg`, a
    /// header with `crit` (no extension is understood, so RFC 7515 section
    /// 4.1.11 requires refusal), and a payload that is not a JSON object.
    pub(crate) fn parse(token: &'a str) -> Result<Self, String> {
        let mut parts = token.split('.');
        let (Some(header_part), Some(payload_part), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("a compact JWS has exactly three parts".to_owned());
        };
        let header = decode_header(header_part)?;
        if header.contains_key("crit") {
            return Err("the crit header names extensions that are not understood".to_owned());
        }
        let claims = decode_object(payload_part, "payload")?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| "the signature is not base64url".to_owned())?;
        // The signed octets are the first two parts and the dot between them.
        let signed_len = header_part.len() + 1 + payload_part.len();
        let signing_input = token.as_bytes().get(..signed_len).unwrap_or_default();
        Ok(Self { header, claims, signing_input, signature })
    }

    /// The header's `alg`; `parse` made sure it is a string.
    pub(crate) fn alg(&self) -> &str {
        self.header.get("alg").and_then(Value::as_str).unwrap_or_default()
    }

    /// The header's `kid`, when it is a string.
    pub(crate) fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }
}

/// Decodes a JOSE header segment, which must be a JSON object with a string
/// `alg` (RFC 7515 section 4.1.1).
pub(crate) fn decode_header(segment: &str) -> Result<Map<String, Value>, String> {
    let header = decode_object(segment, "header")?;
    match header.get("alg") {
        Some(Value::String(_)) => Ok(header),
        Some(_) => Err("the alg header is not a string".to_owned()),
        None => Err("the alg header is missing".to_owned()),
    }
}

/// Decodes a base64url segment holding a JSON object.
pub(crate) fn decode_object(segment: &str, what: &str) -> Result<Map<String, Value>, String> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| format!("the {what} is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(format!("the {what} is not a JSON object")),
        Err(e) => Err(format!("the {what} is not JSON: {e}")),
    }
}

/// Whether a JWK may verify signatures: its `use`, if present, is "sig" (RFC
/// 7517 section 4.2).
pub(crate) fn is_signing_key(key: &Value) -> bool {
    match key.get("use") {
        None => true,
        Some(u) => u.as_str() == Some("sig"),
    }
}

/// Whether a JWK suits a public-key JWS algorithm: its `alg`, if present, is
/// that algorithm (RFC 7517 section 4.4) and its type and curve are the ones
/// the algorithm needs (RFC 7518 sections 3.3 to 3.5, RFC 8037 section 3.1).
/// HMAC algorithms and `none` suit no JWK here, so a public key can never be
/// used as an HMAC secret (RFC 8725 section 2.1).
pub(crate) fn key_fits_alg(key: &Value, alg: &str) -> bool {
    if key.get("alg").is_some_and(|a| a.as_str() != Some(alg)) {
        return false;
    }
    let kty = key.get("kty").and_then(Value::as_str);
    let crv = key.get("crv").and_then(Value::as_str);
    match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => kty == Some("RSA"),
        "ES256" => kty == Some("EC") && crv == Some("P-256"),
        "ES384" => kty == Some("EC") && crv == Some("P-384"),
        "ES512" => kty == Some("EC") && crv == Some("P-521"),
        "EdDSA" => kty == Some("OKP") && matches!(crv, Some("Ed25519" | "Ed448")),
        _ => false,
    }
}

/// Whether an algorithm is one `public_key_verifier` supports.
pub(crate) fn is_public_key_alg(alg: &str) -> bool {
    matches!(alg, "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" | "ES256" | "ES384" | "ES512" | "EdDSA")
}

/// A verifier for a public-key JWS algorithm from a public JWK. josekit checks
/// the key's type, curve, `use`, `key_ops` and `alg` again, and refuses RSA
/// keys under 2048 bits.
pub(crate) fn public_key_verifier(alg: &str, key: &Value) -> Result<Box<dyn JwsVerifier>, String> {
    let map = key.as_object().cloned().ok_or_else(|| "a JWK is not a JSON object".to_owned())?;
    let jwk = Jwk::from_map(map).map_err(|e| e.to_string())?;
    let verifier: Result<Box<dyn JwsVerifier>, josekit::JoseError> = match alg {
        "RS256" => RS256.verifier_from_jwk(&jwk).map(|v| Box::new(v) as _),
        "RS384" => RS384.verifier_from_jwk(&jwk).map(|v| Box::new(v) as _),
        "RS512" => RS512.verifier_from_jwk(&jwk).map(|v| Box::new(v) as _),
        "PS256" => PS256.verifier_from_jwk(&jwk).map(|v| Box::new(v) as _),
        "PS384" => PS384.verifier_from_jwk(&jwk).map(|v| Box::new(v) as _),
        "PS512" => PS512.verifier_from_jwk(&jwk).map(|v| Box::new(v) as _),
        "ES256" => ES256.verifier_from_jwk(&jwk).map(|v| Box::new(v) as _),
        "ES384" => ES384.verifier_from_jwk(&jwk).map(|v| Box::new(v) as _),
        "ES512" => ES512.verifier_from_jwk(&jwk).map(|v| Box::new(v) as _),
        "EdDSA" => EdDSA.verifier_from_jwk(&jwk).map(|v| Box::new(v) as _),
        other => return Err(format!("{other} is not a public-key algorithm")),
    };
    verifier.map_err(|e| e.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use josekit::jwk::alg::ed::EdCurve;
    use josekit::jwk::KeyPair;
    use serde_json::json;

    /// A fresh private key PEM and its public JWK (with `kid` and `alg`) for
    /// one of the algorithms Federa signs with.
    pub(crate) fn key_pair(alg: &str, kid: &str) -> (Vec<u8>, Value) {
        let pair: Box<dyn KeyPair> = match alg {
            "RS256" => Box::new(RS256.generate_key_pair(2048).unwrap()),
            "ES256" => Box::new(ES256.generate_key_pair().unwrap()),
            "EdDSA" => Box::new(EdDSA.generate_key_pair(EdCurve::Ed25519).unwrap()),
            other => unreachable!("no test key for {other}"),
        };
        let mut jwk = pair.to_jwk_public_key();
        jwk.set_key_id(kid);
        jwk.set_algorithm(alg);
        jwk.set_key_use("sig");
        let map: Map<String, Value> = jwk.into();
        (pair.to_pem_private_key(), Value::Object(map))
    }

    fn claims() -> Map<String, Value> {
        json!({"iss": "https://federa.example/realms/r", "sub": "u1", "scope": "openid"}).as_object().unwrap().clone()
    }

    fn header_of(token: &str) -> Value {
        let segment = token.split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    }

    #[test]
    fn signer_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TokenSigner>();
    }

    #[test]
    fn round_trips_for_each_alg() {
        for alg in OWN_ALGS {
            let (pem, jwk) = key_pair(alg, "k1");
            let signer = TokenSigner::from_pem(alg, "k1", &pem).unwrap();
            assert_eq!(signer.kid(), "k1");
            assert_eq!(signer.alg(), *alg);
            let token = signer.sign("at+jwt", &claims()).unwrap();
            assert_eq!(header_of(&token), json!({"alg": alg, "kid": "k1", "typ": "at+jwt"}));
            let (_, other) = key_pair(alg, "k0");
            assert_eq!(verify_own(&token, &[other, jwk]).unwrap(), claims(), "{alg}");
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let (pem, _) = key_pair("ES256", "k1");
        let signer = TokenSigner::from_pem("ES256", "k1", &pem).unwrap();
        assert_eq!(format!("{signer:?}"), r#"TokenSigner { kid: "k1", alg: "ES256", .. }"#);
    }

    #[test]
    fn from_pem_refuses_unknown_algs_and_bad_keys() {
        let (pem, _) = key_pair("ES256", "k1");
        assert!(matches!(TokenSigner::from_pem("HS256", "k", &pem), Err(JwtError::AlgorithmNotAllowed(_))));
        assert!(matches!(TokenSigner::from_pem("none", "k", &pem), Err(JwtError::AlgorithmNotAllowed(_))));
        assert!(matches!(TokenSigner::from_pem("RS256", "k", &pem), Err(JwtError::Key(_))));
        assert!(matches!(TokenSigner::from_pem("ES256", "k", b"not a pem"), Err(JwtError::Key(_))));
        let ed448 = EdDSA.generate_key_pair(EdCurve::Ed448).unwrap();
        let err = TokenSigner::from_pem("EdDSA", "k", &ed448.to_pem_private_key());
        assert!(matches!(err, Err(JwtError::Key(_))));
    }

    #[test]
    fn verify_own_refuses_unknown_kid_and_bad_signature() {
        let (pem, jwk) = key_pair("RS256", "k1");
        let signer = TokenSigner::from_pem("RS256", "k1", &pem).unwrap();
        let token = signer.sign("at+jwt", &claims()).unwrap();

        let (_, other) = key_pair("RS256", "k2");
        assert!(matches!(verify_own(&token, std::slice::from_ref(&other)), Err(JwtError::UnknownKey)));

        // The right kid on another key: the signature cannot verify.
        let mut impostor = other;
        impostor["kid"] = json!("k1");
        assert!(matches!(verify_own(&token, &[impostor]), Err(JwtError::BadSignature)));

        let mut bytes = token.clone().into_bytes();
        let last = bytes.len() - 5;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(matches!(verify_own(&tampered, std::slice::from_ref(&jwk)), Err(JwtError::BadSignature)));

        assert!(matches!(verify_own("a.b", std::slice::from_ref(&jwk)), Err(JwtError::Malformed(_))));
        assert!(matches!(verify_own(&format!("{token}.x"), &[jwk]), Err(JwtError::Malformed(_))));
    }

    #[test]
    fn cached_verifiers_are_built_once_per_key_and_never_for_another() {
        let (pem, jwk) = key_pair("ES256", "k1");
        let signer = TokenSigner::from_pem("ES256", "k1", &pem).unwrap();
        let token = signer.sign("at+jwt", &claims()).unwrap();
        let cache = VerifierCache::default();
        for _ in 0..3 {
            assert!(verify_own_cached(&token, std::slice::from_ref(&jwk), &cache).is_ok());
        }
        assert_eq!(cache.len(), 1, "one key, one verifier");

        // Another key under the same kid is another entry, and refuses the token.
        let (_, mut impostor) = key_pair("ES256", "k2");
        impostor["kid"] = json!("k1");
        assert!(matches!(verify_own_cached(&token, &[impostor], &cache), Err(JwtError::BadSignature)));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn verify_own_refuses_alg_the_key_does_not_have() {
        let (pem, rsa_jwk) = key_pair("RS256", "k1");
        let signer = TokenSigner::from_pem("RS256", "k1", &pem).unwrap();
        let token = signer.sign("at+jwt", &claims()).unwrap();

        // The same key labelled for another algorithm is refused.
        let mut mislabelled = rsa_jwk.clone();
        mislabelled["alg"] = json!("PS256");
        assert!(matches!(verify_own(&token, &[mislabelled]), Err(JwtError::AlgorithmNotAllowed(_))));

        // A key without `alg` takes the algorithm its type implies.
        let mut bare = rsa_jwk.clone();
        bare.as_object_mut().unwrap().remove("alg");
        assert!(verify_own(&token, &[bare]).is_ok());

        // An HMAC token keyed with the public key's own text is never accepted.
        let public_text = serde_json::to_vec(&rsa_jwk).unwrap();
        let hs = josekit::jws::HS256.signer_from_bytes(&public_text).unwrap();
        let forged = sign_raw(&json!({"alg": "HS256", "kid": "k1"}), &claims(), &hs);
        assert!(matches!(verify_own(&forged, std::slice::from_ref(&rsa_jwk)), Err(JwtError::AlgorithmNotAllowed(_))));

        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap())
        );
        assert!(matches!(verify_own(&none, &[rsa_jwk]), Err(JwtError::AlgorithmNotAllowed(_))));
    }

    /// Signs a token with any header and any josekit signer, for attacks.
    pub(crate) fn sign_raw(header: &Value, claims: &Map<String, Value>, signer: &dyn JwsSigner) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
        );
        let sig = signer.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    #[test]
    fn parse_refuses_crit_padding_and_non_objects() {
        let body = URL_SAFE_NO_PAD.encode(br#"{"sub":"u"}"#);
        let crit = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","crit":["b64"],"b64":false}"#);
        assert!(CompactJws::parse(&format!("{crit}.{body}.AAAA")).is_err());
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
        assert!(CompactJws::parse(&format!("{header}.{body}.AAAA")).is_ok());
        assert!(CompactJws::parse(&format!("{header}=.{body}.AAAA")).is_err());
        let array = URL_SAFE_NO_PAD.encode(b"[1]");
        assert!(CompactJws::parse(&format!("{header}.{array}.AAAA")).is_err());
        let no_alg = URL_SAFE_NO_PAD.encode(br#"{"kid":"k"}"#);
        assert!(CompactJws::parse(&format!("{no_alg}.{body}.AAAA")).is_err());
        let token = format!("{header}.{body}.AAAA");
        let parsed = CompactJws::parse(&token).unwrap();
        assert_eq!(parsed.signing_input, format!("{header}.{body}").as_bytes());
    }

    #[test]
    fn half_hash_matches_oidc_core_examples() {
        // These are the at_hash and c_hash examples of OpenID Connect Core 1.0 appendices A.3 and A.4, both RS256.
        assert_eq!(
            half_hash("RS256", "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y").as_deref(),
            Some("77QmUPtjPfzWtF2AnpK9RQ")
        );
        assert_eq!(
            half_hash("RS256", "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk").as_deref(),
            Some("LDktKdoQak3Pk0cnXxCltA")
        );
    }

    #[test]
    fn half_hash_picks_the_hash_by_alg() {
        // SHA-256("abc") begins ba7816bf; the SHA-384 and SHA-512 halves are 24 and 32 octets long.
        assert_eq!(half_hash("ES256", "abc").as_deref(), Some("ungWv48Bz-pBQUDeXa4iIw"));
        assert_eq!(half_hash("PS384", "abc").map(|h| h.len()), Some(32));
        assert_eq!(half_hash("EdDSA", "abc"), half_hash("RS512", "abc"));
        assert_eq!(half_hash("EdDSA", "abc").map(|h| h.len()), Some(43));
        assert_eq!(half_hash("none", "abc"), None);
        assert_eq!(half_hash("rs256", "abc"), None);
    }
}
