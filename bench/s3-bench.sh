#!/usr/bin/env bash
# Throughput of `cdsfs serve` on S3, against a plain parallel S3 upload of the same bytes, on the
# same one-node Ceph cluster (scripts/ceph.sh) in the same run.
#
#   bench/s3-bench.sh [--size-mib N] [--concurrency N] [--runs N]
#
# 1. A tree of mixed file sizes (default 1 GiB: 3×128 MiB, 16×16 MiB, 192×1 MiB, 2048×64 KiB,
#    8192×8 KiB of random bytes) is written into a cdsfs mount and committed.
# 2. cdsfs: `cdsfs serve --store s3://…` on a fresh bucket; `cdsfs sync` pushes the folder through it
#    (8 requests in flight: TreeTransfer's remote width, the server's 8 store threads).
# 3. plain S3: boto3, one put_object per file of the home's local store (exactly the objects, and so
#    the bytes and request count, that the push sends), from a pool of the same number of threads,
#    into another fresh bucket; and boto3 upload_file of the tree's own files (fewer, larger
#    requests), same pool, one request at a time per thread.
# Both rates are the tree's plaintext bytes over the wall time. Prints a table; best of --runs.
# Builds cdsfs in release mode under $SCRATCH (default .build-s3-release). Needs FUSE and python3's
# boto3 (pip install boto3). Starts Ceph if it is not running, and stops it after if it started it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
scratch=${SCRATCH:-$root/.build-s3-release}
size_mib=1024
concurrency=8
runs=1
while [[ $# -gt 0 ]]; do
    case $1 in
    --size-mib) size_mib=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "usage: $0 [--size-mib N] [--concurrency N] [--runs N]" >&2; exit 2 ;;
    esac
done
cd "$root"

python3 -c 'import boto3' 2>/dev/null || pip install -q boto3 >&2

echo "building (release, $scratch)…" >&2
swift build -c release --scratch-path "$scratch" --product cdsfs >&2
bin=$(swift build -c release --scratch-path "$scratch" --show-bin-path)
cdsfs="$bin/cdsfs"

started_ceph=""
if ! scripts/ceph.sh status >/dev/null 2>&1; then
    scripts/ceph.sh start >/dev/null
    started_ceph=1
fi
eval "$(scripts/ceph.sh env)"
export AWS_DEFAULT_REGION=us-east-1

work=$(mktemp -d "${TMPDIR:-/tmp}/cdsfs-s3bench-XXXXXX")
server=""
cleanup() {
    [[ -n $server ]] && kill "$server" 2>/dev/null || true
    mountpoint -q "$work/mnt" 2>/dev/null && { "$cdsfs" unmount "$work/mnt" >/dev/null 2>&1 || fusermount3 -u "$work/mnt" || true; }
    rm -rf "$work"
    [[ -n $started_ceph ]] && scripts/ceph.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

# --- The tree, scaled to --size-mib (the proportions of the 1 GiB default).
echo "making a ${size_mib} MiB tree of mixed file sizes…" >&2
python3 - "$work/tree" "$size_mib" <<'EOF'
import os, sys
top, size_mib = sys.argv[1], int(sys.argv[2])
scale = size_mib / 1024
groups = [(3, 128 << 20), (16, 16 << 20), (192, 1 << 20), (2048, 64 << 10), (8192, 8 << 10)]
for n, (count, size) in enumerate(groups):
    count = max(1, round(count * scale))
    for i in range(count):
        d = os.path.join(top, f"g{n}", f"d{i // 256}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i}"), "wb") as f:
            f.write(os.urandom(size))
EOF
tree_bytes=$(du -sb "$work/tree" | cut -f1)
files=$(find "$work/tree" -type f | wc -l)

echo "writing it into a cdsfs mount…" >&2
"$cdsfs" init --home "$work/home" >/dev/null
mkdir -p "$work/mnt"
"$cdsfs" mount --home "$work/home" "$work/mnt"
cp -a "$work/tree/." "$work/mnt/"
"$cdsfs" unmount "$work/mnt"
objects=$(find "$work/home/store/objects" -type f | wc -l)
object_bytes=$(du -sb "$work/home/store/objects" | cut -f1)

# Empties and deletes buckets (quickly: 1000 keys per request), so runs do not fill the cluster.
drop_buckets() {
    python3 - "$@" <<'EOF'
import os, sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["CDSFS_S3_ENDPOINT"], config=Config(s3={"addressing_style": "path"}))
for name in sys.argv[1:]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        for i in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=name, Delete={"Objects": keys[i:i + 1000], "Quiet": True})
    s3.delete_bucket(Bucket=name)
EOF
}

mb() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / s / 1048576 }'; }

best_cdsfs=0
best_plain=0
best_tree=0
for run in $(seq 1 "$runs"); do
    bucket_c="bench-cdsfs-$run-$$"
    bucket_p="bench-plain-$run-$$"
    bucket_t="bench-tree-$run-$$"
    for b in "$bucket_c" "$bucket_p" "$bucket_t"; do aws --endpoint-url "$CDSFS_S3_ENDPOINT" s3 mb "s3://$b" >/dev/null; done

    # --- cdsfs serve on S3, pushed to by `cdsfs sync`.
    "$cdsfs" serve --store "s3://$bucket_c?endpoint=$CDSFS_S3_ENDPOINT" --listen 127.0.0.1:0 --quiet \
        > "$work/serve.out" 2> "$work/serve.err" &
    server=$!
    for _ in $(seq 1 200); do
        grep -q '^serving ' "$work/serve.out" 2>/dev/null && break
        kill -0 "$server" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
        sleep 0.05
    done
    url=$(sed -n 's/^serving .* on \(http:\/\/[^ ]*\)$/\1/p' "$work/serve.out")
    "$cdsfs" remote remove --home "$work/home" "${previous_url:-none}" >/dev/null 2>&1 || true
    "$cdsfs" remote add --home "$work/home" "$url"
    previous_url=$url
    rm -f "$work/home/sync-state"
    start=$(date +%s.%N)
    /usr/bin/time -f %M -o "$work/sync.rss" "$cdsfs" sync --home "$work/home" > "$work/sync.out"
    end=$(date +%s.%N)
    sync_rss=$(( $(tail -1 "$work/sync.rss") / 1024 ))
    serve_rss=$(( $(awk '/^VmHWM:/ {print $2}' "/proc/$server/status") / 1024 ))
    echo "run $run: peak RSS of cdsfs sync $sync_rss MiB, of cdsfs serve $serve_rss MiB" >&2
    kill "$server"; wait "$server" 2>/dev/null || true
    server=""
    t_cdsfs=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')

    # --- plain parallel S3 upload of the same objects.
    t_plain=$(python3 - "$work/home/store/objects" "$bucket_p" "$concurrency" <<'EOF'
import os, sys, time, boto3
from concurrent.futures import ThreadPoolExecutor
from botocore.config import Config
top, bucket, width = sys.argv[1], sys.argv[2], int(sys.argv[3])
s3 = boto3.client("s3", endpoint_url=os.environ["CDSFS_S3_ENDPOINT"],
                  config=Config(max_pool_connections=width, s3={"addressing_style": "path"}))
paths = [os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs]
def put(p):
    with open(p, "rb") as f:
        s3.put_object(Bucket=bucket, Key="objects/" + os.path.relpath(p, top), Body=f.read())
start = time.time()
with ThreadPoolExecutor(width) as pool:
    list(pool.map(put, paths))
print(time.time() - start)
EOF
)
    # --- the same, for the tree's files as they are (fewer, larger requests; one request at a time
    # per worker: no multipart threads of its own, so the same number in flight).
    t_tree=$(python3 - "$work/tree" "$bucket_t" "$concurrency" <<'EOF'
import os, sys, time, boto3
from concurrent.futures import ThreadPoolExecutor
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
top, bucket, width = sys.argv[1], sys.argv[2], int(sys.argv[3])
s3 = boto3.client("s3", endpoint_url=os.environ["CDSFS_S3_ENDPOINT"],
                  config=Config(max_pool_connections=width, s3={"addressing_style": "path"}))
single = TransferConfig(use_threads=False, multipart_threshold=64 << 20, multipart_chunksize=64 << 20)
paths = [os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs]
start = time.time()
with ThreadPoolExecutor(width) as pool:
    list(pool.map(lambda p: s3.upload_file(p, bucket, os.path.relpath(p, top), Config=single), paths))
print(time.time() - start)
EOF
)
    r_c=$(mb "$tree_bytes" "$t_cdsfs")
    r_p=$(mb "$tree_bytes" "$t_plain")
    r_t=$(mb "$tree_bytes" "$t_tree")
    echo "run $run: cdsfs serve → S3 $r_c MiB/s ($t_cdsfs s), boto3 same objects $r_p MiB/s ($t_plain s), boto3 tree files $r_t MiB/s ($t_tree s)" >&2
    best_cdsfs=$(awk -v a="$best_cdsfs" -v b="$r_c" 'BEGIN { print (b > a ? b : a) }')
    best_plain=$(awk -v a="$best_plain" -v b="$r_p" 'BEGIN { print (b > a ? b : a) }')
    best_tree=$(awk -v a="$best_tree" -v b="$r_t" 'BEGIN { print (b > a ? b : a) }')
    drop_buckets "$bucket_c" "$bucket_p" "$bucket_t"
done

echo
echo "S3 throughput, $(date -u +%Y-%m-%d), $(nproc) cores; tree: $((tree_bytes / 1048576)) MiB in $files files → $objects objects ($((object_bytes / 1048576)) MiB); $concurrency in flight; best of $runs"
echo "peak RSS (last run): cdsfs sync $sync_rss MiB, cdsfs serve $serve_rss MiB"
printf '%-44s %12s\n' "upload" "MiB/s"
printf '%-44s %12s\n' "cdsfs sync → cdsfs serve → Ceph RGW" "$best_cdsfs"
printf '%-44s %12s\n' "boto3 put_object ×$concurrency → Ceph RGW (same objects)" "$best_plain"
printf '%-44s %12s\n' "boto3 upload_file ×$concurrency → Ceph RGW (the tree's files)" "$best_tree"
awk -v c="$best_cdsfs" -v p="$best_plain" 'BEGIN { printf "%-44s %11.0f%%\n", "cdsfs / plain, same objects (target ≥ 80%)", 100 * c / p }'
awk -v c="$best_cdsfs" -v p="$best_tree" 'BEGIN { printf "%-44s %11.0f%%\n", "cdsfs / plain, the tree files", 100 * c / p }'
