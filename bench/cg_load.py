#!/usr/bin/env python3
"""A fixed-count HTTP/1.1 load for instruction counting (bench/callgrind.sh).

    cg_load.py HOST:PORT REQUESTS CONNECTIONS DEPTH [WARMUP CALLGRIND_PID]

Opens CONNECTIONS keep-alive connections; each writes DEPTH `GET /` requests in
one write and reads all DEPTH responses before it writes the next batch, until
REQUESTS responses arrived in total. DEPTH 1 is the plain keep-alive workload;
DEPTH -1 is the same with one request in flight over all connections (they take
turns), so that the server wakes once per request.

With WARMUP and CALLGRIND_PID, it first drives WARMUP requests over the same
connections, then zeroes the counters of the callgrind run CALLGRIND_PID,
drives REQUESTS, and dumps the counters, so that neither connection set-up nor
tear-down is counted.

Every response must be a 200 with the body `Hello, World!`; the script counts
bodies, so it needs nothing but the standard library. Prints the count.

CG_PATH (default `/`) is the path requested and CG_BODY_FILE a file holding the
expected body (default: `Hello, World!`), e.g. for the static-file server
(bench/static.sh).
"""

import os

import selectors
import socket
import subprocess
import sys

BODY = (open(os.environ["CG_BODY_FILE"], "rb").read()
        if os.environ.get("CG_BODY_FILE") else b"Hello, World!")
PATH = os.environ.get("CG_PATH", "/").encode()


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    total, conns, depth = (int(a) for a in sys.argv[2:5])
    warmup, pid = (int(a) for a in sys.argv[5:7]) if len(sys.argv) > 5 else (0, None)
    serial = depth < 0
    depth = abs(depth)
    req = b"GET " + PATH + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"
    sel = selectors.DefaultSelector()
    order = []
    state = {}
    for _ in range(conns):
        s = socket.create_connection((host, int(port)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        state[s] = [0, b""]  # responses outstanding, unparsed tail
        order.append(s)
        sel.register(s, selectors.EVENT_READ)

    def run(total):
        sent = 0  # requests written
        done = 0  # responses read

        def send_batch(s):
            nonlocal sent
            if sent >= total:
                return
            n = min(depth, total - sent)
            s.setblocking(True)
            s.sendall(req * n)
            s.setblocking(False)
            sent += n
            state[s][0] = n

        for s in order[:1] if serial else order:
            send_batch(s)
        while done < total:
            events = sel.select(timeout=30)
            if not events:
                sys.exit(f"no answer for 30 s after {done} responses")
            for key, _ in events:
                s = key.fileobj
                data = s.recv(65536)
                if not data:
                    sys.exit(f"server closed a connection after {done} responses")
                st = state[s]
                buf = st[1] + data
                k = buf.count(BODY)
                if k and b" 200 " not in buf:
                    sys.exit("not a 200: %r" % buf[:200])
                done += k
                st[0] -= k
                # Keep at most a partial body for the next read.
                tail = buf[buf.rfind(BODY) + len(BODY):] if k else buf
                st[1] = tail[-(len(BODY) - 1):]
                if st[0] == 0:
                    send_batch(order[done % conns] if serial else s)
        return done

    def callgrind(cmd):
        subprocess.run(["callgrind_control", cmd, str(pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    if warmup:
        run(warmup)
    if pid:
        callgrind("-z")
    done = run(total)
    if pid:
        callgrind("-d")
    for s in order:
        s.close()
    print(done)


if __name__ == "__main__":
    main()
