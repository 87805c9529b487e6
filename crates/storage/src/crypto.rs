//! Encryption at rest: JWE compact serialisation, `dir` + `A256GCM`, with the
//! 32-byte master key. Each value gets a fresh random IV from josekit.

use federa_protocol::Secret;
use josekit::jwe::{self, Dir, JweHeader};

use crate::StorageError;

/// The master key. `Debug` never shows it.
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// A key from its 32 bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Encrypts a value for storage.
    pub fn encrypt(&self, plain: &str) -> Result<String, StorageError> {
        let mut header = JweHeader::new();
        header.set_content_encryption("A256GCM");
        let encrypter = Dir.encrypter_from_bytes(self.0).map_err(|e| StorageError::Crypto(e.to_string()))?;
        jwe::serialize_compact(plain.as_bytes(), &header, &encrypter).map_err(|e| StorageError::Crypto(e.to_string()))
    }

    /// Decrypts a stored value; fails on another key or a tampered value.
    pub fn decrypt(&self, stored: &str) -> Result<Secret, StorageError> {
        let decrypter = Dir.decrypter_from_bytes(self.0).map_err(|e| StorageError::Crypto(e.to_string()))?;
        let (plain, _) = jwe::deserialize_compact(stored, &decrypter)
            .map_err(|_| StorageError::Crypto("a stored secret does not decrypt with the master key".into()))?;
        String::from_utf8(plain).map(Secret::new).map_err(|e| StorageError::Crypto(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let key = MasterKey::new([7; 32]);
        let sealed = key.encrypt("s3cr3t-value").unwrap();
        assert!(!sealed.contains("s3cr3t"));
        assert_ne!(key.encrypt("s3cr3t-value").ok(), Some(sealed.clone()), "IV must be fresh");
        assert_eq!(key.decrypt(&sealed).unwrap().expose(), "s3cr3t-value");
        assert!(MasterKey::new([8; 32]).decrypt(&sealed).is_err());
        // Flip one character of the ciphertext (the fourth segment).
        let mut parts: Vec<String> = sealed.split('.').map(str::to_owned).collect();
        let first = parts[3].remove(0);
        parts[3].insert(0, if first == 'A' { 'B' } else { 'A' });
        assert!(key.decrypt(&parts.join(".")).is_err());
    }
}
