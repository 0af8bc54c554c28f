// Package install holds the install-pipeline benchmark: download → hash →
// write into a slot file with fsync, through the agent's own fetch and
// payload packages, against a plain copy of the same bytes into a file with
// fsync, in the same run. The goal is at least 0.8 of the plain copy's
// throughput, and at most 32 MiB peak RSS for the agent installing 1 GiB.
//
// `go test -bench . ./bench/install` runs both sides in-process
// (UPTRUST_BENCH_SIZE_MIB sets the payload size, default 64).
// scripts/bench-install.sh runs the full measurement with separate
// processes: cmd/benchserve serves the payload on loopback, cmd/installbench
// installs it the way the agent does, dd makes the plain copy, and
// /usr/bin/time -v reports installbench's peak RSS.
package install
