#!/usr/bin/env bash
# bench-checks.sh — update checks per second: `uptrust serve` against nginx
# serving the same fleet timestamp.json, both answering conditional GETs
# (If-None-Match with the server's own ETag → 304), which is what every
# device sends on every update check.
#
# Usage: scripts/bench-checks.sh            (from the repository root)
#
# Environment:
#   UPTRUST_SERVER_CMD  command that serves a project instead of building
#                       ./cmd/uptrust; it is run as
#                       `$UPTRUST_SERVER_CMD --listen 127.0.0.1:PORT` and must
#                       serve /repo/fleet/metadata/timestamp.json and /healthz.
#   UPTRUST_PORT        port for uptrust (default 18080)
#   NGINX_PORT          port for nginx (default 18081)
#   DURATION            wrk duration per run (default 10s)
#   CONNECTIONS         wrk connections (default 256)
#   ROUNDS              alternating rounds (default 3)
#   NGINX_TUNED=1       add open_file_cache and unlimited keep-alive requests
#                       to nginx (by default it runs Debian's stock settings,
#                       minus access logging)
#
# Needs: go (unless UPTRUST_SERVER_CMD is set), wrk, nginx, curl, awk.
# Everything listens on 127.0.0.1 only; all processes started here are
# stopped on exit.
set -euo pipefail

UPTRUST_PORT=${UPTRUST_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-256}
ROUNDS=${ROUNDS:-3}
THREADS=2
META_PATH=/repo/fleet/metadata/timestamp.json

die() { echo "bench-checks: $*" >&2; exit 1; }

for tool in wrk nginx curl awk; do
	command -v "$tool" >/dev/null 2>&1 || [[ -x /usr/sbin/$tool ]] || die "$tool not found (apt-get install wrk nginx-light curl)"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

WORK=$(mktemp -d /tmp/bench-checks.XXXXXX)
SERVER_PID=""
NGINX_PID=""
cleanup() {
	set +e
	if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; fi
	if [[ -n "$NGINX_PID" ]]; then kill -QUIT "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null; fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for port in "$UPTRUST_PORT" "$NGINX_PORT"; do
	if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
		die "port $port is already in use"
	fi
done

# wait_http URL: poll until the URL answers 2xx, for at most 60 s.
wait_http() {
	local i
	for ((i = 0; i < 600; i++)); do
		curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# --- uptrust ---------------------------------------------------------------
UPTRUST_URL="http://127.0.0.1:$UPTRUST_PORT$META_PATH"
if [[ -n "${UPTRUST_SERVER_CMD:-}" ]]; then
	echo "server: $UPTRUST_SERVER_CMD (UPTRUST_SERVER_CMD)"
	# shellcheck disable=SC2086 # the command is meant to be word-split
	$UPTRUST_SERVER_CMD --listen "127.0.0.1:$UPTRUST_PORT" >"$WORK/server.log" 2>&1 &
	SERVER_PID=$!
else
	[[ -d cmd/uptrust ]] || die "run from the repository root (cmd/uptrust not found)"
	echo "building ./cmd/uptrust"
	go build -o "$WORK/uptrust" ./cmd/uptrust
	"$WORK/uptrust" init --dev --dir "$WORK/project" >"$WORK/init.log" 2>&1 ||
		{ cat "$WORK/init.log" >&2; die "uptrust init failed"; }
	echo "server: uptrust serve --dir $WORK/project --listen 127.0.0.1:$UPTRUST_PORT"
	"$WORK/uptrust" serve --dir "$WORK/project" --listen "127.0.0.1:$UPTRUST_PORT" >"$WORK/server.log" 2>&1 &
	SERVER_PID=$!
fi
wait_http "$UPTRUST_URL" || { cat "$WORK/server.log" >&2; die "uptrust did not serve $META_PATH"; }

# etag_of URL: the ETag a server sends for URL.
etag_of() {
	curl -fsS -D - -o /dev/null "$1" | awk 'tolower($1) == "etag:" { sub(/\r$/, ""); $1 = ""; sub(/^ /, ""); print }'
}

# --- nginx, same bytes -------------------------------------------------------
mkdir -p "$WORK/www$(dirname "$META_PATH")" "$WORK/nginx-tmp"
curl -fsS -o "$WORK/www$META_PATH" "$UPTRUST_URL"
# Started as root, nginx workers run as nobody: they must be able to read.
chmod -R a+rX "$WORK"
TUNING=""
if [[ "${NGINX_TUNED:-0}" == 1 ]]; then
	TUNING="open_file_cache max=1000 inactive=60s; keepalive_requests 1000000;"
fi
cat >"$WORK/nginx.conf" <<EOF
# Debian's stock nginx.conf reduced to what serving a static file needs.
worker_processes auto;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
	include /etc/nginx/mime.types;
	default_type application/octet-stream;
	sendfile on;
	tcp_nopush on;
	keepalive_timeout 65;
	access_log off;
	etag on;
	client_body_temp_path $WORK/nginx-tmp/body;
	proxy_temp_path $WORK/nginx-tmp/proxy;
	fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
	uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
	scgi_temp_path $WORK/nginx-tmp/scgi;
	$TUNING
	server {
		listen 127.0.0.1:$NGINX_PORT;
		root $WORK/www;
	}
}
EOF
"$NGINX" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" >"$WORK/nginx.out" 2>&1 &
NGINX_PID=$!
NGINX_URL="http://127.0.0.1:$NGINX_PORT$META_PATH"
wait_http "$NGINX_URL" || { cat "$WORK/nginx.out" "$WORK/nginx-error.log" >&2; die "nginx did not start"; }
echo "nginx: $("$NGINX" -v 2>&1 | sed 's/.*: //'), worker_processes auto ($(nproc) cores)${TUNING:+, tuned: $TUNING}"

cmp -s "$WORK/www$META_PATH" <(curl -fsS "$NGINX_URL") || die "nginx serves different bytes"

UPTRUST_ETAG=$(etag_of "$UPTRUST_URL")
NGINX_ETAG=$(etag_of "$NGINX_URL")
[[ -n "$UPTRUST_ETAG" ]] || die "uptrust sent no ETag"
[[ -n "$NGINX_ETAG" ]] || die "nginx sent no ETag"
echo "document: $(wc -c <"$WORK/www$META_PATH") bytes; ETags: uptrust $UPTRUST_ETAG, nginx $NGINX_ETAG"

# Both must answer the conditional request with 304, or the comparison is
# meaningless.
for pair in "uptrust|$UPTRUST_URL|$UPTRUST_ETAG" "nginx|$NGINX_URL|$NGINX_ETAG"; do
	IFS='|' read -r name url etag <<<"$pair"
	code=$(curl -sS -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$url")
	[[ "$code" == 304 ]] || die "$name answered $code, not 304, to If-None-Match: $etag"
done

# cpu_ticks PID...: user+system CPU time of the processes, in clock ticks.
cpu_ticks() {
	local p t=0
	for p in "$@"; do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

# run_wrk NAME ROUND URL ETAG PID...: one wrk run; prints
# "req/s p99_ms cpu_us_per_request", the last from the given server processes.
run_wrk() {
	local name=$1 round=$2 url=$3 etag=$4
	shift 4
	local out="$WORK/wrk-$name-$round.txt" c0 c1
	c0=$(cpu_ticks "$@")
	wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "If-None-Match: $etag" "$url" >"$out" 2>&1 ||
		{ cat "$out" >&2; die "wrk failed against $name"; }
	c1=$(cpu_ticks "$@")
	if grep -q -e 'Non-2xx or 3xx' -e 'Socket errors' "$out"; then
		cat "$out" >&2
		die "$name: wrk saw errors or responses other than 2xx/3xx"
	fi
	awk -v ticks=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" '
		/requests in/ { n = $1 }
		/Requests\/sec:/ { rps = $2 }
		$1 == "99%" {
			v = $2
			if (v ~ /us$/) { sub(/us$/, "", v); p99 = v / 1000 }
			else if (v ~ /ms$/) { sub(/ms$/, "", v); p99 = v }
			else if (v ~ /s$/) { sub(/s$/, "", v); p99 = v * 1000 }
		}
		END {
			if (rps == "" || p99 == "" || n == 0) exit 1
			printf "%.0f %.2f %.1f\n", rps, p99, ticks * 1e6 / hz / n
		}' "$out" || { cat "$out" >&2; die "cannot parse wrk output for $name"; }
}

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -H 'If-None-Match: <own ETag>' (alternating, $ROUNDS rounds)"
echo "(cpu: user+system time of the server's processes per request; wrk and"
echo " anything else on the machine compete for the same cores)"
printf '%-6s %-8s %12s %10s %14s\n' run server "req/s" "p99 ms" "cpu us/req"
# shellcheck disable=SC2207 # pids are plain numbers
NGINX_WORKERS=($(pgrep -P "$NGINX_PID"))
: >"$WORK/results"
for ((round = 1; round <= ROUNDS; round++)); do
	for name in uptrust nginx; do
		if [[ $name == uptrust ]]; then
			res=$(run_wrk uptrust "$round" "$UPTRUST_URL" "$UPTRUST_ETAG" "$SERVER_PID")
		else
			res=$(run_wrk nginx "$round" "$NGINX_URL" "$NGINX_ETAG" "${NGINX_WORKERS[@]}")
		fi
		read -r rps p99 cpu <<<"$res"
		printf '%-6s %-8s %12s %10s %14s\n' "$round" "$name" "$rps" "$p99" "$cpu"
		echo "$name $rps $p99 $cpu" >>"$WORK/results"
	done
done

# median NAME COLUMN
median() {
	awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$WORK/results" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
U_RPS=$(median uptrust 2)
N_RPS=$(median nginx 2)
echo
printf '%-6s %-8s %12s %10s %14s\n' median uptrust "$U_RPS" "$(median uptrust 3)" "$(median uptrust 4)"
printf '%-6s %-8s %12s %10s %14s\n' median nginx "$N_RPS" "$(median nginx 3)" "$(median nginx 4)"
awk -v u="$U_RPS" -v n="$N_RPS" 'BEGIN { printf "ratio uptrust/nginx req/s: %.2f\n", u / n }'
