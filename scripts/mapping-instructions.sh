#!/bin/sh
# Instructions per record for each scenario of benches/mapping.rs: the mapping (parse, apply,
# serialize) and the JSON round trip of the same input, counted by callgrind. Unlike wall-clock
# rates on a shared machine, these counts repeat from run to run.
# Usage: scripts/mapping-instructions.sh [records per scenario, default 200]
set -eu
cd "$(dirname "$0")/.."
records=${1:-200}
bench=$(cargo bench --bench mapping --locked --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\/mapping-[^"]*\)".*/\1/p' | tail -n 1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
per_record() {
    # The inclusive cost of one function of the bench, divided by the records it handled.
    grep "mapping::$1 \[" "$out/annotated" | head -n 1 | awk -v n="$records" '{gsub(",", "", $1); printf "%d", $1 / n}'
}
printf '%-64s %15s %15s %7s\n' mapping "map instr/rec" "json instr/rec" ratio
RBTX_BENCH_RECORDS=0 "$bench" | sed -n 's/ *0 records mapped and round-tripped$//p' |
    while IFS= read -r name; do
        RBTX_BENCH_ONLY="$name" RBTX_BENCH_RECORDS="$records" valgrind --tool=callgrind \
            --callgrind-out-file="$out/callgrind" "$bench" >/dev/null 2>&1
        callgrind_annotate --inclusive=yes "$out/callgrind" >"$out/annotated" 2>/dev/null
        map=$(per_record map_record)
        json=$(per_record json_round_trip)
        printf '%-64s %15d %15d %7.2f\n' "$name" "$map" "$json" "$(echo "$json / $map" | bc -l)"
    done
