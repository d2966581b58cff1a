#!/usr/bin/env bash
# docker-compose.yml and docker/ checked statically, in a second (45-deploy runs the stack for
# real): Debian's docker-compose 1.29.2 accepts the file, every image is built here from
# docker/Dockerfile (nothing pulled), every service is locked down (its own user, read-only root,
# no capabilities, no_new_privs, memory limit, log rotation, restart policy, healthcheck gating
# depends_on), frAroundWeb mounts nothing but its users file and audit log, every file the
# Dockerfile copies exists, and the settings agree between the compose file and the containers'
# scripts.
set -u
FR_SRC=${FR_SRC:?set FR_SRC to the source tree}
cd "$FR_SRC" || exit 1

if command -v docker-compose >/dev/null; then
	if ! out=$(FR_SERVER_NAME=fr.example.org docker-compose -f docker-compose.yml --profile tools config -q 2>&1); then
		echo "FAIL: docker-compose $(docker-compose version --short 2>/dev/null) rejects docker-compose.yml: $out" >&2
		exit 1
	fi
	echo "ok: docker-compose $(docker-compose version --short 2>/dev/null) accepts docker-compose.yml"
else
	echo "FAIL: docker-compose missing (./fr deps installs Debian's docker-compose)" >&2
	exit 1
fi
git check-ignore -q .env 2>/dev/null || { echo "FAIL: .env is not in .gitignore" >&2; exit 1; }
echo "ok: .env is ignored by git"

exec python3 - <<'PY'
import os, re, sys
import yaml

fails = []
def check(cond, msg):
    print(("ok: " if cond else "FAIL: ") + msg)
    if not cond:
        fails.append(msg)

doc = yaml.safe_load(open("docker-compose.yml"))
check("name" not in doc and "version" not in doc, "no top-level name or version (Compose 1.29.2 and v2 both accept the file)")
svcs = doc["services"]
declared = set((doc.get("volumes") or {}).keys())
dockerfile = open("docker/Dockerfile").read()
targets = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.M))
check(all(m == "debian:bookworm-slim" or m in targets for m in re.findall(r"^FROM (\S+)", dockerfile, re.M)),
      "every Dockerfile stage is FROM debian:bookworm-slim or another stage")

longrun = [n for n, s in svcs.items() if s.get("restart") != "no"]
check(set(longrun) == {"mosquitto", "frAroundWeb", "php", "nginx", "certbot"}, f"long-running services: {sorted(longrun)}")
for name, s in svcs.items():
    b = s.get("build") or {}
    check(b.get("dockerfile") == "docker/Dockerfile" and b.get("target") in targets and b.get("network") == "host",
          f"{name} is built from docker/Dockerfile target {b.get('target')} (nothing pulled)")
    check(s.get("read_only") is True and s.get("cap_drop") == ["ALL"] and "no-new-privileges:true" in s.get("security_opt", []),
          f"{name}: read-only root, cap_drop ALL, no-new-privileges")
    check(str(s.get("mem_limit", "")).endswith("m"), f"{name}: memory limit {s.get('mem_limit')}")
    lo = (s.get("logging") or {}).get("options", {})
    check(lo.get("max-size") and lo.get("max-file"), f"{name}: log rotation {lo}")
    extra_caps = set(s.get("cap_add", []))
    allowed = {"nginx": {"NET_BIND_SERVICE", "SETUID", "SETGID"}, "init": {"CHOWN"}, "admin": {"CHOWN"}}.get(name, set())
    check(extra_caps <= allowed, f"{name}: added capabilities {sorted(extra_caps)}")
    for v in s.get("volumes", []):
        src = v.split(":")[0]
        if not src.startswith(("/", "./")):
            check(src in declared, f"{name}: volume {src} is declared")
for name in longrun:
    s = svcs[name]
    check(s.get("restart") == "unless-stopped", f"{name}: restart unless-stopped")
    check("test" in (s.get("healthcheck") or {}), f"{name}: healthcheck {s.get('healthcheck', {}).get('test')}")
    check(s.get("network_mode") == "host", f"{name}: host networking")
    for dep, cond in (s.get("depends_on") or {}).items():
        want = "service_completed_successfully" if svcs[dep].get("restart") == "no" else "service_healthy"
        check(cond.get("condition") == want, f"{name} waits for {dep}: {cond.get('condition')}")
used = {v.split(":")[0] for s in svcs.values() for v in s.get("volumes", [])}
check(used == declared, f"every declared volume is used ({sorted(declared ^ used)})")

# Minimal mounts: frAroundWeb never sees the broker's state (home secrets, passwd).
web = svcs["frAroundWeb"]["volumes"]
check(sorted(web) == ["fr-audit:/var/lib/fr/audit", "fr-web:/var/lib/fr/web:ro"], f"frAroundWeb mounts only {web}")
check("fr-web:/var/lib/fr/broker/web" in svcs["admin"]["volumes"], "fr-admin writes frAroundWeb's files into the fr-web volume")
check(all(v.endswith(":ro") for v in svcs["mosquitto"]["volumes"] if v.startswith(("fr-broker:", "fr-tls:"))),
      "the broker reads accounts and certificate read-only")

# Files the Dockerfile copies exist; the entrypoints are executable.
for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M):
    for src in line.split()[:-1]:
        check(os.path.exists(src), f"Dockerfile COPY source {src} exists")
for ep in set(re.findall(r'^ENTRYPOINT \["([^"]+)"\]', dockerfile, re.M)) | {"admin-entry", "nginx-run", "fr-bind", "deploy-cert"}:
    check(os.access(f"docker/{ep}", os.X_OK), f"docker/{ep} is executable")

# Settings: every ${FR_...} a container script or template needs is given to that service.
def env(name): return set((svcs[name].get("environment") or {}).keys())
def needs(*files):
    v = set()
    for f in files:
        v |= set(re.findall(r"\$\{?(FR_[A-Z_]+)", open(f).read()))
    return v
set_in_script = {"FR_CERT", "FR_CERT_KEY", "FR_WEB", "FR_PHP", "FR_MQTT_WS", "FR_ACME_ROOT"}
for svc, files in {"mosquitto": ["docker/broker-entry"], "frAroundWeb": ["docker/frAroundWeb.conf.in"],
                   "php": ["docker/php-fpm.conf.in"],
                   "nginx": ["docker/nginx-entry", "docker/nginx-run", "web/nginx/fr-site.conf.template"],
                   "certbot": ["docker/fr-certbot"], "admin": ["docker/admin-entry"]}.items():
    missing = needs(*files) - env(svc) - set_in_script - {"FR_WEB_GROUP", "FR_WATCH_INTERVAL"}
    check(not missing, f"{svc} gets every setting its scripts use {sorted(missing)}")
defaults = {}
for s in svcs.values():
    for k, v in (s.get("environment") or {}).items():
        m = re.match(r"\$\{(FR_[A-Z_]+):-([^}]*)\}", str(v))
        if m:
            check(defaults.setdefault(m.group(1), m.group(2)) == m.group(2), f"{m.group(1)} has one default ({m.group(2)})")
check(defaults.get("FR_HTTP_PORT") == "80" and defaults.get("FR_HTTPS_PORT") == "443" and defaults.get("FR_MQTTS_PORT") == "8883",
      "production ports 80, 443, 8883 by default")

print(f"{len(fails)} failed")
sys.exit(1 if fails else 0)
PY
