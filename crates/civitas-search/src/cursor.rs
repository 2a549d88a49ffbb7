//! Sort keys and the cursors that carry them between pages.
//!
//! A hit's sort key is a pair of `u64`: the primary key (modification time, or score) mapped so
//! that unsigned order is the wanted order, and the hash of the code as tie-breaker. Hits come in
//! descending key order. A cursor is the key of the last hit of a page, written as
//! `m.{primary:016x}.{tiebreak:016x}` (or `r.` for relevance): the next page is the hits whose key
//! is smaller, whatever was written in between.

use crate::{Result, SearchError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Relevance,
    Modified,
}

impl Order {
    fn letter(self) -> char {
        match self {
            Order::Relevance => 'r',
            Order::Modified => 'm',
        }
    }
}

/// `(primary, tie-breaker)`, compared lexicographically, larger first.
pub(crate) type SortKey = (u64, u64);

/// Maps an `i64` to a `u64` of the same order.
pub(crate) fn time_key(micros: i64) -> u64 {
    (micros as u64) ^ (1 << 63)
}

/// Maps a score to a `u64` of the same order (IEEE 754 bits, negatives flipped).
pub(crate) fn score_key(score: f32) -> u64 {
    let bits = score.to_bits();
    let ordered = if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    u64::from(ordered)
}

pub(crate) fn encode(order: Order, key: SortKey) -> String {
    format!("{}.{:016x}.{:016x}", order.letter(), key.0, key.1)
}

pub(crate) fn decode(text: &str, order: Order) -> Result<SortKey> {
    let invalid = |message: &str| SearchError::InvalidRequest {
        message: format!("invalid cursor {text:?}: {message}"),
    };
    let mut parts = text.split('.');
    let (Some(letter), Some(primary), Some(tiebreak), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not a cursor returned by a search"));
    };
    if letter.len() != 1 || !letter.starts_with(order.letter()) {
        return Err(invalid(
            "it belongs to another sort order; start again without a cursor",
        ));
    }
    let number = |hex: &str| {
        if hex.len() == 16 {
            u64::from_str_radix(hex, 16).ok()
        } else {
            None
        }
    };
    match (number(primary), number(tiebreak)) {
        (Some(primary), Some(tiebreak)) => Ok((primary, tiebreak)),
        _ => Err(invalid("not a cursor returned by a search")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_order() {
        let times = [i64::MIN, -5, 0, 7, i64::MAX];
        assert!(times.windows(2).all(|w| time_key(w[0]) < time_key(w[1])));
        let scores = [-3.5f32, -0.0, 0.0, 0.25, 1.0, 17.0];
        assert!(
            scores
                .windows(2)
                .all(|w| score_key(w[0]) <= score_key(w[1]))
        );
        assert!(score_key(0.25) < score_key(1.0));
    }

    #[test]
    fn cursors_round_trip_and_reject_others() {
        let key = (time_key(1_700_000_000_000_000), 42);
        let text = encode(Order::Modified, key);
        assert_eq!(decode(&text, Order::Modified).unwrap(), key);
        assert!(decode(&text, Order::Relevance).is_err());
        for bad in [
            "",
            "m",
            "m.1.2",
            "x.0000000000000001.0000000000000002",
            "m.zz00000000000001.0000000000000002",
        ] {
            assert!(decode(bad, Order::Modified).is_err(), "{bad}");
        }
    }
}
