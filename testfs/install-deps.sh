#!/usr/bin/env bash
# Installs, with apt-get, what the ringlog-testfs tests need and the machine lacks: the mkfs tools
# of the loop-mounted block filesystems and losetup. Idempotent and quiet: does nothing (not even
# `apt-get update`) when everything is there. Needs root (apt-get) on a Debian-based system.
#
# Not needed: fuse3 / fusermount3 / libfuse — the FUSE tests mount with mount(2) as root through
# fuser's pure-Rust session, and the kernel's fuse module is all they use.
set -euo pipefail

# command -> Debian package
declare -A want=(
  [mkfs.ext4]=e2fsprogs
  [mkfs.xfs]=xfsprogs
  [mkfs.btrfs]=btrfs-progs
  [losetup]=mount
)

have() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

missing=()
for cmd in "${!want[@]}"; do
  if ! have "$cmd"; then
    missing+=("${want[$cmd]}")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "testfs/install-deps.sh: missing ${missing[*]} and no apt-get to install them" >&2
  exit 1
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo)
fi

# Deduplicate and sort the package list.
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "testfs/install-deps.sh: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { "${sudo_cmd[@]}" apt-get update -qq &&
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "testfs/install-deps.sh: apt-get failed" >&2
  exit 1
fi

for cmd in "${!want[@]}"; do
  if ! have "$cmd"; then
    echo "testfs/install-deps.sh: $cmd still missing after installing ${want[$cmd]}" >&2
    exit 1
  fi
done
