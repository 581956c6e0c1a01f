//! The CPU twin of the GPU aggregator: blst's batch-affine addition over pointers into the
//! table ([`quasar_kernels::bls::sum_by_indices`]), rayon across sets, very large sets
//! split across threads and the partial sums added.

use blst::{blst_p1, blst_p1_affine};
use quasar_kernels::bls as kbls;
use rayon::prelude::*;

use super::{check_sets, AggregateError, PendingAggregate, PubkeyAggregator, PubkeyTable};

/// Sets larger than this are split across threads.
const CPU_SPLIT: usize = 2048;

/// The CPU twin: blst batch-affine sums, rayon across sets and within very large sets.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuAggregator;

impl CpuAggregator {
    fn sum_set(
        table: &[blst_p1_affine],
        set: usize,
        indices: &[u32],
    ) -> Result<blst_p1, AggregateError> {
        let map = |e: kbls::IndexOutOfRange, base: usize| AggregateError::IndexOutOfRange {
            set,
            position: base + e.position,
            index: e.index,
            table_len: e.table_len,
        };
        if indices.len() <= CPU_SPLIT {
            return kbls::sum_by_indices(table, indices).map_err(|e| map(e, 0));
        }
        let parts: Vec<blst_p1> = indices
            .par_chunks(CPU_SPLIT)
            .enumerate()
            .map(|(k, chunk)| kbls::sum_by_indices(table, chunk).map_err(|e| map(e, k * CPU_SPLIT)))
            .collect::<Result<_, _>>()?;
        Ok(parts
            .iter()
            .fold(kbls::p1_infinity(), |acc, p| kbls::p1_add(&acc, p)))
    }
}

impl CpuAggregator {
    /// The sums of `sets` (checked already by `submit`; an index outside the table is
    /// still an error, not a panic).
    pub(crate) fn sum_sets(
        table: &PubkeyTable,
        sets: &[&[u32]],
    ) -> Result<Vec<blst_p1>, AggregateError> {
        let points = table.points();
        sets.par_iter()
            .enumerate()
            .map(|(s, indices)| Self::sum_set(points, s, indices))
            .collect()
    }
}

impl PubkeyAggregator for CpuAggregator {
    fn name(&self) -> String {
        "cpu(blst)".into()
    }

    /// Checks the sets; the sums are computed in `wait` (rayon across sets), where they
    /// cost the same cores as anything done in between.
    fn submit<'a>(
        &'a self,
        table: &'a PubkeyTable,
        sets: &'a [&'a [u32]],
    ) -> Result<PendingAggregate<'a>, AggregateError> {
        check_sets(table.len(), sets)?;
        Ok(PendingAggregate::on_cpu(table, sets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_splits_large_sets() {
        let g = kbls::p1_generator();
        let mut acc = g;
        let points: Vec<blst_p1_affine> = (0..64)
            .map(|_| {
                let a = kbls::p1_to_affine(&acc);
                acc = kbls::p1_add(&acc, &g);
                a
            })
            .collect();
        let table = PubkeyTable::new(points);
        // 3·CPU_SPLIT + 5 indices cycling over 1..=64 multiples of G.
        let n = 3 * CPU_SPLIT + 5;
        let set: Vec<u32> = (0..n as u32).map(|i| i % 64).collect();
        let got = CpuAggregator.aggregate(&table, &[&set]).expect("cpu");
        let k: u64 = (0..n as u64).map(|i| i % 64 + 1).sum();
        assert!(kbls::p1_is_equal(&got[0], &kbls::p1_mul_u64(&g, k)));
        let mut bad = set.clone();
        bad[CPU_SPLIT + 3] = 64;
        assert!(matches!(
            CpuAggregator.aggregate(&table, &[&[1], &bad]),
            Err(AggregateError::IndexOutOfRange { set: 1, position, .. }) if position == CPU_SPLIT + 3
        ));
    }
}
