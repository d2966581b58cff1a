#!/usr/bin/env bash
# docker-compose.yml checked statically (no Docker engine here): it parses, every file it
# mounts or builds from exists, every named volume is declared (and every declared one used),
# and the ports, sockets and paths agree between the compose file, the broker config rendered
# from broker/mosquitto.conf.in, the nginx site template, frAroundWeb's and php-fpm's configs,
# the certbot deploy hook and the Dockerfile.
set -u
FR_SRC=${FR_SRC:?set FR_SRC to the source tree}
cd "$FR_SRC" || exit 1

# The compose broker config is exactly the template rendered for the container.
want=$(broker/fr-admin broker-conf STATE=/var/lib/fr/broker LOG_DEST=stderr) || {
	echo "FAIL: fr-admin broker-conf" >&2
	exit 1
}
if [ "$want" != "$(cat docker/mosquitto.conf)" ]; then
	echo "FAIL: docker/mosquitto.conf differs from 'broker/fr-admin broker-conf STATE=/var/lib/fr/broker LOG_DEST=stderr':" >&2
	diff <(echo "$want") docker/mosquitto.conf >&2
	exit 1
fi
echo "ok: docker/mosquitto.conf is broker/mosquitto.conf.in rendered for the container"

exec python3 - <<'PY'
import os, re, sys
import yaml

fails = []
def check(cond, msg):
    print(("ok: " if cond else "FAIL: ") + msg)
    if not cond:
        fails.append(msg)

with open("docker-compose.yml") as f:
    doc = yaml.safe_load(f)
svcs = doc.get("services", {})
declared = set((doc.get("volumes") or {}).keys())

want = {"mosquitto": r"^eclipse-mosquitto:", "nginx": r"^nginx:", "php": r"^php:8\.2-fpm",
        "certbot": r"^certbot/certbot:", "npm": r"^node:"}
for name, pat in want.items():
    check(name in svcs and re.match(pat, str(svcs[name].get("image", ""))),
          f"service {name} uses the official image ({svcs.get(name, {}).get('image')})")
for name in ("frAroundWeb", "admin"):
    b = svcs.get(name, {}).get("build", {})
    df = os.path.join(b.get("context", "."), b.get("dockerfile", "Dockerfile"))
    check(os.path.isfile(df), f"service {name} is built from {df}")

# Mounts: ./ sources exist; named volumes are declared; every declared volume is used.
used = set()
mounts = {}   # service -> {target: source}
for name, s in svcs.items():
    mounts[name] = {}
    for v in s.get("volumes", []):
        parts = v.split(":")
        src, dst = parts[0], parts[1]
        mounts[name][dst] = src
        if src.startswith("./") or src.startswith("/"):
            check(os.path.exists(src), f"{name}: mounted {src} exists")
        else:
            used.add(src)
            check(src in declared, f"{name}: volume {src} is declared")
for v in declared:
    check(v in used, f"declared volume {v} is used")

def source_of(svc, path):
    """The mount source that holds path inside svc's container (longest target prefix)."""
    best = None
    for dst, src in mounts.get(svc, {}).items():
        if path == dst or path.startswith(dst.rstrip("/") + "/"):
            if best is None or len(dst) > len(best[0]):
                best = (dst, src)
    return best

# Long-running services share the host's loopback (the broker binds 127.0.0.1 listeners).
for name in ("mosquitto", "frAroundWeb", "php", "nginx"):
    check(svcs.get(name, {}).get("network_mode") == "host", f"{name} uses host networking")

# Broker config vs the others.
conf = open("docker/mosquitto.conf").read()
listeners = re.findall(r"^listener\s+(\d+)(?:\s+(\S+))?\s*\nprotocol\s+(\S+)", conf, re.M)
ports = {(proto, addr or ""): int(p) for p, addr, proto in listeners}
ws = ports.get(("websockets", "127.0.0.1"))
local = ports.get(("mqtt", "127.0.0.1"))
tls = ports.get(("mqtt", ""))
check(ws == 9001 and local == 1883 and tls == 8883, f"broker listeners ws {ws}, local {local}, tls {tls}")
state = re.search(r"^password_file\s+(\S+)/passwd$", conf, re.M).group(1)
check(source_of("mosquitto", state) and source_of("mosquitto", state)[1] == "fr-broker",
      f"broker state {state} is the fr-broker volume")
check(f"/var/lib/fr/broker" in " ".join(svcs["admin"].get("entrypoint", [])) and
      source_of("admin", state)[1] == "fr-broker", "fr-admin (admin service) writes the broker's state volume")
tlsfiles = {k: re.search(rf"^{k}\s+(\S+)$", conf, re.M).group(1) for k in ("certfile", "keyfile", "cafile")}
for k, p in tlsfiles.items():
    check(source_of("mosquitto", p) and source_of("mosquitto", p)[1] == "fr-tls", f"broker {k} {p} is in fr-tls")

# nginx: the template's variables are all set; ports and paths agree.
env = svcs["nginx"].get("environment", {})
tmpl_dst = [d for d, s in mounts["nginx"].items() if s == "./web/nginx/fr-site.conf.template"]
check(tmpl_dst and tmpl_dst[0].startswith("/etc/nginx/templates/") and tmpl_dst[0].endswith(".template"),
      "the site template is mounted where the nginx image renders templates")
tmpl = open("web/nginx/fr-site.conf.template").read()
for var in sorted(set(re.findall(r"\$\{(FR_[A-Z_]+)\}", tmpl))):
    check(var in env, f"nginx environment sets {var}")
check(env.get("FR_MQTT_WS") == f"127.0.0.1:{ws}", f"nginx /mqtt goes to the broker's websockets listener ({env.get('FR_MQTT_WS')})")
check(str(env.get("FR_HTTPS_PORT")) == "443" and str(env.get("FR_HTTP_PORT")) == "80", "nginx on 443 and 80")
for k in ("FR_CERT", "FR_CERT_KEY"):
    m = source_of("nginx", env.get(k, ""))
    check(m and m[1] == "fr-tls", f"nginx {k} {env.get(k)} is in fr-tls")
m = source_of("nginx", env.get("FR_WEB", "") + "/public/index.php")
check(m and m[1] == "./web", "nginx serves ./web")
check(source_of("php", env.get("FR_WEB", "") + "/public/index.php")[1] == "./web",
      "php-fpm sees web/ at the same path as nginx (SCRIPT_FILENAME)")

# php-fpm pool: the socket nginx uses, the shim address frAroundWeb listens on.
pool = open("docker/php-fpm-fr.conf").read()
listen = re.search(r"^listen\s*=\s*(\S+)", pool, re.M).group(1)
check(env.get("FR_PHP") == "unix:" + listen, f"nginx FR_PHP matches php-fpm's listen {listen}")
check(source_of("nginx", listen)[1] == source_of("php", listen)[1] == "fr-php", "php-fpm's socket dir is shared with nginx")
check(any(d.startswith("/usr/local/etc/php-fpm.d/zz-") for d, s in mounts["php"].items() if s == "./docker/php-fpm-fr.conf"),
      "the pool file overrides the image's zz-docker.conf")
shim = re.search(r"^env\[FR_SHIM\]\s*=\s*tcp://127\.0\.0\.1:(\d+)", pool, re.M)
bridge = re.search(r"^env\[FR_BRIDGE\]\s*=\s*(\S+)", pool, re.M)
check(bridge and source_of("php", bridge.group(1) + "/Client.php")[1] == "./bridge-php", "php-fpm finds bridge-php")

# frAroundWeb: the shim port PHP uses, the broker's local listener, files from fr-admin's state.
web = open("docker/frAroundWeb.conf").read()
sport = re.search(r"shim\s*=\s*\{[^}]*port\s*=\s*(\d+)", web).group(1)
check(shim and shim.group(1) == sport, f"php FR_SHIM port = frAroundWeb's shim port {sport}")
uri = re.search(r'uri\s*=\s*"mqtt://127\.0\.0\.1:(\d+)"', web)
check(uri and int(uri.group(1)) == local, "frAroundWeb uses the broker's local listener")
for k in ("users_file", "password_file"):
    p = re.search(rf'{k}\s*=\s*"([^"]+)"', web).group(1)
    check(source_of("frAroundWeb", p)[1] == "fr-broker", f"frAroundWeb {k} {p} comes from fr-admin's state")
check(source_of("frAroundWeb", "/etc/fr/frAroundWeb.conf")[1] == "./docker/frAroundWeb.conf", "frAroundWeb's config is mounted")

# certbot: webroot = nginx's ACME root, shared; the deploy hook writes the names the others read.
ep = " ".join(svcs["certbot"].get("entrypoint", []))
w = re.search(r"--webroot -w (\S+)", ep)
check(w and w.group(1) == env.get("FR_ACME_ROOT") and source_of("certbot", w.group(1))[1] == source_of("nginx", w.group(1))[1] == "fr-acme",
      "certbot's webroot is what nginx serves for /.well-known/acme-challenge/")
hook = open("docker/deploy-cert").read()
hd = re.search(r"^d=(\S+)", hook, re.M).group(1)
check(source_of("certbot", hd)[1] == "fr-tls", "the deploy hook writes into fr-tls")
for f in ("fullchain.pem", "privkey.pem", "chain.pem"):
    check(f'"$d/{f}"' in hook, f"the deploy hook writes {f}")
check(os.path.basename(tlsfiles["certfile"]) == "fullchain.pem" and os.path.basename(tlsfiles["keyfile"]) == "privkey.pem"
      and os.path.basename(env["FR_CERT"]) == "fullchain.pem" and os.path.basename(env["FR_CERT_KEY"]) == "privkey.pem",
      "broker and nginx read the hook's file names")
check(os.access("docker/deploy-cert", os.X_OK), "the deploy hook is executable")

# Dockerfile: Debian bookworm, the build deps, a cmake build; everything it copies exists.
dfile = open("agents/frAroundWeb/Dockerfile").read()
check(re.search(r"^FROM debian:bookworm\b", dfile, re.M), "the Dockerfile builds on debian:bookworm")
for dep in ("build-essential", "cmake", "pkg-config", "libssl-dev", "libcjson-dev", "libconfig-dev",
            "libmosquitto-dev", "libserialport-dev"):
    check(re.search(rf"apt-get install[^\n]*(\\\n[^\n]*)*\b{re.escape(dep)}\b", dfile), f"the Dockerfile installs {dep}")
check("cmake --build" in dfile, "the Dockerfile builds with cmake")
for line in re.findall(r"^COPY (?!--from)(.+)$", dfile, re.M):
    for src in line.split()[:-1]:
        check(os.path.exists(src), f"Dockerfile COPY source {src} exists")

print(f"{len(fails)} failed")
sys.exit(1 if fails else 0)
PY
