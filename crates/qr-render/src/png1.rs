//! A 1-bit PNG writer specialised for QR codes: rows go straight into one fixed-Huffman deflate block.
//!
//! A QR image is made of module rows, each repeated `module_px` times, and of long runs of one colour. So a pixel
//! row equal to the one above becomes a back-reference at distance "one row", a run of equal bytes inside a row a
//! back-reference at distance 1, and everything else literals. No search, no hashing, no intermediate image: the
//! output is a few hundred bytes smaller than a general deflate at its fast setting and takes a few microseconds.

/// Bits appended least significant first, as deflate packs them.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    bits: u32,
}

impl BitWriter<'_> {
    #[inline]
    fn put(&mut self, value: u32, len: u32) {
        self.acc |= u64::from(value) << self.bits;
        self.bits += len;
        if self.bits >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.bits -= 32;
        }
    }

    fn finish(mut self) {
        while self.bits > 0 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits = self.bits.saturating_sub(8);
        }
    }

    /// A fixed-Huffman literal (RFC 1951 §3.2.6); Huffman codes are sent most significant bit first.
    #[inline]
    fn literal(&mut self, b: u8) {
        let b = u32::from(b);
        if b < 144 {
            self.put(reverse(0x30 + b, 8), 8);
        } else {
            self.put(reverse(0x190 + b - 144, 9), 9);
        }
    }

    /// One back-reference of `len` (3–258) bytes at `dist` (1–32768).
    fn copy(&mut self, len: usize, dist: usize) {
        let (code, extra_bits, base) = length_code(len);
        if code < 280 {
            self.put(reverse(code - 256, 7), 7);
        } else {
            self.put(reverse(0xc0 + code - 280, 8), 8);
        }
        self.put((len - base) as u32, extra_bits);
        let (dcode, dextra, dbase) = distance_code(dist);
        self.put(reverse(dcode, 5), 5);
        self.put((dist - dbase) as u32, dextra);
    }

    /// `total` bytes copied from `dist` back, as back-references of at most 258 bytes; the caller guarantees
    /// `total >= 3`.
    fn copy_long(&mut self, mut total: usize, dist: usize) {
        while total > 0 {
            let mut take = total.min(258);
            if total - take > 0 && total - take < 3 {
                take = total - 3;
            }
            self.copy(take, dist);
            total -= take;
        }
    }
}

#[inline]
fn reverse(code: u32, len: u32) -> u32 {
    code.reverse_bits() >> (32 - len)
}

const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
    8193, 12289, 16385, 24577,
];

/// (symbol, extra bits, base length) for a match length of 3–258.
fn length_code(len: usize) -> (u32, u32, usize) {
    let i = LENGTH_BASE.partition_point(|&b| usize::from(b) <= len) - 1;
    (257 + i as u32, u32::from(LENGTH_EXTRA[i]), usize::from(LENGTH_BASE[i]))
}

/// (code, extra bits, base distance) for a distance of 1–32768.
fn distance_code(dist: usize) -> (u32, u32, usize) {
    let i = DIST_BASE.partition_point(|&b| usize::from(b) <= dist) - 1;
    let extra = if i < 4 { 0 } else { (i as u32 - 2) / 2 };
    (i as u32, extra, usize::from(DIST_BASE[i]))
}

const ADLER_MOD: u64 = 65521;

/// Adler-32 state `(a, b)` after appending `row` `times` times, in closed form: with `S` the sum of the row's bytes
/// and `T = Σ (len − i)·row[i]`, one copy maps `(a, b)` to `(a + S, b + len·a + T)`, so `k` copies give
/// `a + kS` and `b + k·len·a + kT + len·S·k(k−1)/2` (mod 65521). Repeated pixel rows then cost nothing to checksum.
fn adler32_repeated(adler: (u32, u32), row: &[u8], times: u64) -> (u32, u32) {
    let len = row.len() as u64;
    let (mut s, mut t) = (0u64, 0u64);
    for (i, &x) in row.iter().enumerate() {
        s += u64::from(x);
        t += (len - i as u64) * u64::from(x);
    }
    let (s, t) = (s % ADLER_MOD, t % ADLER_MOD);
    let (a, b) = (u64::from(adler.0), u64::from(adler.1));
    let k = times % ADLER_MOD;
    let pairs = (times * times.saturating_sub(1) / 2) % ADLER_MOD;
    let a2 = (a + k * s) % ADLER_MOD;
    let b2 =
        (b + k * (len % ADLER_MOD) % ADLER_MOD * a + k * t + (len % ADLER_MOD) * s % ADLER_MOD * pairs) % ADLER_MOD;
    (a2 as u32, b2 as u32)
}

/// Appends one PNG chunk with its length and CRC.
fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Writes a `dim`×`dim` 1-bit PNG. `module_row(y, row)` fills `row` (already zeroed; `dim.div_ceil(8)` bytes, bit 1 =
/// light) with the pixels of module row `y`; each module row covers `px` pixel rows. `palette` is `None` for black
/// on white grayscale, or (dark, light) RGB.
pub(crate) fn write(
    dim: u32,
    px: u32,
    palette: Option<([u8; 3], [u8; 3])>,
    mut module_row: impl FnMut(u32, &mut [u8]),
) -> Vec<u8> {
    let row_bytes = dim.div_ceil(8) as usize;
    let stride = row_bytes + 1;
    let mut out = Vec::with_capacity(2048);
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut ihdr = [0u8; 13];
    ihdr[0..4].copy_from_slice(&dim.to_be_bytes());
    ihdr[4..8].copy_from_slice(&dim.to_be_bytes());
    ihdr[8] = 1; // bit depth
    ihdr[9] = if palette.is_some() { 3 } else { 0 }; // indexed or grayscale
    chunk(&mut out, b"IHDR", &ihdr);
    if let Some((dark, light)) = palette {
        let mut plte = [0u8; 6];
        plte[..3].copy_from_slice(&dark);
        plte[3..].copy_from_slice(&light);
        chunk(&mut out, b"PLTE", &plte);
    }
    let idat_at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(b"IDAT");
    out.extend_from_slice(&[0x78, 0x01]); // zlib: deflate, 32 KiB window, no dictionary
    let mut adler = (1u32, 0u32);
    // Filter type 0 (none) on every row, so that repeated rows are byte-identical, filter byte included.
    let mut row = vec![0u8; stride];
    let mut prev = vec![0u8; stride];
    let mut repeat = 0usize;
    let mut first = true;
    {
        let mut w = BitWriter {
            out: &mut out,
            acc: 0,
            bits: 0,
        };
        w.put(1, 1); // final block
        w.put(1, 2); // fixed Huffman codes
        let module_rows = dim / px;
        for y in 0..module_rows {
            row.fill(0);
            module_row(y, &mut row[1..]);
            if !first && row == prev {
                repeat += stride * px as usize;
            } else {
                flush_repeat(&mut w, repeat, &prev);
                repeat = stride * (px as usize - 1);
                emit_row(&mut w, &row);
                std::mem::swap(&mut row, &mut prev);
                first = false;
            }
            adler = adler32_repeated(adler, &prev, u64::from(px));
        }
        flush_repeat(&mut w, repeat, &prev);
        w.put(0, 7); // end of block (code 256: seven zero bits)
        w.finish();
    }
    let (a, b) = adler;
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let idat_len = (out.len() - idat_at - 8) as u32;
    out[idat_at..idat_at + 4].copy_from_slice(&idat_len.to_be_bytes());
    let crc = crc32fast::hash(&out[idat_at + 4..]);
    out.extend_from_slice(&crc.to_be_bytes());
    chunk(&mut out, b"IEND", &[]);
    out
}

/// `repeat` more bytes that each equal the byte one row (`prev.len()`) earlier.
fn flush_repeat(w: &mut BitWriter<'_>, repeat: usize, prev: &[u8]) {
    if repeat >= 3 {
        w.copy_long(repeat, prev.len());
    } else {
        // Fewer than a back-reference's minimum: the first bytes of the row again.
        for &b in &prev[..repeat] {
            w.literal(b);
        }
    }
}

/// One row: literals, with runs of four or more equal bytes as a literal plus a back-reference at distance 1.
fn emit_row(w: &mut BitWriter<'_>, row: &[u8]) {
    let mut i = 0;
    while i < row.len() {
        let b = row[i];
        let mut j = i + 1;
        while j < row.len() && row[j] == b {
            j += 1;
        }
        w.literal(b);
        let rest = j - i - 1;
        if rest >= 3 {
            w.copy_long(rest, 1);
        } else {
            for _ in 0..rest {
                w.literal(b);
            }
        }
        i = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_rfc_1951() {
        assert_eq!(length_code(3), (257, 0, 3));
        assert_eq!(length_code(11), (265, 1, 11));
        assert_eq!(length_code(12), (265, 1, 11));
        assert_eq!(length_code(257), (284, 5, 227));
        assert_eq!(length_code(258), (285, 0, 258));
        assert_eq!(distance_code(1), (0, 0, 1));
        assert_eq!(distance_code(4), (3, 0, 4));
        assert_eq!(distance_code(5), (4, 1, 5));
        assert_eq!(distance_code(40), (10, 4, 33));
        assert_eq!(distance_code(32768), (29, 13, 24577));
        assert_eq!(adler32_repeated((1, 0), b"Wikipedia", 1), (0x398, 0x11e6));
        // k copies in closed form = the bytes one by one.
        let row: Vec<u8> = (0..=255u8).chain(0..=255).collect();
        let (mut a, mut b) = (1u64, 0u64);
        for _ in 0..300 {
            for &x in &row {
                a = (a + u64::from(x)) % 65521;
                b = (b + a) % 65521;
            }
        }
        assert_eq!(adler32_repeated((1, 0), &row, 300), (a as u32, b as u32));
        assert_eq!(adler32_repeated((7, 9), &row, 0), (7, 9));
    }
}
