#!/usr/bin/env bash
# bench-resume.sh — bytes downloaded twice when a payload download is
# interrupted at about 50 %, with the real parts: `uptrust serve` on
# loopback, the `uptrust-agent` binary on a simulated device (file slots),
# and bench/resume (resumeproxy) between them, which counts every payload
# byte it sends.
#
# Cases, each on a fresh device, SIZE_MIB payload:
#   drop        the proxy closes the payload connection after half the
#               payload; the same `uptrust-agent check` resumes.
#   kill-pause  the proxy stops sending at PAUSE bytes (half the payload
#               plus 2.5 MiB + 12345, between two checkpoints) and
#               holds the connection; once the agent has written all the
#               whole buffers it got, it is killed with SIGKILL (long before
#               its stall timeout) and a new `check` resumes.
#   power       as kill-pause, then the simulated device power-cycles
#               before the new `check`: bytes written after the last
#               checkpoint are treated as lost, as after a real power loss.
#   power-link  the same with download_rate_limit 32MiB, a fast real link
#               rather than loopback and the page cache.
#   kill-flow   the agent is killed with SIGKILL as soon as the proxy has
#               sent half the payload, data still flowing; a new `check`
#               resumes. Bytes in the sockets at that moment are lost too.
#   power-flow  the same, then the simulated device power-cycles: a power
#               loss while the download runs at full local speed, the
#               worst case: the checkpoints lag the download by the slot's
#               sync time, up to the agent's power_loss_budget.
#   power-flow-link  the same with download_rate_limit 32MiB.
#   compressed-drop, compressed-power-flow  as drop and power-flow, for the
#               same image published with --compress zstd (product benchz),
#               which the agent stages in its data directory.
#   streamed-power-flow  power-flow for the same image published with
#               --compress zstd --zstd-frame 1MiB (product benchf) on a device
#               with "stage_compressed": false: the agent streams it into the
#               slot and resumes at the last frame boundary it saved.
# For each: re-downloaded = payload bytes sent by the proxy − payload size;
# the offset saved in state.json at the interruption; the agent's own
# counter (`uptrust-agent status`); and that the device then boots the new
# release. Goal: at most max(1 MiB, 250 ms of the measured link rate)
# re-downloaded, the agent's default power_loss_window being 250 ms. The
# link rate of a flow case is measured by this script: payload bytes the
# proxy sent from the first poll that saw any until the poll that saw half,
# over that time; the other cases interrupt a link that is idle or dropped,
# and their goal is 1 MiB.
#
# Usage: scripts/bench-resume.sh
# Env:   SIZE_MIB (512), CASES (the cases to run, space-separated; default
#        all), RUNS (runs of each case, 1), AGENT_LOG (copy the agents' log there), BENCH_DIR (parent of the scratch directory; default
#        $TMPDIR or /var/tmp)
# Needs: go, curl, about 3 * SIZE_MIB MiB of free disk.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-512}
CASES=${CASES:-drop kill-pause power power-link kill-flow power-flow power-flow-link compressed-drop compressed-power-flow streamed-power-flow}
RUNS=${RUNS:-1}
want() { [[ " $CASES " == *" $1 "* ]]; }
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/var/tmp}}/uptrust-bench-resume.XXXXXX")
SERVER_PID=; PROXY_PID=; AGENT_PID=
stop() { if [ -n "${1:-}" ]; then kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; fi; }
cleanup() {
  stop "$AGENT_PID"; stop "$PROXY_PID"; stop "$SERVER_PID"
  if [ -n "${AGENT_LOG:-}" ]; then cp "$WORK/agent.log" "$AGENT_LOG"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

go build -o "$WORK/uptrust" ./cmd/uptrust
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.buildTime=$(git log -1 --format=%cI 2>/dev/null)" -o "$WORK/uptrust-agent" ./cmd/uptrust-agent
go build -o "$WORK/resumeproxy" ./bench/resume
U="$WORK/uptrust"; A="$WORK/uptrust-agent"; P="$WORK/project"

echo "== machine"
echo "cpu:   $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-) x $(nproc)"
echo "go:    $(go version)"
echo "fs:    $(df -T "$WORK" | awk 'NR==2 {print $1, $2}') ($WORK)"
echo "agent: $(grep -hE '^\s*(const )?([cC]heckpoint(Bytes|Interval|Idle)|DefaultPowerLossBudget|DefaultPowerLossWindow)\s*= [0-9]' internal/agent/transfer/transfer.go internal/agent/routes.go | tr -s ' \t' ' ' | paste -sd ';')"

"$U" init --dev --dir "$P" > /dev/null 2>&1
"$U" product add bench --hardware rev-a --support-until 2030-12-31 --dir "$P" > /dev/null
head -c 65536 /dev/urandom > "$WORK/factory.img"
"$U" release add bench 1.0.0 "$WORK/factory.img" --kind feature --security-version 1 --dir "$P" > /dev/null
head -c "$(( SIZE_MIB << 20 ))" /dev/urandom > "$WORK/payload.img"
"$U" release add bench 2.0.0 "$WORK/payload.img" --kind security --security-version 2 --dir "$P" > /dev/null
"$U" rollout start bench 2.0.0 --percent 100 --dir "$P" > /dev/null
# The same image, zstd-compressed, as product benchz (the "compressed" case).
"$U" product add benchz --hardware rev-a --support-until 2030-12-31 --dir "$P" > /dev/null
"$U" release add benchz 1.0.0 "$WORK/factory.img" --kind feature --security-version 1 --dir "$P" > /dev/null
ZBYTES=$("$U" release add benchz 2.0.0 "$WORK/payload.img" --kind security --security-version 2 --compress zstd --dir "$P" \
  | sed -n 's/^published .*: \([0-9]*\) bytes, sha256.*/\1/p')
"$U" rollout start benchz 2.0.0 --percent 100 --dir "$P" > /dev/null
# The same image in 1 MiB zstd frames, as product benchf (the "streamed" case).
"$U" product add benchf --hardware rev-a --support-until 2030-12-31 --dir "$P" > /dev/null
"$U" release add benchf 1.0.0 "$WORK/factory.img" --kind feature --security-version 1 --dir "$P" > /dev/null
FBYTES=$("$U" release add benchf 2.0.0 "$WORK/payload.img" --kind security --security-version 2 --compress zstd --zstd-frame 1MiB --dir "$P" \
  | sed -n 's/^published .*: \([0-9]*\) bytes, sha256.*/\1/p')
"$U" rollout start benchf 2.0.0 --percent 100 --dir "$P" > /dev/null
rm -f "$WORK/payload.img"
BYTES=$(( SIZE_MIB << 20 ))
HALF=$(( BYTES / 2 ))

SPORT=$(( 20000 + RANDOM % 20000 )); PPORT=$(( SPORT + 1 ))
"$U" serve --dir "$P" --listen "127.0.0.1:$SPORT" 2> "$WORK/serve.log" &
SERVER_PID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$SPORT/healthz" > /dev/null && break; sleep 0.1; done

# proxy [ARGS]: (re)start the proxy on PPORT.
proxy() {
  stop "$PROXY_PID"
  "$WORK/resumeproxy" -listen "127.0.0.1:$PPORT" -upstream "http://127.0.0.1:$SPORT" -payload-suffix .2.0.0 "$@" > /dev/null 2> "$WORK/proxy.log" &
  PROXY_PID=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PPORT/_stats" > /dev/null && return; sleep 0.05; done
  echo "bench-resume: proxy did not start" >&2; cat "$WORK/proxy.log" >&2; exit 1
}
stats() { curl -sf "http://127.0.0.1:$PPORT/_stats"; }
served() { stats | sed -n 's/.*"payload_bytes":\([0-9]*\).*/\1/p'; }
device() {
  rm -rf "$WORK/dev"
  "$U" simulate-device "$WORK/dev" --dir "$P" --server "http://127.0.0.1:$PPORT" --hardware rev-a \
    --factory "$WORK/factory.img" --version 1.0.0 --security-version 1 --product "${PRODUCT:-bench}" > /dev/null
}
check() { "$A" --config "$WORK/dev/agent.json" check > /dev/null 2>> "$WORK/agent.log" || [ $? -eq 6 ]; }   # 6: written, rebooting
saved() { "$A" --config "$WORK/dev/agent.json" status --json | sed -n 's/.*"download_saved": *\([0-9]*\).*/\1/p'; }
counted() { "$A" --config "$WORK/dev/agent.json" status --json | tr -d '\n ' | sed -n 's/.*"download":{[^}]*"bytes":\([0-9]*\).*/\1/p'; }
finish() {
  "$U" simulate-boot "$WORK/dev" > /dev/null; check
  grep -q '"version": "2.0.0"' "$WORK/dev/data/state.json" || { echo "bench-resume: 2.0.0 not installed" >&2; tail -20 "$WORK/agent.log" >&2; exit 1; }
}
statusline() { "$A" --config "$WORK/dev/agent.json" status | sed -n 's/^download: */           status: /p'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
# goal AGAIN [RATE]: the verdict on AGAIN bytes re-downloaded on a link
# measured at RATE bytes/s (absent or 0: not measured, the bound is 1 MiB):
# at most max(1 MiB, WINDOW_MS of the link).
WINDOW_MS=250
goal() {
  awk -v a="$1" -v r="${2:-0}" -v w="$WINDOW_MS" 'BEGIN {
    b = r * w / 1000; if (b < 1048576) b = 1048576
    link = (r > 0) ? sprintf("link %.1f MiB/s, ", r / 1048576) : ""
    printf "%sgoal %s (<= max(1 MiB, %d ms of the link) = %.2f MiB)", link, (a <= b) ? "met" : "MISSED", w, b / 1048576 }'
}
report() { # CASE INTERRUPTED-AT SAVED [RATE]
  local total; total=$(served)
  local again=$(( total - BYTES ))
  printf '%-10s interrupted at %10d (%5.1f %%), saved offset %10s; proxy sent %d bytes for %d: re-downloaded %d bytes (%s); agent counted %s; %s\n' \
    "$1" "$2" "$(awk -v a="$2" -v b="$BYTES" 'BEGIN { print 100 * a / b }')" "$3" "$total" "$BYTES" "$again" "$(mib "$again")" \
    "$(counted)" "$(goal "$again" "${4:-0}")"
}

echo "== ${SIZE_MIB} MiB payload, interrupted at about 50 %"

# drop: one check, the connection is cut at HALF and resumed in-process.
drop() {
  device; proxy -cut-at "$HALF"
  check
  report "$1" "$HALF" "-"
  statusline
  finish
}

# pause CASE [boot [RATE]]: SIGKILL once the agent has written all whole
# buffers up to PAUSE; with "boot", also power-cycle the simulated device (a
# new boot: what was not synced counts as lost, as after a power loss); with
# RATE, the agent runs with that download_rate_limit, like on a real link.
# PAUSE lies between checkpoints (1 MiB and 4 MiB grids alike).
PAUSE=$(( HALF + (2 << 20) + (512 << 10) + 12345 ))
pause() {
  device; proxy -pause-at "$PAUSE"
  if [ -n "${3:-}" ]; then sed -i '1s/^{/{\n  "download_rate_limit": "'"$3"'",/' "$WORK/dev/agent.json"; fi
  "$A" --config "$WORK/dev/agent.json" check > /dev/null 2>> "$WORK/agent.log" & AGENT_PID=$!
  local img="$WORK/dev/slots/slot-b.img"
  local written=$(( PAUSE / (256 << 10) * (256 << 10) ))   # the agent writes whole buffers of 256 KiB
  for _ in $(seq 30000); do
    stats | grep -q '"paused":true' && [ "$(stat -c %s "$img" 2>/dev/null || echo 0)" -ge "$written" ] && break
    kill -0 "$AGENT_PID" 2>/dev/null || { echo "bench-resume: the agent ended before the pause" >&2; tail -5 "$WORK/agent.log" >&2; exit 1; }
    sleep 0.01
  done
  sleep 0.2   # let the last write return; the agent then waits for the next byte
  kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=
  echo "--- killed ($1)" >> "$WORK/agent.log"
  if [ "${2:-}" = boot ]; then "$U" simulate-boot "$WORK/dev" > /dev/null; fi
  local s; s=$(saved)
  proxy   # pass everything from now on; the counts start again from 0
  check
  local again=$(( $(served) - (BYTES - PAUSE) ))
  printf '%-10s interrupted at %10d (%5.1f %%), saved offset %10s; after the restart the proxy sent %d bytes for the %d missing: re-downloaded %d bytes (%s); %s\n' \
    "$1" "$PAUSE" "$(awk -v a="$PAUSE" -v b="$BYTES" 'BEGIN { print 100 * a / b }')" "$s" "$(served)" "$(( BYTES - PAUSE ))" "$again" "$(mib "$again")" \
    "$(goal "$again")"
  statusline
  finish
}

# flow CASE [boot [RATE]]: SIGKILL while data flows, as soon as HALF bytes were
# sent; with "boot", also power-cycle the simulated device (bytes not
# covered by the last checkpoint count as lost). A new `check` resumes.
flow() {
  device; proxy
  if [ -n "${3:-}" ]; then sed -i '1s/^{/{\n  "download_rate_limit": "'"$3"'",/' "$WORK/dev/agent.json"; fi
  if [ -n "${STAGE:-}" ]; then sed -i '1s/^{/{\n  "stage_compressed": '"$STAGE"',/' "$WORK/dev/agent.json"; fi
  "$A" --config "$WORK/dev/agent.json" check > /dev/null 2>> "$WORK/agent.log" & AGENT_PID=$!
  AT=0; T0=; F0=0
  for _ in $(seq 100000); do
    AT=$(served)
    if [ -z "$T0" ] && [ "${AT:-0}" -gt 0 ]; then T0=$(date +%s%N); F0=$AT; fi
    [ "${AT:-0}" -ge "$HALF" ] && break
    kill -0 "$AGENT_PID" 2>/dev/null || { echo "bench-resume: the agent ended before half the payload was sent" >&2; exit 1; }
  done
  local t1; t1=$(date +%s%N)
  kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=
  # The link rate: bytes sent between the first poll that saw some and
  # the one that saw half, over that time (0 if one poll saw both).
  local rate=0
  if [ -n "$T0" ] && [ "$t1" -gt "$T0" ] && [ "$AT" -gt "$F0" ]; then rate=$(( (AT - F0) * 1000000000 / (t1 - T0) )); fi
  echo "--- killed ($1)" >> "$WORK/agent.log"
  if [ "${2:-}" = boot ]; then "$U" simulate-boot "$WORK/dev" > /dev/null; fi
  AT=$(served); S=$(saved)
  check
  report "$1" "$AT" "$S" "$rate"
  statusline
  finish
}
for _ in $(seq "$RUNS"); do
  if want drop; then drop drop; fi
  if want kill-pause; then pause kill-pause; fi
  if want power; then pause power boot; fi
  if want power-link; then pause power-link boot 32MiB; fi
  if want kill-flow; then flow kill-flow; fi
  if want power-flow; then flow power-flow boot; fi
  if want power-flow-link; then flow power-flow-link boot 32MiB; fi
  # compressed-*: the zstd payload, which the agent stages in its data
  # directory (payload.tmp) before decompressing it into the slot: the
  # connection dropped after half of it (the same check resumes), and a
  # power loss while data flows at full local speed.
  PRODUCT=benchz; BYTES=$ZBYTES; HALF=$(( BYTES / 2 ))
  if want compressed-drop; then drop compressed-drop; fi
  if want compressed-power-flow; then flow compressed-power-flow boot; fi
  # streamed-*: the framed payload, streamed into the slot.
  PRODUCT=benchf; BYTES=$FBYTES; HALF=$(( BYTES / 2 ))
  if want streamed-power-flow; then STAGE=false flow streamed-power-flow boot; fi
  PRODUCT=bench; BYTES=$(( SIZE_MIB << 20 )); HALF=$(( BYTES / 2 ))
done
echo "(re-downloaded = bytes the proxy sent for the payload, all requests, minus the payload size; the agent's counter also counts bytes it read before it was killed only up to its last checkpoint)"
