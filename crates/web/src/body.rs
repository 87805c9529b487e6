//! Request bodies and parameters as Federa reads them: JSON bodies whose
//! refusals name the field at fault (`config.syncMode: invalid type...`),
//! where actix's own `Json` names only a line and column; and the parameters
//! of the OAuth endpoints, which RFC 6749 sections 3.1 and 3.2 forbid to
//! repeat, read so that a repetition is seen rather than silently resolved.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

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

/// The parameters of an OAuth request, from a query string or a form body
/// (`application/x-www-form-urlencoded`). Actix reads those into a list of
/// pairs (`web::Query<Vec<(String, String)>>`, `web::Form<..>`, with their
/// usual limits and error handlers); this keeps the first value of each name
/// and the names that came more than once, which the endpoints refuse (RFC
/// 6749 sections 3.1 and 3.2: "Request and response parameters MUST NOT be
/// included more than once").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    values: BTreeMap<String, String>,
    repeated: Vec<String>,
}

impl Params {
    /// The parameters of `pairs`, in the order they came.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut values = BTreeMap::new();
        let mut repeated = Vec::new();
        for (name, value) in pairs {
            match values.entry(name) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(seen) => {
                    if !repeated.contains(seen.key()) {
                        repeated.push(seen.key().clone());
                    }
                }
            }
        }
        Self { values, repeated }
    }

    /// The names sent more than once, in the order of their first repetition.
    pub fn repeated(&self) -> &[String] {
        &self.repeated
    }

    /// Whether `name` was sent more than once.
    pub fn is_repeated(&self, name: &str) -> bool {
        self.repeated.iter().any(|r| r == name)
    }

    /// A parameter's (first) value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The parameters by name.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// The parameters by name, owned.
    pub fn into_values(self) -> BTreeMap<String, String> {
        self.values
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn params(query: &str) -> Params {
        Params::from_pairs(web::Query::<Vec<(String, String)>>::from_query(query).unwrap().into_inner())
    }

    #[test]
    fn repeated_names_are_seen() {
        let p = params("code=a&state=s&code=b&x=&x=&code=c&y=1");
        assert_eq!(p.repeated(), ["code", "x"]);
        assert!(p.is_repeated("code") && p.is_repeated("x") && !p.is_repeated("state"));
        assert_eq!(p.get("code"), Some("a"));
        assert_eq!(p.get("y"), Some("1"));
        assert_eq!(p.values().len(), 4);

        let once = params("client_id=app&redirect_uri=https%3A%2F%2Fapp.test%2Fcb&Client_id=x");
        assert!(once.repeated().is_empty(), "names are case-sensitive");
        assert_eq!(once.get("redirect_uri"), Some("https://app.test/cb"));
        assert!(params("").into_values().is_empty());
    }
}
