//! Bearer secrets (brand API keys, creator tokens): generated from a CSPRNG, shown once, stored as a
//! SHA-256 hash, compared in constant time.
//!
//! A secret reads `csk_<prefix>_<secret>`: the prefix (8 code characters) is a public handle used to
//! find the row and to revoke the key; the 256-bit secret part makes a plain hash sufficient (nothing
//! to brute-force, so no password-hashing function is needed).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use shared::Code;

/// What a secret is for; its tag starts the secret so a leaked one is recognisable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// A brand's API key.
    ApiKey,
    /// A creator's read-only token.
    CreatorToken,
}

impl SecretKind {
    fn tag(self) -> &'static str {
        match self {
            SecretKind::ApiKey => "csk",
            SecretKind::CreatorToken => "cst",
        }
    }
}

/// A newly generated secret: the full text (shown once) and what is stored.
pub struct NewSecret {
    pub text: String,
    pub prefix: String,
    pub hash: Vec<u8>,
}

impl NewSecret {
    pub fn generate<R: RngCore + CryptoRng>(kind: SecretKind, rng: &mut R) -> Self {
        let prefix = Code::generate(rng).to_string();
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let text = format!("{}_{prefix}_{}", kind.tag(), URL_SAFE_NO_PAD.encode(secret));
        let hash = hash(&text).to_vec();
        NewSecret { text, prefix, hash }
    }
}

/// The lookup prefix of a presented secret of the given kind, if it is shaped like one.
pub fn prefix_of(kind: SecretKind, presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(kind.tag())?.strip_prefix('_')?;
    let (prefix, secret) = rest.split_once('_')?;
    (Code::parse(prefix).is_ok() && prefix.bytes().all(|b| !b.is_ascii_uppercase()) && secret.len() == 43)
        .then_some(prefix)
}

/// Normalises what an operator types to revoke a key: either the bare prefix or `csk_<prefix>`.
pub fn revocation_prefix(input: &str) -> Option<String> {
    let bare = input.trim().strip_prefix("csk_").unwrap_or(input.trim());
    let bare = bare.split('_').next().unwrap_or_default();
    Code::parse(bare).ok().map(|c| c.to_string())
}

pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether `presented` hashes to `stored`, in time independent of where they differ.
pub fn verify(presented: &str, stored: &[u8]) -> bool {
    hash(presented).ct_eq(stored).into()
}

/// A brand's public pixel id: `px_` and 16 code characters (≈ 79 bits; public, but not enumerable).
pub fn generate_pixel_id<R: RngCore + CryptoRng>(rng: &mut R) -> String {
    format!("px_{}{}", Code::generate(rng), Code::generate(rng))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_verifies_and_a_changed_one_does_not() {
        let key = NewSecret::generate(SecretKind::ApiKey, &mut rand::thread_rng());
        assert!(key.text.starts_with("csk_"));
        assert_eq!(prefix_of(SecretKind::ApiKey, &key.text), Some(key.prefix.as_str()));
        assert!(verify(&key.text, &key.hash));
        let mut tampered = key.text.clone();
        tampered.pop();
        tampered.push('A');
        assert!(!verify(&tampered, &key.hash) || tampered == key.text);
    }

    #[test]
    fn kinds_do_not_mix() {
        let token = NewSecret::generate(SecretKind::CreatorToken, &mut rand::thread_rng());
        assert!(token.text.starts_with("cst_"));
        assert_eq!(prefix_of(SecretKind::ApiKey, &token.text), None);
        assert!(prefix_of(SecretKind::CreatorToken, &token.text).is_some());
    }

    #[test]
    fn malformed_secrets_have_no_prefix() {
        for bad in ["", "csk_", "csk_abc_def", "Bearer csk_x", "csk_abcdefgh_short"] {
            assert_eq!(prefix_of(SecretKind::ApiKey, bad), None, "{bad}");
        }
    }

    #[test]
    fn revocation_accepts_the_prefix_in_either_form() {
        assert_eq!(revocation_prefix("csk_abcd2345").as_deref(), Some("abcd2345"));
        assert_eq!(revocation_prefix("abcd2345").as_deref(), Some("abcd2345"));
        assert_eq!(revocation_prefix("csk_abcd2345_secret").as_deref(), Some("abcd2345"));
        assert_eq!(revocation_prefix("nope"), None);
    }

    #[test]
    fn pixel_ids_are_prefixed_and_long() {
        let id = generate_pixel_id(&mut rand::thread_rng());
        assert!(id.starts_with("px_") && id.len() == 19);
    }
}
