//! An upstream OpenID Provider as the flows see it: every setting of
//! Keycloak's `IdentityProviderRepresentation` parsed once into a typed
//! field, and every setting Federa does not honour yet named.

use std::time::Duration;

use federa_protocol::{ClientAuthMethod, PkceMethod, Secret, SyncMode};
use url::Url;

use super::{Notice, Prompt};
use crate::error::BrokerError;
use crate::repr::IdentityProviderRepresentation;

/// The largest `allowedClockSkew` Federa accepts: more would make expiry meaningless.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// What happens when an upstream identity signs in for the first time
/// (`firstBrokerLoginFlowAlias`, INTERFACE section 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstLogin {
    /// `first broker login` (or absent): create the user.
    CreateUser,
    /// `federa-known-users`: only users that already exist: a link
    /// provisioned through the admin API, else the user whose username is
    /// the upstream's `preferred_username`; anyone else is refused.
    KnownUsersOnly,
    /// A flow Federa does not know: first sign-ins are refused, naming it.
    Unknown(String),
}

/// The essential-claim filter (`filteredByClaim`, `claimFilterName`,
/// `claimFilterValue`): a sign-in is accepted only when the claim's value
/// matches the regular expression in full.
#[derive(Debug, Clone)]
pub struct ClaimFilter {
    /// The claim; a dotted name reaches into nested objects (`realm_access.roles`).
    pub name: String,
    /// The pattern, anchored at both ends.
    pub pattern: regex::Regex,
}

impl ClaimFilter {
    /// Whether the claims pass: the claim is there and its value (a string,
    /// number or boolean, or any element of an array of them) matches.
    pub fn accepts(&self, claims: &serde_json::Map<String, serde_json::Value>) -> bool {
        let mut parts = self.name.split('.');
        let Some(first) = parts.next() else { return false };
        let mut value = claims.get(first);
        for part in parts {
            value = value.and_then(|v| v.get(part));
        }
        // A claim named with a dot in its own name (`https://x.test/groups`) is tried whole too.
        let value = value.or_else(|| claims.get(&self.name));
        let matches = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => self.pattern.is_match(s),
            serde_json::Value::Number(n) => self.pattern.is_match(&n.to_string()),
            serde_json::Value::Bool(b) => self.pattern.is_match(&b.to_string()),
            _ => false,
        };
        match value {
            Some(serde_json::Value::Array(items)) => items.iter().any(matches),
            Some(v) => matches(v),
            None => false,
        }
    }
}

/// An upstream identity provider, validated and typed.
#[derive(Debug)]
pub struct Upstream {
    /// The alias.
    pub alias: String,
    /// The name on the login page.
    pub display_name: String,
    /// Whether it may be used at all.
    pub enabled: bool,
    /// Only for linking accounts, never for signing in.
    pub link_only: bool,
    /// Left off the login page (still usable through a hint).
    pub hide_on_login_page: bool,
    /// Its place on the login page.
    pub gui_order: Option<i64>,
    /// Its email addresses may be stored as verified.
    pub trust_email: bool,
    /// Keep its tokens on the federated identity.
    pub store_token: bool,
    /// Grant the `broker` client's `read-token` role to users it creates
    /// (`addReadTokenRoleOnCreate`).
    pub add_read_token_role: bool,
    /// The first-login policy.
    pub first_login: FirstLogin,
    /// Federa's client id there.
    pub client_id: String,
    /// Federa's client secret there.
    pub client_secret: Option<Secret>,
    /// How Federa authenticates at its token endpoint.
    pub auth_method: ClientAuthMethod,
    /// The algorithm of the client assertion (`clientAssertionSigningAlg`),
    /// for client_secret_jwt (default HS256) and private_key_jwt (the realm
    /// key's algorithm, which it must then equal).
    pub assertion_alg: Option<String>,
    /// `authorizationUrl`, when configured.
    pub authorization_url: Option<Url>,
    /// `tokenUrl`, when configured.
    pub token_url: Option<Url>,
    /// `userInfoUrl`, when configured.
    pub userinfo_url: Option<Url>,
    /// `jwksUrl`, when configured.
    pub jwks_url: Option<Url>,
    /// `issuer`, when configured.
    pub issuer: Option<String>,
    /// The discovery document: `metadataDescriptorUrl`, else derived from `issuer`.
    pub discovery_url: Option<String>,
    /// The scope to ask for (always with `openid`).
    pub scope: String,
    /// PKCE when configured (`pkceEnabled`, `pkceMethod`); otherwise used
    /// when the upstream advertises S256.
    pub pkce: Option<PkceMethod>,
    /// A fixed `prompt` to send.
    pub prompt: Option<Prompt>,
    /// A client's `prompt=none` may be forwarded.
    pub accepts_prompt_none: bool,
    /// Send a nonce.
    pub nonce: bool,
    /// How later sign-ins update the user.
    pub sync_mode: SyncMode,
    /// Parameters of the client's request to forward.
    pub forward_parameters: Vec<String>,
    /// Clock skew tolerated when checking its tokens.
    pub clock_skew: Duration,
    /// Forward `max_age`.
    pub pass_max_age: bool,
    /// Forward `ui_locales`.
    pub pass_ui_locales: bool,
    /// Forward `login_hint`.
    pub pass_login_hint: bool,
    /// Skip its userinfo endpoint.
    pub disable_userinfo: bool,
    /// A static key set of the one configured key (`useJwksUrl` false with
    /// `publicKeySignatureVerifier`), used instead of the upstream's JWKS.
    pub static_jwks: Option<serde_json::Value>,
    /// `publicKeySignatureVerifierKeyId`: the kid every ID token must name.
    pub static_kid: Option<String>,
    /// Whether signatures of its tokens are verified (`validateSignature`,
    /// on unless "false"). Off, its ID tokens' claims are still checked.
    pub validate_signature: bool,
    /// Its access tokens are JWTs to verify and read (`isAccessTokenJWT`).
    pub access_token_jwt: bool,
    /// The essential-claim filter, when `filteredByClaim` is on.
    pub claim_filter: Option<ClaimFilter>,
    /// `logoutUrl`: the upstream's RP-initiated logout endpoint, where a
    /// Federa logout ends the upstream session too.
    pub logout_url: Option<Url>,
    /// `backchannelSupported`: the upstream session is ended by a
    /// server-to-server call to `logoutUrl` rather than by sending the
    /// browser there.
    pub backchannel_logout: bool,
    /// `sendClientIdOnLogout`: the logout request names Federa's `client_id`.
    pub send_client_id_on_logout: bool,
    /// `sendIdTokenOnLogout` (default on): the logout request carries the
    /// upstream ID token as `id_token_hint`.
    pub send_id_token_on_logout: bool,
    /// Settings stored but without effect yet, for the admin.
    pub notices: Vec<Notice>,
    /// Set when a setting changes what is trusted and Federa cannot honour it
    /// yet: every sign-in through this provider is refused with this reason.
    pub refusal: Option<String>,
}

fn bool_key(
    cfg: &std::collections::BTreeMap<String, String>,
    field: &dyn Fn(&str) -> String,
    key: &str,
) -> Result<Option<bool>, BrokerError> {
    match cfg.get(key).map(String::as_str) {
        None | Some("") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(v) => Err(BrokerError::invalid(field(key), format!("{v:?} must be \"true\" or \"false\""))),
    }
}

impl Upstream {
    /// Every `true`/`false` key of the config, so validation refuses other spellings.
    pub const BOOL_KEYS: &'static [&'static str] = &[
        "validateSignature",
        "useJwksUrl",
        "backchannelSupported",
        "sendClientIdOnLogout",
        "sendIdTokenOnLogout",
        "disableUserInfo",
        "disableNonce",
        "isAccessTokenJWT",
        "pkceEnabled",
        "filteredByClaim",
        "passMaxAge",
        "uiLocales",
        "loginHint",
        "hideOnLoginPage",
        "acceptsPromptNoneForwardFromClient",
    ];

    /// Builds the model from a representation; `prefix` goes before field
    /// names in errors (`identityProviders[2].`).
    pub fn from_repr(p: &IdentityProviderRepresentation, prefix: &str) -> Result<Self, BrokerError> {
        let field = |k: &str| format!("{prefix}config.{k}");
        let cfg = &p.config;
        let s = |k: &str| cfg.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let b = |k: &str| bool_key(cfg, &field, k);
        let url = |k: &str| -> Result<Option<Url>, BrokerError> {
            s(k).map(|v| crate::validate::check_http_url(&field(k), v)).transpose()
        };
        let alias = p.alias.clone().unwrap_or_default();
        for key in Self::BOOL_KEYS {
            b(key)?;
        }
        let parse_int = |k: &str| -> Result<Option<i64>, BrokerError> {
            s(k).map(|v| {
                v.parse::<i64>().map_err(|_| BrokerError::invalid(field(k), format!("{v:?} must be an integer")))
            })
            .transpose()
        };
        let gui_order = parse_int("guiOrder")?;
        let clock_skew = match parse_int("allowedClockSkew")? {
            None => Duration::ZERO,
            Some(n) if (0..=MAX_CLOCK_SKEW.as_secs() as i64).contains(&n) => Duration::from_secs(n as u64),
            Some(n) => {
                return Err(BrokerError::invalid(
                    field("allowedClockSkew"),
                    format!("{n} must be between 0 and {} seconds", MAX_CLOCK_SKEW.as_secs()),
                ))
            }
        };
        let sync_mode = s("syncMode")
            .map(|v| v.parse::<SyncMode>().map_err(|e| BrokerError::invalid(field("syncMode"), e.to_string())))
            .transpose()?
            .unwrap_or(SyncMode::Import);
        let auth_method = s("clientAuthMethod")
            .map(|v| {
                v.parse::<ClientAuthMethod>()
                    .map_err(|e| BrokerError::invalid(field("clientAuthMethod"), e.to_string()))
            })
            .transpose()?
            .unwrap_or(ClientAuthMethod::SecretPost);
        let assertion_alg = s("clientAssertionSigningAlg").map(str::to_owned);
        match (auth_method, assertion_alg.as_deref()) {
            (ClientAuthMethod::SecretJwt, Some(a)) if !federa_protocol::client_assertion::HMAC_ALGS.contains(&a) => {
                return Err(BrokerError::invalid(
                    field("clientAssertionSigningAlg"),
                    format!("{a:?} cannot sign a client_secret_jwt assertion; use HS256, HS384 or HS512"),
                ))
            }
            (ClientAuthMethod::PrivateKeyJwt, Some(a)) if !crate::validate::REALM_ALGORITHMS.contains(&a) => {
                return Err(BrokerError::invalid(
                    field("clientAssertionSigningAlg"),
                    format!(
                        "{a:?} cannot sign a private_key_jwt assertion; use the realm key's algorithm ({})",
                        crate::validate::REALM_ALGORITHMS.join(", ")
                    ),
                ))
            }
            _ => {}
        }
        if auth_method == ClientAuthMethod::SecretJwt && s("clientSecret").is_none() {
            return Err(BrokerError::invalid(field("clientSecret"), "is required for client_secret_jwt"));
        }
        let claim_filter = if b("filteredByClaim")? == Some(true) {
            let name = s("claimFilterName").ok_or_else(|| {
                BrokerError::invalid(field("claimFilterName"), "is required when filteredByClaim is on")
            })?;
            let value = cfg.get("claimFilterValue").map(String::as_str).unwrap_or_default();
            let pattern = regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                BrokerError::invalid(field("claimFilterValue"), format!("{value:?} is not a regular expression: {e}"))
            })?;
            Some(ClaimFilter { name: name.to_owned(), pattern })
        } else {
            None
        };
        let static_kid = s("publicKeySignatureVerifierKeyId").map(str::to_owned);
        let static_jwks = match (b("useJwksUrl")?, s("publicKeySignatureVerifier")) {
            (Some(false), Some(pem)) => {
                let jwk = federa_protocol::pem_key::jwk_from_pem(pem, static_kid.as_deref())
                    .map_err(|e| BrokerError::invalid(field("publicKeySignatureVerifier"), e))?;
                Some(serde_json::json!({ "keys": [jwk] }))
            }
            _ => None,
        };
        let pkce_method = s("pkceMethod")
            .map(|v| v.parse::<PkceMethod>().map_err(|e| BrokerError::invalid(field("pkceMethod"), e.to_string())))
            .transpose()?;
        let prompt = match cfg.get("prompt").map(String::as_str) {
            None | Some("" | "unspecified") => None,
            Some(v) => Some(v.parse::<Prompt>().map_err(|_| {
                BrokerError::invalid(
                    field("prompt"),
                    format!("{v:?} is not one of none, login, consent, select_account"),
                )
            })?),
        };
        let authorization_url = url("authorizationUrl")?;
        let token_url = url("tokenUrl")?;
        let userinfo_url = url("userInfoUrl")?;
        let jwks_url = url("jwksUrl")?;
        let issuer = url("issuer")?.and(s("issuer").map(str::to_owned));
        let metadata = url("metadataDescriptorUrl")?;
        let logout_url = url("logoutUrl")?;
        let client_id = s("clientId").map(str::to_owned).unwrap_or_default();
        if client_id.is_empty() {
            return Err(BrokerError::invalid(field("clientId"), "is required"));
        }
        let explicit = authorization_url.is_some() && token_url.is_some();
        let discovery_url = metadata.map(|u| u.to_string()).or_else(|| {
            issuer.as_ref().map(|i| format!("{}/.well-known/openid-configuration", i.trim_end_matches('/')))
        });
        if !explicit && discovery_url.is_none() {
            let missing = if authorization_url.is_some() { "tokenUrl" } else { "authorizationUrl" };
            return Err(BrokerError::invalid(
                field(missing),
                "is required unless metadataDescriptorUrl or issuer lets Federa discover the endpoints",
            ));
        }
        let scope = s("defaultScope").unwrap_or("openid").to_owned();
        let scope = if scope.split(' ').any(|x| x == "openid") { scope } else { format!("openid {scope}") };
        let first_login = match p.first_broker_login_flow_alias.as_deref().map(str::trim) {
            None | Some("" | "first broker login") => FirstLogin::CreateUser,
            Some("federa-known-users") => FirstLogin::KnownUsersOnly,
            Some(other) => FirstLogin::Unknown(other.to_owned()),
        };

        let mut notices = assess(p, auth_method, &first_login, |k| b(k).ok().flatten(), |k| s(k).is_some());
        let mut refusal = None;
        if issuer.is_none() && discovery_url.is_none() {
            // Its ID tokens can never be checked (OIDC Core 3.1.3.7 step 2
            // needs the issuer): nobody can sign in through it as configured.
            notices.push(Notice::new(
                "config.issuer",
                "is missing and cannot be discovered (no metadataDescriptorUrl): no one can sign in through this provider until one is set",
            ));
            refusal.get_or_insert_with(|| {
                "config.issuer is not set and cannot be discovered, so its ID tokens cannot be checked".into()
            });
        }
        Ok(Self {
            display_name: p.display_name.clone().filter(|d| !d.trim().is_empty()).unwrap_or_else(|| alias.clone()),
            alias,
            enabled: p.enabled != Some(false),
            link_only: p.link_only == Some(true),
            hide_on_login_page: b("hideOnLoginPage")? == Some(true),
            gui_order,
            trust_email: p.trust_email == Some(true),
            store_token: p.store_token == Some(true),
            add_read_token_role: p.add_read_token_role_on_create == Some(true),
            first_login,
            client_id,
            client_secret: s("clientSecret").map(Secret::new),
            auth_method,
            assertion_alg,
            authorization_url,
            token_url,
            userinfo_url,
            jwks_url,
            issuer,
            discovery_url,
            scope,
            pkce: if b("pkceEnabled")? == Some(true) { Some(pkce_method.unwrap_or(PkceMethod::S256)) } else { None },
            prompt,
            accepts_prompt_none: b("acceptsPromptNoneForwardFromClient")? == Some(true),
            nonce: b("disableNonce")? != Some(true),
            sync_mode,
            forward_parameters: s("forwardParameters")
                .map(|v| v.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect())
                .unwrap_or_default(),
            clock_skew,
            pass_max_age: b("passMaxAge")? == Some(true),
            pass_ui_locales: b("uiLocales")? == Some(true),
            pass_login_hint: b("loginHint")? == Some(true),
            disable_userinfo: b("disableUserInfo")? == Some(true),
            static_jwks,
            static_kid,
            validate_signature: b("validateSignature")? != Some(false),
            access_token_jwt: b("isAccessTokenJWT")? == Some(true),
            claim_filter,
            logout_url,
            backchannel_logout: b("backchannelSupported")? == Some(true),
            send_client_id_on_logout: b("sendClientIdOnLogout")? == Some(true),
            send_id_token_on_logout: b("sendIdTokenOnLogout")? != Some(false),
            notices,
            refusal,
        })
    }

    /// Whether it may sign people in: enabled, not link-only.
    pub fn can_sign_in(&self) -> bool {
        self.enabled && !self.link_only
    }
}

/// The settings of a provider that Federa stores but does not honour yet.
fn assess(
    p: &IdentityProviderRepresentation,
    auth_method: ClientAuthMethod,
    first_login: &FirstLogin,
    flag: impl Fn(&str) -> Option<bool>,
    set: impl Fn(&str) -> bool,
) -> Vec<Notice> {
    let mut notices = Vec::new();
    let mut note = |field: &str, message: &str| notices.push(Notice::new(field, message));
    let asserts = matches!(auth_method, ClientAuthMethod::PrivateKeyJwt | ClientAuthMethod::SecretJwt);
    if set("clientAssertionSigningAlg") && !asserts {
        note(
            "config.clientAssertionSigningAlg",
            "has no effect: only client_secret_jwt and private_key_jwt send a client assertion",
        );
    }
    if flag("filteredByClaim") != Some(true) && (set("claimFilterName") || set("claimFilterValue")) {
        note("config.claimFilterName", "has no effect while filteredByClaim is off");
    }
    if flag("validateSignature") == Some(false) {
        note(
            "config.validateSignature",
            "false: signatures of this provider's tokens are NOT verified; its ID tokens are trusted on the TLS connection to its token endpoint alone",
        );
    }
    if flag("useJwksUrl") == Some(false) {
        if !set("publicKeySignatureVerifier") && flag("validateSignature") != Some(false) {
            note(
                "config.useJwksUrl",
                "false without publicKeySignatureVerifier has no effect: Federa reads the upstream's JWKS",
            );
        }
    } else if set("publicKeySignatureVerifier") || set("publicKeySignatureVerifierKeyId") {
        note("config.publicKeySignatureVerifier", "has no effect while useJwksUrl is on");
    }
    if flag("backchannelSupported") == Some(true) && !set("logoutUrl") {
        note("config.backchannelSupported", "has no effect without logoutUrl");
    }
    match first_login {
        FirstLogin::CreateUser | FirstLogin::KnownUsersOnly => {}
        FirstLogin::Unknown(flow) => note(
            "firstBrokerLoginFlowAlias",
            &format!("{flow:?} is not a flow Federa knows: first sign-ins are refused, linked users sign in"),
        ),
    }
    if p.post_broker_login_flow_alias.as_deref().is_some_and(|f| !f.trim().is_empty()) {
        note("postBrokerLoginFlowAlias", "has no effect (Federa runs no post-login flows)");
    }
    notices
}
