#!/usr/bin/env bash
# What embedding wechat-pay costs a service, by feature set: crates in the dependency graph and a cold debug build
# of tests/embed-no-default (a crate of its own that depends on wechat-core and wechat-pay), each in a fresh target
# directory, one after the other on the same machine. Usage: scripts/bench-footprint.sh
set -euo pipefail
cd "$(dirname "$0")/../tests/embed-no-default"
printf '| features | crates (normal deps) | reqwest | tokio | cold `cargo build` |\n|---|---|---|---|---|\n'
for features in "" "client" "default-transport"; do
  args=(--locked)
  [ -n "$features" ] && args+=(--features "$features")
  crates=$(cargo tree -q "${args[@]}" -e normal --prefix none | sed 's/ (\*)//' | sort -u | wc -l)
  has() { cargo tree -q "${args[@]}" -e normal -i "$1" >/dev/null 2>&1 && echo yes || echo no; }
  target=$(mktemp -d)
  start=$(date +%s.%N)
  CARGO_TARGET_DIR="$target" CARGO_INCREMENTAL=0 cargo build -q "${args[@]}"
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  rm -rf "$target"
  printf '| %s | %s | %s | %s | %.0f s |\n' "${features:-(none: pure parts)}" "$crates" "$(has reqwest)" "$(has tokio)" "$secs"
done
