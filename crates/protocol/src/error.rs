//! OAuth 2.0 error responses (RFC 6749 sections 4.1.2.1 and 5.2).

use serde::Serialize;

/// The error codes of RFC 6749 sections 4.1.2.1 and 5.2 and OpenID Connect
/// Core section 3.1.2.6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    /// The request is missing a parameter or is otherwise malformed.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The grant or code is invalid, expired, revoked or was issued to another client.
    InvalidGrant,
    /// The client may not use this grant type.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// The response type is not supported.
    UnsupportedResponseType,
    /// The requested scope is invalid.
    InvalidScope,
    /// The resource owner or the upstream refused.
    AccessDenied,
    /// The server met an unexpected condition.
    ServerError,
    /// The server is temporarily unable to handle the request.
    TemporarilyUnavailable,
    /// `prompt=none` was asked but the user must sign in.
    LoginRequired,
    /// `prompt=none` was asked but the user must interact.
    InteractionRequired,
}

/// An OAuth error as sent to a client: its body is exactly RFC 6749 section 5.2's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OAuthError {
    /// The error code.
    pub error: OAuthErrorCode,
    /// A human-readable description for the client developer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl OAuthError {
    /// An error with a description.
    pub fn new(error: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self { error, error_description: Some(description.into()) }
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = serde_json::to_value(self.error).unwrap_or_default();
        write!(f, "{}", code.as_str().unwrap_or("error"))?;
        if let Some(d) = &self.error_description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for OAuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_rfc6749_section_5_2() {
        let e = OAuthError::new(OAuthErrorCode::InvalidGrant, "code was already used");
        let body = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(body, serde_json::json!({"error": "invalid_grant", "error_description": "code was already used"}));
        let bare = OAuthError { error: OAuthErrorCode::InvalidRequest, error_description: None };
        assert_eq!(serde_json::to_string(&bare).unwrap_or_default(), r#"{"error":"invalid_request"}"#);
    }
}
