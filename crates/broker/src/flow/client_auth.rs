//! Client authentication at Federa's token, introspection and revocation
//! endpoints (RFC 6749 sections 2.3 and 3.2.1): a secret in HTTP Basic or
//! the form, or a client assertion (RFC 7521 section 4.2, RFC 7523 sections
//! 2.2 and 3, OpenID Connect Core 1.0 section 9) signed with the client
//! secret (`client-secret-jwt`) or with the client's private key
//! (`client-jwt`, its public keys from `jwks.url` or `jwks.string`). Each
//! client has one method, its `clientAuthenticatorType`; anything else is
//! refused with the same `invalid_client`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use federa_protocol::client_assertion::{self, AssertionCheck, AssertionError, AssertionKey, VerifiedAssertion};
use federa_protocol::{OAuthError, OAuthErrorCode, Secret};
use serde_json::Value;

use super::token::TokenError;
use super::{now, Broker, RealmInfo};
use crate::model::{Client, ClientAuth, ClientJwks};

/// What a request presented to authenticate its client.
#[derive(Debug)]
pub struct Credentials {
    /// The client id.
    pub client_id: String,
    /// The secret, when one was presented.
    secret: Option<String>,
    /// The client assertion (a JWT), when one was presented.
    assertion: Option<Secret>,
    /// Whether HTTP Basic was used (the 401 then names the scheme).
    pub basic: bool,
}

/// Splits `Authorization: Basic` into client id and secret, each form-urldecoded (RFC 6749 section 2.3.1).
pub fn parse_basic(header: &str) -> Option<(String, String)> {
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

/// The unverified `sub` of a JWT: which client an assertion claims to be,
/// when the form does not name it (RFC 7521 section 4.2: `client_id` is
/// optional with an assertion). It only chooses the client whose keys then
/// verify the assertion, which must name the same client in `iss` and `sub`.
fn assertion_subject(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub").and_then(Value::as_str).map(str::to_owned)
}

/// Reads the client's credentials from the form and the Basic header:
/// exactly one method (RFC 6749 section 2.3).
pub fn credentials(
    form: &BTreeMap<String, String>,
    basic: Option<(String, String)>,
) -> Result<Credentials, TokenError> {
    let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let unauthenticated = || TokenError {
        error: OAuthError::new(OAuthErrorCode::InvalidClient, "client authentication is required"),
        basic: false,
    };
    let one_method = || TokenError::new(OAuthErrorCode::InvalidRequest, "use one client authentication method");
    let other_client =
        || TokenError::new(OAuthErrorCode::InvalidRequest, "client_id differs from the authenticated client");
    match (get("client_assertion"), get("client_assertion_type")) {
        (None, None) => {}
        (Some(jwt), Some(client_assertion::ASSERTION_TYPE)) => {
            if basic.is_some() || get("client_secret").is_some() {
                return Err(one_method());
            }
            let claimed = assertion_subject(jwt);
            let client_id = match (get("client_id"), claimed) {
                (Some(id), Some(sub)) if id != sub => return Err(other_client()),
                (Some(id), _) => id.to_owned(),
                (None, Some(sub)) => sub,
                (None, None) => return Err(unauthenticated()),
            };
            return Ok(Credentials {
                client_id,
                secret: None,
                assertion: Some(Secret::new(jwt.to_owned())),
                basic: false,
            });
        }
        // RFC 7521 section 4.2.1: an assertion of another type, or half of
        // the pair, cannot authenticate the client.
        (jwt, kind) => {
            log::info!(
                "client authentication with client_assertion {} and client_assertion_type {kind:?} refused",
                if jwt.is_some() { "present" } else { "absent" }
            );
            return Err(TokenError {
                error: OAuthError::new(OAuthErrorCode::InvalidClient, "client authentication failed"),
                basic: false,
            });
        }
    }
    match (basic, get("client_secret")) {
        (Some(_), Some(_)) => Err(one_method()),
        (Some((id, secret)), None) => {
            if get("client_id").is_some_and(|c| c != id) {
                return Err(other_client());
            }
            Ok(Credentials { client_id: id, secret: Some(secret), assertion: None, basic: true })
        }
        (None, secret) => {
            let id = get("client_id").ok_or_else(unauthenticated)?;
            Ok(Credentials {
                client_id: id.to_owned(),
                secret: secret.map(str::to_owned),
                assertion: None,
                basic: false,
            })
        }
    }
}

/// The key an assertion of `client` is checked with, once fetched.
enum KeySource {
    Secret(Secret),
    Set(Value),
}

impl Broker {
    /// Authenticates the client. An unknown client, a disabled one, a wrong
    /// secret, a refused assertion and a method the client is not registered
    /// for all get the same answer, so the endpoint does not tell which
    /// client ids exist; the reason goes to the log only.
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
        let refused = |why: &str| {
            log::info!("realm {:?}: client {:?} failed to authenticate: {why}", realm.name, creds.client_id);
            failed()
        };
        let assertion = creds.assertion.as_ref().map(Secret::expose);
        match (client.auth, &client.secret, &creds.secret, assertion) {
            (ClientAuth::None, _, None, None) => Ok(client),
            (ClientAuth::Secret, Some(stored), Some(presented), None) => {
                if stored.verify(presented) {
                    Ok(client)
                } else {
                    Err(refused("wrong secret"))
                }
            }
            (ClientAuth::SecretJwt | ClientAuth::PrivateKeyJwt, _, None, Some(jwt)) => {
                match self.verify_assertion(realm, &client, jwt).await? {
                    Ok(()) => Ok(client),
                    Err(why) => Err(refused(&why)),
                }
            }
            (ClientAuth::Unsupported, ..) => {
                log::warn!(
                    "realm {:?}: client {:?} uses a clientAuthenticatorType Federa does not support yet",
                    realm.name,
                    creds.client_id
                );
                Err(failed())
            }
            (auth, ..) => Err(refused(&format!("its method is {auth:?}, and the request used another"))),
        }
    }

    /// The identifiers of this realm an assertion's `aud` may name: the
    /// issuer (Keycloak accepts it too) and the endpoints that authenticate
    /// clients.
    fn assertion_audiences(realm: &RealmInfo) -> Vec<String> {
        let base = format!("{}/protocol/openid-connect", realm.issuer);
        vec![
            realm.issuer.clone(),
            format!("{base}/token"),
            format!("{base}/token/introspect"),
            format!("{base}/revoke"),
        ]
    }

    /// Checks a client assertion and records its `jti`: `Ok(Err(reason))`
    /// when it is refused, `Err` on an internal failure only.
    async fn verify_assertion(
        &self,
        realm: &RealmInfo,
        client: &Client,
        jwt: &str,
    ) -> Result<Result<(), String>, TokenError> {
        let source = match (client.auth, &client.secret, &client.jwks) {
            (ClientAuth::SecretJwt, Some(secret), _) => KeySource::Secret(Secret::new(secret.expose().to_owned())),
            (ClientAuth::PrivateKeyJwt, _, Some(ClientJwks::Set(set))) => KeySource::Set(set.clone()),
            (ClientAuth::PrivateKeyJwt, _, Some(ClientJwks::Url(url))) => {
                match self.upstreams.jwks(&self.http, url, false).await {
                    Ok(set) => KeySource::Set(set),
                    Err(e) => return Ok(Err(e)),
                }
            }
            _ => return Ok(Err("the client has no secret or keys to check an assertion with".to_owned())),
        };
        let mut checked = self.check_assertion_off_worker(realm, client, jwt, source).await?;
        if let (Err(AssertionError::UnknownKey(_)), Some(ClientJwks::Url(url))) = (&checked, &client.jwks) {
            // The client may have rotated its keys: fetch its set again (at
            // most once per interval per URL) and try once more.
            match self.upstreams.jwks(&self.http, url, true).await {
                Ok(set) => checked = self.check_assertion_off_worker(realm, client, jwt, KeySource::Set(set)).await?,
                Err(e) => return Ok(Err(e)),
            }
        }
        let verified = match checked {
            Ok(v) => v,
            Err(e) => return Ok(Err(e.to_string())),
        };
        // Single use (RFC 7523 section 3, item 7): the jti is added only if
        // absent, atomically, and kept until the assertion expires, so a
        // replay (even one racing the first use) finds it.
        let now = now();
        let ttl = verified.exp.saturating_add(client_assertion::CLOCK_SKEW_SECS).saturating_sub(now).max(1);
        let key = super::state::assertion_key(&realm.name, &client.client_id, &verified.jti);
        let first = self
            .sessions
            .put_if_absent(&key, "1", Duration::from_secs(u64::try_from(ttl).unwrap_or(1)))
            .await
            .map_err(TokenError::server)?;
        if !first {
            return Ok(Err(format!("the assertion's jti {:?} was already used", verified.jti)));
        }
        Ok(Ok(()))
    }

    /// Verifies the assertion on the blocking pool: a public-key signature
    /// check is too long for an async worker.
    async fn check_assertion_off_worker(
        &self,
        realm: &RealmInfo,
        client: &Client,
        jwt: &str,
        source: KeySource,
    ) -> Result<Result<VerifiedAssertion, AssertionError>, TokenError> {
        let audiences = Self::assertion_audiences(realm);
        let client_id = client.client_id.clone();
        let jwt = jwt.to_owned();
        let verifiers = self.upstreams.verifiers();
        tokio::task::spawn_blocking(move || {
            let check = AssertionCheck { client_id: &client_id, audiences: &audiences, now: now() };
            let key = match &source {
                KeySource::Secret(s) => AssertionKey::Secret(s.expose()),
                KeySource::Set(set) => AssertionKey::Jwks(set),
            };
            client_assertion::verify(&jwt, key, &check, Some(&verifiers))
        })
        .await
        .map_err(TokenError::server)
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

    #[test]
    fn an_assertion_is_one_method_and_names_its_client() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwt = format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(br#"{"sub":"svc","iss":"svc"}"#));
        let form = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            let mut f: BTreeMap<String, String> = [
                ("client_assertion".to_owned(), jwt.clone()),
                ("client_assertion_type".to_owned(), client_assertion::ASSERTION_TYPE.to_owned()),
            ]
            .into();
            f.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
            f
        };
        let c = credentials(&form(&[]), None).unwrap();
        assert_eq!((c.client_id.as_str(), c.secret.is_none(), c.assertion.is_some()), ("svc", true, true));
        assert_eq!(credentials(&form(&[("client_id", "svc")]), None).unwrap().client_id, "svc");
        let code =
            |f: &BTreeMap<String, String>, b: Option<(String, String)>| credentials(f, b).unwrap_err().error.error;
        assert_eq!(code(&form(&[("client_id", "other")]), None), OAuthErrorCode::InvalidRequest);
        assert_eq!(code(&form(&[("client_secret", "s")]), None), OAuthErrorCode::InvalidRequest);
        assert_eq!(code(&form(&[]), Some(("svc".into(), "s".into()))), OAuthErrorCode::InvalidRequest);
        assert_eq!(code(&form(&[("client_assertion_type", "urn:other")]), None), OAuthErrorCode::InvalidClient);
        let mut half = form(&[]);
        half.remove("client_assertion_type");
        assert_eq!(code(&half, None), OAuthErrorCode::InvalidClient);
    }
}
