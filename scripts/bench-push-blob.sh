#!/usr/bin/env bash
# bench-push-blob.sh — uploading a SIZE_MIB payload blob into a running
# `uptrust serve --admin-listen` the way uptrust push does (bench/pushblob:
# upload.Blob, HEAD then a streamed PUT /api/v1/blobs/{sha256}), against
# `curl -T` of the same file to the same storage, same run, ROUNDS rounds
# (the order of the two alternates), medians and their ratio.
#
# Storages and their baselines:
#   fs   the server's blobs/ directory; baseline: curl -T to nginx with
#        dav_methods PUT writing into a directory on the same disk (nginx
#        spools the body to a temporary file there and renames it; it does
#        not fsync, uptrust does, every 16 MiB and at the end)
#   s3   --blobs s3://… on SeaweedFS (bench/s3server, as the tests start
#        it); baseline: curl -T --aws-sigv4 with UNSIGNED-PAYLOAD, one PUT
#        of the same file to the same bucket (uptrust: a multipart upload
#        of 8 MiB parts straight at the content address, completed after
#        the hash matched). Skipped with a notice when the weed binary is
#        missing (scripts/build-seaweedfs.sh builds it).
# Each round uploads new content (the file's first bytes change), so
# nothing is deduplicated. ratio = curl seconds / push seconds (>= 0.8 is
# the goal). Peak RSS: the client's and curl's from /usr/bin/time -v, the
# server's from VmHWM after all rounds of its storage.
#
# Usage: scripts/bench-push-blob.sh   (from the repository root)
# Env:   SIZE_MIB (512), ROUNDS (3), MODE (blob | command), BENCH_DIR (parent of the scratch
#        directory; default $TMPDIR or /var/tmp)
# Needs: go, curl, nginx (with the dav module; Debian nginx-light has it),
#        /usr/bin/time, python3, sha256sum, about 3 * SIZE_MIB MiB of disk.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-512}
ROUNDS=${ROUNDS:-3}
# MODE=blob (default) times upload.Blob alone (bench/pushblob); MODE=command
# times the whole `uptrust push` of a release published offline with
# `uptrust release add` (not timed), the server started from a server kit.
MODE=${MODE:-blob}
die() { echo "bench-push-blob: $*" >&2; exit 1; }
[[ $MODE == blob || $MODE == command ]] || die "MODE must be blob or command"
for tool in go curl python3 sha256sum; do command -v "$tool" >/dev/null || die "$tool not found"; done
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found (apt-get install time)"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || die "nginx not found (apt-get install nginx-light)"

. "$(dirname "$0")/lib/bench.sh"
bench_workdir "${BENCH_DIR:-${TMPDIR:-/var/tmp}}/uptrust-bench-push"
# measure CMD...: prints "seconds peak_rss_kib"
measure() {
	/usr/bin/time -v -o "$WORK/time.txt" "$@" >"$WORK/out.txt" 2>&1 || { cat "$WORK/out.txt" "$WORK/time.txt" >&2; die "$1 failed"; }
	local wall rss
	wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$WORK/time.txt" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
	rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time.txt")
	echo "$wall $rss"
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "building ./cmd/uptrust, ./bench/pushblob, ./bench/s3server"
go build -o "$WORK/uptrust" ./cmd/uptrust
go build -o "$WORK/pushblob" ./bench/pushblob
go build -o "$WORK/s3server" ./bench/s3server

FILE=$WORK/payload.img
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$FILE"

# nginx with WebDAV PUT into $WORK/dav (same disk as the server's blobs/).
mkdir -p "$WORK/dav" "$WORK/nginx-tmp"
chmod a+x "$WORK"
chmod a+rwx "$WORK/dav" "$WORK/nginx-tmp"
NPORT=$(free_port)
cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 64; }
http {
	access_log off;
	client_max_body_size 0;
	client_body_temp_path $WORK/nginx-tmp/body;
	proxy_temp_path $WORK/nginx-tmp/proxy;
	fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
	uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
	scgi_temp_path $WORK/nginx-tmp/scgi;
	server {
		listen 127.0.0.1:$NPORT;
		root $WORK/dav;
		location / { dav_methods PUT DELETE; dav_access user:rw group:r all:r; }
	}
}
CONF
"$NGINX" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" >"$WORK/nginx.out" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$NPORT/" || curl -sS -o /dev/null "http://127.0.0.1:$NPORT/" ||
	{ cat "$WORK/nginx.out" "$WORK/nginx-error.log" >&2; die "nginx did not start"; }

STORAGES=(fs)
S3_URL=
WEED=$({ "$WORK/s3server" -h 2>&1 || true; } | sed -n 's/.*(default "\(.*\)")/\1/p' | head -1)
if [[ -n $WEED && -x $WEED ]]; then
	"$WORK/s3server" -dir "$WORK/s3" >"$WORK/s3.env" 2>"$WORK/s3.log" &
	PIDS+=($!)
	for _ in $(seq 600); do
		grep -q '^AWS_SECRET_ACCESS_KEY=' "$WORK/s3.env" 2>/dev/null && break
		kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$WORK/s3.log" >&2; die "s3server failed"; }
		sleep 0.2
	done
	# shellcheck disable=SC1091
	. "$WORK/s3.env"
	export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
	STORAGES+=(s3)
else
	echo "NOTICE: SeaweedFS weed not found (${WEED:-?}): the s3 storage is skipped; run scripts/build-seaweedfs.sh"
fi

echo "# SIZE_MIB=$SIZE_MIB, ROUNDS=$ROUNDS, $(nproc) cores (shared: other work may run), everything on 127.0.0.1"
printf '%-4s %5s %-6s %9s %12s\n' what round case seconds peak_rss_MiB
: >"$WORK/results"
for st in "${STORAGES[@]}"; do
	P=$WORK/proj-$st
	blobs=()
	[[ $st == s3 ]] && blobs=(--blobs "$S3_URL")
	if [[ $MODE == command ]]; then
		# The whole command: an offline project publishes a release per
		# round, the server starts from its server kit.
		OFF=$WORK/offline-$st
		"$WORK/uptrust" init --dev --dir "$OFF" >"$WORK/init-$st.log" 2>&1 || { cat "$WORK/init-$st.log" >&2; die "init failed"; }
		"$WORK/uptrust" product add thermostat --hardware rev-a --support-until 2031-12-31 --dir "$OFF" >/dev/null
		"$WORK/uptrust" server-kit --dir "$OFF" --out "$P" >/dev/null
	else
		"$WORK/uptrust" init --dev --dir "$P" >"$WORK/init-$st.log" 2>&1 || { cat "$WORK/init-$st.log" >&2; die "init failed"; }
	fi
	APORT=$(free_port)
	[[ $MODE == command ]] && blobs+=(--bootstrap-token-file "$P/admin-token")
	"$WORK/uptrust" serve --dir "$P" "${blobs[@]}" --listen "127.0.0.1:$(free_port)" --admin-listen "127.0.0.1:$APORT" \
		>"$WORK/serve-$st.log" 2>&1 &
	SPID=$!
	PIDS+=("$SPID")
	wait_http "http://127.0.0.1:$APORT/api/v1/openapi.json" || { cat "$WORK/serve-$st.log" >&2; die "serve ($st) did not start"; }
	if [[ $MODE == command ]]; then
		TOKEN=$("$WORK/uptrust" token create --role release-manager --name bench --expires 1d \
			--server "http://127.0.0.1:$APORT" --token "$(cat "$P/admin-token")" 2>/dev/null)
	else
		TOKEN=$("$WORK/uptrust" token create --role release-manager --name bench --expires 1d --dir "$P" 2>/dev/null)
	fi
	for ((round = 1; round <= ROUNDS; round++)); do
		printf '%s-%s-%s' "$st" "$round" "$RANDOM" | dd of="$FILE" bs=1 seek=0 conv=notrunc 2>/dev/null
		SHA=$(sha256sum "$FILE" | cut -d' ' -f1)
		if [[ $st == fs ]]; then
			curl_cmd=(curl -sS --fail-with-body -T "$FILE" "http://127.0.0.1:$NPORT/r$round.img")
		else
			curl_cmd=(curl -sS --fail-with-body -T "$FILE" --aws-sigv4 "aws:amz:us-east-1:s3"
				--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD"
				"$S3_ENDPOINT/$S3_BUCKET/curl-$round")
		fi
		push_cmd=("$WORK/pushblob" -server "http://127.0.0.1:$APORT" -token "$TOKEN" -sha "$SHA" "$FILE")
		if [[ $MODE == command ]]; then
			"$WORK/uptrust" release add thermostat "1.$round.0" "$FILE" --kind security --security-version 1 --dir "$OFF" >/dev/null 2>&1 ||
				die "release add failed"
			push_cmd=("$WORK/uptrust" push --dir "$OFF" --server "http://127.0.0.1:$APORT" --token "$TOKEN")
		fi
		if ((round % 2)); then
			read -r c_wall c_rss < <(measure "${curl_cmd[@]}")
			read -r p_wall p_rss < <(measure "${push_cmd[@]}")
		else
			read -r p_wall p_rss < <(measure "${push_cmd[@]}")
			read -r c_wall c_rss < <(measure "${curl_cmd[@]}")
		fi
		if [[ $st == fs ]]; then
			cmp -s "$FILE" "$P/blobs/sha256/${SHA:0:2}/$SHA" || die "the server's blob differs from the file"
			cmp -s "$FILE" "$WORK/dav/r$round.img" || die "nginx's file differs from the file"
			# The blob stays while a published release names it.
			[[ $MODE == command ]] || rm -f "$P/blobs/sha256/${SHA:0:2}/$SHA"
			rm -f "$WORK/dav/r$round.img"
		else
			code=$(curl -sS -o /dev/null -w '%{http_code}' -I -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$APORT/api/v1/blobs/$SHA")
			[[ $code == 200 ]] || die "the server does not have the blob after the push ($code)"
		fi
		awk -v st="$st" -v r="$round" -v cw="$c_wall" -v cr="$c_rss" -v pw="$p_wall" -v pr="$p_rss" 'BEGIN {
			printf "%-4s %5d %-6s %9.2f %12.1f\n", st, r, "curl", cw, cr/1024
			printf "%-4s %5d %-6s %9.2f %12.1f\n", st, r, "push", pw, pr/1024 }'
		echo "$st $c_wall $p_wall $p_rss" >>"$WORK/results"
	done
	hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$SPID/status")
	kill "$SPID"
	wait "$SPID" 2>/dev/null || true
	c_med=$(awk -v s="$st" '$1 == s { print $2 }' "$WORK/results" | median)
	p_med=$(awk -v s="$st" '$1 == s { print $3 }' "$WORK/results" | median)
	rss_max=$(awk -v s="$st" '$1 == s { print $4 }' "$WORK/results" | sort -g | tail -1)
	awk -v st="$st" -v c="$c_med" -v p="$p_med" -v h="$hwm" -v r="$rss_max" -v mib="$SIZE_MIB" 'BEGIN {
		printf "%s median: curl %.2f s (%.0f MiB/s), push %.2f s (%.0f MiB/s), ratio %.2f; peak RSS: push client %.1f MiB, server %.1f MiB\n",
			st, c, mib / c, p, mib / p, c / p, r / 1024, h / 1024 }' | tee -a "$WORK/summary"
done
echo
cat "$WORK/summary"
