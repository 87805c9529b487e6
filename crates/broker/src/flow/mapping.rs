//! The identity-provider mappers at a sign-in (`crates/mappers` holds what
//! each does). The provider's mappers are read with its configuration
//! (cached as it is); what they make of the upstream's claims is computed
//! here, and the changes to the user are computed again inside the sign-in
//! write, on the user as stored, and written in the same transaction.

use std::sync::Arc;

use federa_mappers::{Change, Login, Mapper, MissingClaim, UsernameTarget};
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

/// A BROKER_ID template that cannot give this sign-in a subject: the
/// sign-in is refused (a template rendered without its claim would put
/// every user lacking it on one link).
#[derive(Debug)]
pub(crate) struct NoLinkSubject {
    /// The mapper's name.
    pub mapper: String,
    /// The claim it lacks.
    pub missing: MissingClaim,
}

/// Runs the provider's mappers over the claims: the link's subject and
/// username now, the user's changes later (inside the write). The last
/// username mapper of a target decides it; a BROKER_USERNAME template
/// missing a claim leaves the default link username, a BROKER_ID one
/// refuses the sign-in.
pub(crate) fn apply_mappers(
    mappers: Arc<[Mapper]>,
    claims: &Map<String, Value>,
    alias: &str,
    sync_mode: SyncMode,
    subject: &str,
) -> Result<Mapping, NoLinkSubject> {
    let target = |t| mappers.iter().rev().find_map(|m| m.username_for(t, claims, alias).map(|r| (&m.name, r)));
    let subject = match target(UsernameTarget::BrokerId) {
        Some((_, Ok(s))) if !s.is_empty() => s,
        Some((name, Err(missing))) => return Err(NoLinkSubject { mapper: name.clone(), missing }),
        _ => subject.to_owned(),
    };
    let link_username = match target(UsernameTarget::BrokerUsername) {
        Some((_, Ok(s))) if !s.is_empty() => Some(s),
        Some((name, Err(missing))) => {
            log::warn!("mapper {name:?} of {alias:?}: {missing}; the link keeps the default username");
            None
        }
        _ => None,
    };
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
    Ok(Mapping { subject, link_username, map })
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn username_mapper(name: &str, template: &str, target: &str) -> Mapper {
        let config = [("template".to_owned(), template.to_owned()), ("target".to_owned(), target.to_owned())];
        Mapper::parse(name, "oidc-username-idp-mapper", &config.into_iter().collect()).unwrap()
    }

    /// Without the claim, BROKER_ID refuses (naming the mapper) and
    /// BROKER_USERNAME keeps the default; with it, both are the template's.
    #[test]
    fn a_missing_claim_never_makes_a_shared_link() {
        let mappers: Arc<[Mapper]> = Arc::from(vec![
            username_mapper("id", "${ALIAS}.${CLAIM.email}", "BROKER_ID"),
            username_mapper("name", "${CLAIM.nick}", "BROKER_USERNAME"),
        ]);
        let with = json!({"sub": "s1", "email": "a@x.test", "nick": "A"});
        let m = apply_mappers(mappers.clone(), with.as_object().unwrap(), "corp", SyncMode::Import, "s1").unwrap();
        assert_eq!((m.subject.as_str(), m.link_username.as_deref()), ("corp.a@x.test", Some("A")));
        let without = json!({"sub": "s1"});
        match apply_mappers(mappers, without.as_object().unwrap(), "corp", SyncMode::Import, "s1") {
            Err(e) => assert_eq!((e.mapper.as_str(), e.missing.0.as_str()), ("id", "email")),
            Ok(m) => panic!("a subject of {:?} for every user without an email", m.subject),
        }
        let only_name: Arc<[Mapper]> = Arc::from(vec![username_mapper("name", "${CLAIM.nick}", "BROKER_USERNAME")]);
        let m = apply_mappers(only_name, without.as_object().unwrap(), "corp", SyncMode::Import, "s1").unwrap();
        assert_eq!((m.subject.as_str(), m.link_username), ("s1", None));
    }
}
