//! The identity-provider mappers at a sign-in (`crates/mappers` holds what
//! each does). The provider's mappers are read with its configuration
//! (cached as it is); what they make of the upstream's claims is computed
//! here, and the changes to the user are computed again inside the sign-in
//! write, on the user as stored, and written in the same transaction.

use std::sync::Arc;

use federa_mappers::{Change, Login, Mapper, UsernameTarget};
use federa_protocol::SyncMode;
use serde_json::{Map, Value};

use super::Broker;
use crate::repr::UserRepresentation;
use crate::store::MapUser;
use crate::validate;

/// What the mappers make of a sign-in before the user is looked up.
pub(crate) struct Mapping {
    /// The subject the link is kept under: the upstream's `sub`, or a
    /// username mapper's BROKER_ID.
    pub subject: String,
    /// A username mapper's BROKER_USERNAME, kept on a new link.
    pub link_username: Option<String>,
    /// The changes to the user, run inside the sign-in write.
    pub map: Option<MapUser>,
}

impl Broker {
    /// A provider's mappers, from the cache or the store. A mapper stored
    /// before a rule existed is left out and logged.
    pub(crate) async fn mappers(&self, realm: &str, alias: &str) -> Result<Arc<[Mapper]>, crate::StoreError> {
        let key = (realm.to_owned(), alias.to_owned());
        if let Some(m) = self.config.mappers.get(&key) {
            return Ok(m);
        }
        let stored = self.store.list_mappers(realm, alias).await?;
        let list: Arc<[Mapper]> = stored
            .iter()
            .filter_map(|m| {
                let name = m.name.as_deref().unwrap_or_default();
                let ty = m.identity_provider_mapper.as_deref().unwrap_or_default();
                Mapper::parse(name, ty, &m.config)
                    .map_err(|e| log::error!("realm {realm:?}: mapper {name:?} of {alias:?} cannot be used: {e}"))
                    .ok()
            })
            .collect();
        self.config.mappers.insert(key, list.clone());
        Ok(list)
    }
}

/// Runs the provider's mappers over the claims: the link's subject and
/// username now, the user's changes later (inside the write).
pub(crate) fn apply_mappers(
    mappers: Arc<[Mapper]>,
    claims: &Map<String, Value>,
    alias: &str,
    sync_mode: SyncMode,
    subject: &str,
) -> Mapping {
    let target = |t| mappers.iter().rev().find_map(|m| m.username_for(t, claims, alias)).filter(|s| !s.is_empty());
    let subject = target(UsernameTarget::BrokerId).unwrap_or_else(|| subject.to_owned());
    let link_username = target(UsernameTarget::BrokerUsername);
    let map: Option<MapUser> = (!mappers.is_empty()).then(|| {
        let (claims, alias) = (claims.clone(), alias.to_owned());
        let run = move |user: &federa_mappers::UserState| {
            let login = Login { claims: &claims, alias: &alias, sync_mode };
            let mut changes = federa_mappers::changes(&mappers, &login, user);
            changes.retain(|c| acceptable(c, &alias));
            changes
        };
        Arc::new(run) as MapUser
    });
    Mapping { subject, link_username, map }
}

/// A username or email address Federa would refuse from an admin is not
/// taken from a mapper either (logged, the rest applies).
fn acceptable(c: &Change, alias: &str) -> bool {
    let probe = match c {
        Change::SetUsername(u) => UserRepresentation { username: Some(u.clone()), ..Default::default() },
        Change::SetEmail(e) => {
            UserRepresentation { username: Some("probe".into()), email: Some(e.clone()), ..Default::default() }
        }
        _ => return true,
    };
    let mut probe = probe;
    match validate::user(&mut probe, "", 0) {
        Ok(()) => true,
        Err(e) => {
            log::warn!("a mapper of {alias:?} produced a value that is not accepted ({e}); it is skipped");
            false
        }
    }
}
