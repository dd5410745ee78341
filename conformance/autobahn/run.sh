#!/usr/bin/env bash
# The official Autobahn WebSocket testsuite (fuzzingclient mode) against `ragi probe`'s echo
# endpoint, and a check of its report.
#
#   bash conformance/autobahn/run.sh          # CI set: the 301 cases without compression
#                                              # plus 12.1.* and 13.1.* (about 1 min)
#   bash conformance/autobahn/run.sh full     # all 517 cases, compression included (~15 min)
#
# The testsuite is Python 2.7 code (autobahntestsuite 25.10.1). The script makes a 2.7
# virtualenv under target/autobahn-venv from pyenv's CPython 2.7.18 (or $PY27), with the pinned
# requirements next to this script. It fails when a case is FAILED or UNIMPLEMENTED, or when a
# close was not clean; it prints the counts per outcome. The HTML report goes to
# target/autobahn/report/index.html.
set -euo pipefail
MODE="${1:-ci}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="$ROOT/target/autobahn"
VENV="$ROOT/target/autobahn-venv"
PY27="${PY27:-}"
if [ -z "$PY27" ]; then
  for c in "$HOME/.pyenv/versions/2.7.18/bin/python2.7" "$(command -v python2.7 || true)"; do
    if [ -n "$c" ] && [ -x "$c" ]; then PY27="$c"; break; fi
  done
fi
[ -n "$PY27" ] || { echo "autobahn: no Python 2.7 found (set PY27)" >&2; exit 1; }

if [ ! -x "$VENV/bin/wstest" ]; then
  echo "autobahn: building the Python 2.7 virtualenv in $VENV" >&2
  python3 -m pip install --quiet 'virtualenv==20.21.1'
  python3 -m virtualenv --quiet -p "$PY27" "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements-py27.txt"
fi

cargo build --release --quiet -p ragi-cli
BIN="$ROOT/target/release/ragi"
mkdir -p "$OUT"
rm -rf "$OUT/report"
PORT="${AUTOBAHN_PORT:-9301}"
"$BIN" probe --listen "127.0.0.1:$PORT" --no-lifecycle >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q "listening on" "$OUT/server.log" 2>/dev/null && break
  sleep 0.1
done

if [ "$MODE" = "full" ]; then
  EXCLUDE='[]'
else
  # Compression: only the first section of each group (12.1, 13.1).
  EXCLUDE='["12.2.*", "12.3.*", "12.4.*", "12.5.*", "13.2.*", "13.3.*", "13.4.*", "13.5.*", "13.6.*", "13.7.*"]'
fi
cat >"$OUT/fuzzingclient.json" <<JSON
{
  "outdir": "$OUT/report",
  "servers": [{"agent": "ragi", "url": "ws://127.0.0.1:$PORT/ws/echo"}],
  "cases": ["*"],
  "exclude-cases": $EXCLUDE,
  "exclude-agent-cases": {}
}
JSON
(cd "$OUT" && "$VENV/bin/wstest" -m fuzzingclient -s "$OUT/fuzzingclient.json" >"$OUT/wstest.log" 2>&1) || {
  echo "autobahn: wstest failed; see $OUT/wstest.log" >&2
  tail -20 "$OUT/wstest.log" >&2
  exit 1
}
kill $SERVER 2>/dev/null || true

python3 - "$OUT/report/index.json" <<'PY'
import json, sys, collections
report = json.load(open(sys.argv[1]))
cases = report["ragi"]
counts = collections.Counter(c["behavior"] for c in cases.values())
closes = collections.Counter(c["behaviorClose"] for c in cases.values())
print("autobahn: %d cases: %s" % (len(cases), ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
print("autobahn: close behaviour: %s" % ", ".join("%s %d" % kv for kv in sorted(closes.items())))
bad = sorted((k for k, c in cases.items()
              if c["behavior"] in ("FAILED", "UNIMPLEMENTED")
              or c["behaviorClose"] not in ("OK", "INFORMATIONAL")),
             key=lambda k: [int(x) for x in k.split(".")])
for k in bad:
    print("autobahn: case %s: %s / close %s" % (k, cases[k]["behavior"], cases[k]["behaviorClose"]))
sys.exit(1 if bad else 0)
PY
