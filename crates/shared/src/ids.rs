use core::fmt;
use core::str::FromStr;

use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Why a string is not a click or visitor id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid id: expected 32 hexadecimal characters")]
pub struct IdError;

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// 122 random bits (a version 4 UUID), written as 32 lowercase hex digits so it fits in a URL
        /// parameter or a cookie without escaping. Parsing also accepts the hyphenated UUID form.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Draws a new id. Pass a CSPRNG: these ids must be unguessable.
            pub fn generate<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Self {
                let mut bytes = [0u8; 16];
                rng.fill_bytes(&mut bytes);
                Self(uuid::Builder::from_random_bytes(bytes).into_uuid())
            }

            /// Parses the 32-hex-digit form (or a hyphenated UUID) of a random id.
            /// Only version 4 UUIDs are accepted: anything else was not made by us.
            pub fn parse(input: &str) -> Result<Self, IdError> {
                if input.len() != 32 && input.len() != 36 {
                    return Err(IdError);
                }
                let uuid = Uuid::try_parse(input).map_err(|_| IdError)?;
                if uuid.get_version_num() != 4 {
                    return Err(IdError);
                }
                Ok(Self(uuid))
            }

            /// The underlying UUID, for storage.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Wraps a UUID read back from storage.
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// Writes the 32 lowercase hex digits into `buf` and returns them: what `Display` prints,
            /// without the formatting machinery (the edge writes each id several times per click).
            pub fn encode<'b>(&self, buf: &'b mut [u8; 32]) -> &'b str {
                self.0.simple().encode_lower(buf)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.encode(&mut [0; 32]))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.simple())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.encode(&mut [0; 32]))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

random_id!(
    /// The id of one click, handed to the destination as `cs_ref` and reported back by the pixel.
    ClickId
);
random_id!(
    /// The id of one browser, kept in the `_cs_pv` cookie for 30 days to count unique clicks.
    VisitorId
);

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn ids_are_32_hex_digits_and_round_trip() {
        let mut rng = StdRng::seed_from_u64(1);
        let id = ClickId::generate(&mut rng);
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(ClickId::parse(&text), Ok(id));
        assert_eq!(ClickId::parse(&id.as_uuid().hyphenated().to_string()), Ok(id));
        assert_eq!(serde_json::from_value::<ClickId>(serde_json::json!(text)).unwrap(), id);
        assert_eq!(serde_json::to_value(id).unwrap(), serde_json::json!(text));
        assert_eq!(id.encode(&mut [0; 32]), text);
        assert_eq!(text, id.as_uuid().simple().to_string());
    }

    #[test]
    fn ids_that_we_did_not_make_are_rejected() {
        assert_eq!(VisitorId::parse(""), Err(IdError));
        assert_eq!(VisitorId::parse("not-an-id"), Err(IdError));
        assert_eq!(VisitorId::parse("00000000000000000000000000000000"), Err(IdError));
        assert_eq!(VisitorId::parse("0123456789abcdef0123456789abcdefg"), Err(IdError));
        // A version 1 UUID.
        assert_eq!(VisitorId::parse("6ba7b8109dad11d180b400c04fd430c8"), Err(IdError));
    }

    #[test]
    fn two_ids_differ() {
        let mut rng = StdRng::seed_from_u64(2);
        assert_ne!(VisitorId::generate(&mut rng), VisitorId::generate(&mut rng));
    }
}
