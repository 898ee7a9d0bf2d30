//! Timing table for scripts/bench-qr.sh: `cargo run --release -p wxkit-qr-render --example bench -- [ITERATIONS] [URL]`.
//! Prints one line per case: `name<TAB>microseconds_per_image<TAB>bytes`.

use qr_render::{Logo, RenderOptions, render_png, render_svg};
use std::time::Instant;

fn time<T>(iterations: u32, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut last = f();
    for _ in 0..iterations / 10 {
        last = f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        last = std::hint::black_box(f());
    }
    (start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations), last)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let iterations: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let url = args.next().unwrap_or_else(|| {
        "https://coupons.wxkit.example.com/c/7ZQK4M2N6P3R5T7V9X2B4D6F8HJKLMNPQRSTUVWXYZ234567?from=timeline&src=qr"
            .into()
    });
    // A 64x64 RGBA logo, made here so the benchmark needs no files.
    let logo = {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, 64, 64);
        enc.set_color(png::ColorType::Rgba);
        let mut w = enc.write_header()?;
        let data: Vec<u8> = (0..64 * 64).flat_map(|i| [(i % 251) as u8, 120, 200, 255]).collect();
        w.write_image_data(&data)?;
        w.finish()?;
        out
    };
    // Where the time goes: the QR encoding alone (version, codewords, all 8 masks scored), no drawing or PNG — ours,
    // and the fast_qr crate (the encoder qr-render used before its own) on the same text for comparison.
    let (us, n) = time(iterations, || qr_render::module_count(&url, &RenderOptions::default()));
    println!("encode_only\t{us:.1}\t{}", n?);
    let (us, n) = time(iterations, || {
        fast_qr::QRBuilder::new(url.as_str())
            .ecl(fast_qr::ECL::M)
            .build()
            .map(|q| q.size + 8)
    });
    println!("encode_fast_qr\t{us:.1}\t{}", n.map_err(|e| format!("{e:?}"))?);
    for size in [300u32, 600] {
        let opts = RenderOptions {
            size_px: size,
            ..RenderOptions::default()
        };
        let (us, png) = time(iterations, || render_png(&url, &opts));
        println!("png_{size}\t{us:.1}\t{}", png?.len());
        let (us, svg) = time(iterations, || render_svg(&url, &opts));
        println!("svg_{size}\t{us:.1}\t{}", svg?.len());
    }
    let opts = RenderOptions {
        logo: Some(Logo::new(logo)),
        ..RenderOptions::default()
    };
    let (us, png) = time(iterations, || render_png(&url, &opts));
    println!("png_300_logo\t{us:.1}\t{}", png?.len());
    Ok(())
}
