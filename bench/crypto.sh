#!/usr/bin/env bash
# Our crypto and record throughput next to OpenSSL's, with pass/fail against the targets:
#   SHA-256 and AES-256-CTR through our wrappers >= 90% of `openssl speed` (16 KiB blocks),
#   parsing + serialising a ~1 MiB directory-like record < 5 ms.
#
# Usage: bench/crypto.sh [cdsfs-bench options, e.g. --rounds 7]
# Builds cdsfs-bench in release (its own scratch path), runs it and `openssl speed`, prints a table.
# Exits 1 if a target fails. The machines are shared: a figure only means something next to the
# others of the same run; run it twice if a result is close to its target.
set -euo pipefail
cd "$(dirname "$0")/.."

scratch=.build-bench
echo "building cdsfs-bench (release)…" >&2
swift build -c release --scratch-path "$scratch" --product cdsfs-bench >&2
bin="$(swift build -c release --scratch-path "$scratch" --show-bin-path)/cdsfs-bench"

ours=$("$bin" "$@")
figure() { awk -v name="$1" '$1 == name { print $2 }' <<<"$ours"; }

# `openssl speed` prints "<type> <n>k" in 1000s of bytes per second; MB/s = n / 1000.
openssl_speed() {
    openssl speed -evp "$1" -bytes 16384 2>/dev/null \
        | awk -v t="$1" 'tolower($1) == tolower(t) { v = $2; sub(/k$/, "", v); printf "%.1f\n", v / 1000 }'
}
echo "running openssl speed (about 6 s)…" >&2
ossl_sha=$(openssl_speed sha256)
ossl_aes=$(openssl_speed aes-256-ctr)

sha=$(figure sha256)
aes=$(figure aes-256-ctr)
parse=$(figure record-parse)
serialize=$(figure record-serialize)
total=$(figure record-total)
for v in "$sha" "$aes" "$parse" "$serialize" "$total" "$ossl_sha" "$ossl_aes"; do
    [[ "$v" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "could not read a figure (got '$v'):" >&2; echo "$ours" >&2; exit 2; }
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
check() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN { ok = (op == ">=") ? a >= b : a < b; print ok ? "PASS" : "FAIL" }'; }

sha_ratio=$(ratio "$sha" "$ossl_sha")
aes_ratio=$(ratio "$aes" "$ossl_aes")
sha_result=$(check "$sha_ratio" ">=" 0.90)
aes_result=$(check "$aes_ratio" ">=" 0.90)
record_result=$(check "$total" "<" 5)

row() { printf '%-36s %10s %10s %7s  %-8s %s\n' "$@"; }
echo
row "measure" "ours" "openssl" "ratio" "target" "result"
row "SHA-256, Hash.of, 1 MiB (MB/s)" "$sha" "$ossl_sha" "$sha_ratio" ">= 0.90" "$sha_result"
row "AES-256-CTR, in place, 1 MiB (MB/s)" "$aes" "$ossl_aes" "$aes_ratio" ">= 0.90" "$aes_result"
row "record parse (ms)" "$parse" "" "" "" ""
row "record serialize (ms)" "$serialize" "" "" "" ""
row "record parse + serialize (ms)" "$total" "" "" "< 5 ms" "$record_result"
echo
echo "cdsfs-bench said:"
sed 's/^/  /' <<<"$ours"

[[ "$sha_result $aes_result $record_result" == "PASS PASS PASS" ]]
