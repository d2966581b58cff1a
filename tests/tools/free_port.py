#!/usr/bin/env python3
"""free_port.py USED_FILE [OWNER_PID]: print a loopback port free for TCP and UDP that USED_FILE
does not list yet, append it there, and reserve it machine-wide for OWNER_PID (default: the
caller, the parent process) until that process ends.

- USED_FILE: the kernel may hand a closed port out again at once, so two calls in a row could
  otherwise return the same one (seen: the shim and http ports of it.04 equal).
- The reservation (a file per port in $FR_PORT_DIR, default /tmp/fr-ports, holding the owner's
  pid; taken under a lock): tests of two `./fr test` runs side by side, or of `ctest -j`, pick
  at the same time, and a port another test picked but has not bound yet is free to bind here
  (seen: hostile.61's demo failed "http listen ...: Address already in use" beside another
  ./fr test). A reservation whose owner is gone is taken over; `tests/integration/lib.sh`
  also drops its test's reservations at the end.

Ports come from below the kernel's ephemeral range (32768-60999 by default): a port taken from
that range can be given to another test's outgoing connection before our server binds it, and
the server then fails with EADDRINUSE (seen in CI beside the hostile floods, which open
thousands of connections)."""
import errno
import fcntl
import os
import random
import socket
import sys

used_file = sys.argv[1]
owner = int(sys.argv[2]) if len(sys.argv) > 2 else os.getppid()
rdir = os.environ.get("FR_PORT_DIR", "/tmp/fr-ports")
os.makedirs(rdir, exist_ok=True)
try:
    os.chmod(rdir, 0o1777)   # every user's tests share it (sticky: each removes only its own)
except PermissionError:
    pass
used = set(open(used_file).read().split()) if os.path.exists(used_file) else set()


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reserved(p):
    """True if another live process holds p; a dead owner's reservation is removed."""
    path = os.path.join(rdir, str(p))
    try:
        pid = int(open(path).read().strip() or 0)
    except FileNotFoundError:
        return False
    except ValueError:
        pid = 0
    if pid and alive(pid):
        return True
    os.unlink(path)
    return False


def bindable(p):
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM),
             socket.socket(socket.AF_INET, socket.SOCK_DGRAM)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


with open(os.path.join(rdir, ".lock"), "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    for _ in range(10000):
        p = random.randint(20000, 32767)
        if str(p) in used or reserved(p) or not bindable(p):
            continue
        with open(os.path.join(rdir, str(p)), "w") as f:
            f.write("%d\n" % owner)
        with open(used_file, "a") as f:
            f.write("%d\n" % p)
        print(p)
        sys.exit(0)
sys.exit("free_port.py: no free port found in 20000-32767")
