//! Keycloak's JSON representations, the subset Federa supports, with
//! Keycloak's field names. The same shapes serve the admin API, realm files and
//! `federa import`. Fields Federa does not know land in `ignored` so that an
//! import can warn about them instead of failing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Fields of a representation that Federa does not use.
pub type Ignored = BTreeMap<String, Value>;

/// Keycloak's RealmRepresentation, with the nested parts a realm file carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RealmRepresentation {
    /// The realm's internal id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The realm's name, the last segment of its issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// A name for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Whether the realm serves sign-ins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The theme of its login pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_theme: Option<String>,
    /// Its locale (a BCP 47 tag), sent upstream as `ui_locales` by providers
    /// with `uiLocales` on when the app names none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_locale: Option<String>,
    /// The algorithm of its ID tokens (RS256, ES256 or EdDSA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_signature_algorithm: Option<String>,
    /// Lifetime of access tokens, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_lifespan: Option<i64>,
    /// Idle timeout of SSO sessions, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sso_session_idle_timeout: Option<i64>,
    /// Maximum lifetime of SSO sessions, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sso_session_max_lifespan: Option<i64>,
    /// Idle timeout of offline refresh tokens (`offline_access`), in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_session_idle_timeout: Option<i64>,
    /// Whether offline refresh tokens have a maximum lifetime
    /// (`offlineSessionMaxLifespan`); off by default, as in Keycloak.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_session_max_lifespan_enabled: Option<bool>,
    /// Maximum lifetime of an offline refresh-token family from its start,
    /// in seconds, when `offlineSessionMaxLifespanEnabled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_session_max_lifespan: Option<i64>,
    /// Downstream applications (import only; not part of a realm read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<ClientRepresentation>>,
    /// Upstream identity providers (import only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_providers: Option<Vec<IdentityProviderRepresentation>>,
    /// Their mappers (import only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_provider_mappers: Option<Vec<IdentityProviderMapperRepresentation>>,
    /// Roles (import only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<RolesRepresentation>,
    /// Users (import only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserRepresentation>>,
    /// Everything else in the document.
    #[serde(flatten, skip_serializing)]
    pub ignored: Ignored,
}

/// The `roles` object of a realm export.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolesRepresentation {
    /// Realm roles.
    #[serde(default)]
    pub realm: Vec<RoleRepresentation>,
    /// Client roles and anything else; not supported yet.
    #[serde(flatten, skip_serializing)]
    pub ignored: Ignored,
}

/// Keycloak's ClientRepresentation (openid-connect clients).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientRepresentation {
    /// Internal id (a UUID), used in admin paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The OAuth `client_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// A name for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A description for admins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the client may sign users in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `openid-connect` (the default); `saml` clients are skipped on import.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// A public client has no secret and must use PKCE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_client: Option<bool>,
    /// A bearer-only client never signs users in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_only: Option<bool>,
    /// The client secret of a confidential client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// `client-secret` (the default) or `client-jwt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_authenticator_type: Option<String>,
    /// Registered redirect URIs, matched exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uris: Option<Vec<String>>,
    /// Allowed CORS origins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_origins: Option<Vec<String>>,
    /// Base of relative URLs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_url: Option<String>,
    /// The application's home page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The application's admin URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_url: Option<String>,
    /// Authorization code flow allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standard_flow_enabled: Option<bool>,
    /// Implicit flow allowed (Federa never serves it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub implicit_flow_enabled: Option<bool>,
    /// Resource owner password grant allowed (Federa never serves it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_access_grants_enabled: Option<bool>,
    /// Client credentials grant allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_accounts_enabled: Option<bool>,
    /// Whether the user must consent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_required: Option<bool>,
    /// Whether front-channel logout is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frontchannel_logout: Option<bool>,
    /// Keycloak's free-form client attributes (back-channel logout URL, PKCE method...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
    /// Default client scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_client_scopes: Option<Vec<String>>,
    /// Optional client scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional_client_scopes: Option<Vec<String>>,
    /// Claims the client's tokens carry (`oidc-usermodel-attribute-mapper`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_mappers: Option<Vec<ProtocolMapperRepresentation>>,
    /// Everything else.
    #[serde(flatten, skip_serializing)]
    pub ignored: Ignored,
}

/// Keycloak's ProtocolMapperRepresentation (of a client).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolMapperRepresentation {
    /// Internal id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `openid-connect`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The mapper type (`oidc-usermodel-attribute-mapper`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_mapper: Option<String>,
    /// Its settings.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Everything else.
    #[serde(flatten, skip_serializing)]
    pub ignored: Ignored,
}

/// Keycloak's IdentityProviderRepresentation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderRepresentation {
    /// The alias, unique in the realm, in the broker paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Internal id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_id: Option<String>,
    /// The name on the login page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `oidc` or `keycloak-oidc`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// Whether users may sign in through it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Whether its email addresses count as verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_email: Option<bool>,
    /// Whether its tokens are kept for `/broker/{alias}/token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_token: Option<bool>,
    /// Whether new users get the `broker` `read-token` role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_read_token_role_on_create: Option<bool>,
    /// Only for linking existing users, not for sign-in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_only: Option<bool>,
    /// Keycloak's first-login flow; recorded, Federa runs its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broker_login_flow_alias: Option<String>,
    /// Keycloak's post-login flow; recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_broker_login_flow_alias: Option<String>,
    /// Keycloak's legacy default-IdP flag; recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticate_by_default: Option<bool>,
    /// Keycloak's profile-review setting; recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_profile_first_login_mode: Option<String>,
    /// The provider's settings, all strings, as in Keycloak.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Everything else.
    #[serde(flatten, skip_serializing)]
    pub ignored: Ignored,
}

/// Keycloak's IdentityProviderMapperRepresentation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderMapperRepresentation {
    /// Internal id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its name, unique for its provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The provider it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_provider_alias: Option<String>,
    /// The mapper type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_provider_mapper: Option<String>,
    /// Its settings.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Everything else.
    #[serde(flatten, skip_serializing)]
    pub ignored: Ignored,
}

/// Keycloak's RoleRepresentation (realm roles).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRepresentation {
    /// Internal id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The role's name, unique in the realm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Everything else (composites, attributes).
    #[serde(flatten, skip_serializing)]
    pub ignored: Ignored,
}

/// Keycloak's FederatedIdentityRepresentation: a user's link to an upstream account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FederatedIdentityRepresentation {
    /// The upstream alias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_provider: Option<String>,
    /// The upstream subject (`sub`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The upstream username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Everything else.
    #[serde(flatten, skip_serializing)]
    pub ignored: Ignored,
}

/// Keycloak's UserRepresentation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRepresentation {
    /// Internal id (a UUID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Username, unique in the realm (stored in lower case, as Keycloak does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Email address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the email address is verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// Given name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Whether the user may sign in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Creation time, milliseconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_timestamp: Option<i64>,
    /// Attributes, each a list of strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, Vec<String>>>,
    /// Realm roles (import only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realm_roles: Option<Vec<String>>,
    /// Upstream links (import only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub federated_identities: Option<Vec<FederatedIdentityRepresentation>>,
    /// Client roles by clientId (import only); Federa knows the `broker`
    /// client's `read-token` and ignores the others with a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_roles: Option<BTreeMap<String, Vec<String>>>,
    /// Everything else (credentials, groups, required actions...).
    #[serde(flatten, skip_serializing)]
    pub ignored: Ignored,
}

/// The body of `GET/POST .../client-secret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRepresentation {
    /// Always `secret`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The secret.
    pub value: String,
}

/// Keycloak's UserSessionRepresentation: one SSO session of a user. Times are
/// milliseconds. Keycloak keys `clients` by the client's internal id; Federa,
/// which has none in tokens, keys them by `clientId` too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSessionRepresentation {
    /// The session's public id (the `sid` claim of its tokens).
    pub id: String,
    /// The user's username.
    pub username: String,
    /// The user's id.
    pub user_id: String,
    /// The address the sign-in came from; empty when unknown.
    pub ip_address: String,
    /// When the session began, ms.
    pub start: i64,
    /// When it was last used, ms.
    pub last_access: i64,
    /// The clients that received tokens from it.
    pub clients: BTreeMap<String, String>,
}
