//! `POST /realms/{realm}/protocol/openid-connect/logout/backchannel-logout`
//! (OpenID Connect Back-Channel Logout 1.0 section 2.5): an upstream posts a
//! Logout Token; `Broker::backchannel_logout` decides. 200 when it was
//! accepted (whether or not a session was live), 400 `invalid_request` for
//! anything wrong with it (section 2.8), always `Cache-Control: no-store`.
//! And `GET /realms/{realm}/broker/{alias}/endpoint/logout_response`, where
//! a browser comes back from an upstream's logout.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use federa_broker::flow::backchannel::BackchannelError;
use federa_broker::flow::logout::{LogoutError, LogoutOutcome};
use serde_json::json;

use crate::body::Params;
use crate::oidc::{error_page, realm_or_json, realm_or_page, repeated_message, Pairs};
use crate::state::AppState;

/// Registers both routes inside the `/realms/{realm}` scope.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/protocol/openid-connect/logout/backchannel-logout", web::post().to(receive))
        .route("/broker/{alias}/endpoint/logout_response", web::get().to(logout_response));
}

fn bad_request(description: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"error": "invalid_request", "error_description": description}))
}

async fn receive(st: web::Data<AppState>, path: web::Path<String>, form: web::Form<Pairs>) -> HttpResponse {
    let realm = match realm_or_json(&st, &path).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let form = Params::from_pairs(form.into_inner());
    if !form.repeated().is_empty() {
        return bad_request(&repeated_message(&form));
    }
    let token = form.get("logout_token").unwrap_or_default();
    match st.broker.backchannel_logout(&realm, token).await {
        Ok(_) => HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).finish(),
        Err(BackchannelError::Invalid(why)) => bad_request(&why),
        Err(BackchannelError::Internal) => {
            HttpResponse::InternalServerError().insert_header((header::CACHE_CONTROL, "no-store")).finish()
        }
    }
}

async fn logout_response(
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<Pairs>,
) -> HttpResponse {
    let (realm, alias) = path.into_inner();
    let realm = match realm_or_page(&st, &realm).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let params = Params::from_pairs(query.into_inner());
    let state = params.get("state").filter(|_| !params.is_repeated("state"));
    match st.broker.upstream_logout_return(&realm, &alias, state).await {
        Ok(LogoutOutcome::SignedOut { redirect }) => crate::logout::signed_out(&st, &realm, redirect),
        Ok(LogoutOutcome::Confirm { .. }) | Err(LogoutError::Refused { .. } | LogoutError::Internal) => {
            error_page(&st, Some(&realm), 500, "Something went wrong", "The sign-out could not be completed.")
        }
    }
}
