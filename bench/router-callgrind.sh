#!/usr/bin/env bash
# Instructions per request of the toolkit's router (crates/ragi-tools/benches/router.rs),
# counted by callgrind: deterministic, unlike the bench's wall-clock figures on a busy machine.
#
#   bash bench/router-callgrind.sh                    # every case, 10 000 requests each
#   CASES="literal param" ITERS=2000 bash bench/router-callgrind.sh
#
# Columns: `match` = Router::match_path (the trie walk); `direct` = a request handed straight
# to the app (scope clone, fresh stash, receiver, call, first poll, drop); `routed` = the same
# through the router; `extra` = routed - direct, what the router adds.
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-10000}
CASES=${CASES:-literal param constrained tail encoded group mount 404 405}
cargo bench -p ragi-tools --bench router --no-run 2>/dev/null
BIN=$(ls -t target/release/deps/router-* | grep -v '\.d$' | head -1)
OUT=$(mktemp -d)
printf "%-12s %8s %8s %8s %8s\n" case match direct routed extra
for c in $CASES; do
  CASE=$c ITERS=$ITERS ROUNDS=1 valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$c" "$BIN" >/dev/null 2>&1
  callgrind_annotate --inclusive=yes "$OUT/cg.$c" > "$OUT/cg.$c.txt" 2>/dev/null
  get() { grep -E "router::$1 \[" "$OUT/cg.$c.txt" | head -1 | awk '{gsub(",","",$1); print $1}'; }
  m=$(get match_loop); d=$(get direct_loop); r=$(get routed_loop)
  printf "%-12s %8d %8d %8d %8d\n" "$c" $((m / ITERS)) $((d / ITERS)) $((r / ITERS)) $(((r - d) / ITERS))
done
rm -rf "$OUT"
