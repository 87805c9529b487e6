//! Identity-provider mappers (Keycloak's `identityProviderMapper` types): what
//! each type is, which configuration it needs ([`validate`], [`Mapper::parse`]),
//! and the pure function from verified upstream claims and a user to the
//! changes to make at a sign-in ([`changes`]).

use std::collections::BTreeMap;
use std::str::FromStr;

use federa_protocol::MapperSyncMode;

mod apply;
pub mod claims;
mod mapper;

pub use apply::{changes, Change, Login, UserState};
pub use mapper::{Mapper, MissingClaim, UsernameTarget};

/// The mapper types Federa supports, with Keycloak's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapperType {
    /// Grants a fixed realm role.
    HardcodedRole,
    /// Sets a fixed user attribute.
    HardcodedAttribute,
    /// Copies a claim into a user attribute.
    UserAttribute,
    /// Grants a role when a claim has a value.
    ClaimToRole,
    /// Grants a role when several claims match (optionally by regex).
    AdvancedClaimToRole,
    /// Builds the username from a template over the claims.
    Username,
}

impl MapperType {
    /// Every supported name, for error messages.
    pub const ALLOWED: &'static str = "hardcoded-role-idp-mapper, hardcoded-attribute-idp-mapper, \
        oidc-user-attribute-idp-mapper, oidc-role-idp-mapper, oidc-advanced-role-idp-mapper, \
        oidc-username-idp-mapper";

    /// Keycloak's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HardcodedRole => "hardcoded-role-idp-mapper",
            Self::HardcodedAttribute => "hardcoded-attribute-idp-mapper",
            Self::UserAttribute => "oidc-user-attribute-idp-mapper",
            Self::ClaimToRole => "oidc-role-idp-mapper",
            Self::AdvancedClaimToRole => "oidc-advanced-role-idp-mapper",
            Self::Username => "oidc-username-idp-mapper",
        }
    }

    /// The configuration keys the type cannot work without.
    pub fn required_keys(self) -> &'static [&'static str] {
        match self {
            Self::HardcodedRole => &["role"],
            Self::HardcodedAttribute => &["attribute"],
            Self::UserAttribute => &["claim", "user.attribute"],
            Self::ClaimToRole => &["claim", "role"],
            Self::AdvancedClaimToRole => &["claims", "role"],
            Self::Username => &["template"],
        }
    }
}

impl FromStr for MapperType {
    type Err = MapperError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "hardcoded-role-idp-mapper" => Self::HardcodedRole,
            "hardcoded-attribute-idp-mapper" => Self::HardcodedAttribute,
            "oidc-user-attribute-idp-mapper" => Self::UserAttribute,
            "oidc-role-idp-mapper" => Self::ClaimToRole,
            "oidc-advanced-role-idp-mapper" => Self::AdvancedClaimToRole,
            "oidc-username-idp-mapper" => Self::Username,
            other => {
                return Err(MapperError {
                    field: "identityProviderMapper",
                    message: format!("unsupported mapper type {other:?}; supported: {}", Self::ALLOWED),
                })
            }
        })
    }
}

/// A mapper configuration Federa cannot honour, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct MapperError {
    /// The JSON field, as the admin wrote it (`config.claim`).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// A validated mapper definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapperSpec {
    /// The mapper's type.
    pub kind: MapperType,
    /// Its sync mode (`INHERIT` when absent, as in Keycloak).
    pub sync_mode: MapperSyncMode,
}

/// Checks a mapper's type name and configuration (all of it: claim lists,
/// regexes, the username template and target).
pub fn validate(type_name: &str, config: &BTreeMap<String, String>) -> Result<MapperSpec, MapperError> {
    let spec = validate_keys(type_name, config)?;
    Mapper::parse("", type_name, config)?;
    Ok(spec)
}

/// The type, the sync mode and the required keys.
pub(crate) fn validate_keys(type_name: &str, config: &BTreeMap<String, String>) -> Result<MapperSpec, MapperError> {
    let kind: MapperType = type_name.parse()?;
    let sync_mode = match config.get("syncMode").map(String::as_str) {
        None | Some("") => MapperSyncMode::Inherit,
        Some(s) => s.parse().map_err(|e: federa_protocol::ParseValueError| MapperError {
            field: "config.syncMode",
            message: e.to_string(),
        })?,
    };
    for key in kind.required_keys() {
        if config.get(*key).is_none_or(|v| v.trim().is_empty()) {
            return Err(MapperError {
                field: required_field_name(key),
                message: format!("is required for {}", kind.as_str()),
            });
        }
    }
    Ok(MapperSpec { kind, sync_mode })
}

fn required_field_name(key: &str) -> &'static str {
    match key {
        "role" => "config.role",
        "attribute" => "config.attribute",
        "claim" => "config.claim",
        "user.attribute" => "config.user.attribute",
        "claims" => "config.claims",
        "template" => "config.template",
        _ => "config",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn table() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Result<MapperSyncMode, &'a str>);
        let cases: &[Case] = &[
            (
                "oidc-user-attribute-idp-mapper",
                &[("claim", "email"), ("user.attribute", "email")],
                Ok(MapperSyncMode::Inherit),
            ),
            ("oidc-user-attribute-idp-mapper", &[("claim", "email")], Err("config.user.attribute")),
            ("hardcoded-role-idp-mapper", &[("role", "admin"), ("syncMode", "FORCE")], Ok(MapperSyncMode::Force)),
            ("hardcoded-role-idp-mapper", &[("role", "admin"), ("syncMode", "SOMETIMES")], Err("config.syncMode")),
            ("oidc-username-idp-mapper", &[("template", "${CLAIM.login}")], Ok(MapperSyncMode::Inherit)),
            ("oidc-advanced-role-idp-mapper", &[("claims", "not json"), ("role", "r")], Err("config.claims")),
            ("saml-role-idp-mapper", &[], Err("identityProviderMapper")),
            (
                "oidc-advanced-role-idp-mapper",
                &[("claims", "[{\"value\":\"x\"}]"), ("role", "r")],
                Err("config.claims"),
            ),
            (
                "oidc-advanced-role-idp-mapper",
                &[("claims", "[{\"key\":\"k\",\"value\":\"(\"}]"), ("role", "r"), ("are.claim.values.regex", "true")],
                Err("config.claims"),
            ),
            ("oidc-username-idp-mapper", &[("template", "${CLAIM.a | shout}")], Err("config.template")),
            ("oidc-username-idp-mapper", &[("template", "${UUID}")], Err("config.template")),
            ("oidc-username-idp-mapper", &[("template", "${ALIAS"), ("target", "LOCAL")], Err("config.template")),
            ("oidc-username-idp-mapper", &[("template", "${ALIAS}"), ("target", "ELSEWHERE")], Err("config.target")),
            (
                "oidc-username-idp-mapper",
                &[("template", "${ALIAS}.${CLAIM.sub | lowercase}"), ("target", "BROKER_ID")],
                Ok(MapperSyncMode::Inherit),
            ),
        ];
        for (ty, config, expected) in cases {
            let got = validate(ty, &cfg(config)).map(|s| s.sync_mode).map_err(|e| e.field);
            assert_eq!(&got, expected, "{ty} {config:?}");
        }
    }
}
