#!/usr/bin/env bash
# Instructions per request of ragi's HTTP/1.1 path, counted by callgrind (deterministic, unlike
# wall-clock figures on a shared machine).
#
#   bash bench/callgrind.sh                 # every workload, 20 000 requests each
#   N=5000 WORKLOADS=pipelined bash bench/callgrind.sh
#
# For each workload: starts `ragi probe --no-lifecycle` under callgrind on one CPU, opens the
# connections, warms up with 2 000 requests, zeroes the counters, drives N requests over the
# same connections (bench/cg_load.py), dumps, and prints the instructions per request.
#
#   serial     64 connections, one request in flight in all: one wake-up per request, the
#              count repeats to within 0.1 %
#   plain      64 connections, one request in flight on each (wrk's plain keep-alive shape);
#              how many connections one wake-up finds ready varies, so does the count (±2 %)
#   pipelined  8 connections, 8 requests per write (±2 %)
#
# ATOMICS=1 also counts the atomic read-modify-write instructions (lock-prefixed) per request,
# by function (bench/cg_atomics.py; the dump then records each instruction, which is slower);
# ATOMICS_LINES=1 adds each atomic instruction's source line and inlining chain.
#
# SERVER_CMD counts another server instead (ready when it prints `listening on` on stderr or
# accepts a connection on PORT), e.g. the baselines:
# SERVER_CMD='bench/target/release/hyper-hello --listen 127.0.0.1:18080'. CG_PATH and
# CG_BODY_FILE request another path and expect another body (bench/cg_load.py; used by
# bench/static.sh).
#
# The dumps stay in OUT_DIR (`callgrind_annotate --inclusive=yes OUT_DIR/cg-serial.out.1`).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
WORKLOADS=${WORKLOADS:-serial plain pipelined}
RAGI_BIN=${RAGI_BIN:-target/release/ragi}
OUT_DIR=${OUT_DIR:-/tmp/ragi-cg}
PORT=${PORT:-18080}
mkdir -p "$OUT_DIR"
SERVER_CMD=${SERVER_CMD:-$RAGI_BIN probe --listen 127.0.0.1:$PORT --no-lifecycle}
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p ragi-cli

cg_extra=
[ -z "${ATOMICS:-}" ] || cg_extra="--dump-instr=yes --compress-pos=no"
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT

for w in $WORKLOADS; do
  case $w in
    plain) conns=64 depth=1 ;;
    serial) conns=64 depth=-1 ;;
    pipelined) conns=8 depth=8 ;;
    *) echo "unknown workload $w" >&2; exit 2 ;;
  esac
  out="$OUT_DIR/cg-$w.out"
  rm -f "$out" "$out".* "$OUT_DIR/server-$w.log"
  taskset -c 0 valgrind --tool=callgrind --compress-strings=no $cg_extra --callgrind-out-file="$out" \
    $SERVER_CMD 2>"$OUT_DIR/server-$w.log" &
  pid=$!
  for _ in $(seq 200); do
    grep -q "listening on" "$OUT_DIR/server-$w.log" 2>/dev/null && break
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
  done
  got=$(python3 bench/cg_load.py 127.0.0.1:$PORT "$N" "$conns" "$depth" 2000 "$pid")
  kill -TERM "$pid"; wait "$pid" || true; pid=
  dump=$(ls -t "$out".* 2>/dev/null | grep -v '\.0*$' | head -1 || true)
  [ -n "$dump" ] || dump=$(ls -t "$out"* | head -1)
  ir=$(grep -m1 '^summary:\|^totals:' "$dump" | awk '{print $2}')
  printf '%-9s requests %6d  instructions %12d  per request %7.0f  (%s)\n' \
    "$w" "$got" "$ir" "$(echo "$ir / $got" | bc -l)" "$dump"
  [ -z "${ATOMICS:-}" ] || python3 bench/cg_atomics.py "$dump" "$got" "${ATOMICS_TOP:-15}"
done
