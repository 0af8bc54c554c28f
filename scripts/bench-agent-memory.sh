#!/usr/bin/env bash
# bench-agent-memory.sh — the real uptrust-agent's peak RSS during one
# check, against a mirror that serves the project's real metadata and
# against one that serves 4.9 MB of unsigned JSON in place of the release
# repository's targets role (the "memory before verification" attack of
# issue 12: a device must refuse it by length without parsing it).
#
# Usage: scripts/bench-agent-memory.sh          (from the repository root)
#
# Environment:
#   AGENT_BIN    an uptrust-agent binary to measure instead of building
#                ./cmd/uptrust-agent (e.g. an older build, for comparison)
#   JUNK_BYTES   size of the unsigned document (default 4900000, below
#                go-tuf's own 5,000,000-byte default)
#   PORT         port of the mirror (default 18090)
#   GOMEMLIMIT   passed to the agent (default 48MiB, as the systemd unit)
#
# Needs: go, python3 (serves the mirror), /usr/bin/time (GNU time -v).
# Everything listens on 127.0.0.1 only; the mirror is stopped on exit.
set -euo pipefail

PORT=${PORT:-18090}
JUNK_BYTES=${JUNK_BYTES:-4900000}
export GOMEMLIMIT=${GOMEMLIMIT:-48MiB}

die() { echo "bench-agent-memory: $*" >&2; exit 1; }
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found (apt-get install time)"
command -v python3 >/dev/null || die "python3 not found"
[[ -d cmd/uptrust ]] || die "run from the repository root (cmd/uptrust not found)"

WORK=$(mktemp -d /tmp/bench-agent-memory.XXXXXX)
MIRROR_PID=""
cleanup() {
	set +e
	if [[ -n "$MIRROR_PID" ]]; then kill "$MIRROR_PID" 2>/dev/null; wait "$MIRROR_PID" 2>/dev/null; fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$WORK/uptrust" ./cmd/uptrust
AGENT=${AGENT_BIN:-$WORK/uptrust-agent}
[[ -n "${AGENT_BIN:-}" ]] || go build -o "$AGENT" ./cmd/uptrust-agent

U() { "$WORK/uptrust" "$@" --dir "$WORK/project" >>"$WORK/uptrust.log" 2>&1 || { cat "$WORK/uptrust.log" >&2; die "uptrust $1 failed"; }; }
head -c 262144 /dev/urandom >"$WORK/1.0.0.img"
head -c 262144 /dev/urandom >"$WORK/1.1.0.img"
"$WORK/uptrust" init --dev --dir "$WORK/project" >"$WORK/uptrust.log" 2>&1 || { cat "$WORK/uptrust.log" >&2; die "uptrust init failed"; }
U product add thermostat --hardware rev-a --support-until 2036-01-01
U release add thermostat 1.1.0 "$WORK/1.1.0.img" --kind security --security-version 2
U rollout start thermostat 1.1.0 --percent 100
U mirror export "$WORK/good"
cp -a "$WORK/good" "$WORK/hostile"

# The hostile mirror's newest release targets role: unsigned, JUNK_BYTES long.
md="$WORK/hostile/repo/release/metadata"
targets=$(ls "$md" | grep -E '^[0-9]+\.targets\.json$' | sort -n | tail -1)
[[ -n "$targets" ]] || die "no targets role in $md"
python3 - "$md/$targets" "$JUNK_BYTES" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
parts = ['{"signatures":[],"signed":{"_type":"targets","spec_version":"1.0.31","version":99,'
         '"expires":"2099-01-01T00:00:00Z","targets":{']
size, i = len(parts[0]), 0
while size < n - 100:
    e = ('' if i == 0 else ',') + '"thermostat/9.%d.0":{"length":1,"hashes":{"sha256":"00"},"custom":{"x":[0,0,0,0]}}' % i
    parts.append(e); size += len(e); i += 1
parts.append('}}}')
doc = ''.join(parts)
open(path, 'w').write(doc + ' ' * max(0, n - len(doc)))
PY

# check NAME TREE: a fresh device's first check against TREE, under time -v.
check() {
	local name=$1 tree=$2
	if [[ -n "$MIRROR_PID" ]]; then kill "$MIRROR_PID"; wait "$MIRROR_PID" 2>/dev/null || true; MIRROR_PID=""; fi
	python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$tree" >"$WORK/mirror-$name.log" 2>&1 &
	MIRROR_PID=$!
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$PORT/repo/release/metadata/timestamp.json" 2>/dev/null && break
		sleep 0.1
	done
	"$WORK/uptrust" simulate-device "$WORK/dev-$name" --dir "$WORK/project" --server "http://127.0.0.1:$PORT" \
		--product thermostat --hardware rev-a --factory "$WORK/1.0.0.img" --version 1.0.0 --security-version 1 >/dev/null
	/usr/bin/time -v "$AGENT" --config "$WORK/dev-$name/agent.json" check >"$WORK/check-$name.out" 2>"$WORK/check-$name.time" || true
	local rss
	rss=$(awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$WORK/check-$name.time")
	printf '%-8s peak RSS %6d KiB (%.1f MiB)\n' "$name" "$rss" "$(echo "$rss / 1024" | bc -l)"
	"$AGENT" --config "$WORK/dev-$name/agent.json" status 2>&1 | grep -iE 'last check|reason|error|version' | head -4 | sed 's/^/         /'
}

echo "agent: $AGENT, GOMEMLIMIT=$GOMEMLIMIT, unsigned targets role: $JUNK_BYTES bytes"
check good "$WORK/good"
check hostile "$WORK/hostile"
