//! Client authentication at the token endpoint (RFC 6749 sections 2.3 and
//! 3.2.1), shared by every grant and, later, by revocation and introspection.

use std::collections::BTreeMap;
use std::sync::Arc;

use federa_protocol::{OAuthError, OAuthErrorCode};

use super::token::TokenError;
use super::{Broker, RealmInfo};
use crate::model::{Client, ClientAuth};

/// What a request presented to authenticate its client.
#[derive(Debug)]
pub struct Credentials {
    /// The client id.
    pub client_id: String,
    /// The secret, when one was presented.
    secret: Option<String>,
    /// Whether HTTP Basic was used (the 401 then names the scheme).
    pub basic: bool,
}

/// Splits `Authorization: Basic` into client id and secret, each form-urldecoded (RFC 6749 section 2.3.1).
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let dec = |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((dec(id)?, dec(secret)?))
}

/// Reads the client's credentials from the form and the Basic header:
/// exactly one method (RFC 6749 section 2.3).
pub fn credentials(
    form: &BTreeMap<String, String>,
    basic: Option<(String, String)>,
) -> Result<Credentials, TokenError> {
    let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    match (basic, get("client_secret")) {
        (Some(_), Some(_)) => {
            Err(TokenError::new(OAuthErrorCode::InvalidRequest, "use one client authentication method"))
        }
        (Some((id, secret)), None) => {
            if get("client_id").is_some_and(|c| c != id) {
                return Err(TokenError::new(
                    OAuthErrorCode::InvalidRequest,
                    "client_id differs from the authenticated client",
                ));
            }
            Ok(Credentials { client_id: id, secret: Some(secret), basic: true })
        }
        (None, secret) => {
            let id = get("client_id").ok_or_else(|| TokenError {
                error: OAuthError::new(OAuthErrorCode::InvalidClient, "client authentication is required"),
                basic: false,
            })?;
            Ok(Credentials { client_id: id.to_owned(), secret: secret.map(str::to_owned), basic: false })
        }
    }
}

impl Broker {
    /// Authenticates the client. An unknown client, a disabled one, a wrong
    /// secret and a method Federa does not support all get the same answer,
    /// so the endpoint does not tell which client ids exist.
    pub async fn authenticate_client(&self, realm: &RealmInfo, creds: &Credentials) -> Result<Arc<Client>, TokenError> {
        let failed = || TokenError {
            error: OAuthError::new(OAuthErrorCode::InvalidClient, "client authentication failed"),
            basic: creds.basic,
        };
        let client = self.find_client(&realm.name, &creds.client_id).await.map_err(TokenError::server)?;
        let Some(client) = client.filter(|c| c.enabled) else {
            log::info!(
                "realm {:?}: unknown or disabled client {:?} at the token endpoint",
                realm.name,
                creds.client_id
            );
            return Err(failed());
        };
        let ok = match (client.auth, &client.secret, &creds.secret) {
            (ClientAuth::None, _, None) => true,
            (ClientAuth::Secret, Some(stored), Some(presented)) => stored.verify(presented),
            (ClientAuth::Unsupported, ..) => {
                log::warn!(
                    "realm {:?}: client {:?} uses a clientAuthenticatorType Federa does not support yet",
                    realm.name,
                    creds.client_id
                );
                false
            }
            _ => false,
        };
        if !ok {
            log::info!("realm {:?}: client {:?} failed to authenticate", realm.name, creds.client_id);
            return Err(failed());
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        use base64::Engine as _;
        let h = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("my%20app:s%3Acret"));
        assert_eq!(parse_basic(&h), Some(("my app".into(), "s:cret".into())));
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn exactly_one_method() {
        let form: BTreeMap<String, String> = [("client_secret".to_owned(), "s".to_owned())].into();
        let err = credentials(&form, Some(("app".into(), "s".into()))).unwrap_err();
        assert_eq!(err.error.error, OAuthErrorCode::InvalidRequest);
        let err = credentials(&BTreeMap::new(), None).unwrap_err();
        assert_eq!(err.error.error, OAuthErrorCode::InvalidClient);
    }
}
