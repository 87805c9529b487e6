//! The changes a provider's mappers make to a user at a sign-in, with
//! Keycloak's meaning of each sync mode:
//!
//! - at a first login every mapper imports, whatever its mode (Keycloak's
//!   `preprocessFederatedIdentity` then `importNewUser`);
//! - at a later login the mapper's `syncMode` (`INHERIT` taking the
//!   provider's) decides: IMPORT changes nothing; FORCE runs Keycloak's
//!   `updateBrokeredUser` (roles granted or revoked as the claims now say,
//!   attributes overwritten, and removed when the claim is gone); LEGACY runs
//!   `updateBrokeredUserLegacy` (claim-to-role mappers only revoke, the
//!   hardcoded role does nothing, attribute and username mappers update as
//!   FORCE does).
//!
//! Changes that would not change the user are left out, so a sign-in that
//! changes nothing writes nothing; the list, applied in order, gives the same
//! user as running the mappers one after the other.

use std::collections::{BTreeMap, BTreeSet};

use federa_protocol::{MapperSyncMode, SyncMode};
use serde_json::{Map, Value};

use crate::claims;
use crate::mapper::{render_template, AttributeTarget, Mapper, Rule, UsernameTarget};

/// What the upstream said, and about which provider.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    /// The ID token's claims merged with userinfo's.
    pub claims: &'a Map<String, Value>,
    /// The provider's alias.
    pub alias: &'a str,
    /// The provider's `syncMode` (what `INHERIT` means).
    pub sync_mode: SyncMode,
}

/// The user as stored before this sign-in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserState {
    /// No link existed: the user is being created by this sign-in.
    pub first_login: bool,
    /// The username.
    pub username: String,
    /// The email address.
    pub email: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// The user's attributes.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// The names of the realm roles granted to the user.
    pub roles: BTreeSet<String>,
}

/// One change to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Replace an attribute's values.
    SetAttribute {
        /// The attribute.
        name: String,
        /// Its new values (never empty).
        values: Vec<String>,
    },
    /// Remove an attribute.
    RemoveAttribute(String),
    /// Set the email address (lowercased, as Keycloak stores it).
    SetEmail(String),
    /// Set the given name.
    SetFirstName(String),
    /// Set the family name.
    SetLastName(String),
    /// Set the username (lowercased, as Keycloak stores it).
    SetUsername(String),
    /// Grant a realm role.
    GrantRole(String),
    /// Revoke a realm role.
    RevokeRole(String),
}

/// What one mapper does at a later login.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Later {
    Nothing,
    Update,
    Legacy,
}

fn later(m: MapperSyncMode, idp: SyncMode) -> Later {
    let effective = match m {
        MapperSyncMode::Inherit => idp,
        MapperSyncMode::Import => SyncMode::Import,
        MapperSyncMode::Force => SyncMode::Force,
        MapperSyncMode::Legacy => SyncMode::Legacy,
    };
    match effective {
        SyncMode::Import => Later::Nothing,
        SyncMode::Force => Later::Update,
        SyncMode::Legacy => Later::Legacy,
    }
}

/// The changes the mappers make to the user at this sign-in, in order.
pub fn changes(mappers: &[Mapper], login: &Login<'_>, user: &UserState) -> Vec<Change> {
    let mut state = user.clone();
    let mut out = Vec::new();
    for m in mappers {
        let mode = if user.first_login { None } else { Some(later(m.sync_mode, login.sync_mode)) };
        if mode == Some(Later::Nothing) {
            continue;
        }
        for c in mapper_changes(m, login, mode) {
            if apply(&mut state, &c) {
                out.push(c);
            }
        }
    }
    out
}

/// One mapper's changes: `mode` is `None` at a first login.
fn mapper_changes(m: &Mapper, login: &Login<'_>, mode: Option<Later>) -> Vec<Change> {
    let role_rule = |matched: bool, role: &str| match (mode, matched) {
        (None | Some(Later::Update), true) => vec![Change::GrantRole(role.to_owned())],
        (Some(Later::Update | Later::Legacy), false) => vec![Change::RevokeRole(role.to_owned())],
        _ => Vec::new(),
    };
    match &m.rule {
        Rule::HardcodedRole { role } => match mode {
            None | Some(Later::Update) => vec![Change::GrantRole(role.clone())],
            _ => Vec::new(),
        },
        Rule::HardcodedAttribute { attribute, value } => match (value, mode) {
            (Some(v), _) => vec![Change::SetAttribute { name: attribute.clone(), values: vec![v.clone()] }],
            // No value: a new user gets nothing, a known one loses the attribute.
            (None, None) => Vec::new(),
            (None, Some(_)) => vec![Change::RemoveAttribute(attribute.clone())],
        },
        Rule::UserAttribute { claim, target } => {
            let values = claims::values(claim.find(login.claims));
            let first = values.first().cloned();
            match target {
                AttributeTarget::Email => first.map(|v| Change::SetEmail(v.to_lowercase())).into_iter().collect(),
                AttributeTarget::FirstName => first.map(Change::SetFirstName).into_iter().collect(),
                AttributeTarget::LastName => first.map(Change::SetLastName).into_iter().collect(),
                AttributeTarget::Username => first.map(|v| Change::SetUsername(v.to_lowercase())).into_iter().collect(),
                AttributeTarget::Attribute(name) if values.is_empty() => match mode {
                    None => Vec::new(),
                    Some(_) => vec![Change::RemoveAttribute(name.clone())],
                },
                AttributeTarget::Attribute(name) => vec![Change::SetAttribute { name: name.clone(), values }],
            }
        }
        Rule::ClaimToRole { claim, value, role } => {
            role_rule(claims::value_equals(value, claim.find(login.claims)), role)
        }
        Rule::AdvancedClaimToRole { claims, role } => {
            let all = claims.iter().all(|(path, m)| m.matches(path.find(login.claims)));
            role_rule(all, role)
        }
        Rule::Username { template, target: UsernameTarget::Local } => {
            // A template missing a claim is not used: the user keeps the
            // default username (or the one they have).
            match render_template(template, login.claims, login.alias) {
                Ok(name) if !name.trim().is_empty() => vec![Change::SetUsername(name.to_lowercase())],
                _ => Vec::new(),
            }
        }
        // The broker's id and username are read before the user is looked up
        // (`Mapper::username_for`).
        Rule::Username { .. } => Vec::new(),
    }
}

/// Applies a change to the state; whether it changed anything.
fn apply(s: &mut UserState, c: &Change) -> bool {
    fn set(field: &mut Option<String>, v: &str) -> bool {
        let changed = field.as_deref() != Some(v);
        *field = Some(v.to_owned());
        changed
    }
    match c {
        Change::SetAttribute { name, values } => {
            s.attributes.insert(name.clone(), values.clone()).as_ref() != Some(values)
        }
        Change::RemoveAttribute(name) => s.attributes.remove(name).is_some(),
        Change::SetEmail(v) => set(&mut s.email, v),
        Change::SetFirstName(v) => set(&mut s.first_name, v),
        Change::SetLastName(v) => set(&mut s.last_name, v),
        Change::SetUsername(v) => {
            let changed = s.username != *v;
            s.username.clone_from(v);
            changed
        }
        Change::GrantRole(r) => s.roles.insert(r.clone()),
        Change::RevokeRole(r) => s.roles.remove(r),
    }
}

#[cfg(test)]
mod tests;
