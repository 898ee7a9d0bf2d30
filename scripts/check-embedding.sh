#!/usr/bin/env bash
# Builds and runs a service that embeds the crates with the dependency lines the README gives (its block marked
# "ci: embedding dependencies"), the git URL pointed at this repository (file://): the documented way in works.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
block="$(awk '/<!-- ci: embedding dependencies/{found=1; next} found && /^```toml/{inside=1; next} inside && /^```/{exit} inside {print}' "$repo/README.md")"
[ -n "$block" ] || { echo "no embedding dependency block in README.md"; exit 1; }
grep -q 'git = "https://github.com/wxkit/wxkit"' <<<"$block" || { echo "the README's block has no git dependency"; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
{
  printf '[package]\nname = "embedding-check"\nversion = "0.0.0"\nedition = "2024"\npublish = false\n\n[workspace]\n\n'
  sed "s#https://github.com/wxkit/wxkit#file://$repo#" <<<"$block"
} >"$work/Cargo.toml"
cat >"$work/src/main.rs" <<'RS'
// The README's first lines of embedding, built against the crates fetched from git.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let oa = wechat::OfficialAccount::builder()
        .app_id("wx1234567890abcdef")
        .secret("app-secret")
        .build()?;
    let url = oa.oauth().authorize_url(
        "https://shop.example.com/auth/callback",
        wechat::wechat_oauth::web::Scope::Base,
        Some("state"),
    )?;
    println!("embedded from git: {url}");
    Ok(())
}
RS
# The workspace's lock keeps versions (and so the shared build cache) as the project has them.
cp "$repo/Cargo.lock" "$work/Cargo.lock"
cd "$work"
cargo run -q
