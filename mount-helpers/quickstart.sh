#!/usr/bin/env bash
# Sets up cdsfs on a fresh Debian machine and mounts a new encrypted folder:
#   mount-helpers/quickstart.sh [MOUNTPOINT]     (default ~/Private; run as root, from the repository)
# Installs the build dependencies, builds cdsfs (release), creates a home in
# $CDSFS_HOME or ~/.local/share/cdsfs if there is none, and mounts it.
set -euo pipefail
cd "$(dirname "$0")/.."
mountpoint="${1:-$HOME/Private}"

if ! dpkg -s libfuse3-dev fuse3 libssl-dev >/dev/null 2>&1; then
    echo "installing libfuse3-dev fuse3 libssl-dev …"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libfuse3-dev fuse3 libssl-dev >/dev/null
fi

echo "building cdsfs (release) …"
swift build -c release --product cdsfs 2>&1 | tail -n 1
bin="$(swift build -c release --show-bin-path)/cdsfs"

if ! "$bin" key show >/dev/null 2>&1; then
    echo "creating a new home (key pair and local store) …"
    "$bin" init
fi

mkdir -p "$mountpoint"
"$bin" mount "$mountpoint"
echo "mounted: $mountpoint (unmount with: $bin unmount $mountpoint)"
