#!/usr/bin/env bash
# Side-by-side QR rendering benchmark: qr-render (Rust) vs Node's qr-image, same URL, same image size, same number
# of images, one run. Installs qr-image into a temporary folder with npm. Usage: scripts/bench-qr.sh [ITERATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
URL='https://coupons.wxkit.example.com/c/7ZQK4M2N6P3R5T7V9X2B4D6F8HJKLMNPQRSTUVWXYZ234567?from=timeline&src=qr'

command -v node >/dev/null || { echo "node is required (Debian: apt-get install nodejs npm)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund qr-image@3 >/dev/null)
qr_image_version=$(node -p "require('$tmp/node_modules/qr-image/package.json').version")

cargo build --release -q -p qr-render --example bench
rust_out=$(target/release/examples/bench "$N" "$URL")

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
node_out=$(node "$tmp/bench.js" "$tmp" "$N" "$URL")

echo "QR rendering, $N images per case, URL of ${#URL} bytes, ECC M, quiet zone 4"
echo "qr-render $(git rev-parse --short HEAD 2>/dev/null || echo '?') (release) vs qr-image $qr_image_version on node $(node --version)"
echo
printf '| case | qr-render µs/image | qr-image µs/image | speed-up | qr-render bytes | qr-image bytes |\n'
printf '|---|---:|---:|---:|---:|---:|\n'
while IFS=$'\t' read -r name us bytes; do
  node_line=$(printf '%s\n' "$node_out" | awk -F'\t' -v n="$name" '$1==n')
  if [ -n "$node_line" ]; then
    nus=$(printf '%s' "$node_line" | cut -f2); nbytes=$(printf '%s' "$node_line" | cut -f3)
    ratio=$(awk -v a="$nus" -v b="$us" 'BEGIN { printf "%.1f×", a / b }')
    printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$us" "$nus" "$ratio" "$bytes" "$nbytes"
  else
    printf '| %s | %s | – | – | %s | – |\n' "$name" "$us" "$bytes"
  fi
done <<< "$rust_out"
