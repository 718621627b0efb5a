//! How fast the embedded registry can make layer bytes: the PRNG fill behind every blob it
//! serves (`pullstorm::synth::fill_layer`), and the sha256 of a whole synthetic layer that
//! `SyntheticImage::build` computes before serving. The fill must stay well above what
//! one stream can carry (several GB/s), or the embedded registry, not the client under
//! test, sets the pace.
//!
//!     cargo bench --bench fill_speed
//!
//! A plain program (`harness = false`, no benchmark crate): it prints MiB/s. Under
//! `cargo test --all-targets` (no `--bench` argument) it runs once on a few MiB, as a smoke
//! test that it still works, and its figures mean nothing.

use pullstorm::synth::{fill_layer, SyntheticImage};
use std::time::Instant;

const MIB: u64 = 1 << 20;

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (fill_bytes, hashed_layer) = if measuring {
        (8 << 30, 1 << 30)
    } else {
        (16 * MIB, 4 * MIB)
    };

    // Read 256 KiB at a time, from past the tar header, as the registry serves a body.
    let mut buf = vec![0u8; 256 * 1024];
    let start = Instant::now();
    let mut offset = 512;
    while offset < fill_bytes {
        fill_layer(1, 0, fill_bytes + 4096, offset, &mut buf);
        offset += buf.len() as u64;
    }
    std::hint::black_box(&buf);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fill_layer: {:.0} MiB/s ({} MiB in {secs:.2} s)",
        fill_bytes as f64 / MIB as f64 / secs,
        fill_bytes / MIB
    );

    let start = Instant::now();
    let image = SyntheticImage::build(1, &[hashed_layer]);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "SyntheticImage::build, one {} MiB layer (fill + sha256): {:.0} MiB/s ({secs:.2} s, {})",
        hashed_layer / MIB,
        hashed_layer as f64 / MIB as f64 / secs,
        image.layers[0].digest
    );
}
