//! C2SP tlog-tiles paths: `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`.
//!
//! A tile is 256 consecutive hashes of one tree level: level-0 tiles hold leaf hashes, and each
//! hash of a level-L tile is the root of a full tile of level L-1, that is of a perfect subtree of
//! 256^L leaves. An entry bundle holds the records of a level-0 tile, each as a big-endian 16-bit
//! length followed by the record bytes.

/// Tree levels per tile level.
pub const TILE_HEIGHT: u32 = 8;
/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;
/// The spec allows tile levels 0 to 63; with height 8 only levels up to 7 can hold a hash of a
/// tree of at most 2^64 leaves.
pub const MAX_TILE_LEVEL: u8 = 63;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("tile path {path:?} is malformed: {reason}")]
    MalformedPath { path: String, reason: &'static str },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a tile path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileKind {
    /// Merkle tree hashes at tile level `level`.
    Hashes { level: u8 },
    /// The entry bundle matching a level-0 tile.
    Entries,
}

/// A tile or entry bundle: its kind, its index within its level and its width, 1 to 256, where
/// 256 is a full tile and anything less a partial one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileId {
    pub kind: TileKind,
    pub index: u64,
    pub width: u16,
}

/// Encodes a tile index as zero-padded three-digit path elements, all but the last prefixed with
/// `x`: 1234067 becomes `x001/x234/067`.
pub fn format_tile_index(index: u64) -> String {
    let mut groups = vec![index % 1000];
    let mut rest = index / 1000;
    while rest > 0 {
        groups.push(rest % 1000);
        rest /= 1000;
    }
    let mut text = String::with_capacity(groups.len() * 5);
    for (position, group) in groups.iter().rev().enumerate() {
        if position + 1 < groups.len() {
            text.push_str(&format!("x{group:03}/"));
        } else {
            text.push_str(&format!("{group:03}"));
        }
    }
    text
}

/// The path of a tile or entry bundle, without any URL prefix.
pub fn format_tile_path(tile: &TileId) -> String {
    debug_assert!((1..=TILE_WIDTH as u16).contains(&tile.width));
    let kind = match tile.kind {
        TileKind::Hashes { level } => level.to_string(),
        TileKind::Entries => "entries".to_owned(),
    };
    let mut path = format!("tile/{kind}/{}", format_tile_index(tile.index));
    if u64::from(tile.width) < TILE_WIDTH {
        path.push_str(&format!(".p/{}", tile.width));
    }
    path
}

fn is_decimal_without_leading_zero(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'))
}

/// Parses a path such as `tile/0/x001/x234/067.p/8` or `tile/entries/000`, accepting only the
/// canonical spelling so that every tile has exactly one name.
pub fn parse_tile_path(path: &str) -> Result<TileId> {
    let malformed = |reason| Error::MalformedPath {
        path: path.to_owned(),
        reason,
    };
    let rest = path
        .strip_prefix("tile/")
        .ok_or_else(|| malformed("does not start with tile/"))?;
    let (kind_text, rest) = rest
        .split_once('/')
        .ok_or_else(|| malformed("no tile index"))?;
    let kind = if kind_text == "entries" {
        TileKind::Entries
    } else {
        if !is_decimal_without_leading_zero(kind_text) {
            return Err(malformed("level is not a decimal number"));
        }
        let level: u8 = kind_text
            .parse()
            .ok()
            .filter(|level| *level <= MAX_TILE_LEVEL)
            .ok_or_else(|| malformed("level is larger than 63"))?;
        TileKind::Hashes { level }
    };
    let (index_text, width) = match rest.split_once(".p/") {
        Some((index_text, width_text)) => {
            if !is_decimal_without_leading_zero(width_text) {
                return Err(malformed("width is not a decimal number"));
            }
            let width: u16 = width_text
                .parse()
                .ok()
                .filter(|width| (1..TILE_WIDTH as u16).contains(width))
                .ok_or_else(|| malformed("partial width is not between 1 and 255"))?;
            (index_text, width)
        }
        None => (rest, TILE_WIDTH as u16),
    };
    let elements: Vec<&str> = index_text.split('/').collect();
    let mut index: u64 = 0;
    for (position, element) in elements.iter().enumerate() {
        let last = position + 1 == elements.len();
        let digits = if last {
            *element
        } else {
            element
                .strip_prefix('x')
                .ok_or_else(|| malformed("index element other than the last lacks the x prefix"))?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("index element is not three digits"));
        }
        if position == 0 && !last && digits == "000" {
            return Err(malformed("index has a leading zero element"));
        }
        let group: u64 = digits.parse().expect("three ascii digits");
        index = index
            .checked_mul(1000)
            .and_then(|index| index.checked_add(group))
            .ok_or_else(|| malformed("index does not fit 64 bits"))?;
    }
    Ok(TileId { kind, index, width })
}

/// Encodes records as an entry bundle: each as a big-endian u16 length followed by its bytes.
pub fn encode_entry_bundle<'a>(records: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut bundle = Vec::new();
    for record in records {
        debug_assert!(record.len() <= usize::from(u16::MAX));
        bundle.extend_from_slice(&(record.len() as u16).to_be_bytes());
        bundle.extend_from_slice(record);
    }
    bundle
}

/// Splits an entry bundle into its records.
pub fn decode_entry_bundle(bundle: &[u8]) -> Option<Vec<&[u8]>> {
    let mut records = Vec::new();
    let mut rest = bundle;
    while !rest.is_empty() {
        let (length, tail) = rest.split_first_chunk::<2>()?;
        let length = usize::from(u16::from_be_bytes(*length));
        if tail.len() < length {
            return None;
        }
        let (record, tail) = tail.split_at(length);
        records.push(record);
        rest = tail;
    }
    Some(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_encoded_in_three_digit_groups() {
        assert_eq!(format_tile_index(0), "000");
        assert_eq!(format_tile_index(67), "067");
        assert_eq!(format_tile_index(1000), "x001/000");
        assert_eq!(format_tile_index(1_234_067), "x001/x234/067");
        assert_eq!(
            format_tile_index(u64::MAX),
            "x018/x446/x744/x073/x709/x551/615"
        );
    }

    #[test]
    fn paths_round_trip() {
        let tiles = [
            TileId {
                kind: TileKind::Hashes { level: 0 },
                index: 1_234_067,
                width: 256,
            },
            TileId {
                kind: TileKind::Hashes { level: 2 },
                index: 5,
                width: 17,
            },
            TileId {
                kind: TileKind::Entries,
                index: 1000,
                width: 1,
            },
            TileId {
                kind: TileKind::Entries,
                index: u64::MAX,
                width: 256,
            },
        ];
        for tile in tiles {
            assert_eq!(parse_tile_path(&format_tile_path(&tile)).unwrap(), tile);
        }
        assert_eq!(
            format_tile_path(&tiles[0]),
            "tile/0/x001/x234/067".to_owned()
        );
        assert_eq!(format_tile_path(&tiles[1]), "tile/2/005.p/17".to_owned());
        assert_eq!(
            format_tile_path(&tiles[2]),
            "tile/entries/x001/000.p/1".to_owned()
        );
    }

    #[test]
    fn non_canonical_paths_are_rejected() {
        for path in [
            "tile/00/000",
            "tile/64/000",
            "tile/0/0",
            "tile/0/x000/001",
            "tile/0/001/002",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/08",
            "tile/0/x18446/744",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tiles/0/000",
            "tile/entries",
            "tile/x/000",
        ] {
            assert!(parse_tile_path(path).is_err(), "{path} was accepted");
        }
    }

    #[test]
    fn entry_bundles_round_trip() {
        let records: [&[u8]; 3] = [b"a", b"", &[7u8; 300]];
        let bundle = encode_entry_bundle(records);
        assert_eq!(&bundle[..3], &[0, 1, b'a']);
        assert_eq!(decode_entry_bundle(&bundle).unwrap(), records.to_vec());
        assert!(decode_entry_bundle(&bundle[..bundle.len() - 1]).is_none());
    }
}
