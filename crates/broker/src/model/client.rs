//! A downstream client as the flows see it: Keycloak's
//! `ClientRepresentation` parsed once.

use federa_protocol::Secret;
use serde_json::{Map, Value};

use super::Notice;
use crate::repr::{ClientRepresentation, ProtocolMapperRepresentation};

/// How a client authenticates at the token endpoint (Keycloak's
/// `clientAuthenticatorType`, RFC 6749 section 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A public client: no authentication, PKCE required.
    None,
    /// `client-secret`: HTTP Basic or the form body.
    Secret,
    /// `client-secret-jwt`: a client assertion (RFC 7523 section 2.2) signed
    /// with HS256, HS384 or HS512 keyed with the client secret (OpenID
    /// Connect Core 1.0 section 9, `client_secret_jwt`).
    SecretJwt,
    /// `client-jwt`: a client assertion signed with a private key whose
    /// public half is in [`Client::jwks`] (`private_key_jwt`). Such a
    /// client has no secret.
    PrivateKeyJwt,
    /// `client-x509`: not supported yet; such a client cannot authenticate.
    Unsupported,
}

/// Where the public keys of a `client-jwt` client are (Keycloak's client
/// attributes `jwks.url` and `jwks.string`, chosen by `use.jwks.url` and
/// `use.jwks.string`).
#[derive(Debug, Clone, PartialEq)]
pub enum ClientJwks {
    /// A JWK Set URL, fetched and cached like an upstream's, and fetched
    /// again (rate-limited) when an assertion names an unknown `kid`.
    Url(String),
    /// A JWK Set given inline (`{"keys": [...]}`).
    Set(serde_json::Value),
}

/// Keycloak's client attribute holding a JWK Set URL.
pub const JWKS_URL: &str = "jwks.url";
/// Keycloak's client attribute holding a JWK Set (or one JWK) as JSON.
pub const JWKS_STRING: &str = "jwks.string";

/// The public keys a `client-jwt` client's attributes name, if any:
/// `jwks.url` when `use.jwks.url` is "true" (or absent and the URL given),
/// else `jwks.string` the same way. A single JWK is taken as a set of one.
/// `Err` names the attribute that cannot be read.
pub fn client_jwks(c: &ClientRepresentation) -> Result<Option<ClientJwks>, (String, String)> {
    let attr = |k: &str| c.attributes.as_ref().and_then(|a| a.get(k)).map(|v| v.trim()).filter(|v| !v.is_empty());
    let switch = |k: &str, value: Option<&str>| match attr(k) {
        Some(v) => v.eq_ignore_ascii_case("true"),
        None => value.is_some(),
    };
    let field = |k: &str| format!("attributes.{k}");
    if let Some(raw) = attr(JWKS_URL).filter(|u| switch("use.jwks.url", Some(u))) {
        let url = url::Url::parse(raw).map_err(|e| (field(JWKS_URL), format!("is not a URL: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err((field(JWKS_URL), "must be an http(s) URL".to_owned()));
        }
        return Ok(Some(ClientJwks::Url(raw.to_owned())));
    }
    if let Some(raw) = attr(JWKS_STRING).filter(|s| switch("use.jwks.string", Some(s))) {
        let value: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| (field(JWKS_STRING), format!("is not JSON: {e}")))?;
        let set = if value.get("kty").is_some() { serde_json::json!({ "keys": [value] }) } else { value };
        if !set.get("keys").is_some_and(serde_json::Value::is_array) {
            return Err((field(JWKS_STRING), "is neither a JWK Set nor a JWK".to_owned()));
        }
        return Ok(Some(ClientJwks::Set(set)));
    }
    Ok(None)
}

/// A client, validated and typed.
#[derive(Debug)]
pub struct Client {
    /// Its OAuth `client_id`.
    pub client_id: String,
    /// Its name for people.
    pub name: Option<String>,
    /// Whether it may be used.
    pub enabled: bool,
    /// A resource server only: never signs users in.
    pub bearer_only: bool,
    /// The authorization code flow is allowed.
    pub standard_flow: bool,
    /// Keycloak's `serviceAccountsEnabled`: a confidential client may get
    /// tokens for itself with the client_credentials grant (RFC 6749
    /// section 4.4).
    pub service_accounts: bool,
    /// How it authenticates.
    pub auth: ClientAuth,
    /// Its secret, for [`ClientAuth::Secret`] and [`ClientAuth::SecretJwt`];
    /// never for [`ClientAuth::PrivateKeyJwt`].
    pub secret: Option<Secret>,
    /// Its public keys, for [`ClientAuth::PrivateKeyJwt`].
    pub jwks: Option<ClientJwks>,
    /// Registered redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Registered post-logout redirect URIs (OpenID Connect RP-Initiated
    /// Logout 1.0 section 3.1), matched exactly: Keycloak's
    /// `attributes["post.logout.redirect.uris"]`.
    pub post_logout_redirect_uris: Vec<String>,
    /// Where its back-channel logout tokens go (OpenID Connect Back-Channel
    /// Logout 1.0 section 2.2): Keycloak's `attributes["backchannel.logout.url"]`.
    pub backchannel_logout: Option<BackchannelLogout>,
    /// User attributes its tokens and userinfo carry (`protocolMappers` of
    /// type `oidc-usermodel-attribute-mapper`).
    pub attribute_claims: Vec<AttributeClaim>,
    /// Whether it may be granted [`OFFLINE_ACCESS`]: see [`may_go_offline`].
    pub offline_access: bool,
    /// Settings stored but without effect yet.
    pub notices: Vec<Notice>,
}

/// A client's back-channel logout registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackchannelLogout {
    /// `backchannel.logout.url`: an http(s) URL.
    pub url: url::Url,
    /// `backchannel.logout.session.required` (Keycloak's default: true):
    /// the logout token carries the session's `sid`.
    pub session_required: bool,
}

/// The attribute holding a client's back-channel logout URL.
pub const BACKCHANNEL_LOGOUT_URL: &str = "backchannel.logout.url";
/// The attribute saying whether its logout tokens carry `sid`.
pub const BACKCHANNEL_LOGOUT_SESSION_REQUIRED: &str = "backchannel.logout.session.required";

/// The raw `backchannel.logout.url`, when set.
fn backchannel_url(c: &ClientRepresentation) -> Option<&str> {
    c.attributes.as_ref().and_then(|a| a.get(BACKCHANNEL_LOGOUT_URL)).map(|u| u.trim()).filter(|u| !u.is_empty())
}

/// The client's back-channel logout registration; `None` without a URL or
/// with one that is not http(s) (reported by [`notices`]).
pub fn backchannel_logout(c: &ClientRepresentation) -> Option<BackchannelLogout> {
    let url = url::Url::parse(backchannel_url(c)?).ok().filter(|u| matches!(u.scheme(), "http" | "https"))?;
    let required = c.attributes.as_ref().and_then(|a| a.get(BACKCHANNEL_LOGOUT_SESSION_REQUIRED));
    Some(BackchannelLogout { url, session_required: required.map(|v| v.trim()) != Some("false") })
}

/// Keycloak's protocol mapper type that puts a user attribute in tokens.
pub const USER_ATTRIBUTE_MAPPER: &str = "oidc-usermodel-attribute-mapper";

/// Claims a protocol mapper may not set: the ones each token's meaning and
/// checks rest on.
const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "azp",
    "sid",
    "auth_time",
    "nonce",
    "typ",
    "scope",
    "client_id",
    "at_hash",
    "c_hash",
    "acr",
    "amr",
    "gty",
    "realm_access",
];

/// The JSON type of an attribute claim (Keycloak's `jsonType.label`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    /// A string (the default).
    String,
    /// An integer (`long` or `int`); a value that is not one is left out.
    Integer,
    /// `true` for `true` (any case), else `false`.
    Boolean,
    /// The value parsed as JSON; a value that is not JSON is left out.
    Json,
}

/// Where a claim goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimsFor {
    /// The ID token.
    IdToken,
    /// The access token.
    AccessToken,
    /// The userinfo answer.
    Userinfo,
}

/// A user attribute put into tokens (`oidc-usermodel-attribute-mapper`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeClaim {
    /// The user attribute.
    pub attribute: String,
    /// The claim's path: a dotted `claim.name` nests objects (`\.` for a dot).
    pub path: Vec<String>,
    /// Its JSON type.
    pub json_type: JsonType,
    /// All the attribute's values as an array, or only the first.
    pub multivalued: bool,
    /// `id.token.claim` (default false, as in Keycloak).
    pub id_token: bool,
    /// `access.token.claim` (default true, as in Keycloak).
    pub access_token: bool,
    /// `userinfo.token.claim` (default: as `id.token.claim`, as in Keycloak).
    pub userinfo: bool,
}

impl AttributeClaim {
    /// Types a protocol mapper of type [`USER_ATTRIBUTE_MAPPER`]; the error
    /// names the config key at fault.
    pub fn parse(m: &ProtocolMapperRepresentation) -> Result<Self, (&'static str, String)> {
        let get = |k: &str| m.config.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let flag = |k: &'static str| match get(k) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err((k, format!("{v:?} is not true or false"))),
        };
        let attribute = get("user.attribute").ok_or(("user.attribute", "is required".to_owned()))?;
        let name = get("claim.name").ok_or(("claim.name", "is required".to_owned()))?;
        let path = claim_path(name);
        if path.iter().any(String::is_empty) {
            return Err(("claim.name", format!("{name:?} has an empty part")));
        }
        if path.first().is_some_and(|p| RESERVED_CLAIMS.contains(&p.as_str())) {
            return Err(("claim.name", format!("{name:?} is a claim Federa sets itself")));
        }
        let json_type = match get("jsonType.label") {
            None | Some("String") => JsonType::String,
            Some("long" | "int") => JsonType::Integer,
            Some("boolean") => JsonType::Boolean,
            Some("JSON") => JsonType::Json,
            Some(other) => {
                return Err(("jsonType.label", format!("{other:?} is not one of String, long, int, boolean, JSON")))
            }
        };
        let id_token = flag("id.token.claim")?.unwrap_or(false);
        Ok(Self {
            attribute: attribute.to_owned(),
            path,
            json_type,
            multivalued: flag("multivalued")?.unwrap_or(false),
            id_token,
            access_token: flag("access.token.claim")?.unwrap_or(true),
            userinfo: flag("userinfo.token.claim")?.unwrap_or(id_token),
        })
    }

    /// Whether the claim goes to `target`.
    pub fn goes_to(&self, target: ClaimsFor) -> bool {
        match target {
            ClaimsFor::IdToken => self.id_token,
            ClaimsFor::AccessToken => self.access_token,
            ClaimsFor::Userinfo => self.userinfo,
        }
    }

    /// The claim's value for the attribute's values, when there is one.
    pub fn value(&self, values: &[String]) -> Option<Value> {
        let typed = |v: &String| -> Option<Value> {
            match self.json_type {
                JsonType::String => Some(Value::String(v.clone())),
                JsonType::Integer => v.trim().parse::<i64>().ok().map(Value::from),
                JsonType::Boolean => Some(Value::Bool(v.trim().eq_ignore_ascii_case("true"))),
                JsonType::Json => serde_json::from_str(v).ok(),
            }
        };
        if self.multivalued {
            let all: Vec<Value> = values.iter().filter_map(typed).collect();
            (!all.is_empty()).then_some(Value::Array(all))
        } else {
            values.first().and_then(typed)
        }
    }

    /// Puts the value at the claim's path, making objects on the way (an
    /// existing non-object on the way is left as it is).
    pub fn insert(&self, claims: &mut Map<String, Value>, value: Value) {
        let Some((last, objects)) = self.path.split_last() else { return };
        let mut here = claims;
        for key in objects {
            let slot = here.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
            match slot {
                Value::Object(m) => here = m,
                _ => return,
            }
        }
        here.insert(last.clone(), value);
    }
}

/// Splits `a.b\.c` into `a` and `b.c`, as Keycloak reads `claim.name`.
fn claim_path(raw: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        let c = match c {
            '\\' if chars.peek() == Some(&'.') => chars.next().unwrap_or('.'),
            '.' => {
                parts.push(String::new());
                continue;
            }
            c => c,
        };
        if let Some(p) = parts.last_mut() {
            p.push(c);
        }
    }
    parts
}

/// A client's protocol mappers checked: the error names the field.
pub fn check_protocol_mappers(c: &ClientRepresentation) -> Result<(), (String, String)> {
    for (i, m) in c.protocol_mappers.iter().flatten().enumerate() {
        if m.protocol_mapper.as_deref() == Some(USER_ATTRIBUTE_MAPPER) {
            AttributeClaim::parse(m).map_err(|(k, e)| (format!("protocolMappers[{i}].config.{k}"), e))?;
        }
    }
    Ok(())
}

fn attribute_claims(c: &ClientRepresentation) -> Vec<AttributeClaim> {
    let mappers = c.protocol_mappers.iter().flatten();
    mappers
        .filter(|m| m.protocol_mapper.as_deref() == Some(USER_ATTRIBUTE_MAPPER))
        .filter_map(|m| AttributeClaim::parse(m).ok())
        .collect()
}

/// The scope that asks for a refresh token that outlives the browser's
/// session (OIDC Core section 11), and Keycloak's client scope of that name.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// Whether a client may be granted [`OFFLINE_ACCESS`], as Keycloak decides:
/// when its representation lists client scopes (`defaultClientScopes` or
/// `optionalClientScopes`, as a Keycloak export does for each client), only
/// if one of them holds `offline_access`; when it lists none, Keycloak's
/// default applies (every client has `offline_access` as an optional scope).
pub fn may_go_offline(c: &ClientRepresentation) -> bool {
    if c.default_client_scopes.is_none() && c.optional_client_scopes.is_none() {
        return true;
    }
    let listed = c.default_client_scopes.iter().chain(c.optional_client_scopes.iter()).flatten();
    listed.into_iter().any(|s| s == OFFLINE_ACCESS)
}

impl Client {
    /// Builds the model from a stored (validated) representation.
    pub fn from_repr(c: &ClientRepresentation) -> Self {
        let auth = if c.public_client == Some(true) {
            ClientAuth::None
        } else {
            match c.client_authenticator_type.as_deref() {
                None | Some("client-secret") => ClientAuth::Secret,
                Some("client-secret-jwt") => ClientAuth::SecretJwt,
                Some("client-jwt") => ClientAuth::PrivateKeyJwt,
                Some(_) => ClientAuth::Unsupported,
            }
        };
        // A key-based client authenticates with its keys only: a secret
        // stored with it (an older import, a switched type) is not usable.
        let secret = match auth {
            ClientAuth::Secret | ClientAuth::SecretJwt => {
                c.secret.as_deref().filter(|s| !s.is_empty()).map(Secret::new)
            }
            _ => None,
        };
        let jwks = match auth {
            ClientAuth::PrivateKeyJwt => client_jwks(c).unwrap_or_else(|(field, why)| {
                log::error!("client {:?}: {field} {why}; it cannot authenticate", c.client_id);
                None
            }),
            _ => None,
        };
        Self {
            client_id: c.client_id.clone().unwrap_or_default(),
            name: c.name.clone().filter(|n| !n.is_empty()),
            enabled: c.enabled != Some(false),
            bearer_only: c.bearer_only == Some(true),
            standard_flow: c.standard_flow_enabled != Some(false),
            service_accounts: c.service_accounts_enabled == Some(true),
            auth,
            secret,
            jwks,
            redirect_uris: c.redirect_uris.clone().unwrap_or_default(),
            post_logout_redirect_uris: post_logout_redirect_uris(c),
            backchannel_logout: backchannel_logout(c),
            attribute_claims: attribute_claims(c),
            offline_access: may_go_offline(c),
            notices: notices(c),
        }
    }

    /// Whether the public client flag is set.
    pub fn is_public(&self) -> bool {
        self.auth == ClientAuth::None
    }

    /// Whether the client may use the client_credentials grant: service
    /// accounts enabled on a confidential client (a public client holds no
    /// credentials, so anyone could act as it; a bearer-only one holds no
    /// secret and never authenticates).
    pub fn may_use_client_credentials(&self) -> bool {
        self.enabled && self.service_accounts && !self.is_public() && !self.bearer_only
    }

    /// The `sub` of the tokens this client gets for itself: Keycloak's name
    /// for the client's service-account user, `service-account-<clientId>`.
    /// It depends only on the `clientId`, so it stays the same when the
    /// client is recreated or the realm imported again.
    pub fn service_account_subject(&self) -> String {
        format!("service-account-{}", self.client_id)
    }
}

/// The attribute holding a client's post-logout redirect URIs.
pub const POST_LOGOUT_REDIRECT_URIS: &str = "post.logout.redirect.uris";

/// Keycloak's `post.logout.redirect.uris`: URIs separated by `##`, where
/// `+` stands for every registered redirect URI. Empty entries are skipped
/// and each URI is kept once, in order.
pub fn post_logout_redirect_uris(c: &ClientRepresentation) -> Vec<String> {
    let raw = c.attributes.as_ref().and_then(|a| a.get(POST_LOGOUT_REDIRECT_URIS)).map(String::as_str);
    let mut out: Vec<String> = Vec::new();
    for entry in raw.unwrap_or_default().split("##").map(str::trim).filter(|e| !e.is_empty()) {
        let uris = if entry == "+" { c.redirect_uris.clone().unwrap_or_default() } else { vec![entry.to_owned()] };
        for uri in uris {
            if !out.contains(&uri) {
                out.push(uri);
            }
        }
    }
    out
}

/// The settings of a client that Federa stores but does not honour yet.
pub fn notices(c: &ClientRepresentation) -> Vec<Notice> {
    let mut v = Vec::new();
    if c.public_client != Some(true) {
        match c.client_authenticator_type.as_deref() {
            Some("client-x509") => v.push(Notice::new(
                "clientAuthenticatorType",
                "client-x509 is not supported yet: this client cannot authenticate at the token endpoint",
            )),
            Some("client-jwt") if c.bearer_only != Some(true) && matches!(client_jwks(c), Ok(None)) => {
                v.push(Notice::new(
                    "attributes.jwks.url",
                    "neither jwks.url nor jwks.string is set (a certificate is not supported): this client-jwt client cannot authenticate",
                ))
            }
            _ => {}
        }
    }
    let on = |f: Option<bool>| f == Some(true);
    if on(c.implicit_flow_enabled) {
        v.push(Notice::new("implicitFlowEnabled", "has no effect: Federa serves the authorization code flow only"));
    }
    if on(c.direct_access_grants_enabled) {
        v.push(Notice::new("directAccessGrantsEnabled", "has no effect: Federa holds no passwords"));
    }
    if on(c.service_accounts_enabled) && c.public_client == Some(true) {
        v.push(Notice::new("serviceAccountsEnabled", "has no effect on a public client: it holds no credentials"));
    }
    if on(c.consent_required) {
        v.push(Notice::new("consentRequired", "has no effect yet (Federa asks for no consent)"));
    }
    for (i, m) in c.protocol_mappers.iter().flatten().enumerate() {
        let ty = m.protocol_mapper.as_deref().unwrap_or_default();
        if ty != USER_ATTRIBUTE_MAPPER {
            v.push(Notice::new(
                &format!("protocolMappers[{i}].protocolMapper"),
                &format!("{ty:?} has no effect: Federa supports {USER_ATTRIBUTE_MAPPER} only"),
            ));
        }
    }
    if backchannel_url(c).is_some() && backchannel_logout(c).is_none() {
        v.push(Notice::new(
            &format!("attributes.{BACKCHANNEL_LOGOUT_URL}"),
            "is not an http(s) URL: no back-channel logout is sent",
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(redirects: &[&str], post_logout: Option<&str>) -> ClientRepresentation {
        let mut c = ClientRepresentation {
            client_id: Some("app".into()),
            redirect_uris: Some(redirects.iter().map(|s| (*s).to_owned()).collect()),
            ..Default::default()
        };
        if let Some(v) = post_logout {
            c.attributes = Some([(POST_LOGOUT_REDIRECT_URIS.to_owned(), v.to_owned())].into_iter().collect());
        }
        c
    }

    #[test]
    fn post_logout_redirect_uris_are_keycloaks_list() {
        let cb = ["https://app.test/cb", "https://app.test/cb2"];
        let cases: [(Option<&str>, &[&str]); 6] = [
            (None, &[]),
            (Some(""), &[]),
            (Some("https://app.test/bye"), &["https://app.test/bye"]),
            (Some("https://app.test/bye##https://app.test/ciao"), &["https://app.test/bye", "https://app.test/ciao"]),
            (Some("+"), &cb),
            (Some("https://app.test/bye## + ##https://app.test/cb##"), &["https://app.test/bye", cb[0], cb[1]]),
        ];
        for (raw, want) in cases {
            let m = Client::from_repr(&client(&cb, raw));
            assert_eq!(m.post_logout_redirect_uris, want, "{raw:?}");
            assert!(m.notices.is_empty(), "{raw:?}: honoured, so not reported: {:?}", m.notices);
        }
    }

    #[test]
    fn backchannel_logout_is_typed() {
        let with = |attrs: &[(&str, &str)]| {
            let mut c = client(&[], None);
            c.attributes = Some(attrs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
            Client::from_repr(&c)
        };
        let m = with(&[(BACKCHANNEL_LOGOUT_URL, "https://app.test/bcl")]);
        let b = m.backchannel_logout.clone().unwrap();
        assert_eq!((b.url.as_str(), b.session_required), ("https://app.test/bcl", true));
        assert!(m.notices.is_empty(), "{:?}", m.notices);
        let m =
            with(&[(BACKCHANNEL_LOGOUT_URL, "https://app.test/bcl"), (BACKCHANNEL_LOGOUT_SESSION_REQUIRED, "false")]);
        assert!(!m.backchannel_logout.unwrap().session_required);
        let m = with(&[(BACKCHANNEL_LOGOUT_URL, "javascript:alert(1)")]);
        assert!(m.backchannel_logout.is_none());
        assert_eq!(m.notices.len(), 1);
        assert!(with(&[(BACKCHANNEL_LOGOUT_URL, " ")]).backchannel_logout.is_none());
    }

    #[test]
    fn offline_access_needs_the_client_scope_when_client_scopes_are_listed() {
        let with = |default: Option<&[&str]>, optional: Option<&[&str]>| {
            let list = |l: Option<&[&str]>| l.map(|l| l.iter().map(|s| (*s).to_owned()).collect());
            may_go_offline(&ClientRepresentation {
                default_client_scopes: list(default),
                optional_client_scopes: list(optional),
                ..Default::default()
            })
        };
        assert!(with(None, None), "Keycloak's default: an optional scope of every client");
        assert!(with(None, Some(&["offline_access", "phone"])));
        assert!(with(Some(&["offline_access"]), None));
        assert!(!with(Some(&["profile", "email"]), None));
        assert!(!with(Some(&["profile"]), Some(&["phone"])));
        assert!(!with(None, Some(&[])));
    }
}
