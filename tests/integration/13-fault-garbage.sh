#!/usr/bin/env bash
# Fault: 10 000 garbage datagrams and connections against every listening port of frMhs and
# frMhc (random bytes, truncated and forged announces, replays, plain-text and half TLS, and
# inside a real TLS-PSK session truncated frames and oversized lengths) while a good client
# runs commands. Nothing may crash; the good client's every request must succeed. (How much the
# garbage slows the good client is a figure for bench/, not an assertion here.)
. "$(dirname "$0")/lib.sh"

fr_secret "$T/home.secret"
BPORT=$(fr_free_port)
APORT=$(fr_free_port)
LPORT=$(fr_free_port)
fr_mosquitto broker "$BPORT"
fr_mhs_conf home1 "$APORT" "$BPORT"
echo "link_listen = { address = \"127.0.0.1\"; port = $LPORT; };" >>"$T/mhs.conf"
fr_start mhs "$FR_BIN/frMhs" -f -c "$T/mhs.conf"
fr_mhc_conf c2 127.0.0.2 "$APORT" '{ name = "noop"; builtin = "noop"; }'
sed -i 's/port = 0; };/port = 0; };/' "$T/c2.conf"
fr_start c2 "$FR_BIN/frMhc" -f -c "$T/c2.conf"
fr_wait 10 "c2 online" fr_retained_is "$BPORT" fr/home1/ctl/c2/status online
CPORT=$(fr_json "$(fr_retained "$BPORT" fr/home1/ctl/c2/info)" port)
PSK=$("$FR_BIN/frcmd" -s "$T/home.secret" --psk c2)

fr_start good "$FR_BIN/mqttreq" -u "mqtt://127.0.0.1:$BPORT" -t fr/home1/ctl/c2/cmd \
	-s fr/home1/reply/good -n 400 -R 20 -p g -a noop -w 120

python3 - "$APORT" "$CPORT" "$LPORT" <<'PY' || fr_fail "the garbage generator failed"
import os, random, socket, sys, time
aport, cport, lport = map(int, sys.argv[1:4])
random.seed(int.from_bytes(os.urandom(4), "big"))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
u.bind(("127.0.0.66", 0))
# capture one real announce to replay and mangle
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
r.bind(("127.255.255.255", aport)); r.settimeout(5)
real = r.recvfrom(9000)[0]
kinds = [
    lambda: os.urandom(random.randint(0, 1500)),
    lambda: real[:random.randint(0, len(real))],                 # truncated
    lambda: real,                                                # replay
    lambda: b"fr1 " + os.urandom(32).hex().encode() + b" " + real[69:],  # forged MAC
    lambda: real[:69] + os.urandom(random.randint(1, 200)),      # body garbage
    lambda: b"fr1 " + b"z" * 64 + b" {}",
]
for i in range(10000):
    u.sendto(random.choice(kinds)(), ("127.255.255.255", aport))
    if i % 500 == 0: time.sleep(0.01)   # bounded pacing: the socket buffer is finite
conns = 0
for i in range(600):
    port = random.choice([cport, lport])
    host = "127.0.0.2" if port == cport else "127.0.0.1"
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((host, port))
        choice = i % 4
        if choice == 0: s.sendall(os.urandom(random.randint(1, 4096)))
        elif choice == 1: s.sendall(b"\x16\x03\x01\x02\x00\x01")      # half a ClientHello
        elif choice == 2: s.sendall(b"\xff\xff\xff\xff" + os.urandom(64))  # oversized length, plain
        # choice 3: connect and close at once
        conns += 1
    except OSError:
        pass
    finally:
        s.close()
print(f"sent 10000 datagrams and {conns} connections", file=sys.stderr)
PY

# Inside real TLS-PSK sessions: an oversized length, a truncated frame, a non-JSON frame.
if openssl s_client -help 2>&1 | grep -q psk_identity; then
	for payload in '\xff\xff\xff\xff' '\x00\x00\x01\x00{"type":' '\x00\x00\x00\x05hello'; do
		for port_host in "127.0.0.2:$CPORT"; do
			(printf "$payload"; sleep 0.5) | timeout 5 openssl s_client -connect "$port_host" -tls1_3 \
				-ciphersuites TLS_AES_128_GCM_SHA256 -psk_identity c2 -psk "$PSK" -quiet >/dev/null 2>&1 || true
		done
	done
	fr_wait 5 "bad frame logged" grep -q "bad frame" "$T/c2.log"
fi

wait "$(fr_pid good)" || fr_fail "the good client failed during the garbage: $(grep SUMMARY "$T/good.log")"
sum=$(grep SUMMARY "$T/good.log" | sed 's/^SUMMARY //')
[ "$(fr_json "$sum" statuses.ok)" = 400 ] || fr_fail "good client: $sum"
kill -0 "$(fr_pid mhs)" && kill -0 "$(fr_pid c2)" || fr_fail "an agent died"
grep -q "dropped" "$T/mhs.log" || fr_fail "frMhs logged no dropped announce"
[ "$(wc -l <"$T/mhs.log")" -lt 5000 ] || fr_fail "frMhs drop logs were not rate-limited ($(wc -l <"$T/mhs.log") lines)"
fr_retained_is "$BPORT" fr/home1/ctl/c2/status online || fr_fail "c2 flapped under garbage"
fr_ok "10 000 garbage datagrams and 600 hostile connections: no crash, 400/400 good requests ok, logs rate-limited"
