#!/usr/bin/env bash
# The database-only ceiling of a redemption: pgbench (C client, no HTTP) running, on the same PostgreSQL,
# (1) the issue's reference single-row conditional UPDATE, (2) our redemption write alone (one CTE statement:
# conditional update + redemption row + audit row), (3) everything a POS redemption sends (staff-token read, coupon
# read, the write). Usage: scripts/bench-redeem-sql.sh [SECONDS] [CLIENTS]; needs PostgreSQL on 127.0.0.1:5432 (user
# postgres, trust auth). Creates and drops the database wxkit_bench_sql.
set -euo pipefail
SECONDS_PER_RUN=${1:-8}
CLIENTS=${2:-32}
PGBENCH=$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1)
[ -x "$PGBENCH" ] || { echo "pgbench not found under /usr/lib/postgresql/*/bin"; exit 1; }
PSQL="psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -q"
DB=wxkit_bench_sql
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; $PSQL -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true' EXIT
$PSQL -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
$PSQL -c "CREATE DATABASE $DB"
$PSQL -d $DB <<'SQL'
CREATE TABLE staff (id BIGSERIAL PRIMARY KEY, merchant_id BIGINT NOT NULL, openid TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
  active BOOLEAN NOT NULL, api_token_hash TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL);
CREATE TABLE campaigns (id BIGSERIAL PRIMARY KEY, merchant_id BIGINT NOT NULL, title TEXT NOT NULL, valid_from BIGINT NOT NULL,
  valid_until BIGINT NOT NULL);
CREATE TABLE coupons (id BIGSERIAL PRIMARY KEY, campaign_id BIGINT NOT NULL, code TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
  redeemed_at BIGINT, redeemed_by BIGINT, version BIGINT NOT NULL DEFAULT 0);
CREATE TABLE redemptions (id BIGSERIAL PRIMARY KEY, coupon_id BIGINT NOT NULL UNIQUE, staff_id BIGINT, channel TEXT NOT NULL,
  created_at BIGINT NOT NULL);
CREATE TABLE audit_log (id BIGSERIAL PRIMARY KEY, action TEXT NOT NULL, coupon_code TEXT, coupon_id BIGINT, staff_id BIGINT,
  outcome TEXT NOT NULL, channel TEXT, created_at BIGINT NOT NULL);
INSERT INTO staff (merchant_id, openid, name, active, api_token_hash, created_at) VALUES (1, 'o', 'n', true, 'hash', 0);
INSERT INTO campaigns (merchant_id, title, valid_from, valid_until) VALUES (1, 't', 0, 9999999999999);
INSERT INTO coupons (campaign_id, code, status) SELECT 1, 'CODE' || g, 'issued' FROM generate_series(1, 1000000) g;
SQL
write="WITH upd AS (UPDATE coupons SET status = 'redeemed', redeemed_at = 1, redeemed_by = 1, version = version + 1 WHERE id = :id AND status = 'issued' RETURNING id), red AS (INSERT INTO redemptions (coupon_id, staff_id, channel, created_at) SELECT id, 1, 'pos', 1 FROM upd RETURNING coupon_id) INSERT INTO audit_log (action, coupon_code, coupon_id, staff_id, outcome, channel, created_at) SELECT 'redeem', 'x', coupon_id, 1, 'redeemed', 'pos', 1 FROM red;"
printf '\\set id random(1, 1000000)\nUPDATE coupons SET status = '"'"'redeemed'"'"', redeemed_at = 1, version = version + 1 WHERE id = :id AND status = '"'"'issued'"'"';\n' > "$tmp/single.sql"
printf '\\set id random(1, 1000000)\n%s\n' "$write" > "$tmp/write.sql"
printf '\\set id random(1, 1000000)\nSELECT * FROM staff WHERE api_token_hash = '"'"'hash'"'"';\nSELECT * FROM coupons c JOIN campaigns k ON k.id = c.campaign_id WHERE c.code = '"'"'CODE'"'"' || :id;\n%s\n' "$write" > "$tmp/pos.sql"
echo "pgbench, $CLIENTS clients, ${SECONDS_PER_RUN}s per script, PostgreSQL $($PSQL -Atc 'show server_version')"
echo
echo "| script | statements per transaction | tps | vs single UPDATE |"
echo "|---|---:|---:|---:|"
base=""
for s in single write pos; do
  $PSQL -d $DB -c "UPDATE coupons SET status = 'issued' WHERE status <> 'issued'; TRUNCATE redemptions, audit_log" >/dev/null
  tps=$("$PGBENCH" -n -c "$CLIENTS" -j 2 -T "$SECONDS_PER_RUN" -f "$tmp/$s.sql" -h 127.0.0.1 -U postgres $DB 2>/dev/null | awk '/^tps/ {print $3}')
  [ -n "$base" ] || base=$tps
  case $s in single) n=1; name="single-row conditional UPDATE (the issue's reference)";; write) n=1; name="our redemption write (one CTE: update + redemption + audit)";; pos) n=3; name="a whole POS redemption (token read, coupon read, write)";; esac
  printf '| %s | %s | %.0f | %s |\n' "$name" "$n" "$tps" "$(awk -v a="$tps" -v b="$base" 'BEGIN { printf "%.0f %%", 100 * a / b }')"
done
