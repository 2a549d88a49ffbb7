//! The generator's randomness: the ChaCha8 keystream, whose output the cipher fixes, and sampling
//! steps written here. General-purpose helpers of random crates may change their algorithms
//! between versions, which would silently change every demo city built from a seed.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

pub(crate) struct Random {
    stream: ChaCha8Rng,
}

impl Random {
    /// A stream for `seed`. `purpose` separates the independent streams of one seed, so that
    /// changing how one part of the city is drawn leaves the other parts as they were.
    pub(crate) fn new(seed: u64, purpose: u64) -> Random {
        let mut state = seed ^ purpose.wrapping_mul(0xA076_1D64_78BD_642F);
        let mut key = [0u8; 32];
        for chunk in key.chunks_exact_mut(8) {
            chunk.copy_from_slice(&spread(&mut state).to_le_bytes());
        }
        Random {
            stream: ChaCha8Rng::from_seed(key),
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.stream.next_u64()
    }

    /// A uniform number in `0..bound`. Multiplying into 128 bits and rejecting the few values of
    /// the short last interval avoids the bias of a plain modulo.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0, "an empty range has no member");
        let rejected_below = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if product as u64 >= rejected_below {
                return (product >> 64) as u64;
            }
        }
    }

    /// A uniform number in `low..=high`.
    pub(crate) fn between(&mut self, low: i64, high: i64) -> i64 {
        debug_assert!(low <= high, "{low} > {high}");
        low + self.below((high - low) as u64 + 1) as i64
    }

    pub(crate) fn index(&mut self, length: usize) -> usize {
        self.below(length as u64) as usize
    }

    /// True with probability `per_mille / 1000`.
    pub(crate) fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }

    /// An index into `weights`, drawn in proportion to the weights.
    pub(crate) fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&weight| u64::from(weight)).sum();
        debug_assert!(total > 0, "at least one weight is positive");
        let mut ticket = self.below(total);
        for (index, &weight) in weights.iter().enumerate() {
            if ticket < u64::from(weight) {
                return index;
            }
            ticket -= u64::from(weight);
        }
        unreachable!("the ticket is below the total weight")
    }
}

/// A cumulative weight table for drawing from long lists many times: one binary search per draw
/// instead of a walk over every weight.
pub(crate) struct WeightTable {
    cumulative: Vec<u64>,
}

impl WeightTable {
    pub(crate) fn new(weights: impl IntoIterator<Item = u32>) -> WeightTable {
        let mut total = 0u64;
        let cumulative = weights
            .into_iter()
            .map(|weight| {
                total += u64::from(weight);
                total
            })
            .collect::<Vec<_>>();
        assert!(total > 0, "a weight table needs a positive weight");
        WeightTable { cumulative }
    }

    pub(crate) fn draw(&self, random: &mut Random) -> usize {
        let total = *self.cumulative.last().expect("the table is not empty");
        let ticket = random.below(total);
        // The first entry whose running total exceeds the ticket owns it.
        self.cumulative
            .partition_point(|&running| running <= ticket)
    }
}

/// SplitMix64, only to spread a 64-bit seed over the 256-bit ChaCha key.
fn spread(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut mixed = *state;
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    mixed ^ (mixed >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_covers_its_range_evenly() {
        let mut random = Random::new(7, 0);
        let mut seen = [0u32; 6];
        for _ in 0..6000 {
            seen[random.index(6)] += 1;
        }
        assert!(
            seen.iter().all(|&count| (800..1200).contains(&count)),
            "{seen:?}"
        );
    }

    #[test]
    fn weight_table_follows_weights_and_skips_zero() {
        let table = WeightTable::new([1, 0, 3]);
        let mut random = Random::new(3, 0);
        let mut seen = [0u32; 3];
        for _ in 0..4000 {
            seen[table.draw(&mut random)] += 1;
        }
        assert_eq!(seen[1], 0);
        assert!((800..1200).contains(&seen[0]), "{seen:?}");
    }

    #[test]
    fn streams_repeat_by_seed_and_differ_by_purpose() {
        assert_eq!(Random::new(1, 0).next_u64(), Random::new(1, 0).next_u64());
        assert_ne!(Random::new(1, 0).next_u64(), Random::new(1, 1).next_u64());
        assert_ne!(Random::new(1, 0).next_u64(), Random::new(2, 0).next_u64());
    }
}
