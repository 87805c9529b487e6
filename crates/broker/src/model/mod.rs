//! The typed model the flows read: a realm, its clients and its upstream
//! providers, each built once from Keycloak's representation when it is
//! validated or loaded, then cached. Flows never read a string map; adding a
//! setting means one field here and its parsing beside it.

pub mod client;
pub mod client_roles;
pub mod upstream;

use std::time::Duration;

pub use client::{client_jwks, Client, ClientAuth, ClientJwks};
pub use upstream::{FirstLogin, Upstream};

use crate::repr::{
    ClientRepresentation, IdentityProviderMapperRepresentation, IdentityProviderRepresentation, RealmRepresentation,
};

/// A setting that Federa stores but that has no effect yet, named for the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The field, as the admin wrote it (`config.isAccessTokenJWT`).
    pub field: String,
    /// What Federa does with it.
    pub message: String,
}

impl Notice {
    /// A notice on `field`.
    pub fn new(field: &str, message: &str) -> Self {
        Self { field: field.to_owned(), message: message.to_owned() }
    }

    /// The same notice under a prefix (`identityProviders[2].`).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}{}", self.field);
        self
    }
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A `prompt` value (OIDC Core section 3.1.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// No interaction.
    None,
    /// Authenticate again.
    Login,
    /// Ask for consent.
    Consent,
    /// Let the user pick an account.
    SelectAccount,
}

impl Prompt {
    /// The protocol spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Login => "login",
            Self::Consent => "consent",
            Self::SelectAccount => "select_account",
        }
    }
}

impl std::str::FromStr for Prompt {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "none" => Ok(Self::None),
            "login" => Ok(Self::Login),
            "consent" => Ok(Self::Consent),
            "select_account" => Ok(Self::SelectAccount),
            _ => Err(()),
        }
    }
}

/// The longest lifetime Federa accepts for any realm token or session
/// setting (ten years): larger values overflow time arithmetic.
pub const MAX_LIFESPAN: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The default access and ID token lifetime.
pub const DEFAULT_TOKEN_LIFESPAN: Duration = Duration::from_secs(300);
/// The default SSO session lifetime.
pub const DEFAULT_SSO_MAX: Duration = Duration::from_secs(10 * 3600);
/// The default SSO session idle timeout (Keycloak's, 30 minutes).
pub const DEFAULT_SSO_IDLE: Duration = Duration::from_secs(30 * 60);
/// The default idle timeout of offline refresh tokens (Keycloak's, 30 days).
pub const DEFAULT_OFFLINE_IDLE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The default maximum lifetime of offline refresh tokens when it is
/// enabled (Keycloak's `offlineSessionMaxLifespan`, 60 days).
pub const DEFAULT_OFFLINE_MAX: Duration = Duration::from_secs(60 * 24 * 3600);

/// A positive number of seconds as a `Duration`, bounded by [`MAX_LIFESPAN`];
/// absent, zero or negative gives `default`.
pub fn lifespan(seconds: Option<i64>, default: Duration) -> Duration {
    match seconds {
        Some(s) if s > 0 => Duration::from_secs(s.unsigned_abs()).min(MAX_LIFESPAN),
        _ => default,
    }
}

/// The settings of a realm that Federa stores but does not honour yet.
pub fn realm_notices(r: &RealmRepresentation) -> Vec<Notice> {
    let mut v = Vec::new();
    for (i, c) in r.clients.iter().flatten().enumerate() {
        v.extend(client::notices(c).into_iter().map(|n| n.prefixed(&format!("clients[{i}]."))));
    }
    for (i, p) in r.identity_providers.iter().flatten().enumerate() {
        v.extend(idp_notices(p).into_iter().map(|n| n.prefixed(&format!("identityProviders[{i}]."))));
    }
    for (i, m) in r.identity_provider_mappers.iter().flatten().enumerate() {
        v.extend(mapper_notices(m).into_iter().map(|n| n.prefixed(&format!("identityProviderMappers[{i}]."))));
    }
    v
}

/// The settings of a mapper that Federa stores but does not honour. Every
/// supported type runs at sign-in (`flow::mapping`), and a configuration it
/// cannot run is refused by validation; what remains is a role named as a
/// client role (`client.role`): Federa has realm roles only, so it is looked
/// up as a realm role of that name, and skipped (logged) when there is none.
pub fn mapper_notices(m: &IdentityProviderMapperRepresentation) -> Vec<Notice> {
    let role = m.config.get("role").map(String::as_str).unwrap_or_default();
    if role.contains('.') {
        return vec![Notice::new(
            "config.role",
            "client roles are not supported: the realm role of this exact name is granted, or none",
        )];
    }
    Vec::new()
}

/// The settings of a client that Federa stores but does not honour yet.
pub fn client_notices(c: &ClientRepresentation) -> Vec<Notice> {
    client::notices(c)
}

/// The settings of a provider that Federa stores but does not honour yet
/// (nothing when the representation is invalid: validation says why).
pub fn idp_notices(p: &IdentityProviderRepresentation) -> Vec<Notice> {
    Upstream::from_repr(p, "").map(|u| u.notices).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_and_offline_timeouts_are_honoured_so_not_noticed() {
        let r = RealmRepresentation {
            sso_session_idle_timeout: Some(60),
            offline_session_idle_timeout: Some(3600),
            ..Default::default()
        };
        assert!(realm_notices(&r).is_empty(), "{:?}", realm_notices(&r));
    }

    fn idp(pairs: &[(&str, &str)]) -> IdentityProviderRepresentation {
        let mut p = IdentityProviderRepresentation {
            alias: Some("corp".into()),
            provider_id: Some("oidc".into()),
            ..Default::default()
        };
        p.config.insert("clientId".into(), "federa".into());
        p.config.insert("issuer".into(), "https://idp.test".into());
        for (k, v) in pairs {
            p.config.insert((*k).into(), (*v).into());
        }
        p
    }

    #[test]
    fn typed_fields_come_from_the_strings_once() {
        let u = Upstream::from_repr(
            &idp(&[("syncMode", "FORCE"), ("allowedClockSkew", "30"), ("defaultScope", "email"), ("prompt", "login")]),
            "",
        )
        .unwrap();
        assert_eq!(u.sync_mode, federa_protocol::SyncMode::Force);
        assert_eq!(u.clock_skew, Duration::from_secs(30));
        assert_eq!(u.scope, "openid email");
        assert_eq!(u.prompt, Some(Prompt::Login));
        assert_eq!(u.discovery_url.as_deref(), Some("https://idp.test/.well-known/openid-configuration"));
        assert!(u.notices.is_empty() && u.refusal.is_none());
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        for (key, value) in [
            ("syncMode", "SOMETIMES"),
            ("allowedClockSkew", "soon"),
            ("allowedClockSkew", "-5"),
            ("allowedClockSkew", "99999999999"),
            ("pkceEnabled", "yes"),
            ("clientAuthMethod", "magic"),
            ("prompt", "always"),
            ("jwksUrl", "ftp://x"),
        ] {
            let err = Upstream::from_repr(&idp(&[(key, value)]), "p.").unwrap_err();
            assert!(err.to_string().starts_with(&format!("p.config.{key}:")), "{key}={value}: {err}");
        }
    }

    #[test]
    fn settings_without_effect_are_named_and_trust_changing_ones_refuse() {
        let u = Upstream::from_repr(&idp(&[("validateSignature", "false")]), "").unwrap();
        let fields: Vec<&str> = u.notices.iter().map(|n| n.field.as_str()).collect();
        assert_eq!(fields, ["config.validateSignature"]);
        assert!(u.notices[0].message.contains("NOT verified"), "{:?}", u.notices[0]);
        assert!(u.refusal.is_none(), "reported only: the admin chose what is trusted");
        assert!(!u.validate_signature);
        let u = Upstream::from_repr(&idp(&[("isAccessTokenJWT", "true")]), "").unwrap();
        assert!(u.notices.is_empty() && u.access_token_jwt && u.validate_signature, "honoured: {u:?}");
        let u = Upstream::from_repr(&idp(&[("backchannelSupported", "true")]), "").unwrap();
        let fields: Vec<&str> = u.notices.iter().map(|n| n.field.as_str()).collect();
        assert_eq!(fields, ["config.backchannelSupported"], "no effect without logoutUrl");
        let u = Upstream::from_repr(
            &idp(&[("logoutUrl", "https://idp.test/logout"), ("backchannelSupported", "true")]),
            "",
        )
        .unwrap();
        assert!(u.notices.is_empty(), "upstream logout is honoured: {:?}", u.notices);
        assert!(u.backchannel_logout && u.logout_url.is_some() && u.send_id_token_on_logout);
        assert!(u.refusal.is_none(), "reported only: they do not change what is trusted");

        let u = Upstream::from_repr(&idp(&[("clientAuthMethod", "private_key_jwt")]), "").unwrap();
        assert!(u.refusal.is_none() && u.notices.is_empty(), "private_key_jwt is honoured: {u:?}");
        let err = Upstream::from_repr(&idp(&[("clientAuthMethod", "client_secret_jwt")]), "").unwrap_err();
        assert!(err.to_string().starts_with("config.clientSecret:"), "{err}");
        let err = Upstream::from_repr(
            &idp(&[
                ("clientAuthMethod", "client_secret_jwt"),
                ("clientSecret", "s"),
                ("clientAssertionSigningAlg", "RS256"),
            ]),
            "",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("config.clientAssertionSigningAlg:"), "{err}");
        let err = Upstream::from_repr(
            &idp(&[("useJwksUrl", "false"), ("publicKeySignatureVerifier", "-----BEGIN PUBLIC KEY-----")]),
            "",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("config.publicKeySignatureVerifier:"), "{err}");
    }

    #[test]
    fn the_essential_claim_matches_in_full_reaches_into_objects_and_arrays() {
        let filter = |name: &str, value: &str| {
            Upstream::from_repr(
                &idp(&[("filteredByClaim", "true"), ("claimFilterName", name), ("claimFilterValue", value)]),
                "",
            )
            .unwrap()
            .claim_filter
            .unwrap()
        };
        let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
            "group": "staff", "groups": ["guests", "staff"], "realm_access": {"roles": ["admin"]},
            "https://x.test/tier": "gold", "level": 3
        }))
        .unwrap();
        let cases = [
            ("group", "staff", true),
            ("group", "sta", false),
            ("group", "staff|students", true),
            ("group", "xstaff", false),
            ("groups", "staff", true),
            ("groups", "admins", false),
            ("realm_access.roles", "admin", true),
            ("https://x.test/tier", "gold", true),
            ("level", "[0-9]", true),
            ("missing", ".*", false),
        ];
        for (name, value, expected) in cases {
            assert_eq!(filter(name, value).accepts(&claims), expected, "{name} ~ {value}");
        }
        let err = Upstream::from_repr(
            &idp(&[("filteredByClaim", "true"), ("claimFilterName", "g"), ("claimFilterValue", "(")]),
            "",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("config.claimFilterValue:"), "{err}");
        let err = Upstream::from_repr(&idp(&[("filteredByClaim", "true")]), "").unwrap_err();
        assert!(err.to_string().starts_with("config.claimFilterName:"), "{err}");
    }

    #[test]
    fn key_based_clients_have_no_secret_and_x509_is_reported() {
        let client = |kind: &str, attrs: &[(&str, &str)]| ClientRepresentation {
            client_id: Some("app".into()),
            client_authenticator_type: Some(kind.into()),
            secret: Some("s".into()),
            attributes: Some(attrs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            ..Default::default()
        };
        let m = Client::from_repr(&client("client-x509", &[]));
        assert_eq!((m.auth, m.secret.is_none()), (ClientAuth::Unsupported, true));
        assert_eq!(m.notices[0].field, "clientAuthenticatorType");

        // client-jwt: keys from jwks.url or jwks.string, never a secret.
        let m = Client::from_repr(&client("client-jwt", &[("jwks.url", "https://app.test/jwks")]));
        assert_eq!(m.auth, ClientAuth::PrivateKeyJwt);
        assert!(m.secret.is_none() && m.notices.is_empty(), "{:?}", m.notices);
        assert_eq!(m.jwks, Some(ClientJwks::Url("https://app.test/jwks".into())));
        let jwk = r#"{"kty":"EC","crv":"P-256","x":"a","y":"b"}"#;
        let m = Client::from_repr(&client(
            "client-jwt",
            &[("use.jwks.url", "false"), ("jwks.url", "https://app.test/jwks"), ("jwks.string", jwk)],
        ));
        let Some(ClientJwks::Set(set)) = &m.jwks else { panic!("{:?}", m.jwks) };
        assert_eq!(set["keys"][0]["kty"], "EC");
        let m = Client::from_repr(&client("client-jwt", &[("use.jwks.string", "false"), ("jwks.string", jwk)]));
        assert_eq!((m.jwks.is_none(), m.notices[0].field.as_str()), (true, "attributes.jwks.url"));

        // client-secret-jwt keeps its secret.
        let m = Client::from_repr(&client("client-secret-jwt", &[]));
        assert_eq!((m.auth, m.secret.is_some(), m.notices.len()), (ClientAuth::SecretJwt, true, 0));
    }

    #[test]
    fn lifespans_are_bounded() {
        assert_eq!(lifespan(Some(i64::MAX), DEFAULT_TOKEN_LIFESPAN), MAX_LIFESPAN);
        assert_eq!(lifespan(Some(0), DEFAULT_TOKEN_LIFESPAN), DEFAULT_TOKEN_LIFESPAN);
        assert_eq!(lifespan(Some(-3), DEFAULT_TOKEN_LIFESPAN), DEFAULT_TOKEN_LIFESPAN);
        assert_eq!(lifespan(Some(60), DEFAULT_TOKEN_LIFESPAN), Duration::from_secs(60));
    }
}
