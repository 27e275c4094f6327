use core::fmt;
use core::str::FromStr;

use rand::{CryptoRng, Rng};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The characters a tracking code is made of: lowercase letters and digits without the look-alikes
/// `0`, `o`, `l`, `1` and `i`, so a code read aloud or copied from a video is never ambiguous.
pub const CODE_ALPHABET: &[u8; 31] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Every tracking code has exactly this many characters (31^8 ≈ 8.5 × 10^11 codes).
pub const CODE_LEN: usize = 8;

/// A tracking code, the path segment of `trk.creatorscore.io/{code}`.
///
/// A value of this type is valid by construction: it only comes from [`Code::generate`] or
/// [`Code::parse`], and it is always stored in its canonical lowercase form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code([u8; CODE_LEN]);

/// Why a string is not a tracking code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// The string does not have exactly [`CODE_LEN`] characters.
    #[error("a tracking code has exactly {CODE_LEN} characters")]
    Length,
    /// The string contains a character outside [`CODE_ALPHABET`] (after lowercasing).
    #[error("a tracking code only uses the characters {}", alphabet())]
    Character,
}

fn alphabet() -> &'static str {
    // The alphabet is ASCII, so this never takes the fallback.
    core::str::from_utf8(CODE_ALPHABET).unwrap_or_default()
}

impl Code {
    /// Draws a fresh code uniformly from the alphabet. Pass a CSPRNG: codes must not be predictable,
    /// or one creator could guess the links of another.
    pub fn generate<R: Rng + CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; CODE_LEN];
        for byte in &mut bytes {
            *byte = CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())];
        }
        Code(bytes)
    }

    /// Parses a code as a visitor or a client typed it: ASCII letters in any case, nothing else.
    pub fn parse(input: &str) -> Result<Self, CodeError> {
        let raw = input.as_bytes();
        if raw.len() != CODE_LEN {
            return Err(CodeError::Length);
        }
        let mut bytes = [0u8; CODE_LEN];
        for (out, &c) in bytes.iter_mut().zip(raw) {
            let lower = c.to_ascii_lowercase();
            if !CODE_ALPHABET.contains(&lower) {
                return Err(CodeError::Character);
            }
            *out = lower;
        }
        Ok(Code(bytes))
    }

    /// The canonical (lowercase) form.
    pub fn as_str(&self) -> &str {
        // Only alphabet bytes are ever stored, and they are ASCII.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({})", self.as_str())
    }
}

impl FromStr for Code {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Code::parse(s)
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Code::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn generated_codes_use_only_the_alphabet_and_every_character_of_it() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen = [false; 256];
        for _ in 0..20_000 {
            let code = Code::generate(&mut rng);
            assert_eq!(code.as_str().len(), CODE_LEN);
            for b in code.as_str().bytes() {
                assert!(CODE_ALPHABET.contains(&b), "{code:?}");
                seen[b as usize] = true;
            }
            assert_eq!(Code::parse(code.as_str()), Ok(code));
        }
        for &b in CODE_ALPHABET {
            assert!(seen[b as usize], "{} never generated", b as char);
        }
    }

    #[test]
    fn parsing_is_case_insensitive_and_canonicalises() {
        assert_eq!(Code::parse("AbCdEfGh").map(|c| c.to_string()), Ok("abcdefgh".into()));
    }

    #[test]
    fn look_alike_characters_are_rejected() {
        for bad in ["abcdefg0", "abcdefgo", "abcdefgO", "abcdefgl", "abcdefgL", "abcdefg1", "abcdefgi", "abcdefgI"] {
            assert_eq!(Code::parse(bad), Err(CodeError::Character), "{bad}");
        }
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        assert_eq!(Code::parse(""), Err(CodeError::Length));
        assert_eq!(Code::parse("abcdefg"), Err(CodeError::Length));
        assert_eq!(Code::parse("abcdefghj"), Err(CodeError::Length));
        // Eight characters but more than eight bytes.
        assert_eq!(Code::parse("abcdefgé"), Err(CodeError::Length));
    }

    #[test]
    fn serde_round_trips_and_rejects_bad_codes() {
        let code = Code::parse("k7m2p9qr").unwrap();
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, "\"k7m2p9qr\"");
        assert_eq!(serde_json::from_str::<Code>(&json).unwrap(), code);
        assert!(serde_json::from_str::<Code>("\"k7m2p9q0\"").is_err());
        // Also from owned strings (a `Value`, a reader, an escaped string).
        assert_eq!(serde_json::from_value::<Code>(serde_json::json!("K7M2P9QR")).unwrap(), code);
        assert_eq!(serde_json::from_str::<Code>("\"k7m2p9q\\u0072\"").unwrap(), code);
    }

    proptest! {
        #[test]
        fn any_string_of_alphabet_characters_in_any_case_parses(
            s in "[abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789]{8}"
        ) {
            let code = Code::parse(&s).unwrap();
            prop_assert_eq!(code.as_str(), s.to_ascii_lowercase());
        }

        #[test]
        fn parse_accepts_exactly_the_canonical_codes(s in "\\PC{0,12}") {
            let valid = s.len() == CODE_LEN
                && s.bytes().all(|b| CODE_ALPHABET.contains(&b.to_ascii_lowercase()));
            prop_assert_eq!(Code::parse(&s).is_ok(), valid);
        }

        #[test]
        fn a_parsed_code_displays_as_its_lowercase_input(s in "[a-zA-Z0-9]{8}") {
            if let Ok(code) = Code::parse(&s) {
                prop_assert_eq!(code.to_string(), s.to_ascii_lowercase());
            }
        }
    }
}
