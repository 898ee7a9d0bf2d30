//! What we render decodes, with an independent decoder (rqrr), back to the exact text: hundreds of random inputs,
//! ASCII and Chinese, every ECC level, PNG and SVG, with and without a logo.
#![allow(clippy::unwrap_used)]

use qr_render::{Ecc, Logo, RenderOptions, Rgb, render_png, render_svg};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ECCS: [Ecc; 4] = [Ecc::Low, Ecc::Medium, Ecc::Quartile, Ecc::High];

fn random_text(rng: &mut StdRng, chinese: bool) -> String {
    let len = rng.random_range(1..=if chinese { 60 } else { 180 });
    (0..len)
        .map(|_| {
            if chinese && rng.random_bool(0.7) {
                char::from_u32(rng.random_range(0x4e00..0x9fa5)).unwrap()
            } else {
                char::from(rng.random_range(0x20u8..0x7f))
            }
        })
        .collect()
}

/// Decodes a PNG to 8-bit luminance.
fn png_to_gray(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (frame.width as usize, frame.height as usize);
    let channels = frame.color_type.samples();
    let gray = buf[..frame.buffer_size()]
        .chunks_exact(channels)
        .map(|p| {
            if channels >= 3 {
                ((u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114) / 1000) as u8
            } else {
                p[0]
            }
        })
        .collect();
    (w, h, gray)
}

fn decode_gray(w: usize, h: usize, gray: &[u8]) -> String {
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| gray[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "exactly one code found");
    let (_meta, content) = grids[0].decode().expect("decodes");
    content
}

fn decode_png(bytes: &[u8]) -> String {
    let (w, h, gray) = png_to_gray(bytes);
    decode_gray(w, h, &gray)
}

/// Rasterises our SVG's module path (`M x y h n v1 h-n z` runs) at 4 px per module.
fn decode_svg(svg: &str) -> String {
    let side: usize = svg
        .split("viewBox=\"0 0 ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    let d = svg.split(" d=\"").nth(1).unwrap().split('"').next().unwrap();
    let scale = 4;
    let w = side * scale;
    let mut gray = vec![255u8; w * w];
    for run in d.split('z').filter(|r| !r.is_empty()) {
        let run = run.strip_prefix('M').unwrap();
        let (xy, rest) = run.split_once('h').unwrap();
        let (x, y) = xy.split_once(' ').unwrap();
        let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
        let n: usize = rest.split('v').next().unwrap().parse().unwrap();
        for py in y * scale..(y + 1) * scale {
            for px in x * scale..(x + n) * scale {
                gray[py * w + px] = 0;
            }
        }
    }
    decode_gray(w, w, &gray)
}

/// A colourful, partly transparent test logo.
fn test_logo() -> Vec<u8> {
    let (w, h) = (48u32, 40u32);
    let mut data = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let a = if (x + y) % 7 == 0 { 0 } else { 255 };
            data.extend_from_slice(&[(x * 5) as u8, (y * 6) as u8, 200, a]);
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().unwrap();
    writer.write_image_data(&data).unwrap();
    writer.finish().unwrap();
    out
}

#[test]
fn random_ascii_and_chinese_png_round_trip_at_every_ecc_level() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0001);
    for i in 0..240 {
        let text = random_text(&mut rng, i % 3 == 0);
        let opts = RenderOptions {
            ecc: ECCS[i % 4],
            module_px: Some(3),
            ..RenderOptions::default()
        };
        let png = render_png(&text, &opts).unwrap();
        assert_eq!(decode_png(&png), text, "case {i}");
    }
}

#[test]
fn random_svg_round_trip() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0002);
    for i in 0..120 {
        let text = random_text(&mut rng, i % 2 == 0);
        let opts = RenderOptions {
            ecc: ECCS[i % 4],
            ..RenderOptions::default()
        };
        let opts = RenderOptions { size_px: 600, ..opts };
        let svg = render_svg(&text, &opts).unwrap();
        assert_eq!(decode_svg(&svg), text, "case {i}");
    }
}

#[test]
fn codes_with_a_logo_still_decode() {
    let logo = test_logo();
    let mut rng = StdRng::seed_from_u64(0x5eed_0003);
    for i in 0..60 {
        let text = random_text(&mut rng, i % 2 == 1);
        let opts = RenderOptions {
            // The requested level is overridden by H when a logo is set.
            ecc: ECCS[i % 4],
            module_px: Some(4),
            logo: Some(Logo {
                png: logo.clone(),
                width_percent: [15, 20, 25][i % 3],
            }),
            ..RenderOptions::default()
        };
        let png = render_png(&text, &opts).unwrap();
        assert_eq!(decode_png(&png), text, "case {i}");
        let svg = render_svg(&text, &opts).unwrap();
        assert!(svg.contains("data:image/png;base64,"));
    }
}

#[test]
fn coloured_codes_use_a_palette_and_decode() {
    let opts = RenderOptions {
        dark: Rgb(0x1a, 0x3c, 0x8b),
        light: Rgb(0xff, 0xf8, 0xe7),
        ..RenderOptions::default()
    };
    let text = "https://wxkit.example/c/7ZQK4M2N6P3R5T7V9X2B4D6F8H";
    let png = render_png(text, &opts).unwrap();
    assert_eq!(decode_png(&png), text);
    // Bit depth 1, colour type 3 (indexed): bytes 24 and 25 of the IHDR.
    assert_eq!((png[24], png[25]), (1, 3));
    let plain = render_png(text, &RenderOptions::default()).unwrap();
    assert_eq!((plain[24], plain[25]), (1, 0), "black on white is 1-bit grayscale");
    assert!(render_svg(text, &opts).unwrap().contains("#1a3c8b"));
}

#[test]
fn text_over_capacity_is_a_typed_error_for_every_ecc() {
    for ecc in ECCS {
        let opts = RenderOptions {
            ecc,
            ..RenderOptions::default()
        };
        let too_long = "汉".repeat(3000);
        assert!(matches!(
            render_png(&too_long, &opts),
            Err(qr_render::Error::TooLong { .. })
        ));
        assert!(matches!(
            render_svg(&too_long, &opts),
            Err(qr_render::Error::TooLong { .. })
        ));
    }
}

#[test]
fn the_default_png_is_about_300_px() {
    let png = render_png("https://example.com/c/ABC", &RenderOptions::default()).unwrap();
    let (w, h, _) = png_to_gray(&png);
    assert_eq!(w, h);
    assert!((250..=300).contains(&w), "{w}");
}
