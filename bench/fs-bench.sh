#!/usr/bin/env bash
# Side-by-side filesystem benchmark: cdsfs next to gocryptfs, cryfs, a plain FUSE passthrough
# (bindfs) and a native directory, all on the same disk, in one run, with one table of absolute
# figures and cdsfs's ratio to each peer, checked against the targets of the performance issue.
#
# Usage: bench/fs-bench.sh [--rounds N] [--quick] [--only WORKLOADS] [--systems SYSTEMS] [--dir DIR]
#   --rounds N        rounds (default 3). A round runs every workload on every system, the order of
#                     the systems rotated by one from round to round; the best figure of each is kept
#                     (for peak memory, the highest).
#   --quick           small sizes (64 MiB files, the 2k-file fs/ part of the tree, 1k/2k/5k files
#                     in a directory), 1 round: a sanity check of the script, not a measurement.
#   --only WORKLOADS  comma-separated subset of: seq rand tree sync scale mem (default: all)
#   --systems LIST    comma-separated subset of: native bindfs gocryptfs cryfs cdsfs (default: all)
#   --dir DIR         work directory on a real disk (default /var/tmp/cdsfs-fs-bench)
#   --rev REV         benchmark the cdsfs of commit REV (exported with git archive, built under
#                     .build-bench-fs-rev) instead of the working tree
#
# Workloads (each step starts cold: unmount, sync, drop the page cache, mount; a step that writes
# ends durable: sync, unmount, and the wait for the daemon to exit, then sync again; for cdsfs the
# unmount is the final commit):
#   seq    write 1 GiB of random data with dd bs=1M (conv=fsync), and with bs=128K into a new
#          filesystem; read the second file back with bs=1M
#   rand   fio, 4 KiB random reads then random writes (end_fsync) in a 1 GiB file
#   tree   extract Debian's linux-source-6.1 tarball (decompressed first, ~84k entries), ls -lR,
#          md5sum every file, rm -rf; the mount's peak resident memory during the extract
#   sync   cdsfs: two devices mounted through `cdsfs serve` on 127.0.0.1; bytes the server receives
#          and seconds until the other device sees it, for a 1-byte change in a 1 GiB file and for
#          1 KiB inserted at the start of a 50 MB file saved anew (temp file, fsync, rename); seconds
#          until a new small file (fsync'd) appears on the other device.
#          gocryptfs: the same two changes sent by `rsync --no-whole-file` of its ciphertext folder.
#   scale  a directory filled with 1k, 10k, 100k empty files (each in a new filesystem), one
#          create+stat at a time: µs per pair over the last 1000, and the seconds to fill, durable
#   mem    the mount's peak resident memory (VmHWM) while writing a 4 GiB file
#
# Needs root and /dev/fuse. Installs what is missing (gocryptfs cryfs bindfs fio fuse3 rsync
# xz-utils linux-source-6.1) with apt-get. Builds cdsfs in release under .build-bench-fs.
# Prints the table (markdown) and leaves it, the raw figures and the machine's description in
# bench/results/fs-<time>/. Exits 1 if a target is missed. Unmounts everything and stops the
# servers it started on any exit.
set -uo pipefail
# The whole script is one block: bash reads it completely before running, so that editing the file
# during a run (which takes hours) cannot change the run.
{
cd "$(dirname "$0")/.."
repo=$PWD

# ---------------------------------------------------------------- options
rounds=3
quick=0
only="seq,rand,tree,sync,scale,mem"
systems_arg="native,bindfs,gocryptfs,cryfs,cdsfs"
W=/var/tmp/cdsfs-fs-bench
rounds_given=0
rev=""
while (($#)); do
    case "$1" in
        --rounds) rounds=$2; rounds_given=1; shift 2 ;;
        --rounds=*) rounds=${1#*=}; rounds_given=1; shift ;;
        --quick) quick=1; shift ;;
        --only) only=$2; shift 2 ;;
        --only=*) only=${1#*=}; shift ;;
        --systems) systems_arg=$2; shift 2 ;;
        --systems=*) systems_arg=${1#*=}; shift ;;
        --dir) W=$2; shift 2 ;;
        --dir=*) W=${1#*=}; shift ;;
        --rev) rev=$2; shift 2 ;;
        --rev=*) rev=${1#*=}; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "fs-bench: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
((quick && !rounds_given)) && rounds=1
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "fs-bench: --rounds wants a positive number" >&2; exit 2; }
IFS=, read -r -a workloads <<<"$only"
IFS=, read -r -a systems <<<"$systems_arg"
for w in "${workloads[@]}"; do
    [[ " seq rand tree sync scale mem " == *" $w "* ]] || { echo "fs-bench: unknown workload $w" >&2; exit 2; }
done
for s in "${systems[@]}"; do
    [[ " native bindfs gocryptfs cryfs cdsfs " == *" $s "* ]] || { echo "fs-bench: unknown system $s" >&2; exit 2; }
done
[[ $(id -u) == 0 ]] || { echo "fs-bench: run as root (drop_caches, mounts)" >&2; exit 2; }
[[ -c /dev/fuse ]] || { echo "fs-bench: /dev/fuse is missing" >&2; exit 2; }

if ((quick)); then
    SEQ_MB=64; RAND_MB=64; RAND_IO_MB=4; MEM_MB=256; SYNC_BIG_MB=64; SYNC_DOC_MB=8
    SCALE=(1000 2000 5000); TREE_PART=linux-source-6.1/fs
else
    SEQ_MB=1024; RAND_MB=1024; RAND_IO_MB=64; MEM_MB=4096; SYNC_BIG_MB=1024; SYNC_DOC_MB=50
    SCALE=(1000 10000 100000); TREE_PART=
fi
APPEAR_SAMPLES=5
PASSWORD=fs-bench-password

# Progress goes to the script's standard error (fd 4), also from steps whose stderr is the error log.
exec 4>&2
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&4; }
die() { log "fs-bench: $*"; exit 2; }

# ---------------------------------------------------------------- cleanup (always)
SHM=/dev/shm/cdsfs-fs-bench.$$
CDSFS=""
STEP=setup
ROUND=0
STEP_PID=""
# kill_tree PID: the process and everything it started, children first.
kill_tree() {
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$child"; done
    kill -TERM "$1" 2>/dev/null
}
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    [[ -n "$STEP_PID" ]] && { kill_tree "$STEP_PID"; wait "$STEP_PID" 2>/dev/null; }
    for mnt in "$W"/mnt/*; do
        [[ -d "$mnt" ]] || continue
        force_unmount "$mnt"
    done
    stop_servers
    # Mount points are only ever rmdir'ed: a mount that would not go keeps its contents.
    rmdir "$W"/mnt/* "$W/mnt" 2>/dev/null
    rm -rf "$SHM" "$W/back" "$W/run"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# is_mounted MNT: in the mount table (also a dead FUSE mount, which `mountpoint` does not see).
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts; }

# wait_gone PID SECONDS: true once the process is gone.
wait_gone() {
    local pid=$1 n=$(($2 * 50))
    while kill -0 "$pid" 2>/dev/null; do
        ((n-- > 0)) || return 1
        sleep 0.02
    done
}

# The servers a step started (their pids in $W/run/servers) stop.
stop_servers() {
    [[ -f "$W/run/servers" ]] || return 0
    local pid
    while read -r pid; do
        [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && { kill -TERM "$pid"; wait_gone "$pid" 20 || kill -KILL "$pid"; }
    done <"$W/run/servers"
    rm -f "$W/run/servers"
}

# force_unmount MNT: whatever is mounted there goes, and the daemon we started for it ends.
force_unmount() {
    local mnt=$1 pid=""
    [[ -f "$W/run/$(basename "$mnt").pid" ]] && pid=$(cat "$W/run/$(basename "$mnt").pid")
    if is_mounted "$mnt"; then
        if [[ -n "$CDSFS" && $(findmnt -n -o FSTYPE --target "$mnt" 2>/dev/null) == fuse.cdsfs ]]; then
            timeout 600 "$CDSFS" unmount "$mnt" 2>/dev/null
        fi
        local tries=0
        while is_mounted "$mnt" && ((tries++ < 10)); do
            fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || sleep 1
        done
        is_mounted "$mnt" && log "fs-bench: could not unmount $mnt"
    fi
    if [[ -n "$pid" ]]; then
        wait_gone "$pid" 120 || { kill -TERM "$pid" 2>/dev/null; wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null; }
        rm -f "$W/run/$(basename "$mnt").pid"
    fi
}

# ---------------------------------------------------------------- dependencies, build, data
install_missing() {
    local need=()
    command -v gocryptfs >/dev/null || need+=(gocryptfs)
    command -v cryfs >/dev/null || need+=(cryfs)
    command -v bindfs >/dev/null || need+=(bindfs)
    command -v fio >/dev/null || need+=(fio)
    command -v fusermount3 >/dev/null || need+=(fuse3)
    command -v rsync >/dev/null || need+=(rsync)
    command -v xz >/dev/null || need+=(xz-utils)
    command -v perl >/dev/null || need+=(perl)
    command -v findmnt >/dev/null || need+=(util-linux)
    [[ -f /usr/src/linux-source-6.1.tar.xz ]] || need+=(linux-source-6.1)
    ((${#need[@]})) || return 0
    log "installing ${need[*]} (apt-get)"
    apt-get update -q >&2 || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2 \
        || die "apt-get install ${need[*]} failed"
}
install_missing

if [[ -n "$rev" ]]; then
    commit=$(git rev-parse --verify "$rev^{commit}") || die "--rev $rev is not a commit"
    src="$repo/.build-bench-fs-src"
    log "building cdsfs $rev (release, exported to $src)…"
    rm -rf "$src" && mkdir -p "$src"
    git archive "$commit" | tar -x -C "$src"
    [[ -f Package.resolved && ! -f "$src/Package.resolved" ]] && cp Package.resolved "$src/"
    (cd "$src" && swift build -c release --scratch-path "$repo/.build-bench-fs-rev" --product cdsfs >&2) || die "the cdsfs build failed"
    CDSFS="$(cd "$src" && swift build -c release --scratch-path "$repo/.build-bench-fs-rev" --show-bin-path)/cdsfs"
    cdsfs_version="$(git rev-parse --short "$commit") (--rev $rev)"
else
    log "building cdsfs (release, .build-bench-fs)…"
    swift build -c release --scratch-path .build-bench-fs --product cdsfs >&2 || die "the cdsfs build failed"
    CDSFS="$(swift build -c release --scratch-path .build-bench-fs --show-bin-path)/cdsfs"
    cdsfs_version="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources Package.swift || echo ' + uncommitted changes')"
fi
[[ -x "$CDSFS" ]] || die "no cdsfs binary at $CDSFS"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
R="$repo/bench/results/fs-$stamp"
mkdir -p "$R/logs" "$SHM"
RAW="$R/raw.tsv"
: >"$RAW"
# Stale state of an interrupted earlier run: its mounts go first.
if [[ -d "$W/mnt" ]]; then for mnt in "$W"/mnt/*; do [[ -d "$mnt" ]] && force_unmount "$mnt"; done; fi
rm -rf "$W/back" "$W/run"
rmdir "$W"/mnt/* 2>/dev/null
mkdir -p "$W/back" "$W/mnt" "$W/run"
[[ $(stat -f -c %T "$W") != tmpfs ]] || die "$W is on tmpfs: give --dir on a disk"

has() { [[ " ${workloads[*]} " == *" $1 "* ]]; }
max_mb=$SEQ_MB
((RAND_MB > max_mb)) && max_mb=$RAND_MB
((SYNC_BIG_MB > max_mb)) && max_mb=$SYNC_BIG_MB
RND="$SHM/random"
if has seq || has rand || has sync; then
    log "random source: $max_mb MiB in $SHM"
    head -c "$((max_mb << 20))" /dev/urandom >"$RND"
fi
TAR="$SHM/linux-source.tar"
if has tree; then
    log "decompressing linux-source-6.1 into $SHM${TREE_PART:+ (only $TREE_PART)}…"
    if [[ -n "$TREE_PART" ]]; then
        mkdir -p "$SHM/part"
        tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$SHM/part" "$TREE_PART"
        tar -cf "$TAR" -C "$SHM/part" "${TREE_PART%%/*}"
        rm -rf "$SHM/part"
    else
        xz -dc /usr/src/linux-source-6.1.tar.xz >"$TAR"
    fi
    TREE_TOP=$(tar -tf "$TAR" | head -1)
    TREE_TOP=${TREE_TOP%%/*}
    TREE_ENTRIES=$(tar -tf "$TAR" | wc -l)
fi

# ---------------------------------------------------------------- the five systems
# Each system's state is derived from its name, so that a step can run in a subshell.
back_of() { echo "$W/back/$1"; }
mnt_of() { if [[ $1 == native ]]; then echo "$W/back/native"; else echo "$W/mnt/$1"; fi; }
export CRYFS_FRONTEND=noninteractive CRYFS_NO_UPDATE_CHECK=true CRYFS_LOCAL_STATE_DIR="$W/back/.cryfs-state"

# fs_new SYS: an empty filesystem (created, not mounted).
fs_new() {
    local sys=$1 back
    back=$(back_of "$sys")
    fs_destroy "$sys"
    mkdir -p "$back"
    case $sys in
        native|bindfs) ;;
        gocryptfs) gocryptfs -init -q -extpass "echo $PASSWORD" "$back" >/dev/null ;;
        cryfs) ;;  # created by its first mount
        cdsfs) rmdir "$back"; "$CDSFS" init --home "$back" >/dev/null ;;
    esac
}

# fs_mount SYS: mounted at mnt_of SYS, daemon pid in $W/run/SYS.pid.
fs_mount() {
    local sys=$1 back mnt
    back=$(back_of "$sys")
    mnt=$(mnt_of "$sys")
    [[ $sys == native ]] && return 0
    mkdir -p "$mnt"
    case $sys in
        bindfs) bindfs "$back" "$mnt" ;;
        gocryptfs) gocryptfs -q -nosyslog -extpass "echo $PASSWORD" "$back" "$mnt" ;;
        cryfs) echo "$PASSWORD" | cryfs --allow-replaced-filesystem "$back" "$mnt" >/dev/null 2>>"$R/logs/cryfs.log" ;;
        cdsfs*) "$CDSFS" mount --home "$back" "$mnt" ;;
    esac || return 1
    is_mounted "$mnt" || return 1
    daemon_pid "$sys" >"$W/run/$sys.pid"
}

# The process serving a mount: cdsfs records it; the peers are found by their mount point argument.
daemon_pid() {
    local sys=$1 mnt name pid
    if [[ $sys == cdsfs* ]]; then cat "$(back_of "$sys")/mount.pid"; return; fi
    mnt=$(mnt_of "$sys")
    name=$sys
    for pid in $(pgrep -x "$name"); do
        if tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$mnt"; then echo "$pid"; return; fi
    done
    echo "fs-bench: no $sys process serves $mnt" >&2
    return 1
}

# unmount_command SYS: the unmount command has returned. cdsfs's returns once the daemon has made
# its final commit and exited; fusermount3's at once, while the daemon may take a second or two to
# exit (bindfs, gocryptfs and cryfs all do): that wait is left out of the timings (see `reap`).
unmount_command() {
    local sys=$1 mnt
    [[ $sys == native ]] && return 0
    mnt=$(mnt_of "$sys")
    is_mounted "$mnt" || return 0
    if [[ $sys == cdsfs* ]]; then
        "$CDSFS" unmount "$mnt" || return 1
    else
        local tries=0
        until fusermount3 -u "$mnt" 2>/dev/null; do
            ((++tries < 50)) || { fusermount3 -u "$mnt"; return 1; }
            sleep 0.1
        done
    fi
}

# reap SYS: the daemon of an unmounted SYS has exited.
reap() {
    local sys=$1 pid
    pid=$(cat "$W/run/$sys.pid" 2>/dev/null || true)
    [[ -z "$pid" ]] || wait_gone "$pid" 600 || { echo "fs-bench: $sys daemon $pid did not exit" >&2; return 1; }
    rm -f "$W/run/$sys.pid"
}

fs_unmount() {
    unmount_command "$1" || return 1
    reap "$1"
}

fs_destroy() {
    local sys=$1
    force_unmount "$(mnt_of "$sys")"
    [[ $sys == cdsfs && -f "$(back_of cdsfs)/mount.log" ]] && cp "$(back_of cdsfs)/mount.log" "$R/logs/cdsfs-$STEP.log"
    rm -rf "$(back_of "$sys")"
    [[ $sys == cryfs ]] && rm -rf "$CRYFS_LOCAL_STATE_DIR"
    return 0
}

cold() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# A write step ends when the data is durable: sync, the unmount command (for cdsfs: the final
# commit), sync. T_END is that moment; the step then waits for the daemon to exit, untimed.
durable_end() {
    local sys=$1
    sync
    if [[ $sys != native ]]; then
        unmount_command "$sys" || return 1
        sync
    fi
    T_END=$EPOCHREALTIME
    reap "$sys"
}

# The cold start of a step: unmounted, page cache dropped, mounted.
remount_cold() {
    fs_unmount "$1" || return 1
    cold
    fs_mount "$1"
}

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }'; }
took() { awk -v a="$1" -v b="$T_END" 'BEGIN { printf "%.4f", b - a }'; }  # from $1 to the durable end
calc() { awk "BEGIN { printf \"%.6g\", $1 }"; }
record() { printf '%s\t%s\t%s\t%s\n' "$ROUND" "$1" "$2" "$3" >>"$RAW"; log "  $1 $2 = $3"; }

# Peak resident memory of a daemon: VmHWM, sampled until the process ends. Sets WATCHER (a child of
# the calling shell, so that it can `wait` for it).
memwatch_start() {
    local pid=$1 out=$2
    (
        peak=0
        while [[ -r /proc/$pid/status ]]; do
            v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
            [[ -n "$v" ]] && ((v > peak)) && { peak=$v; echo "$peak" >"$out"; }
            sleep 0.1
        done
    ) >/dev/null 2>&1 &
    WATCHER=$!
}

# ---------------------------------------------------------------- workloads (one system each)
w_seq() {
    local sys=$1 mnt t0 s
    mnt=$(mnt_of "$sys")
    fs_new "$sys"; cold; fs_mount "$sys"
    t0=$(now)
    dd if="$RND" of="$mnt/seq-1m" bs=1M count="$SEQ_MB" iflag=fullblock conv=fsync status=none
    durable_end "$sys"
    s=$(took "$t0")
    record "$sys" write_1m "$(calc "$SEQ_MB * 1.048576 / $s")"

    fs_new "$sys"; cold; fs_mount "$sys"
    t0=$(now)
    dd if="$RND" of="$mnt/seq-128k" bs=128K count="$((SEQ_MB * 8))" iflag=fullblock conv=fsync status=none
    durable_end "$sys"
    s=$(took "$t0")
    record "$sys" write_128k "$(calc "$SEQ_MB * 1.048576 / $s")"

    cold; fs_mount "$sys"
    t0=$(now)
    dd if="$mnt/seq-128k" of=/dev/null bs=1M status=none
    s=$(since "$t0")
    record "$sys" read_seq "$(calc "$SEQ_MB * 1.048576 / $s")"
    [[ $(stat -c %s "$mnt/seq-128k") == $((SEQ_MB << 20)) ]] || { echo "seq: wrong size read back" >&2; return 1; }
    fs_unmount "$sys"
    fs_destroy "$sys"
}

w_rand() {
    local sys=$1 mnt t0 s ops=$((RAND_IO_MB * 256))
    mnt=$(mnt_of "$sys")
    fs_new "$sys"; cold; fs_mount "$sys"
    dd if="$RND" of="$mnt/rand" bs=1M count="$RAND_MB" iflag=fullblock conv=fsync status=none
    durable_end "$sys"
    local common=(--name=rand --filename="$mnt/rand" --size="${RAND_MB}m" --io_size="${RAND_IO_MB}m"
                  --bs=4k --ioengine=psync --iodepth=1 --randrepeat=0 --norandommap --output-format=json)
    cold; fs_mount "$sys"
    t0=$(now)
    fio "${common[@]}" --rw=randread --output="$R/logs/fio-read-$STEP.json" >/dev/null
    s=$(since "$t0")
    record "$sys" randread "$(calc "$ops / $s")"

    remount_cold "$sys"
    t0=$(now)
    fio "${common[@]}" --rw=randwrite --refill_buffers --end_fsync=1 --output="$R/logs/fio-write-$STEP.json" >/dev/null
    durable_end "$sys"
    s=$(took "$t0")
    record "$sys" randwrite "$(calc "$ops / $s")"
    fs_destroy "$sys"
}

w_tree() {
    local sys=$1 mnt t0 s peak_file="$W/run/peak"
    mnt=$(mnt_of "$sys")
    fs_new "$sys"; cold; fs_mount "$sys"
    rm -f "$peak_file"
    [[ $sys != native ]] && memwatch_start "$(cat "$W/run/$sys.pid")" "$peak_file"
    t0=$(now)
    tar -xf "$TAR" -C "$mnt"
    durable_end "$sys"
    s=$(took "$t0")
    record "$sys" extract "$s"
    if [[ $sys != native ]]; then
        wait "$WATCHER"
        record "$sys" mem_tree "$(calc "$(cat "$peak_file") / 1024")"
    fi

    cold; fs_mount "$sys"
    t0=$(now)
    ls -lR "$mnt/$TREE_TOP" >/dev/null
    record "$sys" lslr "$(since "$t0")"

    remount_cold "$sys"
    local n
    t0=$(now)
    n=$(cd "$mnt" && find "$TREE_TOP" -type f -print0 | xargs -0 md5sum | wc -l)
    s=$(since "$t0")
    record "$sys" readall "$s"
    log "  ($n files read)"

    remount_cold "$sys"
    t0=$(now)
    rm -rf "${mnt:?}/$TREE_TOP"
    durable_end "$sys"
    record "$sys" rm "$(took "$t0")"
    fs_destroy "$sys"
}

w_scale() {
    local sys=$1 mnt t0 n s
    mnt=$(mnt_of "$sys")
    for n in "${SCALE[@]}"; do
        fs_new "$sys"; cold; fs_mount "$sys"
        mkdir "$mnt/dir"
        t0=$(now)
        s=$(perl "$repo/bench/fs-bench-create.pl" "$mnt/dir" "$n" 1000)
        record "$sys" "scale_$n" "$(calc "$s / ($n < 1000 ? $n : 1000) * 1000000")"
        durable_end "$sys"
        record "$sys" "scale_fill_$n" "$(took "$t0")"
        fs_destroy "$sys"
    done
}

w_mem() {
    local sys=$1 mnt t0 s peak_file="$W/run/peak"
    [[ $sys == native ]] && return 0
    mnt=$(mnt_of "$sys")
    fs_new "$sys"; cold; fs_mount "$sys"
    rm -f "$peak_file"
    memwatch_start "$(cat "$W/run/$sys.pid")" "$peak_file"
    head -c "$((MEM_MB << 20))" /dev/urandom | dd of="$mnt/big" bs=1M iflag=fullblock conv=fsync status=none
    durable_end "$sys"
    wait "$WATCHER"
    record "$sys" mem_big "$(calc "$(cat "$peak_file") / 1024")"
    fs_destroy "$sys"
}

# ---- sync: cdsfs through its server; gocryptfs through rsync of its ciphertext
server_bytes_in() {  # server_bytes_in LOG FROM_OFFSET [ACTOR_PREFIX]: sum of request bodies
    tail -c +"$(($2 + 1))" "$1" | awk -v who="${3:-}" '
        / in [0-9]+ B out / {
            if (who != "" && index($0, "actor " who) == 0) next
            for (i = 1; i < NF; i++) if ($i == "in" && $(i + 2) == "B") { sum += $(i + 1); break }
        }
        END { printf "%d\n", sum }'
}
wait_quiet() {  # the server's log has not grown for 2 s (at most 300 s)
    local log=$1 last=-1 size n=0
    while :; do
        size=$(stat -c %s "$log")
        [[ $size == "$last" ]] && return 0
        last=$size
        ((n++ < 150)) || return 1
        sleep 2
    done
}
wait_for() {  # wait_for SECONDS COMMAND…: polls every 10 ms
    local deadline
    deadline=$(awk -v t="$EPOCHREALTIME" -v s="$1" 'BEGIN { printf "%.3f", t + s }')
    shift
    until "$@"; do
        awk -v t="$EPOCHREALTIME" -v d="$deadline" 'BEGIN { exit !(t > d) }' && return 1
        sleep 0.01
    done
}
size_is() { [[ -e "$1" && $(stat -c %s "$1" 2>/dev/null) == "$2" ]]; }
byte_is() { [[ $(dd if="$1" bs=1 skip="$2" count=1 status=none 2>/dev/null | od -An -tu1 | tr -d ' ') == "$3" ]]; }
exists() { [[ -e "$1" ]]; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
median() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

w_sync() {
    case $1 in
        cdsfs) sync_cdsfs ;;
        gocryptfs) sync_rsync gocryptfs ;;
        *) return 0 ;;
    esac
}

sync_cdsfs() {
    local a b port url srv="$W/back/sync-server" slog="$W/back/sync-server.log" ma mb bid aid pid t0 s mark
    a=$(back_of cdsfs-a); b=$(back_of cdsfs-b); ma=$(mnt_of cdsfs-a); mb=$(mnt_of cdsfs-b)
    rm -rf "$a" "$b" "$srv" "$slog"
    mkdir -p "$ma" "$mb"
    for _ in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 20000))
        "$CDSFS" serve --store "$srv" --listen "127.0.0.1:$port" >"$slog" 2>&1 &
        pid=$!
        echo "$pid" >>"$W/run/servers"
        if wait_for 10 port_open "$port"; then break; fi
        kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
    done
    [[ -n "$pid" ]] || { echo "sync: the server did not start" >&2; return 1; }
    url="http://127.0.0.1:$port"
    aid=$("$CDSFS" init --home "$a" | tail -1)
    "$CDSFS" remote add --home "$a" "$url"
    bid=$("$CDSFS" init --home "$b" --remote "$url" | tail -1)
    "$CDSFS" group add --home "$a" "$bid" >/dev/null
    "$CDSFS" sync --home "$b" >/dev/null
    fs_mount cdsfs-a; fs_mount cdsfs-b

    # 1. one byte changed in the middle of a big file
    local big=$((SYNC_BIG_MB << 20)) off old new
    off=$((big / 2 + 12345))
    dd if="$RND" of="$ma/big" bs=1M count="$SYNC_BIG_MB" iflag=fullblock conv=fsync status=none
    wait_for 900 size_is "$mb/big" "$big" || { echo "sync: the big file did not reach B" >&2; return 1; }
    wait_quiet "$slog"
    old=$(dd if="$ma/big" bs=1 skip="$off" count=1 status=none | od -An -tu1 | tr -d ' ')
    new=$(((old + 1) % 256))
    byte_is "$mb/big" "$off" "$old" || { echo "sync: B reads another byte than A" >&2; return 1; }
    mark=$(stat -c %s "$slog")
    t0=$(now)
    printf "\\$(printf %03o "$new")" | dd of="$ma/big" bs=1 seek="$off" conv=notrunc,fsync status=none
    wait_for 300 byte_is "$mb/big" "$off" "$new" || { echo "sync: B never saw the changed byte" >&2; return 1; }
    s=$(since "$t0")
    wait_quiet "$slog"
    record cdsfs sync_byte_bytes "$(server_bytes_in "$slog" "$mark")"
    record cdsfs sync_byte_bytes_a "$(server_bytes_in "$slog" "$mark" "${aid:0:16}")"
    record cdsfs sync_byte_s "$s"

    # 2. 1 KiB inserted at the start of a file, saved as editors do: new file, fsync, rename
    local doc=$((SYNC_DOC_MB * 1000000))
    head -c "$doc" "$RND" | dd of="$ma/doc" bs=1M iflag=fullblock conv=fsync status=none
    wait_for 300 size_is "$mb/doc" "$doc" || { echo "sync: the document did not reach B" >&2; return 1; }
    wait_quiet "$slog"
    mark=$(stat -c %s "$slog")
    t0=$(now)
    { head -c 1024 /dev/urandom; cat "$ma/doc"; } | dd of="$ma/.doc.swp" bs=1M iflag=fullblock conv=fsync status=none
    mv "$ma/.doc.swp" "$ma/doc"
    sync -f "$ma/doc"
    wait_for 300 size_is "$mb/doc" "$((doc + 1024))" || { echo "sync: B never saw the saved document" >&2; return 1; }
    s=$(since "$t0")
    wait_quiet "$slog"
    record cdsfs sync_insert_bytes "$(server_bytes_in "$slog" "$mark")"
    record cdsfs sync_insert_bytes_a "$(server_bytes_in "$slog" "$mark" "${aid:0:16}")"
    record cdsfs sync_insert_s "$s"

    # 3. a new small file, written and fsync'd on A, until B's `stat` finds it
    local i samples=()
    for ((i = 1; i <= APPEAR_SAMPLES; i++)); do
        [[ -e "$mb/new-$i" ]] && { echo "sync: new-$i exists before it was written" >&2; return 1; }
        t0=$(now)
        echo "note $i" | dd of="$ma/new-$i" conv=fsync status=none
        wait_for 60 exists "$mb/new-$i" || { echo "sync: new-$i never appeared on B" >&2; samples+=(60); continue; }
        samples+=("$(since "$t0")")
        sleep 0.5
    done
    log "  appear samples: ${samples[*]}"
    record cdsfs sync_appear_s "$(echo "${samples[*]}" | median)"
    record cdsfs sync_appear_max_s "$(echo "${samples[*]}" | tr ' ' '\n' | sort -g | tail -1)"
    # …and without fsync: the commit comes at most commit_interval (5 s) later
    t0=$(now)
    echo "plain" >"$ma/plain"
    wait_for 60 exists "$mb/plain" && record cdsfs sync_appear_nofsync_s "$(since "$t0")"

    fs_unmount cdsfs-b; fs_unmount cdsfs-a
    cp "$a/mount.log" "$R/logs/sync-a-$STEP.log"; cp "$b/mount.log" "$R/logs/sync-b-$STEP.log"; cp "$slog" "$R/logs/sync-server-$STEP.log"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null
    rm -rf "$a" "$b" "$srv" "$slog"
}

# The same two changes for a peer whose ciphertext folder is sent with rsync's delta algorithm.
sync_rsync() {
    local sys=$1 mnt back dest="$W/back/rsync-dest" t0 s out off old new
    mnt=$(mnt_of "$sys"); back=$(back_of "$sys")
    fs_new "$sys"; rm -rf "$dest"; mkdir -p "$dest"; fs_mount "$sys"
    local big=$((SYNC_BIG_MB << 20)) doc=$((SYNC_DOC_MB * 1000000))
    dd if="$RND" of="$mnt/big" bs=1M count="$SYNC_BIG_MB" iflag=fullblock conv=fsync status=none
    head -c "$doc" "$RND" | dd of="$mnt/doc" bs=1M iflag=fullblock conv=fsync status=none
    durable_end "$sys"
    rsync -a "$back/" "$dest/"
    off=$((big / 2 + 12345))
    fs_mount "$sys"
    cold
    old=$(dd if="$mnt/big" bs=1 skip="$off" count=1 status=none | od -An -tu1 | tr -d ' ')
    new=$(((old + 1) % 256))
    t0=$(now)
    printf "\\$(printf %03o "$new")" | dd of="$mnt/big" bs=1 seek="$off" conv=notrunc,fsync status=none
    sync
    out=$(rsync -a --no-whole-file --stats "$back/" "$dest/")
    s=$(since "$t0")
    record "$sys" sync_byte_bytes "$(awk -F': ' '/^Total bytes sent/ { gsub(/,/, "", $2); print $2 + 0 }' <<<"$out")"
    record "$sys" sync_byte_s "$s"
    cold
    t0=$(now)
    { head -c 1024 /dev/urandom; cat "$mnt/doc"; } | dd of="$mnt/.doc.swp" bs=1M iflag=fullblock conv=fsync status=none
    mv "$mnt/.doc.swp" "$mnt/doc"
    sync
    out=$(rsync -a --no-whole-file --delete --stats "$back/" "$dest/")
    s=$(since "$t0")
    record "$sys" sync_insert_bytes "$(awk -F': ' '/^Total bytes sent/ { gsub(/,/, "", $2); print $2 + 0 }' <<<"$out")"
    record "$sys" sync_insert_s "$s"
    rm -rf "$dest"
    fs_destroy "$sys"
}

# ---------------------------------------------------------------- the machine
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu: $(nproc) × $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), flags: $(grep -o -w -E 'aes|sha_ni|avx512f' /proc/cpuinfo | sort -u | tr '\n' ' ')"
    echo "memory: $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "kernel: $(uname -r)"
    echo "disk: $(findmnt -n -o SOURCE,FSTYPE --target "$W") under $W"
    echo "cdsfs: $cdsfs_version, release build, $(swift --version 2>&1 | grep -o 'Swift version [0-9.]*' | head -1)"
    echo "gocryptfs: $(gocryptfs --version 2>&1 | head -1)"
    echo "cryfs: $(cryfs --version 2>&1 | grep -o 'Version [0-9.]*' | head -1), default settings (xchacha20-poly1305, 16 KiB blocks)"
    echo "bindfs: $(bindfs --version 2>&1 | head -1)"
    echo "fio: $(fio --version)"
    echo "rounds: $rounds$( ((quick)) && echo ' (quick sizes)')"
} >"$R/machine.txt"
cat "$R/machine.txt" >&2

# ---------------------------------------------------------------- run
failures=0
for ((round = 1; round <= rounds; round++)); do
    ROUND=$round
    # The order of systems rotates by one each round.
    order=()
    for ((i = 0; i < ${#systems[@]}; i++)); do order+=("${systems[(i + round - 1) % ${#systems[@]}]}"); done
    for w in "${workloads[@]}"; do
        log "round $round/$rounds, $w: ${order[*]}"
        for sys in "${order[@]}"; do
            STEP="$w-$sys-r$round"
            # A subshell with -e: the first failing command ends the step (not in an `if`, where
            # bash would ignore -e).
            # In the background, so that a signal to this script is handled at once (the trap stops it).
            ( set -e; "w_$w" "$sys" ) 2>>"$R/logs/errors.log" &
            STEP_PID=$!
            wait "$STEP_PID"
            status=$?
            STEP_PID=""
            if ((status != 0)); then
                log "  $sys: $w FAILED (see $R/logs/errors.log)"
                echo "--- $STEP failed" >>"$R/logs/errors.log"
                failures=$((failures + 1))
                for mnt in "$W"/mnt/*; do [[ -d "$mnt" ]] && force_unmount "$mnt"; done
                stop_servers
                for f in "$W"/back/*/mount.log "$W"/back/*.log; do
                    [[ -f "$f" ]] && cp "$f" "$R/logs/failed-$STEP-$(basename "$(dirname "$f")")-$(basename "$f")"
                done
                rm -rf "$W/back"/*
            fi
        done
    done
done

# ---------------------------------------------------------------- the table
# metric|label|direction (hi: more is better, best = max; lo: less is better, best = min;
# peak: less is better, the highest of the rounds is kept)|format|target
metrics=$(cat <<EOF
write_1m|seq write ${SEQ_MB} MiB, bs=1M (MB/s)|hi|mbs|ratio gocryptfs>=1.5 cryfs>=3
write_128k|seq write ${SEQ_MB} MiB, bs=128K (MB/s)|hi|mbs|ratio gocryptfs>=1.5 cryfs>=3
read_seq|seq read ${SEQ_MB} MiB, bs=1M (MB/s)|hi|mbs|ratio gocryptfs>=1.0 cryfs>=3
randread|random 4 KiB reads, ${RAND_MB} MiB file (IOPS)|hi|int|ratio gocryptfs>=1.0
randwrite|random 4 KiB writes + fsync (IOPS)|hi|int|ratio gocryptfs>=1.0
extract|extract ${TREE_ENTRIES:-?} entries (s)|lo|sec|ratio gocryptfs>=1.0
lslr|ls -lR (s)|lo|sec|ratio gocryptfs>=1.0
readall|md5sum every file (s)|lo|sec|ratio gocryptfs>=1.0
rm|rm -rf (s)|lo|sec|ratio gocryptfs>=1.0
sync_byte_bytes|sync: 1 byte changed in ${SYNC_BIG_MB} MiB, bytes sent|lo|bytes|abs<2097152
sync_byte_s|sync: 1 byte changed, seconds until on device B|lo|sec|
sync_insert_bytes|sync: 1 KiB inserted at the start of ${SYNC_DOC_MB} MB, bytes sent|lo|bytes|abs<4194304
sync_insert_s|sync: 1 KiB inserted, seconds until on device B|lo|sec|
sync_appear_s|sync: new small file (fsync'd) on device B, median s|lo|sec|abs<2
sync_appear_max_s|sync: new small file, slowest of ${APPEAR_SAMPLES} (s)|lo|sec|
sync_appear_nofsync_s|sync: new small file, no fsync (commit_interval 5 s) (s)|lo|sec|
scale_${SCALE[0]}|create+stat at ${SCALE[0]} files in a directory (µs each, last 1000)|lo|us|
scale_${SCALE[1]}|create+stat at ${SCALE[1]} files (µs each, last 1000)|lo|us|
scale_${SCALE[2]}|create+stat at ${SCALE[2]} files (µs each, last 1000)|lo|us|
scale_fill_${SCALE[2]}|fill a directory with ${SCALE[2]} files, durable (s)|lo|sec|
scale_growth|per-file cost at ${SCALE[2]} / at ${SCALE[0]}|lo|x|abs<=2
mem_big|peak RSS writing a ${MEM_MB} MiB file (MB)|peak|mb|abs<300
mem_tree|peak RSS extracting the tree (MB)|peak|mb|abs<300
EOF
)
# The best figure of each (system, metric) over the rounds, and the rounds that gave one.
best=$(awk -F'\t' -v spec="$metrics" -v first="scale_${SCALE[0]}" -v last="scale_${SCALE[2]}" '
    BEGIN { n = split(spec, lines, "\n"); for (i = 1; i <= n; i++) { split(lines[i], f, "|"); dir[f[1]] = f[3] } }
    {
        k = $2 SUBSEP $3; d = dir[$3]; count[k]++
        if (!(k in v)) v[k] = $4
        else if (d == "hi" || d == "peak") { if ($4 + 0 > v[k] + 0) v[k] = $4 }
        else if ($4 + 0 < v[k] + 0) v[k] = $4
        sys[$2] = 1
    }
    END {
        for (s in sys) if ((s SUBSEP first) in v && (s SUBSEP last) in v && v[s SUBSEP first] > 0) {
            v[s SUBSEP "scale_growth"] = v[s SUBSEP last] / v[s SUBSEP first]; count[s SUBSEP "scale_growth"] = count[s SUBSEP last]
        }
        for (k in v) { split(k, p, SUBSEP); printf "%s\t%s\t%s\t%d\n", p[1], p[2], v[k], count[k] }
    }' "$RAW")
printf '%s\n' "$best" >"$R/best.tsv"

table=$(awk -F'\t' -v spec="$metrics" -v rounds="$rounds" -v order="native bindfs gocryptfs cryfs cdsfs" '
    function fmt(x, how) {
        if (x == "") return "–"
        x = x + 0
        if (how == "mbs") return sprintf(x >= 100 ? "%.0f" : "%.1f", x)
        if (how == "int") return sprintf("%.0f", x)
        if (how == "sec") return sprintf(x >= 100 ? "%.0f" : (x >= 10 ? "%.1f" : "%.2f"), x)
        if (how == "us") return sprintf(x >= 100 ? "%.0f" : "%.1f", x)
        if (how == "mb") return sprintf("%.0f", x)
        if (how == "x") return sprintf("%.2f×", x)
        if (how == "bytes") {
            if (x >= 1048576) return sprintf("%.2f MiB", x / 1048576)
            if (x >= 1024) return sprintf("%.1f KiB", x / 1024)
            return sprintf("%d B", x)
        }
        return x
    }
    # How many times better cdsfs is than the peer (> 1: cdsfs faster, or smaller).
    function ratio(c, p, d) {
        if (c == "" || p == "" || c + 0 == 0 || p + 0 == 0) return ""
        return (d == "hi") ? c / p : p / c
    }
    { v[$1, $2] = $3; cnt[$1, $2] = $4 }
    END {
        ns = split(order, sy, " ")
        printf "| measure |"; for (i = 1; i <= ns; i++) printf " %s |", sy[i]
        printf " ×native | ×bindfs | ×gocryptfs | ×cryfs | target | result |\n"
        printf "|---|"; for (i = 1; i <= ns; i++) printf "---:|"; printf "---:|---:|---:|---:|---|---|\n"
        n = split(spec, lines, "\n")
        for (l = 1; l <= n; l++) {
            split(lines[l], f, "|"); m = f[1]
            any = 0; for (i = 1; i <= ns; i++) if ((sy[i], m) in v) any = 1
            if (!any) continue
            printf "| %s |", f[2]
            for (i = 1; i <= ns; i++) printf " %s |", fmt(v[sy[i], m], f[4])
            c = v["cdsfs", m]
            for (i = 1; i <= 4; i++) { r = ratio(c, v[sy[i], m], f[3]); printf " %s |", (r == "" ? "" : sprintf("%.2f", r)) }
            target = f[5]; result = ""; shown = ""
            if (target ~ /^ratio /) {
                nt = split(substr(target, 7), t, " "); result = "PASS"
                for (j = 1; j <= nt; j++) {
                    split(t[j], q, ">="); r = ratio(c, v[q[1], m], f[3])
                    shown = shown (j > 1 ? ", " : "") "≥ " q[2] "× " q[1]
                    if (r == "") result = "–"; else if (r < q[2] && result != "–") result = "FAIL"
                }
            } else if (target ~ /^abs/) {
                op = substr(target, 4, (substr(target, 5, 1) == "=") ? 2 : 1); lim = substr(target, 4 + length(op))
                shown = (op == "<" ? "< " : "≤ ") fmt(lim, f[4])
                if (c == "") result = "–"
                else result = ((op == "<" && c + 0 < lim + 0) || (op == "<=" && c + 0 <= lim + 0)) ? "PASS" : "FAIL"
            }
            printf " %s | %s |\n", shown, result
        }
    }' <<<"$best")
{
    echo "Best of $rounds round(s) (peak memory: highest of the rounds); ×PEER = how many times better"
    echo "cdsfs is than PEER (> 1: faster, or smaller). – = not measured."
    echo
    echo "$table"
} >"$R/table.md"
echo
cat "$R/machine.txt"
echo
cat "$R/table.md"
echo
echo "raw figures: $RAW; logs: $R/logs"
((failures)) && echo "$failures step(s) failed: see $R/logs/errors.log"
grep -q '| FAIL |' "$R/table.md" && exit 1
((failures)) && exit 1
exit 0
}
