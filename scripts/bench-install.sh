#!/usr/bin/env bash
# bench-install.sh — the install-pipeline benchmark, with the real parts:
# `uptrust serve` on loopback and the `uptrust-agent` binary on a simulated
# device (file slots).
#
# 1. Throughput: one `uptrust-agent check` that finds a SIZE_MIB release and
#    downloads → hashes → writes it into the inactive slot file with fsync
#    (plus the TUF refresh of both repositories and arming the bootloader),
#    against a plain copy of the same bytes (the blob file the server
#    serves) into a file with `dd bs=1M conv=fsync`. RUNS runs of each,
#    alternating, source in the page cache for both, destination on the same
#    filesystem. Prints per-run and median MB/s (10^6 bytes/s, wall time of
#    the whole process) and the ratio. Goal: >= 0.8.
# 2. Memory: one RSS_SIZE_MIB install by `uptrust-agent check` under
#    /usr/bin/time -v; prints the agent's peak RSS. Goal: <= 32 MiB for 1 GiB.
#
# Usage: scripts/bench-install.sh
# Env:   SIZE_MIB (512), RUNS (5), RSS_SIZE_MIB (1024), BUDGET (the agent's
#        power_loss_budget, e.g. 16MiB; default: the agent's default),
#        BENCH_DIR (parent of the scratch directory; default $TMPDIR or /var/tmp)
# Needs: go, dd, curl, /usr/bin/time (Debian package "time"),
#        about (SIZE_MIB + RSS_SIZE_MIB) * 3 MiB of free disk.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-512}
RUNS=${RUNS:-5}
RSS_SIZE_MIB=${RSS_SIZE_MIB:-1024}
[ -x /usr/bin/time ] || { echo "bench-install: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/var/tmp}}/uptrust-bench-install.XXXXXX")
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

go build -o "$WORK/uptrust" ./cmd/uptrust
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.buildTime=$(git log -1 --format=%cI 2>/dev/null)" -o "$WORK/uptrust-agent" ./cmd/uptrust-agent
U="$WORK/uptrust"; A="$WORK/uptrust-agent"; P="$WORK/project"

echo "== machine"
echo "cpu:   $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-) x $(nproc), sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)"
echo "go:    $(go version)"
echo "fs:    $(df -T "$WORK" | awk 'NR==2 {print $1, $2}') ($WORK)"
echo "load:  $(cut -d' ' -f1-3 /proc/loadavg)"
echo "agent: $(stat -c %s "$A") bytes (stripped, CGO off), power_loss_budget ${BUDGET:-default}"

"$U" init --dev --dir "$P" > /dev/null 2>&1
"$U" product add bench --hardware rev-a --support-until 2030-12-31 --dir "$P" > /dev/null
head -c 65536 /dev/urandom > "$WORK/factory.img"
"$U" release add bench 1.0.0 "$WORK/factory.img" --kind feature --security-version 1 --dir "$P" > /dev/null

# publish VERSION MIB: a random payload of MIB MiB; prints the blob's path.
publish() {
  head -c "$(( $2 << 20 ))" /dev/urandom > "$WORK/payload.img"
  local sha
  sha=$("$U" release add bench "$1" "$WORK/payload.img" --kind security --security-version 2 --dir "$P" | awk '{print $NF}')
  rm -f "$WORK/payload.img"
  "$U" rollout start bench "$1" --percent 100 --dir "$P" > /dev/null
  echo "$P/blobs/sha256/${sha:0:2}/$sha"
}
BLOB=$(publish 2.0.0 "$SIZE_MIB")
BYTES=$(stat -c %s "$BLOB")

PORT=$(( 20000 + RANDOM % 20000 ))
"$U" serve --dir "$P" --listen "127.0.0.1:$PORT" 2> "$WORK/serve.log" &
SERVER_PID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && break; sleep 0.1; done

# device N: a fresh simulated device running 1.0.0.
device() {
  rm -rf "$WORK/dev"
  "$U" simulate-device "$WORK/dev" --dir "$P" --server "http://127.0.0.1:$PORT" --product bench --hardware rev-a \
    --factory "$WORK/factory.img" --version 1.0.0 --security-version 1 > /dev/null
  if [ -n "${BUDGET:-}" ]; then sed -i '1s/^{/{\n  "power_loss_budget": "'"$BUDGET"'",/' "$WORK/dev/agent.json"; fi
}
check_installed() {
  grep -q '"version": "'"$1"'"' "$WORK/dev/data/state.json" || { echo "bench-install: agent did not install $1" >&2; cat "$WORK/agent.log" >&2; exit 1; }
}

now() { date +%s%N; }
mbps() { awk -v b="$1" -v ns="$2" 'BEGIN { printf "%.1f", b / (ns / 1e9) / 1e6 }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
DST="$WORK/copy.img"
# prep: same starting point for both sides — nothing dirty, source in the page cache.
prep() { rm -f "$DST"; sync; cat "$BLOB" > /dev/null; }

echo "== throughput: ${SIZE_MIB} MiB, ${RUNS} runs each, alternating"
inst=(); copy=()
for i in $(seq "$RUNS"); do
  device; prep
  t0=$(now); "$A" --config "$WORK/dev/agent.json" check > /dev/null 2> "$WORK/agent.log" || [ $? -eq 6 ]; t1=$(now); inst+=($(( t1 - t0 )))
  "$U" simulate-boot "$WORK/dev" > /dev/null; "$A" --config "$WORK/dev/agent.json" check > /dev/null 2>> "$WORK/agent.log"
  check_installed 2.0.0
  prep
  t0=$(now); dd if="$BLOB" of="$DST" bs=1M conv=fsync status=none; t1=$(now); copy+=($(( t1 - t0 )))
  printf 'run %d: agent install %8s MB/s   plain copy %8s MB/s\n' "$i" "$(mbps "$BYTES" "${inst[-1]}")" "$(mbps "$BYTES" "${copy[-1]}")"
done
mi=$(median "${inst[@]}"); mc=$(median "${copy[@]}")
echo "median: agent install $(mbps "$BYTES" "$mi") MB/s, plain copy $(mbps "$BYTES" "$mc") MB/s"
echo "ratio install/plain copy: $(awk -v a="$mc" -v b="$mi" 'BEGIN { printf "%.2f", a / b }') (goal >= 0.80)"
rm -f "$DST"

echo "== memory: ${RSS_SIZE_MIB} MiB install by uptrust-agent check under /usr/bin/time -v"
BLOB=$(publish 3.0.0 "$RSS_SIZE_MIB")
sleep 2   # the server reloads content when the store's generation changes
device
/usr/bin/time -v "$A" --config "$WORK/dev/agent.json" check > /dev/null 2> "$WORK/time.txt" || [ $? -eq 6 ] || { cat "$WORK/time.txt" >&2; exit 1; }
kb=$(awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$WORK/time.txt")
"$U" simulate-boot "$WORK/dev" > /dev/null; "$A" --config "$WORK/dev/agent.json" check > /dev/null 2>> "$WORK/agent.log"
check_installed 3.0.0
echo "installed $(( RSS_SIZE_MIB )) MiB; maximum resident set size: ${kb} kB ($(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }') MiB; goal <= 32 MiB)"
