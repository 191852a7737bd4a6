#!/usr/bin/env bash
# Assemble a cargo *directory source* from Debian's librust-*-dev packages, for machines that reach
# Debian's apt repositories but not crates.io. Nothing here touches /etc/apt: apt runs on a private
# state (sources list, package lists, cache) under $OUT/.apt.
#
#   scripts/debian-crates.sh [OUT_DIR]     (default: .cargo-debian, git-ignored)
#
# Each crate below is resolved to the newest Debian version (trixie or sid) that satisfies its semver
# requirement (^req), so a .deb that sid drops does not break the build. Debian patches some crates and
# writes a placeholder checksum, which is why Cargo.lock is not committed (see README).
set -euo pipefail

OUT=${1:-.cargo-debian}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# crate  semver requirement (caret): the closure cargo needs for ndarray 0.17 + matrixmultiply + rayon.
CRATES="
ndarray 0.17.2
matrixmultiply 0.3.11
rayon 1.10.0
rayon-core 1.12.1
crossbeam-deque 0.8.5
crossbeam-epoch 0.9.18
crossbeam-utils 0.8.19
either 1.13.0
num-complex 0.4.6
num-integer 0.1.46
num-traits 0.2.19
rawpointer 0.2.1
autocfg 1.1.0
"

APT="$OUT/.apt"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/debs"
: > "$APT/status"
cat > "$APT/sources.list" <<SOURCES
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main
SOURCES
APT_OPTS=(
  -o "Dir::Etc::SourceList=$APT/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache" -o "Dir::State::Status=$APT/status"
  -o Debug::NoLocking=1 -o APT::Sandbox::User=root
)

echo "kana-native: fetching Rust crates from Debian (trixie + sid) into $OUT" >&2
apt-get "${APT_OPTS[@]}" -qq update

# newest "upstream" version among the candidates that satisfies ^req (major, or minor for 0.x, pinned)
pick() {  # pick CRATE REQ -> prints "debversion upstreamversion"
  local crate=$1 req=$2
  apt-cache "${APT_OPTS[@]}" madison "librust-$crate-dev" | awk -F'|' '{gsub(/ /,"",$2); print $2}' |
  while read -r deb; do
    up=${deb%%-*}; up=${up#*:}
    if semver_ok "$up" "$req"; then echo "$deb $up"; fi
  done | sort -t' ' -k2,2V | tail -n 1
}
semver_ok() {  # semver_ok VERSION REQ: VERSION >= REQ and same compatibility class (^REQ)
  local v=$1 r=$2
  IFS=. read -r vM vm vp <<<"$v"; IFS=. read -r rM rm rp <<<"$r"
  [ "$vM" = "$rM" ] || return 1
  if [ "$rM" = 0 ]; then [ "$vm" = "$rm" ] || return 1; fi
  [ "$(printf '%s\n%s\n' "$r" "$v" | sort -V | head -n1)" = "$r" ]
}

cd "$APT/debs"
echo "$CRATES" | while read -r crate req; do
  [ -n "$crate" ] || continue
  sel=$(pick "$crate" "$req")
  if [ -z "$sel" ]; then
    echo "kana-native: no Debian package librust-$crate-dev satisfies ^$req in trixie or sid." >&2
    echo "  Either Debian moved past it or the apt repositories are unreachable; see README 'Building offline'." >&2
    exit 1
  fi
  read -r deb up <<<"$sel"
  if [ -d "$OUT/$crate-$up" ]; then continue; fi
  rm -f librust-"$crate"-dev_*.deb
  apt-get "${APT_OPTS[@]}" -qq download "librust-$crate-dev=$deb" >/dev/null
  rm -rf x && mkdir x && dpkg-deb -x librust-"$crate"-dev_*.deb x
  src=$(ls -d x/usr/share/cargo/registry/"$crate"-* | head -n1)
  cp -a "$src" "$OUT/$crate-$up"
  rm -rf x
  echo "  $crate $up (Debian $deb)" >&2
done
# Marks a complete set, so later builds skip the apt round-trip (KANA_REFRESH_CRATES=1 redoes it).
echo "$CRATES" > "$OUT/.complete"
