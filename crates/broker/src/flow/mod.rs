//! Brokered sign-in: Federa as OpenID Provider to the realm's clients and as
//! relying party of its upstream providers. [`Broker`] holds no per-user
//! state: every flow, code and session lives in the [`SessionStore`], so any
//! instance can serve any step and a restart loses nothing.

pub mod authorize;
pub mod backchannel;
pub mod bearer;
pub mod broker_token;
pub mod cache;
pub mod claims;
pub mod client_auth;
pub mod introspect;
mod keys;
mod login;
pub mod logout;
mod mapping;
mod refresh;
pub mod sessions;
pub mod state;
pub mod token;
pub mod upstream;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use federa_protocol::{pkce, OAuthError, OAuthErrorCode};
use rand::RngCore as _;

use crate::model::{self, Client, Upstream as UpstreamModel};
use crate::repr::RealmRepresentation;
use crate::store::hot::Composed;
use crate::store::{CodeRedeemer, RefreshRedeemer, SessionStore, SignInWriter, Store};
use authorize::{AuthError, AuthRequest, ClientResponse};
use state::{SsoSession, UpstreamState};

pub use bearer::{AccessClaims, BearerError};
pub use broker_token::BrokerTokenError;
pub use keys::KeyCache;
pub use login::CallbackOutcome;
pub use token::{TokenError, TokenResponse};

/// How long a sign-in may take, from the client's request to the upstream's answer.
const FLOW_TTL: Duration = Duration::from_secs(30 * 60);
/// How long an authorization code lives (RFC 6749 section 4.1.2 recommends at most 10 minutes).
const CODE_TTL: Duration = Duration::from_secs(60);

/// 32 random bytes, base64url: flow ids, states, nonces, codes, session ids.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A provider shown on the login page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderChoice {
    /// The alias.
    pub alias: String,
    /// The display name.
    pub display_name: String,
}

/// What the authorization endpoint does next.
#[derive(Debug)]
pub enum AuthorizeOutcome {
    /// Answer the client now (SSO, or an error that can go back).
    Respond(ClientResponse),
    /// Send the browser upstream; `flow_id` is bound to the browser by a cookie.
    Upstream {
        /// The upstream authorization URL.
        url: String,
        /// The flow.
        flow_id: String,
    },
    /// Let the person choose a provider.
    Choose {
        /// The flow.
        flow_id: String,
        /// The visible providers, by `guiOrder`.
        providers: Vec<ProviderChoice>,
        /// The client's name.
        client_name: Option<String>,
    },
}

/// The realm's public information the pages and endpoints need.
#[derive(Debug, Clone)]
pub struct RealmInfo {
    /// The realm's name.
    pub name: String,
    /// The name for people.
    pub display_name: String,
    /// Its login theme.
    pub login_theme: Option<String>,
    /// Its locale (`defaultLocale`), when it is a plausible language tag.
    pub locale: Option<String>,
    /// Its issuer.
    pub issuer: String,
    /// Access and ID token lifetime.
    pub token_lifespan: Duration,
    /// SSO session maximum lifetime.
    pub sso_max: Duration,
    /// SSO session idle timeout: the longest time since the session's last
    /// use (an SSO answer or a refresh) after which it no longer serves.
    pub sso_idle: Duration,
    /// Idle timeout of offline refresh-token families.
    pub offline_idle: Duration,
    /// Maximum lifetime of offline refresh-token families from their start
    /// (`offlineSessionMaxLifespanEnabled`), when there is one.
    pub offline_max: Option<Duration>,
}

impl RealmInfo {
    /// Whether an SSO session still serves at `now`: within the realm's
    /// maximum lifetime from its start and idle timeout from its last use
    /// (the store expires it at the maximum; the idle time is checked here).
    pub fn session_serves(&self, sso: &SsoSession, now: i64) -> bool {
        let (idle, max) = (login::secs(self.sso_idle), login::secs(self.sso_max));
        now.saturating_sub(sso.last_access()) <= idle && now.saturating_sub(sso.started()) <= max
    }
}

/// The brokered sign-in service.
#[derive(Clone)]
pub struct Broker {
    store: Arc<dyn Store>,
    sessions: Arc<dyn SessionStore>,
    http: reqwest::Client,
    public_url: String,
    keys: Arc<KeyCache>,
    upstreams: Arc<upstream::UpstreamCache>,
    config: Arc<ConfigCache>,
    redeemer: Arc<dyn CodeRedeemer>,
    refresh_redeemer: Arc<dyn RefreshRedeemer>,
    sign_in: Arc<dyn SignInWriter>,
}

/// Realm configuration read on every request, cached for a few seconds.
struct ConfigCache {
    realms: cache::TtlCache<String, RealmInfo>,
    clients: cache::TtlCache<(String, String), Arc<Client>>,
    idps: cache::TtlCache<String, Arc<[Arc<UpstreamModel>]>>,
    mappers: cache::TtlCache<(String, String), Arc<[federa_mappers::Mapper]>>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn internal(e: impl std::fmt::Display) -> AuthError {
    log::error!("sign-in failed on an internal error: {e}");
    AuthError::page("Something went wrong", "Federa could not complete the sign-in. Please try again.")
}

/// Percent-encodes a realm name or alias for a URL path segment.
pub fn path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// The providers a login page may show: enabled, not hidden, not link-only, by `guiOrder` then alias.
pub fn visible_providers(idps: &[Arc<UpstreamModel>]) -> Vec<ProviderChoice> {
    let mut v: Vec<(i64, ProviderChoice)> = idps
        .iter()
        .filter(|p| p.can_sign_in() && !p.hide_on_login_page)
        .map(|p| {
            let choice = ProviderChoice { alias: p.alias.clone(), display_name: p.display_name.clone() };
            (p.gui_order.unwrap_or(i64::MAX), choice)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.alias.cmp(&b.1.alias)));
    v.into_iter().map(|(_, c)| c).collect()
}

impl Broker {
    /// A broker over the stores, with an HTTP client for upstream calls.
    /// `epoch` is the admin service's ([`crate::AdminService::config_epoch`]),
    /// so that its writes reach the sign-in caches at once.
    pub fn new(
        store: Arc<dyn Store>,
        sessions: Arc<dyn SessionStore>,
        http: reqwest::Client,
        public_url: &str,
        epoch: cache::ConfigEpoch,
    ) -> Self {
        let composed = Arc::new(Composed { store: store.clone(), sessions: sessions.clone() });
        let redeemer = sessions.redeemer().unwrap_or_else(|| composed.clone());
        let refresh_redeemer = sessions.refresh_redeemer().unwrap_or_else(|| composed.clone());
        let sign_in = sessions.sign_in_writer().unwrap_or(composed);
        Self {
            redeemer,
            refresh_redeemer,
            sign_in,
            store,
            sessions,
            http,
            public_url: public_url.trim_end_matches('/').to_owned(),
            keys: Arc::new(KeyCache::default()),
            upstreams: Arc::new(upstream::UpstreamCache::default()),
            config: Arc::new(ConfigCache {
                realms: cache::TtlCache::new(cache::CONFIG_TTL, epoch.clone()),
                clients: cache::TtlCache::new(cache::CONFIG_TTL, epoch.clone()),
                idps: cache::TtlCache::new(cache::CONFIG_TTL, epoch.clone()),
                mappers: cache::TtlCache::new(cache::CONFIG_TTL, epoch),
            }),
        }
    }

    /// Keycloak's "clear keys cache": forgets the upstreams' discovery
    /// documents and keys this instance holds, so the next sign-ins read them
    /// again.
    pub fn clear_upstream_caches(&self) {
        self.upstreams.clear();
    }

    /// Starts the background refresh of the upstreams' discovery documents
    /// and key sets in use ([`upstream::UpstreamCache::refresh`], every
    /// `every`) on the current tokio runtime, for as long as it runs.
    pub fn spawn_upstream_refresh(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let (upstreams, http) = (self.upstreams.clone(), self.http.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is at once, when nothing is cached yet.
            tick.tick().await;
            loop {
                tick.tick().await;
                upstreams.refresh(&http).await;
            }
        })
    }

    /// Starts the periodic sweep of the back-channel logout outbox
    /// ([`Broker::sweep_backchannel_outbox`], every `every`) on the current
    /// tokio runtime, for as long as it runs.
    pub fn spawn_backchannel_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let broker = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                broker.sweep_backchannel_outbox().await;
            }
        })
    }

    /// The issuer of a realm: exactly `{public_url}/realms/{realm}`.
    pub fn issuer(&self, realm: &str) -> String {
        format!("{}/realms/{}", self.public_url, path_segment(realm))
    }

    /// The realm, when it exists and is enabled.
    pub async fn realm(&self, realm: &str) -> Result<Option<RealmInfo>, crate::StoreError> {
        if let Some(info) = self.config.realms.get(&realm.to_owned()) {
            return Ok(Some(info));
        }
        let Some(r) = self.store.get_realm(realm).await? else { return Ok(None) };
        if r.repr.enabled == Some(false) {
            return Ok(None);
        }
        let info = self.realm_info(realm, &r.repr);
        self.config.realms.insert(realm.to_owned(), info.clone());
        Ok(Some(info))
    }

    /// A client by `client_id`, from the cache or the store.
    pub(crate) async fn find_client(
        &self,
        realm: &str,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, crate::StoreError> {
        let key = (realm.to_owned(), client_id.to_owned());
        if let Some(c) = self.config.clients.get(&key) {
            return Ok(Some(c));
        }
        let found = self.store.find_client(realm, client_id).await?.map(|c| Arc::new(Client::from_repr(&c)));
        if let Some(c) = &found {
            self.config.clients.insert(key, c.clone());
        }
        Ok(found)
    }

    /// The realm's identity providers, from the cache or the store.
    pub(crate) async fn idps(&self, realm: &str) -> Result<Arc<[Arc<UpstreamModel>]>, crate::StoreError> {
        if let Some(list) = self.config.idps.get(&realm.to_owned()) {
            return Ok(list);
        }
        let stored = self.store.list_idps(realm).await?;
        let list: Arc<[Arc<UpstreamModel>]> = stored
            .iter()
            .filter_map(|p| match UpstreamModel::from_repr(p, "") {
                Ok(m) => Some(Arc::new(m)),
                Err(e) => {
                    // Stored before a rule existed: unusable, and said so.
                    log::error!("realm {realm:?}: identity provider {:?} cannot be used: {e}", p.alias);
                    None
                }
            })
            .collect();
        self.config.idps.insert(realm.to_owned(), list.clone());
        Ok(list)
    }

    /// One identity provider by alias.
    pub(crate) async fn idp(&self, realm: &str, alias: &str) -> Result<Option<Arc<UpstreamModel>>, crate::StoreError> {
        Ok(self.idps(realm).await?.iter().find(|p| p.alias == alias).cloned())
    }

    fn realm_info(&self, realm: &str, r: &RealmRepresentation) -> RealmInfo {
        RealmInfo {
            name: realm.to_owned(),
            display_name: r.display_name.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| realm.to_owned()),
            login_theme: r.login_theme.clone(),
            locale: r.default_locale.as_deref().map(str::trim).filter(|l| is_language_tag(l)).map(str::to_owned),
            issuer: self.issuer(realm),
            token_lifespan: model::lifespan(r.access_token_lifespan, model::DEFAULT_TOKEN_LIFESPAN),
            sso_max: model::lifespan(r.sso_session_max_lifespan, model::DEFAULT_SSO_MAX),
            sso_idle: model::lifespan(r.sso_session_idle_timeout, model::DEFAULT_SSO_IDLE),
            offline_idle: model::lifespan(r.offline_session_idle_timeout, model::DEFAULT_OFFLINE_IDLE),
            offline_max: (r.offline_session_max_lifespan_enabled == Some(true))
                .then(|| model::lifespan(r.offline_session_max_lifespan, model::DEFAULT_OFFLINE_MAX)),
        }
    }

    async fn client_by_id(&self, realm: &str, client_id: &str) -> Result<Option<Arc<Client>>, AuthError> {
        self.find_client(realm, client_id).await.map_err(internal)
    }

    /// The authorization endpoint: validates the request, then answers from
    /// an SSO session, sends the browser upstream, or asks which provider.
    pub async fn authorize(
        &self,
        realm: &RealmInfo,
        params: &BTreeMap<String, String>,
        sso_sid: Option<&str>,
    ) -> Result<AuthorizeOutcome, AuthError> {
        let client = match params.get("client_id") {
            Some(id) => self.client_by_id(&realm.name, id).await?,
            None => None,
        };
        let idps = self.idps(&realm.name).await.map_err(internal)?;
        let req = authorize::validate(&realm.name, &realm.issuer, params, client.as_deref(), &idps)?;
        let now = now();

        // A live SSO session answers at once, unless the client wants a fresh login.
        if let Some(sid) = sso_sid.filter(|_| !req.has_prompt("login")) {
            // A session idle longer than ssoSessionIdleTimeout no longer serves.
            if let Some(sso) = self.sso_session(&realm.name, sid).await?.filter(|s| realm.session_serves(s, now)) {
                // OIDC Core 3.1.2.1: re-authenticate when more than max_age has
                // passed; max_age=0 always does, as Keycloak and most OPs treat it.
                let fresh_enough = req.max_age.is_none_or(|m| m > 0 && now - sso.auth_time <= m);
                let hinted_elsewhere = req.idp_hint.as_deref().is_some_and(|h| h != sso.idp);
                if fresh_enough && !hinted_elsewhere {
                    // A session is only as good as what it came from: a
                    // provider since disabled, a user deleted, disabled or
                    // unlinked ends it, and the request goes on as if there
                    // were none.
                    match self.session_lost_ground(&realm.name, &sso, &idps).await? {
                        Some(why) => {
                            log::info!("realm {:?}: SSO session not reused and ended: {why}", realm.name);
                            self.end_session(&realm.name, &state::public_sid(sid)).await.map_err(internal)?;
                        }
                        None => {
                            self.touch_session(&realm.name, sid, sso.clone(), now).await?;
                            let resp = self.issue_code(realm, &req, &sso.user_id, sso.auth_time, sid).await?;
                            return Ok(AuthorizeOutcome::Respond(resp));
                        }
                    }
                }
            }
        }

        let chosen = match &req.idp_hint {
            Some(hint) => {
                let found = idps.iter().find(|p| p.alias == *hint && p.can_sign_in());
                match found {
                    Some(p) => Some(p.clone()),
                    None => {
                        return Err(AuthError::Client(req.error(
                            &realm.issuer,
                            OAuthError::new(OAuthErrorCode::InvalidRequest, format!("no identity provider {hint:?}")),
                        )))
                    }
                }
            }
            None => None,
        };
        let visible = visible_providers(&idps);
        let chosen = chosen.or_else(|| match visible.as_slice() {
            [only] => idps.iter().find(|p| p.alias == only.alias).cloned(),
            _ => None,
        });

        if req.has_prompt("none") {
            // Without a session, prompt=none may only travel upstream when the
            // provider accepts it; otherwise the user must sign in.
            let forward = match &chosen {
                Some(p) => p.accepts_prompt_none,
                None => false,
            };
            if !forward {
                return Ok(AuthorizeOutcome::Respond(req.error(
                    &realm.issuer,
                    OAuthError::new(OAuthErrorCode::LoginRequired, "the user is not signed in"),
                )));
            }
        }

        let flow_id = random_token();
        match chosen {
            // Straight upstream: the request travels inside the upstream
            // state, so no separate flow entry is written.
            Some(idp) => {
                let url = self.upstream_url(realm, &idp, &req, &flow_id).await?;
                Ok(AuthorizeOutcome::Upstream { url, flow_id })
            }
            None if visible.is_empty() => Err(AuthError::page(
                "No sign-in method",
                "This realm has no identity provider to sign in with. An administrator must add one.",
            )),
            None => {
                // The login page's links name this flow; it stays until it
                // expires, so the person may go back and pick another provider.
                self.put_json(&state::flow_key(&flow_id), &req, FLOW_TTL).await?;
                Ok(AuthorizeOutcome::Choose {
                    flow_id,
                    providers: visible,
                    client_name: client.and_then(|c| c.name.clone()),
                })
            }
        }
    }

    /// The chooser's link: starts the upstream request for a flow this browser holds.
    pub async fn start_upstream(
        &self,
        realm: &RealmInfo,
        alias: &str,
        flow_id: &str,
        browser_flow: Option<&str>,
    ) -> Result<String, AuthError> {
        if browser_flow != Some(flow_id) {
            return Err(AuthError::page(
                "Sign-in expired",
                "This sign-in was started in another browser or has expired. Go back to the application and try again.",
            ));
        }
        let req: AuthRequest = self.get_json(&state::flow_key(flow_id)).await?.ok_or_else(expired)?;
        if req.realm != realm.name {
            return Err(expired());
        }
        let idp =
            self.idp(&realm.name, alias).await.map_err(internal)?.filter(|p| p.can_sign_in()).ok_or_else(|| {
                AuthError::page("Unknown identity provider", format!("There is no identity provider {alias:?}."))
            })?;
        self.upstream_url(realm, &idp, &req, flow_id).await
    }

    /// The redirect URI registered at an upstream for this realm.
    pub fn broker_endpoint(&self, realm: &str, alias: &str) -> String {
        format!("{}/broker/{}/endpoint", self.issuer(realm), path_segment(alias))
    }

    async fn upstream_url(
        &self,
        realm: &RealmInfo,
        idp: &Arc<UpstreamModel>,
        req: &AuthRequest,
        flow_id: &str,
    ) -> Result<String, AuthError> {
        refuse_unsupported(&realm.name, idp)?;
        let up = self.upstreams.resolve(&self.http, idp).await.map_err(|e| {
            log::error!("realm {:?}: {e}", realm.name);
            AuthError::page(
                "Identity provider unavailable",
                format!("{} cannot be reached right now.", idp.display_name),
            )
        })?;
        let state_value = random_token();
        let nonce = up.nonce.then(random_token);
        let verifier = up.pkce.map(|_| random_token());
        let st = UpstreamState {
            started: now(),
            request: req.clone(),
            flow_id: flow_id.to_owned(),
            realm: realm.name.clone(),
            alias: up.alias.clone(),
            nonce: nonce.clone(),
            verifier: verifier.clone(),
        };
        self.put_json(&state::upstream_key(&state_value), &st, FLOW_TTL).await?;
        let mut url = url::Url::parse(&up.authorization_url).map_err(|e| {
            log::error!("realm {:?}: identity provider {:?}: authorizationUrl: {e}", realm.name, up.alias);
            AuthError::page("Identity provider unavailable", "Its sign-in address is misconfigured.")
        })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &up.client_id)
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", &self.broker_endpoint(&realm.name, &up.alias))
                .append_pair("scope", &up.scope)
                .append_pair("state", &state_value);
            if let Some(n) = &nonce {
                q.append_pair("nonce", n);
            }
            if let (Some(method), Some(v)) = (up.pkce, &verifier) {
                let challenge = match method {
                    federa_protocol::PkceMethod::S256 => pkce::s256_challenge(v),
                    federa_protocol::PkceMethod::Plain => v.clone(),
                };
                q.append_pair("code_challenge", &challenge).append_pair("code_challenge_method", method.as_str());
            }
            if let Some(prompt) = upstream_prompt(req, up.accepts_prompt_none, up.pass_max_age, up.prompt) {
                q.append_pair("prompt", &prompt);
            }
            if up.pass_login_hint {
                if let Some(h) = &req.login_hint {
                    q.append_pair("login_hint", h);
                }
            }
            if up.pass_ui_locales {
                // The app's preference, else the realm's locale (Keycloak
                // sends the locale of its login pages).
                if let Some(l) = req.ui_locales.as_ref().or(realm.locale.as_ref()) {
                    q.append_pair("ui_locales", l);
                }
            }
            if up.pass_max_age {
                if let Some(m) = req.max_age {
                    q.append_pair("max_age", &m.to_string());
                }
            }
            for name in &up.forward_parameters {
                if let Some(v) = req.extra.get(name) {
                    q.append_pair(name, v);
                }
            }
        }
        Ok(url.to_string())
    }

    /// Why an SSO session may no longer answer for its user, if it may not:
    /// its provider is gone, disabled or link-only ([`UpstreamModel::can_sign_in`]),
    /// or its user is gone, disabled, or no longer linked to that provider
    /// (under the link subject the session was opened for: a BROKER_ID
    /// mapper's, else the upstream subject). One database
    /// read: the user found through the link.
    async fn session_lost_ground(
        &self,
        realm: &str,
        sso: &SsoSession,
        idps: &[Arc<UpstreamModel>],
    ) -> Result<Option<String>, AuthError> {
        if !idps.iter().any(|p| p.alias == sso.idp && p.can_sign_in()) {
            return Ok(Some(format!("identity provider {:?} is gone, disabled or link-only", sso.idp)));
        }
        let user = match sso.link_sub.as_ref().or(sso.upstream_sub.as_ref()) {
            Some(sub) => self.store.find_user_by_link(realm, &sso.idp, sub).await.map_err(internal)?,
            // A record written before sessions kept the upstream subject: the
            // user, then their links.
            None => match self.store.get_user(realm, &sso.user_id).await.map_err(internal)? {
                Some(u) => {
                    let links = self.store.list_links(realm, &sso.user_id).await.map_err(internal)?;
                    links.iter().any(|l| l.identity_provider.as_deref() == Some(sso.idp.as_str())).then_some(u)
                }
                None => None,
            },
        };
        Ok(match user {
            Some(u) if u.id.as_deref() != Some(sso.user_id.as_str()) => {
                Some(format!("the {:?} link now belongs to another user", sso.idp))
            }
            Some(u) if u.enabled == Some(false) => Some("the user is disabled".to_owned()),
            Some(_) => None,
            None => Some(format!("the user is gone or no longer linked to {:?}", sso.idp)),
        })
    }

    async fn sso_session(&self, realm: &str, sid: &str) -> Result<Option<SsoSession>, AuthError> {
        self.get_json(&state::sso_key(realm, sid)).await
    }

    /// Records that the session answered now (its expiry unchanged; a
    /// session ended meanwhile stays ended).
    async fn touch_session(&self, realm: &str, sid: &str, mut sso: SsoSession, now: i64) -> Result<(), AuthError> {
        sso.last_access = now;
        let json = serde_json::to_string(&sso).map_err(internal)?;
        self.sessions.replace(&state::sso_key(realm, sid), &json).await.map_err(internal).map(|_| ())
    }

    /// Mints a code for a signed-in user and answers the client with it.
    async fn issue_code(
        &self,
        realm: &RealmInfo,
        req: &AuthRequest,
        user_id: &str,
        auth_time: i64,
        sid: &str,
    ) -> Result<ClientResponse, AuthError> {
        let code = random_token();
        let grant = code_grant(req, user_id, auth_time, sid);
        self.put_json(&state::code_key(&realm.name, &code), &grant, CODE_TTL).await?;
        Ok(code_response(realm, req, code))
    }

    async fn put_json<T: serde::Serialize>(&self, key: &str, value: &T, ttl: Duration) -> Result<(), AuthError> {
        let json = serde_json::to_string(value).map_err(internal)?;
        self.sessions.put(key, &json, ttl).await.map_err(internal)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, AuthError> {
        match self.sessions.get(key).await.map_err(internal)? {
            Some(s) => serde_json::from_str(&s).map(Some).map_err(internal),
            None => Ok(None),
        }
    }

    async fn take_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, AuthError> {
        match self.sessions.take(key).await.map_err(internal)? {
            Some(s) => serde_json::from_str(&s).map(Some).map_err(internal),
            None => Ok(None),
        }
    }
}

/// Whether a realm's `defaultLocale` looks like a BCP 47 language tag
/// (RFC 5646: letters, digits and hyphens, at most 35 characters), so that
/// it can travel as one `ui_locales` value.
fn is_language_tag(s: &str) -> bool {
    !s.is_empty() && s.len() <= 35 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The `prompt` sent upstream (OIDC Core 3.1.2.1), space-separated.
///
/// - A client's `prompt=none` travels alone, and only to a provider that
///   accepts it (`acceptsPromptNoneForwardFromClient`; [`Broker::authorize`]
///   answers `login_required` itself otherwise).
/// - The client's `prompt=login`, and a `max_age` the upstream is not told
///   (`passMaxAge` off, or `max_age=0`), ask for `login`: Federa's session was
///   too old or absent, and an upstream session left as it is would hand back
///   an `auth_time` older than the client allows.
/// - The provider's configured `prompt` is sent as configured, alongside
///   `login` when both apply (a configured `none` cannot be combined, so
///   `login` wins then).
fn upstream_prompt(
    req: &AuthRequest,
    accepts_prompt_none: bool,
    pass_max_age: bool,
    configured: Option<model::Prompt>,
) -> Option<String> {
    use model::Prompt;
    if req.has_prompt("none") && accepts_prompt_none {
        return Some(Prompt::None.as_str().to_owned());
    }
    let login = req.has_prompt("login") || req.max_age.is_some_and(|m| m == 0 || !pass_max_age);
    let values: Vec<&str> = match (login, configured) {
        (false, c) => c.map(Prompt::as_str).into_iter().collect(),
        (true, None | Some(Prompt::None | Prompt::Login)) => vec![Prompt::Login.as_str()],
        (true, Some(c)) => vec![Prompt::Login.as_str(), c.as_str()],
    };
    (!values.is_empty()).then(|| values.join(" "))
}

/// The grant a code carries.
fn code_grant(req: &AuthRequest, user_id: &str, auth_time: i64, sid: &str) -> state::CodeGrant {
    state::CodeGrant {
        client_id: req.client_id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        user_id: user_id.to_owned(),
        nonce: req.nonce.clone(),
        code_challenge: req.code_challenge.clone(),
        scopes: req.scopes.clone(),
        auth_time,
        sid: state::public_sid(sid),
    }
}

/// The client's answer carrying a code (RFC 6749 section 4.1.2, RFC 9207 `iss`).
fn code_response(realm: &RealmInfo, req: &AuthRequest, code: String) -> ClientResponse {
    let mut params = vec![("code".to_owned(), code)];
    if let Some(s) = &req.state {
        params.push(("state".into(), s.clone()));
    }
    params.push(("iss".into(), realm.issuer.clone()));
    ClientResponse { redirect_uri: req.redirect_uri.clone(), response_mode: req.response_mode, params }
}

fn expired() -> AuthError {
    AuthError::page(
        "Sign-in expired",
        "This sign-in has expired or was already completed. Go back to the application and try again.",
    )
}

/// Refuses a sign-in through a provider whose settings change what is
/// trusted in a way Federa does not implement yet (an upstream that asks for
/// private_key_jwt, an essential-claim filter...): going on would trust
/// something the admin did not choose.
fn refuse_unsupported(realm: &str, idp: &UpstreamModel) -> Result<(), AuthError> {
    match &idp.refusal {
        None => Ok(()),
        Some(why) => {
            log::error!("realm {realm:?}: sign-in through {:?} refused: {why}", idp.alias);
            Err(AuthError::page(
                "Identity provider not supported",
                format!(
                    "Signing in with {} is not possible: its configuration asks for something Federa does not support yet ({why}). Tell your administrator.",
                    idp.display_name
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_language_tag;

    #[test]
    fn a_realm_locale_travels_only_as_one_language_tag() {
        for ok in ["en", "de-CH", "zh-Hant-TW", "es-419"] {
            assert!(is_language_tag(ok), "{ok}");
        }
        for bad in ["", "en fr", "en&prompt=none", "x".repeat(36).as_str(), "fr_FR"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }
}
