#!/usr/bin/env bash
# Builds connector projects into WebAssembly components and puts each beside
# its connector.toml, named as the manifest says (`component`, else
# `<name>.wasm`), which is what makes a folder a bundle the host can load.
# A directory is a connector project (connector.toml beside Cargo.toml) or a
# cargo workspace whose members are; by default plugins/ and tests/guests/.
# `toolhost build` runs this same script (it is compiled into the binary).
#
# It installs what it needs and is idempotent. Two routes:
#  - rustup has the wasm32-wasip2 target: plain `cargo build`.
#  - otherwise (fresh machine of our CI kind, where rustup cannot download
#    targets): Debian's rustc-web with build-std, and wasm-component-ld from
#    crates.io. See plugins/GUEST-TOOLCHAIN.md for why this route.
#
# Usage: plugins/build.sh [--release|--debug] [project-or-workspace-dir ...]
# Environment: TOOLHOST_GUEST_TOOLS, where installed tools go (default
# target/guest-tools of this checkout); TOOLHOST_GUEST_TARGET_DIR, one cargo
# target folder for every directory built (default: target/wasm of this
# checkout for the two default directories, each named directory's own
# target/ otherwise).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
profile=release
dirs=()
for arg in "$@"; do
  case "$arg" in
    --release) profile=release ;;
    --debug) profile=debug ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "build.sh: unknown option $arg (--release, --debug)" >&2; exit 2 ;;
    *) dirs+=("$arg") ;;
  esac
done
shared_target_dir=
if [ ${#dirs[@]} -eq 0 ]; then
  dirs=("$root/plugins" "$root/tests/guests")
  # One target folder for both workspaces: the standard library for the
  # wasm target (the build-std route) and the dependencies they share
  # (wit-bindgen, serde, the SDK) are compiled once, not once each.
  shared_target_dir="$root/target/wasm"
fi

target=wasm32-wasip2
tools="${TOOLHOST_GUEST_TOOLS:-$root/target/guest-tools}"
started=$SECONDS
say() { echo "build: $* ($((SECONDS - started)) s)" >&2; }

# Test processes may call this at the same time: one build at a time.
mkdir -p "$tools"
exec 9>"$tools/.build.lock"
if ! flock -n 9; then
  say "waiting for another guest build to finish"
  flock 9
fi
component_ld_version=0.5.31

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# A 256 KiB stack instead of the default 1 MiB: connectors do not recurse
# deeply, and every byte of initial memory is zeroed again after each call.
stack="-Clink-arg=-zstack-size=262144"

if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  export CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="$stack"
  cargo_cmd=(cargo)
  build_std=()
else
  need=()
  [ -x /usr/bin/rustc ] && /usr/bin/rustc --version 2>/dev/null | grep -q '^rustc 1\.9[6-9]' || need+=(rustc-web cargo-web)
  [ -d /usr/lib/rustlib/src/rust/library ] || need+=(rust-web-src)
  [ -x /usr/lib/llvm-22/bin/wasm-ld ] || need+=(lld-22)
  [ -d /usr/lib/wasm32-wasi ] || need+=(wasi-libc)
  # The Debian packages (network and dpkg) and wasm-component-ld (a
  # compile, with rustup's rustc) need nothing of each other: one runs
  # beside the other.
  debian=
  if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]} from Debian, once (about 25 s)"
    { as_root apt-get update -qq &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src lld-22 wasi-libc >/dev/null; } &
    debian=$!
  fi
  if ! "$tools/bin/wasm-component-ld" --version 2>/dev/null | grep -q "$component_ld_version"; then
    say "installing wasm-component-ld $component_ld_version from crates.io, once (about 65 s)"
    cargo install --quiet --locked --root "$tools" "wasm-component-ld@$component_ld_version"
  fi
  if [ -n "$debian" ] && ! wait "$debian"; then
    echo "build.sh: installing ${need[*]} from Debian failed" >&2
    exit 1
  fi
  # Debian's cargo and rustc sit behind rustup's proxies in PATH: name them.
  export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
  export CARGO_TARGET_WASM32_WASIP2_LINKER="$tools/bin/wasm-component-ld"
  export CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="-Clink-self-contained=no -Lnative=/usr/lib/wasm32-wasi -Clink-arg=--wasm-ld-path=/usr/lib/llvm-22/bin/wasm-ld $stack"
  cargo_cmd=(/usr/bin/cargo)
  build_std=(-Zbuild-std=std,panic_abort)
fi

flags=(--target "$target")
[ "$profile" = release ] && flags+=(--release)

# The first value of `key` in a TOML file's top level (before any table).
toml_top() { sed -n '/^\[/q; s/^'"$1"' *= *"\([^"]*\)".*/\1/p' "$2" | head -n 1; }

for dir in "${dirs[@]}"; do
  [ -d "$dir" ] || { echo "build.sh: $dir is not a directory" >&2; exit 2; }
  dir=$(cd "$dir" && pwd)
  [ -f "$dir/Cargo.toml" ] || { echo "build.sh: $dir has no Cargo.toml: not a connector project or workspace" >&2; exit 2; }
  target_dir="${TOOLHOST_GUEST_TARGET_DIR:-${shared_target_dir:-$dir/target}}"
  # Compiling std for the target happens once per target folder: say so.
  if [ ${#build_std[@]} -gt 0 ] && [ ! -d "$target_dir/$target/$profile/deps" ]; then
    say "building $dir ($profile); the first build in $target_dir also compiles Rust's standard library for $target (about 45 s)"
  else
    say "building $dir ($profile)"
  fi
  # The output goes to the project's own target/ (or the one named above)
  # whatever CARGO_TARGET_DIR says (a global one, a CI's): the components
  # are picked up from there.
  (cd "$dir" && "${cargo_cmd[@]}" build --target-dir "$target_dir" "${flags[@]}" "${build_std[@]}")
  # The project itself, or each workspace member, with a connector.toml is
  # a bundle: put its component beside the manifest, named as the host
  # will look for it.
  found=0
  for manifest in "$dir"/connector.toml "$dir"/*/connector.toml; do
    [ -f "$manifest" ] || continue
    found=1
    bundle=$(dirname "$manifest")
    [ -f "$bundle/Cargo.toml" ] || continue
    crate=$(toml_top name "$bundle/Cargo.toml")
    [ -n "$crate" ] || crate=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$bundle/Cargo.toml" | head -n 1)
    wasm="$target_dir/$target/$profile/${crate//-/_}.wasm"
    [ -f "$wasm" ] || { echo "build.sh: $wasm was not built (is crate-type [\"cdylib\"] in $bundle/Cargo.toml?)" >&2; exit 1; }
    component=$(toml_top component "$manifest")
    [ -n "$component" ] || component="$(toml_top name "$manifest").wasm"
    [ "$component" != ".wasm" ] || { echo "build.sh: $manifest has no name" >&2; exit 1; }
    install -m 0644 "$wasm" "$bundle/$component.tmp"
    mv -f "$bundle/$component.tmp" "$bundle/$component"
    say "$bundle/$component"
  done
  [ "$found" = 1 ] || say "no connector.toml in $dir or its subfolders: built, but no bundle to fill"
done
