//! OpenID Connect Discovery 1.0: reading an upstream provider's metadata
//! (section 3) and building Federa's own for a realm (section 4.2).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// An upstream OpenID Provider's metadata (OpenID Connect Discovery 1.0
/// section 3, with RFC 8414 section 2, RFC 9207 section 3 and OpenID Connect
/// Back-Channel Logout 1.0 section 2.1). Fields Federa does not use are
/// ignored.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ProviderMetadata {
    /// The issuer identifier; the caller must check that it equals the issuer
    /// the document was fetched for (Discovery section 4.3).
    pub issuer: String,
    /// The authorization endpoint.
    pub authorization_endpoint: String,
    /// The token endpoint, absent only for implicit-only providers.
    pub token_endpoint: Option<String>,
    /// The UserInfo endpoint.
    pub userinfo_endpoint: Option<String>,
    /// The JWK Set document holding the provider's signing keys.
    pub jwks_uri: String,
    /// The RP-initiated logout endpoint (OpenID Connect RP-Initiated Logout 1.0 section 2.1).
    pub end_session_endpoint: Option<String>,
    /// The PKCE methods supported (RFC 8414 section 2); empty when not stated.
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    /// The JWS algorithms the provider signs ID tokens with.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// The client authentication methods of the token endpoint.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Whether authorization responses carry `iss` (RFC 9207 section 3).
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// Whether the provider sends back-channel logout tokens.
    #[serde(default)]
    pub backchannel_logout_supported: bool,
}

/// The claims Federa's tokens and UserInfo responses may carry.
const CLAIMS_SUPPORTED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "azp",
    "sid",
    "at_hash",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "email",
    "email_verified",
];

/// Federa's own discovery document for a realm whose issuer is `issuer`
/// (OpenID Connect Discovery 1.0 section 3, served as section 4.2 says).
///
/// Endpoint paths follow Keycloak's, under
/// `{issuer}/protocol/openid-connect/`, so that clients configured for
/// Keycloak keep working. `issuer` should have no trailing slash; if it has
/// one, it is kept in the `issuer` value (which must equal tokens' `iss`) but
/// not doubled in the endpoint URLs. `alg` is the realm's signing algorithm.
pub fn op_metadata(issuer: &str, alg: &str) -> Value {
    let base = format!("{}/protocol/openid-connect", issuer.trim_end_matches('/'));
    // OpenID Connect Core 1.0 section 9: secrets, assertions signed with
    // the secret or the client's key, and public clients (`none`).
    let client_auth = ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"];
    let assertion_algs: Vec<&str> =
        crate::client_assertion::HMAC_ALGS.iter().chain(crate::id_token::DEFAULT_ALGS).copied().collect();
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/auth"),
        // OpenID Connect RP-Initiated Logout 1.0 section 2.1.
        "end_session_endpoint": format!("{base}/logout"),
        "token_endpoint": format!("{base}/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/certs"),
        // Only endpoints that are served are advertised: a client must not
        // be told of endpoints that answer 404.
        // RFC 7009 section 2 and RFC 8414 section 2: a public client may
        // revoke its own tokens; introspection needs a confidential client
        // (RFC 7662 section 2.1).
        "revocation_endpoint": format!("{base}/revoke"),
        "revocation_endpoint_auth_methods_supported": client_auth,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint": format!("{base}/token/introspect"),
        "introspection_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg],
        "token_endpoint_auth_methods_supported": client_auth,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "roles", "offline_access"],
        "claims_supported": CLAIMS_SUPPORTED,
        "authorization_response_iss_parameter_supported": true,
        "frontchannel_logout_supported": false,
        // OpenID Connect Back-Channel Logout 1.0 section 2.1: clients with a
        // back-channel logout URL get a logout token, with `sid`.
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "request_parameter_supported": false,
        "claims_parameter_supported": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://sso.example.com/realms/acme";

    #[test]
    fn own_metadata_uses_keycloak_paths() {
        let doc = op_metadata(ISSUER, "RS256");
        let base = "https://sso.example.com/realms/acme/protocol/openid-connect";
        assert_eq!(doc["issuer"], ISSUER);
        assert_eq!(doc["authorization_endpoint"], format!("{base}/auth"));
        assert_eq!(doc["token_endpoint"], format!("{base}/token"));
        assert_eq!(doc["userinfo_endpoint"], format!("{base}/userinfo"));
        assert_eq!(doc["jwks_uri"], format!("{base}/certs"));
        assert_eq!(doc["end_session_endpoint"], format!("{base}/logout"));
        assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["RS256"]));
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(doc["response_modes_supported"], json!(["query", "form_post"]));
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        assert_eq!(doc["frontchannel_logout_supported"], false);
        assert_eq!(doc["backchannel_logout_supported"], true);
        assert_eq!(doc["backchannel_logout_session_supported"], true);
        assert!(doc["claims_supported"].as_array().is_some_and(|c| c.contains(&json!("sub"))));
    }

    #[test]
    fn own_metadata_lists_revocation_introspection_and_client_credentials() {
        let doc = op_metadata(ISSUER, "RS256");
        let base = "https://sso.example.com/realms/acme/protocol/openid-connect";
        assert_eq!(doc["revocation_endpoint"], format!("{base}/revoke"));
        assert_eq!(doc["introspection_endpoint"], format!("{base}/token/introspect"));
        assert_eq!(
            doc["revocation_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"])
        );
        assert_eq!(
            doc["introspection_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"])
        );
        assert_eq!(doc["token_endpoint_auth_methods_supported"], doc["revocation_endpoint_auth_methods_supported"]);
        for endpoint in ["token", "revocation", "introspection"] {
            let algs = &doc[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")];
            assert!(algs.as_array().is_some_and(|a| a.contains(&json!("HS256")) && a.contains(&json!("RS256"))));
            assert!(!algs.as_array().is_some_and(|a| a.contains(&json!("none"))), "{endpoint}: {algs}");
        }
        assert_eq!(doc["grant_types_supported"], json!(["authorization_code", "refresh_token", "client_credentials"]));
    }

    #[test]
    fn own_metadata_does_not_double_a_trailing_slash() {
        let doc = op_metadata("https://sso.example.com/realms/acme/", "ES256");
        assert_eq!(doc["issuer"], "https://sso.example.com/realms/acme/");
        assert_eq!(doc["token_endpoint"], "https://sso.example.com/realms/acme/protocol/openid-connect/token");
    }

    #[test]
    fn own_metadata_reads_back_as_provider_metadata() {
        let parsed: ProviderMetadata = serde_json::from_value(op_metadata(ISSUER, "EdDSA")).unwrap();
        assert_eq!(parsed.issuer, ISSUER);
        assert_eq!(parsed.id_token_signing_alg_values_supported, vec!["EdDSA"]);
        assert!(parsed.authorization_response_iss_parameter_supported);
        assert!(parsed.backchannel_logout_supported);
    }

    #[test]
    fn upstream_metadata_ignores_unknown_fields_and_defaults_lists() {
        // The document has the required members of Discovery section 3 plus one that Federa does not know.
        let doc = json!({
            "issuer": "https://accounts.example.com",
            "authorization_endpoint": "https://accounts.example.com/authorize",
            "token_endpoint": "https://accounts.example.com/token",
            "jwks_uri": "https://accounts.example.com/jwks",
            "response_types_supported": ["code", "id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "x_vendor_extension": {"anything": 1},
        });
        let parsed: ProviderMetadata = serde_json::from_value(doc).unwrap();
        assert_eq!(parsed.token_endpoint.as_deref(), Some("https://accounts.example.com/token"));
        assert_eq!(parsed.userinfo_endpoint, None);
        assert!(parsed.code_challenge_methods_supported.is_empty());
        assert!(parsed.token_endpoint_auth_methods_supported.is_empty());
        assert!(!parsed.authorization_response_iss_parameter_supported);
        assert!(!parsed.backchannel_logout_supported);

        let missing_jwks = json!({"issuer": "https://a", "authorization_endpoint": "https://a/auth"});
        assert!(serde_json::from_value::<ProviderMetadata>(missing_jwks).is_err());
    }
}
