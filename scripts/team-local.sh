#!/bin/sh
# team-local.sh start|stop DIR: throwaway PostgreSQL and S3 (SeaweedFS) on
# loopback for trying "Run it for a team" (README) on one machine.
#
#   eval "$(sh scripts/team-local.sh start /tmp/uptrust-team)"
#       starts both and prints the shell variables DB, BLOBS,
#       AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to use with
#       uptrust serve --database "$DB" --blobs "$BLOBS"
#   sh scripts/team-local.sh stop /tmp/uptrust-team
#
# Needs Debian's postgresql (initdb and pg_ctl; run as nobody when root),
# and SeaweedFS's weed: $UPTRUST_WEED, else the binary
# scripts/build-seaweedfs.sh builds. Ports are free ones the kernel picks.
# A real deployment uses its own PostgreSQL and bucket instead.
set -eu

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
	echo "usage: $0 start|stop DIR" >&2
	exit 2
fi

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
as_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u nobody -- "$@"
	else
		"$@"
	fi
}
freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

case $cmd in
stop)
	[ -d "$dir/pg" ] && as_owner "$pgbin/pg_ctl" -D "$dir/pg" -m fast stop >/dev/null 2>&1 || true
	if [ -f "$dir/weed.pid" ]; then
		pid=$(cat "$dir/weed.pid")
		kill "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 20 ]; do
			sleep 0.5
			i=$((i + 1))
		done
		kill -9 "$pid" 2>/dev/null || true
		rm -f "$dir/weed.pid"
	fi
	echo "stopped what ran in $dir" >&2
	exit 0
	;;
start) ;;
*)
	echo "usage: $0 start|stop DIR" >&2
	exit 2
	;;
esac

[ -n "$pgbin" ] || { echo "team-local: no PostgreSQL (apt-get install postgresql)" >&2; exit 1; }
weed=${UPTRUST_WEED:-$(ls -d "$HOME"/.cache/uptrust/seaweedfs/*/weed 2>/dev/null | tail -1)}
[ -x "$weed" ] || { echo "team-local: no weed binary (sh scripts/build-seaweedfs.sh, or set UPTRUST_WEED)" >&2; exit 1; }

mkdir -p "$dir"
chmod 755 "$dir"
# PostgreSQL: a cluster in DIR/pg with its socket there too, trust on loopback.
pgport=$(freeport)
if [ ! -d "$dir/pg" ]; then
	mkdir "$dir/pg"
	[ "$(id -u)" = 0 ] && chown nobody "$dir/pg"
	as_owner "$pgbin/initdb" -D "$dir/pg" -U uptrust -A trust >"$dir/initdb.log" 2>&1
fi
as_owner "$pgbin/pg_ctl" -D "$dir/pg" -l "$dir/pg/server.log" -w \
	-o "-c listen_addresses=127.0.0.1 -p $pgport -c unix_socket_directories=$dir/pg" start >/dev/null
"$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U uptrust uptrust 2>/dev/null || true

# SeaweedFS: one process (master, volume, filer, S3 gateway) in DIR/weed.
key=uptrust-team secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
mkdir -p "$dir/weed/data"
printf '{"identities":[{"name":"team","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' \
	"$key" "$secret" >"$dir/weed/s3.json"
s3port=$(freeport)
p1=$(freeport) p2=$(freeport) p3=$(freeport) p4=$(freeport) p5=$(freeport) p6=$(freeport) p7=$(freeport)
(cd "$dir/weed" && nohup "$weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir/weed/data" \
	-s3 -s3.config="$dir/weed/s3.json" -s3.port="$s3port" -master.port="$p1" -master.port.grpc="$p2" \
	-volume.port="$p3" -volume.port.grpc="$p4" -filer.port="$p5" -filer.port.grpc="$p6" -s3.port.grpc="$p7" \
	-s3.port.iceberg=0 -s3.port.lance=0 -metricsPort=0 -master.telemetry=false \
	-filer.localSocket="$dir/weed/filer.sock" -s3.localSocket="$dir/weed/s3.sock" \
	-master.volumeSizeLimitMB=1024 -volume.max=32 >"$dir/weed/weed.log" 2>&1 &
	echo $! >"$dir/weed.pid")
# The bucket, created as soon as the gateway answers (up to two minutes).
i=0
until curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" -X PUT "http://127.0.0.1:$s3port/firmware" >/dev/null 2>&1 ||
	curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" "http://127.0.0.1:$s3port/firmware" >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 240 ]; then
		echo "team-local: SeaweedFS did not come up; see $dir/weed/weed.log" >&2
		exit 1
	fi
	sleep 0.5
done
# Wait until a write goes through (the volume server has joined).
i=0
until curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" -T /dev/null "http://127.0.0.1:$s3port/firmware/probe" >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -gt 240 ] && { echo "team-local: bucket takes no writes; see $dir/weed/weed.log" >&2; exit 1; }
	sleep 0.5
done
curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" -X DELETE "http://127.0.0.1:$s3port/firmware/probe" >/dev/null 2>&1 || true

echo "team-local: PostgreSQL on 127.0.0.1:$pgport, S3 on 127.0.0.1:$s3port; stop with: sh $0 stop $dir" >&2
echo "DB='postgres://uptrust@127.0.0.1:$pgport/uptrust?sslmode=disable'"
echo "BLOBS='s3://firmware?endpoint=http://127.0.0.1:$s3port'"
echo "export AWS_ACCESS_KEY_ID='$key' AWS_SECRET_ACCESS_KEY='$secret'"
