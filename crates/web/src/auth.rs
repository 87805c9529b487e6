//! Authorization of the admin API, as an extractor: a handler that takes
//! [`Admin`] cannot run without a valid admin bearer token, so no handler can
//! forget the check.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use federa_broker::BrokerError;

use crate::error::WebError;
use crate::state::AppState;

/// Proof that the request carries the admin bearer token (RFC 6750 section 2.1).
#[derive(Debug)]
pub struct Admin;

/// The token of an `Authorization: Bearer <token>` header. The scheme is
/// case-insensitive (RFC 7235 section 2.1).
pub(crate) fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn authorize(req: &HttpRequest) -> Result<Admin, WebError> {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(BrokerError::Internal("the admin API is mounted without an AppState".into()).into());
    };
    match bearer_token(req) {
        // An empty configured token must never match an empty presented one;
        // `bearer_token` already refuses empty tokens.
        Some(token) if state.admin_token.verify(token) => Ok(Admin),
        Some(_) => {
            let peer = req.connection_info().realip_remote_addr().unwrap_or("unknown").to_owned();
            log::warn!("admin API: refused a wrong bearer token from {peer} for {} {}", req.method(), req.path());
            Err(WebError::Unauthorized)
        }
        None => Err(WebError::Unauthorized),
    }
}

impl FromRequest for Admin {
    type Error = WebError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authorize(req))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn bearer_token_parsing() {
        let token = |h: &str| {
            let req = TestRequest::default().insert_header((AUTHORIZATION, h)).to_http_request();
            bearer_token(&req).map(str::to_owned)
        };
        assert_eq!(token("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(token("bearer abc").as_deref(), Some("abc"));
        assert_eq!(token("Bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(token("Bearer "), None);
        assert_eq!(token("Bearer"), None);
        assert_eq!(token("Basic abc"), None);
        assert_eq!(bearer_token(&TestRequest::default().to_http_request()), None);
    }
}
