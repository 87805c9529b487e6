//! The authorization request (RFC 6749 section 4.1.1, OIDC Core section
//! 3.1.2.1), checked once. The decision this module makes is the one the
//! whole endpoint turns on: until `client_id` and `redirect_uri` are proven,
//! an error is a page for the person; after, it goes back to the client.

use std::collections::BTreeMap;

use federa_protocol::{pkce, OAuthError, OAuthErrorCode};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::model::{Client, Upstream};

/// The longest value Federa keeps of a parameter it stores while the user
/// signs in (`state`, `nonce`, `login_hint`, forwarded parameters): a pending
/// flow lives 30 minutes, so what one request may make the store hold is bounded.
pub const MAX_PARAM_BYTES: usize = 2048;

/// How the response reaches the client (OAuth 2.0 Multiple Response Types,
/// Form Post Response Mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    /// Parameters in the redirect URI's query.
    Query,
    /// An auto-submitted HTML form POSTed to the redirect URI.
    FormPost,
}

/// A validated authorization request, kept in the session store while the
/// user signs in upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// The realm.
    pub realm: String,
    /// The client's `client_id`.
    pub client_id: String,
    /// The registered redirect URI the request named.
    pub redirect_uri: String,
    /// How to answer.
    pub response_mode: ResponseMode,
    /// The client's `state`, echoed back.
    pub state: Option<String>,
    /// The client's `nonce`, put into the ID token.
    pub nonce: Option<String>,
    /// The requested scopes.
    pub scopes: Vec<String>,
    /// The PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// `prompt` values.
    pub prompt: Vec<String>,
    /// `max_age`, seconds.
    pub max_age: Option<i64>,
    /// `login_hint`.
    pub login_hint: Option<String>,
    /// `ui_locales`.
    pub ui_locales: Option<String>,
    /// `kc_idp_hint` or `idp_hint`.
    pub idp_hint: Option<String>,
    /// The parameters some identity provider of the realm forwards
    /// (`forwardParameters`); every other parameter is dropped.
    pub extra: BTreeMap<String, String>,
}

impl AuthRequest {
    /// Whether `prompt` holds `value`.
    pub fn has_prompt(&self, value: &str) -> bool {
        self.prompt.iter().any(|p| p == value)
    }

    /// Whether a scope was requested.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// An error response to this request's client.
    pub fn error(&self, issuer: &str, error: OAuthError) -> ClientResponse {
        ClientResponse::error(&self.redirect_uri, self.response_mode, self.state.as_deref(), issuer, error)
    }
}

/// What goes back to the client's redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    /// The registered redirect URI.
    pub redirect_uri: String,
    /// Query or form_post.
    pub response_mode: ResponseMode,
    /// The response parameters, `iss` always among them (RFC 9207).
    pub params: Vec<(String, String)>,
}

impl ClientResponse {
    /// An error response (RFC 6749 section 4.1.2.1) with `state` and `iss`.
    pub fn error(
        redirect_uri: &str,
        response_mode: ResponseMode,
        state: Option<&str>,
        issuer: &str,
        error: OAuthError,
    ) -> Self {
        let code = serde_json::to_value(error.error).ok().and_then(|v| v.as_str().map(str::to_owned));
        let mut params = vec![("error".to_owned(), code.unwrap_or_else(|| "server_error".into()))];
        if let Some(d) = error.error_description {
            params.push(("error_description".into(), d));
        }
        if let Some(s) = state {
            params.push(("state".into(), s.to_owned()));
        }
        params.push(("iss".into(), issuer.to_owned()));
        Self { redirect_uri: redirect_uri.to_owned(), response_mode, params }
    }

    /// The redirect URL for `query` mode: the redirect URI with the
    /// parameters added to its query, keeping any it already had.
    pub fn location(&self) -> String {
        match url::Url::parse(&self.redirect_uri) {
            Ok(mut u) => {
                {
                    let mut q = u.query_pairs_mut();
                    for (k, v) in &self.params {
                        q.append_pair(k, v);
                    }
                }
                u.to_string()
            }
            Err(_) => self.redirect_uri.clone(),
        }
    }
}

/// Why an authorization request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The client or redirect URI cannot be trusted: tell the person, never
    /// redirect.
    Page {
        /// A short title.
        title: String,
        /// What went wrong, for the person and the app's developer.
        message: String,
    },
    /// Tell the client, at its validated redirect URI.
    Client(ClientResponse),
}

impl AuthError {
    /// A page error.
    pub fn page(title: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Page { title: title.into(), message: message.into() }
    }
}

/// Parameters that never reach `extra` (they have a field, or must not be
/// forwarded upstream).
const KNOWN: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
    "ui_locales",
    "kc_idp_hint",
    "idp_hint",
    "request",
    "request_uri",
];

/// Checks an authorization request against the client it names.
///
/// `client` is the realm's client with that `client_id`, if any; `idps` the
/// realm's providers, whose `forwardParameters` say which other parameters
/// are kept. Errors before the redirect URI is proven are pages; after, they
/// go to the client.
pub fn validate(
    realm: &str,
    issuer: &str,
    params: &BTreeMap<String, String>,
    client: Option<&Client>,
    idps: &[Arc<Upstream>],
) -> Result<AuthRequest, AuthError> {
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let client_id = get("client_id").ok_or_else(|| {
        AuthError::page(
            "Invalid request",
            "The application did not say who it is (the client_id parameter is missing).",
        )
    })?;
    let client = client.filter(|c| c.enabled && !c.bearer_only).ok_or_else(|| {
        AuthError::page("Unknown application", format!("No application {client_id:?} is registered in this realm."))
    })?;
    let redirect_uri = get("redirect_uri")
        .ok_or_else(|| AuthError::page("Invalid request", "The application did not give a redirect_uri."))?;
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(AuthError::page(
            "Invalid redirect URI",
            format!("The redirect URI {redirect_uri:?} is not registered for the application {client_id:?}."),
        ));
    }

    // From here on the client can be told.
    let state = get("state").map(str::to_owned);
    let response_mode = match get("response_mode") {
        None | Some("query") => ResponseMode::Query,
        Some("form_post") => ResponseMode::FormPost,
        Some(_) => ResponseMode::Query,
    };
    let fail = |code: OAuthErrorCode, msg: &str| {
        AuthError::Client(ClientResponse::error(
            redirect_uri,
            response_mode,
            state.as_deref(),
            issuer,
            OAuthError::new(code, msg),
        ))
    };
    if let Some(mode) = get("response_mode") {
        if mode != "query" && mode != "form_post" {
            return Err(fail(OAuthErrorCode::InvalidRequest, "response_mode must be query or form_post"));
        }
    }
    if params.contains_key("request") || params.contains_key("request_uri") {
        return Err(fail(OAuthErrorCode::InvalidRequest, "request objects are not supported"));
    }
    match get("response_type") {
        Some("code") => {}
        None => return Err(fail(OAuthErrorCode::InvalidRequest, "response_type is required")),
        Some(_) => return Err(fail(OAuthErrorCode::UnsupportedResponseType, "only response_type=code is supported")),
    }
    if !client.standard_flow {
        return Err(fail(
            OAuthErrorCode::UnauthorizedClient,
            "the authorization code flow is disabled for this client",
        ));
    }
    let mut scopes: Vec<String> =
        get("scope").unwrap_or_default().split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    if !scopes.iter().any(|s| s == "openid") {
        return Err(fail(OAuthErrorCode::InvalidScope, "scope must contain openid"));
    }
    // A client not given the offline_access client scope does not get it,
    // silently, as Keycloak does: its refresh tokens stay bound to the
    // session.
    if !client.offline_access {
        scopes.retain(|s| s != crate::model::client::OFFLINE_ACCESS);
    }
    let code_challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(fail(OAuthErrorCode::InvalidRequest, "code_challenge_method without code_challenge"))
        }
        (Some(c), method) => {
            if method != Some("S256") {
                return Err(fail(OAuthErrorCode::InvalidRequest, "code_challenge_method must be S256"));
            }
            if !pkce::is_valid_challenge(c) {
                return Err(fail(OAuthErrorCode::InvalidRequest, "code_challenge is malformed"));
            }
            Some(c.to_owned())
        }
    };
    if client.is_public() && code_challenge.is_none() {
        return Err(fail(
            OAuthErrorCode::InvalidRequest,
            "PKCE (code_challenge with S256) is required for public clients",
        ));
    }
    let prompt: Vec<String> =
        get("prompt").unwrap_or_default().split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    for p in &prompt {
        if !matches!(p.as_str(), "none" | "login" | "consent" | "select_account") {
            return Err(fail(OAuthErrorCode::InvalidRequest, "prompt has an unknown value"));
        }
    }
    if prompt.len() > 1 && prompt.iter().any(|p| p == "none") {
        return Err(fail(OAuthErrorCode::InvalidRequest, "prompt=none cannot be combined with other values"));
    }
    let max_age = match get("max_age") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => return Err(fail(OAuthErrorCode::InvalidRequest, "max_age must be a non-negative integer")),
        },
    };
    for name in ["state", "nonce", "login_hint", "ui_locales", "kc_idp_hint", "idp_hint"] {
        if get(name).is_some_and(|v| v.len() > MAX_PARAM_BYTES) {
            return Err(fail(
                OAuthErrorCode::InvalidRequest,
                &format!("{name} is longer than {MAX_PARAM_BYTES} bytes"),
            ));
        }
    }
    // Only what a provider of the realm forwards is kept: an unknown
    // parameter would otherwise sit in the session store for the whole flow.
    let mut extra = BTreeMap::new();
    for (k, v) in params {
        let forwarded = !KNOWN.contains(&k.as_str()) && idps.iter().any(|p| p.forward_parameters.contains(k));
        if !forwarded {
            continue;
        }
        if v.len() > MAX_PARAM_BYTES {
            return Err(fail(OAuthErrorCode::InvalidRequest, &format!("{k} is longer than {MAX_PARAM_BYTES} bytes")));
        }
        extra.insert(k.clone(), v.clone());
    }
    Ok(AuthRequest {
        realm: realm.to_owned(),
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        response_mode,
        state,
        nonce: get("nonce").map(str::to_owned),
        scopes,
        code_challenge,
        prompt,
        max_age,
        login_hint: get("login_hint").map(str::to_owned),
        ui_locales: get("ui_locales").map(str::to_owned),
        idp_hint: get("kc_idp_hint").or(get("idp_hint")).map(str::to_owned),
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://federa.test/realms/r";

    fn client(public: bool) -> Client {
        Client::from_repr(&crate::repr::ClientRepresentation {
            client_id: Some("app".into()),
            public_client: Some(public),
            redirect_uris: Some(vec!["https://app.test/cb".into()]),
            ..Default::default()
        })
    }

    /// A provider that forwards `acr_values`.
    fn idps() -> Vec<Arc<Upstream>> {
        let mut p = crate::repr::IdentityProviderRepresentation {
            alias: Some("corp".into()),
            provider_id: Some("oidc".into()),
            ..Default::default()
        };
        for (k, v) in [("clientId", "f"), ("issuer", "https://idp.test"), ("forwardParameters", "acr_values")] {
            p.config.insert(k.into(), v.into());
        }
        vec![Arc::new(Upstream::from_repr(&p, "").unwrap())]
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut p: BTreeMap<String, String> = [
            ("client_id", "app"),
            ("redirect_uri", "https://app.test/cb"),
            ("response_type", "code"),
            ("scope", "openid profile"),
            ("state", "st"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in pairs {
            if v.is_empty() {
                p.remove(*k);
            } else {
                p.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        p
    }

    fn error_code(r: Result<AuthRequest, AuthError>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(AuthError::Page { .. }) => "page".into(),
            Err(AuthError::Client(c)) => {
                assert!(c.params.contains(&("iss".into(), ISS.into())), "every response carries iss");
                assert!(c.params.contains(&("state".into(), "st".into())));
                c.params[0].1.clone()
            }
        }
    }

    #[test]
    fn table() {
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let cases: &[(&[(&str, &str)], bool, &str)] = &[
            (&[], false, "ok"),
            (&[("client_id", "")], false, "page"),
            (&[("redirect_uri", "https://evil.test/cb")], false, "page"),
            (&[("redirect_uri", "https://app.test/cb/")], false, "page"),
            (&[("redirect_uri", "")], false, "page"),
            (&[("response_type", "token")], false, "unsupported_response_type"),
            (&[("response_type", "")], false, "invalid_request"),
            (&[("scope", "profile")], false, "invalid_scope"),
            (&[], true, "invalid_request"),
            (&[("code_challenge", challenge), ("code_challenge_method", "S256")], true, "ok"),
            (&[("code_challenge", challenge)], true, "invalid_request"),
            (&[("code_challenge", challenge), ("code_challenge_method", "plain")], false, "invalid_request"),
            (&[("code_challenge", "short"), ("code_challenge_method", "S256")], false, "invalid_request"),
            (&[("prompt", "none login")], false, "invalid_request"),
            (&[("prompt", "bogus")], false, "invalid_request"),
            (&[("max_age", "-1")], false, "invalid_request"),
            (&[("response_mode", "fragment")], false, "invalid_request"),
            (&[("request", "eyJ")], false, "invalid_request"),
        ];
        for (overrides, public, expected) in cases {
            let c = client(*public);
            let got = error_code(validate("r", ISS, &params(overrides), Some(&c), &idps()));
            assert_eq!(&got, expected, "{overrides:?} public={public}");
        }
        assert_eq!(error_code(validate("r", ISS, &params(&[]), None, &idps())), "page");
    }

    #[test]
    fn keeps_what_the_flow_needs() {
        let c = client(false);
        let p = params(&[
            ("kc_idp_hint", "corp"),
            ("max_age", "60"),
            ("nonce", "n"),
            ("acr_values", "gold"),
            ("junk", "x"),
        ]);
        let r = validate("r", ISS, &p, Some(&c), &idps()).unwrap();
        assert!(!r.extra.contains_key("junk"), "a parameter no provider forwards is not kept");
        assert_eq!(r.idp_hint.as_deref(), Some("corp"));
        assert_eq!(r.max_age, Some(60));
        assert_eq!(r.nonce.as_deref(), Some("n"));
        assert_eq!(r.extra.get("acr_values").map(String::as_str), Some("gold"));
        assert!(!r.extra.contains_key("kc_idp_hint"));
    }

    #[test]
    fn stored_values_are_bounded() {
        let c = client(false);
        let long = "x".repeat(MAX_PARAM_BYTES + 1);
        for name in ["state", "nonce", "login_hint", "acr_values"] {
            let r = validate("r", ISS, &params(&[(name, &long)]), Some(&c), &idps());
            let Err(AuthError::Client(resp)) = r else { panic!("{name}: expected an error to the client") };
            assert_eq!(resp.params[0], ("error".to_owned(), "invalid_request".to_owned()), "{name}");
        }
        let fine = "x".repeat(MAX_PARAM_BYTES);
        assert!(validate("r", ISS, &params(&[("acr_values", &fine)]), Some(&c), &idps()).is_ok());
    }

    #[test]
    fn location_keeps_existing_query() {
        let resp = ClientResponse {
            redirect_uri: "https://app.test/cb?x=1".into(),
            response_mode: ResponseMode::Query,
            params: vec![("code".into(), "a b".into()), ("iss".into(), ISS.into())],
        };
        assert_eq!(resp.location(), "https://app.test/cb?x=1&code=a+b&iss=https%3A%2F%2Ffedera.test%2Frealms%2Fr");
    }
}
