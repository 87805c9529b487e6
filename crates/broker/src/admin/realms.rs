//! Realm operations: creating a realm with everything nested in it, loading
//! realm files, listing, updating and deleting realms.

use super::{prepare_realm, AdminService, ImportOutcome, RealmSource};
use crate::error::BrokerError;
use crate::repr::RealmRepresentation;
use crate::store::RealmBundle;
use crate::validate;

impl AdminService {
    /// Validates a whole realm representation into a bundle, collecting the
    /// names of everything ignored into `ignored`.
    pub fn prepare_realm(
        &self,
        repr: RealmRepresentation,
        source: &RealmSource,
        ignored: &mut Vec<String>,
    ) -> Result<RealmBundle, BrokerError> {
        prepare_realm(repr, source, ignored, (self.clock)())
    }

    /// Creates a realm with everything nested in it, in one transaction.
    /// Returns the realm's name and the names of ignored fields.
    pub async fn create_realm(
        &self,
        repr: RealmRepresentation,
        source: RealmSource,
    ) -> Result<(String, Vec<String>), BrokerError> {
        let mut ignored = Vec::new();
        let bundle = self.prepare_realm(repr, &source, &mut ignored)?;
        let name = bundle.realm.repr.realm.clone().unwrap_or_default();
        if self.store.get_realm(&name).await?.is_some() {
            return Err(BrokerError::Conflict(format!("realm {name:?} already exists")));
        }
        self.store.create_realm(bundle).await?;
        self.audit(Some(&name), "ADMIN_CREATE", format!("realms/{name}")).await;
        Ok((name, ignored))
    }

    /// Loads a realm file: creates the realm, or replaces the configuration of
    /// a realm the same file declared before. A realm created through the API
    /// is never overwritten by a file.
    pub async fn load_realm_file(
        &self,
        repr: RealmRepresentation,
        path: &str,
        digest: &str,
    ) -> Result<(String, ImportOutcome, Vec<String>), BrokerError> {
        let source = RealmSource::File { path: path.to_owned(), digest: digest.to_owned() };
        let mut ignored = Vec::new();
        let name = repr.realm.clone().unwrap_or_default();
        match self.store.get_realm(name.trim()).await? {
            None => {
                let (name, ignored) = self.create_realm(repr, source).await?;
                Ok((name, ImportOutcome::Created, ignored))
            }
            Some(existing) if existing.managed_by.is_none() => Err(BrokerError::Conflict(format!(
                "realm {name:?} exists and was created through the admin API; the file {path} does not replace it"
            ))),
            Some(existing) if existing.source_digest.as_deref() == Some(digest) => {
                Ok((name, ImportOutcome::Unchanged, ignored))
            }
            Some(existing) => {
                let mut repr = repr;
                repr.id = existing.repr.id.clone();
                let bundle = self.prepare_realm(repr, &source, &mut ignored)?;
                self.store.replace_realm_config(bundle).await?;
                self.audit(Some(&name), "REALM_FILE_RELOAD", format!("realms/{name}")).await;
                Ok((name, ImportOutcome::Updated, ignored))
            }
        }
    }

    /// All realms' own fields.
    pub async fn list_realms(&self) -> Result<Vec<RealmRepresentation>, BrokerError> {
        Ok(self.store.list_realms().await?.into_iter().map(|r| r.repr).collect())
    }

    /// One realm's own fields.
    pub async fn get_realm(&self, realm: &str) -> Result<RealmRepresentation, BrokerError> {
        Ok(self.realm(realm).await?.repr)
    }

    /// Updates a realm's own fields; nested parts in the body are ignored.
    pub async fn update_realm(&self, realm: &str, mut repr: RealmRepresentation) -> Result<(), BrokerError> {
        let existing = self.writable_realm(realm).await?;
        if repr.realm.as_deref().is_some_and(|n| n != realm) {
            return Err(BrokerError::invalid("realm", "a realm cannot be renamed"));
        }
        repr.realm = Some(realm.to_owned());
        repr.id = existing.repr.id.clone();
        if repr.default_signature_algorithm.is_none() {
            repr.default_signature_algorithm = existing.repr.default_signature_algorithm.clone();
        }
        validate::realm(&mut repr)?;
        if repr.default_signature_algorithm != existing.repr.default_signature_algorithm {
            return Err(BrokerError::invalid(
                "defaultSignatureAlgorithm",
                "changing a realm's algorithm needs key rotation, which is not supported yet",
            ));
        }
        repr.clients = None;
        repr.identity_providers = None;
        repr.identity_provider_mappers = None;
        repr.roles = None;
        repr.users = None;
        self.store.update_realm(realm, &repr).await?;
        self.audit(Some(realm), "ADMIN_UPDATE", format!("realms/{realm}")).await;
        Ok(())
    }

    /// Deletes a realm and everything in it.
    pub async fn delete_realm(&self, realm: &str) -> Result<(), BrokerError> {
        self.writable_realm(realm).await?;
        self.store.delete_realm(realm).await?;
        self.audit(Some(realm), "ADMIN_DELETE", format!("realms/{realm}")).await;
        Ok(())
    }
}
