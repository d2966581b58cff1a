# The container engine for the deployment tests (sourced): Debian's dockerd started with its own
# data root (a fixed cache directory, so images and build layers survive between runs), its own
# exec root and socket, no bridge and no iptables rules (every service uses host networking),
# and the base image debian:bookworm-slim made by debootstrap when the engine lacks it (no image
# registry is reachable here). A machine where no engine can start fails the test: the caller
# gets a clear reason, never a silent skip.
#
#   FR_DEPLOY_CACHE   the cache directory (default /var/cache/fr-deploy-test): docker/ is the
#                     engine's data root, bookworm-slim.tar the debootstrapped base image
#   FR_DEPLOY_MIRROR  the Debian mirror debootstrap uses (default: the first one apt uses)
FR_DEPLOY_CACHE=${FR_DEPLOY_CACHE:-/var/cache/fr-deploy-test}
FR_ENGINE_RUN=/run/fr-deploy-engine        # exec root and socket: short (unix socket paths)
FR_ENGINE_PID=

engine_log() { printf '[%s engine] %s\n' "$(date +%T)" "$*" >&2; }

# engine_lock: one deployment test per machine at a time (they share the engine's cache and the
# stack's ports); waits up to 10 minutes for another run to end. A directory, not flock: a
# locked descriptor would be inherited by dockerd and every process the test starts.
engine_lock() {
	local d=$FR_DEPLOY_CACHE/lock.d i owner
	mkdir -p "$FR_DEPLOY_CACHE"
	for ((i = 0; i < 6000; i++)); do
		if mkdir "$d" 2>/dev/null; then
			echo $$ >"$d/pid"
			FR_ENGINE_LOCKED=1
			return 0
		fi
		owner=$(cat "$d/pid" 2>/dev/null)
		if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then
			engine_log "removing the lock of ended run $owner"
			rm -rf "$d"
			continue
		fi
		sleep 0.1
	done
	engine_log "run $(cat "$d/pid" 2>/dev/null) holds $d"
	return 1
}

engine_unlock() {
	[ "${FR_ENGINE_LOCKED:-0}" -eq 1 ] || return 0
	rm -rf "$FR_DEPLOY_CACHE/lock.d"
	FR_ENGINE_LOCKED=0
}

# engine_start: start dockerd (unless ours is running already) and wait until it answers.
# Exports DOCKER_HOST for docker and docker-compose.
engine_start() {
	local dockerd
	dockerd=$(command -v dockerd || echo /usr/sbin/dockerd)
	if [ ! -x "$dockerd" ]; then
		engine_log "no dockerd on this machine (Debian package docker.io; ./fr deps installs it)"
		return 1
	fi
	export DOCKER_HOST=unix://$FR_ENGINE_RUN/docker.sock
	if [ -f "$FR_ENGINE_RUN/dockerd.pid" ] && kill -0 "$(cat "$FR_ENGINE_RUN/dockerd.pid")" 2>/dev/null &&
		/usr/bin/docker info >/dev/null 2>&1; then
		engine_log "dockerd runs already ($FR_ENGINE_RUN)"
		return 0
	fi
	mkdir -p "$FR_DEPLOY_CACHE/docker" "$FR_ENGINE_RUN"
	engine_log "starting dockerd (data root $FR_DEPLOY_CACHE/docker, socket $FR_ENGINE_RUN/docker.sock)"
	setsid "$dockerd" --data-root "$FR_DEPLOY_CACHE/docker" --exec-root "$FR_ENGINE_RUN" \
		-H "$DOCKER_HOST" --pidfile "$FR_ENGINE_RUN/dockerd.pid" \
		--bridge=none --iptables=false --ip6tables=false --ip-masq=false \
		--userland-proxy=false --log-level=warn \
		>"$FR_DEPLOY_CACHE/dockerd.log" 2>&1 </dev/null &
	FR_ENGINE_PID=$!
	local i
	for ((i = 0; i < 600; i++)); do
		/usr/bin/docker info >/dev/null 2>&1 && { engine_log "dockerd is up (pid $FR_ENGINE_PID)"; return 0; }
		kill -0 "$FR_ENGINE_PID" 2>/dev/null || break
		sleep 0.1
	done
	engine_log "dockerd did not start; the end of its log:"
	tail -n 30 "$FR_DEPLOY_CACHE/dockerd.log" >&2
	return 1
}

# engine_stop: stop the dockerd this shell started (its containers stop with it).
engine_stop() {
	[ -n "$FR_ENGINE_PID" ] || return 0
	kill -TERM "$FR_ENGINE_PID" 2>/dev/null || return 0
	local i
	for ((i = 0; i < 300; i++)); do
		kill -0 "$FR_ENGINE_PID" 2>/dev/null || { FR_ENGINE_PID=; return 0; }
		sleep 0.1
	done
	engine_log "dockerd ($FR_ENGINE_PID) did not stop in 30 s; killing it"
	kill -KILL "$FR_ENGINE_PID" 2>/dev/null
	FR_ENGINE_PID=
}

# engine_mirror: the Debian mirror apt uses on this machine.
engine_mirror() {
	if [ -n "${FR_DEPLOY_MIRROR:-}" ]; then echo "$FR_DEPLOY_MIRROR"; return; fi
	local m
	m=$(grep -h -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
		grep -v -E 'security|updates' | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' |
		awk '{ print $1; exit }')
	echo "${m:-http://deb.debian.org/debian}"
}

# engine_base_image: debian:bookworm-slim in the engine, made by debootstrap (minbase, without
# documentation, like Docker's slim image) when absent; the tarball is cached.
engine_base_image() {
	if /usr/bin/docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
		engine_log "base image debian:bookworm-slim present"
		return 0
	fi
	local tar=$FR_DEPLOY_CACHE/bookworm-slim.tar root=$FR_DEPLOY_CACHE/rootfs.tmp
	if [ ! -s "$tar" ]; then
		command -v debootstrap >/dev/null || { engine_log "debootstrap missing (./fr deps installs it)"; return 1; }
		rm -rf "$root"
		engine_log "debootstrap --variant=minbase bookworm from $(engine_mirror)"
		debootstrap --variant=minbase bookworm "$root" "$(engine_mirror)" >"$FR_DEPLOY_CACHE/debootstrap.log" 2>&1 ||
			{ engine_log "debootstrap failed:"; tail -n 20 "$FR_DEPLOY_CACHE/debootstrap.log" >&2; return 1; }
		"$(dirname "${BASH_SOURCE[0]}")/../../docker/slim-rootfs" "$root" ||
			{ engine_log "docker/slim-rootfs failed"; return 1; }
		tar -C "$root" --numeric-owner -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
		rm -rf "$root"
	fi
	engine_log "docker import debian:bookworm-slim"
	/usr/bin/docker import "$tar" debian:bookworm-slim >/dev/null ||
		{ engine_log "docker import failed"; return 1; }
}
