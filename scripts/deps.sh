#!/usr/bin/env bash
# Install what building and testing vfiokit needs, from Debian 12's own
# archive (whatever mirror this machine's apt is configured with).  Quiet
# and quick when everything is already there.
set -euo pipefail

pkgs=(
	build-essential pkg-config meson ninja-build python3
	libjson-c-dev      # VERSION capabilities
	libcmocka-dev      # unit and integration tests
	liburing-dev       # the NVMe model's I/O path
	clang libclang-rt-14-dev  # libFuzzer and the sanitizer runtimes
	debootstrap        # the trixie chroot that runs QEMU 11.1 for guest tests
	cpio xz-utils kmod # guest initramfs tooling on the host side
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
