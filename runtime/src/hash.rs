//! Hashing for gonext's own tables, all through foldhash.
//!
//! `unique` and `#[weak_cache]` hash values a caller chooses, so each interner (and the
//! process, for the caches) draws a random seed: collisions cannot be planned without it,
//! though foldhash's fast variant is no keyed PRF. Maps keyed by values that are already
//! hashes or ids use the same hasher with foldhash's random per-map seed.

use std::collections::HashMap;

use foldhash::SharedSeed;
use foldhash::fast::FoldHasher;

/// A `HashMap` with foldhash, for keys that are hashes, ids or `TypeId`s.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A `HashSet` with foldhash, for ids.
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// A hasher for values, seeded with `seed` (take it from a `RandomState`).
#[inline]
pub(crate) fn seeded(seed: u64) -> FoldHasher {
    FoldHasher::with_seed(seed, SharedSeed::global_random())
}

/// A random seed for this process, drawn once.
pub(crate) fn process_seed() -> u64 {
    use std::hash::BuildHasher;
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0x5EED_u64))
}

#[cfg(test)]
mod tests {
    use super::seeded;
    use std::collections::HashSet;
    use std::hash::{Hash, Hasher};

    fn hash<T: Hash + ?Sized>(seed: u64, value: &T) -> u64 {
        let mut hasher = seeded(seed);
        value.hash(&mut hasher);
        hasher.finish()
    }

    /// `unique` picks its cache set from the low bits and its shard from the high bits.
    #[test]
    fn seeded_hashes_spread_short_and_long_keys_and_depend_on_the_seed() {
        let keys: Vec<String> = (0..20_000).map(|i| "k".repeat(i % 40) + &i.to_string()).collect();
        let hashes: HashSet<u64> = keys.iter().map(|k| hash(7, k.as_str())).collect();
        assert_eq!(hashes.len(), keys.len(), "no collisions among 20k distinct keys");
        let low_bits: HashSet<u64> = keys.iter().map(|k| hash(7, k.as_str()) & 63).collect();
        assert_eq!(low_bits.len(), 64, "the low bits (cache sets) are all used");
        let high_bits: HashSet<u64> = keys.iter().map(|k| hash(7, k.as_str()) >> 58).collect();
        assert_eq!(high_bits.len(), 64, "the high bits (shards) are all used");
        assert_ne!(hash(7, "alpha"), hash(8, "alpha"));
        assert_eq!(hash(7, "alpha"), hash(7, &String::from("alpha")));
        assert_ne!(hash(7, ""), hash(7, "\0"));
        assert_ne!(hash(7, &1u64), hash(7, &2u64));
    }
}
