//! The upstream callback: the state check, the code exchange, ID-token
//! validation (OIDC Core 3.1.3.7), userinfo, and the user created just in
//! time or found through their link (never through a claim the upstream lets
//! users change).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use federa_protocol::client_assertion;
use federa_protocol::id_token::{self, Expectations, IdTokenError};
use federa_protocol::jwt::VerifierCache;
use federa_protocol::{ClientAuthMethod, OAuthError, OAuthErrorCode, Secret, SyncMode};
use serde_json::{Map, Value};

use super::authorize::{AuthError, AuthRequest, ClientResponse};
use super::state::{self, SsoSession, UpstreamState};
use super::upstream::Upstream;
use super::{expired, internal, now, random_token, Broker, RealmInfo, CODE_TTL};
use crate::model::FirstLogin;
use crate::repr::{FederatedIdentityRepresentation, UserRepresentation};
use crate::store::{EntriesFor, Entry, EntryKind, Profile, SignIn, SignedIn, UniqueKey};
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
        ip_address: &str,
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
        // The essential claim (`filteredByClaim`): checked on everything the
        // upstream said, before anything is created or updated.
        if let Some(filter) = up.claim_filter.as_ref().filter(|f| !f.accepts(&claims)) {
            log::warn!(
                "realm {:?}: sign-in through {alias:?} of subject {:?} refused: claim {:?} does not match the provider's claimFilterValue",
                realm.name,
                verified.subject(),
                filter.name
            );
            if req.has_prompt("none") {
                let error = OAuthError::new(OAuthErrorCode::AccessDenied, "the user is not permitted to sign in");
                return Err(AuthError::Client(req.error(&realm.issuer, error)));
            }
            return Err(AuthError::page(
                "Sign-in not permitted",
                format!(
                    "Your account at {} is not permitted to sign in here. Ask your administrator.",
                    up.display_name
                ),
            ));
        }
        let token_json = up.store_token.then(|| Value::Object(tokens.clone()).to_string());

        let sid = random_token();
        let code = random_token();
        let now = now();
        let upstream_auth_time = verified.claims().get("auth_time").and_then(Value::as_i64).filter(|t| *t > 0);
        // A forwarded prompt=none with a max_age the upstream was not told
        // (passMaxAge off) came back from the upstream's session, of any age:
        // it stands only on an auth_time within max_age (never for max_age=0,
        // as in `authorize`), else the client hears login_required.
        let unproven = |m: i64| !upstream_auth_time.is_some_and(|t| m > 0 && now - t <= m + secs(up.clock_skew));
        if req.has_prompt("none") && !up.pass_max_age && req.max_age.is_some_and(unproven) {
            log::info!("realm {:?}: {alias:?} answered prompt=none without an auth_time within max_age", realm.name);
            let error = OAuthError::new(OAuthErrorCode::LoginRequired, "no authentication within max_age");
            return Err(AuthError::Client(req.error(&realm.issuer, error)));
        }
        // The user authenticated when the upstream says, not when its answer arrived.
        let auth_time = upstream_auth_time.map_or(now, |t| t.min(now));
        // The SSO session (with its index members) and the code are written
        // with the user, in one trip.
        let template = super::sessions::opened(alias, &verified, auth_time, now, ip_address);
        let entries = {
            let (realm_name, sso_ttl) = (realm.name.clone(), realm.sso_max);
            let (sid, code, req) = (sid.clone(), code.clone(), req.clone());
            move |user_id: &str| {
                let sso = SsoSession { user_id: user_id.to_owned(), ..template.clone() };
                let grant = super::code_grant(&req, user_id, auth_time, &sid);
                let (value, code_value) = (EntryKind::Value, to_json(&grant));
                let mut all = vec![
                    Entry { key: state::sso_key(&realm_name, &sid), value: to_json(&sso), ttl: sso_ttl, kind: value },
                    Entry { key: state::code_key(&realm_name, &code), value: code_value, ttl: CODE_TTL, kind: value },
                ];
                all.extend(super::sessions::index_entries(&realm_name, &state::public_sid(&sid), &sso, sso_ttl));
                all
            }
        };
        self.sign_in_user(realm, &up, verified.subject(), &claims, token_json, Arc::new(entries)).await?;
        let response = super::code_response(realm, &req, code);
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
        let assertion = match up.auth_method {
            ClientAuthMethod::SecretJwt | ClientAuthMethod::PrivateKeyJwt => {
                Some(self.client_assertion(up, realm).await?)
            }
            ClientAuthMethod::SecretBasic | ClientAuthMethod::SecretPost => None,
        };
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
            ClientAuthMethod::SecretJwt | ClientAuthMethod::PrivateKeyJwt => {
                form.push(("client_id", &up.client_id));
                form.push(("client_assertion_type", client_assertion::ASSERTION_TYPE));
                form.push(("client_assertion", assertion.as_deref().unwrap_or_default()));
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

    /// A client assertion for the upstream's token endpoint (OIDC Core
    /// section 9): signed with the client secret (client_secret_jwt) or the
    /// realm's key, which the realm's JWKS publishes (private_key_jwt).
    async fn client_assertion(&self, up: &Upstream, realm: &RealmInfo) -> Result<String, AuthError> {
        let claims = client_assertion::claims(&up.client_id, &up.token_url, &random_token(), now());
        let signed = match up.auth_method {
            ClientAuthMethod::SecretJwt => {
                let alg = up.assertion_alg.as_deref().unwrap_or("HS256");
                let secret = up.client_secret.as_ref().map(Secret::expose).unwrap_or_default();
                client_assertion::sign_with_secret(alg, secret, &claims)
            }
            _ => {
                let keys = self.keys.get(self.store.as_ref(), &realm.name).await.map_err(internal)?;
                if let Some(alg) = up.assertion_alg.as_deref().filter(|a| *a != keys.signer.alg()) {
                    return Err(failed(
                        &up.alias,
                        &realm.name,
                        format!(
                            "clientAssertionSigningAlg {alg} differs from the realm key's algorithm {}; private_key_jwt signs with the realm key",
                            keys.signer.alg()
                        ),
                    ));
                }
                keys.signer.sign("JWT", &claims)
            }
        };
        signed.map_err(|e| failed(&up.alias, &realm.name, format!("the client assertion cannot be signed: {e}")))
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
        if let Some(static_jwks) = &up.static_jwks {
            // The one key the admin configured: no JWKS is fetched, and a
            // configured key id must be the token's.
            if let Some(kid) = &up.static_kid {
                let named = id_token::peek_kid(token);
                if named.as_deref() != Some(kid.as_str()) {
                    return Err(failed(
                        &up.alias,
                        &realm.name,
                        format!("ID token: its kid {named:?} is not publicKeySignatureVerifierKeyId {kid:?}"),
                    ));
                }
            }
            let skew = secs(up.clock_skew);
            let check = Check {
                issuer: issuer.to_owned(),
                client_id: up.client_id.clone(),
                nonce: nonce.map(str::to_owned),
                clock_skew: skew,
                max_age,
            };
            return verify_off_worker(token, static_jwks.clone(), check, self.upstreams.verifiers())
                .await
                .map_err(internal)?
                .map_err(|e| failed(&up.alias, &realm.name, format!("ID token: {e}")));
        }
        let jwks_url = up
            .jwks_url
            .as_deref()
            .ok_or_else(|| failed(&up.alias, &realm.name, "no jwksUrl configured or discovered"))?;
        let jwks =
            self.upstreams.jwks(&self.http, jwks_url, false).await.map_err(|e| failed(&up.alias, &realm.name, e))?;
        let skew = secs(up.clock_skew);
        let check = || Check {
            issuer: issuer.to_owned(),
            client_id: up.client_id.clone(),
            nonce: nonce.map(str::to_owned),
            clock_skew: skew,
            max_age,
        };
        let verifiers = self.upstreams.verifiers();
        let checked = verify_off_worker(token, jwks, check(), verifiers.clone()).await;
        match checked.map_err(internal)? {
            Err(IdTokenError::UnknownKey(_)) => {
                let jwks = self
                    .upstreams
                    .jwks(&self.http, jwks_url, true)
                    .await
                    .map_err(|e| failed(&up.alias, &realm.name, e))?;
                verify_off_worker(token, jwks, check(), verifiers)
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

    /// Finds the user linked to the upstream subject, or creates them with
    /// their link; applies the sync mode; writes the session `entries`. An
    /// email address another user of the realm has is kept, but never as
    /// verified: otherwise any upstream could hand out a verified copy of
    /// someone else's address.
    async fn sign_in_user(
        &self,
        realm: &RealmInfo,
        up: &Upstream,
        subject: &str,
        claims: &Map<String, Value>,
        token_json: Option<String>,
        entries: EntriesFor,
    ) -> Result<String, AuthError> {
        let s = |k: &str| claims.get(k).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned);
        let mut profile = Profile {
            email: s("email").map(|e| e.to_lowercase()),
            email_verified: email_verified(up.trust_email, claims),
            first_name: s("given_name"),
            last_name: s("family_name"),
        };
        if profile.first_name.is_none() && profile.last_name.is_none() {
            profile.first_name = s("name");
        }
        if let Some(email) = &profile.email {
            // An upstream email Federa cannot accept is dropped, not fatal.
            let mut probe =
                UserRepresentation { username: Some("probe".into()), email: Some(email.clone()), ..Default::default() };
            if validate::user(&mut probe, "", 0).is_err() {
                profile.email = None;
            }
        }
        // The provider's mappers: the link's subject and username now, the
        // user's changes inside the write (flow::mapping).
        let mappers = self.mappers(&realm.name, &up.alias).await.map_err(internal)?;
        let mapping = super::mapping::apply_mappers(mappers, claims, &up.alias, up.sync_mode, subject);
        let subject = mapping.subject.as_str();
        let username = s("preferred_username").unwrap_or_else(|| subject.to_owned());
        let new_user = match &up.first_login {
            FirstLogin::CreateUser => {
                let mut user =
                    UserRepresentation { username: Some(username.clone()), enabled: Some(true), ..Default::default() };
                profile.apply(&mut user);
                validate::user(&mut user, "", now() * 1000).map_err(|e| failed(&up.alias, &realm.name, e))?;
                Some(user)
            }
            _ => None,
        };
        let write = SignIn {
            realm: realm.name.clone(),
            alias: up.alias.clone(),
            subject: subject.to_owned(),
            profile,
            force: up.sync_mode == SyncMode::Force,
            new_user,
            link: FederatedIdentityRepresentation {
                identity_provider: Some(up.alias.clone()),
                user_id: Some(subject.to_owned()),
                user_name: mapping.link_username.clone().or_else(|| s("preferred_username")),
                ..Default::default()
            },
            token: token_json.map(Secret::new),
            entries: entries.clone(),
            mappers: mapping.map.clone(),
        };
        match self.sign_in.sign_in(write).await {
            Ok(SignedIn::User { user_id, created, email_unverified, skipped_roles }) => {
                if !skipped_roles.is_empty() {
                    // As Keycloak's hardcoded-role mapper does: logged and skipped.
                    log::warn!(
                        "realm {:?}: mappers of {:?} name roles the realm does not have, skipped: {skipped_roles:?}",
                        realm.name,
                        up.alias
                    );
                }
                if email_unverified {
                    log::warn!(
                        "realm {:?}: the address of {username:?} already belongs to another user; it is stored unverified",
                        realm.name
                    );
                }
                if created {
                    log::info!("realm {:?}: created user {username:?} from {:?}", realm.name, up.alias);
                }
                Ok(user_id)
            }
            Ok(SignedIn::Disabled) => {
                log::info!(
                    "realm {:?}: disabled user linked to {:?} subject {subject:?} tried to sign in",
                    realm.name,
                    up.alias
                );
                Err(AuthError::page("Account disabled", "Your account is disabled. Contact your administrator."))
            }
            Ok(SignedIn::FirstLoginRefused) => {
                let flow = match &up.first_login {
                    FirstLogin::Unknown(f) => f.clone(),
                    _ => "federa-known-users".to_owned(),
                };
                log::warn!(
                    "realm {:?}: first sign-in of {:?} subject {subject:?} refused: firstBrokerLoginFlowAlias {flow:?} is not supported yet",
                    realm.name,
                    up.alias
                );
                Err(AuthError::page(
                    "Sign-in not permitted",
                    format!(
                        "Your account is not known here, and the first-login flow {flow:?} configured for {} lets no new account in. Ask your administrator.",
                        up.display_name
                    ),
                ))
            }
            Err(e) if matches!(e.unique_key(), Some(UniqueKey::Username | UniqueKey::FederatedLink)) => {
                // Either the same person signing in twice at once (their link
                // now exists: nothing of this attempt was written, so it is
                // written now), or another account already has the username;
                // any other conflict is a fault, not a taken name.
                if let Some(u) =
                    self.store.find_user_by_link(&realm.name, &up.alias, subject).await.map_err(internal)?
                {
                    let user_id = u.id.unwrap_or_default();
                    self.sessions.put_many(entries(&user_id)).await.map_err(internal)?;
                    return Ok(user_id);
                }
                if e.unique_key() != Some(UniqueKey::Username) {
                    return Err(internal(e));
                }
                log::warn!(
                    "realm {:?}: {:?} subject {subject:?} wants username {username:?}, which another account holds",
                    realm.name,
                    up.alias
                );
                Err(AuthError::page(
                    "Account already exists",
                    "An account with your username already exists here. Ask an administrator to link it to this identity provider.",
                ))
            }
            Err(e) => Err(internal(e)),
        }
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

/// A value for the session store. The values written here (sessions, code
/// grants) are plain strings and numbers, which always serialise.
fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Whole seconds of a duration, for claims and cookies.
pub(crate) fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// What an upstream ID token is checked against, owned for the blocking pool.
struct Check {
    issuer: String,
    client_id: String,
    nonce: Option<String>,
    clock_skew: i64,
    max_age: Option<i64>,
}

/// Verifies an upstream ID token on the blocking pool (a signature check is
/// tens to hundreds of microseconds of CPU, too long for an async worker),
/// with the upstream's keys parsed once (`verifiers`).
async fn verify_off_worker(
    token: &str,
    jwks: Value,
    check: Check,
    verifiers: Arc<VerifierCache>,
) -> Result<Result<federa_protocol::VerifiedIdToken, IdTokenError>, tokio::task::JoinError> {
    let token = token.to_owned();
    tokio::task::spawn_blocking(move || {
        let exp = Expectations {
            issuer: &check.issuer,
            client_id: &check.client_id,
            nonce: check.nonce.as_deref(),
            allowed_algs: id_token::DEFAULT_ALGS,
            client_secret: None,
            now: now(),
            clock_skew: check.clock_skew,
            max_age: check.max_age,
        };
        id_token::verify_cached(&token, &jwks, &exp, &verifiers)
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
