#!/usr/bin/env bash
# bench-delta-agent.sh — a delta install of a 512 MiB image through the real
# binaries: `uptrust release add … --delta-from` on the server side (time,
# peak RSS) and `uptrust-agent check` on RUNS (5) fresh simulated devices
# running v1 (time, peak RSS, bytes fetched), alternating with a plain
# `dd bs=1M conv=fsync` copy of the same v2 image; medians compared.
#
# The pair is scripts/bench-delta.sh's "big" pair (512 MiB disk image with
# the rootfs pair inside); it is built there if missing.
#
# Usage: scripts/bench-delta-agent.sh
# Env:   RUNS (5), WORK (bench-delta's work directory, default /var/tmp/uptrust-bench-delta),
#        BENCH_DIR (parent of the scratch directory; default $TMPDIR or /var/tmp)
# Needs: go, curl, /usr/bin/time, about 3 GiB of free disk and 4 GiB of RAM.
set -euo pipefail
cd "$(dirname "$0")/.."
BW=${WORK:-/var/tmp/uptrust-bench-delta}
if [ ! -f "$BW/big-v2" ]; then TOOLS=uptrust WORK="$BW" bash scripts/bench-delta.sh big > /dev/null; fi
V1=$BW/big-v1; V2=$BW/big-v2
S=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/var/tmp}}/uptrust-bench-delta-agent.XXXXXX")
SERVER_PID=
cleanup() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi; rm -rf "$S"; }
trap cleanup EXIT

go build -o "$S/uptrust" ./cmd/uptrust
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.buildTime=$(git log -1 --format=%cI 2>/dev/null)" -o "$S/uptrust-agent" ./cmd/uptrust-agent
U=$S/uptrust; A=$S/uptrust-agent; P=$S/project
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(go version | cut -d' ' -f3)"

"$U" init --dev --dir "$P" > /dev/null 2>&1
"$U" product add big --hardware rev-a --support-until 2030-12-31 --dir "$P" > /dev/null
"$U" release add big 1.0.0 "$V1" --kind feature --security-version 1 --dir "$P" > /dev/null
/usr/bin/time -f "%e %M" -o "$S/t" "$U" release add big 1.1.0 "$V2" --kind security --security-version 2 --delta-from 1.0.0 --dir "$P" > /dev/null
read -r T M < "$S/t"
echo "release add --delta-from 1.0.0 (512 MiB pair): ${T} s, peak RSS $((M / 1024)) MiB"
"$U" rollout start big 1.1.0 --percent 100 --dir "$P" > /dev/null

PORT=$(( 20000 + RANDOM % 20000 ))
"$U" serve --dir "$P" --listen "127.0.0.1:$PORT" 2> "$S/serve.log" &
SERVER_PID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && break; sleep 0.1; done
# RUNS fresh devices, each timed for one check, alternating with dd of the
# v2 image; medians compared.
device() {
  rm -rf "$S/dev"
  "$U" simulate-device "$S/dev" --dir "$P" --server "http://127.0.0.1:$PORT" --product big --hardware rev-a \
    --factory "$V1" --version 1.0.0 --security-version 1 > /dev/null
  sync
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END{printf "%.3f", (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
CHECK_T=(); COPY_T=(); MAXRSS=0
for _ in $(seq "${RUNS:-5}"); do
  device
  t0=$EPOCHREALTIME
  /usr/bin/time -f "%M" -o "$S/t" "$A" --config "$S/dev/agent.json" check > /dev/null 2> "$S/agent.log" || [ $? -eq 6 ]   # 6: written, rebooting
  CHECK_T+=("$(secs "$t0" "$EPOCHREALTIME")")
  M=$(cat "$S/t"); [ "$M" -gt "$MAXRSS" ] && MAXRSS=$M
  rm -f "$S/copy"; t0=$EPOCHREALTIME
  dd if="$V2" of="$S/copy" bs=1M conv=fsync status=none
  COPY_T+=("$(secs "$t0" "$EPOCHREALTIME")")
done
rm -f "$S/copy"
ST=$("$A" --config "$S/dev/agent.json" status --json | tr -d '\n ')
USED=$(echo "$ST" | sed -n 's/.*"last_delta":{[^}]*"used":\(true\|false\).*/\1/p')
DL=$(echo "$ST" | sed -n 's/.*"download":{\([^}]*\)}.*/\1/p')
GOT=$(echo "$DL" | sed -n 's/.*"bytes":\([0-9]*\).*/\1/p')
DLEN=$(echo "$DL" | sed -n 's/.*"length":\([0-9]*\).*/\1/p')
CT=$(median "${CHECK_T[@]}"); DT=$(median "${COPY_T[@]}")
echo "agent check (hash v1 in the active slot, fetch the delta, apply with the target hashed on the way, arm), ${#CHECK_T[@]} fresh devices: median ${CT} s (${CHECK_T[*]}), peak RSS $((MAXRSS / 1024)) MiB; delta used: ${USED:-?}; bytes fetched: ${GOT:-?} (delta ${DLEN:-?} B, image $(stat -c %s "$V2") B)"
echo "dd bs=1M conv=fsync of the v2 image, alternating: median ${DT} s (${COPY_T[*]})"
echo "delta install vs copy (medians): $(awk -v c="$DT" -v a="$CT" 'BEGIN{printf "%.2f", c/a}')"
"$U" simulate-boot "$S/dev" > /dev/null
"$A" --config "$S/dev/agent.json" check > /dev/null 2>> "$S/agent.log"
grep -q '"version": "1.1.0"' "$S/dev/data/state.json" && echo "the device boots 1.1.0" || { echo "bench-delta-agent: 1.1.0 not installed" >&2; tail -20 "$S/agent.log" >&2; exit 1; }
