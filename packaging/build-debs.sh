#!/usr/bin/env bash
# build-debs.sh ARCH OUTDIR: builds fr-controller, fr-home and fr-server for ARCH (amd64 =
# this machine, arm64 = cross-compiled with packaging/toolchain-aarch64-linux-gnu.cmake) with
# Debian's hardening flags (dpkg-buildflags), and writes the .debs to OUTDIR. The build tree
# is build-pkg-ARCH/ in the source tree.
set -euo pipefail
arch=${1:?usage: build-debs.sh amd64|arm64 OUTDIR}
out=${2:?usage: build-debs.sh amd64|arm64 OUTDIR}
src=$(cd "$(dirname "$0")/.." && pwd)
b=$src/build-pkg-$arch
mkdir -p "$out"
host=$(dpkg --print-architecture)
extra=()
FR_STRIP=strip
if [ "$arch" != "$host" ]; then
	[ "$arch" = arm64 ] || { echo "build-debs.sh: no cross set-up for $arch" >&2; exit 2; }
	extra=(-DCMAKE_TOOLCHAIN_FILE="$src/packaging/toolchain-aarch64-linux-gnu.cmake")
	FR_STRIP=aarch64-linux-gnu-strip
fi
# Debian's flags for ARCH: -O2, stack protector, _FORTIFY_SOURCE, relro + now, PIE.
export DEB_BUILD_MAINT_OPTIONS=hardening=+all DEB_HOST_ARCH=$arch
export FR_STRIP
cmake -S "$src" -B "$b" -DCMAKE_BUILD_TYPE=None -DFR_BENCH=OFF -DCMAKE_INSTALL_PREFIX=/usr \
	-DCMAKE_C_FLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)" \
	-DCMAKE_EXE_LINKER_FLAGS="$(dpkg-buildflags --get LDFLAGS)" \
	-DCMAKE_STRIP="$src/packaging/strip.sh" "${extra[@]}" >/dev/null
cmake --build "$b" -j"$(nproc)"
# dpkg-shlibdeps of a cross build looks the libraries up for the host architecture.
(cd "$b" && cpack -G DEB -B "$b/cpack" >/dev/null)
cp "$b"/cpack/*.deb "$out"/
ls "$out"/*_"$arch".deb
