//! A realm's signing keys, parsed once and cached briefly: parsing a private
//! key is far dearer than reading it, and a short expiry keeps instances in
//! step after a key changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use federa_protocol::TokenSigner;

use crate::store::{Store, StoreError};

const TTL: Duration = Duration::from_secs(30);

/// A realm's keys, ready to use.
pub struct RealmKeys {
    /// The active signer.
    pub signer: TokenSigner,
    /// Every public key, as JWKs.
    pub public: Vec<serde_json::Value>,
    /// Their verifiers, each built once.
    pub verifiers: federa_protocol::jwt::VerifierCache,
}

/// Parsed keys by realm.
#[derive(Default)]
pub struct KeyCache {
    realms: Mutex<HashMap<String, (Instant, Arc<RealmKeys>)>>,
}

impl KeyCache {
    /// The realm's keys, from the cache or the store.
    pub async fn get(&self, store: &dyn Store, realm: &str) -> Result<Arc<RealmKeys>, StoreError> {
        if let Ok(cache) = self.realms.lock() {
            if let Some((at, keys)) = cache.get(realm) {
                if at.elapsed() < TTL {
                    return Ok(keys.clone());
                }
            }
        }
        let keys = store.signing_keys(realm).await?;
        let active = keys
            .iter()
            .find(|k| k.active)
            .ok_or_else(|| StoreError::NotFound(format!("realm {realm:?} has no active signing key")))?;
        let signer = TokenSigner::from_pem(&active.alg, &active.kid, active.private_pem.expose().as_bytes())
            .map_err(|e| StoreError::Backend(format!("realm {realm:?} signing key: {e}")))?;
        let public = keys.iter().map(|k| k.public_jwk.clone()).collect();
        let entry = Arc::new(RealmKeys { signer, public, verifiers: Default::default() });
        if let Ok(mut cache) = self.realms.lock() {
            cache.insert(realm.to_owned(), (Instant::now(), entry.clone()));
        }
        Ok(entry)
    }
}
