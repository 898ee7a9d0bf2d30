//! The QR symbol encoder (ISO/IEC 18004): text → the smallest version that holds it → data and Reed–Solomon
//! codewords → modules, with the best of the eight masks by the standard's four penalty rules.
//!
//! Why our own: choosing the mask is most of an encode. Here every row *and* every column of the symbol is a bitset
//! (`W` 64-bit words, the module at `x` on bit `x + 4`, so four light bits on each side stand for the quiet zone),
//! kept in both orientations from the start. A mask trial is then one XOR per row and per column, and each
//! penalty rule is a handful of shifts, ANDs and popcounts per line — no per-module loop, no copy of a fixed-size
//! symbol between trials.

use std::sync::OnceLock;

/// The light border kept on each side of every line bitset (finder-like patterns may end in the quiet zone).
const OFF: usize = 4;
/// Largest symbol side (version 40).
pub(crate) const MAX_SIDE: usize = 177;

/// Error-correction level, as the standard orders its tables: L, M, Q, H.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    L = 0,
    M = 1,
    Q = 2,
    H = 3,
}

impl Level {
    /// The two format-information bits of the level.
    fn format_bits(self) -> u32 {
        match self {
            Level::L => 1,
            Level::M => 0,
            Level::Q => 3,
            Level::H => 2,
        }
    }
}

// ISO/IEC 18004 table 9: error-correction codewords per block, and the number of blocks, per level and version
// (index 0 unused).
const ECC_PER_BLOCK: [[u8; 41]; 4] = [
    [
        0, 7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28, 28, 28, 30, 30, 26, 28, 30,
        30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30,
    ],
    [
        0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26, 28, 28, 28, 28, 28, 28,
        28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    ],
    [
        0, 13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30, 28, 30, 30, 30, 30, 28, 30,
        30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30,
    ],
    [
        0, 17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28, 30, 24, 30, 30, 30, 30, 30,
        30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30,
    ],
];
const BLOCKS: [[u8; 41]; 4] = [
    [
        0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8, 8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18,
        19, 19, 20, 21, 22, 24, 25,
    ],
    [
        0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17, 18, 20, 21, 23, 25, 26, 28, 29,
        31, 33, 35, 37, 38, 40, 43, 45, 47, 49,
    ],
    [
        0, 1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20, 23, 23, 25, 27, 29, 34, 34, 35, 38, 40,
        43, 45, 48, 51, 53, 56, 59, 62, 65, 68,
    ],
    [
        0, 1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25, 25, 34, 30, 32, 35, 37, 40, 42, 45,
        48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81,
    ],
];

/// Modules available for codewords (and remainder bits) in a version: the whole symbol minus finders, separators,
/// timing, alignment patterns, format and version information.
fn raw_data_modules(version: usize) -> usize {
    let mut n = (16 * version + 128) * version + 64;
    if version >= 2 {
        let align = version / 7 + 2;
        n -= (25 * align - 10) * align - 55;
        if version >= 7 {
            n -= 36;
        }
    }
    n
}

fn data_codewords(version: usize, level: Level) -> usize {
    let l = level as usize;
    raw_data_modules(version) / 8 - usize::from(ECC_PER_BLOCK[l][version]) * usize::from(BLOCKS[l][version])
}

/// Centre coordinates of the alignment patterns along each axis.
fn alignment_positions(version: usize) -> Vec<usize> {
    if version == 1 {
        return Vec::new();
    }
    let count = version / 7 + 2;
    let side = 17 + 4 * version;
    let step = if version == 32 {
        26
    } else {
        (version * 4 + count * 2 + 1) / (count * 2 - 2) * 2
    };
    let mut positions = vec![6; count];
    for (i, p) in positions.iter_mut().skip(1).rev().enumerate() {
        *p = side - 7 - i * step;
    }
    positions
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Numeric,
    Alphanumeric,
    Byte,
}

fn alphanumeric_value(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'A'..=b'Z' => Some(u32::from(b - b'A') + 10),
        b' ' => Some(36),
        b'$' => Some(37),
        b'%' => Some(38),
        b'*' => Some(39),
        b'+' => Some(40),
        b'-' => Some(41),
        b'.' => Some(42),
        b'/' => Some(43),
        b':' => Some(44),
        _ => None,
    }
}

impl Mode {
    /// The densest single mode that holds all of `data`.
    fn for_data(data: &[u8]) -> Mode {
        if data.is_empty() {
            Mode::Byte
        } else if data.iter().all(u8::is_ascii_digit) {
            Mode::Numeric
        } else if data.iter().all(|&b| alphanumeric_value(b).is_some()) {
            Mode::Alphanumeric
        } else {
            Mode::Byte
        }
    }

    fn indicator(self) -> u32 {
        match self {
            Mode::Numeric => 1,
            Mode::Alphanumeric => 2,
            Mode::Byte => 4,
        }
    }

    fn count_bits(self, version: usize) -> usize {
        let band = match version {
            1..=9 => 0,
            10..=26 => 1,
            _ => 2,
        };
        match self {
            Mode::Numeric => [10, 12, 14][band],
            Mode::Alphanumeric => [9, 11, 13][band],
            Mode::Byte => [8, 16, 16][band],
        }
    }

    fn payload_bits(self, len: usize) -> usize {
        match self {
            Mode::Numeric => 10 * (len / 3) + [0, 4, 7][len % 3],
            Mode::Alphanumeric => 11 * (len / 2) + 6 * (len % 2),
            Mode::Byte => 8 * len,
        }
    }
}

/// Bits appended most significant first, as the standard writes them.
struct BitBuf {
    bytes: Vec<u8>,
    len: usize,
    acc: u64,
    pending: usize,
}

impl BitBuf {
    fn push(&mut self, value: u32, bits: usize) {
        self.acc = (self.acc << bits) | u64::from(value);
        self.pending += bits;
        self.len += bits;
        while self.pending >= 8 {
            self.pending -= 8;
            self.bytes.push((self.acc >> self.pending) as u8);
        }
    }

    /// Pads the last partial byte with zeros.
    fn flush(&mut self) {
        if self.pending > 0 {
            let fill = 8 - self.pending;
            self.push(0, fill);
        }
    }
}

/// GF(256) with the QR polynomial x⁸+x⁴+x³+x²+1: (exp, log) tables.
struct Gf {
    exp: [u8; 512],
    log: [u8; 256],
}

fn gf() -> &'static Gf {
    static GF: OnceLock<Gf> = OnceLock::new();
    GF.get_or_init(|| {
        let mut exp = [0u8; 512];
        let mut log = [0u8; 256];
        let mut x: u16 = 1;
        for i in 0..255 {
            exp[i] = x as u8;
            exp[i + 255] = x as u8;
            log[x as usize] = i as u8;
            x <<= 1;
            if x & 0x100 != 0 {
                x ^= 0x11d;
            }
        }
        Gf { exp, log }
    })
}

/// The generator polynomial of degree `degree` without its leading 1, highest power first, as logs of its
/// coefficients (every coefficient is non-zero).
fn generator_logs(gf: &Gf, degree: usize) -> Vec<u8> {
    let mut coef = vec![0u8; degree];
    coef[degree - 1] = 1;
    let mut root: u8 = 1;
    for _ in 0..degree {
        // Multiply by (x - root).
        for j in 0..degree {
            coef[j] = mul(gf, coef[j], root);
            if j + 1 < degree {
                coef[j] ^= coef[j + 1];
            }
        }
        root = mul(gf, root, 2);
    }
    coef.iter().map(|&c| gf.log[usize::from(c)]).collect()
}

fn mul(gf: &Gf, a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        0
    } else {
        gf.exp[usize::from(gf.log[usize::from(a)]) + usize::from(gf.log[usize::from(b)])]
    }
}

fn reed_solomon(gf: &Gf, data: &[u8], gen_logs: &[u8], out: &mut [u8]) {
    out.fill(0);
    for &b in data {
        let factor = b ^ out[0];
        out.copy_within(1.., 0);
        let last = out.len() - 1;
        out[last] = 0;
        if factor != 0 {
            let lf = usize::from(gf.log[usize::from(factor)]);
            for (o, &g) in out.iter_mut().zip(gen_logs) {
                *o ^= gf.exp[lf + usize::from(g)];
            }
        }
    }
}

/// Data codewords followed by error correction, split into blocks and interleaved as the standard lays them out.
fn codewords(data: &[u8], version: usize, level: Level) -> Vec<u8> {
    let l = level as usize;
    let blocks = usize::from(BLOCKS[l][version]);
    let ecc_len = usize::from(ECC_PER_BLOCK[l][version]);
    let raw = raw_data_modules(version) / 8;
    let short_blocks = blocks - raw % blocks;
    let short_data = raw / blocks - ecc_len;
    let gf = gf();
    let gen_logs = generator_logs(gf, ecc_len);
    let mut ecc = vec![0u8; blocks * ecc_len];
    let mut starts = Vec::with_capacity(blocks + 1);
    let mut at = 0;
    for b in 0..blocks {
        starts.push(at);
        let len = short_data + usize::from(b >= short_blocks);
        reed_solomon(
            gf,
            &data[at..at + len],
            &gen_logs,
            &mut ecc[b * ecc_len..(b + 1) * ecc_len],
        );
        at += len;
    }
    starts.push(at);
    let mut out = Vec::with_capacity(raw);
    for i in 0..=short_data {
        for b in 0..blocks {
            if starts[b] + i < starts[b + 1] {
                out.push(data[starts[b] + i]);
            }
        }
    }
    for i in 0..ecc_len {
        for b in 0..blocks {
            out.push(ecc[b * ecc_len + i]);
        }
    }
    out
}

/// The version (smallest that fits) and the data codewords, padded, for `text` at `level`.
fn data_for(text: &[u8], level: Level) -> Option<(usize, Vec<u8>)> {
    let mode = Mode::for_data(text);
    let version = (1..=40).find(|&v| {
        text.len() < (1 << mode.count_bits(v))
            && 4 + mode.count_bits(v) + mode.payload_bits(text.len()) <= data_codewords(v, level) * 8
    })?;
    let capacity = data_codewords(version, level);
    let mut bits = BitBuf {
        bytes: Vec::with_capacity(capacity),
        len: 0,
        acc: 0,
        pending: 0,
    };
    bits.push(mode.indicator(), 4);
    // The count fits: checked by the version search above.
    bits.push(text.len() as u32, mode.count_bits(version));
    match mode {
        Mode::Numeric => {
            for chunk in text.chunks(3) {
                let v = chunk.iter().fold(0, |acc, &d| acc * 10 + u32::from(d - b'0'));
                bits.push(v, [0, 4, 7, 10][chunk.len()]);
            }
        }
        Mode::Alphanumeric => {
            for pair in text.chunks(2) {
                let value = |b: u8| alphanumeric_value(b).unwrap_or(0);
                match *pair {
                    [a, b] => bits.push(value(a) * 45 + value(b), 11),
                    [a] => bits.push(value(a), 6),
                    _ => {}
                }
            }
        }
        Mode::Byte => {
            for &b in text {
                bits.push(u32::from(b), 8);
            }
        }
    }
    let cap_bits = capacity * 8;
    bits.push(0, (cap_bits - bits.len).min(4));
    bits.flush();
    let mut pad = 0xec;
    while bits.bytes.len() < capacity {
        bits.bytes.push(pad);
        pad ^= 0xec ^ 0x11;
    }
    Some((version, bits.bytes))
}

type Line<const W: usize> = [u64; W];

#[inline]
fn get<const W: usize>(l: &Line<W>, i: usize) -> bool {
    (l[i / 64] >> (i % 64)) & 1 == 1
}

#[inline]
fn set<const W: usize>(l: &mut Line<W>, i: usize) {
    l[i / 64] |= 1 << (i % 64);
}

/// Bit `i` of the result is bit `i + s` of `l` (0 < s < 64).
#[inline]
fn shr<const W: usize>(l: &Line<W>, s: u32) -> Line<W> {
    let mut r = [0u64; W];
    for k in 0..W {
        r[k] = l[k] >> s;
        if k + 1 < W {
            r[k] |= l[k + 1] << (64 - s);
        }
    }
    r
}

/// Bit `i` of the result is bit `i - 1` of `l`.
#[inline]
fn shl1<const W: usize>(l: &Line<W>) -> Line<W> {
    let mut r = [0u64; W];
    for k in 0..W {
        r[k] = l[k] << 1;
        if k > 0 {
            r[k] |= l[k - 1] >> 63;
        }
    }
    r
}

#[inline]
fn and<const W: usize>(a: &Line<W>, b: &Line<W>) -> Line<W> {
    std::array::from_fn(|k| a[k] & b[k])
}

#[inline]
fn andn<const W: usize>(a: &Line<W>, b: &Line<W>) -> Line<W> {
    std::array::from_fn(|k| a[k] & !b[k])
}

#[inline]
fn ones<const W: usize>(l: &Line<W>) -> u32 {
    l.iter().map(|w| w.count_ones()).sum()
}

/// Rows and columns of one symbol, kept in step.
struct Grid<const W: usize> {
    rows: Vec<Line<W>>,
    cols: Vec<Line<W>>,
}

impl<const W: usize> Grid<W> {
    fn new(n: usize) -> Self {
        Self {
            rows: vec![[0; W]; n],
            cols: vec![[0; W]; n],
        }
    }

    fn set(&mut self, x: usize, y: usize) {
        set(&mut self.rows[y], x + OFF);
        set(&mut self.cols[x], y + OFF);
    }
}

/// Function modules (`func`) and the modules' values before masking (`base`).
struct Layout<const W: usize> {
    n: usize,
    func: Grid<W>,
    base: Grid<W>,
}

impl<const W: usize> Layout<W> {
    fn put(&mut self, x: usize, y: usize, dark: bool) {
        self.func.set(x, y);
        if dark {
            self.base.set(x, y);
        }
    }

    fn is_func(&self, x: usize, y: usize) -> bool {
        get(&self.func.rows[y], x + OFF)
    }

    fn new(version: usize) -> Self {
        let n = 17 + 4 * version;
        let mut s = Layout {
            n,
            func: Grid::new(n),
            base: Grid::new(n),
        };
        for i in 0..n {
            s.put(6, i, i % 2 == 0);
            s.put(i, 6, i % 2 == 0);
        }
        for (cx, cy) in [(3, 3), (n - 4, 3), (3, n - 4)] {
            for dy in -4i32..=4 {
                for dx in -4i32..=4 {
                    let (x, y) = (cx as i32 + dx, cy as i32 + dy);
                    if (0..n as i32).contains(&x) && (0..n as i32).contains(&y) {
                        let d = dx.abs().max(dy.abs());
                        s.put(x as usize, y as usize, d != 2 && d != 4);
                    }
                }
            }
        }
        let align = alignment_positions(version);
        let last = align.len().saturating_sub(1);
        for (i, &ay) in align.iter().enumerate() {
            for (j, &ax) in align.iter().enumerate() {
                // The three corners taken by finder patterns.
                if (i == 0 && (j == 0 || j == last)) || (i == last && j == 0) {
                    continue;
                }
                for dy in -2i32..=2 {
                    for dx in -2i32..=2 {
                        let (x, y) = ((ax as i32 + dx) as usize, (ay as i32 + dy) as usize);
                        s.put(x, y, dx.abs().max(dy.abs()) != 1);
                    }
                }
            }
        }
        // Format information: reserved here (light), written per mask trial.
        for (x, y, _) in format_cells(n) {
            s.put(x, y, false);
        }
        s.put(8, n - 8, true);
        if version >= 7 {
            let mut rem = version as u32;
            for _ in 0..12 {
                rem = (rem << 1) ^ ((rem >> 11) * 0x1f25);
            }
            let bits = ((version as u32) << 12) | rem;
            for i in 0..18 {
                let dark = (bits >> i) & 1 == 1;
                let (a, b) = (n - 11 + i % 3, i / 3);
                s.put(a, b, dark);
                s.put(b, a, dark);
            }
        }
        s
    }

    /// Lays the codewords out in the standard's two-column zigzag, skipping function modules.
    fn place(&mut self, codewords: &[u8]) {
        let n = self.n;
        let total = codewords.len() * 8;
        let mut i = 0;
        let mut right = n - 1;
        while right >= 1 {
            if right == 6 {
                right = 5;
            }
            let upward = (right + 1) & 2 == 0;
            for vert in 0..n {
                let y = if upward { n - 1 - vert } else { vert };
                for x in [right, right - 1] {
                    if i < total && !self.is_func(x, y) {
                        if (codewords[i / 8] >> (7 - i % 8)) & 1 == 1 {
                            self.base.set(x, y);
                        }
                        i += 1;
                    }
                }
            }
            if right < 2 {
                break;
            }
            right -= 2;
        }
    }
}

/// The 15 format-information cells of each copy: (x, y, bit index).
fn format_cells(n: usize) -> [(usize, usize, u32); 30] {
    let mut cells = [(0, 0, 0); 30];
    let mut k = 0;
    let mut push = |x, y, bit| {
        cells[k] = (x, y, bit);
        k += 1;
    };
    for i in 0..6 {
        push(8, i as usize, i);
    }
    push(8, 7, 6);
    push(8, 8, 7);
    push(7, 8, 8);
    for i in 9..15 {
        push(14 - i as usize, 8, i);
    }
    for i in 0..8 {
        push(n - 1 - i as usize, 8, i);
    }
    for i in 8..15 {
        push(8, n - 15 + i as usize, i);
    }
    cells
}

fn format_bits(level: Level, mask: usize) -> u32 {
    let data = (level.format_bits() << 3) | mask as u32;
    let mut rem = data;
    for _ in 0..10 {
        rem = (rem << 1) ^ ((rem >> 9) * 0x537);
    }
    ((data << 10) | rem) ^ 0x5412
}

#[allow(clippy::manual_is_multiple_of)] // the standard's formulas, as written there
fn mask_dark(mask: usize, x: usize, y: usize) -> bool {
    match mask {
        0 => (x + y) % 2 == 0,
        1 => y % 2 == 0,
        2 => x % 3 == 0,
        3 => (x + y) % 3 == 0,
        4 => (x / 3 + y / 2) % 2 == 0,
        5 => x * y % 2 + x * y % 3 == 0,
        6 => (x * y % 2 + x * y % 3) % 2 == 0,
        _ => ((x + y) % 2 + x * y % 3) % 2 == 0,
    }
}

/// Every mask pattern repeats every 12 modules in both directions: `[mask][y % 12]` is the row pattern along x,
/// `[8 + mask][x % 12]` the column pattern along y (the transpose).
fn mask_lines() -> &'static [[Line<3>; 12]; 16] {
    static LINES: OnceLock<[[Line<3>; 12]; 16]> = OnceLock::new();
    LINES.get_or_init(|| {
        std::array::from_fn(|k| {
            let mask = k % 8;
            std::array::from_fn(|r| {
                let mut line = [0u64; 3];
                for i in 0..MAX_SIDE {
                    // Rows (k < 8) run along x at y = r; columns along y at x = r.
                    let dark = if k < 8 {
                        mask_dark(mask, i, r)
                    } else {
                        mask_dark(mask, r, i)
                    };
                    if dark {
                        set(&mut line, i + OFF);
                    }
                }
                line
            })
        })
    })
}

/// Rule 1 (runs of five or more of one colour) and rule 3 (1:1:3:1:1 finder-like patterns with four light modules
/// on one side; the quiet zone counts as light) along one line.
#[inline]
fn line_penalty<const W: usize>(x: &Line<W>, valid: &Line<W>) -> u32 {
    let mut p = 0;
    for c in [*x, andn(valid, x)] {
        let mut run = c;
        for s in 1..5 {
            run = and(&run, &shr(&c, s));
        }
        if run.iter().any(|&w| w != 0) {
            // A run of length L ≥ 5 leaves L − 4 bits set; it scores 3 + (L − 5) = (L − 4) + 2.
            p += ones(&run) + 2 * ones(&andn(&run, &shl1(&run)));
        }
    }
    let s: [Line<W>; 11] = std::array::from_fn(|k| if k == 0 { *x } else { shr(x, k as u32) });
    let mut core = andn(&s[0], &s[1]);
    for k in [2, 3, 4, 6] {
        core = and(&core, &s[k]);
    }
    core = andn(&core, &s[5]);
    if core.iter().any(|&w| w != 0) {
        let mut before = core;
        for t in &s[7..11] {
            before = andn(&before, t);
        }
        let mut after = shr(&core, 4);
        for t in &s[0..4] {
            after = andn(&after, t);
        }
        p += 40 * (ones(&before) + ones(&after));
    }
    p
}

fn penalty<const W: usize>(g: &Grid<W>, n: usize, valid: &Line<W>, valid_pairs: &Line<W>) -> u32 {
    let mut p = 0;
    let mut dark = 0;
    for (i, row) in g.rows.iter().enumerate() {
        p += line_penalty(row, valid);
        dark += ones(row);
        if let Some(next) = g.rows.get(i + 1) {
            // Rule 2: 2×2 blocks of one colour.
            let same_v: Line<W> = std::array::from_fn(|k| !(row[k] ^ next[k]));
            let r1 = shr(row, 1);
            let n1 = shr(next, 1);
            let block: Line<W> =
                std::array::from_fn(|k| same_v[k] & !(row[k] ^ r1[k]) & !(next[k] ^ n1[k]) & valid_pairs[k]);
            p += 3 * ones(&block);
        }
    }
    for col in &g.cols {
        p += line_penalty(col, valid);
    }
    // Rule 4: 10 points per full 5 % that the dark share is away from 50 %.
    let total = (n * n) as u32;
    let dev = (dark * 20).abs_diff(total * 10);
    p + 10 * (dev.div_ceil(total).saturating_sub(1))
}

/// A finished symbol: `n` modules per side, `true` = dark.
pub(crate) struct Symbol {
    n: usize,
    rows: Vec<Line<3>>,
}

impl Symbol {
    /// Modules per side (21–177).
    pub(crate) fn side(&self) -> usize {
        self.n
    }

    /// Whether the module at column `x`, row `y` (both `< side`) is dark.
    #[inline]
    pub(crate) fn dark(&self, x: usize, y: usize) -> bool {
        get(&self.rows[y], x + OFF)
    }

    /// Encodes `text` at `level`; `None` when it does not fit in version 40.
    pub(crate) fn encode(text: &[u8], level: Level) -> Option<Symbol> {
        let (version, data) = data_for(text, level)?;
        let words = codewords(&data, version, level);
        let n = 17 + 4 * version;
        Some(match n + 2 * OFF {
            0..=64 => build::<1>(version, level, &words),
            65..=128 => build::<2>(version, level, &words),
            _ => build::<3>(version, level, &words),
        })
    }
}

fn build<const W: usize>(version: usize, level: Level, words: &[u8]) -> Symbol {
    let mut layout = Layout::<W>::new(version);
    layout.place(words);
    let n = layout.n;
    let mut valid = [0u64; W];
    for i in OFF..OFF + n {
        set(&mut valid, i);
    }
    let mut valid_pairs = valid;
    valid_pairs[(OFF + n - 1) / 64] &= !(1 << ((OFF + n - 1) % 64));
    let patterns = mask_lines();
    let cells = format_cells(n);
    let mut trial = Grid::<W>::new(n);
    let mut best: Option<(u32, usize)> = None;
    for mask in 0..8 {
        apply_mask(&layout, mask, &valid, patterns, &mut trial);
        let bits = format_bits(level, mask);
        for &(x, y, bit) in &cells {
            if (bits >> bit) & 1 == 1 {
                trial.set(x, y);
            }
        }
        let score = penalty(&trial, n, &valid, &valid_pairs);
        if best.is_none_or(|(s, _)| score < s) {
            best = Some((score, mask));
        }
    }
    let mask = best.map_or(0, |(_, m)| m);
    apply_mask(&layout, mask, &valid, patterns, &mut trial);
    let bits = format_bits(level, mask);
    for &(x, y, bit) in &cells {
        if (bits >> bit) & 1 == 1 {
            trial.set(x, y);
        }
    }
    let rows = trial
        .rows
        .iter()
        .map(|r| std::array::from_fn(|k| if k < W { r[k] } else { 0 }))
        .collect();
    Symbol { n, rows }
}

fn apply_mask<const W: usize>(
    layout: &Layout<W>,
    mask: usize,
    valid: &Line<W>,
    patterns: &[[Line<3>; 12]; 16],
    out: &mut Grid<W>,
) {
    for (i, (row, col)) in out.rows.iter_mut().zip(out.cols.iter_mut()).enumerate() {
        let (rp, cp) = (&patterns[mask][i % 12], &patterns[8 + mask][i % 12]);
        for k in 0..W {
            row[k] = layout.base.rows[i][k] ^ (rp[k] & valid[k] & !layout.func.rows[i][k]);
            col[k] = layout.base.cols[i][k] ^ (cp[k] & valid[k] & !layout.func.cols[i][k]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_match_the_standard() {
        // Byte-mode capacities from ISO/IEC 18004 table 7 (versions 1, 6, 10, 40).
        let byte_cap = |v: usize, l: Level| (data_codewords(v, l) * 8 - 4 - Mode::Byte.count_bits(v)) / 8;
        assert_eq!(byte_cap(1, Level::L), 17);
        assert_eq!(byte_cap(1, Level::H), 7);
        assert_eq!(byte_cap(6, Level::M), 106);
        assert_eq!(byte_cap(10, Level::Q), 151);
        assert_eq!(byte_cap(40, Level::L), 2953);
        assert_eq!(byte_cap(40, Level::H), 1273);
        // Total codewords per version (table 1).
        for (v, total) in [
            (1, 26),
            (2, 44),
            (3, 70),
            (5, 134),
            (6, 172),
            (7, 196),
            (14, 581),
            (40, 3706),
        ] {
            assert_eq!(raw_data_modules(v) / 8, total, "version {v}");
        }
    }

    #[test]
    fn alignment_positions_match_the_standard() {
        assert_eq!(alignment_positions(2), vec![6, 18]);
        assert_eq!(alignment_positions(7), vec![6, 22, 38]);
        assert_eq!(alignment_positions(32), vec![6, 34, 60, 86, 112, 138]);
        assert_eq!(alignment_positions(40), vec![6, 30, 58, 86, 114, 142, 170]);
    }

    #[test]
    fn reed_solomon_matches_a_worked_example() {
        // "HELLO WORLD" at 1-M: the data codewords and their 10 error-correction codewords, as commonly worked.
        let data = [32, 91, 11, 120, 209, 114, 220, 77, 67, 64, 236, 17, 236, 17, 236, 17];
        let gf = gf();
        let mut ecc = [0u8; 10];
        reed_solomon(gf, &data, &generator_logs(gf, 10), &mut ecc);
        assert_eq!(ecc, [196, 35, 39, 119, 235, 215, 231, 226, 93, 23]);
        let (v, words) = data_for(b"HELLO WORLD", Level::M).unwrap();
        assert_eq!((v, words.as_slice()), (1, &data[..]));
    }

    #[test]
    fn byte_mode_payload_is_bit_exact() {
        // 4-bit mode 0100, 8-bit count 2, then 'a' 'b', terminator, padding.
        let (v, words) = data_for(b"ab", Level::H).unwrap();
        assert_eq!(v, 1);
        assert_eq!(&words[..4], &[0x40, 0x26, 0x16, 0x20]);
        assert_eq!(&words[4..6], &[0xec, 0x11]);
    }
}
