//! The one place where errors become HTTP statuses and JSON bodies.
//!
//! Every refusal answers `{"error": "...", "errorMessage": "..."}` (plus
//! `"field"` when a JSON field is at fault), as Keycloak's admin API does.
//! Internal causes are logged with a reference and never sent to the client.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use federa_broker::BrokerError;
use serde::Serialize;

/// Why an HTTP request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A broker operation refused or failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The admin bearer token is missing or wrong (401).
    #[error("a valid admin bearer token is required")]
    Unauthorized,
    /// The request itself could not be read: malformed JSON, a wrong type, a
    /// body too large, a wrong content type, a malformed query string.
    #[error("{message}")]
    BadRequest {
        /// 400, 413 or 415.
        status: StatusCode,
        /// What is wrong, for the client.
        message: String,
    },
}

impl WebError {
    /// A 400 refusal naming a field, for checks made in this crate.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Broker(BrokerError::invalid(field, message))
    }

    /// A refusal of the request as a whole, with a status of 400, 413 or 415.
    pub fn bad_request(status: StatusCode, message: impl Into<String>) -> Self {
        Self::BadRequest { status, message: message.into() }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    error: &'static str,
    error_message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl ErrorBody {
    fn new(error: &'static str, message: impl Into<String>) -> Self {
        Self { error, error_message: message.into(), field: None }
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Broker(BrokerError::Invalid { .. }) => StatusCode::BAD_REQUEST,
            Self::Broker(BrokerError::NotFound(_)) => StatusCode::NOT_FOUND,
            Self::Broker(BrokerError::Conflict(_)) => StatusCode::CONFLICT,
            Self::Broker(BrokerError::ReadOnly { .. }) => StatusCode::FORBIDDEN,
            Self::Broker(BrokerError::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            Self::Broker(e @ BrokerError::Invalid { field, .. }) => {
                ErrorBody { field: Some(field.clone()), ..ErrorBody::new("invalid_request", e.to_string()) }
            }
            Self::Broker(BrokerError::NotFound(m)) => ErrorBody::new("not_found", m.clone()),
            Self::Broker(BrokerError::Conflict(m)) => ErrorBody::new("conflict", m.clone()),
            Self::Broker(e @ BrokerError::ReadOnly { .. }) => ErrorBody::new("forbidden", e.to_string()),
            Self::Broker(BrokerError::Internal(cause)) => {
                // The reference lets an operator find the cause in the log
                // without the client ever learning it.
                let reference = uuid::Uuid::new_v4();
                log::error!("internal error {reference}: {cause}");
                ErrorBody::new("unknown_error", format!("internal error; reference {reference}"))
            }
            Self::Unauthorized => ErrorBody::new("unauthorized", self.to_string()),
            Self::BadRequest { message, .. } => ErrorBody::new("invalid_request", message.clone()),
        };
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, Self::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(body)
    }
}

/// The status of a token endpoint error (RFC 6749 section 5.2): 401 for a
/// client that failed to authenticate, 500 for Federa's own failure, else 400.
pub fn token_error_status(code: federa_protocol::OAuthErrorCode) -> actix_web::http::StatusCode {
    use actix_web::http::StatusCode;
    use federa_protocol::OAuthErrorCode as C;
    match code {
        C::InvalidClient => StatusCode::UNAUTHORIZED,
        C::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        C::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use actix_web::body::MessageBody;

    fn render(e: WebError) -> (StatusCode, serde_json::Value, Option<String>) {
        let response = e.error_response();
        let status = response.status();
        let auth = response.headers().get(header::WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.into_body().try_into_bytes().unwrap();
        (status, serde_json::from_slice(&bytes).unwrap(), auth)
    }

    #[test]
    fn each_variant_has_its_status_and_body() {
        let (s, b, _) = render(BrokerError::invalid("config.tokenUrl", "is not a URL").into());
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(
            b,
            serde_json::json!({"error": "invalid_request", "errorMessage": "config.tokenUrl: is not a URL",
                               "field": "config.tokenUrl"})
        );

        let (s, b, _) = render(BrokerError::NotFound("realm \"x\" not found".into()).into());
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(b, serde_json::json!({"error": "not_found", "errorMessage": "realm \"x\" not found"}));

        let (s, b, _) = render(BrokerError::Conflict("alias taken".into()).into());
        assert_eq!(s, StatusCode::CONFLICT);
        assert_eq!(b, serde_json::json!({"error": "conflict", "errorMessage": "alias taken"}));

        let (s, b, _) = render(BrokerError::ReadOnly { realm: "r".into(), file: "/etc/r.json".into() }.into());
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(b["error"], "forbidden");
        let m = b["errorMessage"].as_str().unwrap();
        assert!(m.starts_with("realm \"r\" is declared in the realm file /etc/r.json"), "{m}");

        let (s, b, _) = render(BrokerError::Internal("password=hunter2 at db:5432".into()).into());
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        let text = b.to_string();
        assert!(!text.contains("hunter2") && !text.contains("5432"), "{text}");
        assert!(b["errorMessage"].as_str().unwrap().starts_with("internal error"));

        let (s, b, auth) = render(WebError::Unauthorized);
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(auth.as_deref(), Some("Bearer"));
        assert_eq!(
            b,
            serde_json::json!({"error": "unauthorized", "errorMessage": "a valid admin bearer token is required"})
        );

        let (s, b, _) = render(WebError::bad_request(StatusCode::PAYLOAD_TOO_LARGE, "too big"));
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(b, serde_json::json!({"error": "invalid_request", "errorMessage": "too big"}));
    }
}
