//! The logout endpoint (OpenID Connect RP-Initiated Logout 1.0), GET and
//! POST `/realms/{realm}/protocol/openid-connect/logout`: thin handlers over
//! `Broker::logout` and `Broker::confirm_logout`, which decide everything.
//! Here: the session cookie read and expired, the redirect, and the pages
//! (confirmation, signed out, errors), each with the headers of every page.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use federa_broker::flow::logout::{LogoutError, LogoutOutcome};
use federa_broker::flow::RealmInfo;

use crate::body::Params;
use crate::oidc::{
    common, cookie, error_page, html, realm_or_page, repeated_message, static_base, theme, PagePolicy, Pairs,
    SESSION_COOKIE,
};
use crate::pages::{LoggedOutPage, LogoutConfirmPage};
use crate::state::AppState;

/// The field of the confirmation form carrying its one-time token. A POST
/// with this field answers a confirmation page; any other POST is a logout
/// request, as a GET is (RP-Initiated Logout 1.0 section 2). A GET never
/// confirms: the token stays out of URLs, logs and `Referer` headers.
const CONFIRM_FIELD: &str = "federa_confirm";

/// `GET .../logout`.
pub(crate) async fn logout_get(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<Pairs>,
) -> HttpResponse {
    logout(req, st, path.into_inner(), Params::from_pairs(query.into_inner()), false).await
}

/// `POST .../logout`: a logout request, or the answer of a confirmation page.
pub(crate) async fn logout_post(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Pairs>,
) -> HttpResponse {
    logout(req, st, path.into_inner(), Params::from_pairs(form.into_inner()), true).await
}

async fn logout(req: HttpRequest, st: web::Data<AppState>, realm: String, params: Params, post: bool) -> HttpResponse {
    let realm = match realm_or_page(&st, &realm).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !params.repeated().is_empty() {
        let message = format!("The sign-out request: {}.", repeated_message(&params));
        return error_page(&st, Some(&realm), 400, "Invalid sign-out request", &message);
    }
    let cookie_sid = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    let outcome = match params.get(CONFIRM_FIELD).filter(|_| post) {
        Some(token) => st.broker.confirm_logout(&realm, token, cookie_sid.as_deref()).await,
        None => st.broker.logout(&realm, params.values(), cookie_sid.as_deref()).await,
    };
    match outcome {
        Ok(LogoutOutcome::SignedOut { redirect }) => signed_out(&st, &realm, redirect),
        Ok(LogoutOutcome::Confirm { token, client_name }) => confirm_page(&st, &realm, &token, client_name.as_deref()),
        Err(LogoutError::Refused { title, message }) => error_page(&st, Some(&realm), 400, &title, &message),
        Err(LogoutError::Internal) => error_page(
            &st,
            Some(&realm),
            500,
            "Something went wrong",
            "Federa could not sign you out. Please try again.",
        ),
    }
}

/// The session has ended: the cookie is expired, and the browser goes to
/// the checked post-logout redirect URI or sees the signed-out page.
pub(crate) fn signed_out(st: &AppState, realm: &RealmInfo, redirect: Option<String>) -> HttpResponse {
    let mut resp = match redirect {
        Some(location) => HttpResponse::Found()
            .insert_header((header::LOCATION, location))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .finish(),
        None => {
            let base = static_base(st, Some(realm));
            let page = LoggedOutPage { common: common(Some(realm), &base) };
            match st.themes.render_logged_out(theme(Some(realm)), &page) {
                Ok(body) => html(st, HttpResponse::Ok(), PagePolicy::Static, body),
                Err(e) => {
                    log::error!("logged-out page cannot be rendered: {e}");
                    error_page(st, Some(realm), 500, "Signed out", "You are signed out. You can close this window.")
                }
            }
        }
    };
    let _ = resp.add_removal_cookie(&cookie(st, &realm.name, SESSION_COOKIE, String::new(), 0));
    resp
}

/// "Sign out of <realm>?": a form posting the one-time token back here.
fn confirm_page(st: &AppState, realm: &RealmInfo, token: &str, client_name: Option<&str>) -> HttpResponse {
    let base = static_base(st, Some(realm));
    let action = format!("{}/protocol/openid-connect/logout", realm.issuer);
    let page = LogoutConfirmPage {
        common: common(Some(realm), &base),
        action: &action,
        confirm_field: CONFIRM_FIELD,
        confirm_token: token,
        client_name,
    };
    match st.themes.render_logout_confirm(theme(Some(realm)), &page) {
        Ok(body) => html(st, HttpResponse::Ok(), PagePolicy::Form { action: &action }, body),
        Err(e) => {
            log::error!("logout confirmation cannot be rendered: {e}");
            error_page(st, Some(realm), 500, "Something went wrong", "The sign-out page cannot be shown.")
        }
    }
}
