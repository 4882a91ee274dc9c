#!/usr/bin/env bash
# libFuzzer targets for cdsfs's parsers and the store server's request handling.
#
#   Tests/Fuzz/run.sh [SECONDS] [TARGET...]        default: 60 s each, every target
#
# Targets: object record envelope keypair modifications server (one .swift file each, plus
# FuzzSupport.swift; `server` also compiles the real Sources/StoreServer/StoreService.swift and
# GroupFlush.swift with ServerStubs.swift, so no SwiftNIO and no sockets).
#
# Each target is built with `swiftc -sanitize=fuzzer,address` against the Condensation sources,
# compiled once as a module with the same instrumentation. The seed corpus is written by each target
# at start-up from the spec's vectors (every object, record, key pair file and modifications record
# in them) plus a few inputs of its own (signed envelopes, wrapped key pair files, signed requests).
# Corpora, crash artifacts and logs stay in $FUZZ_BUILD (default .build-fuzz at the top of the
# repository), so a second run goes on from the first. The script ends with a table: executions,
# executions per second, corpus size and crashes per target; it exits 1 if any target crashed.
#
# Environment: FUZZ_BUILD (build directory), CDSFS_FUZZ_VECTORS (vectors.txt; default the spec's if
# it is beside the repository, else the verbatim copy in Tests/CondensationTests/VectorsTests.swift),
# FUZZ_ARGS (more libFuzzer flags, e.g. "-jobs=2").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${1:-60}
[[ $# -gt 0 ]] && shift
all=(object record envelope keypair modifications server)
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all[@]}")
build=${FUZZ_BUILD:-$root/.build-fuzz}
mkdir -p "$build/modules/CCrypto" "$build/modules/CLinux" "$build/obj" "$build/logs"

# The vectors.
if [[ -z ${CDSFS_FUZZ_VECTORS:-} ]]; then
    if [[ -f $root/../shared/spec/vectors.txt ]]; then
        CDSFS_FUZZ_VECTORS=$root/../shared/spec/vectors.txt
    else
        CDSFS_FUZZ_VECTORS=$build/vectors.txt
        awk '/static let text = """/ {on=1; next} on && /^"""/ {exit} on {print}' \
            "$root/Tests/CondensationTests/VectorsTests.swift" > "$CDSFS_FUZZ_VECTORS"
    fi
fi
export CDSFS_FUZZ_VECTORS

flags=(-sanitize=fuzzer,address -O -g -parse-as-library)

# The C shims and their module maps.
cat > "$build/modules/CCrypto/module.modulemap" <<EOF
module CCrypto {
    header "$root/Sources/CCrypto/include/ccrypto.h"
    link "crypto"
    export *
}
EOF
cat > "$build/modules/CLinux/module.modulemap" <<EOF
module CLinux {
    header "$root/Sources/CLinux/include/clinux.h"
    export *
}
EOF
for c in CCrypto/ccrypto CLinux/clinux; do
    name=$(basename "$c")
    if [[ ! -f $build/obj/$name.o || $root/Sources/$c.c -nt $build/obj/$name.o ]]; then
        clang -c -O1 -g -fsanitize=address,fuzzer-no-link -I "$root/Sources/$(dirname "$c")/include" \
            "$root/Sources/$c.c" -o "$build/obj/$name.o"
    fi
done

# The Condensation module, rebuilt when a source is newer than it.
mapfile -t sources < <(find "$root/Sources/Condensation" -name '*.swift' | sort)
lib=$build/obj/libCondensation.a
if [[ ! -f $lib ]] || [[ -n $(find "$root/Sources/Condensation" -name '*.swift' -newer "$lib" | head -1) ]]; then
    echo "building Condensation (fuzzer + address sanitizer)…" >&2
    (cd "$build/obj" && swiftc "${flags[@]}" -module-name Condensation -emit-module \
        -emit-module-path "$build/obj/Condensation.swiftmodule" -emit-library -static -o "$lib" \
        -I "$build/modules/CCrypto" -I "$build/modules/CLinux" "${sources[@]}")
fi

build_target() {
    local t=$1 out=$build/fuzz-$1
    local files=("$here/FuzzSupport.swift" "$here/$t.swift")
    if [[ $t == server ]]; then
        files+=("$here/ServerStubs.swift" "$root/Sources/StoreServer/StoreService.swift"
                "$root/Sources/StoreServer/GroupFlush.swift")
    fi
    local newest
    newest=$(ls -t "${files[@]}" "$lib" | head -1)
    if [[ -f $out && $out -nt $newest ]]; then return; fi
    echo "building fuzz-$t…" >&2
    # (gold's "cannot export local symbol __asan_…" warnings go to the log, not the screen)
    if ! swiftc "${flags[@]}" -module-name "Fuzz_$t" -I "$build/obj" -I "$build/modules/CCrypto" -I "$build/modules/CLinux" \
        "${files[@]}" "$lib" "$build/obj/ccrypto.o" "$build/obj/clinux.o" -lcrypto -o "$out" > "$build/logs/build-$t.log" 2>&1; then
        grep -v 'Cannot export local symbol' "$build/logs/build-$t.log" >&2
        exit 2
    fi
}

for t in "${targets[@]}"; do
    [[ -f $here/$t.swift ]] || { echo "no fuzz target $t (have: ${all[*]})" >&2; exit 2; }
    build_target "$t"
done

crashed=0
rows=()
for t in "${targets[@]}"; do
    corpus=$build/corpus/$t
    artifacts=$build/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    log=$build/logs/$t.log
    touch "$build/logs/$t.start"
    echo "fuzzing $t for $seconds s (log: $log)…" >&2
    set +e
    # detect_leaks=0: Swift's runtime caches (type metadata, lazy globals) look like leaks to LSan.
    # SWIFT_BACKTRACE=enable=no: the Swift backtracer and ASan fight over a crash; ASan's report is
    # the useful one.
    SWIFT_BACKTRACE=enable=no CDSFS_FUZZ_SEEDS=$corpus "$build/fuzz-$t" "$corpus" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
        -max_len=20000 -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} > "$log" 2>&1
    status=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    files=$(find "$corpus" -type f | wc -l)
    crashes=$(find "$artifacts" -type f -newer "$build/logs/$t.start" \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
    if [[ $status -ne 0 ]]; then
        crashed=1
        echo "  $t exited $status; see $log and $artifacts" >&2
        grep -m3 -E 'ERROR|invariant failed|Fatal error|SUMMARY' "$log" >&2 || true
    fi
    rows+=("$(printf '%-14s %8s %14s %10s %8s %8s %8s' "$t" "$seconds" "${execs:-?}" "${rate:-?}" "$files" "${rss:-?}" "$crashes")")
done

printf '%-14s %8s %14s %10s %8s %8s %8s\n' target seconds executions "exec/s" corpus "rss MB" crashes
printf '%s\n' "${rows[@]}"
exit $crashed
