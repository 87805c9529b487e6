//! Typed values that Keycloak's JSON carries as strings. They are parsed once,
//! at the edge, and never compared as strings again.

use std::fmt;
use std::str::FromStr;

/// A string that is not one of a setting's allowed values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not one of {allowed}")]
pub struct ParseValueError {
    /// What was given.
    pub value: String,
    /// The allowed values, for the message.
    pub allowed: &'static str,
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every allowed spelling, for error messages.
            pub const ALLOWED: &'static str = concat!($($text, " "),+);

            /// The spelling used in Keycloak's JSON.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = ParseValueError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(ParseValueError { value: s.to_owned(), allowed: Self::ALLOWED.trim_end() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum! {
    /// How an upstream identity provider's data updates a user on later logins
    /// (Keycloak's `syncMode`).
    SyncMode {
        /// Copy at first login only.
        Import = "IMPORT",
        /// Overwrite on every login.
        Force = "FORCE",
        /// Keycloak's pre-11 behaviour, kept for exports that name it.
        Legacy = "LEGACY",
    }
}

string_enum! {
    /// A mapper's sync mode: the provider's own modes, or `INHERIT` its provider's.
    MapperSyncMode {
        /// Use the identity provider's `syncMode`.
        Inherit = "INHERIT",
        /// Copy at first login only.
        Import = "IMPORT",
        /// Overwrite on every login.
        Force = "FORCE",
        /// Keycloak's pre-11 behaviour.
        Legacy = "LEGACY",
    }
}

string_enum! {
    /// How Federa authenticates to an upstream token endpoint (OIDC Core section 9).
    ClientAuthMethod {
        /// HTTP Basic with the client secret.
        SecretBasic = "client_secret_basic",
        /// The client secret in the form body.
        SecretPost = "client_secret_post",
        /// A JWT signed with the client secret (HMAC).
        SecretJwt = "client_secret_jwt",
        /// A JWT signed with Federa's private key.
        PrivateKeyJwt = "private_key_jwt",
    }
}

string_enum! {
    /// The PKCE code challenge method (RFC 7636 section 4.2).
    PkceMethod {
        /// The challenge is the verifier itself; allowed only where S256 is impossible.
        Plain = "plain",
        /// BASE64URL(SHA256(verifier)).
        S256 = "S256",
    }
}

string_enum! {
    /// A token request's grant (RFC 6749 sections 4.1.3, 4.4.2 and 6).
    GrantType {
        /// An authorization code.
        AuthorizationCode = "authorization_code",
        /// A refresh token.
        RefreshToken = "refresh_token",
        /// The client's own credentials.
        ClientCredentials = "client_credentials",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keycloak_spellings_and_refuses_others() {
        assert_eq!("FORCE".parse::<SyncMode>(), Ok(SyncMode::Force));
        assert_eq!("INHERIT".parse::<MapperSyncMode>(), Ok(MapperSyncMode::Inherit));
        assert!("INHERIT".parse::<SyncMode>().is_err());
        assert!("force".parse::<SyncMode>().is_err());
        assert_eq!("private_key_jwt".parse::<ClientAuthMethod>(), Ok(ClientAuthMethod::PrivateKeyJwt));
        let err = "client_secret".parse::<ClientAuthMethod>().err();
        assert!(err.is_some_and(|e| e.to_string().contains("client_secret_basic")));
        assert_eq!(PkceMethod::S256.as_str(), "S256");
    }
}
