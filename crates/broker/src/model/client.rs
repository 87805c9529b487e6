//! A downstream client as the flows see it: Keycloak's
//! `ClientRepresentation` parsed once.

use federa_protocol::Secret;

use super::Notice;
use crate::repr::ClientRepresentation;

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
}
