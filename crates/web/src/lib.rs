//! Federa's HTTP layer: the admin API (Keycloak's paths and JSON), health
//! probes and Prometheus metrics, on actix-web. This is the only crate that
//! knows about HTTP status codes; the operations themselves live in
//! `federa_broker`.
//!
//! Build the app with the shared [`AppState`], [`configure`] and the metrics
//! middleware, which `configure` cannot add itself:
//!
//! ```no_run
//! # fn app(state: federa_web::AppState) {
//! use actix_web::{middleware, web, App};
//!
//! let state = web::Data::new(state);
//! let _app = App::new()
//!     .app_data(state)
//!     .wrap(middleware::from_fn(federa_web::metrics_middleware))
//!     .configure(federa_web::configure);
//! # }
//! ```

mod admin;
pub mod auth;
mod backchannel;
pub mod body;
pub mod error;
mod health;
mod logout;
pub mod metrics;
mod oidc;
pub mod pages;
pub mod state;
mod tokens;

use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};

pub use auth::Admin;
pub use error::WebError;
pub use metrics::{metrics_middleware, Metrics};
pub use state::AppState;

/// The largest JSON body accepted: realm exports are large.
pub const JSON_LIMIT: usize = 10 * 1024 * 1024;

/// Registers every route, and the JSON and query-string settings that turn
/// unreadable requests into JSON error bodies.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(json_config())
        .app_data(web::PayloadConfig::new(JSON_LIMIT))
        .app_data(query_config())
        .app_data(form_config())
        .route("/health/live", web::get().to(health::live))
        .route("/health/ready", web::get().to(health::ready))
        .route("/metrics", web::get().to(metrics::metrics))
        .configure(admin::configure)
        .configure(oidc::configure);
}

/// JSON bodies up to [`JSON_LIMIT`]; malformed JSON and wrong types answer 400
/// with serde's message, which names the line and column (or the missing field).
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(JSON_LIMIT).error_handler(json_error)
}

/// Form bodies (the token endpoint's, form_post answers) that cannot be read
/// answer 400 with an RFC 6749 section 5.2 body.
pub fn form_config() -> web::FormConfig {
    web::FormConfig::default().limit(64 * 1024).error_handler(|e, _| {
        let body = serde_json::json!({
            "error": "invalid_request",
            "error_description": format!("the body must be application/x-www-form-urlencoded: {e}"),
        });
        actix_web::error::InternalError::from_response(e, actix_web::HttpResponse::BadRequest().json(body)).into()
    })
}

/// Query strings that cannot be read answer 400 with a JSON body.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|e, _| WebError::bad_request(StatusCode::BAD_REQUEST, query_message(&e)).into())
}

fn query_message(e: &QueryPayloadError) -> String {
    match e {
        QueryPayloadError::Deserialize(e) => format!("the query string cannot be read: {e}"),
        other => format!("the query string cannot be read: {other}"),
    }
}

fn json_error(e: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let (status, message) = match &e {
        JsonPayloadError::Deserialize(e) => (StatusCode::BAD_REQUEST, format!("the body is not valid: {e}")),
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            (StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {} MiB", JSON_LIMIT >> 20))
        }
        JsonPayloadError::ContentType => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "the body must be JSON (Content-Type: application/json)".into())
        }
        other => (StatusCode::BAD_REQUEST, format!("the body cannot be read: {other}")),
    };
    WebError::bad_request(status, message).into()
}
