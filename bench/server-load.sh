#!/usr/bin/env bash
# Load test of `cdsfs serve`: a server on a fresh folder store on 127.0.0.1, loaded by cdsfs-load
# (N connections of mixed get/put/list/add/long-poll, signed as devices sign), with the server's
# resident memory sampled every second. Prints the client's table and the server's peak RSS.
#
#   bench/server-load.sh [--connections N] [--duration SECONDS] [other cdsfs-load options]
#
# Defaults: 64 connections, 60 s. Builds cdsfs and cdsfs-load in release mode under $SCRATCH
# (default .build-load). The store lives in a temporary directory ($TMPDIR) and is removed after.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
scratch=${SCRATCH:-$root/.build-load}
cd "$root"

echo "building (release, $scratch)…" >&2
swift build -c release --scratch-path "$scratch" --product cdsfs >&2
swift build -c release --scratch-path "$scratch" --product cdsfs-load >&2
bin=$(swift build -c release --scratch-path "$scratch" --show-bin-path)

work=$(mktemp -d "${TMPDIR:-/tmp}/cdsfs-load-XXXXXX")
server=""
sampler=""
cleanup() {
    [[ -n $sampler ]] && kill "$sampler" 2>/dev/null || true
    [[ -n $server ]] && kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The server, on a port the system picks; its "serving … on http://127.0.0.1:PORT" line gives it.
"$bin/cdsfs" serve --store "$work/store" --listen 127.0.0.1:0 --quiet > "$work/serve.out" 2> "$work/serve.err" &
server=$!
for _ in $(seq 1 200); do
    grep -q '^serving ' "$work/serve.out" 2>/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
    sleep 0.05
done
url=$(sed -n 's/^serving .* on \(http:\/\/[^ ]*\)$/\1/p' "$work/serve.out")
[[ -n $url ]] || { echo "the server did not say where it listens" >&2; exit 1; }
echo "server pid $server at $url" >&2

# RSS every second; the peak is the largest sample.
(
    while kill -0 "$server" 2>/dev/null; do
        awk '/^VmRSS:/ {print $2}' "/proc/$server/status" 2>/dev/null >> "$work/rss" || true
        sleep 1
    done
) &
sampler=$!

set +e
TIMEFORMAT='%U %S'
{ time "$bin/cdsfs-load" --url "$url" "$@" > "$work/load.out" ; } 2> "$work/load.time"
status=$?
set -e
# CPU seconds: the server's from /proc (utime + stime, in clock ticks), the client's from `time`.
server_cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$server/stat")
client_cpu=$(tail -1 "$work/load.time" | awk '{ printf "%.1f", $1 + $2 }')

# Stop the server the way an operator does (SIGTERM: it finishes requests in flight) and time it.
stop_start=$(date +%s.%N)
kill -TERM "$server"
wait "$server" 2>/dev/null || true
stop_end=$(date +%s.%N)
server=""
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
sampler=""

cat "$work/load.out"
peak=$(sort -n "$work/rss" | tail -1)
first=$(head -1 "$work/rss")
objects=$(find "$work/store/objects" -type f | wc -l)
bytes=$(du -sb "$work/store" | cut -f1)
echo "server RSS: first sample $((first / 1024)) MiB, peak $((peak / 1024)) MiB ($(wc -l < "$work/rss") samples)"
echo "store after the run: $objects objects, $((bytes / 1024 / 1024)) MiB"
echo "CPU time: server $server_cpu s, client $client_cpu s ($(nproc) cores)"
awk -v a="$stop_start" -v b="$stop_end" 'BEGIN { printf "server stopped %.2f s after SIGTERM\n", b - a }'
if grep -q . "$work/serve.err"; then
    echo "server standard error (last lines):"
    tail -5 "$work/serve.err"
fi
exit $status
