#!/usr/bin/env bash
# bench-s3-upload.sh — uploading a SIZE_MIB payload into an S3 bucket
# through uptrust against `curl -T` of the same file to the same bucket, same
# run, with the wall time and peak RSS of each (/usr/bin/time -v).
#
# The S3 server is SeaweedFS (scripts/build-seaweedfs.sh), started by
# bench/s3server on loopback with the tests' configuration. Cases:
#   curl           curl -T FILE --aws-sigv4 to s3://BUCKET/curl-N (one PUT)
#   blobs-copy     uptrust blobs copy --to s3://... of a blobs/ directory
#                  holding only FILE: the S3 store's Put alone (multipart
#                  upload of 16 MiB parts to a temporary key while hashing,
#                  then the server-side copy to the content address)
#   release-add    uptrust release add --blobs s3://... FILE: what a release
#                  engineer runs (hashing, the upload, signing, the database)
# ratio = curl seconds / uptrust seconds (1.0: as fast as curl).
#
# Usage: scripts/bench-s3-upload.sh
# Env:   SIZE_MIB (512), RUNS (1), BENCH_DIR (parent of the scratch
#        directory; default $TMPDIR or /var/tmp)
# Needs: go, curl, /usr/bin/time (Debian package time), the weed binary,
#        about 4 * SIZE_MIB MiB of free disk.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-512}
RUNS=${RUNS:-1}
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/var/tmp}}/uptrust-bench-s3.XXXXXX")
S3_PID=
cleanup() {
  if [ -n "$S3_PID" ]; then kill "$S3_PID" 2>/dev/null || true; wait "$S3_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

scripts/build-seaweedfs.sh >/dev/null
go build -o "$WORK/uptrust" ./cmd/uptrust
go build -o "$WORK/s3server" ./bench/s3server

"$WORK/s3server" -dir "$WORK/s3" >"$WORK/s3.env" 2>"$WORK/s3.log" &
S3_PID=$!
for _ in $(seq 600); do
  if grep -q '^AWS_SECRET_ACCESS_KEY=' "$WORK/s3.env" 2>/dev/null; then break; fi
  if ! kill -0 "$S3_PID" 2>/dev/null; then cat "$WORK/s3.log" >&2; exit 1; fi
  sleep 0.2
done
# shellcheck disable=SC1091
. "$WORK/s3.env"
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY

FILE=$WORK/payload.img
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$FILE"

# measure NAME CMD...: prints "NAME seconds peak_rss_kib"
measure() {
  local name=$1; shift
  /usr/bin/time -v -o "$WORK/time.txt" "$@" >"$WORK/out.txt" 2>&1 || { cat "$WORK/out.txt" "$WORK/time.txt" >&2; exit 1; }
  local wall rss
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$WORK/time.txt" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time.txt")
  echo "$name $wall $rss"
}

echo "# SIZE_MIB=$SIZE_MIB, SeaweedFS at $S3_ENDPOINT (loopback), $(nproc) cores"
printf '%-12s %4s %9s %12s %7s\n' case run seconds peak_rss_MiB ratio
for run in $(seq "$RUNS"); do
  read -r _ c_wall c_rss < <(measure curl curl -sS --fail-with-body -T "$FILE" \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$S3_ENDPOINT/$S3_BUCKET/curl-$run")

  # blobs copy: a project whose blobs/ holds only the payload.
  P=$WORK/copy-$run
  "$WORK/uptrust" init --dir "$P" --dev >/dev/null 2>&1
  SHA=$(sha256sum "$FILE" | cut -d' ' -f1)
  mkdir -p "$P/blobs/sha256/${SHA:0:2}"
  cp "$FILE" "$P/blobs/sha256/${SHA:0:2}/$SHA"
  # The same content is in the bucket from an earlier run: use fresh bytes.
  printf '%s' "$run" | dd of="$P/blobs/sha256/${SHA:0:2}/$SHA" bs=1 seek=0 conv=notrunc 2>/dev/null
  SHA2=$(sha256sum "$P/blobs/sha256/${SHA:0:2}/$SHA" | cut -d' ' -f1)
  mkdir -p "$P/blobs/sha256/${SHA2:0:2}"
  mv "$P/blobs/sha256/${SHA:0:2}/$SHA" "$P/blobs/sha256/${SHA2:0:2}/$SHA2"
  read -r _ b_wall b_rss < <(measure blobs-copy "$WORK/uptrust" blobs copy --dir "$P" --to "$S3_URL")

  R=$WORK/release-$run
  "$WORK/uptrust" init --dir "$R" --dev >/dev/null 2>&1
  "$WORK/uptrust" product add bench --hardware rev-a --support-until 2031-12-31 --dir "$R" --blobs "$S3_URL" >/dev/null
  printf 'r%s' "$run" | dd of="$FILE" bs=1 seek=0 conv=notrunc 2>/dev/null
  read -r _ r_wall r_rss < <(measure release-add "$WORK/uptrust" release add bench "1.0.$run" "$FILE" \
    --kind feature --security-version 1 --dir "$R" --blobs "$S3_URL")

  awk -v run="$run" -v cw="$c_wall" -v cr="$c_rss" -v bw="$b_wall" -v br="$b_rss" -v rw="$r_wall" -v rr="$r_rss" 'BEGIN {
    printf "%-12s %4d %9.2f %12.1f %7s\n", "curl", run, cw, cr/1024, "1.00"
    printf "%-12s %4d %9.2f %12.1f %7.2f\n", "blobs-copy", run, bw, br/1024, cw/bw
    printf "%-12s %4d %9.2f %12.1f %7.2f\n", "release-add", run, rw, rr/1024, cw/rw
  }'
done
