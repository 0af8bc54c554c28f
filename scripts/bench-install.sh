#!/usr/bin/env bash
# bench-install.sh — the install-pipeline benchmark (see bench/install/doc.go).
#
# 1. Throughput: download → hash → write into a slot file with fsync, for a
#    SIZE_MIB payload served on loopback (bench/install/cmd/benchserve) and
#    installed by bench/install/cmd/installbench exactly as the agent does,
#    against a plain copy of the same bytes into a file with fsync
#    (dd bs=1M conv=fsync). RUNS runs of each, alternating, source file in the
#    page cache for both, destination on the same filesystem. Prints per-run
#    and median MB/s (10^6 bytes/s, wall time of the whole process) and the
#    ratio install/copy. Goal: >= 0.8.
# 2. Memory: one RSS_SIZE_MIB install under /usr/bin/time -v; prints the
#    agent's peak RSS. Goal: <= 32 MiB for 1 GiB.
#
# Usage: scripts/bench-install.sh
# Env:   SIZE_MIB (512), RUNS (5), RSS_SIZE_MIB (1024),
#        BENCH_DIR (parent of the scratch directory; default $TMPDIR or /var/tmp)
# Needs: go, dd, sha256sum, /usr/bin/time (Debian package "time"),
#        about SIZE_MIB*2 + RSS_SIZE_MIB*2 MiB of free disk.
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

go build -o "$WORK/installbench" ./bench/install/cmd/installbench
go build -o "$WORK/benchserve" ./bench/install/cmd/benchserve
mkdir "$WORK/srv"

echo "== machine"
echo "cpu:   $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-) x $(nproc), sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)"
echo "go:    $(go version)"
echo "fs:    $(df -T "$WORK" | awk 'NR==2 {print $1, $2}') ($WORK)"
echo "load:  $(cut -d' ' -f1-3 /proc/loadavg)"

# make_payload NAME MIB: random file in the served directory; prints its SHA-256.
make_payload() {
  head -c "$(( $2 << 20 ))" /dev/urandom > "$WORK/srv/$1"
  sync
  sha256sum "$WORK/srv/$1" | cut -d' ' -f1
}

"$WORK/benchserve" -dir "$WORK/srv" > "$WORK/url" &
SERVER_PID=$!
for _ in $(seq 50); do [ -s "$WORK/url" ] && break; sleep 0.1; done
BASE=$(head -n1 "$WORK/url")
[ -n "$BASE" ] || { echo "bench-install: benchserve did not start" >&2; exit 1; }

SRC="$WORK/srv/payload.bin"
DST="$WORK/slot.img"
BYTES=$(( SIZE_MIB << 20 ))
SHA=$(make_payload payload.bin "$SIZE_MIB")

now() { date +%s%N; }
mbps() { awk -v b="$1" -v ns="$2" 'BEGIN { printf "%.1f", b / (ns / 1e9) / 1e6 }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# prep: same starting point for both sides — no destination, nothing dirty,
# source in the page cache.
prep() { rm -f "$DST"; sync; cat "$SRC" > /dev/null; }

install_once() {
  "$WORK/installbench" -url "${BASE}payload.bin" -out "$DST" -length "$BYTES" -sha256 "$SHA" 2>> "$WORK/installbench.log"
}
copy_once() { dd if="$SRC" of="$DST" bs=1M conv=fsync status=none; }

echo "== throughput: ${SIZE_MIB} MiB, ${RUNS} runs each, alternating"
inst=(); copy=()
for i in $(seq "$RUNS"); do
  prep; t0=$(now); install_once; t1=$(now); inst+=($(( t1 - t0 )))
  prep; t0=$(now); copy_once; t1=$(now); copy+=($(( t1 - t0 )))
  printf 'run %d: install %8s MB/s   plain copy %8s MB/s\n' "$i" "$(mbps "$BYTES" "${inst[-1]}")" "$(mbps "$BYTES" "${copy[-1]}")"
done
mi=$(median "${inst[@]}"); mc=$(median "${copy[@]}")
echo "median: install $(mbps "$BYTES" "$mi") MB/s, plain copy $(mbps "$BYTES" "$mc") MB/s"
echo "ratio install/plain copy: $(awk -v a="$mc" -v b="$mi" 'BEGIN { printf "%.2f", a / b }') (goal >= 0.80)"

echo "== memory: ${RSS_SIZE_MIB} MiB install under /usr/bin/time -v"
rm -f "$DST" "$SRC"
RSS_BYTES=$(( RSS_SIZE_MIB << 20 ))
RSS_SHA=$(make_payload payload-rss.bin "$RSS_SIZE_MIB")
/usr/bin/time -v "$WORK/installbench" -url "${BASE}payload-rss.bin" -out "$DST" -length "$RSS_BYTES" -sha256 "$RSS_SHA" 2> "$WORK/time.txt"
grep '^installbench:' "$WORK/time.txt"
kb=$(awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$WORK/time.txt")
echo "Maximum resident set size: ${kb} kB ($(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }') MiB; goal <= 32 MiB)"
