#!/usr/bin/env python3
"""flood.py: bounded connection floods for the hostile stage (tests/hostile/NN-*.sh).

Every attack is bounded in connections and seconds and stops by itself. Talks to loopback only.

  flood.py idle --target 127.0.0.1:7420 [--from 127.0.0.9,127.0.0.10] --count 2000 --hold 20
      Opens COUNT connections that never send a byte (round-robin over the --from source
      addresses), then for HOLD seconds reopens every one the server closes, like an attacker
      who wants to keep them all -- at most --max-opens in all.
  flood.py idle --target unix:/path/to.sock ...           the same on a unix socket
  flood.py slow --target 127.0.0.1:7421 --count 100 --hold 20
      Slow clients (slowloris): each sends the first bytes of an HTTP request and then one
      more header byte every --every seconds, never finishing the head; reopened when closed.

Prints one JSON line of figures at the end: opened, closed_by_server, open_at_end, seconds.
"""
import argparse
import json
import resource
import selectors
import socket
import sys
import time


def parse_target(t):
    if t.startswith("unix:"):
        return ("unix", t[5:])
    host, port = t.rsplit(":", 1)
    return ("tcp", (host, int(port)))


class Flood:
    def __init__(self, a):
        self.a = a
        self.kind, self.addr = parse_target(a.target)
        self.sources = [s for s in (a.source or "").split(",") if s]
        self.sel = selectors.DefaultSelector()
        self.opened = 0
        self.closed = 0
        self.failed = 0
        self.next_src = 0

    def connect(self):
        if self.opened >= self.a.max_opens:
            return None
        try:
            if self.kind == "unix":
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            else:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                if self.sources:
                    s.bind((self.sources[self.next_src % len(self.sources)], 0))
                    self.next_src += 1
            s.settimeout(2)
            s.connect(self.addr)
            s.setblocking(False)
        except OSError:
            self.failed += 1
            # Out of local ports or descriptors, or the backlog is full: back off a little.
            time.sleep(0.01)
            return None
        self.opened += 1
        if self.a.mode == "slow":
            try:
                s.send(b"GET /healthz HTTP/1.0\r\nX-Slow: ")
            except OSError:
                pass
        self.sel.register(s, selectors.EVENT_READ, {"last": time.monotonic()})
        return s

    def drop(self, key):
        self.sel.unregister(key.fileobj)
        key.fileobj.close()
        self.closed += 1

    def run(self):
        start = time.monotonic()
        # Phase 1: open them all, as fast as the server accepts.
        for _ in range(self.a.count):
            self.connect()
            if time.monotonic() - start > self.a.hold:
                break
        # Phase 2: hold; whatever the server closes is reopened.
        end = start + self.a.hold
        while True:
            now = time.monotonic()
            if now >= end:
                break
            for key, _ in self.sel.select(timeout=min(0.2, end - now)):
                try:
                    data = key.fileobj.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.drop(key)
                    self.connect()
            if self.a.mode == "slow":
                now = time.monotonic()
                for key in list(self.sel.get_map().values()):
                    if now - key.data["last"] >= self.a.every:
                        key.data["last"] = now
                        try:
                            key.fileobj.send(b"x")
                        except OSError:
                            self.drop(key)
                            self.connect()
            # Keep the count up if earlier connects failed.
            while len(self.sel.get_map()) < self.a.count and self.opened < self.a.max_opens:
                if not self.connect():
                    break
        open_at_end = len(self.sel.get_map())
        for key in list(self.sel.get_map().values()):
            self.sel.unregister(key.fileobj)
            key.fileobj.close()
        print(json.dumps({"opened": self.opened, "closed_by_server": self.closed,
                          "connect_failed": self.failed, "open_at_end": open_at_end,
                          "seconds": round(time.monotonic() - start, 1)}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["idle", "slow"])
    p.add_argument("--target", required=True)
    p.add_argument("--from", dest="source", help="comma-separated source addresses (TCP)")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--hold", type=float, required=True, help="seconds the attack lasts")
    p.add_argument("--every", type=float, default=1.0, help="slow: seconds between bytes")
    p.add_argument("--max-opens", type=int, default=50000, help="connections opened at most")
    a = p.parse_args()
    if a.count > 5000 or a.hold > 120:
        sys.exit("flood.py: bounded by design: --count <= 5000, --hold <= 120")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.count + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    Flood(a).run()


if __name__ == "__main__":
    main()
