#!/usr/bin/env bash
# Side-by-side QR rendering benchmark: qr-render (Rust) vs Node's qr-image, same URL, same image size, same number
# of images, RUNS runs of each (default 5, alternating), min / median / max per case. Installs qr-image into a
# temporary folder with npm. Usage: RUNS=5 scripts/bench-qr.sh [ITERATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
RUNS=${RUNS:-5}
[ "$RUNS" -ge 1 ] || { echo "RUNS must be at least 1"; exit 2; }
URL='https://coupons.wxkit.example.com/c/7ZQK4M2N6P3R5T7V9X2B4D6F8HJKLMNPQRSTUVWXYZ234567?from=timeline&src=qr'

command -v node >/dev/null || { echo "node is required (Debian: apt-get install nodejs npm)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund qr-image@3 >/dev/null)
qr_image_version=$(node -p "require('$tmp/node_modules/qr-image/package.json').version")

cargo build --release -q -p wxkit-qr-render --example bench
target_dir=${CARGO_TARGET_DIR:-target}

cat > "$tmp/bench.js" <<'JS'
const qr = require(process.argv[2] + '/node_modules/qr-image');
const [, , , n, url] = process.argv;
const N = Number(n);
const modules = qr.matrix(url, 'M').length + 8; // margin 4 on each side, as ours
function time(f) {
  let last;
  for (let i = 0; i < N / 10; i++) last = f();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) last = f();
  const us = Number(process.hrtime.bigint() - t0) / 1000 / N;
  return [us, Buffer.byteLength(last)];
}
for (const size of [300, 600]) {
  const px = Math.floor(size / modules);
  const [pus, pbytes] = time(() => qr.imageSync(url, { type: 'png', ec_level: 'M', size: px, margin: 4 }));
  console.log(`png_${size}\t${pus.toFixed(1)}\t${pbytes}`);
  const [sus, sbytes] = time(() => qr.imageSync(url, { type: 'svg', ec_level: 'M', size: px, margin: 4 }));
  console.log(`svg_${size}\t${sus.toFixed(1)}\t${sbytes}`);
}
JS
# Alternate the two, so that a noisy moment of the machine hits both.
: > "$tmp/rust.tsv"; : > "$tmp/node.tsv"
for _ in $(seq 1 "$RUNS"); do
  "$target_dir/release/examples/bench" "$N" "$URL" >> "$tmp/rust.tsv"
  node "$tmp/bench.js" "$tmp" "$N" "$URL" >> "$tmp/node.tsv"
done
# name → "min median max bytes" (µs per image).
stats() {
  sort -t$'\t' -k1,1 -k2,2g "$1" | awk -F'\t' '
    function flush() { if (n) { printf "%s\t%.1f\t%.1f\t%.1f\t%s\n", name, v[1], (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2), v[n], bytes } }
    $1 != name { flush(); name = $1; n = 0 }
    { v[++n] = $2; bytes = $3 }
    END { flush() }'
}
rust_stats=$(stats "$tmp/rust.tsv")
node_stats=$(stats "$tmp/node.tsv")

echo "QR rendering, $N images per case per run, $RUNS runs, URL of ${#URL} bytes, ECC M, quiet zone 4"
echo "qr-render $(git rev-parse --short HEAD 2>/dev/null || echo '?') (release, its own encoder and PNG writer) vs qr-image $qr_image_version on node $(node --version)"
echo
printf '| case | qr-render µs/image min / median / max | qr-image µs/image min / median / max | speed-up (medians) | qr-render bytes | qr-image bytes |\n'
printf '|---|---:|---:|---:|---:|---:|\n'
while IFS=$'\t' read -r name rmin rmed rmax bytes; do
  node_line=$(printf '%s\n' "$node_stats" | awk -F'\t' -v n="$name" '$1==n')
  if [ -n "$node_line" ]; then
    IFS=$'\t' read -r _ nmin nmed nmax nbytes <<< "$node_line"
    ratio=$(awk -v a="$nmed" -v b="$rmed" 'BEGIN { printf "%.1f×", a / b }')
    printf '| %s | %s / %s / %s | %s / %s / %s | %s | %s | %s |\n' "$name" "$rmin" "$rmed" "$rmax" "$nmin" "$nmed" "$nmax" "$ratio" "$bytes" "$nbytes"
  else
    printf '| %s | %s / %s / %s | – | – | %s | – |\n' "$name" "$rmin" "$rmed" "$rmax" "$bytes"
  fi
done <<< "$rust_stats"
