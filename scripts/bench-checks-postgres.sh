#!/usr/bin/env bash
# bench-checks-postgres.sh — update checks per second with the server's store
# on SQLite against the same server on PostgreSQL (with its payloads in S3 when
# SeaweedFS is built), and nginx serving the same
# bytes, in one run (alternating rounds). Every request is the conditional
# GET a device sends on each update check: /repo/fleet/metadata/timestamp.json
# with If-None-Match: <the server's own ETag> → 304. The server answers from
# the snapshot it holds in memory; the database is not on this path, which
# the script checks by counting the PostgreSQL transactions during the
# PostgreSQL rounds: what remains is the server's generation poll (every 2 s)
# and statistics PostgreSQL flushes late, not one per request.
#
# Usage: scripts/bench-checks-postgres.sh   (from the repository root)
#
# Environment: DURATION (wrk duration per run, default 10s), CONNECTIONS
# (default 256), ROUNDS (default 3).
#
# Needs: go, wrk, nginx, curl, awk, psql, and the PostgreSQL server binaries
# (Debian: apt-get install wrk nginx-light curl postgresql). PostgreSQL is
# started by ./bench/pgserver in a temporary directory on a unix socket, as
# "nobody" when run as root. Everything listens on 127.0.0.1 (ports from the
# kernel) and is stopped on exit.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-256}
ROUNDS=${ROUNDS:-3}
THREADS=2
META_PATH=/repo/fleet/metadata/timestamp.json

die() { echo "bench-checks-postgres: $*" >&2; exit 1; }
for tool in go wrk curl awk psql; do command -v "$tool" >/dev/null || die "$tool not found"; done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || die "nginx not found (apt-get install nginx-light)"
[[ -d cmd/uptrust ]] || die "run from the repository root"

. "$(dirname "$0")/lib/bench.sh"
bench_workdir /tmp/bench-checks-pg
etag_of() { curl -fsS -D - -o /dev/null "$1" | awk 'tolower($1) == "etag:" { sub(/\r$/, ""); $1 = ""; sub(/^ /, ""); print }'; }

echo "building ./cmd/uptrust and ./bench/pgserver"
go build -o "$WORK/uptrust" ./cmd/uptrust
go build -o "$WORK/pgserver" ./bench/pgserver

"$WORK/pgserver" >"$WORK/pg.url" 2>"$WORK/pg.log" &
PIDS+=($!)
for ((i = 0; i < 600; i++)); do [[ -s $WORK/pg.url ]] && break; sleep 0.1; done
DSN=$(head -1 "$WORK/pg.url")
[[ -n $DSN ]] || { cat "$WORK/pg.log" >&2; die "PostgreSQL did not start"; }
echo "postgres: $DSN"

# The PostgreSQL server keeps its payloads in S3 (SeaweedFS, bench/s3server)
# when the weed binary is there: the deployment the issue names. Payloads
# are not on the update-check path either.
BLOBS=()
go build -o "$WORK/s3server" ./bench/s3server
"$WORK/s3server" -dir "$WORK/s3" >"$WORK/s3.env" 2>"$WORK/s3.log" &
PIDS+=($!)
{
	for ((i = 0; i < 1200; i++)); do grep -q AWS_SECRET "$WORK/s3.env" 2>/dev/null && break; sleep 0.1; done
	if grep -q AWS_SECRET "$WORK/s3.env"; then
		set -a; . "$WORK/s3.env"; set +a
		BLOBS=(--blobs "$S3_URL")
		echo "s3: $S3_URL"
	else
		echo "s3: SeaweedFS did not start (scripts/build-seaweedfs.sh builds it); PostgreSQL server on filesystem blobs"
	fi
}

declare -A URL ETAG PID
for kind in sqlite postgres; do
	db=()
	[[ $kind == postgres ]] && db=(--database "$DSN")
	"$WORK/uptrust" init --dev --dir "$WORK/$kind" "${db[@]}" >"$WORK/init-$kind.log" 2>&1 ||
		{ cat "$WORK/init-$kind.log" >&2; die "init ($kind) failed"; }
	port=$(free_port)
	blobs=()
	[[ $kind == postgres ]] && blobs=("${BLOBS[@]}")
	"$WORK/uptrust" serve --dir "$WORK/$kind" --listen "127.0.0.1:$port" "${blobs[@]}" >"$WORK/serve-$kind.log" 2>&1 &
	PIDS+=($!)
	PID[$kind]=$!
	URL[$kind]="http://127.0.0.1:$port$META_PATH"
	wait_http "${URL[$kind]}" || { cat "$WORK/serve-$kind.log" >&2; die "serve ($kind) did not start"; }
done

mkdir -p "$WORK/www$(dirname "$META_PATH")" "$WORK/nginx-tmp"
curl -fsS -o "$WORK/www$META_PATH" "${URL[sqlite]}"
chmod -R a+rX "$WORK/www" "$WORK/nginx-tmp"
chmod a+x "$WORK"
NPORT=$(free_port)
cat >"$WORK/nginx.conf" <<EOF
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
	server { listen 127.0.0.1:$NPORT; root $WORK/www; }
}
EOF
"$NGINX" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" >"$WORK/nginx.out" 2>&1 &
PIDS+=($!)
PID[nginx]=$!
URL[nginx]="http://127.0.0.1:$NPORT$META_PATH"
wait_http "${URL[nginx]}" || { cat "$WORK/nginx.out" "$WORK/nginx-error.log" >&2; die "nginx did not start"; }

for name in sqlite postgres nginx; do
	ETAG[$name]=$(etag_of "${URL[$name]}")
	code=$(curl -sS -o /dev/null -w '%{http_code}' -H "If-None-Match: ${ETAG[$name]}" "${URL[$name]}")
	[[ $code == 304 ]] || die "$name answered $code, not 304, to If-None-Match: ${ETAG[$name]}"
done

xacts() { psql -X -At "$DSN" -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"; }

run_wrk() { # NAME ROUND → "req/s p99_ms"
	local out="$WORK/wrk-$1-$2.txt"
	wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "If-None-Match: ${ETAG[$1]}" "${URL[$1]}" >"$out" 2>&1 ||
		{ cat "$out" >&2; die "wrk failed against $1"; }
	if grep -q -e 'Non-2xx or 3xx' -e 'Socket errors' "$out"; then cat "$out" >&2; die "$1: wrk saw errors"; fi
	awk '/Requests\/sec:/ { rps = $2 }
		$1 == "99%" { v = $2
			if (v ~ /us$/) { sub(/us$/, "", v); p99 = v / 1000 }
			else if (v ~ /ms$/) { sub(/ms$/, "", v); p99 = v }
			else if (v ~ /s$/) { sub(/s$/, "", v); p99 = v * 1000 } }
		END { if (rps == "" || p99 == "") exit 1; printf "%.0f %.2f\n", rps, p99 }' "$out"
}

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -H 'If-None-Match: <own ETag>' $META_PATH ($ROUNDS alternating rounds, $(nproc) cores shared with wrk)"
printf '%-6s %-9s %10s %8s %s\n' run server "req/s" "p99 ms" "postgres transactions during the run"
: >"$WORK/results"
for ((round = 1; round <= ROUNDS; round++)); do
	for name in sqlite postgres nginx; do
		note=""
		[[ $name == postgres ]] && x0=$(xacts)
		read -r rps p99 <<<"$(run_wrk "$name" "$round")"
		if [[ $name == postgres ]]; then note="$(($(xacts) - x0 - 1))"; fi
		printf '%-6s %-9s %10s %8s %s\n' "$round" "$name" "$rps" "$p99" "$note"
		echo "$name $rps $p99" >>"$WORK/results"
	done
done
median() {
	awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$WORK/results" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo
for name in sqlite postgres nginx; do
	printf '%-6s %-9s %10s %8s\n' median "$name" "$(median "$name" 2)" "$(median "$name" 3)"
done
awk -v s="$(median sqlite 2)" -v p="$(median postgres 2)" -v n="$(median nginx 2)" \
	'BEGIN { printf "ratio postgres/sqlite: %.2f; sqlite/nginx: %.2f; postgres/nginx: %.2f\n", p / s, s / n, p / n }'
