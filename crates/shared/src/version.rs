use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A layout version tag that serialises as the number `N` and refuses any number outside `MIN..=N`, so a
/// message of a layout this build does not know fails loudly instead of being half-read. `MIN` (default
/// `N`) is the oldest layout this build still reads: one whose fields this build's layout only extends.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Version<const N: u8, const MIN: u8 = N>;

impl<const N: u8, const MIN: u8> fmt::Debug for Version<N, MIN> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{N}")
    }
}

impl<const N: u8, const MIN: u8> Serialize for Version<N, MIN> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(N)
    }
}

impl<'de, const N: u8, const MIN: u8> Deserialize<'de> for Version<N, MIN> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let found = u8::deserialize(deserializer)?;
        if (MIN..=N).contains(&found) {
            Ok(Version)
        } else if MIN == N {
            Err(serde::de::Error::custom(format_args!("unsupported version {found}, expected {N}")))
        } else {
            Err(serde::de::Error::custom(format_args!("unsupported version {found}, expected {MIN} to {N}")))
        }
    }
}
