//! Validating a whole realm representation into a bundle ready to store: the
//! one path shared by the admin API, realm files, `federa import` and
//! `federa check-config`.

use std::collections::BTreeSet;

use super::RealmSource;
use crate::error::BrokerError;
use crate::keys::generate_signing_key;
use crate::repr::RealmRepresentation;
use crate::store::{RealmBundle, RealmRecord, UserImport};
use crate::validate::{self, MASK};

/// Validates a whole realm representation into a bundle ready to store,
/// collecting the names of everything ignored into `ignored`. Also used by
/// `federa check-config`, which has no database.
pub fn prepare_realm(
    mut repr: RealmRepresentation,
    source: &RealmSource,
    ignored: &mut Vec<String>,
    now: i64,
) -> Result<RealmBundle, BrokerError> {
    validate::realm(&mut repr)?;
    validate::ignored_names("", &repr.ignored, ignored);

    let mut clients = Vec::new();
    let mut client_ids = BTreeSet::new();
    for (i, mut c) in repr.clients.take().unwrap_or_default().into_iter().enumerate() {
        if c.protocol.as_deref().is_some_and(|p| p != "openid-connect") {
            ignored.push(format!(
                "clients[{i}] ({}, protocol {})",
                c.client_id.as_deref().unwrap_or("?"),
                c.protocol.as_deref().unwrap_or("?")
            ));
            continue;
        }
        let prefix = format!("clients[{i}].");
        validate::client(&mut c, &prefix)?;
        validate::ignored_names(&prefix, &c.ignored, ignored);
        if !client_ids.insert(c.client_id.clone()) {
            return Err(BrokerError::Conflict(format!("{prefix}clientId {:?} appears twice", c.client_id)));
        }
        clients.push(c);
    }

    let mut idps = Vec::new();
    let mut aliases = BTreeSet::new();
    for (i, mut p) in repr.identity_providers.take().unwrap_or_default().into_iter().enumerate() {
        let prefix = format!("identityProviders[{i}].");
        validate::identity_provider(&mut p, &prefix)?;
        if p.config.get("clientSecret").is_some_and(|s| s == MASK) {
            p.config.remove("clientSecret");
        }
        validate::ignored_names(&prefix, &p.ignored, ignored);
        if !aliases.insert(p.alias.clone().unwrap_or_default()) {
            return Err(BrokerError::Conflict(format!("{prefix}alias {:?} appears twice", p.alias)));
        }
        idps.push(p);
    }

    let mut mappers = Vec::new();
    for (i, mut m) in repr.identity_provider_mappers.take().unwrap_or_default().into_iter().enumerate() {
        let prefix = format!("identityProviderMappers[{i}].");
        validate::mapper(&mut m, &prefix)?;
        let alias = m.identity_provider_alias.clone().unwrap_or_default();
        if !aliases.contains(&alias) {
            return Err(BrokerError::invalid(
                format!("{prefix}identityProviderAlias"),
                format!("no identity provider {alias:?} in this realm"),
            ));
        }
        mappers.push(m);
    }

    let mut roles = Vec::new();
    let mut role_names = BTreeSet::new();
    if let Some(r) = repr.roles.take() {
        validate::ignored_names("roles.", &r.ignored, ignored);
        for (i, mut role) in r.realm.into_iter().enumerate() {
            let prefix = format!("roles.realm[{i}].");
            validate::role(&mut role, &prefix)?;
            if role_names.insert(role.name.clone().unwrap_or_default()) {
                roles.push(role);
            }
        }
    }

    let mut users = Vec::new();
    let mut usernames = BTreeSet::new();
    for (i, mut u) in repr.users.take().unwrap_or_default().into_iter().enumerate() {
        let prefix = format!("users[{i}].");
        validate::user(&mut u, &prefix, now * 1000)?;
        validate::ignored_names(&prefix, &u.ignored, ignored);
        if !usernames.insert(u.username.clone().unwrap_or_default()) {
            return Err(BrokerError::Conflict(format!("{prefix}username {:?} appears twice", u.username)));
        }
        let mut realm_roles = Vec::new();
        for name in u.realm_roles.take().unwrap_or_default() {
            if role_names.contains(&name) {
                realm_roles.push(name);
            } else {
                ignored.push(format!("{prefix}realmRoles {name:?} (no such realm role)"));
            }
        }
        let mut links = Vec::new();
        for (j, l) in u.federated_identities.take().unwrap_or_default().into_iter().enumerate() {
            let lp = format!("{prefix}federatedIdentities[{j}].");
            validate::federated_identity(&l, &lp)?;
            if !aliases.contains(l.identity_provider.as_deref().unwrap_or_default()) {
                return Err(BrokerError::invalid(
                    format!("{lp}identityProvider"),
                    format!("no identity provider {:?} in this realm", l.identity_provider),
                ));
            }
            links.push(l);
        }
        // Client roles Federa knows (the broker client's read-token) are
        // granted; the others are ignored, named once per client.
        let mut client_roles = Vec::new();
        for (client, names) in u.client_roles.take().unwrap_or_default() {
            let (known, unknown): (Vec<String>, Vec<String>) =
                names.into_iter().partition(|n| crate::model::client_roles::is_known(&client, n));
            client_roles.extend(known.into_iter().map(|n| (client.clone(), n)));
            if !unknown.is_empty() {
                ignored.push(format!("{prefix}clientRoles.{client}"));
            }
        }
        users.push(UserImport { user: u, realm_roles, links, client_roles });
    }

    let alg = repr.default_signature_algorithm.clone().unwrap_or_else(|| "RS256".into());
    let keys = vec![generate_signing_key(&alg, now)?];
    let (managed_by, source_digest) = match source {
        RealmSource::Api => (None, None),
        RealmSource::File { path, digest } => (Some(path.clone()), Some(digest.clone())),
    };
    Ok(RealmBundle {
        realm: RealmRecord { repr, managed_by, source_digest },
        clients,
        identity_providers: idps,
        mappers,
        roles,
        users,
        keys,
    })
}
