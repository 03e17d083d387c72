#!/usr/bin/env bash
# Configure (once) and build the two trees the suite uses:
#   build/       release-style (debugoptimized), -Werror
#   build-asan/  the same under AddressSanitizer + UndefinedBehaviorSanitizer
# Usage: scripts/build.sh [build|asan|all]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-build}

setup() { # dir, options...
	local dir=$1; shift
	if [[ ! -f $dir/build.ninja ]]; then
		meson setup "$dir" -Dwerror=true "$@" >/dev/null
	fi
	ninja -C "$dir" >/dev/null
}

case $what in
build) setup build ;;
asan) setup build-asan -Db_sanitize=address,undefined -Db_lundef=false ;;
all) setup build; setup build-asan -Db_sanitize=address,undefined -Db_lundef=false ;;
*) echo "usage: $0 [build|asan|all]" >&2; exit 2 ;;
esac
