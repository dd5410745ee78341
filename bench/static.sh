#!/usr/bin/env bash
# Static files: `ragi serve` against nginx (one worker, sendfile on) and tower-http's ServeDir
# on axum (bench/axum-servedir), for a 1 KiB and a 1 MiB file: req/s and server CPU per
# request, pinned, interleaved, medians and paired ratios, as bench/run.sh does for the
# plain-text workloads.
#
#   bash bench/static.sh                          # 3 rounds x 8 s per server and file
#   ROUNDS=5 DURATION=5s bash bench/static.sh
#   SERVERS='ragi nginx' FILES=1k bash bench/static.sh
#   CALLGRIND=1 bash bench/static.sh              # also instructions per request (1 KiB)
#
# Each round starts every server in turn (in the order of SERVERS, rotated by one each round
# so that no server always runs first), warms it up, then measures each file with
# `wrk -t1 -cCONNECTIONS -dDURATION` on CLIENT_CPU while the server is pinned to SERVER_CPU.
# CPU per request = the server's utime+stime (its whole process tree: nginx's master and
# worker) over the run / wrk's request count. Before each measurement the script waits up to
# QUIET_WAIT s for the rest of the machine to go quiet and records how much CPU other
# processes used during the run ("foreign", % of a core): the machine is shared, so the
# report prints the load average and flags noisy runs.
#
# The servers, as configured:
#   ragi    target/release/ragi serve DIR (defaults: precompressed siblings looked for only when
#           the request has Accept-Encoding, which wrk does not send)
#   nginx   Debian's nginx (installed with apt-get when missing): worker_processes 1,
#           sendfile on, tcp_nopush on, access_log off, keepalive_requests 1000000,
#           open_file_cache off (its default)
#   servedir  bench/axum-servedir: ServeDir::new(DIR) as tower-http ships it
#
# Targets (issue 11): ragi's req/s >= ServeDir's, and ragi's CPU per request <= 1.5 x nginx's
# for 1 KiB.
#
# Knobs: SERVERS (default "ragi nginx servedir"), FILES ("1k 1m"), ROUNDS (3), DURATION (8s),
# WARMUP (1s), CONNECTIONS (64), SERVER_CPU (0), CLIENT_CPU (1), QUIET_WAIT (60),
# FOREIGN_WARN (10), SKIP_BUILD=1, RAGI_BIN, RAGI_ARGS (extra `ragi serve` options),
# CALLGRIND=1 (+ CG_N, default 5000: requests counted per server), OUT_DIR.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$BENCH_DIR/.." && pwd)"
SERVERS="${SERVERS:-ragi nginx servedir}"
FILES="${FILES:-1k 1m}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-8s}"
WARMUP="${WARMUP:-1s}"
CONNECTIONS="${CONNECTIONS:-64}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
QUIET_WAIT="${QUIET_WAIT:-60}"
FOREIGN_WARN="${FOREIGN_WARN:-10}"
SKIP_BUILD="${SKIP_BUILD:-0}"
RAGI_BIN="${RAGI_BIN:-$ROOT_DIR/target/release/ragi}"
RAGI_ARGS="${RAGI_ARGS:-}"
CALLGRIND="${CALLGRIND:-0}"
CG_N="${CG_N:-5000}"
OUT_DIR="${OUT_DIR:-$BENCH_DIR/target/results/static-$(date +%Y%m%d-%H%M%S)}"
SERVEDIR_BIN="$BENCH_DIR/target/release/axum-servedir"

log() { printf '[static] %s\n' "$*" >&2; }
die() { printf '[static] ERROR: %s\n' "$*" >&2; exit 1; }

for s in $SERVERS; do
    case "$s" in ragi|nginx|servedir) ;; *) die "unknown server '$s' in SERVERS (want: ragi nginx servedir)" ;; esac
done
for f in $FILES; do
    case "$f" in 1k|1m) ;; *) die "unknown file '$f' in FILES (want: 1k 1m)" ;; esac
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be a positive integer, got '$CONNECTIONS'"
[[ "$DURATION" =~ ^[0-9]+(\.[0-9]+)?[smh]?$ ]] || die "DURATION must look like 8s, got '$DURATION'"
[[ "$WARMUP" =~ ^[0-9]+(\.[0-9]+)?[smh]?$ ]] || die "WARMUP must look like 1s or 0, got '$WARMUP'"

# ---------------------------------------------------------------- processes we start
declare -a STARTED=()
stop_pid() {
    local pid="$1" p
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local -a keep=()
    for p in "${STARTED[@]}"; do [[ "$p" == "$pid" ]] || keep+=("$p"); done
    STARTED=("${keep[@]+"${keep[@]}"}")
}
cleanup() { local p; for p in "${STARTED[@]}"; do stop_pid "$p"; done; }
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# ---------------------------------------------------------------- tools and builds
need() {
    local -a missing=()
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    if [[ " $SERVERS " == *" nginx "* ]] && ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
        missing+=(nginx)
    fi
    if [[ "$CALLGRIND" == 1 ]] && ! command -v valgrind >/dev/null 2>&1; then missing+=(valgrind); fi
    if ((${#missing[@]})); then
        log "installing ${missing[*]} with apt-get"
        [[ $(id -u) -eq 0 ]] || die "need root to apt-get install ${missing[*]}"
        apt-get update -qq || die "apt-get update failed"
        # policy-rc.d 101: the package's service is not started (we start nginx ourselves).
        DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "${missing[@]}" >/dev/null \
            || die "apt-get install ${missing[*]} failed"
    fi
    NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"
    command -v python3 >/dev/null 2>&1 || die "python3 is required"
}

build() {
    [[ "$SKIP_BUILD" == 1 ]] && { log "SKIP_BUILD=1: using existing binaries"; return; }
    if [[ " $SERVERS " == *" ragi "* && "$RAGI_BIN" == "$ROOT_DIR/target/release/ragi" ]]; then
        log "building ragi (cargo build --release -p ragi-cli)"
        (cd "$ROOT_DIR" && cargo build --release -p ragi-cli) >"$OUT_DIR/build-ragi.log" 2>&1 \
            || { tail -n 30 "$OUT_DIR/build-ragi.log" >&2; die "building ragi failed"; }
    fi
    if [[ " $SERVERS " == *" servedir "* ]]; then
        log "building bench/axum-servedir"
        (cd "$BENCH_DIR" && cargo build --release -p axum-servedir) >"$OUT_DIR/build-servedir.log" 2>&1 \
            || { tail -n 30 "$OUT_DIR/build-servedir.log" >&2; die "building axum-servedir failed"; }
    fi
}

# ---------------------------------------------------------------- files and configs
DOCROOT=""
make_docroot() {
    DOCROOT="$OUT_DIR/www"
    mkdir -p "$DOCROOT"
    head -c 1024 /dev/urandom >"$DOCROOT/1k.bin"
    head -c $((1 << 20)) /dev/urandom >"$DOCROOT/1m.bin"
    chmod 755 "$OUT_DIR" "$DOCROOT"
    chmod 644 "$DOCROOT"/*.bin
    # Old enough for strong validators everywhere.
    touch -d '1 day ago' "$DOCROOT"/*.bin
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# nginx_conf PORT MASTER(on|off) FILE
nginx_conf() {
    cat >"$3" <<EOF
daemon off;
master_process $2;
worker_processes 1;
pid $OUT_DIR/nginx-$1.pid;
error_log $OUT_DIR/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    default_type application/octet-stream;
    client_body_temp_path $OUT_DIR/nginx-tmp;
    proxy_temp_path $OUT_DIR/nginx-tmp;
    fastcgi_temp_path $OUT_DIR/nginx-tmp;
    uwsgi_temp_path $OUT_DIR/nginx-tmp;
    scgi_temp_path $OUT_DIR/nginx-tmp;
    server {
        listen 127.0.0.1:$1;
        root $DOCROOT;
    }
}
EOF
    mkdir -p "$OUT_DIR/nginx-tmp"
}

# server_cmd NAME PORT: the command line (words on stdout, one per line).
server_cmd() {
    case "$1" in
        ragi) printf '%s\n' "$RAGI_BIN" serve "$DOCROOT" --listen "127.0.0.1:$2"
              # shellcheck disable=SC2086
              [[ -n "$RAGI_ARGS" ]] && printf '%s\n' $RAGI_ARGS ;;
        nginx) nginx_conf "$2" on "$OUT_DIR/nginx-$2.conf"
               printf '%s\n' "$NGINX_BIN" -c "$OUT_DIR/nginx-$2.conf" ;;
        servedir) printf '%s\n' "$SERVEDIR_BIN" --listen "127.0.0.1:$2" "$DOCROOT" ;;
    esac
}

SERVER_PID=""
SERVER_PORT=""
start_server() {
    local name="$1" logf="$2" port
    port="$(free_port)"
    local -a cmd
    mapfile -t cmd < <(server_cmd "$name" "$port")
    echo "+ taskset -c $SERVER_CPU ${cmd[*]}" >"$logf"
    taskset -c "$SERVER_CPU" "${cmd[@]}" >>"$logf" 2>&1 </dev/null &
    SERVER_PID=$!
    STARTED+=("$SERVER_PID")
    SERVER_PORT="$port"
    local deadline=$((SECONDS + 20))
    while ((SECONDS < deadline)); do
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$logf" >&2; die "$name exited while starting (log: $logf)"; }
        if [[ "$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "http://127.0.0.1:$port/1k.bin")" == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$logf" >&2
    die "$name did not answer GET /1k.bin with 200 within 20 s (log: $logf)"
}

# ---------------------------------------------------------------- measurement
CLK="$(getconf CLK_TCK)"
proc_tree() {
    local -a todo=("$1") tree=()
    local p
    while ((${#todo[@]})); do
        p="${todo[0]}"; todo=("${todo[@]:1}"); tree+=("$p")
        # shellcheck disable=SC2207
        todo+=($(pgrep -P "$p" 2>/dev/null || true))
    done
    echo "${tree[@]}"
}
cpu_ticks() {
    local total=0 p stat rest
    local -a f
    for p in $(proc_tree "$1"); do
        stat="$(cat /proc/"$p"/stat 2>/dev/null)" || continue
        rest="${stat##*) }"
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}
machine_busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
CHILD_TICKS=0
children_ticks() {
    times >"$OUT_DIR/.times"
    CHILD_TICKS="$(awk -v clk="$CLK" 'NR == 2 { t = 0
        for (i = 1; i <= 2; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); t += a[1] * 60 + a[2] }
        printf "%d\n", t * clk + 0.5 }' "$OUT_DIR/.times")"
}
wait_quiet() {
    ((QUIET_WAIT > 0)) || return 0
    local deadline=$((SECONDS + QUIET_WAIT)) m0 m1 s0 s1 w0 w1 pct said=0
    while :; do
        w0="$EPOCHREALTIME"; m0="$(machine_busy_ticks)"; s0="$(cpu_ticks "$1")"
        sleep 1
        m1="$(machine_busy_ticks)"; s1="$(cpu_ticks "$1")"; w1="$EPOCHREALTIME"
        pct="$(awk -v m="$((m1 - m0 - (s1 - s0)))" -v c="$CLK" -v a="$w0" -v b="$w1" \
            'BEGIN { f = m / c / (b - a) * 100; if (f < 0) f = 0; printf "%d", f + 0.5 }')"
        ((pct <= FOREIGN_WARN)) && return 0
        ((SECONDS >= deadline)) && { log "  machine still busy (${pct}% of a core used by others); measuring anyway"; return 0; }
        ((said)) || { log "  other processes use ${pct}% of a core; waiting up to ${QUIET_WAIT}s"; said=1; }
    done
}
dur_to_sec() {
    awk -v d="$1" 'BEGIN { n = d; sub(/[smh]$/, "", n); u = substr(d, length(d))
        m = (u == "m") ? 60 : (u == "h") ? 3600 : 1; s = n * m; printf "%d\n", (s == int(s)) ? s : int(s) + 1 }'
}
run_wrk() {
    local port="$1" file="$2" dur="$3" out="$4"
    local -a cmd=(wrk -t1 "-c$CONNECTIONS" "-d$dur" --latency "http://127.0.0.1:$port/$file.bin")
    echo "+ taskset -c $CLIENT_CPU ${cmd[*]}" >"$out"
    timeout --kill-after=5 "$(($(dur_to_sec "$dur") + 30))" taskset -c "$CLIENT_CPU" "${cmd[@]}" >>"$out" 2>&1 \
        || { cat "$out" >&2; die "wrk failed ($out)"; }
}
parse_wrk() {
    awk '
        function to_ms(v,   n, u) { n = v; sub(/[a-z]+$/, "", n); u = v; sub(/^[0-9.]+/, "", u)
            if (u == "us") return n / 1000; if (u == "ms") return n; if (u == "s") return n * 1000; return -1 }
        /Latency Distribution/ { indist = 1; next }
        indist && $1 == "99%" { p99 = to_ms($2); indist = 0 }
        / requests in / { reqs = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Socket errors:/ { gsub(/,/, ""); errs = $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        END { if (reqs == "" || rps == "") exit 1; printf "%s %s %s %d %d\n", reqs, rps, p99, errs, non2xx }' "$1"
}

RESULTS=""
measure() {
    RESULTS="$OUT_DIR/results.tsv"
    printf 'round\tfile\tserver\trequests\treq_s\tp99_ms\tcpu_us_req\terrors\tforeign_pct\n' >"$RESULTS"
    local -a order
    read -r -a order <<<"$SERVERS"
    local round i s f
    for round in $(seq 1 "$ROUNDS"); do
        for i in "${!order[@]}"; do
            s="${order[$(((i + round - 1) % ${#order[@]}))]}"
            start_server "$s" "$OUT_DIR/server-$s-r$round.log"
            log "round $round/$ROUNDS: $s (pid $SERVER_PID, port $SERVER_PORT)"
            for f in $FILES; do
                [[ "$WARMUP" == 0 || "$WARMUP" == 0s ]] || run_wrk "$SERVER_PORT" "$f" "$WARMUP" "$OUT_DIR/wrk-$s-$f-r$round-warmup.txt"
                local out="$OUT_DIR/wrk-$s-$f-r$round.txt" t0 t1 m0 m1 c0 c1 w0 w1
                wait_quiet "$SERVER_PID"
                w0="$EPOCHREALTIME"; m0="$(machine_busy_ticks)"; children_ticks; c0="$CHILD_TICKS"
                t0="$(cpu_ticks "$SERVER_PID")"
                run_wrk "$SERVER_PORT" "$f" "$DURATION" "$out"
                t1="$(cpu_ticks "$SERVER_PID")"
                m1="$(machine_busy_ticks)"; children_ticks; c1="$CHILD_TICKS"; w1="$EPOCHREALTIME"
                local reqs rps p99 errs non2xx cpu_us foreign
                read -r reqs rps p99 errs non2xx <<<"$(parse_wrk "$out" || die "cannot parse $out")"
                ((reqs > 0)) || die "0 requests against $s ($out)"
                cpu_us="$(awk -v d="$((t1 - t0))" -v c="$CLK" -v r="$reqs" 'BEGIN { printf "%.3f", d * 1e6 / c / r }')"
                foreign="$(awk -v m="$((m1 - m0 - (t1 - t0) - (c1 - c0)))" -v c="$CLK" -v a="$w0" -v b="$w1" \
                    'BEGIN { f = m / c / (b - a) * 100; if (f < 0) f = 0; printf "%.0f", f }')"
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$f" "$s" "$reqs" "$rps" "$p99" "$cpu_us" \
                    "$((errs + non2xx))" "$foreign" >>"$RESULTS"
                log "  $f: $rps req/s, p99 $p99 ms, $cpu_us µs CPU/req, others ${foreign}% of a core$( ((errs + non2xx)) && echo ", ERRORS $errs/$non2xx")"
            done
            stop_pid "$SERVER_PID"
        done
    done
}

report() {
    python3 - "$RESULTS" "$FOREIGN_WARN" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
warn = float(sys.argv[2])
med = statistics.median
files, servers, agg = [], [], {}
for r in rows:
    f, s = r["file"], r["server"]
    if f not in files: files.append(f)
    if s not in servers: servers.append(s)
    a = agg.setdefault((f, s), {"rps": [], "cpu": [], "p99": [], "err": 0, "noisy": 0})
    a["rps"].append(float(r["req_s"])); a["cpu"].append(float(r["cpu_us_req"]))
    a["p99"].append(float(r["p99_ms"])); a["err"] += int(r["errors"])
    a["noisy"] += float(r["foreign_pct"]) > warn
def table(hdr, body):
    w = [max(len(h), *(len(x[i]) for x in body)) for i, h in enumerate(hdr)]
    line = lambda c: "| " + " | ".join(x.ljust(w[i]) if i < 2 else x.rjust(w[i]) for i, x in enumerate(c)) + " |"
    print(line(hdr)); print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for x in body: print(line(x))
body = []
for f in files:
    for s in servers:
        a = agg.get((f, s))
        if not a: continue
        flag = (" (!errors)" if a["err"] else "") + (" (!noisy)" if a["noisy"] else "")
        rps, cpu = med(a["rps"]), med(a["cpu"])
        mbs = rps * (1024 if f == "1k" else 1 << 20) / (1 << 20)
        body.append([f, s + flag, f"{rps:,.0f}", f"{mbs:,.1f}", f"{med(a['p99']):.2f}", f"{cpu:.2f}"])
table(["file", "server", "req/s", "MiB/s", "p99 ms", "CPU µs/req"], body)
print(f"\nmedians of {len({r['round'] for r in rows})} round(s); '(!noisy)': other processes used more "
      f"than {warn:.0f}% of a core in some round")
paired = []
for f in files:
    for other in servers:
        if other == "ragi" or (f, "ragi") not in agg or (f, other) not in agg: continue
        by = {}
        for r in rows:
            if r["file"] == f and r["server"] in ("ragi", other):
                by.setdefault(r["round"], {})[r["server"]] = r
        pr = [(float(v["ragi"]["req_s"]) / float(v[other]["req_s"]),
               float(v["ragi"]["cpu_us_req"]) / float(v[other]["cpu_us_req"])) for v in by.values() if len(v) == 2]
        if pr:
            rr, cr = [p[0] for p in pr], [p[1] for p in pr]
            paired.append([f, other, str(len(pr)), f"{med(rr):.3f}x ({min(rr):.2f}-{max(rr):.2f})",
                           f"{med(cr):.3f}x ({min(cr):.2f}-{max(cr):.2f})"])
if paired:
    print("\nragi against each server, paired within each round (median and range):\n")
    table(["file", "ragi vs", "rounds", "req/s ratio", "CPU/req ratio"], paired)
def verdict(f, other, key, limit, better):
    if (f, "ragi") not in agg or (f, other) not in agg: return None
    v = med(agg[(f, "ragi")][key]) / med(agg[(f, other)][key])
    ok = v >= limit if better == "higher" else v <= limit
    return f"{'MET' if ok else 'MISSED'} ({v:.2f}x, want {'>=' if better == 'higher' else '<='} {limit}x)"
t1 = verdict("1k", "servedir", "rps", 1.0, "higher")
t2 = verdict("1k", "nginx", "cpu", 1.5, "lower")
if t1 or t2:
    print("\ntargets (1 KiB):")
    if t1: print(f"  req/s >= ServeDir's:            {t1}")
    if t2: print(f"  CPU/req <= 1.5 x nginx's:       {t2}")
PY
}

# ---------------------------------------------------------------- callgrind
# Instructions per request (1 KiB), deterministic where wall clock is not: each server under
# callgrind (bench/callgrind.sh with SERVER_CMD, CG_PATH, CG_BODY_FILE). nginx runs with
# master_process off (one process, as callgrind follows one).
callgrind_all() {
    local s port cmd
    CG_RESULTS="$OUT_DIR/callgrind.txt"
    : >"$CG_RESULTS"
    for s in $SERVERS; do
        port="$(free_port)"
        case "$s" in
            ragi) cmd="$RAGI_BIN serve $DOCROOT --listen 127.0.0.1:$port $RAGI_ARGS" ;;
            nginx) nginx_conf "$port" off "$OUT_DIR/nginx-cg.conf"; cmd="$NGINX_BIN -c $OUT_DIR/nginx-cg.conf" ;;
            servedir) cmd="$SERVEDIR_BIN --listen 127.0.0.1:$port $DOCROOT" ;;
        esac
        log "callgrind: $s ($CG_N requests of /1k.bin)"
        local line
        line="$(SKIP_BUILD=1 N="$CG_N" WORKLOADS="serial plain" PORT="$port" SERVER_CMD="$cmd" \
            CG_PATH=/1k.bin CG_BODY_FILE="$DOCROOT/1k.bin" OUT_DIR="$OUT_DIR/cg-$s" \
            bash "$BENCH_DIR/callgrind.sh" 2>>"$OUT_DIR/callgrind-$s.log")" \
            || { cat "$OUT_DIR/callgrind-$s.log" >&2; die "callgrind of $s failed"; }
        printf '%s\n' "$line" | sed "s/^/$s /" | tee -a "$CG_RESULTS" >&2
    done
}

# ---------------------------------------------------------------- main
mkdir -p "$OUT_DIR"
need
build
[[ " $SERVERS " != *" ragi "* || -x "$RAGI_BIN" ]] || die "ragi binary not found at $RAGI_BIN"
[[ " $SERVERS " != *" servedir "* || -x "$SERVEDIR_BIN" ]] || die "axum-servedir not found at $SERVEDIR_BIN"
make_docroot
ulimit -n 65536 2>/dev/null || true
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
log "results and raw outputs: $OUT_DIR (load average $LOAD_BEFORE)"
measure
CG_RESULTS=""
[[ "$CALLGRIND" == 1 ]] && callgrind_all
echo
echo "== static files: wrk -t1 -c$CONNECTIONS -d$DURATION, server on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU =="
echo
report
if [[ -n "$CG_RESULTS" ]]; then
    echo
    echo "instructions per request of GET /1k.bin under callgrind ($CG_N requests; serial = one in flight, plain = 64 connections):"
    sed 's/  (.*)$//' "$CG_RESULTS"
fi
echo
echo "machine: nproc=$(nproc), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), load average before $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg)"
echo "servers: ragi $(git -C "$ROOT_DIR" rev-parse --short HEAD 2>/dev/null || echo '?')${RAGI_ARGS:+ ($RAGI_ARGS)}, $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //'), tower-http $(awk '/^name = "tower-http"/ { getline; gsub(/"/, "", $3); print $3 }' "$BENCH_DIR/Cargo.lock")"
echo "raw:     $OUT_DIR"
echo "reproduce: cd $ROOT_DIR && SERVERS='$SERVERS' FILES='$FILES' ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS CALLGRIND=$CALLGRIND bash bench/static.sh"
