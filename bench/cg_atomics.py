#!/usr/bin/env python3
"""Atomic read-modify-write instructions per request, from a callgrind dump.

    cg_atomics.py DUMP REQUESTS [TOP]

DUMP must come from `valgrind --tool=callgrind --dump-instr=yes --compress-pos=no`
(bench/callgrind.sh does this with ATOMICS=1). Every instruction of the profiled
binaries that carries a `lock` prefix, or is an `xchg` with memory (implicitly
locked), is found with objdump; their execution counts are summed and divided by
REQUESTS. Prints the total and the TOP (default 15) functions they ran in (after
inlining, so a function's count includes what was inlined into it); with
ATOMICS_LINES=1 also the TOP instructions with their source lines and inlining chains.

Why count them: on the 2-core EPYC VM these benchmarks run on, one uncontended
locked instruction costs about 4.7 ns in a dependent chain (a plain increment
0.2 ns), and a request's atomics were the largest gap between ragi and the
baselines (hyper and actix-web: about 7 per pipelined request).
"""
import collections
import os
import re
import subprocess
import sys


def main():
    dump, nreq = sys.argv[1], int(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    costs = collections.defaultdict(collections.Counter)
    fn_at = {}
    ob = fn = None
    skip = False
    with open(dump) as f:
        for line in f:
            if line.startswith("ob="):
                ob = line[3:].strip()
            elif line.startswith("fn="):
                fn = line[3:].strip()
            elif line.startswith("calls="):
                skip = True  # the next cost line is the call's inclusive cost
            elif line.startswith("0x"):
                if skip:
                    skip = False
                    continue
                parts = line.split()
                addr = int(parts[0], 16)
                costs[ob][addr] += int(parts[-1])
                fn_at[(ob, addr)] = fn
    total = 0
    by_fn = collections.Counter()
    by_addr = collections.Counter()
    for obj, counts in costs.items():
        if not obj or not obj.startswith("/"):
            continue
        dis = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", obj],
                             capture_output=True, text=True).stdout
        # `xchg` with a memory operand is locked; between registers (`xchg %ax,%ax` is a
        # two-byte no-op) it is not.
        locked = {int(m.group(1), 16) for m in
                  re.finditer(r"^\s+([0-9a-f]+):\s+(?:lock |xchg\s+\S*\()", dis, re.M)}
        for addr, n in counts.items():
            if addr in locked:
                total += n
                by_fn[fn_at[(obj, addr)]] += n
                by_addr[(obj, addr)] += n
    print("locked instructions per request: %.1f" % (total / nreq))
    for name, n in by_fn.most_common(top):
        print("  %6.2f  %s" % (n / nreq, name[:120]))
    if os.environ.get("ATOMICS_LINES"):
        # Each locked instruction with its source line and inlining chain (addr2line -i).
        for (obj, addr), n in by_addr.most_common(top):
            chain = subprocess.run(["addr2line", "-i", "-f", "-C", "-e", obj, hex(addr)],
                                   capture_output=True, text=True).stdout.split("\n")
            frames = [f"{chain[i][:60]} @ {chain[i + 1].split('/')[-1]}"
                      for i in range(0, len(chain) - 1, 2)]
            print("  %6.2f  %s" % (n / nreq, " <- ".join(frames[:4])))


if __name__ == "__main__":
    main()
