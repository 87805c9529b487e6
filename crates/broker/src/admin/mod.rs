//! The admin operations: what the admin API, realm files and `federa import`
//! do to a realm. Rules live here once: validation, read-only file realms,
//! uniqueness, secret masking, signing keys for new realms, audit events.
//!
//! This module holds the service itself, its audit trail, the realm lookups
//! every operation starts with and the secret masking; each area's operations
//! live in a submodule.

mod clients;
mod idps;
mod prepare;
mod realms;
mod users;

use std::sync::Arc;

use crate::error::BrokerError;
use crate::repr::{ClientRepresentation, IdentityProviderRepresentation};
use crate::store::{AuditEvent, RealmRecord, Store};
use crate::validate::MASK;

pub use prepare::prepare_realm;
pub use users::user_session_representation;

/// Where a realm comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealmSource {
    /// The admin API or `federa import`: writable through the API.
    Api,
    /// A file in `realms.import_dir`: read-only through the API.
    File {
        /// The file's path, shown in refusals.
        path: String,
        /// A digest of its content.
        digest: String,
    },
}

/// What importing a realm did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The realm was created.
    Created,
    /// A file realm's configuration was replaced.
    Updated,
    /// A file realm was already loaded from the same content.
    Unchanged,
}

/// The admin operations over a [`Store`].
#[derive(Clone)]
pub struct AdminService {
    store: Arc<dyn Store>,
    clock: fn() -> i64,
    epoch: crate::flow::cache::ConfigEpoch,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn not_found(what: &str, name: &str) -> BrokerError {
    BrokerError::NotFound(format!("{what} {name:?} not found"))
}

/// Hides an identity provider's client secret, as Keycloak does in every read.
pub fn mask_idp(mut idp: IdentityProviderRepresentation) -> IdentityProviderRepresentation {
    if let Some(s) = idp.config.get_mut("clientSecret") {
        if !s.is_empty() {
            *s = MASK.to_owned();
        }
    }
    idp
}

/// Hides a client's secret, for list responses.
pub fn mask_client(mut c: ClientRepresentation) -> ClientRepresentation {
    if c.secret.is_some() {
        c.secret = Some(MASK.to_owned());
    }
    c
}

impl AdminService {
    /// An admin service over a store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, clock: now, epoch: Default::default() }
    }

    /// The configuration epoch, bumped by every write; sign-in caches watch it.
    pub fn config_epoch(&self) -> crate::flow::cache::ConfigEpoch {
        self.epoch.clone()
    }

    /// The store, for the parts of Federa that read it directly.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    async fn audit(&self, realm: Option<&str>, kind: &str, resource: String) {
        // Every successful write ends here: caches of configuration go stale.
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let event = AuditEvent {
            realm: realm.map(str::to_owned),
            kind: kind.to_owned(),
            resource,
            details: serde_json::Value::Null,
            time: (self.clock)(),
        };
        if let Err(e) = self.store.audit(event).await {
            log::warn!("could not record an audit event: {e}");
        }
    }

    /// The realm, or 404.
    async fn realm(&self, realm: &str) -> Result<RealmRecord, BrokerError> {
        self.store.get_realm(realm).await?.ok_or_else(|| not_found("realm", realm))
    }

    /// The realm, or 404, or 403 when a realm file declares it.
    async fn writable_realm(&self, realm: &str) -> Result<RealmRecord, BrokerError> {
        let r = self.realm(realm).await?;
        match &r.managed_by {
            Some(file) => Err(BrokerError::ReadOnly { realm: realm.to_owned(), file: file.clone() }),
            None => Ok(r),
        }
    }
}
