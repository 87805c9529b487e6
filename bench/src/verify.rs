//! Verification of a sample of the tokens Federa issues, so that a fast
//! wrong answer cannot count as a success: the signature against the realm's
//! JWK Set (checked here with josekit directly, not with Federa's own
//! verifier), `iss`, `aud`, `nonce`, `exp`, the explicit `typ` of each token
//! and the ID token's `at_hash`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use josekit::jwk::Jwk;
use josekit::jws::{JwsVerifier as _, RS256};
use serde_json::{Map, Value};
use sha2::Digest as _;

use crate::flow::Target;
use crate::util::Failures;
use crate::APP;

/// Checks one token response in every `every`, and keeps count.
pub struct TokenCheck {
    issuer: String,
    keys: Vec<Value>,
    every: usize,
    seen: AtomicUsize,
    checked: AtomicUsize,
    /// Sampled responses that failed verification, and why.
    pub failures: Failures,
}

impl TokenCheck {
    /// Reads the realm's JWK Set once (the realm has one key for the whole run).
    pub async fn fetch(http: &reqwest::Client, target: &Target, every: usize) -> TokenCheck {
        Self::fetch_from(http, &target.certs, &target.issuer, every).await
    }

    /// Reads a JWK Set once, for tokens of `issuer`.
    pub async fn fetch_from(http: &reqwest::Client, certs: &str, issuer: &str, every: usize) -> TokenCheck {
        let resp = http.get(certs).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "GET {certs}");
        let jwks: Value = resp.json().await.unwrap();
        let keys = jwks["keys"].as_array().cloned().unwrap_or_default();
        assert!(!keys.is_empty(), "the realm's JWK Set has no keys: {jwks}");
        TokenCheck {
            issuer: issuer.to_owned(),
            keys,
            every: every.max(1),
            seen: AtomicUsize::new(0),
            checked: AtomicUsize::new(0),
            failures: Failures::default(),
        }
    }

    /// How many token responses were verified.
    pub fn checked(&self) -> usize {
        self.checked.load(Ordering::Relaxed)
    }

    pub fn every(&self) -> usize {
        self.every
    }

    /// The signing keys Federa publishes, as `alg kty-bits` (e.g. `RS256 RSA-2048`).
    pub fn key_summary(&self) -> String {
        let describe = |k: &Value| {
            let alg = k["alg"].as_str().unwrap_or("?");
            let bits = k["n"].as_str().and_then(|n| URL_SAFE_NO_PAD.decode(n).ok()).map(|n| n.len() * 8);
            match (k["kty"].as_str(), bits) {
                (Some("RSA"), Some(b)) => format!("{alg} RSA-{b}"),
                (kty, _) => format!("{alg} {}", kty.unwrap_or("?")),
            }
        };
        self.keys.iter().map(describe).collect::<Vec<_>>().join(", ")
    }

    /// Verifies every `every`-th response (the first included); a failure
    /// is counted here and makes the operation fail.
    pub fn sample(&self, id_token: &str, access_token: &str, nonce: &str) -> Result<(), String> {
        self.sampled(|| self.verify(id_token, access_token, Some(nonce)))
    }

    /// As [`TokenCheck::sample`], for a refresh grant's response: its ID
    /// token carries no nonce (OIDC Core section 12.2).
    pub fn sample_refreshed(&self, id_token: &str, access_token: &str) -> Result<(), String> {
        self.sampled(|| self.verify(id_token, access_token, None))
    }

    /// As [`TokenCheck::sample`], for an access token alone (a
    /// client_credentials grant's): signature, `typ`, `iss`, `exp`, and
    /// `sub`, `client_id` and `aud` as given (`aud` when `Some`).
    pub fn sample_access(
        &self,
        access_token: &str,
        sub: &str,
        client_id: &str,
        aud: Option<&str>,
    ) -> Result<(), String> {
        self.sampled(|| self.verify_access(access_token, sub, client_id, aud))
    }

    fn sampled(&self, verify: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
        if !self.seen.fetch_add(1, Ordering::Relaxed).is_multiple_of(self.every) {
            return Ok(());
        }
        self.checked.fetch_add(1, Ordering::Relaxed);
        verify().map_err(|reason| {
            self.failures.add(reason.clone(), Duration::ZERO);
            format!("a sampled token failed verification: {reason}")
        })
    }

    fn verify_access(&self, token: &str, sub: &str, client_id: &str, aud: Option<&str>) -> Result<(), String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
        let (header, at) = self.verify_jws(token).map_err(|e| format!("access token: {e}"))?;
        let s = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
        let expect = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
        expect(s(&header, "typ").as_deref() == Some("at+jwt"), "access token: typ is not at+jwt")?;
        expect(s(&at, "iss").as_deref() == Some(self.issuer.as_str()), "access token: wrong iss")?;
        expect(at.get("exp").and_then(Value::as_i64).is_some_and(|e| e > now), "access token: expired or no exp")?;
        expect(s(&at, "sub").as_deref() == Some(sub), "access token: wrong sub")?;
        expect(s(&at, "client_id").as_deref() == Some(client_id), "access token: wrong client_id")?;
        if let Some(aud) = aud {
            let ok = match at.get("aud") {
                Some(Value::String(a)) => a == aud,
                Some(Value::Array(a)) => a.iter().any(|x| x == aud),
                _ => false,
            };
            expect(ok, "access token: wrong aud")?;
        }
        Ok(())
    }

    fn verify(&self, id_token: &str, access_token: &str, nonce: Option<&str>) -> Result<(), String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
        let (id_header, id) = self.verify_jws(id_token).map_err(|e| format!("ID token: {e}"))?;
        let (at_header, at) = self.verify_jws(access_token).map_err(|e| format!("access token: {e}"))?;
        let s = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
        let aud_is_app = |m: &Map<String, Value>| match m.get("aud") {
            Some(Value::String(a)) => a == APP,
            Some(Value::Array(a)) => a.iter().any(|x| x == APP),
            _ => false,
        };
        let expect = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };

        expect(s(&id_header, "typ").as_deref() == Some("JWT"), "ID token: typ is not JWT")?;
        expect(s(&id, "iss").as_deref() == Some(self.issuer.as_str()), "ID token: wrong iss")?;
        expect(aud_is_app(&id), "ID token: aud is not the client")?;
        expect(s(&id, "nonce").as_deref() == nonce, "ID token: nonce is not the one sent")?;
        expect(id.get("exp").and_then(Value::as_i64).is_some_and(|e| e > now), "ID token: expired or no exp")?;
        let at_hash = URL_SAFE_NO_PAD.encode(&sha2::Sha256::digest(access_token.as_bytes())[..16]);
        expect(s(&id, "at_hash") == Some(at_hash), "ID token: at_hash does not match the access token")?;

        expect(s(&at_header, "typ").as_deref() == Some("at+jwt"), "access token: typ is not at+jwt")?;
        expect(s(&at, "iss").as_deref() == Some(self.issuer.as_str()), "access token: wrong iss")?;
        expect(aud_is_app(&at), "access token: aud is not the client")?;
        expect(s(&at, "client_id").as_deref() == Some(APP), "access token: client_id is not the client")?;
        expect(s(&at, "sub").is_some() && s(&at, "sub") == s(&id, "sub"), "the tokens name different subjects")?;
        Ok(())
    }

    /// Checks a compact JWS's RS256 signature with the JWK its `kid` names;
    /// returns its header and claims.
    fn verify_jws(&self, token: &str) -> Result<(Map<String, Value>, Map<String, Value>), String> {
        let parts: Vec<&str> = token.split('.').collect();
        let [header_b64, claims_b64, sig_b64] = parts[..] else {
            return Err("not a compact JWS".into());
        };
        let object = |b64: &str| -> Result<Map<String, Value>, String> {
            let bytes = URL_SAFE_NO_PAD.decode(b64).map_err(|_| "not base64url".to_owned())?;
            match serde_json::from_slice(&bytes) {
                Ok(Value::Object(m)) => Ok(m),
                _ => Err("not a JSON object".into()),
            }
        };
        let header = object(header_b64)?;
        let claims = object(claims_b64)?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(format!("alg is {:?}, not RS256", header.get("alg")));
        }
        let kid = header.get("kid").and_then(Value::as_str).ok_or("no kid")?;
        let key = self
            .keys
            .iter()
            .find(|k| k["kid"].as_str() == Some(kid))
            .and_then(Value::as_object)
            .ok_or_else(|| format!("kid {kid:?} is not in the JWK Set"))?;
        let jwk = Jwk::from_map(key.clone()).map_err(|e| format!("bad JWK: {e}"))?;
        let verifier = RS256.verifier_from_jwk(&jwk).map_err(|e| format!("bad JWK: {e}"))?;
        let signature = URL_SAFE_NO_PAD.decode(sig_b64).map_err(|_| "the signature is not base64url")?;
        let input = &token[..header_b64.len() + 1 + claims_b64.len()];
        verifier.verify(input.as_bytes(), &signature).map_err(|_| "the signature does not verify".to_owned())?;
        Ok((header, claims))
    }
}

#[cfg(test)]
mod tests {
    use josekit::jwk::KeyPair as _;
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "http://127.0.0.1:1/realms/bench";

    /// A check over one fresh RS256 key, verifying every response, and a
    /// function that issues (ID token, access token) for given claims.
    fn setup() -> (TokenCheck, impl Fn(Value, Value) -> (String, String)) {
        let pair = RS256.generate_key_pair(2048).unwrap();
        let mut jwk = pair.to_jwk_public_key();
        jwk.set_key_id("k1");
        jwk.set_algorithm("RS256");
        let signer = federa_protocol::TokenSigner::from_pem("RS256", "k1", &pair.to_pem_private_key()).unwrap();
        let check = TokenCheck {
            issuer: ISSUER.into(),
            keys: vec![Value::Object(jwk.as_ref().clone())],
            every: 1,
            seen: AtomicUsize::new(0),
            checked: AtomicUsize::new(0),
            failures: Failures::default(),
        };
        let issue = move |id: Value, at: Value| {
            let access = signer.sign("at+jwt", at.as_object().unwrap()).unwrap();
            let mut id = id.as_object().unwrap().clone();
            let at_hash = URL_SAFE_NO_PAD.encode(&sha2::Sha256::digest(access.as_bytes())[..16]);
            id.entry("at_hash").or_insert(json!(at_hash));
            (signer.sign("JWT", &id).unwrap(), access)
        };
        (check, issue)
    }

    fn id_claims() -> Value {
        json!({"iss": ISSUER, "sub": "u1", "aud": APP, "nonce": "n1", "exp": 4_000_000_000_i64})
    }

    fn at_claims() -> Value {
        json!({"iss": ISSUER, "sub": "u1", "aud": APP, "client_id": APP, "exp": 4_000_000_000_i64})
    }

    #[test]
    fn a_correct_response_passes_and_wrong_ones_fail() {
        let (check, issue) = setup();
        let (id, at) = issue(id_claims(), at_claims());
        assert_eq!(check.sample(&id, &at, "n1"), Ok(()));
        assert!(check.sample(&id, &at, "another nonce").unwrap_err().contains("nonce"));

        let mut wrong_aud = id_claims();
        wrong_aud["aud"] = json!("someone-else");
        let (id2, at2) = issue(wrong_aud, at_claims());
        assert!(check.sample(&id2, &at2, "n1").unwrap_err().contains("aud"));

        // A signature that is not the key's.
        let (other, other_issue) = setup();
        let (id3, at3) = other_issue(id_claims(), at_claims());
        assert!(check.sample(&id3, &at3, "n1").unwrap_err().contains("does not verify"));
        assert_eq!(other.checked(), 0);

        // The two tokens of different responses do not pair up (at_hash).
        let mut other_at = at_claims();
        other_at["jti"] = json!("another token");
        let (_, at4) = issue(id_claims(), other_at);
        assert!(check.sample(&id, &at4, "n1").unwrap_err().contains("at_hash"));
        assert_eq!(check.checked(), 5);
        assert_eq!(check.failures.count(), 4);
    }

    #[test]
    fn only_one_response_in_every_is_verified() {
        let (mut check, _) = setup();
        check.every = 3;
        let outcomes: Vec<bool> = (0..6).map(|_| check.sample("x", "y", "n").is_err()).collect();
        assert_eq!(outcomes, [true, false, false, true, false, false]);
        assert_eq!(check.checked(), 2);
    }
}
