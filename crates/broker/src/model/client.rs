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
    /// `client-jwt`, `client-secret-jwt`, `client-x509`: not supported yet;
    /// such a client cannot authenticate.
    Unsupported,
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
    /// Its secret, for [`ClientAuth::Secret`].
    pub secret: Option<Secret>,
    /// Registered redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Registered post-logout redirect URIs (OpenID Connect RP-Initiated
    /// Logout 1.0 section 3.1), matched exactly: Keycloak's
    /// `attributes["post.logout.redirect.uris"]`.
    pub post_logout_redirect_uris: Vec<String>,
    /// User attributes its tokens and userinfo carry (`protocolMappers` of
    /// type `oidc-usermodel-attribute-mapper`).
    pub attribute_claims: Vec<AttributeClaim>,
    /// Settings stored but without effect yet.
    pub notices: Vec<Notice>,
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

impl Client {
    /// Builds the model from a stored (validated) representation.
    pub fn from_repr(c: &ClientRepresentation) -> Self {
        let auth = if c.public_client == Some(true) {
            ClientAuth::None
        } else {
            match c.client_authenticator_type.as_deref() {
                None | Some("client-secret") => ClientAuth::Secret,
                Some(_) => ClientAuth::Unsupported,
            }
        };
        Self {
            client_id: c.client_id.clone().unwrap_or_default(),
            name: c.name.clone().filter(|n| !n.is_empty()),
            enabled: c.enabled != Some(false),
            bearer_only: c.bearer_only == Some(true),
            standard_flow: c.standard_flow_enabled != Some(false),
            service_accounts: c.service_accounts_enabled == Some(true),
            auth,
            secret: c.secret.as_deref().filter(|s| !s.is_empty()).map(Secret::new),
            redirect_uris: c.redirect_uris.clone().unwrap_or_default(),
            post_logout_redirect_uris: post_logout_redirect_uris(c),
            attribute_claims: attribute_claims(c),
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
        if let Some(t @ ("client-jwt" | "client-secret-jwt" | "client-x509")) = c.client_authenticator_type.as_deref() {
            v.push(Notice::new(
                "clientAuthenticatorType",
                &format!("{t} is not supported yet: this client cannot authenticate at the token endpoint"),
            ));
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
    let key = "backchannel.logout.url";
    if c.attributes.as_ref().and_then(|a| a.get(key)).is_some_and(|u| !u.trim().is_empty()) {
        v.push(Notice::new(&format!("attributes.{key}"), "has no effect yet (back-channel logout is not implemented)"));
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
}
