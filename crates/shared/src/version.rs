use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A layout version tag that serialises as the number `N` and refuses any other number, so a
/// message of a layout this build does not know fails loudly instead of being half-read.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Version<const N: u8>;

impl<const N: u8> fmt::Debug for Version<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{N}")
    }
}

impl<const N: u8> Serialize for Version<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(N)
    }
}

impl<'de, const N: u8> Deserialize<'de> for Version<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let found = u8::deserialize(deserializer)?;
        if found == N {
            Ok(Version)
        } else {
            Err(serde::de::Error::custom(format_args!("unsupported version {found}, expected {N}")))
        }
    }
}
