//! [`LazyMap`]: a `HashMap` that costs one pointer until its first entry.
//!
//! Per-connection state that most connections never fill (an outbox's
//! conflated frames, a connection's `max_rate`/`delta` state per topic) is
//! held by every idle connection: an empty `HashMap` inline is 48 bytes each.

use std::collections::HashMap;
use std::hash::Hash;

/// A map made on its first insert (see the module docs). The box is the
/// point: the extra allocation is paid only by the few that fill it.
#[allow(clippy::box_collection)]
pub(crate) struct LazyMap<K, V>(Option<Box<HashMap<K, V>>>);

impl<K, V> Default for LazyMap<K, V> {
    fn default() -> Self {
        LazyMap(None)
    }
}

impl<K: Eq + Hash, V> LazyMap<K, V> {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|m| m.is_empty())
    }

    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.as_ref()?.get(key)
    }

    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.as_mut()?.get_mut(key)
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.as_mut()?.remove(key)
    }

    /// The map itself, made if it was not yet.
    pub(crate) fn map_mut(&mut self) -> &mut HashMap<K, V> {
        self.0.get_or_insert_default()
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().flat_map(|m| m.values())
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.0.iter_mut().flat_map(|m| m.values_mut())
    }

    pub(crate) fn into_values(self) -> impl Iterator<Item = V> {
        self.0.into_iter().flat_map(|m| m.into_values())
    }

    pub(crate) fn retain(&mut self, keep: impl FnMut(&K, &mut V) -> bool) {
        if let Some(m) = &mut self.0 {
            m.retain(keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Empty, it is one pointer and allocates nothing; it works as a map.
    #[test]
    fn a_lazy_map_is_a_pointer_until_used() {
        assert_eq!(std::mem::size_of::<LazyMap<u32, u64>>(), 8);
        let mut m = LazyMap::<u32, u64>::default();
        assert!(m.is_empty() && m.0.is_none() && m.get(&1).is_none());
        m.map_mut().insert(1, 10);
        m.map_mut().insert(2, 20);
        *m.get_mut(&1).unwrap() += 1;
        assert_eq!((m.len(), m.get(&1)), (2, Some(&11)));
        m.retain(|k, _| *k == 2);
        assert_eq!(m.remove(&2), Some(20));
        assert!(m.is_empty());
        m.map_mut().insert(3, 30);
        assert_eq!(m.into_values().collect::<Vec<_>>(), [30]);
    }
}
