//! OpenID Connect RP-Initiated Logout 1.0: an application sends the browser
//! to the realm's logout endpoint to end the person's Federa session.
//!
//! The session ends at once only when the request can be trusted to come
//! from the application: a valid `id_token_hint` naming the browser's own
//! session, or a browser with no session at all (the hint's session, if
//! any, then ends: what an application that signed the user out on its
//! server expects). Otherwise (no hint, a hint that does not verify, or one
//! naming another session) the person is asked first (section 2: the OP
//! MUST ask when the hint is missing or does not belong to the current
//! session); the confirmation is bound to the browser's session by a
//! one-time token kept in the session store.
//!
//! A `post_logout_redirect_uri` is followed only when it exactly matches
//! one registered for the application identified by the hint or by
//! `client_id` (section 3); anything else is an error page, never a
//! redirect.
//!
//! Upstream logout (Keycloak's `logoutUrl` and `backchannelSupported`):
//! once a session has ended, when its provider has a `logoutUrl`, the
//! upstream session ends too. With `backchannelSupported`, Federa calls
//! `logoutUrl` itself (server to server, `id_token_hint` the upstream's ID
//! token, as Keycloak's `OIDCIdentityProvider.backchannelLogout` does) and
//! the browser goes straight on; otherwise the browser is sent there with
//! `id_token_hint`, a `state` and `post_logout_redirect_uri =
//! {realm}/broker/{alias}/endpoint/logout_response`, where the `state`
//! (a one-time key in the session store) leads it on to the application's
//! `post_logout_redirect_uri`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use federa_protocol::jwt::{peek_typ, verify_own_cached};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::sessions::UserSession;
use super::state::{self, digest, public_sid};
use super::{random_token, Broker, RealmInfo};
use crate::model::Upstream;

/// How long a confirmation page may wait for its answer.
const CONFIRM_TTL: Duration = Duration::from_secs(10 * 60);
/// How long the browser may take to come back from the upstream's logout.
const RETURN_TTL: Duration = Duration::from_secs(10 * 60);
/// The limit of a server-to-server upstream logout call.
const UPSTREAM_LOGOUT_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest `id_token_hint` read (Federa's ID tokens are far shorter).
const MAX_HINT: usize = 16 * 1024;
/// The longest value of any other parameter.
const MAX_PARAM: usize = 2 * 1024;

/// What the logout endpoint does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutOutcome {
    /// The session has ended: expire the browser's session cookie, then
    /// redirect to `redirect` (a registered post-logout redirect URI, with
    /// `state`), or show the signed-out page when there is none.
    SignedOut {
        /// Where to send the browser.
        redirect: Option<String>,
    },
    /// Ask the person first: a form posting `token` back to the endpoint.
    Confirm {
        /// The one-time confirmation token, bound to the browser's session.
        token: String,
        /// The application that asked, when it is known and has a name.
        client_name: Option<String>,
    },
}

/// A refused logout request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutError {
    /// The request is not acceptable: tell the person, never redirect.
    Refused {
        /// A short title.
        title: String,
        /// What went wrong, for the person and the application's developer.
        message: String,
    },
    /// Federa failed (logged).
    Internal,
}

fn refused(title: &str, message: impl Into<String>) -> LogoutError {
    LogoutError::Refused { title: title.to_owned(), message: message.into() }
}

fn invalid(message: impl Into<String>) -> LogoutError {
    refused("Invalid sign-out request", message)
}

fn internal(e: impl std::fmt::Display) -> LogoutError {
    log::error!("logout failed on an internal error: {e}");
    LogoutError::Internal
}

/// The store key of a pending confirmation.
fn confirm_key(realm: &str, token: &str) -> String {
    format!("logout:{realm}:{}", digest(token))
}

/// A confirmation page waiting for its answer.
#[derive(Debug, Serialize, Deserialize)]
struct PendingLogout {
    /// The public id of the browser session that was asked.
    browser_sid: String,
    /// The public id of the session the `id_token_hint` named.
    hint_sid: Option<String>,
    /// Where to go afterwards, already checked.
    redirect: Option<String>,
}

/// The store key of a browser's way back from the upstream's logout.
fn return_key(realm: &str, state: &str) -> String {
    format!("logout-return:{realm}:{}", digest(state))
}

/// Where a browser sent to the upstream's logout goes afterwards.
#[derive(Debug, Serialize, Deserialize)]
struct PendingReturn {
    /// The provider it was sent to.
    alias: String,
    /// The application's checked post-logout redirect URI, with its state.
    redirect: Option<String>,
}

/// What a verified `id_token_hint` says.
#[derive(Debug)]
struct IdTokenHint {
    /// The client it was issued to.
    client_id: String,
    /// The public id of its SSO session.
    sid: Option<String>,
}

/// The client an ID token was issued to: its `aud` when that is one
/// client, else its `azp` when `aud` lists it (OIDC Core section 2).
fn audience(claims: &Map<String, Value>) -> Option<String> {
    match claims.get("aud")? {
        Value::String(aud) => Some(aud.clone()),
        Value::Array(list) => {
            let list: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
            match list.as_slice() {
                [only] => Some((*only).to_owned()),
                _ => claims.get("azp").and_then(Value::as_str).filter(|azp| list.contains(azp)).map(str::to_owned),
            }
        }
        _ => None,
    }
}

/// The provider's `logoutUrl` with `id_token_hint` (the session's
/// upstream ID token, unless `sendIdTokenOnLogout` is off) and `client_id`
/// (with `sendClientIdOnLogout`, or when no hint is sent, so the upstream
/// can still check the post-logout redirect URI).
fn upstream_logout_url(idp: &Upstream, s: &UserSession) -> Option<url::Url> {
    let mut url = idp.logout_url.clone()?;
    let hint = s.sso.upstream_id_token.as_ref().filter(|_| idp.send_id_token_on_logout);
    {
        let mut q = url.query_pairs_mut();
        if let Some(token) = hint {
            q.append_pair("id_token_hint", token.expose());
        }
        if idp.send_client_id_on_logout || hint.is_none() {
            q.append_pair("client_id", &idp.client_id);
        }
    }
    Some(url)
}

/// `uri` with `state` added to its query (RFC 6749 appendix B encoding).
fn with_state(uri: &str, state: Option<&str>) -> Result<String, LogoutError> {
    let Some(state) = state else { return Ok(uri.to_owned()) };
    let mut url = url::Url::parse(uri).map_err(|_| invalid("The registered post_logout_redirect_uri is not a URL."))?;
    url.query_pairs_mut().append_pair("state", state);
    Ok(url.to_string())
}

impl Broker {
    /// The logout endpoint (RP-Initiated Logout 1.0 section 2): `params`
    /// are the request's, each sent once; `cookie_sid` is the browser's
    /// session cookie.
    pub async fn logout(
        &self,
        realm: &RealmInfo,
        params: &BTreeMap<String, String>,
        cookie_sid: Option<&str>,
    ) -> Result<LogoutOutcome, LogoutError> {
        for (name, value) in params {
            let max = if name == "id_token_hint" { MAX_HINT } else { MAX_PARAM };
            if value.len() > max {
                return Err(invalid(format!("{name} is longer than {max} bytes.")));
            }
        }
        // `ui_locales` is read and has no effect: Federa's pages are in English.
        let get = |name: &str| params.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let hint = match get("id_token_hint") {
            Some(token) => self.verify_hint(realm, token).await?,
            None => None,
        };
        let client_id = match (&hint, get("client_id")) {
            (Some(h), Some(c)) if h.client_id != c => {
                return Err(invalid("client_id is not the application the id_token_hint was issued to."))
            }
            (Some(h), _) => Some(h.client_id.as_str()),
            (None, c) => c,
        };
        let client = match client_id {
            Some(id) => self.find_client(&realm.name, id).await.map_err(internal)?.filter(|c| c.enabled),
            None => None,
        };
        if client.is_none() {
            if let Some(id) = get("client_id") {
                return Err(refused("Unknown application", format!("There is no application {id:?} in this realm.")));
            }
        }
        let redirect = match get("post_logout_redirect_uri") {
            None => None,
            Some(uri) => {
                let Some(c) = &client else {
                    return Err(invalid(
                        "A post_logout_redirect_uri needs the application to be named by id_token_hint or client_id.",
                    ));
                };
                if !c.post_logout_redirect_uris.iter().any(|registered| registered == uri) {
                    log::warn!(
                        "realm {:?}: client {:?}: unregistered post_logout_redirect_uri",
                        realm.name,
                        c.client_id
                    );
                    return Err(invalid("The post_logout_redirect_uri is not registered for this application."));
                }
                Some(with_state(uri, get("state"))?)
            }
        };

        let browser_sid = match cookie_sid {
            Some(cookie) => self.live_session(realm, &public_sid(cookie)).await?,
            None => None,
        };
        let hint_sid = hint.and_then(|h| h.sid);
        match browser_sid {
            // The hint names this browser's session, or the browser has
            // none: the application asked, nobody else could have.
            Some(b) if hint_sid.as_deref() == Some(b.as_str()) => {
                let ended = self.end_sessions(realm, &[Some(b), hint_sid]).await?;
                self.upstream_logout(realm, &ended, redirect).await
            }
            None => {
                let ended = self.end_sessions(realm, &[hint_sid]).await?;
                self.upstream_logout(realm, &ended, redirect).await
            }
            Some(browser_sid) => {
                let token = random_token();
                let pending = PendingLogout { browser_sid, hint_sid, redirect };
                let json = serde_json::to_string(&pending).map_err(internal)?;
                self.sessions.put(&confirm_key(&realm.name, &token), &json, CONFIRM_TTL).await.map_err(internal)?;
                Ok(LogoutOutcome::Confirm { token, client_name: client.and_then(|c| c.name.clone()) })
            }
        }
    }

    /// The answer of a confirmation page: `token` must be one this
    /// endpoint handed to this browser (its session cookie), unused.
    pub async fn confirm_logout(
        &self,
        realm: &RealmInfo,
        token: &str,
        cookie_sid: Option<&str>,
    ) -> Result<LogoutOutcome, LogoutError> {
        let expired = || {
            refused(
                "Sign-out expired",
                "This sign-out page has expired, was already used or was opened in another browser. \
                 Go back to the application and sign out again.",
            )
        };
        if token.is_empty() || token.len() > MAX_PARAM {
            return Err(expired());
        }
        let stored = self.sessions.take(&confirm_key(&realm.name, token)).await.map_err(internal)?;
        let pending: PendingLogout = match stored {
            Some(json) => serde_json::from_str(&json).map_err(internal)?,
            None => return Err(expired()),
        };
        if cookie_sid.map(public_sid).as_deref() != Some(pending.browser_sid.as_str()) {
            log::warn!("realm {:?}: a logout confirmation came from another browser", realm.name);
            return Err(expired());
        }
        let ended = self.end_sessions(realm, &[Some(pending.browser_sid), pending.hint_sid]).await?;
        self.upstream_logout(realm, &ended, pending.redirect).await
    }

    /// `{realm}/broker/{alias}/endpoint/logout_response`: the browser is
    /// back from the upstream's logout; its `state` (taken once) says where
    /// it goes next. An unknown or used state shows the signed-out page.
    pub async fn upstream_logout_return(
        &self,
        realm: &RealmInfo,
        alias: &str,
        state: Option<&str>,
    ) -> Result<LogoutOutcome, LogoutError> {
        let state = state.filter(|s| !s.is_empty() && s.len() <= MAX_PARAM);
        let stored = match state {
            Some(s) => self.sessions.take(&return_key(&realm.name, s)).await.map_err(internal)?,
            None => None,
        };
        let pending: Option<PendingReturn> = stored.map(|j| serde_json::from_str(&j)).transpose().map_err(internal)?;
        match pending {
            Some(p) if p.alias == alias => Ok(LogoutOutcome::SignedOut { redirect: p.redirect }),
            _ => {
                log::warn!("realm {:?}: a return from {alias:?}'s logout with an unknown or used state", realm.name);
                Ok(LogoutOutcome::SignedOut { redirect: None })
            }
        }
    }

    /// Ends the upstream sessions behind the Federa sessions that ended:
    /// server to server for providers with `backchannelSupported`, else by
    /// sending the browser to the first provider's `logoutUrl` (it comes
    /// back to `logout_response`, then goes on to `redirect`).
    async fn upstream_logout(
        &self,
        realm: &RealmInfo,
        ended: &[UserSession],
        redirect: Option<String>,
    ) -> Result<LogoutOutcome, LogoutError> {
        let mut front: Option<(Arc<Upstream>, &UserSession)> = None;
        for s in ended {
            let Some(idp) = self.idp(&realm.name, &s.sso.idp).await.map_err(internal)? else { continue };
            if idp.logout_url.is_none() {
                continue;
            }
            if idp.backchannel_logout {
                self.upstream_logout_backchannel(realm, &idp, s).await;
            } else if front.is_none() {
                front = Some((idp, s));
            }
        }
        let Some((idp, mut url)) = front.and_then(|(idp, s)| upstream_logout_url(&idp, s).map(|u| (idp, u))) else {
            return Ok(LogoutOutcome::SignedOut { redirect });
        };
        let state = random_token();
        let pending = PendingReturn { alias: idp.alias.clone(), redirect };
        let json = serde_json::to_string(&pending).map_err(internal)?;
        self.sessions.put(&return_key(&realm.name, &state), &json, RETURN_TTL).await.map_err(internal)?;
        let back = format!("{}/logout_response", self.broker_endpoint(&realm.name, &idp.alias));
        url.query_pairs_mut().append_pair("state", &state).append_pair("post_logout_redirect_uri", &back);
        Ok(LogoutOutcome::SignedOut { redirect: Some(url.to_string()) })
    }

    /// Calls the provider's `logoutUrl` server to server (Keycloak's
    /// `backchannelLogout`: a GET with `id_token_hint`). A failure is
    /// logged; the Federa session has ended either way.
    async fn upstream_logout_backchannel(&self, realm: &RealmInfo, idp: &Upstream, s: &UserSession) {
        let Some(url) = upstream_logout_url(idp, s) else { return };
        let sent = self.http.get(url).timeout(UPSTREAM_LOGOUT_TIMEOUT).send().await;
        match sent {
            Ok(r) if r.status().is_success() || r.status().is_redirection() => {
                log::info!("realm {:?}: upstream session at {:?} ended (back channel)", realm.name, idp.alias);
            }
            Ok(r) => log::warn!("realm {:?}: upstream logout at {:?} answered {}", realm.name, idp.alias, r.status()),
            Err(e) => log::warn!("realm {:?}: upstream logout at {:?} failed: {e}", realm.name, idp.alias),
        }
    }

    /// The public id of the session, when it is alive.
    async fn live_session(&self, realm: &RealmInfo, sid: &str) -> Result<Option<String>, LogoutError> {
        let found = self.sessions.get(&state::sso_key_public(&realm.name, sid)).await.map_err(internal)?;
        Ok(found.map(|_| sid.to_owned()))
    }

    /// Ends the SSO sessions named by their public ids; answers those that
    /// were live. Their tokens stop working at once: the access-token check
    /// wants a live session.
    async fn end_sessions(&self, realm: &RealmInfo, sids: &[Option<String>]) -> Result<Vec<UserSession>, LogoutError> {
        let mut seen: Vec<&str> = Vec::new();
        let mut ended = Vec::new();
        for sid in sids.iter().flatten().filter(|s| !s.is_empty()) {
            if seen.contains(&sid.as_str()) {
                continue;
            }
            seen.push(sid);
            if let Some(s) = self.end_session_record(&realm.name, sid).await.map_err(internal)? {
                log::info!(
                    "realm {:?}: SSO session {} ended by RP-initiated logout",
                    realm.name,
                    &sid[..sid.len().min(8)]
                );
                ended.push(s);
            }
        }
        Ok(ended)
    }

    /// An `id_token_hint` that this realm issued: an ID token (not an
    /// access token) signed by a realm key, with the realm's issuer. An
    /// expired one is still accepted (section 2: the OP SHOULD accept ID
    /// Tokens whose `exp` has passed). Anything else is not trusted, and
    /// reads as no hint.
    async fn verify_hint(&self, realm: &RealmInfo, token: &str) -> Result<Option<IdTokenHint>, LogoutError> {
        let untrusted = |why: &str| {
            log::warn!("realm {:?}: an id_token_hint was not trusted: {why}", realm.name);
            Ok(None)
        };
        if peek_typ(token).as_deref() != Some("JWT") {
            return untrusted("not an ID token");
        }
        let keys = self.keys.get(self.store.as_ref(), &realm.name).await.map_err(internal)?;
        let claims = match verify_own_cached(token, &keys.public, &keys.verifiers) {
            Ok(claims) => claims,
            Err(e) => return untrusted(&e.to_string()),
        };
        if claims.get("iss").and_then(Value::as_str) != Some(realm.issuer.as_str()) {
            return untrusted("another issuer");
        }
        let Some(client_id) = audience(&claims) else { return untrusted("no audience") };
        let sid = claims.get("sid").and_then(Value::as_str).map(str::to_owned);
        Ok(Some(IdTokenHint { client_id, sid }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_audience_is_one_client() {
        let claims = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert_eq!(audience(&claims(json!({"aud": "app"}))).as_deref(), Some("app"));
        assert_eq!(audience(&claims(json!({"aud": ["app"]}))).as_deref(), Some("app"));
        assert_eq!(audience(&claims(json!({"aud": ["app", "api"], "azp": "app"}))).as_deref(), Some("app"));
        assert_eq!(audience(&claims(json!({"aud": ["app", "api"], "azp": "evil"}))), None);
        assert_eq!(audience(&claims(json!({"aud": ["app", "api"]}))), None);
        assert_eq!(audience(&claims(json!({"aud": 3}))), None);
        assert_eq!(audience(&claims(json!({}))), None);
    }

    #[test]
    fn the_upstream_logout_url_carries_the_hint_or_the_client_id() {
        let idp = |extra: &[(&str, &str)]| {
            let mut p = crate::repr::IdentityProviderRepresentation {
                alias: Some("corp".into()),
                provider_id: Some("oidc".into()),
                ..Default::default()
            };
            let base =
                [("clientId", "federa"), ("issuer", "https://idp.test"), ("logoutUrl", "https://idp.test/bye?x=1")];
            for (k, v) in base.iter().chain(extra) {
                p.config.insert((*k).into(), (*v).into());
            }
            Upstream::from_repr(&p, "").unwrap_or_else(|e| panic!("{e}"))
        };
        let session = |token: Option<&str>| UserSession {
            id: "p1".into(),
            sso: state::SsoSession {
                user_id: "u1".into(),
                auth_time: 0,
                idp: "corp".into(),
                upstream_sid: None,
                upstream_sub: None,
                link_sub: None,
                started: 0,
                last_access: 0,
                ip_address: String::new(),
                upstream_id_token: token.map(state::UpstreamIdToken::new),
            },
            clients: Vec::new(),
        };
        let url = |idp: &Upstream, s: &UserSession| upstream_logout_url(idp, s).map(|u| u.to_string());
        assert_eq!(
            url(&idp(&[]), &session(Some("h.i.nt"))).as_deref(),
            Some("https://idp.test/bye?x=1&id_token_hint=h.i.nt")
        );
        assert_eq!(url(&idp(&[]), &session(None)).as_deref(), Some("https://idp.test/bye?x=1&client_id=federa"));
        assert_eq!(
            url(&idp(&[("sendClientIdOnLogout", "true")]), &session(Some("t"))).as_deref(),
            Some("https://idp.test/bye?x=1&id_token_hint=t&client_id=federa")
        );
        assert_eq!(
            url(&idp(&[("sendIdTokenOnLogout", "false")]), &session(Some("t"))).as_deref(),
            Some("https://idp.test/bye?x=1&client_id=federa")
        );
        assert_eq!(format!("{:?}", state::UpstreamIdToken::new("secret")), "UpstreamIdToken(***)");
    }

    #[test]
    fn state_is_added_to_the_registered_uri() {
        assert_eq!(with_state("https://app.test/bye", None).ok().as_deref(), Some("https://app.test/bye"));
        assert_eq!(
            with_state("https://app.test/bye?x=1", Some("a b&c")).ok().as_deref(),
            Some("https://app.test/bye?x=1&state=a+b%26c")
        );
        assert!(with_state("not a url", Some("s")).is_err());
    }
}
