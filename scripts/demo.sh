#!/usr/bin/env bash
# `make demo`: a coordinator and two workers on 127.0.0.1, a generated 10 s 1080p30 clip with audio cut
# into segments, transcoded to the default 4-rung ladder through the network, and the same ladder made by
# the ffmpeg CLI on the same machine for comparison; then files stored on the workers and fetched back
# verified. Stops everything it started.
#
# DEMO_CONTENT_CHECK_FIRST_JOBS=N sets the coordinator's `content_check_first_jobs` (default 3, which
# in a 5-segment demo puts every job through the content check); 0 leaves the steady-state share.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release"
out="$root/demo-out"
work=$(mktemp -d -t dualrig-demo-XXXXXX)
pids=()
worker_pids=()
worker_metrics=()
# Tickets: face value in base units, and one in how many wins.
face_value=400000000
one_in=4
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

profiles=720p,480p,360p,240p
rm -rf "$out" && mkdir -p "$out"

echo "== making a 10 s 1080p30 test clip with audio"
ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i testsrc2=size=1920x1080:rate=30 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -t 10 -c:v libx264 -preset veryfast -g 60 -pix_fmt yuv420p -c:a aac -shortest \
    "$out/demo.mp4"

echo "== keys and a genesis file: the client and both workers start with tokens"
client_key="$work/client/worker.key"
"$bin/dualrig-worker" id --data-dir "$work/client" >/dev/null
client_id=$("$bin/dualrig-worker" id --data-dir "$work/client")
worker_ids=()
for n in 1 2; do worker_ids+=("$("$bin/dualrig-worker" id --data-dir "$work/worker$n")"); done
{
    printf '[[accounts]]\nid = "%s"\nbalance = 10_000_000_000\n\n' "$client_id"
    for id in "${worker_ids[@]}"; do printf '[[accounts]]\nid = "%s"\nbalance = 100_000_000\n\n' "$id"; done
} >"$work/genesis.toml"

echo "== starting a coordinator and two workers on 127.0.0.1"
metrics="127.0.0.1:$((20000 + RANDOM % 20000))"
config=()
if [ -n "${DEMO_CONTENT_CHECK_FIRST_JOBS:-}" ]; then
    printf 'content_check_first_jobs = %d\n' "$DEMO_CONTENT_CHECK_FIRST_JOBS" >"$work/coordinator.toml"
    config=(--config "$work/coordinator.toml")
fi
"$bin/dualrig-coordinator" --listen 127.0.0.1:0 --data-dir "$work/coordinator" "${config[@]}" \
    --genesis "$work/genesis.toml" --metrics-addr "$metrics" >"$out/coordinator.log" 2>&1 &
pids+=($!)
coordinator_pid=$!
for _ in $(seq 100); do [ -s "$work/coordinator/coordinator.addr" ] && break; sleep 0.1; done
[ -s "$work/coordinator/coordinator.addr" ] || { cat "$out/coordinator.log"; exit 1; }
url="http://$(cat "$work/coordinator/coordinator.addr")"
export DUALRIG_COORDINATOR="$url"
for n in 1 2; do
    "$bin/dualrig" --key "$work/worker$n/worker.key" stake bond 50 >/dev/null
done
"$bin/dualrig" --key "$client_key" deposit 5000 >/dev/null
for n in 1 2; do
    # Priced at 1 base unit per output pixel, paid with tickets that win one time in four.
    worker_metrics+=("127.0.0.1:$((20000 + RANDOM % 20000))")
    "$bin/dualrig-worker" --data-dir "$work/worker$n" --price-per-unit 1 \
        --ticket-face-value "$face_value" --ticket-win-prob-one-in "$one_in" \
        --metrics-addr "${worker_metrics[$((n - 1))]}" --dashboard-addr 127.0.0.1:0 \
        >"$out/worker$n.log" 2>&1 &
    pids+=($!)
    worker_pids+=($!)
done
for _ in $(seq 200); do
    [ "$("$bin/dualrig" workers 2>/dev/null | grep -c encoder=)" = 2 ] && break
    sleep 0.1
done
"$bin/dualrig" workers
for n in 1 2; do
    for _ in $(seq 100); do [ -s "$work/worker$n/dashboard.addr" ] && break; sleep 0.1; done
    echo "worker$n dashboard: http://$(cat "$work/worker$n/dashboard.addr")/"
done

# CPU seconds a running process has used so far (user + system, every thread).
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# CPU seconds of the processes named, summed.
cpu_sum() { local total=0; for pid in "$@"; do total=$(echo "$total + $(cpu_of "$pid")" | bc); done; echo "$total"; }
TIMEFORMAT='%U %S'

echo "== dualrig transcode through the network ($profiles)"
coordinator_cpu=$(cpu_of "$coordinator_pid")
workers_cpu=$(cpu_sum "${worker_pids[@]}")
start=$(date +%s.%N)
{ time "$bin/dualrig" --key "$client_key" transcode "$out/demo.mp4" --out "$out/hls" \
    --profiles "$profiles" --pay 2>&3; } 3>&2 2>"$work/client.cpu"
network=$(echo "$(date +%s.%N) - $start" | bc)
coordinator_cpu=$(echo "$(cpu_of "$coordinator_pid") - $coordinator_cpu" | bc)
workers_cpu=$(echo "$(cpu_sum "${worker_pids[@]}") - $workers_cpu" | bc)
client_cpu=$(awk '{ print $1 + $2 }' "$work/client.cpu")

echo "== the same ladder with the ffmpeg CLI and the same encoder settings"
mkdir -p "$out/ffmpeg-cli"
mapfile -t args < <("$bin/dualrig-worker" ladder-command --profiles "$profiles" "$out/demo.mp4" "$out/ffmpeg-cli")
echo "ffmpeg ${args[*]}"
start=$(date +%s.%N)
{ time ffmpeg -hide_banner -loglevel error -y "${args[@]}" 2>&3; } 3>&2 2>"$work/cli.cpu"
cli=$(echo "$(date +%s.%N) - $start" | bc)
cli_cpu=$(awk '{ print $1 + $2 }' "$work/cli.cpu")

echo
echo "== storage: the HLS ladder's master playlist and the source clip kept on both workers, fetched back verified"
"$bin/dualrig" put --replicas 2 "$out/hls/master.m3u8" "$out/demo.mp4" | tee "$out/put.txt"
b3sum "$out/demo.mp4"
clip_root=$(awk 'NR == 2 { print $1 }' "$out/put.txt")
"$bin/dualrig" get "$clip_root" -o "$out/demo-fetched.mp4"
cmp "$out/demo.mp4" "$out/demo-fetched.mp4" && echo "  fetched clip is byte-identical"
"$bin/dualrig" get "$clip_root" -o "$out/demo-first-64k.bin" --range 0..65536
"$bin/dualrig" ls

echo
echo "== what each worker did"
"$bin/dualrig" workers
grep -h "transcoded" "$out"/worker*.log | sed 's/^/  /' | tail -n 20 || true
echo
echo "== who paid whom (winning tickets are redeemed in the background; amounts in tokens)"
# A counter of a worker's metrics page: metric name and outcome label.
counter() {
    curl -fsS "http://$1/metrics" 2>/dev/null |
        awk -v m="$2" -v o="$3" '$1 == m "{outcome=\"" o "\"}" { v = $2 } END { printf "%d", v + 0 }'
}
# Redemption is in the background: wait (up to 30 s) until every worker redeemed all it won.
for _ in $(seq 300); do
    pending=0
    for m in "${worker_metrics[@]}"; do
        won=$(counter "$m" dualrig_worker_tickets_total won)
        paid=$(counter "$m" dualrig_worker_redemptions_total paid)
        [ "$paid" -ge "$won" ] || pending=1
    done
    [ "$pending" = 0 ] && break
    sleep 0.1
done
for n in 1 2; do
    m=${worker_metrics[$((n - 1))]}
    received=$(counter "$m" dualrig_worker_tickets_total received)
    won=$(counter "$m" dualrig_worker_tickets_total won)
    redeemed=$(counter "$m" dualrig_worker_redemptions_total paid)
    value=$(curl -fsS "http://$m/metrics" 2>/dev/null |
        awk '$1 == "dualrig_worker_redeemed_value_total" { v = $2 } END { printf "%d", v + 0 }')
    printf '  worker%d: %d tickets received (expected value %s tokens), %d won, %d redeemed for %s tokens\n' \
        "$n" "$received" "$(echo "scale=2; $received * $face_value / $one_in / 1000000" | bc)" \
        "$won" "$redeemed" "$(echo "scale=2; $value / 1000000" | bc)"
done
summary() { "$bin/dualrig" account "$1" | grep -E '^(balance|deposit|stake) ' | tr -s ' ' | paste -sd';' -; }
echo "  client:  $(summary "$client_id")"
for n in 1 2; do echo "  worker$n: $(summary "${worker_ids[$((n - 1))]}")"; done
echo
echo "== metrics ($metrics/metrics)"
curl -fsS "http://$metrics/metrics" 2>/dev/null | grep -E '^dualrig_(jobs_total|workers_connected|bytes_|storage_gets)' || true
echo
printf 'CPU seconds: client %.2f, coordinator %.2f, workers %.2f (network total %.2f); ffmpeg CLI %.2f\n' \
    "$client_cpu" "$coordinator_cpu" "$workers_cpu" \
    "$(echo "$client_cpu + $coordinator_cpu + $workers_cpu" | bc)" "$cli_cpu"
printf 'network ladder: %.2f s   ffmpeg CLI ladder: %.2f s   ratio: %.2f\n' \
    "$network" "$cli" "$(echo "$network / $cli" | bc -l)"
for p in ${profiles//,/ }; do
    printf '  %-5s width,height,frames = %s\n' "$p" "$(ffprobe -v error -count_frames -select_streams v:0 \
        -show_entries stream=width,height,nb_read_frames -of csv=p=0 "$out/hls/$p/index.m3u8" | head -n 1)"
done
echo
echo "== what each worker's dashboard shows (its JSON endpoint, docs/DASHBOARD.md)"
for n in 1 2; do
    python3 - "$n" "$(cat "$work/worker$n/dashboard.addr")" <<'PY' || echo "  worker$n: the dashboard did not answer"
import json, sys, urllib.request
n, addr = sys.argv[1:]
s = json.load(urllib.request.urlopen(f"http://{addr}/api/status", timeout=10))
j, t, st, acct = s["jobs"], s["tickets"], s["store"], s["account"]
print(f"  worker{n}: {s['connection']['state']}, jobs done {j['done']} (verified {j['verified']}), "
      f"tickets received {t['received']}, won {t['won']}, redeemed {t['redeemed']}, "
      f"store {st['used_bytes']} bytes in {st['blobs']} blobs, stake {acct['stake'] if acct else '?'}")
PY
done
echo
echo "== the ladder in a browser: hls.js in headless Chromium lists the renditions, plays, switches"
if [ -d "${DUALRIG_BROWSER_DIR:-}/node_modules/playwright-core" ]; then
    NODE_PATH="$DUALRIG_BROWSER_DIR/node_modules" node "$root/tests/browser/hls_play.cjs" "$out/hls" \
        "$out/hls-in-browser.png" > "$out/hls-in-browser.json"
    python3 - "$out/hls-in-browser.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for l in r["levels"]:
    print(f"  {l['width']}x{l['height']}  {l['bitrate'] / 1e6:.2f} Mb/s  CODECS={l['codecs']}")
lv = r["levels"]
print(f"  played to {r['before']:.2f} s at {lv[r['from']]['height']}p, switched to "
      f"{lv[r['to']]['height']}p, played on to {r['after']:.2f} s showing {r['frame'][0]}x{r['frame'][1]}")
PY
    echo "  screenshot: $out/hls-in-browser.png"
else
    echo "  skipped: the browser packages are not installed (make tool-deps)"
fi
echo
echo "HLS ladder: $out/hls/master.m3u8   (play it: ffplay $out/hls/master.m3u8)"
echo "logs: $out/*.log"
