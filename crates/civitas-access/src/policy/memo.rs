//! A bounded memo of platform-policy outcomes that many threads probe at once.
//!
//! Keys are 128-bit keyed hashes of the encoded facts the policies see (see
//! [`super::PolicyFacts`]). Storing the hash instead of the facts keeps an entry small (a full key
//! is a few hundred bytes). Two different sets of facts share a key only by a collision of a
//! keyed 128-bit hash: the key is two SipHash outputs with secret keys drawn at random for each
//! memo, so an accidental collision has a chance of about 2^-128 per pair of facts, and a consumer
//! cannot craft one without knowing the keys.
//!
//! The table is split into shards, each behind its own `Mutex`, so that threads deciding at the
//! same time rarely wait for each other; a lock is held only to compare a few keys and copy an
//! outcome. Each shard is set-associative: a key may live in one of [`WAYS`] slots of one set,
//! and a full set gives up its least recently used entry. That bounds memory without a global
//! LRU list, which every hit would have to update under one lock.
//!
//! Sets are wide because least-recently-used replacement fails badly in one case: when more keys
//! than a set has slots are used in turn, each evicts the next one needed and every probe of those
//! keys misses. With 16,000 keys in the default 65,536 entries, 8 slots per set leave about two
//! sets overflowing (the benchmark met one); 16 slots make that a chance of about 1 in 300. At
//! half full, about 15 of 4,096 sets overflow, so a memo should be sized at four times the
//! distinct exchanges expected; [`MemoStats`] shows whether it is.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use super::PolicyOutcome;

/// Entries of a new memo. A node with 100,000 grants sees far fewer distinct (consumer, resource,
/// items, hour) combinations in a day than this.
pub(crate) const DEFAULT_CAPACITY: usize = 65_536;

/// Shards, a power of two. More shards than cores keep two threads from meeting on one lock.
const SHARDS: usize = 64;

/// Slots per set. A key is evicted before the memo is full only when more than this many live keys
/// hash to its set.
const WAYS: usize = 16;

/// The most sets a shard has: 67,108,864 entries in all, far beyond any node's needs, so that an
/// absurd capacity is not an absurd allocation.
const MAX_SETS: usize = 1 << 16;

/// How well the memo works, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoStats {
    /// Outcomes the memo can hold; 0 when it is off.
    pub capacity: usize,
    /// Outcomes it holds that are still valid.
    pub entries: usize,
    /// Decisions whose policy step the memo answered.
    pub hits: u64,
    /// Decisions whose policy step Cedar evaluated (with the memo on).
    pub misses: u64,
}

pub(crate) struct Memo {
    /// The secret keys of the hash, the same for both halves of a key (which differ by a
    /// domain separation byte).
    hash_keys: RandomState,
    /// Sets per shard, a power of two; 0 when the memo is off.
    sets: usize,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Default)]
struct Shard {
    /// `sets * WAYS` tags, allocated on the shard's first insert so that an unused memo (in
    /// tests, or with few distinct exchanges) costs no memory. They are kept apart from the
    /// outcomes so that a probe scans one compact run of memory.
    tags: Vec<Tag>,
    /// The outcome of each slot, in the same places as `tags`.
    outcomes: Vec<PolicyOutcome>,
    /// Counts probes and inserts, to tell recently used entries from old ones.
    clock: u64,
    hits: u64,
    misses: u64,
}

/// What identifies the entry in a slot. A slot is empty when `last_used` is 0, which the clock
/// never gives an entry.
#[derive(Clone, Copy, Default)]
struct Tag {
    key: [u64; 2],
    generation: u64,
    last_used: u64,
}

impl Tag {
    fn holds(&self, key: [u64; 2], generation: u64) -> bool {
        self.last_used != 0 && self.key == key && self.generation == generation
    }

    fn is_free(&self, generation: u64) -> bool {
        self.last_used == 0 || self.generation != generation
    }
}

impl Memo {
    /// A memo of at least `entries` outcomes (rounded up to whole sets of every shard, and at most
    /// [`MAX_SETS`] sets per shard); 0 is off.
    pub(crate) fn with_capacity(entries: usize) -> Memo {
        let sets = if entries == 0 {
            0
        } else {
            entries
                .div_ceil(SHARDS * WAYS)
                .min(MAX_SETS)
                .next_power_of_two()
        };
        let shard_count = if sets == 0 { 0 } else { SHARDS };
        Memo {
            hash_keys: RandomState::new(),
            sets,
            shards: (0..shard_count).map(|_| Mutex::default()).collect(),
        }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.sets > 0
    }

    fn capacity(&self) -> usize {
        self.shards.len() * self.sets * WAYS
    }

    /// The 128-bit key of encoded facts.
    pub(crate) fn key(&self, encoded: &[u8]) -> u128 {
        let half = |domain: u8| {
            let mut hasher = self.hash_keys.build_hasher();
            hasher.write_u8(domain);
            hasher.write(encoded);
            hasher.finish()
        };
        (u128::from(half(0)) << 64) | u128::from(half(1))
    }

    /// The shard, the first slot of the set `key` belongs to, and the key as stored.
    fn place(&self, key: u128) -> (&Mutex<Shard>, usize, [u64; 2]) {
        // The low half of the key is a uniform hash, so its bits pick the shard and the set.
        let low = key as u64 as usize;
        let shard = &self.shards[low % SHARDS];
        let set = (low / SHARDS) & (self.sets - 1);
        (shard, set * WAYS, [(key >> 64) as u64, key as u64])
    }

    /// The outcome recorded for `key` in `generation`, counting a hit or a miss.
    pub(crate) fn get(&self, key: u128, generation: u64) -> Option<PolicyOutcome> {
        if !self.is_enabled() {
            return None;
        }
        let (shard, first, key) = self.place(key);
        let mut shard = lock(shard);
        let shard = &mut *shard;
        let found = shard
            .tags
            .get(first..first + WAYS)
            .and_then(|set| set.iter().position(|tag| tag.holds(key, generation)));
        match found {
            Some(way) => {
                shard.clock += 1;
                shard.tags[first + way].last_used = shard.clock;
                shard.hits += 1;
                Some(shard.outcomes[first + way].clone())
            }
            None => {
                shard.misses += 1;
                None
            }
        }
    }

    /// Records the outcome for `key` in `generation`, in place of an empty slot of its set, an
    /// entry of an earlier generation, or else the set's least recently used entry.
    pub(crate) fn insert(&self, key: u128, generation: u64, outcome: PolicyOutcome) {
        if !self.is_enabled() {
            return;
        }
        let (shard, first, key) = self.place(key);
        let mut shard = lock(shard);
        let shard = &mut *shard;
        if shard.tags.is_empty() {
            shard.tags = vec![Tag::default(); self.sets * WAYS];
            shard.outcomes = vec![PolicyOutcome::Permitted; self.sets * WAYS];
        }
        let set = &shard.tags[first..first + WAYS];
        // Another thread may have recorded the same key since this one missed.
        let way = set
            .iter()
            .position(|tag| tag.holds(key, generation))
            .or_else(|| set.iter().position(|tag| tag.is_free(generation)))
            .unwrap_or_else(|| (0..WAYS).min_by_key(|&way| set[way].last_used).unwrap_or(0));
        shard.clock += 1;
        shard.tags[first + way] = Tag {
            key,
            generation,
            last_used: shard.clock,
        };
        shard.outcomes[first + way] = outcome;
    }

    pub(crate) fn stats(&self, generation: u64) -> MemoStats {
        let mut stats = MemoStats {
            capacity: self.capacity(),
            ..MemoStats::default()
        };
        for shard in &self.shards {
            let shard = lock(shard);
            stats.hits += shard.hits;
            stats.misses += shard.misses;
            stats.entries += shard
                .tags
                .iter()
                .filter(|tag| !tag.is_free(generation))
                .count();
        }
        stats
    }
}

/// A clone starts empty: it would be invalidated by the change it is usually made for anyway, and
/// copying up to 65,536 outcomes under their locks is not worth it. New hash keys come with it.
impl Clone for Memo {
    fn clone(&self) -> Memo {
        Memo {
            hash_keys: RandomState::new(),
            sets: self.sets,
            shards: self.shards.iter().map(|_| Mutex::default()).collect(),
        }
    }
}

/// A shard whose lock holder panicked is still usable: its lock is held only for comparisons and
/// assignments that cannot panic midway, so no entry is ever left half-written.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(id: &str) -> PolicyOutcome {
        PolicyOutcome::Forbidden {
            policy_id: id.to_owned(),
        }
    }

    #[test]
    fn remembers_per_generation() {
        let memo = Memo::with_capacity(1_000);
        let key = memo.key(b"facts");
        assert_ne!(key, memo.key(b"other facts"));
        assert_eq!(memo.get(key, 0), None);
        memo.insert(key, 0, forbidden("a"));
        assert_eq!(memo.get(key, 0), Some(forbidden("a")));
        // An entry of an earlier generation is never returned.
        assert_eq!(memo.get(key, 1), None);
        memo.insert(key, 1, PolicyOutcome::Permitted);
        assert_eq!(memo.get(key, 1), Some(PolicyOutcome::Permitted));
        let stats = memo.stats(1);
        assert_eq!((stats.hits, stats.misses, stats.entries), (2, 2, 1));
        assert!(stats.capacity >= 1_000);
    }

    #[test]
    fn stays_within_its_capacity_and_keeps_recent_entries() {
        let memo = Memo::with_capacity(1);
        // One set per shard: the key after WAYS keys of a shard evicts the least recently used of
        // its set.
        let keys: Vec<u128> = (0..(WAYS as u128 + 2) * SHARDS as u128)
            .map(|number| number << 64 | number)
            .collect();
        let shard_zero: Vec<u128> = keys
            .iter()
            .copied()
            .filter(|key| (*key as u64 as usize).is_multiple_of(SHARDS))
            .collect();
        assert_eq!(shard_zero.len(), WAYS + 2);
        for key in &shard_zero[..WAYS] {
            memo.insert(*key, 0, PolicyOutcome::Permitted);
        }
        // Use the first key so that the second is the least recently used.
        assert!(memo.get(shard_zero[0], 0).is_some());
        memo.insert(shard_zero[WAYS], 0, PolicyOutcome::Permitted);
        assert!(memo.get(shard_zero[0], 0).is_some());
        assert!(memo.get(shard_zero[1], 0).is_none());
        assert!(memo.get(shard_zero[WAYS], 0).is_some());
        for key in &keys {
            memo.insert(*key, 0, PolicyOutcome::Permitted);
        }
        let stats = memo.stats(0);
        assert_eq!(stats.capacity, SHARDS * WAYS);
        assert_eq!(stats.entries, SHARDS * WAYS);
    }

    #[test]
    fn capacity_is_rounded_and_bounded() {
        assert_eq!(Memo::with_capacity(1).capacity(), SHARDS * WAYS);
        assert_eq!(Memo::with_capacity(65_536).capacity(), 65_536);
        assert_eq!(Memo::with_capacity(65_537).capacity(), 131_072);
        assert_eq!(
            Memo::with_capacity(usize::MAX).capacity(),
            SHARDS * WAYS * MAX_SETS
        );
    }

    #[test]
    fn off_when_empty() {
        let memo = Memo::with_capacity(0);
        assert!(!memo.is_enabled());
        memo.insert(1, 0, PolicyOutcome::Permitted);
        assert_eq!(memo.get(1, 0), None);
        assert_eq!(memo.stats(0), MemoStats::default());
    }
}
