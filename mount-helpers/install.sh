#!/bin/sh
# install.sh — builds cdsfs (release) and installs it with its mount helpers:
#
#     mount-helpers/install.sh [--prefix DIR] [--sbindir DIR] [--unitdir DIR] [--destdir DIR] [--no-build]
#
#   PREFIX/bin/cdsfs                  the binary                        (prefix: /usr/local)
#   SBINDIR/mount.cdsfs               mount(8) helper for type cdsfs     (sbindir: /sbin)
#   SBINDIR/mount.fuse.cdsfs          the same, for type fuse.cdsfs (mount(8) looks for mount.fuse.cdsfs)
#   UNITDIR/cdsfs@.service            systemd unit template             (unitdir: /etc/systemd/system)
#
# The helpers get the installed path of cdsfs written into them. --destdir stages everything under
# another root (for packaging). Run from anywhere; needs Swift, libfuse3-dev and libssl-dev to build.
set -eu

prefix=/usr/local
sbindir=/sbin
unitdir=/etc/systemd/system
destdir=
build=1

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --sbindir) sbindir=$2; shift 2 ;;
        --sbindir=*) sbindir=${1#*=}; shift ;;
        --unitdir) unitdir=$2; shift 2 ;;
        --unitdir=*) unitdir=${1#*=}; shift ;;
        --destdir) destdir=$2; shift 2 ;;
        --destdir=*) destdir=${1#*=}; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 1 ;;
    esac
done

here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."

if [ "$build" = 1 ]; then
    echo "building cdsfs (release) …"
    swift build -c release --product cdsfs
fi
binary="$(swift build -c release --show-bin-path)/cdsfs"
[ -x "$binary" ] || { echo "install.sh: no release build at $binary (drop --no-build)" >&2; exit 1; }

bindir="$prefix/bin"
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT

install -d "$destdir$bindir" "$destdir$sbindir" "$destdir$unitdir"
install -m 0755 "$binary" "$destdir$bindir/cdsfs"

sed "s|^CDSFS=.*|CDSFS=$bindir/cdsfs|" "$here/mount.cdsfs" > "$staging/mount.cdsfs"
install -m 0755 "$staging/mount.cdsfs" "$destdir$sbindir/mount.cdsfs"
ln -sf mount.cdsfs "$destdir$sbindir/mount.fuse.cdsfs"

sed "s|/usr/local/bin/cdsfs|$bindir/cdsfs|g" "$here/cdsfs@.service" > "$staging/cdsfs@.service"
install -m 0644 "$staging/cdsfs@.service" "$destdir$unitdir/cdsfs@.service"

echo "installed $destdir$bindir/cdsfs, $destdir$sbindir/mount.cdsfs (and mount.fuse.cdsfs), $destdir$unitdir/cdsfs@.service"
if [ -z "$destdir" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload
fi
