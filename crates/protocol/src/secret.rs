//! A secret string that is hard to leak: it never prints, never clones by
//! accident and is compared in constant time.

use std::fmt;

use subtle::ConstantTimeEq;

/// A secret value such as a client secret (RFC 6749 section 2.3.1) or a bearer
/// token. `Debug` prints `Secret(***)`; there is no `Display`, `Clone` or
/// `PartialEq`, so a secret reaches a log or a comparison only on purpose.
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares a presented value with this secret in constant time, so that
    /// the time taken tells an attacker nothing about how much of it matched.
    pub fn verify(&self, presented: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// A copy made on purpose, where a secret must be held twice.
    pub fn duplicate(&self) -> Self {
        Self(self.0.clone())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn verify_matches_only_the_exact_value() {
        let s = Secret::new("hunter2");
        assert!(s.verify("hunter2"));
        assert!(!s.verify("hunter"));
        assert!(!s.verify("hunter22"));
        assert!(!s.verify(""));
    }
}
