//! Federa as OpenID Provider (INTERFACE section 4) and the broker's upstream
//! endpoints (section 5): thin handlers over `federa_broker::flow::Broker`.
//! This module decides only HTTP matters: cookies, redirects, pages, status
//! codes and headers.

use std::collections::BTreeMap;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use federa_broker::flow::authorize::{AuthError, ClientResponse, ResponseMode};
use federa_broker::flow::{path_segment, random_token, AuthorizeOutcome, BearerError, RealmInfo, TokenError};
use federa_protocol::discovery::op_metadata;

use crate::pages::{Common, ErrorPage, FormField, FormPostPage, IdpButton, LoginPage};
use crate::state::AppState;

/// The cookie binding a sign-in flow to the browser that started it.
const FLOW_COOKIE: &str = "FEDERA_FLOW";
/// The cookie holding the browser's SSO session.
const SESSION_COOKIE: &str = "FEDERA_SESSION";

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
            .route("/broker/{alias}/login", web::get().to(broker_login))
            .route("/broker/{alias}/endpoint", web::get().to(endpoint_get))
            .route("/broker/{alias}/endpoint", web::post().to(endpoint_post)),
    )
    .route("/resources/{theme}/{name}", web::get().to(resource));
}

fn secure(st: &AppState) -> bool {
    st.public_url.starts_with("https://")
}

fn cookie_path(realm: &str) -> String {
    format!("/realms/{}/", path_segment(realm))
}

fn cookie<'a>(st: &AppState, realm: &str, name: &'a str, value: String, max_age: i64) -> Cookie<'a> {
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

fn common<'a>(realm: Option<&'a RealmInfo>, static_base: &'a str) -> Common<'a> {
    Common { realm_display_name: realm.map(|r| r.display_name.as_str()).unwrap_or("Federa"), locale: "en", static_base }
}

fn static_base(st: &AppState, realm: Option<&RealmInfo>) -> String {
    let theme = realm.and_then(|r| r.login_theme.as_deref()).filter(|t| st.themes.has(t)).unwrap_or("default");
    format!("{}/resources/{}", st.public_url, path_segment(theme))
}

fn theme(realm: Option<&RealmInfo>) -> &str {
    realm.and_then(|r| r.login_theme.as_deref()).unwrap_or("default")
}

/// Headers for every page a person sees: never cached, never framed, and no
/// referrer (URLs here carry codes and states).
fn html(mut builder: actix_web::HttpResponseBuilder, body: String) -> HttpResponse {
    builder
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}

/// A themed error page; the status says whose fault it was.
fn error_page(st: &AppState, realm: Option<&RealmInfo>, status: u16, title: &str, message: &str) -> HttpResponse {
    let base = static_base(st, realm);
    let support_id = random_token()[..12].to_owned();
    log::info!("error page {support_id}: {title}: {message}");
    let page = ErrorPage { common: common(realm, &base), title, message, support_id: Some(&support_id) };
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    match st.themes.render_error(theme(realm), &page) {
        Ok(body) => html(HttpResponse::build(status), body),
        Err(e) => {
            log::error!("error page cannot be rendered: {e}");
            HttpResponse::build(status)
                .content_type("text/plain; charset=utf-8")
                .body(format!("{title}\n\n{message}\n"))
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
                    let csp = format!(
                        "default-src 'none'; script-src 'nonce-{nonce}'; style-src {}; form-action {}; frame-ancestors 'none'",
                        st.public_url,
                        origin(&resp.redirect_uri)
                    );
                    let mut b = HttpResponse::Ok();
                    b.insert_header((header::CONTENT_SECURITY_POLICY, csp));
                    html(b, body)
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

async fn realm_or_page(st: &AppState, name: &str) -> Result<RealmInfo, HttpResponse> {
    match st.broker.realm(name).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(error_page(st, None, 404, "Unknown realm", &format!("There is no realm {name:?} here."))),
        Err(e) => {
            log::error!("realm {name:?}: {e}");
            Err(error_page(st, None, 500, "Something went wrong", "Please try again later."))
        }
    }
}

async fn realm_or_json(st: &AppState, name: &str) -> Result<RealmInfo, HttpResponse> {
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

async fn auth_get(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<BTreeMap<String, String>>,
) -> HttpResponse {
    authorize(req, st, path.into_inner(), query.into_inner()).await
}

async fn auth_post(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<BTreeMap<String, String>>,
) -> HttpResponse {
    authorize(req, st, path.into_inner(), form.into_inner()).await
}

/// The authorization endpoint.
async fn authorize(
    req: HttpRequest,
    st: web::Data<AppState>,
    realm: String,
    params: BTreeMap<String, String>,
) -> HttpResponse {
    let realm = match realm_or_page(&st, &realm).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let sid = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    match st.broker.authorize(&realm, &params, sid.as_deref()).await {
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
                    b.insert_header((
                        header::CONTENT_SECURITY_POLICY,
                        format!("default-src 'none'; style-src {}; frame-ancestors 'none'", st.public_url),
                    ));
                    html(b, body)
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
    query: web::Query<BTreeMap<String, String>>,
) -> HttpResponse {
    let (realm, alias) = path.into_inner();
    let realm = match realm_or_page(&st, &realm).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let flow = query.get("flow").map(String::as_str).unwrap_or_default();
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
    query: web::Query<BTreeMap<String, String>>,
) -> HttpResponse {
    let (realm, alias) = path.into_inner();
    callback(req, st, realm, alias, query.into_inner()).await
}

/// The field marking a callback that Federa's own page re-posted.
const RESUBMIT_FIELD: &str = "federa_resubmit";

async fn endpoint_post(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<BTreeMap<String, String>>,
) -> HttpResponse {
    let (realm_name, alias) = path.into_inner();
    let mut params = form.into_inner();
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
    match st.broker.callback(&realm, &alias, &params, browser_flow.as_deref()).await {
        Ok(outcome) => {
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
    form: web::Form<BTreeMap<String, String>>,
) -> HttpResponse {
    let realm = match realm_or_json(&st, &path).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(federa_broker::flow::client_auth::parse_basic);
    match st.broker.token(&realm, &form, basic).await {
        Ok(tokens) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(tokens),
        Err(TokenError { error, basic }) => {
            let status = crate::error::token_error_status(error.error);
            let mut b = HttpResponse::build(status);
            b.insert_header((header::CACHE_CONTROL, "no-store"));
            if status == actix_web::http::StatusCode::UNAUTHORIZED && basic {
                b.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"federa\""));
            }
            b.json(error)
        }
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
