//! A small time-bounded cache for configuration read on every sign-in
//! (realms, clients, identity providers). Entries live a few seconds, so an
//! admin's change reaches every instance within that time; only things that
//! exist are cached, so requests for random names cannot grow it, and it is
//! emptied when it reaches its bound. Admin writes through this instance bump
//! a shared epoch, which empties it at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long configuration is trusted before it is read again.
pub const CONFIG_TTL: Duration = Duration::from_secs(5);

const MAX_ENTRIES: usize = 10_000;

/// The configuration's version in this instance: bumped by every admin write.
pub type ConfigEpoch = Arc<AtomicU64>;

/// A map whose entries expire, or go stale when the epoch moves.
pub struct TtlCache<K, V> {
    ttl: Duration,
    epoch: ConfigEpoch,
    map: Mutex<HashMap<K, (Instant, u64, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    /// An empty cache whose entries live `ttl` or until `epoch` moves.
    pub fn new(ttl: Duration, epoch: ConfigEpoch) -> Self {
        Self { ttl, epoch, map: Mutex::new(HashMap::new()) }
    }

    /// A live entry.
    pub fn get(&self, key: &K) -> Option<V> {
        let now = self.epoch.load(Ordering::Acquire);
        let map = self.map.lock().ok()?;
        map.get(key).filter(|(at, e, _)| *e == now && at.elapsed() < self.ttl).map(|(_, _, v)| v.clone())
    }

    /// Remembers an entry (read after `epoch` was loaded, so a write racing
    /// the read leaves it stale rather than wrong for long).
    pub fn insert(&self, key: K, value: V) {
        let now = self.epoch.load(Ordering::Acquire);
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(key, (Instant::now(), now, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_bound_holds() {
        let epoch = ConfigEpoch::default();
        let c = TtlCache::new(Duration::from_secs(60), epoch.clone());
        c.insert("a", 1);
        assert_eq!(c.get(&"a"), Some(1));
        assert_eq!(c.get(&"b"), None);
        epoch.fetch_add(1, Ordering::AcqRel);
        assert_eq!(c.get(&"a"), None, "an admin write empties the cache");
        let expired = TtlCache::new(Duration::ZERO, epoch.clone());
        expired.insert("a", 1);
        assert_eq!(expired.get(&"a"), None);
        let big = TtlCache::new(Duration::from_secs(60), epoch);
        for i in 0..=MAX_ENTRIES {
            big.insert(i, i);
        }
        assert!(big.map.lock().map(|m| m.len()).unwrap_or(0) <= MAX_ENTRIES);
    }
}
