//! `cargo bench -p qr-render`: PNG and SVG at 300 and 600 px (and PNG with a logo).
#![allow(clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use qr_render::{RenderOptions, render_png, render_svg};
use std::hint::black_box;

const URL: &str =
    "https://coupons.wxkit.example.com/c/7ZQK4M2N6P3R5T7V9X2B4D6F8HJKLMNPQRSTUVWXYZ234567?from=timeline&src=qr";

fn bench(c: &mut Criterion) {
    for size in [300, 600] {
        let opts = RenderOptions {
            size_px: size,
            ..RenderOptions::default()
        };
        c.bench_function(&format!("png_{size}px"), |b| {
            b.iter(|| render_png(black_box(URL), &opts).unwrap())
        });
        c.bench_function(&format!("svg_{size}px"), |b| {
            b.iter(|| render_svg(black_box(URL), &opts).unwrap())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
