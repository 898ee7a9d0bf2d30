#!/usr/bin/env bash
# The rules that hold apps/server up, as greps anyone can run (docs/architecture.md, "Rules"). CI runs this script;
# each rule prints what breaks it and the script exits 1 if any does.
#
#   scripts/check-architecture.sh            # check the tree
#   scripts/check-architecture.sh --self-test  # prove that each rule fails on a scratch change (in a temp copy)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="${ARCH_ROOT:-apps/server/src}"

failed=0
rule() {
  # rule NAME OUTPUT: fails when OUTPUT is not empty.
  local name="$1" out="$2"
  if [ -n "$out" ]; then
    printf 'FAIL %s\n%s\n' "$name" "$out" | sed '3,$s/^/    /'
    failed=1
  else
    printf 'ok   %s\n' "$name"
  fi
}

check() {
  local src="$1"
  rule "no layer below the composition root imports it (crate::startup)" \
    "$(grep -rn 'crate::startup' "$src"/features "$src"/http "$src"/platform "$src"/db 2>/dev/null)"
  rule "the kernel, the platform, db/ and the settings name no capability (crate::features)" \
    "$(grep -rn 'crate::features' "$src"/http "$src"/platform "$src"/db "$src"/configuration.rs 2>/dev/null)"
  rule "services speak no HTTP (actix_web, ApiError, HttpResponse in features/*/service.rs)" \
    "$(grep -ln 'actix_web\|ApiError\|HttpResponse' "$src"/features/*/service.rs 2>/dev/null)"
  rule "slices meet through services and views, never each other's routes (outside features/mod.rs)" \
    "$(grep -rnE 'features::[a-z_]+::(routes|api|pages|admin_routes)\b' "$src" 2>/dev/null | grep -v "^$src/features/mod.rs:")"
  rule "the CLI calls services and views, never a repo" \
    "$(grep -rnE '(::|\b)repo\b' "$src"/cli 2>/dev/null | grep -v '^\s*//')"
  rule "Beijing time is computed in one place (platform/time.rs)" \
    "$(grep -rn 'hours(8)' "$src" 2>/dev/null | grep -v "^$src/platform/time.rs:")"
  local lines
  lines=$(wc -l < "$src/startup.rs")
  rule "startup.rs only composes (at most 250 lines)" \
    "$([ "$lines" -gt 250 ] && echo "$src/startup.rs has $lines lines")"
  # A function runs from its `fn` line to the first line closing at its indentation. Tables (the OpenAPI
  # operations, features/*/openapi.rs) are data, not logic, and are left out.
  rule "no function over 120 lines (tables excepted)" \
    "$(find "$src" -name '*.rs' ! -name openapi.rs -print0 | xargs -0 awk '
        FNR == 1 { open = 0 }
        !open && match($0, /^[ \t]*(pub(\([a-z]+\))? )?(const )?(async )?(unsafe )?fn [a-zA-Z0-9_]+/) {
          if ($0 ~ /;[ \t]*$/) next
          indent = RSTART; match($0, /^[ \t]*/); pad = substr($0, 1, RLENGTH)
          name = $0; sub(/^[ \t]*/, "", name); sub(/\(.*/, "", name)
          open = 1; start = FNR
          if ($0 ~ /}[ \t]*$/ && $0 ~ /{/) { open = 0 }
          next
        }
        open && $0 == pad "}" {
          if (FNR - start + 1 > 120) printf "%s:%d: %s is %d lines\n", FILENAME, start, name, FNR - start + 1
          open = 0
        }')"
}

if [ "${1:-}" = "--self-test" ]; then
  # Each scratch change must make the check fail; the tree itself must pass.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  scratch() {
    local what="$1" file="$2" line="$3"
    rm -rf "$tmp/src" && cp -r "$ROOT" "$tmp/src"
    mkdir -p "$(dirname "$tmp/src/$file")" && printf '%s\n' "$line" >> "$tmp/src/$file"
    if ARCH_ROOT="$tmp/src" "$0" >/dev/null 2>&1; then
      echo "self-test FAILED: the check passed with $what"; exit 1
    fi
    echo "self-test ok: refused $what"
  }
  scratch "a slice importing startup" features/jssdk/mod.rs 'use crate::startup::Application;'
  scratch "the kernel importing a slice" http/health.rs 'use crate::features::coupons::State;'
  scratch "a service speaking HTTP" features/coupons/service.rs 'use actix_web::HttpResponse;'
  scratch "a slice using another's routes" features/pay/service.rs 'use crate::features::coupons::routes::x;'
  scratch "the CLI reading a repo" cli/mod.rs 'use crate::features::pay::repo;'
  scratch "Beijing time computed again" features/pay/gateway.rs '// (t + chrono::Duration::hours(8))'
  scratch "a function of 121 lines" http/health.rs "$(printf 'fn long() {\n'; for _ in $(seq 1 119); do printf '    let _ = 1;\n'; done; printf '}')"
  big=$(printf '// padding\n%.0s' $(seq 1 250))
  scratch "startup.rs over 250 lines" startup.rs "$big"
  if ! "$0" >/dev/null; then echo "self-test FAILED: the tree itself breaks a rule"; exit 1; fi
  echo "self-test ok: the tree passes"
  exit 0
fi

check "$ROOT"
exit "$failed"
