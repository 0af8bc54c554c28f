# scripts/lib/bench.sh — what the benchmark scripts share; source it after
# `set -euo pipefail`:
#
#	. "$(dirname "$0")/lib/bench.sh"
#	bench_workdir /tmp/bench-foo    # WORK, PIDS, cleanup on exit
#
# Every process a script starts in the background goes into PIDS
# (`cmd & PIDS+=($!)`); on exit each is killed and waited for, then WORK is
# removed.

# bench_workdir PREFIX: makes WORK (mktemp -d PREFIX.XXXXXX) and arms the
# cleanup of WORK and of the processes in PIDS.
bench_workdir() {
	WORK=$(mktemp -d "$1.XXXXXX")
	PIDS=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

bench_cleanup() {
	set +e
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$WORK"
}

# free_port: a TCP port on 127.0.0.1 the kernel has just handed out.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_http URL: polls until URL answers 2xx, for at most 60 s.
wait_http() {
	local i
	for ((i = 0; i < 600; i++)); do
		curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
