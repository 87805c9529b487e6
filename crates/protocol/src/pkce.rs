//! Proof Key for Code Exchange (RFC 7636): building a code verifier from
//! random bytes the caller supplies, deriving its S256 challenge, and checking
//! a presented verifier against a stored challenge.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::PkceMethod;

/// The shortest verifier or challenge RFC 7636 sections 4.1 and 4.2 allow.
const MIN_LEN: usize = 43;
/// The longest verifier or challenge RFC 7636 sections 4.1 and 4.2 allow.
const MAX_LEN: usize = 128;

/// Whether a byte is an RFC 3986 unreserved character, the only characters
/// RFC 7636 section 4.1 allows in a verifier: `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Whether a string has the length and the characters RFC 7636 allows.
fn has_pkce_syntax(s: &str) -> bool {
    (MIN_LEN..=MAX_LEN).contains(&s.len()) && s.bytes().all(is_unreserved)
}

/// Whether `v` is a well-formed code verifier (RFC 7636 section 4.1): 43 to
/// 128 unreserved characters.
pub fn is_valid_verifier(v: &str) -> bool {
    has_pkce_syntax(v)
}

/// A code verifier made from 32 random bytes the caller supplies, as RFC 7636
/// section 4.1 recommends: their base64url encoding without padding, which is
/// 43 characters long.
pub fn verifier_from_bytes(random: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

/// The S256 code challenge of a verifier (RFC 7636 section 4.2):
/// `BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `c` is a well-formed code challenge (RFC 7636 section 4.2): the
/// same characters and lengths as a verifier. An S256 challenge is always 43
/// characters long.
pub fn is_valid_challenge(c: &str) -> bool {
    has_pkce_syntax(c)
}

/// Checks a verifier against a stored challenge (RFC 7636 section 4.6).
///
/// The comparison runs in constant time so that timing tells an attacker
/// nothing about how much of a guess matched. A verifier that is not
/// well-formed never matches, even with the `plain` method, so a client cannot
/// slip a short or oddly encoded value past the check.
pub fn verify(method: PkceMethod, verifier: &str, challenge: &str) -> bool {
    if !is_valid_verifier(verifier) {
        return false;
    }
    let computed = match method {
        PkceMethod::Plain => verifier.to_owned(),
        PkceMethod::S256 => s256_challenge(verifier),
    };
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verifier and challenge of RFC 7636 Appendix B.
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(s256_challenge(RFC_VERIFIER), RFC_CHALLENGE);
        assert!(verify(PkceMethod::S256, RFC_VERIFIER, RFC_CHALLENGE));
    }

    #[test]
    fn rfc7636_appendix_b_verifier_from_its_octets() {
        // Appendix B's 32 octets encode to its verifier.
        let octets: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214, 191,
            240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let v = verifier_from_bytes(&octets);
        assert_eq!(v, RFC_VERIFIER);
        assert_eq!(v.len(), 43);
        assert!(is_valid_verifier(&v));
    }

    #[test]
    fn plain_compares_the_verifier_itself() {
        assert!(verify(PkceMethod::Plain, RFC_VERIFIER, RFC_VERIFIER));
        assert!(!verify(PkceMethod::Plain, RFC_VERIFIER, RFC_CHALLENGE));
        assert!(!verify(PkceMethod::S256, RFC_VERIFIER, RFC_VERIFIER));
    }

    #[test]
    fn wrong_verifier_is_refused() {
        let other = verifier_from_bytes(&[7; 32]);
        assert!(!verify(PkceMethod::S256, &other, RFC_CHALLENGE));
        assert!(!verify(PkceMethod::S256, RFC_VERIFIER, &s256_challenge(&other)));
        assert!(!verify(PkceMethod::S256, RFC_VERIFIER, ""));
    }

    #[test]
    fn too_short_or_badly_formed_verifier_is_refused() {
        let short = &RFC_VERIFIER[..42];
        assert!(!is_valid_verifier(short));
        assert!(!verify(PkceMethod::Plain, short, short));
        assert!(!verify(PkceMethod::S256, short, &s256_challenge(short)));

        let long = "a".repeat(129);
        assert!(!is_valid_verifier(&long));
        assert!(!verify(PkceMethod::Plain, &long, &long));
        assert!(is_valid_verifier(&"a".repeat(128)));

        let bad_char = format!("{}+", &RFC_VERIFIER[..42]);
        assert!(!is_valid_verifier(&bad_char));
        assert!(!verify(PkceMethod::Plain, &bad_char, &bad_char));
        assert!(is_valid_verifier("0123456789.-_~abcdefghijklmnopqrstuvwxyzABCD"));
    }

    #[test]
    fn challenge_syntax() {
        assert!(is_valid_challenge(RFC_CHALLENGE));
        assert!(!is_valid_challenge(&RFC_CHALLENGE[..42]));
        assert!(!is_valid_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM="));
        assert!(!is_valid_challenge(&"x".repeat(129)));
    }
}
