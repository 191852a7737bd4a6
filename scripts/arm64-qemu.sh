#!/usr/bin/env bash
# linux-arm64 on a Linux x64 machine that reaches only npm and Debian: cross-build the engine and
# the addon for aarch64-unknown-linux-gnu, run kana-core's tests and an addon smoke test under
# qemu-user. Not part of `npm test` or .ci/run (10–15 minutes on 2 cores); `npm run test:arm64`.
#
# rustup cannot download the aarch64 standard library here, and a std must come from the very
# rustc that uses it, so the compiler is Debian's too: rustc-web (bookworm-security, a current
# rustc) with libstd-rust-web-dev:arm64, unpacked with `dpkg-deb -x` under target/arm64/ from a
# private apt state (as scripts/debian-crates.sh does; /etc/apt is never touched). The linker is
# napi-rs's aarch64 gcc with a glibc 2.17 sysroot (scripts/cross-toolchain.mjs), the same as the
# release workflow's. The arm64 Node for the smoke test is Debian's nodejs:arm64 and its libraries.
# Needs qemu-user (apt-get install qemu-user; .ci/run does not install it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
W=$ROOT/target/arm64
mkdir -p "$W"
command -v qemu-aarch64 >/dev/null || { echo "arm64: qemu-aarch64 not found (apt-get install qemu-user)" >&2; exit 1; }

apt_state() {  # apt_state DIR ARCHS: a private apt state naming bookworm and bookworm-security
  local d=$1 archs=$2
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
  [ -f "$d/status" ] || : > "$d/status"
  cat > "$d/sources.list" <<SOURCES
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
SOURCES
  APT_OPTS=(
    -o "Dir::Etc::SourceList=$d/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
    -o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache" -o "Dir::State::Status=${3:-$d/status}"
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root
    -o "APT::Architectures=$archs" -o "APT::Architecture=${archs%%,*}"
  )
  apt-get "${APT_OPTS[@]}" -qq update
}
unpack_all() {  # unpack_all CACHE_DIR DEST
  mkdir -p "$2"
  for deb in "$1"/*.deb; do dpkg-deb -x "$deb" "$2"; done
}

# 1. Debian's rustc and its x86_64 + aarch64 std (the machine's own dpkg status counts as installed,
#    so only what is missing — rustc-web, its LLVM, the std packages — is downloaded)
if [ ! -x "$W/rust/usr/bin/rustc" ]; then
  echo "arm64: Debian's rustc-web and libstd-rust-web-dev:arm64" >&2
  apt_state "$W/apt-rust" amd64,arm64 /var/lib/dpkg/status
  apt-get "${APT_OPTS[@]}" -y -qq -d --no-install-recommends install rustc-web libstd-rust-web-dev:arm64 >/dev/null
  unpack_all "$W/apt-rust/cache/archives" "$W/rust"
fi
export LD_LIBRARY_PATH=$W/rust/usr/lib/x86_64-linux-gnu
export RUSTC=$W/rust/usr/bin/rustc RUSTDOC=$W/rust/usr/bin/rustdoc
"$RUSTC" -V >&2

# 2. the aarch64 link toolchain (glibc 2.17), as the release workflow's build uses it
eval "$(node --input-type=module -e "
import { portableToolchainEnv } from '$ROOT/scripts/cross-toolchain.mjs'
const e = portableToolchainEnv('aarch64-unknown-linux-gnu')
console.log('export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=' + JSON.stringify(e.CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER))
console.log('export ARM64_SYSROOT=' + JSON.stringify(e.TARGET_SYSROOT))
")"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $ARM64_SYSROOT"

# 3. kana-core's tests, run by qemu
node scripts/cargo.mjs test --release -p kana-core --target aarch64-unknown-linux-gnu --target-dir "$W/cargo"

# 4. the addon, and Debian's arm64 Node loading it under qemu: the loader's platform name, the
#    engine's cpu features, a small fit that must learn
node scripts/build.mjs --native-only --target aarch64-unknown-linux-gnu
node scripts/glibc-version.mjs kana-native.linux-arm64-gnu.node
if [ ! -x "$W/node/usr/bin/node" ]; then
  echo "arm64: Debian's nodejs:arm64" >&2
  apt_state "$W/apt-node" arm64
  apt-get "${APT_OPTS[@]}" -y -qq -d --no-install-recommends install nodejs >/dev/null
  unpack_all "$W/apt-node/cache/archives" "$W/node"
fi
[ -f dist/index.js ] || node scripts/build.mjs --ts-only
unset LD_LIBRARY_PATH
qemu-aarch64 -L "$W/node" "$W/node/usr/bin/node" -e "
const k = require('$ROOT/index.js')
const addon = Object.keys(require.cache).filter((f) => f.endsWith('.node'))
console.log('arm64 node', process.version, JSON.stringify(k.native.cpuFeatures()), addon.join())
if (k.native.cpuFeatures().arch !== 'aarch64' || !addon[0].endsWith('kana-native.linux-arm64-gnu.node')) process.exit(1)
const n = 200, x = new Uint8Array(n * 784), y = new Uint8Array(n)
for (let i = 0; i < n; i++) { y[i] = i % 2; for (let j = 0; j < 784; j++) x[i * 784 + j] = (y[i] ? j < 392 : j >= 392) ? 200 : 10 }
const m = new k.MLP({ layers: [784, 16, 2], seed: 1, threads: 2 })
;(async () => {
  await m.fit(x, y, { epochs: 3, batchSize: 20, optimizer: 'adam', lr: 1e-2, l2: 0 })
  const ev = await m.evaluate(x, y)
  console.log('arm64 addon: accuracy after 3 epochs on a separable toy set', ev.accuracy)
  process.exit(ev.accuracy >= 0.99 ? 0 : 1)
})().catch((e) => { console.error(e); process.exit(1) })
"
echo "arm64: done" >&2
