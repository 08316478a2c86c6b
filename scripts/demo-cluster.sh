#!/usr/bin/env bash
# `make demo-cluster`: three coordinators on one throwaway PostgreSQL database and four workers, each
# worker given all three coordinators' URLs (the worker's key picks which it tries first, so they spread
# over them; each coordinator reaches the others' workers over its links to them). A generated clip is
# transcoded through each coordinator; `dualrig coordinators` shows the
# cluster and which coordinator holds the round clock. Then one coordinator is killed with SIGKILL: its
# workers attach to the others, the others stop listing it, and one more transcode goes through.
# Stops everything it started.
#
# Run it as `scripts/with-postgres scripts/demo-cluster.sh` (make demo-cluster does), or with
# DUALRIG_TEST_DATABASE_URL naming an empty PostgreSQL database. DEMO_BIN picks the binaries' directory
# (default target/release).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="${DEMO_BIN:-$root/target/release}"
out="$root/demo-cluster-out"
work=$(mktemp -d -t dualrig-demo-cluster-XXXXXX)
url=${DUALRIG_TEST_DATABASE_URL:?run under scripts/with-postgres, or set DUALRIG_TEST_DATABASE_URL to an empty database}
coordinators=3
workers=4
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
rm -rf "$out" && mkdir -p "$out"

echo "== making a 4 s 720p30 test clip with audio"
ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i testsrc2=size=1280x720:rate=30 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -t 4 -c:v libx264 -preset veryfast -g 60 -pix_fmt yuv420p -c:a aac -shortest \
    "$out/demo.mp4"

echo "== starting $coordinators coordinators on one PostgreSQL database"
urls=()
coordinator_pids=()
for n in $(seq "$coordinators"); do
    "$bin/dualrig-coordinator" --listen 127.0.0.1:0 --data-dir "$work/coordinator$n" \
        --database-url "$url" --min-stake 0 --round-secs 2 --heartbeat-interval-secs 1 \
        >"$out/coordinator$n.log" 2>&1 &
    pids+=($!)
    coordinator_pids+=($!)
done
for n in $(seq "$coordinators"); do
    addr="$work/coordinator$n/coordinator.addr"
    for _ in $(seq 300); do [ -s "$addr" ] && break; sleep 0.1; done
    [ -s "$addr" ] || { cat "$out/coordinator$n.log"; exit 1; }
    urls+=("http://$(cat "$addr")")
done
all=$(IFS=,; echo "${urls[*]}")
echo "coordinators: $all"

echo "== starting $workers workers, each given all three URLs"
for n in $(seq "$workers"); do
    "$bin/dualrig-worker" --data-dir "$work/worker$n" --coordinator "$all" \
        >"$out/worker$n.log" 2>&1 &
    pids+=($!)
done
# How many workers are attached to a coordinator: `dualrig workers` lists those reached over a link to
# another coordinator too, marked `via=`.
attached() { "$bin/dualrig" --coordinator "$1" workers 2>/dev/null | grep encoder= | grep -vc via= || true; }
total_attached() {
    local sum=0
    for u in "$@"; do sum=$((sum + $(attached "$u"))); done
    echo "$sum"
}
for _ in $(seq 300); do [ "$(total_attached "${urls[@]}")" = "$workers" ] && break; sleep 0.1; done
show_spread() {
    for u in "$@"; do
        listed=$("$bin/dualrig" --coordinator "$u" workers 2>/dev/null | grep -c encoder= || true)
        echo "  $u: $(attached "$u") attached, $listed workers reachable"
        "$bin/dualrig" --coordinator "$u" workers 2>/dev/null |
            awk '/encoder=/ && !/via=/ { print "    " substr($1, 1, 16) "…" }'
    done
}
show_spread "${urls[@]}"

echo "== one transcode through each coordinator (a job drawn for a worker attached elsewhere is relayed there)"
for n in $(seq "$coordinators"); do
    u=${urls[$((n - 1))]}
    "$bin/dualrig" --coordinator "$u" transcode "$out/demo.mp4" --out "$out/hls$n" \
        --profiles 480p,240p --retry-secs 60 >"$out/client$n.log" 2>&1 ||
        { cat "$out/client$n.log"; exit 1; }
    echo "  through $u: $(grep -vc '^#' "$out/hls$n/480p/index.m3u8") segments per rendition, $out/hls$n/master.m3u8"
done

echo "== dualrig coordinators (asked of the first)"
for _ in $(seq 100); do
    "$bin/dualrig" --coordinator "${urls[0]}" coordinators | grep -q 'round clock' && break
    sleep 0.1
done
"$bin/dualrig" --coordinator "${urls[0]}" coordinators

# The coordinator with the most workers is the one whose loss shows failover best.
victim=0
most=-1
for i in $(seq 0 $((coordinators - 1))); do
    c=$(attached "${urls[$i]}")
    if [ "$c" -gt "$most" ]; then most=$c; victim=$i; fi
done
gone=${urls[$victim]}
left=()
for i in $(seq 0 $((coordinators - 1))); do [ "$i" = "$victim" ] || left+=("${urls[$i]}"); done
echo "== kill -9 of $gone ($most workers attached)"
kill -9 "${coordinator_pids[$victim]}"
wait "${coordinator_pids[$victim]}" 2>/dev/null || true

echo "== its workers reattach to the others"
for _ in $(seq 600); do [ "$(total_attached "${left[@]}")" = "$workers" ] && break; sleep 0.1; done
show_spread "${left[@]}"
[ "$(total_attached "${left[@]}")" = "$workers" ] || { echo "not every worker reattached"; exit 1; }

echo "== the others stop listing it once it has been silent for three heartbeats"
for _ in $(seq 300); do
    "$bin/dualrig" --coordinator "${left[0]}" coordinators | grep -qF "$gone" || break
    sleep 0.1
done
"$bin/dualrig" --coordinator "${left[0]}" coordinators

echo "== one more transcode, through ${left[0]}"
"$bin/dualrig" --coordinator "${left[0]}" transcode "$out/demo.mp4" --out "$out/hls-after" \
    --profiles 480p,240p --retry-secs 60 >"$out/client-after.log" 2>&1 ||
    { cat "$out/client-after.log"; exit 1; }
printf '  480p width,height,frames = %s\n' "$(ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=width,height,nb_read_frames -of csv=p=0 "$out/hls-after/480p/index.m3u8" | head -n 1)"
echo
echo "HLS ladders: $out/hls*/master.m3u8"
echo "logs: $out/*.log"
