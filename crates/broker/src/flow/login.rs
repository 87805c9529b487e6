//! The upstream callback: the state check, the code exchange, ID-token
//! validation (OIDC Core 3.1.3.7), userinfo, and the user created just in
//! time or found through their link (never through a claim the upstream lets
//! users change).

use std::collections::BTreeMap;

use base64::Engine as _;
use federa_protocol::id_token::{self, Expectations, IdTokenError};
use federa_protocol::{ClientAuthMethod, OAuthError, OAuthErrorCode, Secret, SyncMode};
use serde_json::{Map, Value};

use super::authorize::{AuthError, AuthRequest, ClientResponse};
use super::state::{self, SsoSession, UpstreamState};
use super::upstream::Upstream;
use super::{expired, internal, now, random_token, Broker, RealmInfo};
use crate::model::FirstLogin;
use crate::repr::{FederatedIdentityRepresentation, UserRepresentation};
use crate::store::UniqueKey;
use crate::validate;

/// What the callback produced: the answer to the client and the new SSO session.
#[derive(Debug)]
pub struct CallbackOutcome {
    /// The answer to the client.
    pub response: ClientResponse,
    /// The SSO session id for the browser's cookie.
    pub sid: String,
    /// Its lifetime, seconds.
    pub max_age: i64,
}

/// OAuth errors an upstream may send that mean the same to the client.
const PASSED_THROUGH: &[(&str, OAuthErrorCode)] = &[
    ("access_denied", OAuthErrorCode::AccessDenied),
    ("login_required", OAuthErrorCode::LoginRequired),
    ("interaction_required", OAuthErrorCode::InteractionRequired),
    ("consent_required", OAuthErrorCode::InteractionRequired),
    ("account_selection_required", OAuthErrorCode::InteractionRequired),
    ("temporarily_unavailable", OAuthErrorCode::TemporarilyUnavailable),
];

fn failed(alias: &str, realm: &str, why: impl std::fmt::Display) -> AuthError {
    log::warn!("realm {realm:?}: sign-in through {alias:?} refused: {why}");
    AuthError::page(
        "Sign-in failed",
        "The identity provider's answer could not be accepted. Please try again; if it keeps failing, tell your administrator.",
    )
}

impl Broker {
    /// The redirect URI registered upstream (`/broker/{alias}/endpoint`).
    pub async fn callback(
        &self,
        realm: &RealmInfo,
        alias: &str,
        params: &BTreeMap<String, String>,
        browser_flow: Option<&str>,
    ) -> Result<CallbackOutcome, AuthError> {
        let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let state_value = get("state").ok_or_else(|| {
            log::warn!("realm {:?}: callback of {alias:?} without state", realm.name);
            AuthError::page("Invalid sign-in response", "The identity provider's answer carries no state.")
        })?;
        // Single use: a replayed state finds nothing.
        let st: UpstreamState = self.take_json(&state::upstream_key(state_value)).await?.ok_or_else(|| {
            log::warn!("realm {:?}: callback of {alias:?} with an unknown, expired or replayed state", realm.name);
            expired()
        })?;
        if st.realm != realm.name || st.alias != alias {
            log::warn!("realm {:?}: state issued for {:?}/{:?} came back to {alias:?}", realm.name, st.realm, st.alias);
            return Err(expired());
        }
        if browser_flow != Some(st.flow_id.as_str()) {
            log::warn!("realm {:?}: callback of {alias:?} in a browser that did not start the sign-in", realm.name);
            return Err(AuthError::page(
                "Sign-in expired",
                "This sign-in was started in another browser or has expired. Go back to the application and try again.",
            ));
        }
        let req: AuthRequest = st.request;
        if req.realm != realm.name {
            return Err(expired());
        }
        let idp =
            self.idp(&realm.name, alias).await.map_err(internal)?.filter(|p| p.can_sign_in()).ok_or_else(|| {
                log::warn!("realm {:?}: callback of {alias:?}, which is disabled, link-only or gone", realm.name);
                expired()
            })?;
        super::refuse_unsupported(&realm.name, &idp)?;
        let up = self.upstreams.resolve(&self.http, &idp).await.map_err(|e| failed(alias, &realm.name, e))?;

        // RFC 9207: an `iss` that is there must be the upstream's; one that
        // the upstream promised must be there.
        match (get("iss"), &up.issuer) {
            (Some(iss), Some(expected)) if iss != expected => {
                return Err(failed(alias, &realm.name, format!("iss {iss:?} in the response, expected {expected:?}")))
            }
            (None, Some(_)) if up.sends_iss => {
                return Err(failed(alias, &realm.name, "the response lacks the iss its metadata promises"))
            }
            _ => {}
        }
        if let Some(error) = get("error") {
            let code = PASSED_THROUGH
                .iter()
                .find(|(e, _)| *e == error)
                .map(|(_, c)| *c)
                .unwrap_or(OAuthErrorCode::AccessDenied);
            let description =
                get("error_description").map(str::to_owned).unwrap_or_else(|| format!("{alias}: {error}"));
            log::warn!(
                "realm {:?}: identity provider {alias:?} /authorize answered error={error:?} error_description={description:?}; \
                 passed to client {:?} as {}",
                realm.name,
                req.client_id,
                serde_json::to_value(code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
            );
            return Err(AuthError::Client(req.error(&realm.issuer, OAuthError::new(code, description))));
        }
        let code = get("code").ok_or_else(|| failed(alias, &realm.name, "neither code nor error in the response"))?;

        let tokens = self.exchange(&up, realm, code, st.verifier.as_deref()).await?;
        let id_token = tokens
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| failed(alias, &realm.name, "the token response has no id_token"))?;
        // A client's max_age that travelled upstream is checked against the upstream's auth_time.
        let max_age = req.max_age.filter(|_| up.pass_max_age);
        let verified = self.verify_id_token(&up, realm, id_token, st.nonce.as_deref(), max_age).await?;
        let mut claims = verified.claims().clone();
        if let Some(url) = &up.userinfo_url {
            let access = tokens.get("access_token").and_then(Value::as_str).unwrap_or_default();
            let info = self.userinfo_upstream(&up, realm, url, access).await?;
            if info.get("sub").and_then(Value::as_str) != Some(verified.subject()) {
                return Err(failed(alias, &realm.name, "userinfo sub differs from the ID token's"));
            }
            for (k, v) in info {
                claims.entry(k).or_insert(v);
            }
        }
        let token_json = up.store_token.then(|| Value::Object(tokens.clone()).to_string());
        let user_id = self.sync_user(realm, &up, verified.subject(), &claims, token_json).await?;

        let sid = random_token();
        let now = now();
        // The user authenticated when the upstream says, not when its answer arrived.
        let auth_time =
            verified.claims().get("auth_time").and_then(Value::as_i64).filter(|t| *t > 0).map_or(now, |t| t.min(now));
        let sso = SsoSession { user_id: user_id.clone(), auth_time, idp: alias.to_owned() };
        self.put_json(&state::sso_key(&realm.name, &sid), &sso, realm.sso_max).await?;
        let response = self.issue_code(realm, &req, &user_id, auth_time, &sid).await?;
        Ok(CallbackOutcome { response, sid, max_age: secs(realm.sso_max) })
    }

    async fn exchange(
        &self,
        up: &Upstream,
        realm: &RealmInfo,
        code: &str,
        verifier: Option<&str>,
    ) -> Result<Map<String, Value>, AuthError> {
        let redirect_uri = self.broker_endpoint(&realm.name, &up.alias);
        let mut form: Vec<(&str, &str)> =
            vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", &redirect_uri)];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        let secret = up.client_secret.as_ref().map(Secret::expose).unwrap_or_default();
        let mut request = self.http.post(&up.token_url).header("Accept", "application/json");
        match up.auth_method {
            ClientAuthMethod::SecretBasic => {
                // RFC 6749 section 2.3.1: both parts form-urlencoded first.
                let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair = format!("{}:{}", enc(&up.client_id), enc(secret));
                let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
                request = request.header("Authorization", format!("Basic {b64}"));
            }
            ClientAuthMethod::SecretPost => {
                form.push(("client_id", &up.client_id));
                form.push(("client_secret", secret));
            }
            other => {
                return Err(failed(&up.alias, &realm.name, format!("clientAuthMethod {other} is not supported yet")));
            }
        }
        let resp = request.form(&form).send().await.map_err(|e| {
            failed(&up.alias, &realm.name, format!("token endpoint {} cannot be reached: {e}", up.token_url))
        })?;
        let status = resp.status();
        let body: Value = super::upstream::read_json(resp).await.unwrap_or(Value::Null);
        if !status.is_success() {
            let error = body.get("error").and_then(Value::as_str).unwrap_or("?");
            let desc = body.get("error_description").and_then(Value::as_str).unwrap_or("");
            let hint = if error == "invalid_client" || status.as_u16() == 401 {
                "; check the provider's clientId, clientSecret and clientAuthMethod"
            } else {
                ""
            };
            return Err(failed(
                &up.alias,
                &realm.name,
                format!(
                    "token endpoint {} answered {status}: error={error:?} error_description={desc:?}{hint}",
                    up.token_url
                ),
            ));
        }
        match body {
            Value::Object(m) => Ok(m),
            _ => Err(failed(&up.alias, &realm.name, "the token response is not a JSON object")),
        }
    }

    async fn verify_id_token(
        &self,
        up: &Upstream,
        realm: &RealmInfo,
        token: &str,
        nonce: Option<&str>,
        max_age: Option<i64>,
    ) -> Result<federa_protocol::VerifiedIdToken, AuthError> {
        let issuer = up.issuer.as_deref().ok_or_else(|| {
            failed(&up.alias, &realm.name, "no issuer is configured or discovered, so ID tokens cannot be checked")
        })?;
        let jwks_url = up
            .jwks_url
            .as_deref()
            .ok_or_else(|| failed(&up.alias, &realm.name, "no jwksUrl configured or discovered"))?;
        let jwks =
            self.upstreams.jwks(&self.http, jwks_url, false).await.map_err(|e| failed(&up.alias, &realm.name, e))?;
        let skew = secs(up.clock_skew);
        let checked = verify_off_worker(token, jwks, issuer, &up.client_id, nonce, skew, max_age).await;
        match checked.map_err(internal)? {
            Err(IdTokenError::UnknownKey(_)) => {
                let jwks = self
                    .upstreams
                    .jwks(&self.http, jwks_url, true)
                    .await
                    .map_err(|e| failed(&up.alias, &realm.name, e))?;
                verify_off_worker(token, jwks, issuer, &up.client_id, nonce, skew, max_age)
                    .await
                    .map_err(internal)?
                    .map_err(|e| failed(&up.alias, &realm.name, format!("ID token: {e}")))
            }
            other => other.map_err(|e| failed(&up.alias, &realm.name, format!("ID token: {e}"))),
        }
    }

    async fn userinfo_upstream(
        &self,
        up: &Upstream,
        realm: &RealmInfo,
        url: &str,
        access_token: &str,
    ) -> Result<Map<String, Value>, AuthError> {
        let resp = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| failed(&up.alias, &realm.name, format!("userinfo {url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(failed(&up.alias, &realm.name, format!("userinfo {url} answered {}", resp.status())));
        }
        match super::upstream::read_json::<Value>(resp).await {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(failed(&up.alias, &realm.name, format!("userinfo {url} did not answer a JSON object"))),
        }
    }

    /// An email address another user of the realm already has is kept, but
    /// never as verified: otherwise any upstream could hand out a verified
    /// copy of someone else's address, and apps that match accounts by
    /// email would let its holder in.
    async fn unverify_shared_email(&self, realm: &RealmInfo, user: &mut UserRepresentation) -> Result<(), AuthError> {
        let Some(email) = user.email.clone() else { return Ok(()) };
        if user.email_verified != Some(true) {
            return Ok(());
        }
        let q =
            crate::store::UserQuery { email: Some(email.clone()), first: 0, max: 2, exact: true, ..Default::default() };
        let others = self.store.search_users(&realm.name, &q).await.map_err(internal)?;
        if others.iter().any(|o| o.email.as_deref() == Some(email.as_str()) && o.id != user.id) {
            log::warn!(
                "realm {:?}: {email:?} already belongs to another user; {:?} gets it unverified",
                realm.name,
                user.username
            );
            user.email_verified = Some(false);
        }
        Ok(())
    }

    /// Finds the user linked to the upstream subject, or creates them; applies the sync mode.
    async fn sync_user(
        &self,
        realm: &RealmInfo,
        up: &Upstream,
        subject: &str,
        claims: &Map<String, Value>,
        token_json: Option<String>,
    ) -> Result<String, AuthError> {
        let s = |k: &str| claims.get(k).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned);
        let email_verified = email_verified(up.trust_email, claims);
        let apply = |u: &mut UserRepresentation| {
            u.email = s("email").map(|e| e.to_lowercase());
            u.email_verified = Some(u.email.is_some() && email_verified);
            u.first_name = s("given_name");
            u.last_name = s("family_name");
            if u.first_name.is_none() && u.last_name.is_none() {
                u.first_name = s("name");
            }
        };
        if let Some(mut user) = self.store.find_user_by_link(&realm.name, &up.alias, subject).await.map_err(internal)? {
            if user.enabled == Some(false) {
                log::info!("realm {:?}: disabled user {:?} tried to sign in", realm.name, user.username);
                return Err(AuthError::page(
                    "Account disabled",
                    "Your account is disabled. Contact your administrator.",
                ));
            }
            if up.sync_mode == SyncMode::Force {
                apply(&mut user);
                self.unverify_shared_email(realm, &mut user).await?;
                if validate::user(&mut user, "", 0).is_ok() {
                    self.store.update_user(&realm.name, &user).await.map_err(internal)?;
                }
            }
            return Ok(user.id.unwrap_or_default());
        }
        match &up.first_login {
            FirstLogin::CreateUser => {}
            policy => {
                let flow = match policy {
                    FirstLogin::Unknown(f) => f.clone(),
                    _ => "federa-known-users".to_owned(),
                };
                log::warn!(
                    "realm {:?}: first sign-in of {:?} subject {subject:?} refused: firstBrokerLoginFlowAlias {flow:?} is not supported yet",
                    realm.name,
                    up.alias
                );
                return Err(AuthError::page(
                    "Sign-in not permitted",
                    format!(
                        "Your account is not known here, and the first-login flow {flow:?} configured for {} lets no new account in. Ask your administrator.",
                        up.display_name
                    ),
                ));
            }
        }
        let username = s("preferred_username").unwrap_or_else(|| subject.to_owned());
        let mut user =
            UserRepresentation { username: Some(username.clone()), enabled: Some(true), ..Default::default() };
        apply(&mut user);
        if validate::user(&mut user, "", now() * 1000).is_err() {
            // An upstream email Federa cannot accept is dropped, not fatal.
            user.email = None;
            user.email_verified = Some(false);
            validate::user(&mut user, "", now() * 1000).map_err(|e| failed(&up.alias, &realm.name, e))?;
        }
        let user_id = user.id.clone().unwrap_or_default();
        let link = FederatedIdentityRepresentation {
            identity_provider: Some(up.alias.clone()),
            user_id: Some(subject.to_owned()),
            user_name: s("preferred_username"),
            ..Default::default()
        };
        let token = token_json.map(Secret::new);
        match self.store.create_linked_user(&realm.name, &user, &link, token.as_ref()).await {
            Ok(unverified) => {
                if unverified {
                    log::warn!(
                        "realm {:?}: {:?} already belongs to another user; {username:?} gets it unverified",
                        realm.name,
                        user.email
                    );
                }
            }
            Err(e) if matches!(e.unique_key(), Some(UniqueKey::Username | UniqueKey::FederatedLink)) => {
                // Either the same person signing in twice at once (their link
                // now exists), or another account already has the username;
                // any other conflict is a fault, not a taken name.
                if let Some(u) =
                    self.store.find_user_by_link(&realm.name, &up.alias, subject).await.map_err(internal)?
                {
                    return Ok(u.id.unwrap_or_default());
                }
                if e.unique_key() != Some(UniqueKey::Username) {
                    return Err(internal(e));
                }
                log::warn!(
                    "realm {:?}: {:?} subject {subject:?} wants username {username:?}, which another account holds",
                    realm.name,
                    up.alias
                );
                return Err(AuthError::page(
                    "Account already exists",
                    "An account with your username already exists here. Ask an administrator to link it to this identity provider.",
                ));
            }
            Err(e) => return Err(internal(e)),
        }
        log::info!("realm {:?}: created user {username:?} from {:?}", realm.name, up.alias);
        Ok(user_id)
    }
}

/// Whether an upstream's email address is stored as verified (INTERFACE
/// section 3, Keycloak's meaning): only when the provider is trusted for
/// email (`trustEmail`) and does not itself say `email_verified: false`.
/// Without `trustEmail`, an upstream's `email_verified: true` is not enough:
/// any upstream user could claim any address.
pub(crate) fn email_verified(trust_email: bool, claims: &Map<String, Value>) -> bool {
    trust_email && claims.get("email_verified").and_then(Value::as_bool) != Some(false)
}

/// Whole seconds of a duration, for claims and cookies.
pub(crate) fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Verifies an upstream ID token on the blocking pool: a signature check is
/// tens to hundreds of microseconds of CPU, too long for an async worker.
async fn verify_off_worker(
    token: &str,
    jwks: Value,
    issuer: &str,
    client_id: &str,
    nonce: Option<&str>,
    clock_skew: i64,
    max_age: Option<i64>,
) -> Result<Result<federa_protocol::VerifiedIdToken, IdTokenError>, tokio::task::JoinError> {
    let (token, issuer, client_id, nonce) =
        (token.to_owned(), issuer.to_owned(), client_id.to_owned(), nonce.map(str::to_owned));
    tokio::task::spawn_blocking(move || {
        let exp = Expectations {
            issuer: &issuer,
            client_id: &client_id,
            nonce: nonce.as_deref(),
            allowed_algs: id_token::DEFAULT_ALGS,
            client_secret: None,
            now: now(),
            clock_skew,
            max_age,
        };
        id_token::verify(&token, &jwks, &exp)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_is_verified_only_by_a_trusted_provider_that_does_not_deny_it() {
        let claims = |v: Value| match v {
            Value::Null => Map::new(),
            v => [("email_verified".to_owned(), v)].into_iter().collect(),
        };
        let cases = [
            (false, Value::Bool(true), false),
            (false, Value::Null, false),
            (true, Value::Bool(true), true),
            (true, Value::Null, true),
            (true, Value::Bool(false), false),
        ];
        for (trust, upstream, expected) in cases {
            assert_eq!(email_verified(trust, &claims(upstream.clone())), expected, "trustEmail={trust} {upstream}");
        }
    }
}
