#!/usr/bin/env bash
# Runs every fuzz target for SECS seconds (default 600) on nightly, one after another, growing
# fuzz/corpus/<target>/, then minimizes each corpus. Crashes land in fuzz/artifacts/<target>/.
# Usage: fuzz/run-all.sh [SECS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
for t in "${targets[@]}"; do
    echo "== $t: ${secs}s"
    cargo +nightly fuzz run -O "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 \
        2>&1 | tee "target/fuzz-$t.log" | grep -E '^(Done|==|SUMMARY)|#[0-9]+.*DONE' || true
    cargo +nightly fuzz cmin -O "$t" >/dev/null 2>&1 || true
    echo "   corpus: $(ls "corpus/$t" | wc -l) inputs"
done
