//! Background preloading of checkpoint states.
//!
//! The importer knows which checkpoint states it will need next (the first slots of the
//! coming epochs on the head's chain); the [`Preloader`] computes them on its own thread by
//! advancing a state through empty slots, and puts them in the [`CheckpointStateCache`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::checkpoint::hex;
use super::{CachedState, CheckpointKey, CheckpointStateCache};

/// Advances a state to the first slot of the target epoch (the caller's `process_slots`).
pub type AdvanceFn<S> = Arc<dyn Fn(&S, u64) -> Result<S, String> + Send + Sync>;

/// Compute the checkpoint states `(epoch, root)` for each of `epochs`, starting from
/// `state` (the post-state of block `root`, or any state on its chain before the epochs).
pub struct PreloadRequest<S> {
    pub root: [u8; 32],
    pub state: Arc<S>,
    pub epochs: Vec<u64>,
}

struct Slot<S> {
    pending: Option<PreloadRequest<S>>,
    busy: bool,
    shutdown: bool,
}

struct Shared<S> {
    slot: Mutex<Slot<S>>,
    changed: Condvar,
    shutdown: AtomicBool,
    preloaded: AtomicU64,
    replaced: AtomicU64,
    failed: AtomicU64,
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, Slot<S>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A background thread computing requested checkpoint states into the cache.
///
/// Requests are served one at a time; a request made while the thread is busy waits in a
/// single slot, replacing any older request still waiting there (only the newest head
/// matters). Dropping the preloader stops the thread after its current epoch and joins it.
pub struct Preloader<S: CachedState> {
    shared: Arc<Shared<S>>,
    handle: Option<JoinHandle<()>>,
}

impl<S: CachedState> Preloader<S> {
    /// Starts the thread.
    pub fn spawn(cache: Arc<CheckpointStateCache<S>>, advance: AdvanceFn<S>) -> Self {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot {
                pending: None,
                busy: false,
                shutdown: false,
            }),
            changed: Condvar::new(),
            shutdown: AtomicBool::new(false),
            preloaded: AtomicU64::new(0),
            replaced: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        let worker = shared.clone();
        let handle = std::thread::Builder::new()
            .name("quasar-preload".into())
            .spawn(move || run(&worker, &cache, &advance))
            .expect("spawning the checkpoint-state preloader thread");
        Preloader {
            shared,
            handle: Some(handle),
        }
    }

    /// Queues `req` without blocking, replacing a request still waiting.
    pub fn request(&self, req: PreloadRequest<S>) {
        let mut slot = self.shared.lock();
        if slot.pending.replace(req).is_some() {
            self.shared.replaced.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("checkpoint preload request replaced by a newer one");
        }
        drop(slot);
        self.shared.changed.notify_all();
    }

    /// Blocks until no request is waiting or running (or the thread has stopped).
    pub fn wait_idle(&self) {
        let mut slot = self.shared.lock();
        while slot.pending.is_some() || slot.busy {
            if self.handle.as_ref().is_none_or(|h| h.is_finished()) {
                return;
            }
            slot = self
                .shared
                .changed
                .wait_timeout(slot, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// States computed and inserted into the cache so far.
    pub fn preloaded(&self) -> u64 {
        self.shared.preloaded.load(Ordering::Relaxed)
    }

    /// Waiting requests replaced by newer ones so far.
    pub fn replaced(&self) -> u64 {
        self.shared.replaced.load(Ordering::Relaxed)
    }

    /// Requests abandoned because advancing a state failed (or panicked).
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }
}

impl<S: CachedState> Drop for Preloader<S> {
    fn drop(&mut self) {
        {
            let mut slot = self.shared.lock();
            slot.shutdown = true;
            slot.pending = None;
            self.shared.shutdown.store(true, Ordering::Relaxed);
        }
        self.shared.changed.notify_all();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn run<S: CachedState>(
    shared: &Shared<S>,
    cache: &CheckpointStateCache<S>,
    advance: &AdvanceFn<S>,
) {
    loop {
        let req = {
            let mut slot = shared.lock();
            loop {
                if slot.shutdown {
                    return;
                }
                if let Some(req) = slot.pending.take() {
                    slot.busy = true;
                    break req;
                }
                slot = shared.changed.wait(slot).unwrap_or_else(|e| e.into_inner());
            }
        };
        let root = req.root;
        if catch_unwind(AssertUnwindSafe(|| preload(shared, cache, advance, req))).is_err() {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(root = %hex(&root), "checkpoint preload panicked; request dropped");
        }
        shared.lock().busy = false;
        shared.changed.notify_all();
    }
}

/// Computes the requested epochs in ascending order, each from the previous result (or
/// from the cached state where one is already in memory), skipping those already cached.
fn preload<S: CachedState>(
    shared: &Shared<S>,
    cache: &CheckpointStateCache<S>,
    advance: &AdvanceFn<S>,
    req: PreloadRequest<S>,
) {
    let PreloadRequest {
        root,
        state: mut base,
        mut epochs,
    } = req;
    epochs.sort_unstable();
    epochs.dedup();
    for epoch in epochs {
        if shared.shutdown.load(Ordering::Relaxed) {
            return;
        }
        let key = CheckpointKey::new(epoch, root);
        if let Some(cached) = cache.peek(&key) {
            base = cached;
            continue;
        }
        if cache.contains(&key) {
            // On disk: leave it there; later epochs advance from the last base.
            continue;
        }
        let started = std::time::Instant::now();
        match advance(&base, epoch) {
            Ok(state) => {
                let state = Arc::new(state);
                if !cache.contains(&key) {
                    cache.insert(key, state.clone());
                    shared.preloaded.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        epoch,
                        root = %hex(&root),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "preloaded checkpoint state"
                    );
                }
                base = state;
            }
            Err(error) => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(epoch, root = %hex(&root), %error, "checkpoint preload failed");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_support::Toy;
    use crate::cache::{CacheMetrics, MemoryBudget, Tier, TieredConfig};
    use std::sync::mpsc;

    const ROOT: [u8; 32] = [7; 32];

    fn new_cache(dir: &std::path::Path) -> Arc<CheckpointStateCache<Toy>> {
        Arc::new(
            CheckpointStateCache::new(
                TieredConfig::new(dir),
                Arc::new(MemoryBudget::unlimited()),
                CacheMetrics::new(),
            )
            .unwrap(),
        )
    }

    type Calls = Arc<Mutex<Vec<(u64, u64)>>>;

    /// An advance function that records (from epoch, to epoch) per call.
    fn recording() -> (AdvanceFn<Toy>, Calls) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let log = calls.clone();
        let advance: AdvanceFn<Toy> = Arc::new(move |s: &Toy, epoch: u64| {
            log.lock().unwrap().push((s.epoch, epoch));
            if epoch < s.epoch {
                return Err(format!("cannot go back from {} to {epoch}", s.epoch));
            }
            Ok(Toy {
                epoch,
                payload: s.payload.clone(),
            })
        });
        (advance, calls)
    }

    #[test]
    fn fills_requested_epochs_and_skips_present_ones() {
        let dir = tempfile::tempdir().unwrap();
        let cache = new_cache(dir.path());
        let (advance, calls) = recording();
        // Epoch 12 is already cached (with a marker payload).
        let marker = Toy {
            epoch: 12,
            payload: vec![42],
        };
        cache.insert(CheckpointKey::new(12, ROOT), Arc::new(marker.clone()));

        let pre = Preloader::spawn(cache.clone(), advance);
        pre.request(PreloadRequest {
            root: ROOT,
            state: Arc::new(Toy::new(10, 16)),
            epochs: vec![13, 11, 12, 11],
        });
        pre.wait_idle();

        // 11 from the request's state, 12 skipped, 13 from the cached 12.
        assert_eq!(*calls.lock().unwrap(), vec![(10, 11), (12, 13)]);
        assert_eq!(pre.preloaded(), 2);
        let (s13, tier) = cache.get(&CheckpointKey::new(13, ROOT)).unwrap().unwrap();
        assert_eq!(tier, Tier::Memory);
        assert_eq!(s13.epoch, 13);
        assert_eq!(s13.payload, marker.payload, "chained from the cached state");
        let (s11, _) = cache.get(&CheckpointKey::new(11, ROOT)).unwrap().unwrap();
        assert_eq!(
            *s11,
            Toy {
                epoch: 11,
                payload: Toy::new(10, 16).payload
            }
        );
        let (s12, _) = cache.get(&CheckpointKey::new(12, ROOT)).unwrap().unwrap();
        assert_eq!(*s12, marker, "present state not overwritten");

        // Everything present: nothing computed.
        pre.request(PreloadRequest {
            root: ROOT,
            state: Arc::new(Toy::new(10, 16)),
            epochs: vec![11, 12, 13],
        });
        pre.wait_idle();
        assert_eq!(calls.lock().unwrap().len(), 2);
        assert_eq!(pre.preloaded(), 2);
    }

    #[test]
    fn errors_are_logged_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let cache = new_cache(dir.path());
        let (advance, calls) = recording();
        let pre = Preloader::spawn(cache.clone(), advance);
        // Going backwards fails; the rest of that request is abandoned.
        pre.request(PreloadRequest {
            root: ROOT,
            state: Arc::new(Toy::new(20, 4)),
            epochs: vec![5, 21],
        });
        pre.wait_idle();
        assert_eq!(pre.failed(), 1);
        assert_eq!(pre.preloaded(), 0);
        assert_eq!(*calls.lock().unwrap(), vec![(20, 5)]);

        // A panicking advance does not kill the thread either.
        let panicky: AdvanceFn<Toy> = Arc::new(|_: &Toy, _| panic!("boom"));
        let pre2 = Preloader::spawn(cache.clone(), panicky);
        pre2.request(PreloadRequest {
            root: ROOT,
            state: Arc::new(Toy::new(1, 4)),
            epochs: vec![2],
        });
        pre2.wait_idle();
        assert_eq!(pre2.failed(), 1);

        // The first thread still works.
        pre.request(PreloadRequest {
            root: ROOT,
            state: Arc::new(Toy::new(20, 4)),
            epochs: vec![21],
        });
        pre.wait_idle();
        assert_eq!(pre.preloaded(), 1);
        assert!(cache.contains(&CheckpointKey::new(21, ROOT)));
    }

    #[test]
    fn newer_requests_replace_waiting_ones() {
        let dir = tempfile::tempdir().unwrap();
        let cache = new_cache(dir.path());
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let gate = Mutex::new((started_tx, go_rx));
        let advance: AdvanceFn<Toy> = Arc::new(move |s: &Toy, epoch| {
            if epoch == 1 {
                // Hold the thread busy until the test has queued more requests.
                let g = gate.lock().unwrap();
                g.0.send(()).unwrap();
                g.1.recv().unwrap();
            }
            Ok(Toy {
                epoch,
                payload: s.payload.clone(),
            })
        });
        let pre = Preloader::spawn(cache.clone(), advance);
        let req = |epoch| PreloadRequest {
            root: ROOT,
            state: Arc::new(Toy::new(0, 1)),
            epochs: vec![epoch],
        };
        pre.request(req(1));
        started_rx.recv().unwrap();
        pre.request(req(2));
        pre.request(req(3));
        go_tx.send(()).unwrap();
        pre.wait_idle();
        assert_eq!(pre.replaced(), 1);
        assert_eq!(pre.preloaded(), 2);
        assert!(cache.contains(&CheckpointKey::new(1, ROOT)));
        assert!(
            !cache.contains(&CheckpointKey::new(2, ROOT)),
            "replaced while waiting"
        );
        assert!(cache.contains(&CheckpointKey::new(3, ROOT)));
    }

    #[test]
    fn drop_stops_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let cache = new_cache(dir.path());
        let (advance, _) = recording();
        let pre = Preloader::spawn(cache.clone(), advance);
        drop(pre);
        // Only the test holds the cache now.
        assert_eq!(Arc::strong_count(&cache), 1);
    }
}
