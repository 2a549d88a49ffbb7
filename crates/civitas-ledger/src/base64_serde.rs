//! Serde helpers writing hashes as standard base64 strings.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serializer};

use crate::merkle::Hash;

fn decode_hash<E: serde::de::Error>(text: &str) -> Result<Hash, E> {
    BASE64
        .decode(text)
        .ok()
        .and_then(|bytes| Hash::try_from(bytes).ok())
        .ok_or_else(|| E::custom("expected 32 bytes of standard base64"))
}

pub(crate) mod hash {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(hash: &Hash, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(hash))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Hash, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        decode_hash(&text)
    }
}

pub(crate) mod hashes {
    use super::*;
    use serde::ser::SerializeSeq;

    pub(crate) fn serialize<S: Serializer>(
        hashes: &[Hash],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut sequence = serializer.serialize_seq(Some(hashes.len()))?;
        for hash in hashes {
            sequence.serialize_element(&BASE64.encode(hash))?;
        }
        sequence.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Hash>, D::Error> {
        let texts = <Vec<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
        texts.iter().map(|text| decode_hash(text)).collect()
    }
}
