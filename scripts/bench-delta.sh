#!/bin/bash
# bench-delta.sh [PAIRS...] — delta size, creation and apply cost: uptrust-delta against bsdiff,
# xdelta3 (-9, source window >= image) and zstd -19 --long=31 --patch-from, on the same pairs,
# same run. Prints a markdown table.
#
# Pairs (default: all): tar ext4 sqfs sqfs-raw agent big
#   tar, ext4, sqfs, sqfs-raw  from /work/shared/bench/rootfs-pair.sh (built once into $ROOTFS)
#   agent  uptrust-agent built (-trimpath -ldflags=-s -w) at commits 9265f66 and 1a8c8a6 of
#          this repository: "agent uses early writeback on slots", 12 lines of agent code
#   big    512 MiB disk image: v1 = v1.ext4 + v1.tar + v1.sqfs-raw + v1.sqfs, then a fixed
#          pseudo-random tail (an unchanged compressed data partition) up to 512 MiB; v2 the same
#          with the v2 images (so everything after the rootfs moves by a few KiB)
# Needs: apt-get install -y bsdiff xdelta3 zstd time squashfs-tools e2fsprogs
# TOOLS=uptrust reruns only ours and reuses the other tools' rows from the last run (marked).
# Every tool's output is compared (cmp) with the target. Times are wall-clock with warm caches;
# RSS is /usr/bin/time's maximum resident set size. "copy" is dd bs=1M conv=fsync of the target,
# and throughput = median copy time / median uptrust apply time over RUNS (5) alternating runs
# of each (this VM's dd swings 2x from run to run). Our apply writes its output as the agent writes a
# slot (writeback started as it goes, payload.Writeback), fsyncs it, and is given the
# source's SHA-256 (-source-sha256), as the agent uses its cached hash of the active slot; the
# row "hashing the source first" is the same apply without it (a device's first delta).
set -euo pipefail
ROOTFS=${ROOTFS:-/var/tmp/uptrust-rootfs}
W=${WORK:-/var/tmp/uptrust-bench-delta}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PAIRS=${*:-tar ext4 sqfs sqfs-raw agent big}
TOOLS=${TOOLS:-bsdiff xdelta3 zstd uptrust} # TOOLS=uptrust reruns only ours
RUNS=${RUNS:-5} # alternating apply/dd runs for the throughput row
mkdir -p "$W"
[ -f "$ROOTFS/v2.ext4" ] || bash /work/shared/bench/rootfs-pair.sh "$ROOTFS" >&2
(cd "$REPO" && go build -o "$W/uptrust-delta" ./bench/delta/cmd/uptrust-delta)
UD=$W/uptrust-delta

pair_files() { # name -> "old new"
  case $1 in
    tar|ext4|sqfs|sqfs-raw) echo "$ROOTFS/v1.$1 $ROOTFS/v2.$1" ;;
    agent)
      if [ ! -f "$W/agent-v2" ]; then
        for c in 9265f66:v1 1a8c8a6:v2; do
          local d=$W/src-${c#*:}; rm -rf "$d"; mkdir -p "$d"
          git -C "$REPO" archive "${c%:*}" | tar -x -C "$d"
          (cd "$d" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$W/agent-${c#*:}" ./cmd/uptrust-agent)
        done
      fi
      echo "$W/agent-v1 $W/agent-v2" ;;
    big)
      if [ ! -f "$W/big-v2" ]; then
        local size=$((512 << 20))
        openssl enc -aes-128-ctr -K 00112233445566778899aabbccddeeff -iv 0 -nosalt </dev/zero 2>/dev/null \
          | head -c "$size" > "$W/rand"
        for v in v1 v2; do
          cat "$ROOTFS/$v.ext4" "$ROOTFS/$v.tar" "$ROOTFS/$v.sqfs-raw" "$ROOTFS/$v.sqfs" > "$W/big-$v"
          head -c $((size - $(stat -c %s "$W/big-$v"))) "$W/rand" >> "$W/big-$v"
        done
        rm -f "$W/rand"
      fi
      echo "$W/big-v1 $W/big-v2" ;;
  esac
}

# measure LABEL CMD... -> sets T (seconds) and M (peak RSS, MiB)
measure() {
  /usr/bin/time -f "%e %M" -o "$W/time" "$@" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; return 1; }
  read -r T M < "$W/time"; M=$((M / 1024))
}

# wall CMD... -> seconds (3 decimals) the command took
wall() {
  local t0=$EPOCHREALTIME
  "$@" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; return 1; }
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.3f", b-a}'
}
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END{printf "%.3f", (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
range() { printf '%s\n' "$@" | sort -n | awk 'NR==1{lo=$1} {hi=$1} END{printf "%s-%s", lo, hi}'; }

mb() { awk -v b="$1" 'BEGIN{printf "%.1f", b/1048576}'; }

echo "| pair | size MiB | tool | delta bytes | ours/smallest | create s | create RSS MiB | apply s | apply RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|"
for p in $PAIRS; do
  read -r OLD NEW <<<"$(pair_files "$p")"
  S=$(stat -c %s "$OLD"); B=$(( (S / 1048576 + 1) * 1048576 ))
  P=$W/$p; OUT=$W/out
  declare -A SZ=() ROW=() MARK=()
  run() { # tool diffcmd applycmd; a tool not in $TOOLS reuses its last recorded row
    local t=$1
    if [[ " $TOOLS " != *" $t "* ]]; then
      if [ -f "$P.$t.row" ]; then SZ[$t]=$(stat -c %s "$P.$t"); ROW[$t]="$(cat "$P.$t.row")"; MARK[$t]=" (earlier run)"
      else SZ[$t]=""; ROW[$t]="not run | | | "; fi
      return
    fi
    rm -f "$P.$t" "$OUT"
    measure bash -c "$2"; local ct=$T cm=$M
    measure bash -c "$3"; local at=$T am=$M
    cmp -s "$OUT" "$NEW" || { echo "$t: wrong output on $p" >&2; exit 1; }
    SZ[$t]=$(stat -c %s "$P.$t")
    ROW[$t]="$ct | $cm | $at | $am"; echo "${ROW[$t]}" > "$P.$t.row"
  }
  run bsdiff "bsdiff '$OLD' '$NEW' '$P.bsdiff'" "bspatch '$OLD' '$OUT' '$P.bsdiff'"
  run xdelta3 "xdelta3 -9 -f -e -B $B -s '$OLD' '$NEW' '$P.xdelta3'" "xdelta3 -d -f -B $B -s '$OLD' '$P.xdelta3' '$OUT'"
  run zstd "zstd -q -f -19 --long=31 --patch-from='$OLD' '$NEW' -o '$P.zstd'" "zstd -q -f -d --long=31 --patch-from='$OLD' '$P.zstd' -o '$OUT'"
  SRC=$(sha256sum "$OLD" | cut -c1-64) # the agent's cached hash of its active slot
  run uptrust "'$UD' diff '$OLD' '$NEW' '$P.uptrust'" "'$UD' apply -source-sha256 $SRC '$OLD' '$P.uptrust' '$OUT'"
  at=$T
  ht=""
  if [[ " $TOOLS " == *" uptrust "* ]]; then
    rm -f "$OUT"; measure "$UD" apply "$OLD" "$P.uptrust" "$OUT"; ht="$T s, $M MiB"
  fi
  # Throughput: RUNS alternating runs of our apply and of dd, timed with $EPOCHREALTIME
  # (microseconds; /usr/bin/time's %e has 10 ms steps), medians compared.
  if [[ " $TOOLS " == *" uptrust "* ]]; then
    APPLY_T=(); COPY_T=()
    for _ in $(seq "$RUNS"); do
      rm -f "$OUT"; APPLY_T+=("$(wall "$UD" apply -source-sha256 "$SRC" "$OLD" "$P.uptrust" "$OUT")")
      rm -f "$OUT"; COPY_T+=("$(wall dd if="$NEW" of="$OUT" bs=1M conv=fsync status=none)")
    done
    at=$(median "${APPLY_T[@]}"); ct=$(median "${COPY_T[@]}")
    arange="$(range "${APPLY_T[@]}")"; crange="$(range "${COPY_T[@]}")"
  else
    rm -f "$OUT"; ct=$(wall dd if="$NEW" of="$OUT" bs=1M conv=fsync status=none); arange=""; crange=""
  fi
  small=$(printf '%s\n' "${SZ[bsdiff]}" "${SZ[xdelta3]}" "${SZ[zstd]}" | grep . | sort -n | head -1)
  for t in bsdiff xdelta3 zstd uptrust; do
    r=""; [ $t = uptrust ] && r=$(awk -v a="${SZ[$t]}" -v b="$small" 'BEGIN{printf "%.2f", a/b}')
    echo "| $p | $(mb "$S") | $t${MARK[$t]:-} | ${SZ[$t]} | $r | ${ROW[$t]} |"
  done
  [ -n "$ht" ] && echo "| $p | | uptrust apply, hashing the source first | | | | | $ht | |"
  [ -n "$arange" ] && echo "| $p | | uptrust apply, median of $RUNS (range) | | | | | $at ($arange) | |"
  echo "| $p | | dd copy (fsync)${crange:+, median of $RUNS (range)} | | | | | $ct${crange:+ ($crange)} | |"
  echo "| $p | | apply throughput vs copy (medians) | $(awk -v c="$ct" -v a="$at" 'BEGIN{printf "%.2f", (a>0)?c/a:0}') | | | | | |"
  rm -f "$OUT"
done
