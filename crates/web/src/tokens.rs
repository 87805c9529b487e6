//! Introspection (RFC 7662) and revocation (RFC 7009): thin handlers over
//! `Broker::introspect` and `Broker::revoke`, at Keycloak's paths. Their
//! refusals are token-endpoint errors (RFC 6749 section 5.2), with statuses
//! from `error::token_error_status`.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use federa_broker::flow::{RealmInfo, TokenError};
use federa_protocol::{OAuthError, OAuthErrorCode};

use crate::body::Params;
use crate::oidc::{realm_or_json, repeated_message};
use crate::state::AppState;

/// Request parameters as actix reads them, every pair kept.
type Pairs = Vec<(String, String)>;

/// Registers both endpoints inside the `/realms/{realm}` scope.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/protocol/openid-connect/token/introspect", web::post().to(introspect))
        .route("/protocol/openid-connect/revoke", web::post().to(revoke));
}

/// What both endpoints read: the realm, the form (each parameter once, RFC
/// 6749 section 3.2) and HTTP Basic client credentials.
struct TokenRequest {
    realm: RealmInfo,
    form: Params,
    basic: Option<(String, String)>,
}

async fn read(req: &HttpRequest, st: &AppState, realm: &str, form: Pairs) -> Result<TokenRequest, HttpResponse> {
    let realm = realm_or_json(st, realm).await?;
    let form = Params::from_pairs(form);
    if !form.repeated().is_empty() {
        let e = OAuthError::new(OAuthErrorCode::InvalidRequest, repeated_message(&form));
        return Err(refusal(TokenError { error: e, basic: false }));
    }
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(federa_broker::flow::client_auth::parse_basic);
    Ok(TokenRequest { realm, form, basic })
}

pub(crate) fn refusal(TokenError { error, basic }: TokenError) -> HttpResponse {
    let status = crate::error::token_error_status(error.error);
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CACHE_CONTROL, "no-store"));
    if status == StatusCode::UNAUTHORIZED && basic {
        b.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"federa\""));
    }
    b.json(error)
}

/// `POST /protocol/openid-connect/token/introspect` (RFC 7662 section 2).
async fn introspect(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Pairs>,
) -> HttpResponse {
    let r = match read(&req, &st, &path, form.into_inner()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match st.broker.introspect(&r.realm, r.form.values(), r.basic).await {
        Ok(answer) => HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(answer),
        Err(e) => refusal(e),
    }
}

/// `POST /protocol/openid-connect/revoke` (RFC 7009 section 2): 200 with no
/// body once the token cannot be used.
async fn revoke(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Pairs>,
) -> HttpResponse {
    let r = match read(&req, &st, &path, form.into_inner()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match st.broker.revoke(&r.realm, r.form.values(), r.basic).await {
        Ok(()) => HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).finish(),
        Err(e) => refusal(e),
    }
}
