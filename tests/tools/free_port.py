#!/usr/bin/env python3
"""free_port.py USED_FILE: print a loopback port free for TCP and UDP that USED_FILE does not
list yet, and append it there (the kernel may hand a closed port out again at once, so two calls
in a row could otherwise return the same one: seen, the shim and http ports of it.04 equal).

Ports come from below the kernel's ephemeral range (32768-60999 by default): a port taken from
that range can be given to another test's outgoing connection before our server binds it, and
the server then fails with EADDRINUSE (seen in CI beside the hostile floods, which open
thousands of connections)."""
import os
import random
import socket
import sys

used_file = sys.argv[1]
used = set(open(used_file).read().split()) if os.path.exists(used_file) else set()
for _ in range(10000):
    p = random.randint(20000, 32767)
    if str(p) in used:
        continue
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM),
             socket.socket(socket.AF_INET, socket.SOCK_DGRAM)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    with open(used_file, "a") as f:
        f.write("%d\n" % p)
    print(p)
    sys.exit(0)
sys.exit("free_port.py: no free port found in 20000-32767")
