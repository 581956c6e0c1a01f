//! The WGSL Fp and G1 functions behind small test entry points (`shaders/bls_test.wgsl`):
//! differential tests against blst, and measurements of the two multiplications.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use blst::blst_fp;

use super::gpu::{FpMul, Radix, SHADER_FP_G1, WG_SIZE};
use super::AggregateError;
use crate::accel::device::{
    grid, read_back, storage_entry, uniform_entry, GpuContext, GpuError, Program,
};

/// Unit-test and measurement kernels.
const SHADER_TEST: &str = include_str!("../../../shaders/bls_test.wgsl");

/// Operations of the `fp_test` kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FpOp {
    Mul = 0,
    Add = 1,
    Sub = 2,
    Sqr = 3,
    Neg = 4,
    Dbl = 5,
    Mul12 = 6,
}

/// G1 operations of the test kernels (points are projective X, Y, Z).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum G1Op {
    /// a + b (complete: also a = b, a = −b, infinity on either side).
    Add,
    /// a + (b.x, b.y) with b affine (b.z ignored; (0, 0) is infinity).
    AddAffine,
    /// a to Jacobian (X·Z, Y·Z², Z).
    ToJacobian,
}

impl G1Op {
    fn entry(self) -> &'static str {
        match self {
            G1Op::Add => "g1_add_test",
            G1Op::AddAffine => "g1_add_affine_test",
            G1Op::ToJacobian => "g1_to_jacobian_test",
        }
    }
}

/// A projective point (X : Y : Z) as blst field elements.
pub type Projective = [blst_fp; 3];

/// The WGSL Fp and G1 functions behind small test entry points (`shaders/bls_test.wgsl`),
/// for differential tests against blst and for measuring the multiplications. Inputs
/// and outputs are blst field elements (blst's Montgomery form), converted to and from
/// the shader's form. Each entry point's pipeline is built on first use.
pub struct BlsTestKernels {
    ctx: Arc<GpuContext>,
    fp_mul: FpMul,
    radix: Radix,
    program: Program,
    pipelines: Mutex<Vec<(&'static str, wgpu::ComputePipeline)>>,
}

impl BlsTestKernels {
    pub fn new(ctx: Arc<GpuContext>, fp_mul: FpMul) -> Result<Self, AggregateError> {
        ctx.ensure_alive()?;
        let entries = [
            storage_entry(0, true),
            storage_entry(1, true),
            storage_entry(2, false),
            uniform_entry(3, false, 16),
        ];
        let program = Program::new(
            &ctx,
            "quasar bls test",
            &[SHADER_FP_G1, fp_mul.source(), SHADER_TEST],
            &entries,
            true,
        )?;
        Ok(BlsTestKernels {
            radix: Radix::new(fp_mul),
            ctx,
            fp_mul,
            program,
            pipelines: Mutex::new(Vec::new()),
        })
    }

    pub fn fp_mul(&self) -> FpMul {
        self.fp_mul
    }

    /// Element-wise `op(a[i], b[i])` (b is ignored by unary ops but must be as long).
    pub fn fp(
        &self,
        op: FpOp,
        a: &[blst_fp],
        b: &[blst_fp],
    ) -> Result<Vec<blst_fp>, AggregateError> {
        let (out, _) = self.run("fp_test", op as u32, 0, a.len(), a, b)?;
        Ok(out)
    }

    /// `iters` chained multiplications x = x·b[i] from x = a[i], on every element at
    /// once; returns the results and the wall time of the submission.
    pub fn fp_mul_chain(
        &self,
        a: &[blst_fp],
        b: &[blst_fp],
        iters: u32,
    ) -> Result<(Vec<blst_fp>, Duration), AggregateError> {
        self.run("fp_mul_chain", 0, iters, a.len(), a, b)
    }

    /// Element-wise `op(a[i], b[i])` on projective points.
    pub fn g1(
        &self,
        op: G1Op,
        a: &[Projective],
        b: &[Projective],
    ) -> Result<Vec<Projective>, AggregateError> {
        let flat = |v: &[Projective]| v.iter().flatten().copied().collect::<Vec<blst_fp>>();
        let (out, _) = self.run(op.entry(), 0, 0, a.len(), &flat(a), &flat(b))?;
        Ok(out.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
    }

    fn pipeline(&self, entry: &'static str) -> Result<wgpu::ComputePipeline, GpuError> {
        let mut pipelines = self
            .pipelines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, p)) = pipelines.iter().find(|(e, _)| *e == entry) {
            return Ok(p.clone());
        }
        let p = self.program.pipeline(&self.ctx, entry)?;
        pipelines.push((entry, p.clone()));
        Ok(p)
    }

    /// One submission of `entry` over `count` elements (a, b: 12 words per field element).
    fn run(
        &self,
        entry: &'static str,
        op: u32,
        iters: u32,
        count: usize,
        a: &[blst_fp],
        b: &[blst_fp],
    ) -> Result<(Vec<blst_fp>, Duration), AggregateError> {
        if a.len() != b.len() {
            return Err(GpuError::Submission(format!(
                "{} elements in a but {} in b",
                a.len(),
                b.len()
            ))
            .into());
        }
        if a.is_empty() {
            return Ok((Vec::new(), Duration::ZERO));
        }
        let pipeline = self.pipeline(entry)?;
        let ctx = &self.ctx;
        ctx.ensure_alive()?;
        let device = ctx.device();
        let words = |v: &[blst_fp]| {
            v.iter()
                .flat_map(|x| self.radix.words_of(x))
                .collect::<Vec<u32>>()
        };
        let (wa, wb) = (words(a), words(b));
        let bytes = wa.len() as u64 * 4;
        let params: [u32; 4] = [op, count as u32, iters, 0];
        let (x, y) = grid(ctx, (count as u64).div_ceil(WG_SIZE))?;
        let started = Instant::now();
        let (index, readback) =
            ctx.error_scoped("bls test submission", GpuError::Submission, || {
                use wgpu::BufferUsages as U;
                let buffer = |label: &str, usage: U, size: u64| {
                    device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some(label),
                        size,
                        usage,
                        mapped_at_creation: false,
                    })
                };
                let ba = buffer("bls test a", U::STORAGE | U::COPY_DST, bytes);
                let bb = buffer("bls test b", U::STORAGE | U::COPY_DST, bytes);
                let bo = buffer("bls test out", U::STORAGE | U::COPY_SRC, bytes);
                let bp = buffer("bls test params", U::UNIFORM | U::COPY_DST, 16);
                let readback = buffer("bls test readback", U::MAP_READ | U::COPY_DST, bytes);
                let queue = ctx.queue();
                queue.write_buffer(&ba, 0, bytemuck::cast_slice(&wa));
                queue.write_buffer(&bb, 0, bytemuck::cast_slice(&wb));
                queue.write_buffer(&bp, 0, bytemuck::cast_slice(&params));
                let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("bls test"),
                    layout: self.program.layout(),
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: ba.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: bb.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: bo.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 3,
                            resource: bp.as_entire_binding(),
                        },
                    ],
                });
                let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("bls test"),
                });
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("bls test"),
                        timestamp_writes: None,
                    });
                    pass.set_pipeline(&pipeline);
                    pass.set_bind_group(0, &bind_group, &[]);
                    pass.dispatch_workgroups(x, y, 1);
                }
                encoder.copy_buffer_to_buffer(&bo, 0, &readback, 0, bytes);
                (queue.submit([encoder.finish()]), readback)
            })?;
        let (out, _) = read_back(ctx, "bls test", index, &readback, bytes, None)?;
        let elapsed = started.elapsed();
        ctx.record_submission(bytes * 2 + 16, bytes);
        let words: &[u32] = bytemuck::cast_slice(&out);
        let result = words
            .chunks_exact(12)
            .map(|w| {
                let mut a = [0u32; 12];
                a.copy_from_slice(w);
                self.radix.fp_of(&a)
            })
            .collect();
        Ok((result, elapsed))
    }
}
