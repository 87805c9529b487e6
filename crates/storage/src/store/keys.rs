//! [`KeyStore`] on [`DbStore`]: a realm's signing keys, private halves
//! encrypted at rest.

use async_trait::async_trait;
use diesel::prelude::*;
use federa_broker::keys::SigningKey;
use federa_broker::KeyStore;

use super::errors::db_err;
use super::{from_json, realm_id, to_json, DbStore, Res};
use crate::crypto::MasterKey;
use crate::rows::*;
use crate::schema::*;

/// The row of a key, its private half encrypted.
pub(super) fn key_row(key: &MasterKey, realm_id: &str, k: &SigningKey) -> Res<KeyRow> {
    Ok(KeyRow {
        kid: k.kid.clone(),
        realm_id: realm_id.to_owned(),
        alg: k.alg.clone(),
        private_enc: key.encrypt(k.private_pem.expose())?,
        public_jwk: to_json(&k.public_jwk)?,
        created_at: k.created_at,
        active: k.active,
    })
}

#[async_trait]
impl KeyStore for DbStore {
    async fn signing_keys(&self, realm: &str) -> Res<Vec<SigningKey>> {
        let realm = realm.to_owned();
        self.run(move |c, key| {
            let id = realm_id(c, &realm)?;
            let rows: Vec<KeyRow> = realm_keys::table
                .filter(realm_keys::realm_id.eq(&id))
                .order(realm_keys::created_at.desc())
                .select(KeyRow::as_select())
                .load(c)
                .map_err(db_err)?;
            rows.into_iter()
                .map(|r| {
                    Ok(SigningKey {
                        private_pem: key.decrypt(&r.private_enc)?,
                        public_jwk: from_json(&r.public_jwk)?,
                        kid: r.kid,
                        alg: r.alg,
                        created_at: r.created_at,
                        active: r.active,
                    })
                })
                .collect()
        })
        .await
    }
}
