#!/usr/bin/env bash
# Builds every connector workspace (plugins/ and tests/guests/) into
# WebAssembly components and puts each `<name>.wasm` beside its connector.toml,
# which is what makes a folder a bundle the host can load.
#
# It installs what it needs and is idempotent. Two routes:
#  - rustup has the wasm32-wasip2 target: plain `cargo build`.
#  - otherwise (fresh machine of our CI kind, where rustup cannot download
#    targets): Debian's rustc-web with build-std, and wasm-component-ld from
#    crates.io. See shared/GUEST-TOOLCHAIN.md for why this route.
#
# Usage: plugins/build.sh [--release|--debug] [workspace-dir ...]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
profile=release
dirs=()
for arg in "$@"; do
  case "$arg" in
    --release) profile=release ;;
    --debug) profile=debug ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) dirs+=("$arg") ;;
  esac
done
[ ${#dirs[@]} -gt 0 ] || dirs=("$root/plugins" "$root/tests/guests")

target=wasm32-wasip2
tools="$root/target/guest-tools"

# Test processes may call this at the same time: one build at a time.
mkdir -p "$root/target"
exec 9>"$root/target/.guest-build.lock"
flock 9
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
  if [ ${#need[@]} -gt 0 ]; then
    echo "build.sh: installing ${need[*]} from Debian" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src lld-22 wasi-libc >/dev/null
  fi
  if ! "$tools/bin/wasm-component-ld" --version 2>/dev/null | grep -q "$component_ld_version"; then
    echo "build.sh: installing wasm-component-ld $component_ld_version" >&2
    cargo install --quiet --locked --root "$tools" "wasm-component-ld@$component_ld_version"
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

for dir in "${dirs[@]}"; do
  dir=$(cd "$dir" && pwd)
  echo "build.sh: building $dir ($profile)" >&2
  # The output goes to the workspace's own target/ whatever CARGO_TARGET_DIR
  # says (a global one, a CI's): the components are picked up from there.
  (cd "$dir" && "${cargo_cmd[@]}" build --quiet --target-dir "$dir/target" "${flags[@]}" "${build_std[@]}")
  # Each member with a connector.toml is a bundle: put its component beside it.
  for manifest in "$dir"/*/connector.toml; do
    [ -f "$manifest" ] || continue
    bundle=$(dirname "$manifest")
    crate=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$bundle/Cargo.toml" | head -n 1)
    wasm="$dir/target/$target/$profile/${crate//-/_}.wasm"
    [ -f "$wasm" ] || { echo "build.sh: $wasm was not built" >&2; exit 1; }
    install -m 0644 "$wasm" "$bundle/$(basename "$bundle").wasm"
  done
done
