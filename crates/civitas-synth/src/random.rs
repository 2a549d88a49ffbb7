//! The source of randomness of every synthetic generator (the catalog here, the demo city's
//! citizens in `civitas-demo`), pinned so that a seed gives the same data on every run, platform
//! and dependency update.
//!
//! Only the ChaCha8 keystream is taken from a library: its output is specified by the cipher and
//! its crate promises value stability. Seeding and every sampling step are written here because
//! the helpers of general-purpose random crates may change their algorithms between versions.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

pub struct Random {
    stream: ChaCha8Rng,
}

impl Random {
    /// A stream for `seed`; `purpose` separates independent streams drawn from the same seed (the
    /// organizations, the catalog, each part of a population) so that changing how one is drawn
    /// leaves the others as they were.
    pub fn new(seed: u64, purpose: u64) -> Random {
        let mut state = seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut key = [0u8; 32];
        for chunk in key.chunks_exact_mut(8) {
            chunk.copy_from_slice(&split_mix_64(&mut state).to_le_bytes());
        }
        Random {
            stream: ChaCha8Rng::from_seed(key),
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.stream.next_u64()
    }

    /// A uniform number in `0..bound`, without modulo bias (Lemire's multiply-and-reject).
    pub fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0, "an empty range has no member");
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if product as u64 >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// A uniform number in `low..=high`.
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        debug_assert!(low <= high, "{low} > {high}");
        low + self.below((high - low) as u64 + 1) as i64
    }

    pub fn index(&mut self, length: usize) -> usize {
        self.below(length as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, choices: &'a [T]) -> &'a T {
        &choices[self.index(choices.len())]
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }

    /// An index into `weights` drawn in proportion to the weights.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
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

    /// `count` distinct indices of `0..length` in increasing order (fewer if `length` is smaller).
    pub fn subset(&mut self, length: usize, count: usize) -> Vec<usize> {
        let mut chosen = Vec::with_capacity(count.min(length));
        let mut needed = count.min(length);
        // Selection sampling: each index is taken with probability needed / remaining, which
        // gives every subset of the size the same chance and keeps the order.
        for index in 0..length {
            if needed == 0 {
                break;
            }
            let remaining = length - index;
            if self.below(remaining as u64) < needed as u64 {
                chosen.push(index);
                needed -= 1;
            }
        }
        chosen
    }
}

/// A cumulative weight table for drawing from long lists many times: one binary search per draw
/// instead of a walk over every weight.
pub struct WeightTable {
    cumulative: Vec<u64>,
}

impl WeightTable {
    pub fn new(weights: impl IntoIterator<Item = u32>) -> WeightTable {
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

    pub fn draw(&self, random: &mut Random) -> usize {
        let total = *self.cumulative.last().expect("the table is not empty");
        let ticket = random.below(total);
        // The first entry whose running total exceeds the ticket owns it.
        self.cumulative
            .partition_point(|&running| running <= ticket)
    }
}

/// SplitMix64, used only to spread a 64-bit seed over the 256-bit ChaCha key.
fn split_mix_64(state: &mut u64) -> u64 {
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
    fn below_stays_in_range_and_covers_it() {
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
    fn subset_is_sorted_distinct_and_sized() {
        let mut random = Random::new(7, 1);
        for length in 0..10 {
            for count in 0..12 {
                let subset = random.subset(length, count);
                assert_eq!(subset.len(), count.min(length));
                assert!(subset.windows(2).all(|pair| pair[0] < pair[1]));
                assert!(subset.iter().all(|&index| index < length));
            }
        }
    }

    #[test]
    fn streams_differ_by_purpose_and_repeat_by_seed() {
        let first: Vec<u64> = (0..4).map(|_| Random::new(1, 0).next_u64()).collect();
        assert!(first.windows(2).all(|pair| pair[0] == pair[1]));
        assert_ne!(Random::new(1, 0).next_u64(), Random::new(1, 1).next_u64());
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
}
