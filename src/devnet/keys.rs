//! The deterministic interop keys (eth2.0-pm `interop/mocked_start/keygen.py`):
//!
//! ```text
//! privkey_i = int.from_bytes(sha256(i.to_bytes(32, 'little')), 'little') % curve_order
//! ```
//!
//! serialized big-endian as the 32-byte secret key. These keys are public knowledge and
//! only fit test networks.

use blst::min_pk::{PublicKey, SecretKey};
use quasar_kernels::bls::GeneratorComb;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::DevnetError;

/// The BLS12-381 group order r, big-endian.
const CURVE_ORDER_BE: [u8; 32] = [
    0x73, 0xed, 0xa7, 0x53, 0x29, 0x9d, 0x7d, 0x48, 0x33, 0x39, 0xd8, 0x08, 0x09, 0xa1, 0xd8, 0x05,
    0x53, 0xbd, 0xa4, 0x02, 0xff, 0xfe, 0x5b, 0xfe, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01,
];

/// `a -= b` on 256-bit big-endian numbers (`a >= b`).
fn sub_be(a: &mut [u8; 32], b: &[u8; 32]) {
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = a[i] as i16 - b[i] as i16 - borrow;
        borrow = if d < 0 {
            d += 256;
            1
        } else {
            0
        };
        a[i] = d as u8;
    }
}

/// `a += b` on 256-bit big-endian numbers; the carry out.
fn add_be(a: &mut [u8; 32], b: &[u8; 32]) -> bool {
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let d = a[i] as u16 + b[i] as u16 + carry;
        a[i] = d as u8;
        carry = d >> 8;
    }
    carry != 0
}

/// The interop secret key of validator `index`, as the 32 big-endian bytes of the scalar.
pub fn interop_secret_bytes(index: u64) -> [u8; 32] {
    let mut preimage = [0u8; 32];
    preimage[..8].copy_from_slice(&index.to_le_bytes());
    let digest: [u8; 32] = Sha256::digest(preimage).into();
    // Little-endian integer → big-endian bytes, then reduce mod r: the value is below
    // 2^256 < 3r, so at most two subtractions.
    let mut be = digest;
    be.reverse();
    while be >= CURVE_ORDER_BE {
        sub_be(&mut be, &CURVE_ORDER_BE);
    }
    be
}

/// The interop secret key of validator `index`.
pub fn interop_secret_key(index: u64) -> Result<SecretKey, DevnetError> {
    SecretKey::from_bytes(&interop_secret_bytes(index))
        .map_err(|e| DevnetError::Bls(format!("interop key {index}: {e:?}")))
}

/// The first `n` interop keypairs, derived in parallel.
pub struct InteropKeys {
    pub secret: Vec<SecretKey>,
    pub public: Vec<PublicKey>,
    /// Compressed pubkeys, as they go into the state.
    pub pubkeys: Vec<[u8; 48]>,
}

impl InteropKeys {
    /// The pubkeys come from a [`GeneratorComb`] (one mixed addition per 8- or 12-bit
    /// digit of the secret, affine forms batched per chunk) — the same points as
    /// `sk_to_pk`, ~6× faster; at a million validators this was most of a devnet's
    /// generation. The comb is variable-time, which only public interop keys allow.
    pub fn generate(n: usize) -> Result<Self, DevnetError> {
        let secret: Vec<SecretKey> = (0..n as u64)
            .into_par_iter()
            .map(interop_secret_key)
            .collect::<Result<_, DevnetError>>()?;
        // Tables: 784 KiB at 8 bits (built in ~10 ms), 8.6 MiB at 12 (~0.1 s).
        let comb = GeneratorComb::new(if n >= 1 << 15 { 12 } else { 8 });
        let mut public = vec![PublicKey::default(); n];
        public
            .par_chunks_mut(1024)
            .zip(secret.par_chunks(1024))
            .for_each(|(out, chunk)| {
                // The comb takes the scalar little-endian; a secret key serializes big-endian.
                let le: Vec<[u8; 32]> = chunk
                    .iter()
                    .map(|sk| {
                        let mut k = sk.to_bytes();
                        k.reverse();
                        k
                    })
                    .collect();
                for (o, p) in out.iter_mut().zip(comb.mul_many_affine(&le)) {
                    *o = PublicKey::from(p);
                }
            });
        let pubkeys = public.par_iter().map(|pk| pk.compress()).collect();
        Ok(Self {
            secret,
            public,
            pubkeys,
        })
    }

    /// The sum of the secret keys of `signers` (repeats count again) modulo r: signing
    /// with it gives exactly the aggregate of each signer's signature over one message,
    /// as signing is `sk · H(m)` and aggregation adds the points.
    pub fn summed_secret_key(&self, signers: &[u64]) -> Result<SecretKey, DevnetError> {
        let mut sum = [0u8; 32];
        for &i in signers {
            let sk = self
                .secret
                .get(i as usize)
                .ok_or_else(|| DevnetError::Params(format!("no key for validator {i}")))?
                .to_bytes();
            // Both terms are below r < 2^255, so the sum fits 256 bits and one
            // subtraction reduces it.
            let carry = add_be(&mut sum, &sk);
            debug_assert!(!carry);
            if sum >= CURVE_ORDER_BE {
                sub_be(&mut sum, &CURVE_ORDER_BE);
            }
        }
        SecretKey::from_bytes(&sum)
            .map_err(|e| DevnetError::Bls(format!("summed secret key: {e:?}")))
    }

    pub fn len(&self) -> usize {
        self.secret.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secret.is_empty()
    }
}
