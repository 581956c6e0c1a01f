//! Pooled byte buffers for SSZ encoding and decoding.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug)]
struct PoolInner {
    free: Mutex<Vec<Vec<u8>>>,
    max_buffers: usize,
    max_buffer_bytes: usize,
    reused: AtomicU64,
    allocated: AtomicU64,
}

/// A pool of `Vec<u8>` buffers. Cloning gives another handle to the same pool.
///
/// [`take`](Self::take) hands out the smallest idle buffer that is large enough (cleared),
/// or a new one; the [`PooledBuf`] returns to the pool when dropped, unless its capacity
/// is above `max_buffer_bytes` or the pool already holds `max_buffers` idle buffers.
#[derive(Debug, Clone)]
pub struct BufferPool {
    inner: Arc<PoolInner>,
}

impl BufferPool {
    pub fn new(max_buffers: usize, max_buffer_bytes: usize) -> Self {
        BufferPool {
            inner: Arc::new(PoolInner {
                free: Mutex::new(Vec::with_capacity(max_buffers)),
                max_buffers,
                max_buffer_bytes,
                reused: AtomicU64::new(0),
                allocated: AtomicU64::new(0),
            }),
        }
    }

    fn free(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        self.inner.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An empty buffer with at least `min_capacity` bytes of capacity.
    pub fn take(&self, min_capacity: usize) -> PooledBuf {
        if min_capacity <= self.inner.max_buffer_bytes {
            let mut free = self.free();
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= min_capacity)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            if let Some(i) = best {
                let mut buf = free.swap_remove(i);
                drop(free);
                buf.clear();
                self.inner.reused.fetch_add(1, Ordering::Relaxed);
                return PooledBuf {
                    buf,
                    pool: self.clone(),
                };
            }
        }
        self.inner.allocated.fetch_add(1, Ordering::Relaxed);
        PooledBuf {
            buf: Vec::with_capacity(min_capacity),
            pool: self.clone(),
        }
    }

    /// `(reused, allocated)`: buffers handed out from the pool, and newly allocated.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.inner.reused.load(Ordering::Relaxed),
            self.inner.allocated.load(Ordering::Relaxed),
        )
    }

    /// Idle buffers in the pool.
    pub fn idle(&self) -> usize {
        self.free().len()
    }

    /// Wrap `buf` (taken from this pool and detached with [`PooledBuf::into_vec`], or any
    /// other) so that it returns to the pool when dropped.
    pub fn adopt(&self, buf: Vec<u8>) -> PooledBuf {
        PooledBuf {
            buf,
            pool: self.clone(),
        }
    }

    fn give_back(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > self.inner.max_buffer_bytes {
            return;
        }
        let mut free = self.free();
        if free.len() < self.inner.max_buffers {
            free.push(buf);
        }
    }
}

/// A buffer from a [`BufferPool`]; derefs to `Vec<u8>` and goes back to the pool on drop.
#[derive(Debug)]
pub struct PooledBuf {
    buf: Vec<u8>,
    pool: BufferPool,
}

impl PooledBuf {
    /// Keeps the bytes, detaching them from the pool.
    pub fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

impl Deref for PooledBuf {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_cleared_buffers() {
        let pool = BufferPool::new(4, 1 << 20);
        let mut a = pool.take(100);
        assert!(a.capacity() >= 100);
        a.extend_from_slice(&[9; 100]);
        drop(a);
        assert_eq!(pool.idle(), 1);
        assert_eq!(pool.stats(), (0, 1));

        let b = pool.take(50);
        assert!(b.is_empty(), "reused buffers come back cleared");
        assert!(b.capacity() >= 100);
        assert_eq!(pool.stats(), (1, 1));

        // Too small an idle buffer is not handed out.
        drop(b);
        let c = pool.take(4096);
        assert_eq!(pool.stats(), (1, 2));
        assert_eq!(pool.idle(), 1);
        drop(c);

        // Best fit: the 100-byte buffer serves a 60-byte request, not the 4096-byte one.
        let d = pool.take(60);
        assert!(d.capacity() < 4096);
        assert_eq!(pool.idle(), 1);
        assert_eq!(pool.stats(), (2, 2));
    }

    #[test]
    fn oversize_and_overflow_buffers_are_not_kept() {
        let pool = BufferPool::new(2, 1024);
        drop(pool.take(4096));
        assert_eq!(pool.idle(), 0, "over max_buffer_bytes");

        let mut grown = pool.take(16);
        grown.resize(10_000, 1);
        drop(grown);
        assert_eq!(pool.idle(), 0, "grew over max_buffer_bytes while in use");

        let bufs: Vec<_> = (0..3).map(|_| pool.take(64)).collect();
        drop(bufs);
        assert_eq!(pool.idle(), 2, "pool full at max_buffers");

        let kept = pool.take(64).into_vec();
        assert!(kept.capacity() >= 64);
        assert_eq!(pool.idle(), 1, "into_vec detaches the buffer");
        assert_eq!(pool.stats(), (1, 5));
    }

    #[test]
    fn shared_between_threads() {
        let pool = BufferPool::new(8, 1 << 16);
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        let mut b = pool.take(256);
                        b.extend_from_slice(&[t as u8; 32]);
                        assert_eq!(b.len(), 32);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let (reused, allocated) = pool.stats();
        assert_eq!(reused + allocated, 400);
        assert!(reused > 0 && allocated <= 400);
        assert!(pool.idle() <= 8);
    }
}
