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

/// Our SVG's modules (`M x y h n v1 h-n z` runs of dark modules): (modules per side, dark flags row by row).
fn svg_modules(svg: &str) -> (usize, Vec<bool>) {
    let side: usize = svg
        .split("viewBox=\"0 0 ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    let d = svg.split(" d=\"").nth(1).unwrap().split('"').next().unwrap();
    let mut dark = vec![false; side * side];
    for run in d.split('z').filter(|r| !r.is_empty()) {
        let (xy, rest) = run.strip_prefix('M').unwrap().split_once('h').unwrap();
        let (x, y) = xy.split_once(' ').unwrap();
        let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
        let n: usize = rest.split('v').next().unwrap().parse().unwrap();
        dark[y * side + x..y * side + x + n].fill(true);
    }
    (side, dark)
}

/// Rasterises our SVG's modules at 4 px per module and decodes them.
fn decode_svg(svg: &str) -> String {
    let (side, dark) = svg_modules(svg);
    let scale = 4;
    let w = side * scale;
    let gray: Vec<u8> = (0..w * w)
        .map(|i| {
            if dark[(i / w / scale) * side + (i % w) / scale] {
                0
            } else {
                255
            }
        })
        .collect();
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

/// Byte-mode capacity of each version at L, M, Q, H (ISO/IEC 18004 table 7), for the tests below.
fn fullest_text(version: usize, level: usize, mode: u8) -> String {
    // Data codewords per version and level, from the standard's table 7.
    const DATA: [[u16; 4]; 40] = [
        [19, 16, 13, 9],
        [34, 28, 22, 16],
        [55, 44, 34, 26],
        [80, 64, 48, 36],
        [108, 86, 62, 46],
        [136, 108, 76, 60],
        [156, 124, 88, 66],
        [194, 154, 110, 86],
        [232, 182, 132, 100],
        [274, 216, 154, 122],
        [324, 254, 180, 140],
        [370, 290, 206, 158],
        [428, 334, 244, 180],
        [461, 365, 261, 197],
        [523, 415, 295, 223],
        [589, 453, 325, 253],
        [647, 507, 367, 283],
        [721, 563, 397, 313],
        [795, 627, 445, 341],
        [861, 669, 485, 385],
        [932, 714, 512, 406],
        [1006, 782, 568, 442],
        [1094, 860, 614, 464],
        [1174, 914, 664, 514],
        [1276, 1000, 718, 538],
        [1370, 1062, 754, 596],
        [1468, 1128, 808, 628],
        [1531, 1193, 871, 661],
        [1631, 1267, 911, 701],
        [1735, 1373, 985, 745],
        [1843, 1455, 1033, 793],
        [1955, 1541, 1115, 845],
        [2071, 1631, 1171, 901],
        [2191, 1725, 1231, 961],
        [2306, 1812, 1286, 986],
        [2434, 1914, 1354, 1054],
        [2566, 1992, 1426, 1096],
        [2702, 2102, 1502, 1142],
        [2812, 2216, 1582, 1222],
        [2956, 2334, 1666, 1276],
    ];
    let bits = usize::from(DATA[version - 1][level]) * 8 - 4;
    let band = match version {
        1..=9 => 0,
        10..=26 => 1,
        _ => 2,
    };
    let len = match mode {
        b'n' => {
            let b = bits - [10, 12, 14][band];
            3 * (b / 10) + [0, 0, 0, 0, 1, 1, 1, 2, 2, 2][b % 10]
        }
        b'a' => {
            let b = bits - [9, 11, 13][band];
            2 * (b / 11) + usize::from(b % 11 >= 6)
        }
        _ => (bits - [8, 16, 16][band]) / 8,
    };
    let alphabet: &[u8] = match mode {
        b'n' => b"0123456789",
        b'a' => b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:",
        _ => b"abcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=",
    };
    (0..len)
        .map(|i| char::from(alphabet[(i * 7 + version) % alphabet.len()]))
        .collect()
}

#[test]
fn every_version_and_level_holds_its_full_capacity_and_decodes() {
    // The fullest text of each mode fits exactly its version (one more character needs the next one): checks our
    // capacity tables, block layout, alignment patterns and version information on all 40 versions, with rqrr.
    for version in 1..=40 {
        for (level, ecc) in ECCS.iter().enumerate() {
            let mode = [b'b', b'n', b'a'][(version + level) % 3];
            let text = fullest_text(version, level, mode);
            let opts = RenderOptions {
                ecc: *ecc,
                module_px: Some(2),
                ..RenderOptions::default()
            };
            let side = qr_render::module_count(&text, &opts).unwrap() as usize;
            assert_eq!(
                side - 8,
                17 + 4 * version,
                "version {version} level {level} mode {}",
                mode as char
            );
            if version < 40 {
                let more = format!("{text}{}", &text[..1]);
                let next = qr_render::module_count(&more, &opts).unwrap() as usize;
                assert_eq!(
                    next - 8,
                    21 + 4 * version,
                    "one more character needs version {}",
                    version + 1
                );
            }
            let png = render_png(&text, &opts).unwrap();
            let (w, h, gray) = png_to_gray(&png);
            let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| gray[y * w + x]);
            let grids = img.detect_grids();
            assert_eq!(grids.len(), 1, "version {version} level {level}");
            let (meta, content) = grids[0].decode().expect("decodes");
            assert_eq!(content, text, "version {version} level {level}");
            assert_eq!(meta.version.0, version);
            // Format information's level bits: L = 1, M = 0, Q = 3, H = 2.
            assert_eq!(meta.ecc_level, [1, 0, 3, 2][level]);
        }
    }
}

#[test]
fn png_pixels_are_exactly_the_modules_at_every_scale_zone_and_palette() {
    // The PNG writer (our own deflate) against the SVG's modules, rasterised here: every pixel, many geometries.
    let texts = [
        "hello",
        "https://wxkit.example/c/7ZQK4M2N6P3R5T7V9X2B4D6F8H?from=qr",
        &"优惠".repeat(40),
    ];
    for (t, text) in texts.iter().enumerate() {
        for module_px in [1u32, 2, 3, 5, 8, 9, 16] {
            for quiet_zone in [0u32, 1, 4, 7] {
                let palette = (module_px + quiet_zone) % 2 == 1;
                let opts = RenderOptions {
                    module_px: Some(module_px),
                    quiet_zone,
                    dark: if palette { Rgb(0x10, 0x20, 0x80) } else { Rgb::BLACK },
                    light: if palette { Rgb(0xff, 0xf0, 0xe0) } else { Rgb::WHITE },
                    ..RenderOptions::default()
                };
                let png = render_png(text, &opts).unwrap();
                let (w, h, gray) = png_to_gray(&png);
                let (side, dark) = svg_modules(&render_svg(text, &opts).unwrap());
                let px = module_px as usize;
                assert_eq!((w, h), (side * px, side * px));
                for y in 0..h {
                    for x in 0..w {
                        let is_dark = gray[y * w + x] < 128;
                        assert_eq!(
                            is_dark,
                            dark[(y / px) * side + x / px],
                            "text {t}, {module_px} px, zone {quiet_zone}: pixel ({x}, {y})"
                        );
                    }
                }
            }
        }
    }
}
