//! # qr-render
//!
//! Text → QR code → PNG bytes or an SVG string, fast enough to render per request (never store QR images).
//!
//! * Encoding: our own encoder (ISO/IEC 18004: numeric, alphanumeric or byte mode, the smallest version, the best
//!   of the eight masks by the standard's penalty rules) — each row and column of the symbol is a bitset, so a mask
//!   trial is a few shifts and popcounts per line.
//! * PNG: 1 bit per pixel (a two-colour palette when colours are set), the rows written straight into one deflate
//!   block — a pixel row repeating the one above is a single back-reference; only a logo needs a full-colour (RGB)
//!   image, encoded with the `png` crate.
//! * SVG: one `<path>` with horizontal runs of dark modules merged, `shape-rendering="crispEdges"`.
//! * A centred logo forces error-correction level H and covers at most 30 % of the code's width, so the code stays
//!   decodable.
//!
//! No IO, no async, no framework.
//!
//! ```
//! use qr_render::{Ecc, RenderOptions, render_png, render_svg};
//!
//! let png = render_png("https://example.com/c/ABCDEF", &RenderOptions::default())?;
//! assert_eq!(&png[1..4], b"PNG");
//!
//! let opts = RenderOptions { ecc: Ecc::High, size_px: 600, ..RenderOptions::default() };
//! let svg = render_svg("优惠券 https://example.com/c/ABCDEF", &opts)?;
//! assert!(svg.starts_with("<svg"));
//!
//! // Text over the capacity of the largest QR version is an error, not a panic.
//! assert!(matches!(render_png(&"x".repeat(8000), &RenderOptions::default()), Err(qr_render::Error::TooLong { .. })));
//! # Ok::<(), qr_render::Error>(())
//! ```

#![deny(missing_docs)]
mod png1;
mod symbol;

use std::fmt::{self, Write as _};
use std::str::FromStr;
use symbol::{Level, Symbol};

/// Error-correction level: how much of the code may be damaged (or covered) and still decode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Ecc {
    /// ~7 %.
    Low,
    /// ~15 % (the default).
    #[default]
    Medium,
    /// ~25 %.
    Quartile,
    /// ~30 % (forced when a logo is drawn).
    High,
}

impl Ecc {
    fn level(self) -> Level {
        match self {
            Ecc::Low => Level::L,
            Ecc::Medium => Level::M,
            Ecc::Quartile => Level::Q,
            Ecc::High => Level::H,
        }
    }

    /// The one-letter name (`L`, `M`, `Q`, `H`).
    pub fn letter(self) -> char {
        match self {
            Ecc::Low => 'L',
            Ecc::Medium => 'M',
            Ecc::Quartile => 'Q',
            Ecc::High => 'H',
        }
    }
}

impl FromStr for Ecc {
    type Err = Error;

    /// Parses `L`, `M`, `Q` or `H` (any case).
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_uppercase().as_str() {
            "L" => Ok(Ecc::Low),
            "M" => Ok(Ecc::Medium),
            "Q" => Ok(Ecc::Quartile),
            "H" => Ok(Ecc::High),
            _ => Err(Error::InvalidEcc(s.to_owned())),
        }
    }
}

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// Black.
    pub const BLACK: Rgb = Rgb(0, 0, 0);
    /// White.
    pub const WHITE: Rgb = Rgb(255, 255, 255);

    /// Relative luminance (WCAG), 0.0–1.0.
    fn luminance(self) -> f64 {
        fn channel(c: u8) -> f64 {
            let c = f64::from(c) / 255.0;
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        }
        0.2126 * channel(self.0) + 0.7152 * channel(self.1) + 0.0722 * channel(self.2)
    }

    fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

impl FromStr for Rgb {
    type Err = Error;

    /// Parses `#rrggbb` or `rrggbb`.
    fn from_str(s: &str) -> Result<Self, Error> {
        let hex = s.strip_prefix('#').unwrap_or(s);
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidColor(s.to_owned()));
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| Error::InvalidColor(s.to_owned()));
        Ok(Rgb(byte(0)?, byte(2)?, byte(4)?))
    }
}

/// A logo drawn in the centre of the code.
#[derive(Clone, PartialEq, Eq)]
pub struct Logo {
    /// The logo as PNG bytes (any colour type; transparency is respected).
    pub png: Vec<u8>,
    /// Width of the logo as a percentage of the code's width (quiet zone excluded): 5–30, default 20.
    pub width_percent: u8,
}

impl fmt::Debug for Logo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logo")
            .field("png_bytes", &self.png.len())
            .field("width_percent", &self.width_percent)
            .finish()
    }
}

impl Logo {
    /// A logo at the default 20 % width.
    pub fn new(png: Vec<u8>) -> Self {
        Self { png, width_percent: 20 }
    }
}

/// How to draw the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// Target image width and height in pixels (default 300). Modules get a whole number of pixels each (crisp
    /// edges), so the image is the largest multiple of the module count that fits — or, with `module_px`, exact.
    pub size_px: u32,
    /// Pixels per module; when set it wins over `size_px`.
    pub module_px: Option<u32>,
    /// Light border around the code, in modules (default 4, the standard's minimum for reliable scanning).
    pub quiet_zone: u32,
    /// Error-correction level (default M; H when a logo is set).
    pub ecc: Ecc,
    /// Colour of dark modules (default black).
    pub dark: Rgb,
    /// Background colour (default white).
    pub light: Rgb,
    /// Optional centred logo.
    pub logo: Option<Logo>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            size_px: 300,
            module_px: None,
            quiet_zone: 4,
            ecc: Ecc::Medium,
            dark: Rgb::BLACK,
            light: Rgb::WHITE,
            logo: None,
        }
    }
}

/// Largest image side we produce, in pixels (bounds memory per request).
pub const MAX_SIZE_PX: u32 = 4096;
/// Largest quiet zone, in modules.
pub const MAX_QUIET_ZONE: u32 = 32;

/// What can go wrong.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The text does not fit in any QR version at this error-correction level.
    #[error("text of {bytes} bytes is too long for a QR code at error correction {ecc}")]
    TooLong {
        /// UTF-8 length of the text.
        bytes: usize,
        /// The level it was tried at.
        ecc: char,
    },
    /// Size 0, above the maximum, or too small to give each module a pixel.
    #[error("invalid size: {0}")]
    InvalidSize(String),
    /// Quiet zone above the maximum.
    #[error("quiet zone of {0} modules is too large (at most 32)")]
    InvalidQuietZone(u32),
    /// Not one of L, M, Q, H.
    #[error("unknown error-correction level {0:?}: use L, M, Q or H")]
    InvalidEcc(String),
    /// Not `#rrggbb`.
    #[error("invalid colour {0:?}: use #rrggbb")]
    InvalidColor(String),
    /// Dark and light colours too close for scanners.
    #[error("dark and light colours do not contrast enough to scan (contrast ratio {0:.1}, need at least 3)")]
    LowContrast(f64),
    /// The logo is not a readable PNG, or its size option is out of range.
    #[error("invalid logo: {0}")]
    InvalidLogo(String),
    /// PNG encoding failed.
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// An encoded QR code, before drawing.
struct Matrix {
    qr: Symbol,
    quiet: u32,
}

impl Matrix {
    fn encode(text: &str, opts: &RenderOptions) -> Result<Matrix, Error> {
        if opts.quiet_zone > MAX_QUIET_ZONE {
            return Err(Error::InvalidQuietZone(opts.quiet_zone));
        }
        let ecc = if opts.logo.is_some() { Ecc::High } else { opts.ecc };
        // The smallest version that holds the text, and the best of the eight masks by the standard's penalty
        // rules (see `symbol`).
        let qr = Symbol::encode(text.as_bytes(), ecc.level()).ok_or(Error::TooLong {
            bytes: text.len(),
            ecc: ecc.letter(),
        })?;
        Ok(Matrix {
            qr,
            quiet: opts.quiet_zone,
        })
    }

    /// Modules per side, quiet zone included.
    fn side(&self) -> u32 {
        // Sizes are 21..=177.
        self.qr.side() as u32 + 2 * self.quiet
    }

    fn dark(&self, x: u32, y: u32) -> bool {
        let q = self.quiet;
        if x < q || y < q {
            return false;
        }
        // Coordinates beyond the code land in the quiet zone.
        let (x, y) = ((x - q) as usize, (y - q) as usize);
        let n = self.qr.side();
        x < n && y < n && self.qr.dark(x, y)
    }
}

fn check_colors(opts: &RenderOptions) -> Result<(), Error> {
    let (d, l) = (opts.dark.luminance(), opts.light.luminance());
    let ratio = (l + 0.05) / (d + 0.05);
    if ratio < 3.0 {
        return Err(Error::LowContrast(ratio));
    }
    Ok(())
}

fn module_px(side: u32, opts: &RenderOptions) -> Result<u32, Error> {
    let px = match opts.module_px {
        Some(0) => return Err(Error::InvalidSize("module size must be at least 1 px".into())),
        Some(px) => px,
        None => {
            if opts.size_px == 0 {
                return Err(Error::InvalidSize("size must be at least 1 px".into()));
            }
            if opts.size_px < side {
                return Err(Error::InvalidSize(format!(
                    "{} px is too small for this {side}-module code (quiet zone included); use at least {side} px",
                    opts.size_px
                )));
            }
            opts.size_px / side
        }
    };
    if px.saturating_mul(side) > MAX_SIZE_PX {
        return Err(Error::InvalidSize(format!(
            "the image would be {} px wide; the maximum is {MAX_SIZE_PX}",
            u64::from(px) * u64::from(side)
        )));
    }
    Ok(px)
}

/// Renders `text` as a PNG image.
///
/// Without a logo the PNG is 1 bit per pixel (grayscale for black on white, a two-entry palette for other colours),
/// which is both the fastest to encode and the smallest. With a logo it is 8-bit RGB.
pub fn render_png(text: &str, opts: &RenderOptions) -> Result<Vec<u8>, Error> {
    check_colors(opts)?;
    let matrix = Matrix::encode(text, opts)?;
    let side = matrix.side();
    let px = module_px(side, opts)?;
    let dim = side * px;
    match &opts.logo {
        None => encode_1bit(&matrix, px, dim, opts),
        Some(logo) => encode_rgb_with_logo(&matrix, px, dim, opts, logo),
    }
}

fn encode_1bit(matrix: &Matrix, px: u32, dim: u32, opts: &RenderOptions) -> Result<Vec<u8>, Error> {
    // Bit value 1 = light when grayscale (1 = white); with a palette, index 1 = light too.
    let palette = if opts.dark == Rgb::BLACK && opts.light == Rgb::WHITE {
        None
    } else {
        let (d, l) = (opts.dark, opts.light);
        Some(([d.0, d.1, d.2], [l.0, l.1, l.2]))
    };
    let side = matrix.side();
    Ok(png1::write(dim, px, palette, |my, row| {
        // Runs of light modules become one run of set bits.
        let mut mx = 0;
        while mx < side {
            if matrix.dark(mx, my) {
                mx += 1;
                continue;
            }
            let start = mx;
            while mx < side && !matrix.dark(mx, my) {
                mx += 1;
            }
            set_bits(row, start * px, (mx - start) * px);
        }
    }))
}

/// Sets `len` bits starting at bit `start` (MSB first, as PNG packs them).
fn set_bits(row: &mut [u8], start: u32, len: u32) {
    let (start, end) = (start as usize, (start + len) as usize);
    let (first, last) = (start / 8, end / 8);
    if first == last {
        row[first] |= (0xffu8 >> (start % 8)) & !(0xffu8 >> (end % 8));
        return;
    }
    row[first] |= 0xff >> (start % 8);
    row[first + 1..last].fill(0xff);
    if end % 8 != 0 {
        row[last] |= !(0xffu8 >> (end % 8));
    }
}

fn png_error(e: png::EncodingError) -> Error {
    Error::Png(e.to_string())
}

/// A decoded logo in straight (non-premultiplied) RGBA.
struct Rgba {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

const MAX_LOGO_BYTES: usize = 2 * 1024 * 1024;

fn decode_logo(logo: &Logo) -> Result<Rgba, Error> {
    if !(5..=30).contains(&logo.width_percent) {
        return Err(Error::InvalidLogo(format!(
            "width_percent {} is out of range 5–30 (more would cover too much of the code)",
            logo.width_percent
        )));
    }
    if logo.png.len() > MAX_LOGO_BYTES {
        return Err(Error::InvalidLogo("larger than 2 MiB".into()));
    }
    let mut decoder = png::Decoder::new(std::io::Cursor::new(&logo.png));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| Error::InvalidLogo(e.to_string()))?;
    let (w, h) = (reader.info().width, reader.info().height);
    if w == 0 || h == 0 || w > 4096 || h > 4096 {
        return Err(Error::InvalidLogo(format!("{w}x{h} px is out of range (1–4096)")));
    }
    let mut buf = vec![
        0;
        reader
            .output_buffer_size()
            .ok_or_else(|| Error::InvalidLogo("too large".into()))?
    ];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| Error::InvalidLogo(e.to_string()))?;
    let buf = &buf[..frame.buffer_size()];
    let pixels = match frame.color_type {
        png::ColorType::Rgba => buf.to_vec(),
        png::ColorType::Rgb => buf.chunks_exact(3).flat_map(|c| [c[0], c[1], c[2], 255]).collect(),
        png::ColorType::GrayscaleAlpha => buf.chunks_exact(2).flat_map(|c| [c[0], c[0], c[0], c[1]]).collect(),
        png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g, 255]).collect(),
        png::ColorType::Indexed => return Err(Error::InvalidLogo("palette was not expanded".into())),
    };
    Ok(Rgba {
        width: w,
        height: h,
        pixels,
    })
}

/// The logo's box in pixels: centred, `width_percent` of the code (quiet zone excluded), aspect kept.
fn logo_box(matrix: &Matrix, px: u32, logo: &Logo, img: &Rgba) -> (u32, u32, u32, u32) {
    let code_px = (matrix.side() - 2 * matrix.quiet) * px;
    let w = (code_px * u32::from(logo.width_percent) / 100).max(1);
    let h = ((u64::from(w) * u64::from(img.height) / u64::from(img.width)) as u32).clamp(1, w);
    let dim = matrix.side() * px;
    ((dim - w) / 2, (dim - h) / 2, w, h)
}

fn encode_rgb_with_logo(
    matrix: &Matrix,
    px: u32,
    dim: u32,
    opts: &RenderOptions,
    logo: &Logo,
) -> Result<Vec<u8>, Error> {
    let img = decode_logo(logo)?;
    let side = matrix.side();
    let stride = dim as usize * 3;
    let mut data = vec![0u8; stride * dim as usize];
    for my in 0..side {
        let row0 = (my * px) as usize * stride;
        for mx in 0..side {
            let c = if matrix.dark(mx, my) { opts.dark } else { opts.light };
            let x0 = (mx * px) as usize * 3;
            for i in 0..px as usize {
                let o = row0 + x0 + i * 3;
                data[o..o + 3].copy_from_slice(&[c.0, c.1, c.2]);
            }
        }
        for dy in 1..px as usize {
            let (src, dst) = data.split_at_mut(row0 + dy * stride);
            dst[..stride].copy_from_slice(&src[row0..row0 + stride]);
        }
    }
    let (lx, ly, lw, lh) = logo_box(matrix, px, logo, &img);
    // A light pad of one module around the logo keeps its edge from merging with dark modules.
    let pad = px;
    for y in ly.saturating_sub(pad)..(ly + lh + pad).min(dim) {
        for x in lx.saturating_sub(pad)..(lx + lw + pad).min(dim) {
            let o = y as usize * stride + x as usize * 3;
            data[o..o + 3].copy_from_slice(&[opts.light.0, opts.light.1, opts.light.2]);
        }
    }
    // Nearest-neighbour scaling with alpha blending over the light pad.
    for y in 0..lh {
        let sy = (u64::from(y) * u64::from(img.height) / u64::from(lh)) as usize;
        for x in 0..lw {
            let sx = (u64::from(x) * u64::from(img.width) / u64::from(lw)) as usize;
            let s = (sy * img.width as usize + sx) * 4;
            let a = u32::from(img.pixels[s + 3]);
            let o = (ly + y) as usize * stride + (lx + x) as usize * 3;
            for c in 0..3 {
                let fg = u32::from(img.pixels[s + c]);
                let bg = u32::from(data[o + c]);
                data[o + c] = ((fg * a + bg * (255 - a) + 127) / 255) as u8;
            }
        }
    }
    let mut out = Vec::with_capacity(data.len() / 8 + 128);
    {
        let mut encoder = png::Encoder::new(&mut out, dim, dim);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder.write_header().map_err(png_error)?;
        writer.write_image_data(&data).map_err(png_error)?;
        writer.finish().map_err(png_error)?;
    }
    Ok(out)
}

/// Renders `text` as a standalone SVG document (`width`/`height` in px, `viewBox` in modules).
pub fn render_svg(text: &str, opts: &RenderOptions) -> Result<String, Error> {
    check_colors(opts)?;
    let matrix = Matrix::encode(text, opts)?;
    let side = matrix.side();
    let px = module_px(side, opts)?;
    let dim = side * px;
    let mut path = String::with_capacity((side * side) as usize * 4);
    for y in 0..side {
        let mut x = 0;
        while x < side {
            if matrix.dark(x, y) {
                let start = x;
                while x < side && matrix.dark(x, y) {
                    x += 1;
                }
                let _ = write!(path, "M{start} {y}h{}v1h-{}z", x - start, x - start);
            } else {
                x += 1;
            }
        }
    }
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{dim}\" height=\"{dim}\" viewBox=\"0 0 {side} {side}\" \
         shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" fill=\"{}\"/>\
         <path fill=\"{}\" d=\"{path}\"/>",
        opts.light.hex(),
        opts.dark.hex()
    );
    if let Some(logo) = &opts.logo {
        use base64::Engine as _;
        let img = decode_logo(logo)?;
        // Work in module units: the box computed at 1 px per module, with fractional precision.
        let code = f64::from(side - 2 * matrix.quiet);
        let w = code * f64::from(logo.width_percent) / 100.0;
        let h = w * f64::from(img.height) / f64::from(img.width);
        let (x, y) = ((f64::from(side) - w) / 2.0, (f64::from(side) - h) / 2.0);
        svg.push_str(&format!(
            "<rect x=\"{:.3}\" y=\"{:.3}\" width=\"{:.3}\" height=\"{:.3}\" fill=\"{}\"/>\
             <image x=\"{x:.3}\" y=\"{y:.3}\" width=\"{w:.3}\" height=\"{h:.3}\" href=\"data:image/png;base64,{}\"/>",
            x - 1.0,
            y - 1.0,
            w + 2.0,
            h + 2.0,
            opts.light.hex(),
            base64::engine::general_purpose::STANDARD.encode(&logo.png)
        ));
    }
    svg.push_str("</svg>");
    Ok(svg)
}

/// The number of modules per side (quiet zone included) that `text` needs at `opts` — for callers that size
/// images themselves.
pub fn module_count(text: &str, opts: &RenderOptions) -> Result<u32, Error> {
    Ok(Matrix::encode(text, opts)?.side())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_packed_msb_first() {
        let mut row = vec![0u8; 3];
        set_bits(&mut row, 3, 10);
        assert_eq!(row, vec![0b0001_1111, 0b1111_1000, 0]);
        let mut row = vec![0u8; 3];
        set_bits(&mut row, 8, 8);
        assert_eq!(row, vec![0, 0xff, 0]);
    }

    #[test]
    fn default_size_is_about_300_px() {
        let text = "https://example.com/c/ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let side = module_count(text, &RenderOptions::default()).unwrap();
        let px = module_px(side, &RenderOptions::default()).unwrap();
        assert!(side * px <= 300 && side * px > 300 - side, "{}", side * px);
    }

    #[test]
    fn options_are_checked() {
        let t = "hello";
        let bad = |opts: RenderOptions| render_png(t, &opts).unwrap_err();
        assert!(matches!(
            bad(RenderOptions {
                size_px: 0,
                ..Default::default()
            }),
            Error::InvalidSize(_)
        ));
        assert!(matches!(
            bad(RenderOptions {
                size_px: 10,
                ..Default::default()
            }),
            Error::InvalidSize(_)
        ));
        assert!(matches!(
            bad(RenderOptions {
                size_px: 100_000,
                ..Default::default()
            }),
            Error::InvalidSize(_)
        ));
        assert!(matches!(
            bad(RenderOptions {
                module_px: Some(0),
                ..Default::default()
            }),
            Error::InvalidSize(_)
        ));
        assert!(matches!(
            bad(RenderOptions {
                quiet_zone: 99,
                ..Default::default()
            }),
            Error::InvalidQuietZone(99)
        ));
        assert!(matches!(
            bad(RenderOptions {
                dark: Rgb(200, 200, 200),
                ..Default::default()
            }),
            Error::LowContrast(_)
        ));
        assert!(matches!(
            bad(RenderOptions {
                logo: Some(Logo::new(b"not a png".to_vec())),
                ..Default::default()
            }),
            Error::InvalidLogo(_)
        ));
        assert_eq!("x".parse::<Ecc>().unwrap_err(), Error::InvalidEcc("x".into()));
        assert_eq!("q".parse::<Ecc>().unwrap(), Ecc::Quartile);
        assert!("#12345".parse::<Rgb>().is_err());
        assert_eq!("#0a0B0c".parse::<Rgb>().unwrap(), Rgb(10, 11, 12));
    }
}
