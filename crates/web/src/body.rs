//! JSON request bodies whose refusals name the field at fault
//! (`config.syncMode: invalid type...`), where actix's own `Json` names only a
//! line and column.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;

use crate::error::WebError;
use crate::JSON_LIMIT;

/// A JSON body of type `T`.
pub struct Body<T>(pub T);

impl<T> Body<T> {
    /// The parsed value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Body<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Parses JSON bytes, naming the field path of a type error.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WebError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            WebError::bad_request(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {inner}"))
        } else {
            WebError::invalid(path, inner.to_string())
        }
    })
}

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = WebError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, WebError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json =
            req.headers().get(actix_web::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
                v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(WebError::bad_request(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "the body must be JSON (Content-Type: application/json)",
                ));
            }
            let bytes = bytes.await.map_err(|e| {
                WebError::bad_request(StatusCode::PAYLOAD_TOO_LARGE, format!("the body cannot be read: {e}"))
            })?;
            if bytes.len() > JSON_LIMIT {
                return Err(WebError::bad_request(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {} MiB", JSON_LIMIT >> 20),
                ));
            }
            parse(&bytes).map(Body)
        })
    }
}
