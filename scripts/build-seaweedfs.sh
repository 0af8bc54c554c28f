#!/bin/sh
# build-seaweedfs.sh builds SeaweedFS's `weed` binary at a pinned version from
# its Go module, for the S3 tests (internal/blob, e2e) and the S3 benchmark.
#
# Idempotent: does nothing when the binary for the pinned version exists.
# The binary is kept outside any clone, by version:
#   ${UPTRUST_CACHE:-$HOME/.cache/uptrust}/seaweedfs/$VERSION/weed
# Tests find it there or through UPTRUST_WEED.
#
# The build takes minutes and ~2.5 GiB of disk; it runs at the lowest CPU
# priority so it does not starve other work on the machine.
set -eu

VERSION=v0.0.0-20261109003541-7506e5f91cd6
MODULE=github.com/seaweedfs/seaweedfs
CACHE=${UPTRUST_CACHE:-$HOME/.cache/uptrust}
OUT=$CACHE/seaweedfs/$VERSION
BIN=$OUT/weed

if [ -x "$BIN" ]; then
	echo "build-seaweedfs: $BIN exists"
	exit 0
fi

mkdir -p "$OUT"
echo "build-seaweedfs: downloading $MODULE@$VERSION"
DIR=$(cd /tmp && GOFLAGS= go mod download -json "$MODULE@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$DIR" ] || [ ! -d "$DIR" ]; then
	echo "build-seaweedfs: go mod download gave no directory for $MODULE@$VERSION" >&2
	exit 1
fi

# A fixed build directory (not a random one) and -trimpath keep Go's build
# cache valid, so an interrupted build resumes where it stopped.
WORK=$OUT/build
rm -rf "$WORK/src"
mkdir -p "$WORK"
cp -R "$DIR/." "$WORK/src"
chmod -R u+w "$WORK/src"

echo "build-seaweedfs: building weed (this takes several minutes)"
cd "$WORK/src"
GOFLAGS=-mod=mod nice -n 19 go build -trimpath -o "$WORK/weed" ./weed
mv "$WORK/weed" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
cd "$OUT"
rm -rf "$WORK"
echo "build-seaweedfs: built $BIN"
