//! The upstream callback: the state check, the code exchange, ID-token
//! validation (OIDC Core 3.1.3.7), userinfo, and the user created just in
//! time or found through their link (never through a claim the upstream lets
//! users change).

use std::collections::BTreeMap;
use std::sync::Arc;

use federa_protocol::id_token::{self, Expectations, IdTokenError};
use federa_protocol::jwt::VerifierCache;
use federa_protocol::{OAuthError, OAuthErrorCode, Secret, SyncMode};
use serde_json::{Map, Value};

use super::authorize::{AuthError, AuthRequest, ClientResponse};
use super::state::{self, SsoSession, UpstreamState};
use super::upstream::Upstream;
use super::{expired, internal, now, random_token, Broker, RealmInfo, CODE_TTL};
use crate::model::FirstLogin;
use crate::repr::{FederatedIdentityRepresentation, UserRepresentation};
use crate::store::{EntriesFor, Entry, EntryKind, Profile, SignIn, SignedIn, UniqueKey};
use crate::validate;

/// The session entries of a sign-in for a user id and the subject their
/// link is kept under (known once the mappers ran).
type EntriesForLink = Arc<dyn Fn(&str, &str) -> Vec<Entry> + Send + Sync>;

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
        // A client's max_age is checked below, against the upstream's
        // auth_time, so that a failure reaches the app as an OAuth error.
        let verified = self.verify_id_token(&up, realm, id_token, st.nonce.as_deref()).await?;
        // isAccessTokenJWT: the access token is checked as a JWT (a sign-in
        // with an opaque or invalid one is refused) and its claims reach the
        // mappers with the lowest priority, after the ID token's and userinfo's.
        let access_token_claims = if up.access_token_jwt {
            self.verify_access_token(&up, realm, tokens.get("access_token").and_then(Value::as_str)).await?
        } else {
            Map::new()
        };
        let mut claims = verified.claims().clone();
        if let Some(url) = &up.userinfo_url {
            let access = tokens.get("access_token").and_then(Value::as_str).unwrap_or_default();
            let info = self.userinfo_upstream(&up, realm, url, access).await?;
            if info.get("sub").and_then(Value::as_str) != Some(verified.subject()) {
                return Err(failed(alias, &realm.name, "userinfo sub differs from the ID token's"));
            }
            let email_verified = email_verified_of_its_source(verified.claims(), &info);
            for (k, v) in info {
                claims.entry(k).or_insert(v);
            }
            match email_verified {
                Some(v) => claims.insert("email_verified".into(), v),
                None => claims.remove("email_verified"),
            };
        }
        for (k, v) in access_token_claims {
            claims.entry(k).or_insert(v);
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
        let token_json = up.store_token.then(|| super::broker_token::to_store(&tokens, now()));

        let sid = random_token();
        let code = random_token();
        let now = now();
        let upstream_auth_time = verified.claims().get("auth_time").and_then(Value::as_i64).filter(|t| *t > 0);
        // The client's max_age holds whatever the provider's passMaxAge:
        // an answer whose authentication is older is refused, to the app.
        let started = if st.started > 0 { st.started.min(now) } else { now };
        if let Some(why) = max_age_unmet(&req, up.pass_max_age, upstream_auth_time, started, secs(up.clock_skew)) {
            log::info!("realm {:?}: the answer of {alias:?} does not meet the client's max_age: {why}", realm.name);
            let error = OAuthError::new(OAuthErrorCode::LoginRequired, "no authentication within max_age");
            return Err(AuthError::Client(req.error(&realm.issuer, error)));
        }
        // The user authenticated when the upstream says, not when its answer arrived.
        let auth_time = upstream_auth_time.map_or(now, |t| t.min(now));
        // The SSO session (with its index members) and the code are written
        // with the user, in one trip.
        let mut template = super::sessions::opened(alias, &verified, auth_time, now, ip_address);
        // Upstream logout sends it back as `id_token_hint`.
        if up.logout_url.is_some() {
            template.upstream_id_token = Some(state::UpstreamIdToken::new(id_token));
        }
        let entries = {
            let (realm_name, sso_ttl) = (realm.name.clone(), realm.sso_max);
            let (sid, code, req) = (sid.clone(), code.clone(), req.clone());
            move |user_id: &str, link_sub: &str| {
                // The link's subject, when a BROKER_ID mapper made it differ:
                // SSO reuse finds the user through it.
                let link_sub = (template.upstream_sub.as_deref() != Some(link_sub)).then(|| link_sub.to_owned());
                let sso = SsoSession { user_id: user_id.to_owned(), link_sub, ..template.clone() };
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
        self.sign_in_user(realm, &req, &up, verified.subject(), &claims, token_json, Arc::new(entries)).await?;
        let response = super::code_response(realm, &req, code);
        Ok(CallbackOutcome { response, sid, max_age: secs(realm.sso_max) })
    }

    /// A new sign-in in a browser whose `FEDERA_SESSION` named another
    /// session replaces it: that session ends (its tokens stop working), so
    /// a browser never leaves a live session behind that nothing can reach.
    /// Failures are logged; the new sign-in stands.
    pub async fn end_replaced_session(&self, realm: &str, old_cookie_sid: &str, new_cookie_sid: &str) {
        if old_cookie_sid.is_empty() || old_cookie_sid == new_cookie_sid {
            return;
        }
        match self.end_session(realm, &state::public_sid(old_cookie_sid)).await {
            Ok(true) => log::info!("realm {realm:?}: a new sign-in in the browser ended the session it replaced"),
            Ok(false) => {}
            Err(e) => log::error!("realm {realm:?}: the session a new sign-in replaced could not be ended: {e}"),
        }
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
        self.upstream_token_request(up, realm, form).await.map_err(|e| failed(&up.alias, &realm.name, e))
    }

    async fn verify_id_token(
        &self,
        up: &Upstream,
        realm: &RealmInfo,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<federa_protocol::VerifiedIdToken, AuthError> {
        let issuer = up.issuer.as_deref().ok_or_else(|| {
            failed(&up.alias, &realm.name, "no issuer is configured or discovered, so ID tokens cannot be checked")
        })?;
        let check = Check {
            issuer: issuer.to_owned(),
            client_id: up.client_id.clone(),
            nonce: nonce.map(str::to_owned),
            clock_skew: secs(up.clock_skew),
        };
        if !up.validate_signature {
            // validateSignature = "false": the admin chose to trust the TLS
            // connection to the token endpoint (logged at start, and in the
            // admin's answer); every claim is still checked.
            log::debug!("realm {:?}: {:?}: ID-token signature not verified (validateSignature)", realm.name, up.alias);
            return id_token::accept_unsigned(token, &check.expectations())
                .map_err(|e| failed(&up.alias, &realm.name, format!("ID token: {e}")));
        }
        if let Some(kid) = &up.static_kid {
            // A configured key id must be the token's.
            let named = id_token::peek_kid(token);
            if up.static_jwks.is_some() && named.as_deref() != Some(kid.as_str()) {
                return Err(failed(
                    &up.alias,
                    &realm.name,
                    format!("ID token: its kid {named:?} is not publicKeySignatureVerifierKeyId {kid:?}"),
                ));
            }
        }
        let token = token.to_owned();
        self.with_upstream_keys(up, realm, move |jwks, verifiers| {
            id_token::verify_cached(&token, jwks, &check.expectations(), verifiers)
        })
        .await?
        .map_err(|e| failed(&up.alias, &realm.name, format!("ID token: {e}")))
    }

    /// Verifies the upstream access token as a JWT (`isAccessTokenJWT`):
    /// the provider's keys (unless `validateSignature` is off), its issuer,
    /// not expired; the audience is not Federa's to check. Its claims.
    async fn verify_access_token(
        &self,
        up: &Upstream,
        realm: &RealmInfo,
        token: Option<&str>,
    ) -> Result<Map<String, Value>, AuthError> {
        let refuse = |why: String| failed(&up.alias, &realm.name, format!("access token (isAccessTokenJWT): {why}"));
        let token = token.filter(|t| !t.is_empty()).ok_or_else(|| refuse("the token response has none".into()))?;
        let issuer = up
            .issuer
            .clone()
            .ok_or_else(|| refuse("no issuer is configured or discovered to check it against".into()))?;
        let (clock_skew, check_signature) = (secs(up.clock_skew), up.validate_signature);
        let token = token.to_owned();
        self.with_upstream_keys(up, realm, move |jwks, verifiers| {
            let exp = id_token::AccessTokenExpectations {
                issuer: &issuer,
                allowed_algs: id_token::DEFAULT_ALGS,
                check_signature,
                now: now(),
                clock_skew,
            };
            id_token::verify_access_token(&token, jwks, &exp, Some(verifiers))
        })
        .await?
        .map_err(|e| refuse(e.to_string()))
    }

    /// Runs a check of an upstream token with the provider's keys on the
    /// blocking pool (a signature check is tens to hundreds of microseconds
    /// of CPU, too long for an async worker): the one configured key
    /// (`useJwksUrl` false with `publicKeySignatureVerifier`), else its JWKS,
    /// read again once when the token names a kid the cached set lacks (the
    /// upstream rotated its keys). Without signature validation no key set
    /// is needed, and none is fetched.
    pub(super) async fn with_upstream_keys<T: Send + 'static>(
        &self,
        up: &Upstream,
        realm: &RealmInfo,
        check: impl Fn(&Value, &VerifierCache) -> Result<T, IdTokenError> + Send + Sync + 'static,
    ) -> Result<Result<T, IdTokenError>, AuthError> {
        let check = Arc::new(check);
        let verifiers = self.upstreams.verifiers();
        let run = |jwks: Value| {
            let (check, verifiers) = (check.clone(), verifiers.clone());
            async move { tokio::task::spawn_blocking(move || check(&jwks, &verifiers)).await.map_err(internal) }
        };
        if let Some(static_jwks) = &up.static_jwks {
            return run(static_jwks.clone()).await;
        }
        if !up.validate_signature {
            return run(serde_json::json!({ "keys": [] })).await;
        }
        let jwks_url = up
            .jwks_url
            .as_deref()
            .ok_or_else(|| failed(&up.alias, &realm.name, "no jwksUrl configured or discovered"))?;
        let jwks =
            self.upstreams.jwks(&self.http, jwks_url, false).await.map_err(|e| failed(&up.alias, &realm.name, e))?;
        match run(jwks).await? {
            Err(IdTokenError::UnknownKey(kid)) => {
                log::info!(
                    "realm {:?}: {:?}: a token names kid {kid:?}, which the cached key set lacks; reading {jwks_url} again",
                    realm.name,
                    up.alias
                );
                let jwks = self
                    .upstreams
                    .jwks(&self.http, jwks_url, true)
                    .await
                    .map_err(|e| failed(&up.alias, &realm.name, e))?;
                run(jwks).await
            }
            other => Ok(other),
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
    #[allow(clippy::too_many_arguments)]
    async fn sign_in_user(
        &self,
        realm: &RealmInfo,
        req: &AuthRequest,
        up: &Upstream,
        subject: &str,
        claims: &Map<String, Value>,
        token_json: Option<String>,
        entries: EntriesForLink,
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
        let mapping = super::mapping::apply_mappers(mappers, claims, &up.alias, up.sync_mode, subject)
            .map_err(|e| no_link_subject(realm, req, up, subject, &e))?;
        let subject = mapping.subject.as_str();
        let entries: EntriesFor = {
            let link_sub = mapping.subject.clone();
            Arc::new(move |user_id: &str| entries(user_id, &link_sub))
        };
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
        let (link_username, grant_on_create) = first_login_policy(up, s("preferred_username"));
        let write = SignIn {
            realm: realm.name.clone(),
            alias: up.alias.clone(),
            subject: subject.to_owned(),
            profile,
            force: up.sync_mode == SyncMode::Force,
            new_user,
            link_username,
            grant_on_create,
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
            Ok(SignedIn::FirstLoginRefused | SignedIn::NotKnown) => Err(first_login_refused(realm, req, up, subject)),
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
                Err(username_taken(realm, req, up, subject, &username))
            }
            Err(e) => Err(internal(e)),
        }
    }
}

/// Why an upstream's answer does not meet the client's `max_age` (OIDC Core
/// 3.1.2.1, measured from `started`, when the browser was sent upstream),
/// if it does not.
///
/// - Told `max_age` (`passMaxAge`), the upstream must state an `auth_time`
///   within it (section 3.1.2.1 makes `auth_time` required then).
/// - Not told, an interactive request went upstream with `prompt=login`: an
///   `auth_time` it states must be within `max_age` (an upstream that ignored
///   the prompt is caught here); one that states none authenticated now.
/// - Not told, a forwarded `prompt=none` came back from the upstream's
///   session, of any age: it stands only on an `auth_time` within `max_age`,
///   and never for `max_age=0`, which a silent answer cannot meet.
fn max_age_unmet(
    req: &AuthRequest,
    pass_max_age: bool,
    auth_time: Option<i64>,
    started: i64,
    skew: i64,
) -> Option<&'static str> {
    let max_age = req.max_age?;
    let silent_unasked = req.has_prompt("none") && !pass_max_age;
    match auth_time {
        None if pass_max_age || silent_unasked => Some("the upstream stated no auth_time"),
        None => None,
        Some(_) if silent_unasked && max_age == 0 => Some("max_age=0 cannot be met by a silent answer"),
        Some(t) if t.saturating_add(max_age).saturating_add(skew) < started => Some("its auth_time is too old"),
        Some(_) => None,
    }
}

/// What a first sign-in may do under the provider's first-login policy
/// (`firstBrokerLoginFlowAlias`), besides creating the user: the username
/// of the existing user to link (`federa-known-users`: the upstream's
/// `preferred_username`, from the ID token, else userinfo), and the client
/// roles a created user gets (`addReadTokenRoleOnCreate`).
fn first_login_policy(up: &Upstream, preferred_username: Option<String>) -> (Option<String>, Vec<(String, String)>) {
    use crate::model::client_roles::{BROKER_CLIENT, READ_TOKEN};
    let link_username = match up.first_login {
        FirstLogin::KnownUsersOnly => preferred_username,
        FirstLogin::CreateUser | FirstLogin::Unknown(_) => None,
    };
    let grants = if up.add_read_token_role { vec![(BROKER_CLIENT.to_owned(), READ_TOKEN.to_owned())] } else { vec![] };
    (link_username, grants)
}

/// The answer to a first sign-in the policy refuses, with nothing created:
/// under `federa-known-users`, "not permitted" (or `access_denied` to the
/// app for prompt=none); under a flow Federa does not know, a page naming it.
fn first_login_refused(realm: &RealmInfo, req: &AuthRequest, up: &Upstream, subject: &str) -> AuthError {
    match &up.first_login {
        FirstLogin::Unknown(flow) => {
            log::warn!(
                "realm {:?}: first sign-in of {:?} subject {subject:?} refused: firstBrokerLoginFlowAlias {flow:?} is not a flow Federa knows",
                realm.name,
                up.alias
            );
            AuthError::page(
                "Sign-in not permitted",
                format!(
                    "Your account is not known here, and the first-login flow {flow:?} configured for {} is not one Federa knows, so no new account can be made. Ask your administrator.",
                    up.display_name
                ),
            )
        }
        FirstLogin::KnownUsersOnly | FirstLogin::CreateUser => {
            log::warn!(
                "realm {:?}: first sign-in of {:?} subject {subject:?} refused: federa-known-users found no provisioned link and no user with its preferred_username that may be linked",
                realm.name,
                up.alias
            );
            if req.has_prompt("none") {
                let error = OAuthError::new(OAuthErrorCode::AccessDenied, "the user is not permitted to sign in");
                return AuthError::Client(req.error(&realm.issuer, error));
            }
            AuthError::page(
                "Sign-in not permitted",
                format!(
                    "Your account at {} is not permitted to sign in here: only people who already have an account here may. Ask your administrator.",
                    up.display_name
                ),
            )
        }
    }
}

/// The answer when the username a new user would get is held by another
/// account (of another provider, or local): that account is never taken
/// over, and the person is told why, naming nothing of the other account.
fn username_taken(realm: &RealmInfo, req: &AuthRequest, up: &Upstream, subject: &str, username: &str) -> AuthError {
    log::warn!(
        "realm {:?}: {:?} subject {subject:?} wants username {username:?}, which another account holds; refused",
        realm.name,
        up.alias
    );
    if req.has_prompt("none") {
        // A silent request shows no page: the app hears that this person
        // cannot be signed in (OIDC Core section 3.1.2.6).
        let error = OAuthError::new(OAuthErrorCode::AccessDenied, "the user cannot be signed in here");
        return AuthError::Client(req.error(&realm.issuer, error));
    }
    AuthError::page(
        "Username already taken",
        format!(
            "The username {username:?} is already taken by another account here, so no account can be made for you from {}. Ask your administrator to link your account or to give it another username.",
            up.display_name
        ),
    )
}

/// A BROKER_ID mapper whose template names a claim this sign-in lacks: no
/// link subject, so no sign-in (never one shared link for all who lack it).
fn no_link_subject(
    realm: &RealmInfo,
    req: &AuthRequest,
    up: &Upstream,
    subject: &str,
    e: &super::mapping::NoLinkSubject,
) -> AuthError {
    log::warn!(
        "realm {:?}: {:?} subject {subject:?} refused: BROKER_ID mapper {:?}: {}",
        realm.name,
        up.alias,
        e.mapper,
        e.missing
    );
    if req.has_prompt("none") {
        let error = OAuthError::new(OAuthErrorCode::AccessDenied, "the user cannot be signed in here");
        return AuthError::Client(req.error(&realm.issuer, error));
    }
    AuthError::page(
        "Sign-in refused",
        format!(
            "{} did not send the information (the claim {:?}) needed to find your account here, so you cannot be signed in. Tell your administrator.",
            up.display_name, e.missing.0
        ),
    )
}

/// The `email_verified` that goes with the email address kept from an ID
/// token and a userinfo answer (INTERFACE section 3: only the
/// `email_verified` of the response the email came from counts). The ID
/// token's email wins, as its other claims do; when it has none, userinfo's
/// email and its `email_verified` are used.
fn email_verified_of_its_source(id: &Map<String, Value>, info: &Map<String, Value>) -> Option<Value> {
    let has_email = |m: &Map<String, Value>| m.get("email").and_then(Value::as_str).is_some_and(|e| !e.is_empty());
    let source = if has_email(id) || !has_email(info) { id } else { info };
    source.get("email_verified").cloned()
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
}

impl Check {
    /// The expectations of an ID token, now.
    fn expectations(&self) -> Expectations<'_> {
        Expectations {
            issuer: &self.issuer,
            client_id: &self.client_id,
            nonce: self.nonce.as_deref(),
            allowed_algs: id_token::DEFAULT_ALGS,
            client_secret: None,
            now: now(),
            clock_skew: self.clock_skew,
            // The client's max_age is checked by the callback (`max_age_unmet`).
            max_age: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_holds_whatever_pass_max_age() {
        let req = |prompt: &[&str], max_age: Option<i64>| AuthRequest {
            realm: "r".into(),
            client_id: "app".into(),
            redirect_uri: "https://app.test/cb".into(),
            response_mode: super::super::authorize::ResponseMode::Query,
            state: None,
            nonce: None,
            scopes: vec![],
            code_challenge: None,
            prompt: prompt.iter().map(|p| (*p).to_owned()).collect(),
            max_age,
            login_hint: None,
            ui_locales: None,
            idp_hint: None,
            extra: BTreeMap::new(),
        };
        const STARTED: i64 = 10_000;
        // (prompt, max_age, passMaxAge, auth_time, refused)
        let cases: &[(&[&str], Option<i64>, bool, Option<i64>, bool)] = &[
            (&[], None, false, Some(1), false),
            // Interactive, prompt=login sent upstream: a stated auth_time must be within max_age.
            (&[], Some(600), false, Some(STARTED - 600), false),
            (&[], Some(600), false, Some(STARTED - 601), true),
            (&[], Some(600), false, None, false),
            (&[], Some(0), false, Some(STARTED), false),
            (&[], Some(0), false, Some(STARTED - 1), true),
            // Told max_age: auth_time is required and must be within it.
            (&[], Some(600), true, None, true),
            (&[], Some(600), true, Some(STARTED - 601), true),
            (&["none"], Some(600), true, Some(STARTED - 10), false),
            // A silent answer, not told: never for max_age=0.
            (&["none"], Some(600), false, Some(STARTED - 10), false),
            (&["none"], Some(600), false, None, true),
            (&["none"], Some(0), false, Some(STARTED), true),
            (&["none"], Some(600), false, Some(STARTED - 700), true),
        ];
        for (prompt, max_age, pass, auth_time, refused) in cases {
            let got = max_age_unmet(&req(prompt, *max_age), *pass, *auth_time, STARTED, 0);
            assert_eq!(got.is_some(), *refused, "{prompt:?} {max_age:?} pass={pass} {auth_time:?}: {got:?}");
        }
    }

    #[test]
    fn email_verified_comes_from_the_response_the_email_came_from() {
        let m = |v: Value| v.as_object().cloned().unwrap();
        let cases = [
            // The ID token's email without email_verified: userinfo's true does not vouch for it.
            (serde_json::json!({"email": "a@x.test"}), serde_json::json!({"email_verified": true}), None),
            (
                serde_json::json!({"email": "a@x.test", "email_verified": false}),
                serde_json::json!({"email": "a@x.test", "email_verified": true}),
                Some(Value::Bool(false)),
            ),
            // Only userinfo has the email: its email_verified counts, not the ID token's.
            (
                serde_json::json!({"email_verified": true}),
                serde_json::json!({"email": "b@x.test", "email_verified": false}),
                Some(Value::Bool(false)),
            ),
            (serde_json::json!({"email_verified": true}), serde_json::json!({"email": "b@x.test"}), None),
            (
                serde_json::json!({}),
                serde_json::json!({"email": "b@x.test", "email_verified": true}),
                Some(Value::Bool(true)),
            ),
        ];
        for (id, info, expected) in cases {
            assert_eq!(email_verified_of_its_source(&m(id.clone()), &m(info.clone())), expected, "{id} {info}");
        }
    }

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
