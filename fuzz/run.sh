#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build the libFuzzer harnesses (if needed) and run each for a bounded time.
#
#   fuzz/run.sh [SECONDS]     (default 60 per harness)
#
# Needs clang and its libFuzzer runtime (Debian: clang libclang-rt-14-dev).
# Prints TAP, one line per harness, and exits non-zero if any harness found
# a crash, a leak, a timeout or an invariant violation.  Reproducers land in
# .fuzz-corpus/artifacts/HARNESS/ and the corpus grows in .fuzz-corpus/HARNESS/
# (both git-ignored); the seeds are regenerated into a temporary directory
# on every run, and fuzz/regress/HARNESS/ holds the inputs of fixed bugs.
#
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_HARNESSES (default
# "fuzz_proto fuzz_server"), the usual ASAN_OPTIONS / UBSAN_OPTIONS, and the
# harnesses' own (FUZZ_SERVER_VERBOSE, FUZZ_SERVER_NO_RUN: fuzz_server.c).
set -u

secs=${1:-60}
case "$secs" in
'' | *[!0-9]*)
	echo "usage: $0 [SECONDS]" >&2
	exit 2
	;;
esac
[ "$secs" -gt 0 ] || secs=1

root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
harnesses=${FUZZ_HARNESSES:-fuzz_proto fuzz_dispatch fuzz_server fuzz_client fuzz_nvme}
corpus=$root/.fuzz-corpus
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vfk-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

set -- $harnesses
echo "1..$#"

bail() {
	# Nothing can run: report every harness as failed, with the reason.
	local n=0 h
	for h in $harnesses; do
		n=$((n + 1))
		echo "not ok $n - $h: $1"
	done
	sed 's/^/# /' "$tmp/build.log" | tail -n 30
	exit 1
}

if ! command -v clang >/dev/null 2>&1; then
	echo "clang not found" >"$tmp/build.log"
	bail "clang is not installed (apt-get install clang libclang-rt-14-dev)"
fi
if [ ! -f "$build/build.ninja" ]; then
	if ! CC=clang meson setup "$build" "$root" -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dtests=disabled -Dguest_tests=false >"$tmp/build.log" 2>&1; then
		rm -rf "$build"
		bail "meson setup failed"
	fi
fi
targets="fuzz/fuzz_seeds"
for h in $harnesses; do
	targets="$targets fuzz/$h"
done
# shellcheck disable=SC2086
if ! ninja -C "$build" $targets >"$tmp/build.log" 2>&1; then
	bail "build failed (is $build configured with CC=clang -Dfuzz=true?)"
fi

mkdir -p "$tmp/seeds/proto" "$tmp/seeds/server" "$tmp/seeds/client" "$tmp/seeds/dispatch" \
	"$tmp/seeds/nvme"
if ! "$build/fuzz/fuzz_seeds" "$tmp/seeds/proto" "$tmp/seeds/server" "$tmp/seeds/client" \
	"$tmp/seeds/dispatch" "$tmp/seeds/nvme" \
	>"$tmp/build.log" 2>&1; then
	bail "seed generation failed"
fi

# Every sanitizer finding is fatal; leaks count.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

n=0
failed=0
for h in $harnesses; do
	n=$((n + 1))
	case "$h" in
	fuzz_proto) seeds=$tmp/seeds/proto; extra="-max_len=4096" ;;
	fuzz_server) seeds=$tmp/seeds/server; extra="-max_len=16384" ;;
	fuzz_client) seeds=$tmp/seeds/client; extra="-max_len=8192" ;;
	fuzz_dispatch) seeds=$tmp/seeds/dispatch; extra="-max_len=16384" ;;
	fuzz_nvme) seeds=$tmp/seeds/nvme; extra="-max_len=32768" ;;
	*) seeds=; extra= ;;
	esac
	mkdir -p "$corpus/$h" "$corpus/artifacts/$h"
	# Inputs that once found a bug are replayed first on every run.
	regress=
	[ -d "$root/fuzz/regress/$h" ] && regress=$root/fuzz/regress/$h
	log=$tmp/$h.log
	# shellcheck disable=SC2086
	"$build/fuzz/$h" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -dict="$root/fuzz/vfio-user.dict" $extra \
		-artifact_prefix="$corpus/artifacts/$h/" \
		"$corpus/$h" ${seeds:+"$seeds"} $regress >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	ft=$(grep -o ' ft: [0-9]*' "$log" | tail -n 1 | tr -dc '0-9')
	cov=$(grep -o ' cov: [0-9]*' "$log" | tail -n 1 | tr -dc '0-9')
	if [ "$rc" -eq 0 ]; then
		echo "ok $n - $h: ${runs:-?} runs, ${ft:-?} features, ${cov:-?} edges, ${rate:-?} exec/s"
		continue
	fi
	failed=$((failed + 1))
	art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
	echo "not ok $n - $h: exit $rc after ${runs:-?} runs; input ${art:-not saved}"
	# The finding, and how to replay it.
	grep -E 'ERROR: |invariant violated|SUMMARY: |runtime error' "$log" |
		head -n 5 | sed 's/^/# /'
	grep -E '^    #[0-9]+ ' "$log" |
		grep -vE 'fuzzer::|libc\.so|libc_start|in _start|__sanitizer_print_stack|raise|abort|pthread_kill' |
		head -n 20 | sed 's/^/# /'
	[ -n "$art" ] && echo "# replay: $build/fuzz/$h $art"
done
exit $((failed > 0))
