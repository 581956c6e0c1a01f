//! The transition context: everything the state transition reads or remembers besides
//! the state itself, as one value its owner creates and passes in.
//!
//! - the chain config;
//! - the caches of the chain, shared by every context made for it (through an `Arc`, each
//!   behind its own lock): the committee shufflings ([`ShufflingCache`]) and the
//!   pubkey → validator index map ([`PubkeyIndex`]);
//! - the state-root carry ([`RootCarry`]): the root cache carried from block to block, the
//!   "known root" declaration and the "unchanged validators" hint, plain fields mutated
//!   through `&mut`.
//!
//! Nothing is process-wide: two contexts made with [`TransitionCtx::new`] share nothing (two
//! chains, or two nodes in one test process, never see each other's shufflings or roots).
//! [`TransitionCtx::sibling`] makes a context for another thread of the same chain (the
//! preloader, a rebuild from the database): the same config and caches, its own carry.
//!
//! The spec's functions that read the config or a cache take the context: `state_transition`,
//! `process_slots`, `process_block`, `process_epoch`, every `process_*` step that reads the
//! config (`process_execution_payload`, `process_voluntary_exit`, `process_registry_updates`,
//! …) or a cache (`process_attestation`, `process_sync_aggregate`), and the committee
//! accessors (`get_shuffling`, `get_beacon_committee`, `get_attesting_indices`,
//! `compute_committee`). The ones that root the state (`state_transition`, `process_slots`,
//! `process_slot`) take it as `&mut`. Helpers that only read config values
//! (`compute_domain`, the churn limits, `initiate_validator_exit`, …) take the
//! [`ChainConfig`] (`ctx.cfg()`); steps that need neither (`process_block_header`,
//! `process_randao`, …) take neither.

use std::sync::Arc;

use super::pubkey_index::PubkeyIndex;
use super::shuffling::ShufflingCache;
use super::{ChainConfig, TransitionError};
use crate::accel::hash::CpuHasher;
use crate::merkle::{RootCarry, StateRootFields};

/// The caches of one chain the transition reads through (shared by its contexts).
#[derive(Debug, Default)]
pub struct TransitionCaches {
    /// Committee shufflings by (seed, active set).
    pub shuffling: ShufflingCache,
    /// Validator index by pubkey.
    pub pubkeys: PubkeyIndex,
}

/// Time the transition spent in its two big phases through this context (the importer
/// reads and resets it per run for its phase breakdown).
#[derive(Debug, Clone, Copy, Default)]
pub struct PhaseTimes {
    /// `process_epoch`.
    pub epoch: std::time::Duration,
    /// State roots (`state_root`, through the carried cache).
    pub state_root: std::time::Duration,
}

/// What a block's transition reads off the whole registry, remembered from block to block
/// of one chain of states within an epoch: the attester shufflings by epoch and the
/// current epoch's total active balance. Read and filled only while the caller declares it
/// (see [`TransitionCtx::with_registry_memo`]): nothing a block does changes the active
/// set of the current or previous epoch (exits and slashings take effect at least
/// `MAX_SEED_LOOKAHEAD + 1` epochs later) or an effective balance (only epoch processing
/// does), so while the states continue one another inside an epoch the values hold —
/// each is also keyed by epoch and registry length.
#[derive(Debug, Default)]
pub struct RegistryMemo {
    enabled: bool,
    entries: std::sync::Mutex<MemoEntries>,
}

#[derive(Debug, Default)]
struct MemoEntries {
    /// (epoch, registry length, shuffling).
    shufflings: Vec<(u64, usize, Arc<Vec<u64>>)>,
    /// (epoch, registry length, total active balance).
    total_active_balance: Option<(u64, usize, u64)>,
}

impl RegistryMemo {
    fn entries(&self) -> std::sync::MutexGuard<'_, MemoEntries> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the memo is declared for the block in progress.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The shuffling of `epoch` for a registry of `len`: remembered, or `compute`d (and
    /// remembered while enabled).
    pub fn shuffling<E>(
        &self,
        epoch: u64,
        len: usize,
        compute: impl FnOnce() -> Result<Arc<Vec<u64>>, E>,
    ) -> Result<Arc<Vec<u64>>, E> {
        if !self.enabled {
            return compute();
        }
        if let Some((_, _, s)) = self
            .entries()
            .shufflings
            .iter()
            .find(|(e, l, _)| *e == epoch && *l == len)
        {
            return Ok(s.clone());
        }
        let s = compute()?;
        let mut m = self.entries();
        m.shufflings.retain(|(e, _, _)| epoch.abs_diff(*e) <= 1);
        m.shufflings.push((epoch, len, s.clone()));
        Ok(s)
    }

    /// The total active balance of `epoch` (the state's current epoch) for a registry of
    /// `len`: remembered, or `compute`d (and remembered while enabled).
    pub fn total_active_balance<E>(
        &self,
        epoch: u64,
        len: usize,
        compute: impl FnOnce() -> Result<u64, E>,
    ) -> Result<u64, E> {
        if !self.enabled {
            return compute();
        }
        if let Some((e, l, t)) = self.entries().total_active_balance {
            if e == epoch && l == len {
                return Ok(t);
            }
        }
        let t = compute()?;
        self.entries().total_active_balance = Some((epoch, len, t));
        Ok(t)
    }

    fn clear(&mut self) {
        *self.entries() = MemoEntries::default();
    }
}

/// What the state transition runs with, besides the state (see the module docs).
#[derive(Debug)]
pub struct TransitionCtx {
    cfg: Arc<ChainConfig>,
    caches: Arc<TransitionCaches>,
    /// The state-root carry: every root the transition takes through this context
    /// updates `roots.cache` (only what changed since the last root is rehashed).
    pub roots: RootCarry,
    /// Time spent in epoch processing and state roots (travels with the carry).
    pub phases: PhaseTimes,
    /// Registry-derived values remembered from block to block (travels with the carry).
    pub registry: RegistryMemo,
}

impl TransitionCtx {
    /// A context for a chain with `cfg`: fresh caches, an empty root carry.
    pub fn new(cfg: ChainConfig) -> Self {
        Self::with_caches(Arc::new(cfg), Arc::new(TransitionCaches::default()))
    }

    /// A context over given caches (shared with whoever else holds them).
    pub fn with_caches(cfg: Arc<ChainConfig>, caches: Arc<TransitionCaches>) -> Self {
        TransitionCtx {
            cfg,
            caches,
            roots: RootCarry::default(),
            phases: PhaseTimes::default(),
            registry: RegistryMemo::default(),
        }
    }

    /// A context for another thread of the same chain: the same config and caches (cheap:
    /// two `Arc` clones), its own fresh root carry.
    pub fn sibling(&self) -> Self {
        Self::with_caches(self.cfg.clone(), self.caches.clone())
    }

    /// Moves this context out, with its root carry, leaving a sibling with an empty carry
    /// in its place (as `std::mem::take` would): for handing the carry to the thread that
    /// applies the next run, and back.
    pub fn take(&mut self) -> Self {
        let sibling = self.sibling();
        std::mem::replace(self, sibling)
    }

    /// A sibling running under another config (e.g. Electra's blob limit): the same
    /// caches, its own fresh root carry.
    pub fn with_config(&self, cfg: ChainConfig) -> Self {
        Self::with_caches(Arc::new(cfg), self.caches.clone())
    }

    /// The chain config.
    pub fn cfg(&self) -> &ChainConfig {
        &self.cfg
    }

    /// The chain config, shared.
    pub fn cfg_arc(&self) -> &Arc<ChainConfig> {
        &self.cfg
    }

    /// The caches this context reads through.
    pub fn caches(&self) -> &Arc<TransitionCaches> {
        &self.caches
    }

    /// The committee shufflings.
    pub fn shuffling(&self) -> &ShufflingCache {
        &self.caches.shuffling
    }

    /// The pubkey → validator index map.
    pub fn pubkeys(&self) -> &PubkeyIndex {
        &self.caches.pubkeys
    }

    /// Whether `other` reads through the same caches (a sibling).
    pub fn shares_caches_with(&self, other: &TransitionCtx) -> bool {
        Arc::ptr_eq(&self.caches, &other.caches)
    }

    /// `hash_tree_root(state)` through the carried root cache (or the declared known
    /// root): equal to the cold root, held so by `tests/it/state_root.rs`.
    pub fn state_root<S: StateRootFields + ?Sized>(
        &mut self,
        state: &S,
    ) -> Result<[u8; 32], TransitionError> {
        let hasher = CpuHasher::simd();
        let t = std::time::Instant::now();
        let root = self
            .roots
            .root(&hasher, state)
            .map_err(|e| TransitionError::Internal(format!("state root: {e}")));
        self.phases.state_root += t.elapsed();
        root
    }

    /// Run `f` with the root of the state as it stands now declared (`None`: nothing
    /// declared): the first root `f` takes through the context returns `root` without
    /// hashing. The caller vouches that the state `f` roots first is that state; the
    /// declaration is dropped when `f` returns (or unwinds).
    pub fn with_known_root<R>(
        &mut self,
        root: Option<[u8; 32]>,
        f: impl FnOnce(&mut TransitionCtx) -> R,
    ) -> R {
        self.roots.known = root;
        let scope = Declared {
            ctx: self,
            known: true,
        };
        f(&mut *scope.ctx)
    }

    /// Run `f` declaring (when `unchanged`) that no existing validator changed since the
    /// carried cache's last update: the first carried update inside `f` skips comparing
    /// the registry. The declaration is dropped when `f` returns (or unwinds).
    pub fn with_unchanged_validators<R>(
        &mut self,
        unchanged: bool,
        f: impl FnOnce(&mut TransitionCtx) -> R,
    ) -> R {
        self.roots.unchanged_validators = unchanged;
        let scope = Declared {
            ctx: self,
            known: false,
        };
        f(&mut *scope.ctx)
    }
}

impl TransitionCtx {
    /// Run `f` (one block's `process_block`) with the registry memo declared. `continues`:
    /// the state is the one the memo was last filled from, advanced by whole blocks
    /// within the same epoch (the importer's run, block after block); otherwise the memo
    /// is emptied first. The declaration ends with `f` (also when it unwinds).
    pub fn with_registry_memo<R>(
        &mut self,
        continues: bool,
        f: impl FnOnce(&mut TransitionCtx) -> R,
    ) -> R {
        if !continues {
            self.registry.clear();
        }
        self.registry.enabled = true;
        struct Off<'a>(&'a mut TransitionCtx);
        impl Drop for Off<'_> {
            fn drop(&mut self) {
                self.0.registry.enabled = false;
            }
        }
        let scope = Off(self);
        f(&mut *scope.0)
    }
}

/// Drops a declaration of the carry when its scope ends.
struct Declared<'a> {
    ctx: &'a mut TransitionCtx,
    known: bool,
}

impl Drop for Declared<'_> {
    fn drop(&mut self) {
        if self.known {
            self.ctx.roots.known = None;
        } else {
            self.ctx.roots.unchanged_validators = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transition::minimal::state_root_of;
    use crate::types::minimal::BeaconState;

    #[test]
    fn the_registry_memo_is_read_only_while_declared_and_emptied_unless_continued() {
        let mut ctx = TransitionCtx::new(ChainConfig::minimal());
        let calls = std::cell::Cell::new(0);
        let total = |ctx: &TransitionCtx, epoch, len| {
            ctx.registry
                .total_active_balance::<()>(epoch, len, || {
                    calls.set(calls.get() + 1);
                    Ok(calls.get())
                })
                .unwrap()
        };
        // Undeclared: computed every time.
        assert_eq!((total(&ctx, 3, 10), total(&ctx, 3, 10)), (1, 2));
        // Declared: computed once, then remembered across continued blocks.
        ctx.with_registry_memo(false, |c| {
            assert_eq!((total(c, 3, 10), total(c, 3, 10)), (3, 3))
        });
        ctx.with_registry_memo(true, |c| assert_eq!(total(c, 3, 10), 3));
        // Another epoch or registry length is not the remembered one.
        ctx.with_registry_memo(true, |c| {
            assert_eq!((total(c, 4, 10), total(c, 4, 11)), (4, 5))
        });
        // A block that does not continue empties the memo; the scope ends the declaration.
        ctx.with_registry_memo(false, |c| assert_eq!(total(c, 4, 11), 6));
        assert!(!ctx.registry.enabled());
        assert_eq!(total(&ctx, 4, 11), 7);
    }

    #[test]
    fn declarations_hold_for_one_root_and_their_scope() {
        let mut ctx = TransitionCtx::new(ChainConfig::minimal());
        let state = BeaconState::default();
        let cold = state_root_of(&state).unwrap();
        let fake = [7u8; 32];

        // A known root answers the first root only.
        let (first, second) = ctx.with_known_root(Some(fake), |c| {
            (c.state_root(&state).unwrap(), c.state_root(&state).unwrap())
        });
        assert_eq!((first, second), (fake, cold));
        // An unconsumed declaration ends with its scope, also when it unwinds.
        ctx.with_known_root(Some(fake), |_| ());
        assert_eq!(ctx.roots.known, None);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ctx.with_known_root(Some(fake), |_| panic!("unwinds"))
        }));
        assert!(unwound.is_err());
        assert_eq!(ctx.roots.known, None);
        assert_eq!(ctx.state_root(&state).unwrap(), cold);

        // The unchanged-validators hint: consumed by one update, dropped with its scope.
        ctx.with_unchanged_validators(true, |c| assert!(c.roots.unchanged_validators));
        assert!(!ctx.roots.unchanged_validators);
        let hinted = ctx.with_unchanged_validators(true, |c| {
            let root = c.state_root(&state).unwrap();
            assert!(!c.roots.unchanged_validators, "consumed by the update");
            root
        });
        assert_eq!(hinted, cold);

        // `take` moves the carry out and leaves a sibling with an empty one.
        let taken = ctx.take();
        assert_eq!(taken.roots.cache.root(), Some(cold));
        assert_eq!(ctx.roots.cache.root(), None);
        assert!(ctx.shares_caches_with(&taken));
        assert!(!ctx.shares_caches_with(&TransitionCtx::new(ChainConfig::minimal())));
    }
}
