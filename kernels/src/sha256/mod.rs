//! Batch SHA-256 of whole 64-byte messages (two 32-byte merkle chunks) into 32-byte
//! digests: `out[i] = SHA-256(input[i])`.
//!
//! Every digest is `compress(compress(IV, block), PADDING)`; the padding block's
//! `W + K` schedule is a constant table (`consts::PAD_WK`), so the second compression
//! does no schedule work. Kernels:
//!
//! * [`Kernel::Scalar`]: portable Rust, always available.
//! * [`Kernel::ShaNi`]: x86 SHA extensions, several messages interleaved per loop.
//! * [`Kernel::Avx2`]: 8 messages transposed across the lanes of `__m256i`.
//! * [`Kernel::Avx512`]: 16 messages across `__m512i` (rotates + ternary logic).
//!
//! [`Kernel::detect`] picks the fastest kernel the CPU supports, in the order measured
//! by `examples/kernel_speed.rs`.

mod consts;
mod scalar;

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
mod shani;

use std::sync::OnceLock;

/// A SHA-256 batch kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Scalar,
    ShaNi,
    Avx2,
    Avx512,
}

/// Preference order of [`Kernel::detect`], fastest first. Measured single-core with
/// `examples/kernel_speed.rs` on an Emerald Rapids Xeon (2.9 GHz), ns per block, 2^16
/// warm blocks: avx512 31, sha-ni 65, avx2 87, scalar 370 (hashtree: avx512_x16 31,
/// shani_x2 65 = its default on this CPU). Small batches of the AVX-512 kernel go through
/// SHA-NI when present (see `avx512.rs`), so `Avx512` is never worse than `ShaNi`.
const PREFERENCE: [Kernel; 4] = [Kernel::Avx512, Kernel::ShaNi, Kernel::Avx2, Kernel::Scalar];

impl Kernel {
    pub const ALL: [Kernel; 4] = [Kernel::Scalar, Kernel::ShaNi, Kernel::Avx2, Kernel::Avx512];

    /// The fastest kernel available on this CPU (detected once, then cached).
    pub fn detect() -> Kernel {
        static DETECTED: OnceLock<Kernel> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            PREFERENCE
                .into_iter()
                .find(|k| k.is_available())
                .unwrap_or(Kernel::Scalar)
        })
    }

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Kernel::ShaNi => shani::available(),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Kernel::Avx2 => avx2::available(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => avx512::available(),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The kernels this CPU can run, in [`Kernel::ALL`] order.
    pub fn available() -> Vec<Kernel> {
        Kernel::ALL
            .into_iter()
            .filter(|k| k.is_available())
            .collect()
    }

    /// Short name: "scalar", "sha-ni", "avx2", "avx512".
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::ShaNi => "sha-ni",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
        }
    }
}

/// `out[i] = SHA-256(input[i])`. Panics if `input.len() != out.len()` or the kernel is
/// unavailable on this CPU (check [`Kernel::is_available`]). Any `n`, including 0.
pub fn hash_blocks(kernel: Kernel, input: &[[u8; 64]], out: &mut [[u8; 32]]) {
    assert_eq!(
        input.len(),
        out.len(),
        "hash_blocks: input has {} blocks but out has {} digests",
        input.len(),
        out.len()
    );
    match kernel {
        Kernel::Scalar => scalar::hash_blocks(input, out),
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        Kernel::ShaNi if shani::available() => {
            // SAFETY: the kernel's target features (sha, sse2, ssse3, sse4.1) were just
            // detected on this CPU.
            unsafe { shani::hash_blocks(input, out) }
        }
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        Kernel::Avx2 if avx2::available() => {
            // SAFETY: the kernel's target feature (avx2) was just detected on this CPU.
            unsafe { avx2::hash_blocks(input, out) }
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 if avx512::available() => {
            // SAFETY: the kernel's target features (avx512f, avx512bw) were just detected
            // on this CPU (the SHA-NI tail path checks its own features).
            unsafe { avx512::hash_blocks(input, out, true) }
        }
        _ => panic!(
            "hash_blocks: kernel {} is not available on this CPU",
            kernel.name()
        ),
    }
}

/// [`hash_blocks`] with [`Kernel::detect`].
pub fn hash_blocks_auto(input: &[[u8; 64]], out: &mut [[u8; 32]]) {
    hash_blocks(Kernel::detect(), input, out);
}

/// Measurement hook (feature `bench-internals`): SHA-NI with 1..=4 interleaved streams.
#[doc(hidden)]
#[cfg(all(
    feature = "bench-internals",
    any(target_arch = "x86", target_arch = "x86_64")
))]
pub fn __shani_streams(streams: usize, input: &[[u8; 64]], out: &mut [[u8; 32]]) {
    assert!(shani::available());
    assert_eq!(input.len(), out.len());
    // SAFETY: SHA-NI features checked just above.
    unsafe {
        match streams {
            1 => shani::hash_blocks_streams::<1>(input, out),
            2 => shani::hash_blocks_streams::<2>(input, out),
            3 => shani::hash_blocks_streams::<3>(input, out),
            4 => shani::hash_blocks_streams::<4>(input, out),
            _ => panic!("streams"),
        }
    }
}
