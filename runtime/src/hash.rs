//! A hasher for keys that are already well distributed (ids, hashes, `TypeId`s): one
//! multiplication instead of SipHash. Not for keys an attacker chooses.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A `HashMap` with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// A seeded hasher for values (`unique`'s keys): a folded 64×64→128-bit multiply per 16
/// bytes, as foldhash and ahash's fallback do. Much faster than SipHash on short keys; the
/// random seed per interner keeps collisions unpredictable, though it is not a keyed PRF.
#[derive(Clone, Copy)]
pub(crate) struct SeededHasher {
    acc: u64,
    seed: u64,
}

const K0: u64 = 0x243F_6A88_85A3_08D3;
const K1: u64 = 0x1319_8A2E_0370_7344;

#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

#[inline]
fn read8(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[inline]
fn read4(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u64::from(u32::from_le_bytes(word))
}

impl SeededHasher {
    /// A hasher seeded with `seed` (take it from a `RandomState`).
    pub(crate) fn new(seed: u64) -> SeededHasher {
        SeededHasher { acc: seed, seed: seed ^ K1 }
    }
}

impl Hasher for SeededHasher {
    #[inline]
    fn finish(&self) -> u64 {
        fold(self.acc, self.seed ^ K0)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let len = bytes.len();
        let (a, b) = if len <= 16 {
            if len >= 8 {
                (read8(bytes, 0), read8(bytes, len - 8))
            } else if len >= 4 {
                (read4(bytes, 0), read4(bytes, len - 4))
            } else if len > 0 {
                let spread =
                    u64::from(bytes[0]) << 16 | u64::from(bytes[len / 2]) << 8 | u64::from(bytes[len - 1]);
                (spread, 0)
            } else {
                (0, 0)
            }
        } else {
            let mut at = 0;
            while len - at > 16 {
                self.acc = fold(read8(bytes, at) ^ self.acc, read8(bytes, at + 8) ^ self.seed);
                at += 16;
            }
            (read8(bytes, len - 16), read8(bytes, len - 8))
        };
        self.acc = fold(a ^ self.acc ^ (len as u64).rotate_left(32), b ^ self.seed);
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.acc = fold(self.acc ^ n, self.seed ^ K0);
    }

    #[inline]
    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A random seed for this process, drawn once.
pub(crate) fn process_seed() -> u64 {
    use std::hash::BuildHasher;
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0x5EED_u64))
}

#[cfg(test)]
mod tests {
    use super::SeededHasher;
    use std::collections::HashSet;
    use std::hash::{Hash, Hasher};

    fn hash<T: Hash + ?Sized>(seed: u64, value: &T) -> u64 {
        let mut hasher = SeededHasher::new(seed);
        value.hash(&mut hasher);
        hasher.finish()
    }

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
