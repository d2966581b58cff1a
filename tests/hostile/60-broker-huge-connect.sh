#!/usr/bin/env bash
# Issue 12.1: a CONNECT declaring a 256 MB length, before any login, over MQTT/TLS (8883) and over
# wss through nginx (/mqtt), and one declaring 200 MB (below the broker's memory_limit) over wss,
# from 24 connections that keep sending for 15 s, beside a legitimate client doing command round
# trips. max_packet_size closes the TLS ones when their length is read; Mosquitto 2.0.11 sizes
# nothing on the websockets path, so nginx lets only signed-in browsers through /mqtt: an
# anonymous upgrade must be refused. The broker's memory must stay bounded, the client served.
source "$FR_SRC/tests/integration/lib.sh"
source "$FR_SRC/tests/hostile/deploy-demo.sh"
hd_start
bpid=$(hd_pid mosquitto)
base=$(hd_rss_kb "$bpid")
fr_log "broker pid $bpid, RSS before the attack: $base kB"

hd_legit legit 25 &
legit=$!
hd_sample_rss "$bpid" "$T/peak" 25 &
sampler=$!
sleep 3   # the legitimate client runs before, during and after the attack
python3 - "$FR_DEMO_MQTTS_PORT" "$FR_DEMO_HTTPS_PORT" >"$T/attack.log" 2>&1 <<'PY'
import os, socket, ssl, sys, threading, time
tls_port, https_port = int(sys.argv[1]), int(sys.argv[2])
HUGE = bytes([0x10, 0xFF, 0xFF, 0xFF, 0x7F])        # CONNECT, remaining length 268435455
BIG = bytes([0x10, 0x80, 0x80, 0x80, 0x64])         # CONNECT, remaining length 200 MiB
CHUNK, LIMIT, SECONDS = 65536, 16 << 20, 15         # each connection sends at most 16 MiB
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
stats = {"tls": [0, 0], "wss": [0, 0], "wss200": [0, 0]}   # connections, bytes accepted by the peer
upgrades = {}                                                  # wss status lines seen
lock = threading.Lock()
end = time.time() + SECONDS

def ws_frame(payload):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x82]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big") if n < 65536
                            else bytes([0x80 | 127]) + n.to_bytes(8, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

JUNK = os.urandom(CHUNK)
WS_JUNK = ws_frame(JUNK[:16384])

def one(kind):
    sent = 0
    try:
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tls_port if kind == "tls" else https_port), timeout=5),
                            server_hostname="localhost")
        if kind == "tls":
            s.sendall(HUGE)
            data = JUNK
        else:
            s.sendall(b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                      b"Sec-WebSocket-Protocol: mqtt\r\n\r\n")
            head = s.recv(4096)
            status = head.split(b"\r\n")[0].decode(errors="replace")
            with lock:
                upgrades[status] = upgrades.get(status, 0) + 1
            if " 101 " not in status:
                return
            s.sendall(ws_frame(HUGE if kind == "wss" else BIG))
            data = WS_JUNK
        while sent < LIMIT and time.time() < end:
            s.sendall(data)
            sent += len(data)
    except (OSError, ssl.SSLError):
        pass
    with lock:
        stats[kind][0] += 1
        stats[kind][1] += sent

def worker(kind):
    while time.time() < end:
        one(kind)
        time.sleep(0.05)

ts = [threading.Thread(target=worker, args=(k,)) for k in ["tls"] * 8 + ["wss"] * 8 + ["wss200"] * 8]
for t in ts: t.start()
for t in ts: t.join()
for k, (n, b) in stats.items():
    print(f"{k}: {n} connections, {b >> 20} MiB accepted by the peer in total")
for st, n in sorted(upgrades.items()):
    print(f"upgrade answered {st!r}: {n}")
PY
wait "$legit" "$sampler"
fr_log "attack: $(paste -sd';' "$T/attack.log")"
grep -q "upgrade answered 'HTTP/1.1 101" "$T/attack.log" && fr_fail "nginx let an anonymous WebSocket through to the broker"
grep -q "upgrade answered 'HTTP/1.1 403" "$T/attack.log" || fr_fail "no anonymous upgrade was refused with 403: $(cat "$T/attack.log")"
fr_ok "every anonymous WebSocket upgrade on /mqtt was refused by nginx before the broker"
peak=$(cat "$T/peak")
grow=$(( (peak - base) / 1024 ))
fr_log "broker RSS: $base kB before, peak $peak kB during the attack (+$grow MiB)"
kill -0 "$bpid" 2>/dev/null || fr_fail "the broker died"
[ "$grow" -le 24 ] || fr_fail "the broker's memory grew by $grow MiB during the attack (bound 24 MiB)"
fr_ok "broker memory bounded: +$grow MiB (bound 24 MiB)"
hd_legit_ratio legit 95
