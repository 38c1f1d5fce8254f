#!/usr/bin/env python3
"""Where the time of a signature through the agent goes, from `perf script` output.

Reads, on standard input, `perf script -F comm,tid,cpu,time,event,trace` of a recording of
these system-call tracepoints, taken system-wide while one client signs through the agent:
  syscalls:sys_enter_sendto syscalls:sys_exit_recvfrom
  syscalls:sys_enter_epoll_wait syscalls:sys_exit_epoll_wait
(scripts/agent-timeline.sh records them). Each request is followed from the client's
sendto to the agent's wake-up (its epoll_wait returning, or its recvfrom taking the request
when it was already looking), the agent's reply (its sendto), and the client's recvfrom
that took the reply. Prints the percentiles of each part in microseconds, and on which
cores the client and the agent were.

Usage: agent_timeline.py CLIENT_COMM < perf-script-output
CLIENT_COMM: the client's command name as perf shows it (at most 15 characters).
"""
import collections
import re
import sys

LINE = re.compile(r"\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+syscalls:(\w+):\s*(.*)")


def requests(lines, client):
    """The requests, each a dict of times (us) and cores."""
    done, cur = [], None
    for line in lines:
        m = LINE.match(line)
        if not m:
            continue
        comm, _, cpu, t, name, rest = m.groups()
        t, cpu = float(t) * 1e6, int(cpu)
        failed = rest.strip().startswith("0xffff")  # a negative return: EAGAIN and the like
        if comm == client and name == "sys_enter_sendto":
            cur = {"send": t, "client_cpu": cpu}
        elif cur is None:
            continue
        elif comm == "certvault":
            # A return of 0 is a timeout (the agent's ticker), not a request waking it.
            if name == "sys_exit_epoll_wait" and "wake" not in cur and rest.strip() not in ("0", "0x0"):
                cur["wake"], cur["agent_cpu"] = t, cpu
            elif name == "sys_exit_recvfrom" and not failed and "take" not in cur:
                cur["take"] = t
                cur.setdefault("wake", t)
                cur.setdefault("agent_cpu", cpu)
            elif name == "sys_enter_sendto" and "take" in cur:
                cur["reply"] = t
        elif comm == client and name == "sys_exit_recvfrom" and not failed and "reply" in cur:
            cur["back"] = t
            done.append(cur)
            cur = None
    return done


def spread(values):
    v = sorted(values)
    n = len(v)
    return "p10 %5.0f  p50 %5.0f  p90 %5.0f  mean %5.0f" % (
        v[n // 10], v[n // 2], v[9 * n // 10], sum(v) / n)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: agent_timeline.py CLIENT_COMM < perf-script-output")
    rows = requests(sys.stdin, sys.argv[1][:15])
    if not rows:
        sys.exit("agent_timeline.py: no complete request in the recording; was the client "
                 "signing through the agent while perf recorded?")
    print("%d requests (us)" % len(rows))
    print("  client's send to the agent awake   ", spread(r["wake"] - r["send"] for r in rows))
    print("  the agent's work (request to reply)", spread(r["reply"] - r["take"] for r in rows))
    print("  the reply to the client's read     ", spread(r["back"] - r["reply"] for r in rows))
    print("  the whole round trip               ", spread(r["back"] - r["send"] for r in rows))
    cores = collections.Counter((r["client_cpu"], r["agent_cpu"]) for r in rows)
    print("  cores (client, agent):", ", ".join("%s x%d" % (k, n) for k, n in cores.most_common()))


if __name__ == "__main__":
    main()
