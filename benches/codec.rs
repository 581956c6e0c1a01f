//! Criterion bench for the req/resp `ssz_snappy` codec on a ~100 KB `SignedBeaconBlock`
//! response chunk, against plain `snap` in the same run: `snap`'s framing writer and
//! reader (what Lighthouse's codec wraps) and raw (unframed) snappy, each with the same
//! SSZ decode after it.
//!
//! cargo bench --bench codec

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quasar::bench::net;
use quasar::net::codec;
use quasar::types::mainnet::SignedBeaconBlock;
use quasar::types::ssz::{ssz_encode, SszDecode};
use ssz_rs::List;

const CONTEXT: [u8; 4] = [0xcc, 0x2c, 0x5c, 0xdb];

/// A mainnet block of about 100 KB: 40 transactions of 2.5 KB, half of each random
/// (signatures, hashes) and half low-entropy (calldata with zero runs), as real
/// payloads are.
fn block_ssz() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let txs: Vec<List<u8, { 1 << 30 }>> = (0..40)
        .map(|_| {
            let tx: Vec<u8> = (0..2500)
                .map(|i| {
                    let r = next();
                    if i < 1250 || r % 4 == 0 {
                        r as u8
                    } else {
                        0
                    }
                })
                .collect();
            List::try_from(tx).unwrap()
        })
        .collect();
    let mut block = SignedBeaconBlock::default();
    block.message.slot = 12_345_678;
    block.message.body.execution_payload.transactions = List::try_from(txs).unwrap();
    ssz_encode(&block).unwrap()
}

fn decode_ours(wire: &[u8]) -> Vec<u8> {
    net::decode_chunk(wire).unwrap()
}

fn snap_frame_encode(ssz: &[u8]) -> Vec<u8> {
    net::snap_frame_encode(CONTEXT, ssz)
}

fn snap_frame_decode(wire: &[u8]) -> Vec<u8> {
    net::snap_frame_decode(wire).unwrap()
}

fn codec_bench(c: &mut Criterion) {
    let ssz = block_ssz();
    let ours = codec::encode_response_chunk(0, Some(CONTEXT), &ssz);
    let theirs = snap_frame_encode(&ssz);
    assert_eq!(ours, theirs, "the same bytes on the wire");
    let raw = snap::raw::Encoder::new().compress_vec(&ssz).unwrap();
    assert_eq!(decode_ours(&ours), ssz);
    assert_eq!(snap_frame_decode(&theirs), ssz);
    eprintln!(
        "block: {} bytes SSZ, {} bytes framed ({:.1}%), {} bytes raw snappy",
        ssz.len(),
        ours.len(),
        100.0 * ours.len() as f64 / ssz.len() as f64,
        raw.len()
    );

    let mut g = c.benchmark_group("ssz_snappy_encode_100KB_block");
    g.throughput(Throughput::Bytes(ssz.len() as u64));
    g.bench_function("quasar", |b| {
        b.iter(|| codec::encode_response_chunk(0, Some(CONTEXT), &ssz))
    });
    g.bench_function("snap_frame", |b| b.iter(|| snap_frame_encode(&ssz)));
    g.bench_function("snap_raw", |b| {
        b.iter(|| snap::raw::Encoder::new().compress_vec(&ssz).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("ssz_snappy_decode_100KB_block");
    g.throughput(Throughput::Bytes(ssz.len() as u64));
    g.bench_function("quasar", |b| b.iter(|| decode_ours(&ours)));
    g.bench_function("snap_frame", |b| b.iter(|| snap_frame_decode(&theirs)));
    g.bench_function("snap_raw", |b| {
        b.iter(|| snap::raw::Decoder::new().decompress_vec(&raw).unwrap())
    });
    g.bench_function("ssz_only", |b| {
        b.iter(|| SignedBeaconBlock::ssz_decode(&ssz).unwrap())
    });
    g.bench_function("quasar+ssz", |b| {
        b.iter(|| SignedBeaconBlock::ssz_decode(&decode_ours(&ours)).unwrap())
    });
    g.bench_function("snap_frame+ssz", |b| {
        b.iter(|| SignedBeaconBlock::ssz_decode(&snap_frame_decode(&theirs)).unwrap())
    });
    g.bench_function("snap_raw+ssz", |b| {
        b.iter(|| {
            SignedBeaconBlock::ssz_decode(&snap::raw::Decoder::new().decompress_vec(&raw).unwrap())
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, codec_bench);
criterion_main!(benches);
