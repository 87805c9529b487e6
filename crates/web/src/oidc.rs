//! Federa as OpenID Provider (INTERFACE section 4) and the broker's upstream
//! endpoints (section 5): thin handlers over `federa_broker::flow::Broker`.
//! This module decides only HTTP matters: cookies, redirects, pages, status
//! codes and headers.

use std::collections::BTreeMap;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use federa_broker::flow::authorize::{self, AuthError, ClientResponse, ResponseMode};
use federa_broker::flow::{path_segment, random_token, AuthorizeOutcome, BearerError, RealmInfo};
use federa_protocol::discovery::op_metadata;
use federa_protocol::{OAuthError, OAuthErrorCode};

use crate::body::Params;
use crate::pages::{Common, ErrorPage, FormField, FormPostPage, IdpButton, LoginPage};
use crate::state::AppState;

/// The cookie binding a sign-in flow to the browser that started it.
const FLOW_COOKIE: &str = "FEDERA_FLOW";
/// The cookie holding the browser's SSO session.
pub(crate) const SESSION_COOKIE: &str = "FEDERA_SESSION";

/// Registers the per-realm OpenID Provider and broker routes.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/realms/{realm}")
            .route("/.well-known/openid-configuration", web::get().to(discovery))
            .route("/protocol/openid-connect/certs", web::get().to(certs))
            .route("/protocol/openid-connect/auth", web::get().to(auth_get))
            .route("/protocol/openid-connect/auth", web::post().to(auth_post))
            .route("/protocol/openid-connect/token", web::post().to(token))
            .route("/protocol/openid-connect/userinfo", web::get().to(userinfo))
            .route("/protocol/openid-connect/userinfo", web::post().to(userinfo))
            .configure(crate::tokens::configure)
            .configure(crate::backchannel::configure)
            .route("/protocol/openid-connect/logout", web::get().to(crate::logout::logout_get))
            .route("/protocol/openid-connect/logout", web::post().to(crate::logout::logout_post))
            .route("/broker/{alias}/login", web::get().to(broker_login))
            .route("/broker/{alias}/endpoint", web::get().to(endpoint_get))
            .route("/broker/{alias}/endpoint", web::post().to(endpoint_post))
            .route("/broker/{alias}/token", web::get().to(broker_token)),
    )
    .route("/resources/{theme}/{name}", web::get().to(resource));
}

fn secure(st: &AppState) -> bool {
    st.public_url.starts_with("https://")
}

fn cookie_path(realm: &str) -> String {
    format!("/realms/{}/", path_segment(realm))
}

pub(crate) fn cookie<'a>(st: &AppState, realm: &str, name: &'a str, value: String, max_age: i64) -> Cookie<'a> {
    build_cookie(secure(st), realm, name, value, max_age)
}

/// Federa's cookies: HttpOnly, SameSite=Lax (they must survive the top-level
/// redirect back from an upstream), Secure when the public URL is https,
/// scoped to the realm's path.
fn build_cookie(secure: bool, realm: &str, name: &str, value: String, max_age: i64) -> Cookie<'static> {
    Cookie::build(name.to_owned(), value)
        .path(cookie_path(realm))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age))
        .finish()
}

pub(crate) fn common<'a>(realm: Option<&'a RealmInfo>, static_base: &'a str) -> Common<'a> {
    Common { realm_display_name: realm.map(|r| r.display_name.as_str()).unwrap_or("Federa"), locale: "en", static_base }
}

pub(crate) fn static_base(st: &AppState, realm: Option<&RealmInfo>) -> String {
    let theme = realm.and_then(|r| r.login_theme.as_deref()).filter(|t| st.themes.has(t)).unwrap_or("default");
    format!("{}/resources/{}", st.public_url, path_segment(theme))
}

pub(crate) fn theme(realm: Option<&RealmInfo>) -> &str {
    realm.and_then(|r| r.login_theme.as_deref()).unwrap_or("default")
}

/// What a page may do, which its Content-Security-Policy says.
#[derive(Clone, Copy)]
pub(crate) enum PagePolicy<'a> {
    /// Nothing but the theme's stylesheet: the login and error pages.
    Static,
    /// A form for the person to submit (no script), posting to the origin
    /// of `action`: the logout confirmation.
    Form { action: &'a str },
    /// The form_post page: also its one script, by nonce, and its form,
    /// posting to the origin of `action`.
    FormPost { nonce: &'a str, action: &'a str },
}

/// The Content-Security-Policy of a page: stylesheets from Federa only (the
/// theme's), no other resource, never framed.
fn content_security_policy(public_url: &str, policy: PagePolicy<'_>) -> String {
    let base = format!("default-src 'none'; style-src {public_url}; frame-ancestors 'none'");
    match policy {
        PagePolicy::Static => base,
        PagePolicy::Form { action } => format!("{base}; form-action {}", origin(action)),
        PagePolicy::FormPost { nonce, action } => {
            format!("{base}; script-src 'nonce-{nonce}'; form-action {}", origin(action))
        }
    }
}

/// The headers of every page a person sees, in one place: a
/// Content-Security-Policy, never cached, never framed, no MIME sniffing, and
/// no referrer (URLs here carry codes and states).
fn page_response(
    st: &AppState,
    mut builder: actix_web::HttpResponseBuilder,
    policy: PagePolicy<'_>,
    content_type: &str,
    body: String,
) -> HttpResponse {
    builder
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, content_security_policy(&st.public_url, policy)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}

/// An HTML page with the headers of every page.
pub(crate) fn html(
    st: &AppState,
    builder: actix_web::HttpResponseBuilder,
    policy: PagePolicy<'_>,
    body: String,
) -> HttpResponse {
    page_response(st, builder, policy, "text/html; charset=utf-8", body)
}

/// A themed error page; the status says whose fault it was.
pub(crate) fn error_page(
    st: &AppState,
    realm: Option<&RealmInfo>,
    status: u16,
    title: &str,
    message: &str,
) -> HttpResponse {
    let base = static_base(st, realm);
    let support_id = random_token()[..12].to_owned();
    log::info!("error page {support_id}: {title}: {message}");
    let page = ErrorPage { common: common(realm, &base), title, message, support_id: Some(&support_id) };
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    match st.themes.render_error(theme(realm), &page) {
        Ok(body) => html(st, HttpResponse::build(status), PagePolicy::Static, body),
        Err(e) => {
            log::error!("error page cannot be rendered: {e}");
            let text = format!("{title}\n\n{message}\n");
            page_response(st, HttpResponse::build(status), PagePolicy::Static, "text/plain; charset=utf-8", text)
        }
    }
}

fn auth_error(st: &AppState, realm: &RealmInfo, e: AuthError) -> HttpResponse {
    match e {
        AuthError::Page { title, message } => error_page(st, Some(realm), 400, &title, &message),
        AuthError::Client(resp) => respond(st, realm, &resp),
    }
}

/// Sends a response to the client: a redirect, or an auto-submitted form.
fn respond(st: &AppState, realm: &RealmInfo, resp: &ClientResponse) -> HttpResponse {
    match resp.response_mode {
        ResponseMode::Query => HttpResponse::Found()
            .insert_header((header::LOCATION, resp.location()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .finish(),
        ResponseMode::FormPost => {
            let base = static_base(st, Some(realm));
            let nonce = random_token();
            let fields: Vec<FormField<'_>> =
                resp.params.iter().map(|(name, value)| FormField { name, value }).collect();
            let page = FormPostPage {
                common: common(Some(realm), &base),
                action: &resp.redirect_uri,
                fields: &fields,
                script_nonce: &nonce,
            };
            match st.themes.render_form_post(theme(Some(realm)), &page) {
                Ok(body) => {
                    let policy = PagePolicy::FormPost { nonce: &nonce, action: &resp.redirect_uri };
                    html(st, HttpResponse::Ok(), policy, body)
                }
                Err(e) => {
                    log::error!("form_post page cannot be rendered: {e}");
                    HttpResponse::InternalServerError().finish()
                }
            }
        }
    }
}

fn origin(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => "'none'".into(),
    }
}

pub(crate) async fn realm_or_page(st: &AppState, name: &str) -> Result<RealmInfo, HttpResponse> {
    match st.broker.realm(name).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(error_page(st, None, 404, "Unknown realm", &format!("There is no realm {name:?} here."))),
        Err(e) => {
            log::error!("realm {name:?}: {e}");
            Err(error_page(st, None, 500, "Something went wrong", "Please try again later."))
        }
    }
}

pub(crate) async fn realm_or_json(st: &AppState, name: &str) -> Result<RealmInfo, HttpResponse> {
    match st.broker.realm(name).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(HttpResponse::NotFound()
            .json(serde_json::json!({"error": "not_found", "error_description": "realm not found"}))),
        Err(e) => {
            log::error!("realm {name:?}: {e}");
            Err(HttpResponse::InternalServerError().finish())
        }
    }
}

/// `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0 section 4).
async fn discovery(st: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let realm = match realm_or_json(&st, &path).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match st.broker.signing_alg(&realm.name).await {
        Ok(alg) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
            .json(op_metadata(&realm.issuer, &alg)),
        Err(e) => {
            log::error!("discovery: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// `GET /protocol/openid-connect/certs`.
async fn certs(st: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let realm = match realm_or_json(&st, &path).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match st.broker.jwks(&realm.name).await {
        Ok(jwks) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
            .content_type("application/jwk-set+json")
            .json(jwks),
        Err(e) => {
            log::error!("certs: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Request parameters as actix reads them, every pair kept (see [`Params`]).
pub(crate) type Pairs = Vec<(String, String)>;

async fn auth_get(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<Pairs>,
) -> HttpResponse {
    authorize(req, st, path.into_inner(), Params::from_pairs(query.into_inner())).await
}

async fn auth_post(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Pairs>,
) -> HttpResponse {
    authorize(req, st, path.into_inner(), Params::from_pairs(form.into_inner())).await
}

/// What to say of repeated parameters.
pub(crate) fn repeated_message(params: &Params) -> String {
    format!("{} must not be sent more than once", params.repeated().join(", "))
}

/// An authorization request with a repeated parameter (RFC 6749 section
/// 3.1). When `client_id` or `redirect_uri` is repeated, which client and
/// which redirect URI are meant is unknown, so the person sees a page.
/// Otherwise both are proven exactly as for any request, by
/// `authorize::validate` over them alone (with `response_mode` and `state`
/// when sent once), and the proven client is told `invalid_request`.
async fn repeated_authorization(st: &AppState, realm: &RealmInfo, params: &Params) -> HttpResponse {
    let message = repeated_message(params);
    if params.is_repeated("client_id") || params.is_repeated("redirect_uri") {
        return error_page(st, Some(realm), 400, "Invalid request", &format!("The application's request: {message}."));
    }
    let proof: BTreeMap<String, String> = ["client_id", "redirect_uri", "response_mode", "state"]
        .into_iter()
        .filter(|name| !params.is_repeated(name))
        .filter_map(|name| params.get(name).map(|v| (name.to_owned(), v.to_owned())))
        .collect();
    let client = match proof.get("client_id") {
        Some(id) => match st.admin.store().find_client(&realm.name, id).await {
            Ok(c) => c.map(|c| federa_broker::model::Client::from_repr(&c)),
            Err(e) => {
                log::error!("realm {:?}: client {id:?}: {e}", realm.name);
                return error_page(st, Some(realm), 500, "Something went wrong", "Please try again later.");
            }
        },
        None => None,
    };
    // Without response_type the proof never passes; what matters is whether
    // it got as far as the client, which is then told.
    match authorize::validate(&realm.name, &realm.issuer, &proof, client.as_ref(), &[]) {
        Err(AuthError::Client(proven)) => {
            let state = proof.get("state").map(String::as_str).filter(|s| !s.is_empty());
            let error = OAuthError::new(OAuthErrorCode::InvalidRequest, message);
            let resp = ClientResponse::error(&proven.redirect_uri, proven.response_mode, state, &realm.issuer, error);
            respond(st, realm, &resp)
        }
        Err(page) => auth_error(st, realm, page),
        Ok(_) => error_page(st, Some(realm), 400, "Invalid request", &format!("The application's request: {message}.")),
    }
}

/// The authorization endpoint.
async fn authorize(req: HttpRequest, st: web::Data<AppState>, realm: String, params: Params) -> HttpResponse {
    let realm = match realm_or_page(&st, &realm).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !params.repeated().is_empty() {
        return repeated_authorization(&st, &realm, &params).await;
    }
    let sid = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    match st.broker.authorize(&realm, params.values(), sid.as_deref()).await {
        Ok(AuthorizeOutcome::Respond(resp)) => respond(&st, &realm, &resp),
        Ok(AuthorizeOutcome::Upstream { url, flow_id }) => HttpResponse::Found()
            .cookie(cookie(&st, &realm.name, FLOW_COOKIE, flow_id, 1800))
            .insert_header((header::LOCATION, url))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .finish(),
        Ok(AuthorizeOutcome::Choose { flow_id, providers, client_name }) => {
            let hrefs: Vec<String> = providers
                .iter()
                .map(|p| {
                    format!(
                        "{}/broker/{}/login?flow={}",
                        realm.issuer,
                        path_segment(&p.alias),
                        url::form_urlencoded::byte_serialize(flow_id.as_bytes()).collect::<String>()
                    )
                })
                .collect();
            let buttons: Vec<IdpButton<'_>> = providers
                .iter()
                .zip(&hrefs)
                .map(|(p, href)| IdpButton { alias: &p.alias, display_name: &p.display_name, href })
                .collect();
            let base = static_base(&st, Some(&realm));
            let page = LoginPage {
                common: common(Some(&realm), &base),
                providers: &buttons,
                client_name: client_name.as_deref(),
            };
            match st.themes.render_login(theme(Some(&realm)), &page) {
                Ok(body) => {
                    let mut b = HttpResponse::Ok();
                    b.cookie(cookie(&st, &realm.name, FLOW_COOKIE, flow_id, 1800));
                    html(&st, b, PagePolicy::Static, body)
                }
                Err(e) => {
                    log::error!("login page cannot be rendered: {e}");
                    error_page(&st, Some(&realm), 500, "Something went wrong", "The sign-in page cannot be shown.")
                }
            }
        }
        Err(e) => auth_error(&st, &realm, e),
    }
}

/// `GET /broker/{alias}/login?flow=...`: the chooser's links.
async fn broker_login(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<Pairs>,
) -> HttpResponse {
    let (realm, alias) = path.into_inner();
    let realm = match realm_or_page(&st, &realm).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let query = Params::from_pairs(query.into_inner());
    if !query.repeated().is_empty() {
        let message = format!("This sign-in link is malformed: {}.", repeated_message(&query));
        return error_page(&st, Some(&realm), 400, "Invalid request", &message);
    }
    let flow = query.get("flow").unwrap_or_default();
    let browser_flow = req.cookie(FLOW_COOKIE).map(|c| c.value().to_owned());
    match st.broker.start_upstream(&realm, &alias, flow, browser_flow.as_deref()).await {
        Ok(url) => HttpResponse::Found()
            .insert_header((header::LOCATION, url))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .finish(),
        Err(e) => auth_error(&st, &realm, e),
    }
}

async fn endpoint_get(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<Pairs>,
) -> HttpResponse {
    let (realm, alias) = path.into_inner();
    match single_valued(&st, &realm, Params::from_pairs(query.into_inner())).await {
        Ok(params) => callback(req, st, realm, alias, params).await,
        Err(page) => page,
    }
}

/// The parameters of an upstream's answer, or an error page when one is
/// repeated (RFC 6749 section 3.1): an answer with two states or two codes
/// is not taken apart.
async fn single_valued(st: &AppState, realm: &str, params: Params) -> Result<BTreeMap<String, String>, HttpResponse> {
    if params.repeated().is_empty() {
        return Ok(params.into_values());
    }
    let realm = realm_or_page(st, realm).await?;
    log::warn!("realm {:?}: an upstream answer repeats {}", realm.name, params.repeated().join(", "));
    let message = format!("The identity provider's answer is malformed: {}.", repeated_message(&params));
    Err(error_page(st, Some(&realm), 400, "Invalid sign-in response", &message))
}

/// The field marking a callback that Federa's own page re-posted.
const RESUBMIT_FIELD: &str = "federa_resubmit";

async fn endpoint_post(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<Pairs>,
) -> HttpResponse {
    let (realm_name, alias) = path.into_inner();
    let mut params = match single_valued(&st, &realm_name, Params::from_pairs(form.into_inner())).await {
        Ok(params) => params,
        Err(page) => return page,
    };
    let resubmitted = params.remove(RESUBMIT_FIELD).is_some();
    if req.cookie(FLOW_COOKIE).is_none() && !resubmitted {
        // A form_post answer arrives as a cross-site POST, which carries no
        // SameSite=Lax cookie. Federa's own page posts the same fields again,
        // now same-site, so the browser's flow cookie comes along and the
        // state's binding to this browser can still be checked.
        let realm = match realm_or_page(&st, &realm_name).await {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        let action = format!("{}{}", st.public_url, req.path());
        let mut fields: Vec<(String, String)> = params.into_iter().collect();
        fields.push((RESUBMIT_FIELD.to_owned(), "1".to_owned()));
        let resp = ClientResponse { redirect_uri: action, response_mode: ResponseMode::FormPost, params: fields };
        return respond(&st, &realm, &resp);
    }
    callback(req, st, realm_name, alias, params).await
}

/// `/broker/{alias}/endpoint`: the upstream's answer.
async fn callback(
    req: HttpRequest,
    st: web::Data<AppState>,
    realm: String,
    alias: String,
    params: BTreeMap<String, String>,
) -> HttpResponse {
    let realm = match realm_or_page(&st, &realm).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let browser_flow = req.cookie(FLOW_COOKIE).map(|c| c.value().to_owned());
    // The socket's peer (not a forwarded-for header anyone can write), for
    // the admin API's list of sessions.
    let ip = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    match st.broker.callback(&realm, &alias, &params, browser_flow.as_deref(), &ip).await {
        Ok(outcome) => {
            if let Some(old) = req.cookie(SESSION_COOKIE) {
                st.broker.end_replaced_session(&realm.name, old.value(), &outcome.sid).await;
            }
            let mut resp = respond(&st, &realm, &outcome.response);
            let _ = resp.add_cookie(&cookie(&st, &realm.name, SESSION_COOKIE, outcome.sid, outcome.max_age));
            let _ = resp.add_removal_cookie(&cookie(&st, &realm.name, FLOW_COOKIE, String::new(), 0));
            resp
        }
        Err(e) => auth_error(&st, &realm, e),
    }
}

/// The token endpoint.
async fn token(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Pairs>,
) -> HttpResponse {
    let realm = match realm_or_json(&st, &path).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let form = Params::from_pairs(form.into_inner());
    if !form.repeated().is_empty() {
        // RFC 6749 section 3.2: parameters must not be repeated.
        return HttpResponse::BadRequest()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(OAuthError::new(OAuthErrorCode::InvalidRequest, repeated_message(&form)));
    }
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(federa_broker::flow::client_auth::parse_basic);
    match st.broker.token(&realm, form.values(), basic).await {
        Ok(tokens) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(tokens),
        Err(e) => crate::tokens::refusal(e),
    }
}

/// Userinfo (OIDC Core section 5.3), with bearer errors per RFC 6750 section 3.
async fn userinfo(req: HttpRequest, st: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let realm = match realm_or_json(&st, &path).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let bearer = crate::auth::bearer_token(&req);
    match st.broker.userinfo(&realm, bearer).await {
        Ok(claims) => HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(claims),
        Err(BearerError::Missing) => {
            HttpResponse::Unauthorized().insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"federa\"")).finish()
        }
        Err(BearerError::Invalid(why)) => HttpResponse::Unauthorized()
            .insert_header((
                header::WWW_AUTHENTICATE,
                format!("Bearer realm=\"federa\", error=\"invalid_token\", error_description=\"{why}\""),
            ))
            .json(serde_json::json!({"error": "invalid_token", "error_description": why})),
        Err(BearerError::Internal) => HttpResponse::InternalServerError().finish(),
    }
}

/// The bearer's stored upstream tokens (`GET /broker/{alias}/token`,
/// Keycloak's): 401 without a valid bearer token, 403 without the `broker`
/// client role `read-token`, 400 when nothing is stored.
async fn broker_token(req: HttpRequest, st: web::Data<AppState>, path: web::Path<(String, String)>) -> HttpResponse {
    use federa_broker::flow::BrokerTokenError;
    let (realm, alias) = path.into_inner();
    let realm = match realm_or_json(&st, &realm).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let bearer = crate::auth::bearer_token(&req);
    match st.broker.broker_token(&realm, &alias, bearer).await {
        Ok(tokens) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(tokens),
        Err(BrokerTokenError::Bearer(BearerError::Missing)) => {
            HttpResponse::Unauthorized().insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"federa\"")).finish()
        }
        Err(BrokerTokenError::Bearer(BearerError::Invalid(why))) => HttpResponse::Unauthorized()
            .insert_header((
                header::WWW_AUTHENTICATE,
                format!("Bearer realm=\"federa\", error=\"invalid_token\", error_description=\"{why}\""),
            ))
            .json(serde_json::json!({"error": "invalid_token", "error_description": why})),
        Err(BrokerTokenError::Bearer(BearerError::Internal)) => HttpResponse::InternalServerError().finish(),
        Err(BrokerTokenError::Forbidden) => HttpResponse::Forbidden().json(serde_json::json!({
            "error": "insufficient_scope",
            "error_description": "the user does not hold the broker client role read-token"
        })),
        Err(BrokerTokenError::NotStored(why)) => {
            HttpResponse::BadRequest().json(serde_json::json!({"error": "invalid_request", "error_description": why}))
        }
        Err(BrokerTokenError::Upstream) => HttpResponse::BadGateway().json(serde_json::json!({
            "error": "temporarily_unavailable",
            "error_description": "the stored token expired and the identity provider did not refresh it"
        })),
        Err(BrokerTokenError::Busy) => HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "1"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({
                "error": "temporarily_unavailable",
                "error_description": "the stored token is being refreshed; retry shortly"
            })),
    }
}

/// A theme's static file.
async fn resource(st: web::Data<AppState>, path: web::Path<(String, String)>) -> HttpResponse {
    let (theme, name) = path.into_inner();
    match st.themes.static_file(&theme, &name) {
        Some((content_type, bytes)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, content_type))
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(bytes),
        None => HttpResponse::NotFound().finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_allow_only_their_own_resources() {
        let plain = content_security_policy("https://id.test", PagePolicy::Static);
        assert_eq!(plain, "default-src 'none'; style-src https://id.test; frame-ancestors 'none'");
        let post = content_security_policy(
            "https://id.test",
            PagePolicy::FormPost { nonce: "n0nce", action: "https://app.test:8443/cb?x=1" },
        );
        assert_eq!(
            post,
            "default-src 'none'; style-src https://id.test; frame-ancestors 'none'; script-src 'nonce-n0nce'; \
             form-action https://app.test:8443"
        );
        let form =
            content_security_policy("https://id.test", PagePolicy::Form { action: "https://id.test/realms/r/x" });
        assert!(form.ends_with("frame-ancestors 'none'; form-action https://id.test"), "{form}");
        assert!(!form.contains("script-src"), "{form}");
        let odd = content_security_policy("https://id.test", PagePolicy::FormPost { nonce: "n", action: "not a url" });
        assert!(odd.ends_with("form-action 'none'"), "{odd}");
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_on_https() {
        let c = build_cookie(true, "my realm", SESSION_COOKIE, "sid".into(), 60).to_string();
        for part in
            ["FEDERA_SESSION=sid", "HttpOnly", "SameSite=Lax", "Secure", "Path=/realms/my%20realm/", "Max-Age=60"]
        {
            assert!(c.contains(part), "{part} missing in {c}");
        }
        let plain = build_cookie(false, "r", FLOW_COOKIE, "f".into(), 1800).to_string();
        assert!(!plain.contains("Secure"), "{plain}");
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax"), "{plain}");
    }
}
