//! The label-set cache and cardinality guard shared by every layer.
//!
//! Metric handles (`metrics::Histogram`, `Counter`) are resolved once per label set and
//! kept here; the request path then only does two hash look-ups in immutable maps
//! (an [`ArcSwap`] load each: no lock, no allocation). New label sets are rare — a
//! service has a fixed set of routes, methods and status codes — so inserting clones the
//! small map under a mutex (copy-on-write).
//!
//! A label set is split in two: a *group* named by the one label that comes from request
//! data as text (the route template, the gRPC method path, the dependency's address) and
//! a small `Copy` key for the rest (method, status, error type), so no look-up needs an
//! owned `String`.
//!
//! The guard: at most `cap` label sets per metric, the overflow series included. A label
//! set beyond the cap is recorded in the single overflow series (every label value
//! `overflow`), counted in `telltale_metrics_cardinality_overflow_total{metric}` and
//! logged once at WARN.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use arc_swap::ArcSwap;
use metrics::{Counter, Key, Label};

use crate::RecorderRef;
use crate::names::{labels, meta};

type Hasher = foldhash::fast::RandomState;
type Map<K, V> = HashMap<K, V, Hasher>;
type Groups<K, H> = Map<Arc<str>, Arc<Group<K, H>>>;

/// Default cap on label sets per metric.
pub(crate) const DEFAULT_MAX_LABEL_SETS: usize = 2_000;

/// A group of label sets sharing their text label.
pub(crate) struct Group<K, H> {
    name: Arc<str>,
    series: ArcSwap<Map<K, H>>,
}

impl<K, H> Group<K, H> {
    /// The text label the group is named by.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

type MakeFn<K, H> = dyn Fn(&str, &K) -> H + Send + Sync;
type MakeOverflowFn<H> = dyn Fn() -> H + Send + Sync;

/// Label sets of one metric family, with a cardinality cap.
pub(crate) struct LabelCache<K, H> {
    groups: ArcSwap<Groups<K, H>>,
    write: Mutex<()>,
    len: AtomicUsize,
    cap: usize,
    metric: &'static str,
    recorder: RecorderRef,
    make: Box<MakeFn<K, H>>,
    make_overflow: Box<MakeOverflowFn<H>>,
    overflow: OnceLock<(H, Counter)>,
    warned: AtomicBool,
}

impl<K, H> LabelCache<K, H>
where
    K: Copy + Eq + Hash,
    H: Clone,
{
    /// `make` registers the handles of one label set; `make_overflow` those of the
    /// overflow series. Both run at most once per label set, never on the fast path.
    pub(crate) fn new(
        metric: &'static str,
        cap: usize,
        recorder: RecorderRef,
        make: impl Fn(&str, &K) -> H + Send + Sync + 'static,
        make_overflow: impl Fn() -> H + Send + Sync + 'static,
    ) -> Self {
        LabelCache {
            groups: ArcSwap::from_pointee(Map::default()),
            write: Mutex::new(()),
            len: AtomicUsize::new(0),
            cap: cap.max(2),
            metric,
            recorder,
            make: Box::new(make),
            make_overflow: Box::new(make_overflow),
            overflow: OnceLock::new(),
            warned: AtomicBool::new(false),
        }
    }

    /// The group named `name` if it exists already; never creates one (no lock).
    pub(crate) fn existing_group(&self, name: &str) -> Option<Arc<Group<K, H>>> {
        self.groups.load().get(name).cloned()
    }

    /// The group named `name`, or `None` when it would exceed the cap (record into the
    /// overflow series then).
    pub(crate) fn group(&self, name: &str) -> Option<Arc<Group<K, H>>> {
        if let Some(g) = self.groups.load().get(name) {
            return Some(g.clone());
        }
        let _w = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.groups.load_full();
        if let Some(g) = current.get(name) {
            return Some(g.clone());
        }
        // Each group holds at least one series once used; never more groups than series.
        if current.len() >= self.cap - 1 {
            return None;
        }
        let name: Arc<str> = Arc::from(name);
        let group = Arc::new(Group {
            name: name.clone(),
            series: ArcSwap::from_pointee(Map::default()),
        });
        let mut next = Map::clone(&current);
        next.insert(name, group.clone());
        self.groups.store(Arc::new(next));
        Some(group)
    }

    /// Runs `f` on the handles of (`group`, `key`), registering them on first use, or on
    /// the overflow series when the cap is reached.
    pub(crate) fn with<R>(&self, group: Option<&Group<K, H>>, key: K, f: impl FnOnce(&H) -> R) -> R {
        let Some(group) = group else {
            return self.overflowed(f);
        };
        if let Some(h) = group.series.load().get(&key) {
            return f(h);
        }
        let h = {
            let _w = self.write.lock().unwrap_or_else(PoisonError::into_inner);
            let current = group.series.load_full();
            match current.get(&key) {
                Some(h) => h.clone(),
                None => {
                    // The overflow series takes one slot of the cap.
                    if self.len.load(Ordering::Relaxed) >= self.cap - 1 {
                        drop(_w);
                        return self.overflowed(f);
                    }
                    let h = (self.make)(&group.name, &key);
                    let mut next = Map::clone(&current);
                    next.insert(key, h.clone());
                    group.series.store(Arc::new(next));
                    self.len.fetch_add(1, Ordering::Relaxed);
                    h
                }
            }
        };
        f(&h)
    }

    fn overflowed<R>(&self, f: impl FnOnce(&H) -> R) -> R {
        let (h, counter) = self.overflow.get_or_init(|| {
            let key = Key::from_parts(
                meta::CARDINALITY_OVERFLOW_TOTAL,
                vec![Label::from_static_parts(labels::METRIC, self.metric)],
            );
            ((self.make_overflow)(), self.recorder.counter(&key))
        });
        counter.increment(1);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                metric = self.metric,
                cap = self.cap,
                "metric label-set cap reached: further label sets are recorded in the `overflow` series \
                 (see {}); raise the cap or find the label that comes from request data",
                meta::CARDINALITY_OVERFLOW_TOTAL
            );
        }
        f(h)
    }

    /// Label sets registered (the overflow series excluded).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn cap_folds_new_label_sets_into_overflow_and_keeps_known_ones() {
        let made = Arc::new(AtomicU32::new(0));
        let m = made.clone();
        let cache: LabelCache<u16, String> = LabelCache::new(
            "m",
            4,
            RecorderRef::new(metrics::NoopRecorder),
            move |g, k| {
                m.fetch_add(1, Ordering::Relaxed);
                format!("{g}/{k}")
            },
            || "overflow".to_owned(),
        );
        let a = cache.group("a");
        let seen: Vec<String> = (0..6u16)
            .map(|k| cache.with(a.as_deref(), k, |h| h.clone()))
            .collect();
        assert_eq!(seen, ["a/0", "a/1", "a/2", "overflow", "overflow", "overflow"]);
        // Known label sets keep their own series after the cap is reached.
        assert_eq!(cache.with(a.as_deref(), 1, |h| h.clone()), "a/1");
        assert_eq!(cache.len(), 3);
        assert_eq!(made.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn groups_are_capped_too() {
        let cache: LabelCache<u8, ()> =
            LabelCache::new("m", 3, RecorderRef::new(metrics::NoopRecorder), |_, _| (), || ());
        assert!(cache.group("a").is_some());
        assert!(cache.group("b").is_some());
        assert!(cache.group("c").is_none());
        assert_eq!(&*cache.group("a").unwrap().name, "a");
    }
}
