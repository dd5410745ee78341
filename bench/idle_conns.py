#!/usr/bin/env python3
"""Open N idle HTTP/1.1 keep-alive connections to a server and hold them.

Each connection sends one `GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n`, reads the
complete response (Content-Length or chunked), and is then kept open and idle.
Once all N are established the client signals readiness (writes
"ready N" to --ready-file, or to stdout when no file is given) and waits until
it is told to exit: SIGTERM / SIGINT, or EOF on stdin with --stdin.

On exit it checks how many connections the server still has open (a
non-blocking recv() that returns b"" means the server closed it) and prints
`alive A/N closed C` on stdout, so the caller can tell whether an idle or
keep-alive timeout closed connections during the measurement.

Exit status: 0 if all N connections were opened, 1 otherwise.
"""

import argparse
import os
import resource
import select
import signal
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def raise_nofile(want):
    """Raise RLIMIT_NOFILE to at least `want` (as root the hard limit too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    inf = resource.RLIM_INFINITY
    for limits in ((want, hard if hard == inf or hard >= want else want), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def read_response(sock, deadline):
    """Read one full HTTP/1.1 response; return its status code."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += recv_some(sock, deadline)
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while not body.endswith(b"0\r\n\r\n"):
            body += recv_some(sock, deadline)
    elif length is not None:
        while len(body) < length:
            body += recv_some(sock, deadline)
    return status


def recv_some(sock, deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("response timed out")
    sock.settimeout(left)
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("server closed the connection before the response ended")
    return data


def open_conn(host, port, timeout):
    deadline = time.monotonic() + timeout
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(REQUEST)
    status = read_response(sock, deadline)
    if status != 200:
        raise RuntimeError(f"unexpected status {status}")
    sock.setblocking(False)
    return sock


def count_alive(socks):
    alive = 0
    for s in socks:
        try:
            data = s.recv(1)
            # b"" = orderly close by the server; any data is unexpected but
            # the connection is still open.
            if data:
                alive += 1
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("-n", "--connections", type=int, default=10000)
    ap.add_argument("--timeout", type=float, default=10.0, help="per-connection connect+response timeout (s)")
    ap.add_argument("--total-timeout", type=float, default=300.0, help="give up opening after this many seconds")
    ap.add_argument("--ready-file", help="write 'ready N' here once all connections are open")
    ap.add_argument("--stdin", action="store_true", help="also exit on EOF on stdin")
    args = ap.parse_args()

    limit = raise_nofile(args.connections + 256)
    if limit < args.connections + 16:
        print(f"idle_conns: RLIMIT_NOFILE is {limit}, too low for {args.connections} connections", file=sys.stderr)
        return 1

    stop = False

    def on_signal(_sig, _frm):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    socks = []
    start = time.monotonic()
    failures = 0
    while len(socks) < args.connections and not stop:
        if time.monotonic() - start > args.total_timeout:
            print(f"idle_conns: gave up after {args.total_timeout}s with {len(socks)} connections", file=sys.stderr)
            break
        try:
            socks.append(open_conn(args.host, args.port, args.timeout))
        except (OSError, RuntimeError, ValueError, IndexError) as e:
            failures += 1
            if failures <= 5:
                print(f"idle_conns: connection {len(socks) + 1} failed: {e!r}", file=sys.stderr)
            if failures > 50:
                print(f"idle_conns: too many failures, stopping at {len(socks)} connections", file=sys.stderr)
                break
            time.sleep(0.05)
    elapsed = time.monotonic() - start
    ok = len(socks) == args.connections
    print(f"idle_conns: opened {len(socks)}/{args.connections} connections in {elapsed:.2f}s", file=sys.stderr)

    msg = f"ready {len(socks)}\n"
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(msg)
        os.replace(tmp, args.ready_file)
    else:
        sys.stdout.write(msg)
        sys.stdout.flush()

    # Hold the connections until told to exit.
    while not stop:
        if args.stdin:
            try:
                r, _, _ = select.select([sys.stdin], [], [], 0.5)
            except InterruptedError:
                continue
            if r and not sys.stdin.buffer.read1(4096):
                break
        else:
            time.sleep(0.2)

    alive = count_alive(socks)
    print(f"alive {alive}/{len(socks)} closed {len(socks) - alive}", flush=True)
    for s in socks:
        s.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
