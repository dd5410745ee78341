#!/usr/bin/env bash
# ragi benchmark harness: ragi vs bare hyper vs bare actix-web (HTTP), vs
# tokio-tungstenite (WebSocket echo) and vs axum (SSE fan-out).
#
#   bash bench/run.sh                       # everything, 3 rounds x 8 s
#   SERVERS="hyper actix" ROUNDS=1 DURATION=3s bash bench/run.sh
#   SERVERS='ragi hyper-h2 hyper-tls' WORKLOADS='H2 TLS' IDLE_CONNS=0 bash bench/run.sh
#   SERVERS='ragi tungstenite axum-sse' WORKLOADS='WS SSE' IDLE_CONNS=0 bash bench/run.sh
#
# See bench/README.md for what is measured and how. Environment knobs:
#   SERVERS       servers to run, subset of "ragi ragi-lc hyper hyper-timer actix
#                 hyper-h2 hyper-tls tungstenite axum-sse" (default "ragi hyper actix";
#                 ragi-lc is ragi with the probe's lifecycle listener on, to
#                 measure what the listener costs; it needs ragi; hyper-timer is
#                 hyper-hello with hyper's timer and so its default 30 s header
#                 read timeout, like for like with ragi's armed timeouts). Each workload
#                 runs only on the servers that speak it: A/B on ragi, ragi-lc,
#                 hyper, hyper-timer, actix; H2 on ragi, ragi-lc, hyper-h2; TLS on ragi,
#                 ragi-lc, hyper-tls; WS on ragi (bench/ragi-ws-echo) and
#                 tungstenite; SSE on ragi (bench/ragi-sse) and axum-sse
#   WORKLOADS     subset of "A B H2 TLS WS SSE" (A = plain keep-alive, B = 8-deep
#                 pipeline, H2 = h2load over h2c prior knowledge, TLS = wrk over
#                 HTTPS/1.1, WS = WebSocket echo (bench/wsload), SSE = SSE
#                 broadcast fan-out (bench/sseload); "plain"/"pipeline"/"h2c"/
#                 "https"/"websocket" are accepted too) (default "A B")
#   H2_STREAMS    h2load -m (concurrent streams per connection) for H2 (default 10)
#   WS_CONNECTIONS  WebSocket sessions in WS (default 100)
#   WS_SIZES      message sizes in bytes, one WS run each (default "64 16384")
#   WS_WINDOWS    messages in flight per session, one WS run each (default "1 16")
#   SSE_SUBSCRIBERS  SSE subscribers in SSE (default 1000)
#   SSE_EVENTS    events per broadcast round (default 100)
#   SSE_BURSTS    measured broadcast rounds per run (default 20; DURATION does
#                 not apply to SSE)
#   SSE_WARMUP_BURSTS  rounds of the unmeasured warm-up run (default 2; the
#                 warm-up is skipped when this or WARMUP is 0)
#   SSE_INTERVAL_US  µs between the events of a round, 0 = back to back (default 0)
#   SSE_PAUSE_MS  pause after each round (default 100)
#   ROUNDS        interleaved rounds; medians are reported (default 3)
#   DURATION      wrk duration per measured run (default 8s)
#   WARMUP        unmeasured wrk run before each server's round, 0 = off (default 1s)
#   CONNECTIONS   wrk connections (default 64)
#   PIPELINE      pipeline depth for workload B (default 8)
#   IDLE_CONNS    idle keep-alive connections for the memory test, 0 = skip (default 10000)
#   IDLE_HOLD     seconds to hold them before reading RSS (default 2)
#   SERVER_CPU    CPU the servers are pinned to (default 0)
#   CLIENT_CPU    CPU wrk / the idle client are pinned to (default 1)
#   RAGI_ARGS     extra arguments for `ragi probe` (default none; not used by
#                 WS and SSE, whose ragi servers are bench/ragi-ws-echo and
#                 bench/ragi-sse)
#   RAGI_BIN      ragi binary to run (default target/release/ragi; when set,
#                 ragi is not built)
#   RAGI_LIFECYCLE=1  keep the probe's lifecycle listener (default: ragi runs
#                 with --no-lifecycle when it has that flag; the baselines have
#                 no such listener)
#   QUIET_WAIT    before each measurement, wait up to this many seconds for
#                 other processes to go quiet (default 60, 0 = don't wait)
#   SKIP_BUILD=1  use the existing binaries, do not run cargo
#   FOREIGN_WARN  flag a run when other processes use more than this % of a core (default 10)
#   OUT_DIR       where raw wrk outputs and server logs go
#                 (default bench/target/results/<timestamp>)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$BENCH_DIR/.." && pwd)"

SERVERS="${SERVERS:-ragi hyper actix}"
WORKLOADS="${WORKLOADS:-A B}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-8s}"
WARMUP="${WARMUP:-1s}"
CONNECTIONS="${CONNECTIONS:-64}"
PIPELINE="${PIPELINE:-8}"
H2_STREAMS="${H2_STREAMS:-10}"
IDLE_CONNS="${IDLE_CONNS:-10000}"
IDLE_HOLD="${IDLE_HOLD:-2}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
RAGI_ARGS="${RAGI_ARGS:-}"
RAGI_LIFECYCLE="${RAGI_LIFECYCLE:-0}"
QUIET_WAIT="${QUIET_WAIT:-60}"
SKIP_BUILD="${SKIP_BUILD:-0}"
WS_CONNECTIONS="${WS_CONNECTIONS:-100}"
WS_SIZES="${WS_SIZES:-64 16384}"
WS_WINDOWS="${WS_WINDOWS:-1 16}"
SSE_SUBSCRIBERS="${SSE_SUBSCRIBERS:-1000}"
SSE_EVENTS="${SSE_EVENTS:-100}"
SSE_BURSTS="${SSE_BURSTS:-20}"
SSE_WARMUP_BURSTS="${SSE_WARMUP_BURSTS:-2}"
SSE_INTERVAL_US="${SSE_INTERVAL_US:-0}"
SSE_PAUSE_MS="${SSE_PAUSE_MS:-100}"
OUT_DIR="${OUT_DIR:-$BENCH_DIR/target/results/$(date +%Y%m%d-%H%M%S)}"

RAGI_BIN_SET="${RAGI_BIN:+1}"
RAGI_BIN="${RAGI_BIN:-$ROOT_DIR/target/release/ragi}"
HYPER_BIN="$BENCH_DIR/target/release/hyper-hello"
ACTIX_BIN="$BENCH_DIR/target/release/actix-hello"
HYPER_H2_BIN="$BENCH_DIR/target/release/hyper-h2"
HYPER_TLS_BIN="$BENCH_DIR/target/release/hyper-tls"
TUNGSTENITE_BIN="$BENCH_DIR/target/release/tungstenite-echo"
AXUM_SSE_BIN="$BENCH_DIR/target/release/axum-sse"
RAGI_WS_BIN="$BENCH_DIR/target/release/ragi-ws-echo"
RAGI_SSE_BIN="$BENCH_DIR/target/release/ragi-sse"
WSLOAD_BIN="$BENCH_DIR/target/release/wsload"
SSELOAD_BIN="$BENCH_DIR/target/release/sseload"
TLS_CERT=""           # set in main when TLS is among the workloads
TLS_KEY=""

FOREIGN_WARN="${FOREIGN_WARN:-10}"  # warn when other processes use more than this % of a core
READY_TIMEOUT=20      # seconds to wait for a server to print its address and answer
IDLE_TIMEOUT=300      # seconds to wait for the idle client to open its connections

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- validation
for s in $SERVERS; do
    case "$s" in ragi|ragi-lc|hyper|hyper-timer|actix|hyper-h2|hyper-tls|tungstenite|axum-sse) ;; *) die "unknown server '$s' in SERVERS (want: ragi ragi-lc hyper hyper-timer actix hyper-h2 hyper-tls tungstenite axum-sse)";; esac
done
WL_LIST=""
for w in $WORKLOADS; do
    case "$w" in
        A|a|plain) WL_LIST="$WL_LIST A" ;;
        B|b|pipeline|pipelined) WL_LIST="$WL_LIST B" ;;
        H2|h2|h2c|http2) WL_LIST="$WL_LIST H2" ;;
        TLS|tls|https) WL_LIST="$WL_LIST TLS" ;;
        WS|ws|websocket) WL_LIST="$WL_LIST WS" ;;
        SSE|sse) WL_LIST="$WL_LIST SSE" ;;
        *) die "unknown workload '$w' in WORKLOADS (want: A B H2 TLS WS SSE)" ;;
    esac
done
[[ "$H2_STREAMS" =~ ^[1-9][0-9]*$ ]] || die "H2_STREAMS must be a positive integer, got '$H2_STREAMS'"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
[[ "$QUIET_WAIT" =~ ^[0-9]+$ ]] || die "QUIET_WAIT must be an integer, got '$QUIET_WAIT'"
[[ "$FOREIGN_WARN" =~ ^[0-9]+$ ]] || die "FOREIGN_WARN must be an integer, got '$FOREIGN_WARN'"
[[ "$IDLE_CONNS" =~ ^[0-9]+$ ]] || die "IDLE_CONNS must be an integer, got '$IDLE_CONNS'"
[[ "$DURATION" =~ ^[0-9]+(\.[0-9]+)?[smh]?$ ]] || die "DURATION must look like 8s / 30 / 1m, got '$DURATION'"
[[ "$WARMUP" =~ ^[0-9]+(\.[0-9]+)?[smh]?$ ]] || die "WARMUP must look like 1s / 0, got '$WARMUP'"
[[ -n "$SERVERS" ]] || die "SERVERS is empty"
for v in WS_CONNECTIONS SSE_SUBSCRIBERS SSE_EVENTS SSE_BURSTS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
for v in SSE_WARMUP_BURSTS SSE_INTERVAL_US SSE_PAUSE_MS; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be an integer, got '${!v}'"
done
for v in $WS_SIZES; do
    if ! [[ "$v" =~ ^[0-9]+$ ]] || ((v < 16)); then die "WS_SIZES: each size must be an integer >= 16, got '$v'"; fi
done
for v in $WS_WINDOWS; do [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "WS_WINDOWS: each window must be a positive integer, got '$v'"; done
[[ -n "${WS_SIZES// /}" && -n "${WS_WINDOWS// /}" ]] || die "WS_SIZES and WS_WINDOWS must not be empty"

# speaks SERVER WORKLOAD: true when the server takes part in that workload.
# A and B (and the idle test) are cleartext HTTP/1.1; H2 is h2c with prior
# knowledge; TLS is HTTP/1.1 over TLS.
speaks() {
    case "$2" in
        A|B|idle) [[ "$1" == ragi || "$1" == ragi-lc || "$1" == hyper || "$1" == hyper-timer || "$1" == actix ]] ;;
        H2)       [[ "$1" == ragi || "$1" == ragi-lc || "$1" == hyper-h2 ]] ;;
        TLS)      [[ "$1" == ragi || "$1" == ragi-lc || "$1" == hyper-tls ]] ;;
        WS|WS-*)  [[ "$1" == ragi || "$1" == tungstenite ]] ;;
        SSE)      [[ "$1" == ragi || "$1" == axum-sse ]] ;;
        *) return 1 ;;
    esac
}
has_wl() { [[ " $WL_LIST " == *" $1 "* ]]; }
# The workloads' runs: WS becomes one run per size and window (WS-SIZE-wWINDOW).
expand_wl() {
    local w s n
    for w in $WL_LIST; do
        if [[ "$w" == WS ]]; then
            for n in $WS_WINDOWS; do for s in $WS_SIZES; do echo "WS-$s-w$n"; done; done
        else
            echo "$w"
        fi
    done
}
# The server process a workload runs against: load (cleartext HTTP, shared by
# A, B, H2), tls, ws or sse.
wl_mode() {
    case "$1" in
        TLS) echo tls ;;
        WS-*) echo ws ;;
        SSE) echo sse ;;
        *) echo load ;;
    esac
}
# Whether the ragi probe (target/release/ragi) is needed: ragi takes part in an
# HTTP workload or in the idle test.
needs_probe() {
    [[ " $SERVERS " == *" ragi "* || " $SERVERS " == *" ragi-lc "* ]] || return 1
    has_wl A || has_wl B || has_wl H2 || has_wl TLS || ((IDLE_CONNS > 0))
}
for s in $SERVERS; do
    any=0
    for w in $WL_LIST; do speaks "$s" "$w" && any=1; done
    if ((!any)) && ! { ((IDLE_CONNS > 0)) && speaks "$s" idle; }; then
        printf '[bench] note: %s speaks none of the workloads "%s"; it will not run\n' "$s" "${WL_LIST# }" >&2
    fi
done

# ---------------------------------------------------------------- cleanup
declare -a STARTED_PIDS=()
cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED_PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    STARTED_PIDS=()
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

forget_pid() {
    local pid="$1" p
    local -a keep=()
    for p in "${STARTED_PIDS[@]}"; do [[ "$p" == "$pid" ]] || keep+=("$p"); done
    STARTED_PIDS=("${keep[@]+"${keep[@]}"}")
}

# Stop one process we started: TERM, bounded wait, then KILL.
stop_pid() {
    local pid="$1"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}

# ---------------------------------------------------------------- tools
need_tools() {
    local missing=()
    # wrk drives A, B and TLS; WS, SSE and H2 bring their own load generators.
    if has_wl A || has_wl B || has_wl TLS; then
        command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    fi
    command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
    if has_wl H2; then
        command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
    fi
    if has_wl H2 || has_wl TLS; then
        # curl checks that the h2c / TLS servers answer before they are measured.
        command -v curl >/dev/null 2>&1 || missing+=(curl)
    fi
    if has_wl TLS; then
        command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    fi
    if ((${#missing[@]})); then
        log "installing ${missing[*]} with apt-get"
        [[ $(id -u) -eq 0 ]] || die "need root to apt-get install ${missing[*]} (or install them yourself)"
        apt-get update -qq || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
            || die "apt-get install ${missing[*]} failed"
    fi
    if has_wl A || has_wl B || has_wl TLS; then
        command -v wrk >/dev/null 2>&1 || die "wrk still not found after install"
    fi
    if has_wl H2; then command -v h2load >/dev/null 2>&1 || die "h2load still not found after install"; fi
    command -v python3 >/dev/null 2>&1 || die "python3 is required (for the idle-connection client and the report)"
    command -v getconf >/dev/null 2>&1 || die "getconf is required"
}

# ---------------------------------------------------------------- build
# The bench-workspace packages this run needs (baselines, the ragi WS/SSE
# servers, the WS/SSE load generators).
bench_packages() {
    local s pk=()
    for s in $SERVERS; do
        case "$s" in
            hyper|hyper-timer) pk+=(hyper-hello) ;;
            actix) pk+=(actix-hello) ;;
            hyper-h2) pk+=(hyper-h2) ;;
            hyper-tls) pk+=(hyper-tls) ;;
            tungstenite) if has_wl WS; then pk+=(tungstenite-echo); fi ;;
            axum-sse) if has_wl SSE; then pk+=(axum-sse); fi ;;
            ragi)
                if has_wl WS; then pk+=(ragi-ws-echo); fi
                if has_wl SSE; then pk+=(ragi-sse); fi
                ;;
        esac
    done
    if has_wl WS; then pk+=(wsload); fi
    if has_wl SSE; then pk+=(sseload); fi
    echo "${pk[*]}"
}

build_all() {
    if [[ "$SKIP_BUILD" == 1 ]]; then
        log "SKIP_BUILD=1: using existing binaries"
    else
        if needs_probe && [[ "$RAGI_BIN" != "$ROOT_DIR/target/release/ragi" ]]; then
            log "RAGI_BIN=$RAGI_BIN: not building ragi"
        elif needs_probe; then
            log "building ragi (cargo build --release -p ragi-cli in $ROOT_DIR)"
            if ! (cd "$ROOT_DIR" && cargo build --release -p ragi-cli) >"$OUT_DIR/build-ragi.log" 2>&1; then
                tail -n 30 "$OUT_DIR/build-ragi.log" >&2
                die "building ragi failed; full log: $OUT_DIR/build-ragi.log"
            fi
        fi
        local pk p
        local -a pargs=()
        pk="$(bench_packages)"
        for p in $pk; do pargs+=(-p "$p"); done
        if ((${#pargs[@]})); then
            # Only the packages this run needs: a baseline-only run does not compile
            # ragi-server (the ragi WS/SSE servers are members of bench/ too).
            log "building bench binaries (cargo build --release ${pargs[*]} in $BENCH_DIR)"
            if ! (cd "$BENCH_DIR" && cargo build --release "${pargs[@]}") >"$OUT_DIR/build-baselines.log" 2>&1; then
                tail -n 30 "$OUT_DIR/build-baselines.log" >&2
                die "building the bench binaries failed; full log: $OUT_DIR/build-baselines.log"
            fi
        fi
    fi
    local s bin wl
    for s in $SERVERS; do
        for wl in $(expand_wl) idle; do
            [[ "$wl" == idle ]] && ((IDLE_CONNS == 0)) && continue
            speaks "$s" "$wl" || continue
            bin="$(server_bin "$s" "$(wl_mode "$wl")")"
            [[ -x "$bin" ]] || die "binary for $s ($wl) not found at $bin"
        done
    done
    if has_wl WS; then [[ -x "$WSLOAD_BIN" ]] || die "wsload not found at $WSLOAD_BIN"; fi
    if has_wl SSE; then [[ -x "$SSELOAD_BIN" ]] || die "sseload not found at $SSELOAD_BIN"; fi
    RAGI_HAS_NO_LIFECYCLE=0
    if needs_probe && [[ " $SERVERS " == *" ragi "* ]]; then
        local help
        help="$(timeout 10 "$RAGI_BIN" probe --help 2>/dev/null || true)"
        if [[ "$help" == *--no-lifecycle* ]]; then RAGI_HAS_NO_LIFECYCLE=1; fi
    fi
}

# Wait (at most QUIET_WAIT s) until processes other than ours use less than
# FOREIGN_WARN % of a core, sampled over 1 s. $1 = a pid whose CPU to ignore
# (the idle server under test).
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
        if ((SECONDS >= deadline)); then
            log "  machine still busy (${pct}% of a core used by other processes); measuring anyway"
            return 0
        fi
        if ((!said)); then
            log "  other processes use ${pct}% of a core; waiting up to ${QUIET_WAIT}s for quiet"
            said=1
        fi
    done
}

# server_bin NAME [MODE]: for ragi, MODE ws and sse are the bench servers.
server_bin() {
    case "$1:${2:-load}" in
        ragi:ws) echo "$RAGI_WS_BIN" ;;
        ragi:sse) echo "$RAGI_SSE_BIN" ;;
        ragi:*|ragi-lc:*) echo "$RAGI_BIN" ;;
        hyper:*|hyper-timer:*) echo "$HYPER_BIN" ;;
        actix:*) echo "$ACTIX_BIN" ;;
        hyper-h2:*) echo "$HYPER_H2_BIN" ;;
        hyper-tls:*) echo "$HYPER_TLS_BIN" ;;
        tungstenite:*) echo "$TUNGSTENITE_BIN" ;;
        axum-sse:*) echo "$AXUM_SSE_BIN" ;;
    esac
}

# ---------------------------------------------------------------- servers
SERVER_PID=""
SERVER_PORT=""

# start_server NAME MODE LOGFILE   (MODE: load | tls | idle | ws | sse)
# Sets SERVER_PID and SERVER_PORT. The server binds port 0 and we read the
# real address from its "listening on http://ADDR" (or https://) line.
# MODE tls serves HTTPS with the run's self-signed certificate; MODE ws and sse
# start ragi's bench servers (ragi-ws-echo, ragi-sse) for ragi.
# Returns 3 (after stopping the server) when a ws server answers the WebSocket
# handshake with plain HTTP: it does not speak WebSocket, the caller skips it.
start_server() {
    local name="$1" mode="$2" logf="$3" bin
    bin="$(server_bin "$name" "$mode")"
    local -a cmd
    case "$name:$mode" in
        ragi:ws|ragi:sse|tungstenite:*|axum-sse:*)
            cmd=("$bin" --listen 127.0.0.1:0)
            ;;
        ragi:*|ragi-lc:*)
            cmd=("$bin" probe --listen 127.0.0.1:0)
            if [[ "$mode" == idle ]]; then
                cmd+=(--max-connections $((IDLE_CONNS * 2 > 20000 ? IDLE_CONNS * 2 : 20000))
                      --idle-timeout 0 --keepalive-timeout 0)
            fi
            # ragi-lc: the same binary with the probe's lifecycle listener on, to show what
            # the listener costs (run it beside `ragi`).
            if [[ "$name" == ragi && "$RAGI_LIFECYCLE" != 1 && "$RAGI_HAS_NO_LIFECYCLE" == 1 ]]; then
                cmd+=(--no-lifecycle)
            fi
            if [[ "$mode" == tls ]]; then
                cmd+=(--tls-cert "$TLS_CERT" --tls-key "$TLS_KEY")
            fi
            if [[ -n "$RAGI_ARGS" ]]; then
                # shellcheck disable=SC2206
                cmd+=($RAGI_ARGS)
            fi
            ;;
        hyper:*|actix:*|hyper-h2:*)
            cmd=("$bin" --listen 127.0.0.1:0)
            ;;
        hyper-timer:*)
            cmd=(env HYPER_HELLO_TIMER=1 "$bin" --listen 127.0.0.1:0)
            ;;
        hyper-tls:*)
            cmd=("$bin" --listen 127.0.0.1:0 --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY")
            ;;
    esac
    echo "+ taskset -c $SERVER_CPU ${cmd[*]}" >"$logf"
    # taskset execs the server, so $! is the server's own pid.
    taskset -c "$SERVER_CPU" "${cmd[@]}" >>"$logf" 2>&1 </dev/null &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")

    local deadline=$((SECONDS + READY_TIMEOUT)) addr=""
    SERVER_PORT=""
    while ((SECONDS < deadline)); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -n 20 "$logf" >&2
            die "$name exited before it was ready (log: $logf)"
        fi
        # Complete lines only: the server may be in the middle of writing its line.
        complete="$(cat "$logf" 2>/dev/null || true)"
        if [[ -s "$logf" && "$(tail -c1 "$logf" | od -An -tx1 | tr -d ' ')" != "0a" ]]; then
            complete="$(sed '$d' <<<"$complete")"
        fi
        addr="$(grep -m1 -o 'listening on https\?://[^ ]*' <<<"$complete" | sed 's#listening on https\?://##' || true)"
        if [[ -n "$addr" ]]; then
            SERVER_PORT="${addr##*:}"
            SERVER_PORT="${SERVER_PORT%%/*}"
            break
        fi
        sleep 0.05
    done
    [[ -n "$SERVER_PORT" ]] || { tail -n 20 "$logf" >&2; die "$name did not print 'listening on http(s)://ADDR' within ${READY_TIMEOUT}s (log: $logf)"; }

    # How to check that it answers: hyper-h2 speaks only h2c, TLS mode only HTTPS,
    # ws mode must echo a WebSocket message (wsload --check).
    local check=h1
    if [[ "$mode" == tls ]]; then check=tls; elif [[ "$name" == hyper-h2 ]]; then check=h2c; fi
    if [[ "$mode" == ws ]]; then
        local rc
        while ((SECONDS < deadline)); do
            rc=0
            timeout 10 "$WSLOAD_BIN" --check --url "ws://127.0.0.1:$SERVER_PORT/ws/echo" \
                >>"$logf.check" 2>&1 </dev/null || rc=$?
            ((rc == 0)) && return 0
            if ((rc == 3)); then
                log "WARNING: $name does not speak WebSocket: $(tail -n1 "$logf.check")"
                stop_pid "$SERVER_PID"
                return 3
            fi
            kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$logf" >&2; die "$name died while starting (log: $logf)"; }
            sleep 0.1
        done
        cat "$logf.check" >&2
        die "$name on port $SERVER_PORT did not echo a WebSocket message within ${READY_TIMEOUT}s (log: $logf, $logf.check)"
    fi
    while ((SECONDS < deadline)); do
        if http_ok "$SERVER_PORT" "$check"; then
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$logf" >&2; die "$name died while starting (log: $logf)"; }
        sleep 0.1
    done
    tail -n 20 "$logf" >&2
    die "$name on port $SERVER_PORT did not answer GET / with 200 within ${READY_TIMEOUT}s (log: $logf)"
}

# One GET / over bash's /dev/tcp, bounded by `timeout`; true on a 200.
# http_ok PORT [h1|h2c|tls]: h2c (prior knowledge) and tls (HTTP/1.1 over TLS,
# certificate not verified) use curl.
http_ok() {
    local port="$1" kind="${2:-h1}" line
    case "$kind" in
        h2c) [[ "$(curl -s -o /dev/null --max-time 2 --http2-prior-knowledge -w '%{http_code}' \
                   "http://127.0.0.1:$port/" 2>/dev/null)" == 200 ]]; return ;;
        tls) [[ "$(curl -sk -o /dev/null --max-time 2 --http1.1 -w '%{http_code}' \
                   "https://127.0.0.1:$port/" 2>/dev/null)" == 200 ]]; return ;;
    esac
    # shellcheck disable=SC2016  # $1 expands in the inner bash
    line="$(timeout 2 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" >&3
        head -n1 <&3' _ "$port" 2>/dev/null || true)"
    [[ "$line" == "HTTP/1."[01]" 200"* ]]
}

# The server's pid plus all its descendants (in case a server forks worker
# processes; for threads nothing extra is needed, /proc/PID/stat covers them).
proc_tree() {
    local -a todo=("$1") tree=()
    local p
    while ((${#todo[@]})); do
        p="${todo[0]}"; todo=("${todo[@]:1}")
        tree+=("$p")
        # shellcheck disable=SC2207
        todo+=($(pgrep -P "$p" 2>/dev/null || true))
    done
    echo "${tree[@]}"
}

# utime+stime of the server (all threads, and any child processes), in clock
# ticks: fields 14 and 15 of stat(5).
cpu_ticks() {
    local total=0 p stat rest
    local -a f
    for p in $(proc_tree "$1"); do
        stat="$(cat /proc/"$p"/stat 2>/dev/null)" || continue
        rest="${stat##*) }"           # drop "pid (comm) ", comm may contain spaces
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    [[ -r /proc/$1/stat ]] || die "server pid $1 is gone (it died during the run?)"
    echo "$total"
}

# VmRSS in KiB, summed over the server's process tree.
rss_kib() {
    local total=0 p v
    for p in $(proc_tree "$1"); do
        v="$(awk '/^VmRSS:/ {print $2}' /proc/"$p"/status 2>/dev/null || true)"
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# Busy ticks of the whole machine (all CPUs, steal included) from /proc/stat.
machine_busy_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# Sets CHILD_TICKS to the CPU ticks used so far by this shell's reaped
# children (wrk among them). Call it directly, not in $(...): `times` in a
# subshell would only see the subshell's own children.
CHILD_TICKS=0
children_ticks() {
    times >"$OUT_DIR/.times"
    CHILD_TICKS="$(awk -v clk="$CLK" 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); t += a[1] * 60 + a[2] }
        printf "%d\n", t * clk + 0.5
    }' "$OUT_DIR/.times")"
}

# ---------------------------------------------------------------- wrk
# run_wrk WORKLOAD PORT DURATION OUTFILE [warmup]
# (WS and SSE runs go to run_stream_load.)
run_wrk() {
    local wl="$1" port="$2" dur="$3" out="$4"
    if [[ "$wl" == WS-* || "$wl" == SSE ]]; then
        run_stream_load "$@"
        return
    fi
    local -a cmd=(wrk -t1 "-c$CONNECTIONS" "-d$dur" --latency)
    if [[ "$wl" == H2 ]]; then
        # h2load wants whole seconds; -t1 is its default, spelled out to match wrk.
        cmd=(h2load -t1 "-c$CONNECTIONS" "-m$H2_STREAMS" -D "$(dur_to_sec "$dur")" "http://127.0.0.1:$port/")
    elif [[ "$wl" == TLS ]]; then
        cmd+=("https://127.0.0.1:$port/")
    elif [[ "$wl" == B ]]; then
        cmd+=(-s "$BENCH_DIR/pipeline.lua" "http://127.0.0.1:$port/" -- "$PIPELINE")
    else
        cmd+=("http://127.0.0.1:$port/")
    fi
    echo "+ taskset -c $CLIENT_CPU ${cmd[*]}" >"$out"
    # wrk normally ends on its own; the outer timeout is only a safety net.
    # pipeline.lua's done() needs these to undo wrk's latency correction.
    if ! WRK_CONNECTIONS="$CONNECTIONS" WRK_PIPELINE_DEPTH="$PIPELINE" \
        timeout --kill-after=5 "$(($(dur_to_sec "$dur") + 30))" \
        taskset -c "$CLIENT_CPU" "${cmd[@]}" >>"$out" 2>&1; then
        cat "$out" >&2
        die "${cmd[0]} failed (output: $out)"
    fi
}

# run_stream_load WORKLOAD PORT DURATION OUTFILE [warmup]
# WS-SIZE-wWINDOW: wsload for DURATION. SSE: sseload, SSE_BURSTS rounds
# (SSE_WARMUP_BURSTS when the 5th argument is "warmup"). A run whose loader
# printed its summary line is kept even if the loader exits non-zero (errors are
# counted and flagged in the table); without a summary line the script stops.
run_stream_load() {
    local wl="$1" port="$2" dur="$3" out="$4" warm="${5:-}" limit
    local -a cmd
    if [[ "$wl" == WS-* ]]; then
        local size="${wl#WS-}" window
        window="${size#*-w}"; size="${size%%-w*}"
        cmd=("$WSLOAD_BIN" --url "ws://127.0.0.1:$port/ws/echo" -c "$WS_CONNECTIONS"
             --size "$size" --window "$window" --duration "$dur")
        limit=$(($(dur_to_sec "$dur") + 60))
    else
        local bursts="$SSE_BURSTS"
        [[ "$warm" == warmup ]] && bursts="$SSE_WARMUP_BURSTS"
        cmd=("$SSELOAD_BIN" --addr "127.0.0.1:$port" -c "$SSE_SUBSCRIBERS" --events "$SSE_EVENTS"
             --bursts "$bursts" --interval-us "$SSE_INTERVAL_US" --pause-ms "$SSE_PAUSE_MS")
        # per round at most the loader's 30 s timeout plus the pause, plus set-up
        limit=$((120 + bursts * (31 + SSE_PAUSE_MS / 1000)))
    fi
    echo "+ taskset -c $CLIENT_CPU ${cmd[*]}" >"$out"
    local rc=0
    timeout --kill-after=5 "$limit" taskset -c "$CLIENT_CPU" "${cmd[@]}" >>"$out" 2>&1 </dev/null || rc=$?
    if ((rc != 0)); then
        if grep -q '^\(wsload\|sseload\): ' "$out"; then
            log "  WARNING: ${cmd[0]##*/} exited with $rc (errors; see $out)"
        else
            cat "$out" >&2
            die "${cmd[0]##*/} failed (exit $rc, output: $out)"
        fi
    fi
}

# Parse wsload / sseload output: prints "count rate p99_ms errors 0" like
# parse_wrk (count = echoes or delivered events, rate = msgs/s or events/s;
# for SSE the errors include lost events).
parse_stream() {
    awk '
        /^wsload: / {
            for (i = 2; i < NF; i++) {
                if ($i == "messages") n = $(i + 1)
                if ($i == "msgs_per_s") r = $(i + 1)
                if ($i == "p99_us") p = $(i + 1) / 1000
                if ($i == "errors") e = $(i + 1)
            }
        }
        /^sseload: / {
            for (i = 2; i < NF; i++) {
                if ($i == "delivered") n = $(i + 1)
                if ($i == "events_per_s") r = $(i + 1)
                if ($i == "p99_us") p = $(i + 1) / 1000
                if ($i == "errors") e += $(i + 1)
                if ($i == "lost") e += $(i + 1)
            }
        }
        END {
            if (n == "" || r == "" || p == "") exit 1
            printf "%s %s %s %d 0\n", n, r, p, e
        }' "$1"
}

# wrk-style duration (8, 8s, 2m, 1h) -> whole seconds, rounded up.
dur_to_sec() {
    awk -v d="$1" 'BEGIN {
        n = d; sub(/[smh]$/, "", n); u = substr(d, length(d))
        m = (u == "m") ? 60 : (u == "h") ? 3600 : 1
        s = n * m; printf "%d\n", (s == int(s)) ? s : int(s) + 1
    }'
}

# Parse h2load output: prints "requests req_per_sec p99_ms errors non2xx" like
# parse_wrk. requests = succeeded requests, req/s from the "finished in" line;
# h2load reports no percentiles, so p99 is "nan". errors = failed + errored +
# timeout, non2xx = 3xx + 4xx + 5xx.
parse_h2load() {
    awk '
        /^finished in / { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^req\/s/) rps = $i }
        /^requests: / {
            gsub(/,/, "")
            for (i = 2; i < NF; i++) {
                if ($(i + 1) == "succeeded") reqs = $i
                if ($(i + 1) == "failed" || $(i + 1) == "errored" || $(i + 1) == "timeout") errs += $i
            }
        }
        /^status codes: / { gsub(/,/, ""); non2xx = $5 + $7 + $9 }
        END {
            if (reqs == "" || rps == "") exit 1
            printf "%s %s nan %d %d\n", reqs, rps, errs, non2xx
        }' "$1"
}

# Parse wrk output: prints "requests req_per_sec p99_ms errors non2xx".
# For pipelined runs wrk's own percentiles are wrong (see pipeline.lua), so
# the p99 comes from the "pipeline-latency:" line that pipeline.lua prints.
parse_wrk() {
    awk '
        function to_ms(v,   n, u) {
            n = v; sub(/[a-z]+$/, "", n); u = v; sub(/^[0-9.]+/, "", u)
            if (u == "us") return n / 1000
            if (u == "ms") return n
            if (u == "s")  return n * 1000
            if (u == "m")  return n * 60000
            return -1
        }
        /Latency Distribution/ { indist = 1; next }
        indist && $1 == "99%" { p99 = to_ms($2); indist = 0 }
        / requests in / { reqs = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Socket errors:/ {
            gsub(/,/, ""); errs = $4 + $6 + $8 + $10
        }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /^pipeline-latency:/ {
            for (i = 2; i < NF; i++) if ($i == "p99_us") pp99 = $(i + 1) / 1000
        }
        END {
            if (pp99 != "") p99 = pp99
            if (reqs == "" || rps == "" || p99 == "") exit 1
            printf "%s %s %s %d %d\n", reqs, rps, p99, errs, non2xx
        }' "$1"
}

# ---------------------------------------------------------------- load test
RESULTS=""
load_tests() {
    RESULTS="$OUT_DIR/results.tsv"
    printf 'round\tworkload\tserver\trequests\treq_s\tp99_ms\tcpu_us_req\terrors\tnon2xx\tserver_busy_pct\tforeign_pct\n' >"$RESULTS"
    local round s wl mode wls
    for round in $(seq 1 "$ROUNDS"); do
        for s in $SERVERS; do
          # The cleartext workloads (A, B, H2) share one server process; TLS
          # needs the server started with a certificate, so it gets its own.
          # The WS runs share one (WebSocket echo) server process, SSE gets one
          # of its own (ragi: the bench servers ragi-ws-echo and ragi-sse).
          for mode in load tls ws sse; do
            wls=""
            for wl in $(expand_wl); do
                speaks "$s" "$wl" || continue
                [[ "$(wl_mode "$wl")" == "$mode" ]] && wls="$wls $wl"
            done
            [[ -n "$wls" ]] || continue
            local suffix="" rc=0
            [[ "$mode" != load ]] && suffix="-$mode"
            start_server "$s" "$mode" "$OUT_DIR/server-$s-r$round$suffix.log" || rc=$?
            if ((rc == 3)); then
                log "round $round/$ROUNDS: $s skipped for$wls (no WebSocket)"
                printf '%s\t%s\t%s\n' "$round" "$s" "$wls" >>"$OUT_DIR/skipped.tsv"
                continue
            fi
            ((rc == 0)) || die "starting $s failed"
            log "round $round/$ROUNDS: $s$( [[ "$mode" != load ]] && echo " (${mode^^})") (pid $SERVER_PID, port $SERVER_PORT)"
            if [[ "$WARMUP" != 0 && "$WARMUP" != 0s ]]; then
                for wl in $wls; do
                    [[ "$wl" == SSE ]] && ((SSE_WARMUP_BURSTS == 0)) && continue
                    run_wrk "$wl" "$SERVER_PORT" "$WARMUP" "$OUT_DIR/wrk-$s-$wl-r$round-warmup.txt" warmup
                done
            fi
            for wl in $wls; do
                local out="$OUT_DIR/wrk-$s-$wl-r$round.txt" t0 t1 parsed
                local m0 m1 c0 c1 w0 w1
                wait_quiet "$SERVER_PID"
                w0="$EPOCHREALTIME"; m0="$(machine_busy_ticks)"; children_ticks; c0="$CHILD_TICKS"
                t0="$(cpu_ticks "$SERVER_PID")"
                run_wrk "$wl" "$SERVER_PORT" "$DURATION" "$out"
                t1="$(cpu_ticks "$SERVER_PID")"
                m1="$(machine_busy_ticks)"; children_ticks; c1="$CHILD_TICKS"; w1="$EPOCHREALTIME"
                if [[ "$wl" == H2 ]]; then
                    parsed="$(parse_h2load "$out")" || { cat "$out" >&2; die "cannot parse h2load output $out"; }
                elif [[ "$wl" == WS-* || "$wl" == SSE ]]; then
                    parsed="$(parse_stream "$out")" || { cat "$out" >&2; die "cannot parse the load generator's output $out"; }
                else
                    parsed="$(parse_wrk "$out")" || { cat "$out" >&2; die "cannot parse wrk output $out"; }
                fi
                local reqs rps p99 errs non2xx cpu_us
                read -r reqs rps p99 errs non2xx <<<"$parsed"
                ((reqs > 0)) || die "the load generator reported 0 requests against $s (see $out)"
                cpu_us="$(awk -v d="$((t1 - t0))" -v c="$CLK" -v r="$reqs" 'BEGIN { printf "%.3f", d * 1e6 / c / r }')"
                # Server busy % of its core, and CPU used by anything that is
                # neither the server nor wrk ("foreign"), in % of one core.
                local busy foreign
                busy="$(awk -v d="$((t1 - t0))" -v c="$CLK" -v w="$(awk -v a="$w0" -v b="$w1" 'BEGIN { print b - a }')" \
                    'BEGIN { printf "%.0f", d / c / w * 100 }')"
                foreign="$(awk -v m="$((m1 - m0 - (t1 - t0) - (c1 - c0)))" -v c="$CLK" -v a="$w0" -v b="$w1" \
                    'BEGIN { f = m / c / (b - a) * 100; if (f < 0) f = 0; printf "%.0f", f }')"
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
                    "$round" "$wl" "$s" "$reqs" "$rps" "$p99" "$cpu_us" "$errs" "$non2xx" "$busy" "$foreign" >>"$RESULTS"
                local unit=req
                [[ "$wl" == WS-* ]] && unit=msg
                [[ "$wl" == SSE ]] && unit=event
                log "  $wl: $rps $unit/s, p99 ${p99/nan/-} ms, ${cpu_us} µs CPU/$unit ($((t1 - t0)) ticks / $reqs $unit, server ${busy}% busy, other processes ${foreign}% of a core)$( ((errs + non2xx)) && echo ", ERRORS: $errs socket, $non2xx non-2xx")"
                if ((foreign > FOREIGN_WARN)); then
                    log "  WARNING: other processes used ${foreign}% of a core during this run; its figures are unreliable"
                fi
            done
            stop_pid "$SERVER_PID"
          done
        done
    done
}

report_load() {
    python3 - "$RESULTS" "$PIPELINE" "$FOREIGN_WARN" "$H2_STREAMS" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
# WS and SSE rows have their own table (report_stream).
rows = [r for r in rows if not (r["workload"].startswith("WS-") or r["workload"] == "SSE")]
names = {"A": "A plain keep-alive", "B": "B pipelined x" + sys.argv[2],
         "H2": "H2 h2c x" + sys.argv[4] + " streams", "TLS": "TLS https/1.1"}
# The baseline each workload's ratios are taken against: the bare hyper
# server that speaks that workload.
baseline = {"A": "hyper", "B": "hyper", "H2": "hyper-h2", "TLS": "hyper-tls"}
order_wl, order_s, agg = [], [], {}
for r in rows:
    wl, s = r["workload"], r["server"]
    if wl not in order_wl: order_wl.append(wl)
    if s not in order_s: order_s.append(s)
    a = agg.setdefault((wl, s), {"rps": [], "p99": [], "cpu": [], "err": 0, "noisy": 0})
    if float(r["foreign_pct"]) > float(sys.argv[3]): a["noisy"] += 1
    a["rps"].append(float(r["req_s"])); a["p99"].append(float(r["p99_ms"]))
    a["cpu"].append(float(r["cpu_us_req"])); a["err"] += int(r["errors"]) + int(r["non2xx"])
med = statistics.median
hdr = ["workload", "server", "req/s", "p99 ms", "CPU µs/req", "req/s vs hyper", "CPU vs hyper"]
out = []
for wl in order_wl:
    base = agg.get((wl, baseline.get(wl, "hyper")))
    for s in order_s:
        a = agg.get((wl, s))
        if not a: continue
        rps, p99, cpu = med(a["rps"]), med(a["p99"]), med(a["cpu"])
        if base:
            rr = f"{rps / med(base['rps']):.2f}x"
            cr = f"{cpu / med(base['cpu']):.2f}x"
        else:
            rr = cr = "-"
        flag = (" (!errors)" if a["err"] else "") + (" (!noisy)" if a["noisy"] else "")
        p99s = "-" if p99 != p99 else f"{p99:.2f}"  # nan: h2load has no percentiles
        out.append([names.get(wl, wl), s + flag, f"{rps:,.0f}", p99s, f"{cpu:.2f}", rr, cr])
def table(hdr, body):
    """Prints a Markdown table: the first two columns left-aligned, the rest right-aligned."""
    w = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(hdr)]
    line = lambda c: "| " + " | ".join(x.ljust(w[i]) if i < 2 else x.rjust(w[i]) for i, x in enumerate(c)) + " |"
    print(line(hdr))
    print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for r in body: print(line(r))
table(hdr, out)
n = len({r["round"] for r in rows})
print(f"\nmedians of {n} round(s); ratios: req/s higher is better, CPU lower is better; "
      "'(!errors)' = wrk saw socket errors or non-2xx responses; "
      f"'(!noisy)' = in some round other processes used more than {sys.argv[3]}% of a core")
print("p99: wrk's --latency 99% (A, TLS); for B the per-batch p99 that pipeline.lua recomputes, "
      "because wrk's own pipelined percentiles are broken")
# Ratios paired within a round: this VM drifts between a fast and a slow state (the same
# binary can differ by 25% between rounds), and two servers measured back to back in one
# round share the state more often than the medians of separate columns do.
paired = []
for wl in order_wl:
    for s in order_s:
        if s == "ragi" or not agg.get((wl, s)) or not agg.get((wl, "ragi")):
            continue
        by_round = {}
        for r in rows:
            if r["workload"] == wl and r["server"] in ("ragi", s):
                by_round.setdefault(r["round"], {})[r["server"]] = r
        pairs = [(float(v["ragi"]["req_s"]) / float(v[s]["req_s"]),
                  float(v["ragi"]["cpu_us_req"]) / float(v[s]["cpu_us_req"]))
                 for v in by_round.values() if len(v) == 2]
        if pairs:
            rr, cr = [p[0] for p in pairs], [p[1] for p in pairs]
            paired.append([names.get(wl, wl), s, str(len(pairs)),
                           f"{med(rr):.3f}x ({min(rr):.2f}-{max(rr):.2f})",
                           f"{med(cr):.3f}x ({min(cr):.2f}-{max(cr):.2f})"])
if paired:
    print("\nragi against each server, paired within each round (median and range of the per-round ratios):\n")
    table(["workload", "ragi vs", "rounds", "req/s ratio, median (range)", "CPU ratio, median (range)"], paired)
if any(wl in order_wl for wl in ("H2", "TLS")):
    print("baselines: A/B vs hyper (hyper-hello), H2 vs hyper-h2, TLS vs hyper-tls; "
          "H2 is h2load (no p99: h2load prints no percentiles), requests = h2load's 'succeeded'; "
          "TLS is wrk over HTTPS; wrk speaks only HTTP/1.1, so ragi's ALPN (h2 first) falls back to http/1.1")
PY
}

report_stream() {
    python3 - "$RESULTS" "$FOREIGN_WARN" "$SSE_SUBSCRIBERS" "$SSE_EVENTS" "$SSE_INTERVAL_US" \
        "$OUT_DIR/skipped.tsv" "$WS_CONNECTIONS" "$(expand_wl | tr '\n' ' ')" "$SERVERS" <<'PY'
import csv, os, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t")
        if r["workload"].startswith("WS-") or r["workload"] == "SSE"]
subs, events, interval, skipped_file, ws_conns = sys.argv[3:8]
# The table follows the workloads' order (WS runs as WS_WINDOWS x WS_SIZES).
wl_rank = {w: i for i, w in enumerate(sys.argv[8].split())}
rows.sort(key=lambda r: wl_rank.get(r["workload"], len(wl_rank)))
s_rank = {s: i for i, s in enumerate(sys.argv[9].split())}
rows.sort(key=lambda r: (wl_rank.get(r["workload"], len(wl_rank)), s_rank.get(r["server"], len(s_rank))))
def name(wl):
    if wl == "SSE":
        return f"SSE {subs} subs x {events} events" + (f" every {interval} µs" if interval != "0" else "")
    size, window = wl[3:].split("-w")
    size = int(size)
    sz = f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"
    return f"WS echo {sz}, window {window}"
baseline = lambda wl: "axum-sse" if wl == "SSE" else "tungstenite"
order_wl, order_s, agg = [], [], {}
for r in rows:
    wl, s = r["workload"], r["server"]
    if wl not in order_wl: order_wl.append(wl)
    if s not in order_s: order_s.append(s)
    a = agg.setdefault((wl, s), {"rate": [], "p99": [], "cpu": [], "busy": [], "err": 0, "noisy": 0})
    if float(r["foreign_pct"]) > float(sys.argv[2]): a["noisy"] += 1
    a["rate"].append(float(r["req_s"])); a["p99"].append(float(r["p99_ms"]))
    a["cpu"].append(float(r["cpu_us_req"])); a["busy"].append(float(r["server_busy_pct"]))
    a["err"] += int(r["errors"]) + int(r["non2xx"])
med = statistics.median
hdr = ["workload", "server", "msgs|events/s", "p99 ms", "CPU µs/msg", "server busy %", "rate vs base", "CPU vs base"]
out = []
for wl in order_wl:
    base = agg.get((wl, baseline(wl)))
    for s in order_s:
        a = agg.get((wl, s))
        if not a: continue
        rate, p99, cpu = med(a["rate"]), med(a["p99"]), med(a["cpu"])
        if base:
            rr = f"{rate / med(base['rate']):.2f}x"
            cr = f"{cpu / med(base['cpu']):.2f}x"
        else:
            rr = cr = "-"
        flag = (" (!errors)" if a["err"] else "") + (" (!noisy)" if a["noisy"] else "")
        out.append([name(wl), s + flag, f"{rate:,.0f}", f"{p99:.2f}", f"{cpu:.2f}", f"{med(a['busy']):.0f}", rr, cr])
if out:
    w = [max(len(h), *(len(r[i]) for r in out)) for i, h in enumerate(hdr)]
    line = lambda c: "| " + " | ".join(x.ljust(w[i]) if i < 2 else x.rjust(w[i]) for i, x in enumerate(c)) + " |"
    print(line(hdr))
    print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for r in out: print(line(r))
    n = len({r["round"] for r in rows})
    print(f"\nmedians of {n} round(s); ratios against tungstenite (WS) and axum-sse (SSE): rate higher is better, "
          "CPU lower is better; '(!errors)' = failed or mismatched echoes, lost events or loader errors; "
          f"'(!noisy)' = in some round other processes used more than {sys.argv[2]}% of a core")
    print(f"WS: {ws_conns} sessions, each keeps 'window' binary messages in flight; p99 = round trip; "
          "CPU per echoed message")
    print("SSE: rate = delivered events / sum of (last delivery - first publish) per round; p99 = publish -> "
          "parsed by the subscriber; CPU per delivered event, over the whole loader run (incl. connecting the "
          "subscribers); busy % is low because the server idles between rounds")
else:
    print("(no WS or SSE measurements)")
if os.path.exists(skipped_file):
    skipped = {}
    for line in open(skipped_file):
        rnd, s, wls = line.rstrip("\n").split("\t")
        skipped.setdefault((s, wls.strip()), []).append(rnd)
    for (s, wls), rounds in skipped.items():
        print(f"NOT MEASURED: {s} for {wls} in round(s) {', '.join(rounds)}: the server answered the WebSocket "
              "handshake with plain HTTP (no WebSocket support in this build); see server-*-ws.log.check")
PY
}

# ---------------------------------------------------------------- idle conns
IDLE_RESULTS=""
idle_test() {
    IDLE_RESULTS="$OUT_DIR/idle.tsv"
    printf 'server\tconns\talive\tfds\trss_before_kib\trss_after_kib\tkib_per_conn\n' >"$IDLE_RESULTS"
    local s
    for s in $SERVERS; do
        # The idle client speaks cleartext HTTP/1.1: hyper-h2 and hyper-tls sit this out.
        speaks "$s" idle || { log "idle: $s skipped (no cleartext HTTP/1.1)"; continue; }
        start_server "$s" idle "$OUT_DIR/server-$s-idle.log"
        log "idle: $s (pid $SERVER_PID, port $SERVER_PORT), opening $IDLE_CONNS connections"
        sleep 0.5
        local before after ready="$OUT_DIR/idle-$s.ready" cout="$OUT_DIR/idle-$s.out" cpid
        wait_quiet "$SERVER_PID"
        before="$(rss_kib "$SERVER_PID")"
        rm -f "$ready"
        taskset -c "$CLIENT_CPU" python3 "$BENCH_DIR/idle_conns.py" --port "$SERVER_PORT" \
            -n "$IDLE_CONNS" --ready-file "$ready" --total-timeout "$IDLE_TIMEOUT" \
            >"$cout" 2>&1 </dev/null &
        cpid=$!
        STARTED_PIDS+=("$cpid")
        local deadline=$((SECONDS + IDLE_TIMEOUT + 10))
        while [[ ! -s "$ready" ]]; do
            kill -0 "$cpid" 2>/dev/null || { cat "$cout" >&2; die "idle client exited early against $s (output: $cout)"; }
            ((SECONDS < deadline)) || die "idle client did not get ready within ${IDLE_TIMEOUT}s against $s"
            sleep 0.2
        done
        local opened
        opened="$(awk '{print $2}' "$ready")"
        sleep "$IDLE_HOLD"
        kill -0 "$SERVER_PID" 2>/dev/null || die "$s died while holding idle connections (log: $OUT_DIR/server-$s-idle.log)"
        after="$(rss_kib "$SERVER_PID")"
        local fds
        local p
        fds=0
        for p in $(proc_tree "$SERVER_PID"); do
            fds=$((fds + $(find /proc/"$p"/fd -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)))
        done
        stop_pid "$cpid"          # client prints how many were still open
        local alive
        alive="$(awk '/^alive / { split($2, a, "/"); print a[1] }' "$cout")"
        alive="${alive:-?}"
        stop_pid "$SERVER_PID"
        local per
        per="$(awk -v a="$after" -v b="$before" -v n="$opened" 'BEGIN { if (n > 0) printf "%.2f", (a - b) / n; else print "nan" }')"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$opened" "$alive" "$fds" "$before" "$after" "$per" >>"$IDLE_RESULTS"
        log "  $s: RSS $before -> $after KiB with $opened conns ($alive still open, $fds fds): $per KiB/conn"
        [[ "$opened" == "$IDLE_CONNS" ]] || log "  WARNING: only $opened of $IDLE_CONNS connections could be opened to $s"
        [[ "$alive" == "$opened" ]] || log "  WARNING: $s closed some idle connections during the measurement"
    done
}

report_idle() {
    python3 - "$IDLE_RESULTS" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
hdr = ["server", "conns open", "RSS before MiB", "RSS after MiB", "KiB/conn"]
out = [[r["server"], f'{r["alive"]}/{r["conns"]}', f'{int(r["rss_before_kib"]) / 1024:.1f}',
        f'{int(r["rss_after_kib"]) / 1024:.1f}', r["kib_per_conn"]] for r in rows]
w = [max(len(h), *(len(r[i]) for r in out)) for i, h in enumerate(hdr)]
line = lambda c: "| " + " | ".join(x.ljust(w[i]) if i < 1 else x.rjust(w[i]) for i, x in enumerate(c)) + " |"
print(line(hdr))
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in out: print(line(r))
PY
}

# ---------------------------------------------------------------- main
mkdir -p "$OUT_DIR"
need_tools
CLK="$(getconf CLK_TCK)"

# Servers and clients need many fds (10 000 idle connections + slack).
want_fds=$((IDLE_CONNS + 4096)); ((want_fds < 65536)) && want_fds=65536
ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (( $(ulimit -n) < IDLE_CONNS + 256 )); then
    log "WARNING: fd limit is $(ulimit -n), too low for IDLE_CONNS=$IDLE_CONNS"
fi
if has_wl SSE && (( $(ulimit -n) < SSE_SUBSCRIBERS + 256 )); then
    log "WARNING: fd limit is $(ulimit -n), too low for SSE_SUBSCRIBERS=$SSE_SUBSCRIBERS"
fi

build_all

if has_wl TLS; then
    # A fresh self-signed P-256 certificate per run, for ragi and hyper-tls.
    TLS_CERT="$OUT_DIR/tls-cert.pem"
    TLS_KEY="$OUT_DIR/tls-key.pem"
    if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 30 \
        -keyout "$TLS_KEY" -out "$TLS_CERT" >"$OUT_DIR/openssl.log" 2>&1; then
        cat "$OUT_DIR/openssl.log" >&2
        die "generating the TLS certificate failed"
    fi
fi

log "results and raw outputs: $OUT_DIR"
if [[ -n "$WL_LIST" ]]; then
    load_tests
fi
if ((IDLE_CONNS > 0)); then
    idle_test
fi

HTTP_WL=0
if has_wl A || has_wl B || has_wl H2 || has_wl TLS; then HTTP_WL=1; fi
STREAM_WL=0
if has_wl WS || has_wl SSE; then STREAM_WL=1; fi
echo
if ((HTTP_WL)) || [[ -z "$WL_LIST" ]]; then
    echo "== ragi benchmark: wrk -t1 -c$CONNECTIONS -d$DURATION --latency, server on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU =="
fi
if has_wl H2; then
    echo "== H2: h2load -t1 -c$CONNECTIONS -m$H2_STREAMS -D $(dur_to_sec "$DURATION") (h2c prior knowledge), h2load on CPU $CLIENT_CPU =="
fi
if has_wl TLS; then
    echo "== TLS: wrk -t1 -c$CONNECTIONS -d$DURATION --latency https://..., self-signed P-256 certificate =="
fi
if has_wl WS; then
    echo "== WS: wsload -c $WS_CONNECTIONS --size {${WS_SIZES// /,}} --window {${WS_WINDOWS// /,}} --duration $DURATION (WebSocket echo, binary messages), server on CPU $SERVER_CPU, wsload on CPU $CLIENT_CPU =="
fi
if has_wl SSE; then
    echo "== SSE: sseload -c $SSE_SUBSCRIBERS --events $SSE_EVENTS --bursts $SSE_BURSTS --interval-us $SSE_INTERVAL_US --pause-ms $SSE_PAUSE_MS (broadcast fan-out), server on CPU $SERVER_CPU, sseload on CPU $CLIENT_CPU =="
fi
echo
if ((HTTP_WL)); then
    report_load
    echo
fi
if ((STREAM_WL)); then
    report_stream
    echo
fi
if ((IDLE_CONNS > 0)); then
    echo "== idle keep-alive connections: $IDLE_CONNS, RSS from /proc/PID/status VmRSS =="
    echo
    report_idle
    echo
fi
echo "machine: nproc=$(nproc), kernel $(uname -sr), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || echo '?')"
echo "tools:   $(command -v wrk >/dev/null 2>&1 && echo "$(wrk --version 2>&1 | head -n1 | awk '{print $1, $2}'), ")$(rustc --version 2>/dev/null || echo 'rustc ?'), $(python3 --version 2>&1)$(has_wl H2 && echo ", h2load $(h2load --version 2>&1 | head -n1 | awk '{print $NF}')")$(has_wl TLS && echo ", $(openssl version 2>&1 | awk '{print $1, $2}')")"
if [[ " $SERVERS " == *" ragi "* ]] && needs_probe; then
    if [[ "$RAGI_LIFECYCLE" != 1 && "$RAGI_HAS_NO_LIFECYCLE" == 1 ]]; then
        echo "ragi:    $RAGI_BIN probe --no-lifecycle${RAGI_ARGS:+ $RAGI_ARGS} (probe's lifecycle listener off)"
    else
        echo "ragi:    $RAGI_BIN probe${RAGI_ARGS:+ $RAGI_ARGS} (probe's lifecycle listener on)"
    fi
fi
if [[ " $SERVERS " == *" ragi "* ]]; then
    if has_wl WS; then
        echo "ragi WS: $RAGI_WS_BIN (bench/ragi-ws-echo on ragi-server of $(git -C "$ROOT_DIR" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    fi
    if has_wl SSE; then
        echo "ragi SSE: $RAGI_SSE_BIN (bench/ragi-sse on ragi-server of $(git -C "$ROOT_DIR" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    fi
fi
echo "raw:     $OUT_DIR"
# shellcheck disable=SC2016  # the single quotes are literal, for copy-paste
echo "reproduce: cd $ROOT_DIR && SERVERS='$SERVERS' WORKLOADS='$WORKLOADS' ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS PIPELINE=$PIPELINE$(has_wl H2 && echo " H2_STREAMS=$H2_STREAMS")$(has_wl WS && echo " WS_CONNECTIONS=$WS_CONNECTIONS WS_SIZES='$WS_SIZES' WS_WINDOWS='$WS_WINDOWS'")$(has_wl SSE && echo " SSE_SUBSCRIBERS=$SSE_SUBSCRIBERS SSE_EVENTS=$SSE_EVENTS SSE_BURSTS=$SSE_BURSTS SSE_WARMUP_BURSTS=$SSE_WARMUP_BURSTS SSE_INTERVAL_US=$SSE_INTERVAL_US SSE_PAUSE_MS=$SSE_PAUSE_MS") IDLE_CONNS=$IDLE_CONNS${RAGI_ARGS:+ RAGI_ARGS='$RAGI_ARGS'}$( [[ "$RAGI_LIFECYCLE" == 1 ]] && echo " RAGI_LIFECYCLE=1")${RAGI_BIN_SET:+ RAGI_BIN='$RAGI_BIN'} bash bench/run.sh"
