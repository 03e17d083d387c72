#!/usr/bin/env bash
# The whole test suite, as CI runs it: unit, integration, hostile-client
# and QEMU guest tests, first in a normal build, then again under
# AddressSanitizer + UndefinedBehaviorSanitizer, then each libFuzzer
# harness for a bounded time.  Ends with "N passed, N failed".
#
# Environment: VFK_FUZZ_SECONDS (default 60 per harness), VFK_GUEST=0 to
# leave out the QEMU guest tests.
set -uo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh || exit 1
if [[ ${VFK_GUEST:-1} == 0 ]]; then guest=false; else guest=true; fi
# Without root the guest tests skip themselves, which a count of passes and
# failures would not show.
if [[ $guest == true && $(id -u) -ne 0 ]]; then
	echo "the QEMU guest tests need root (or set VFK_GUEST=0)" >&2
	exit 1
fi
./scripts/build.sh all || exit 1
for d in build build-asan; do
	meson configure "$d" -Dguest_tests=$guest >/dev/null || exit 1
done
if [[ $guest == true ]]; then
	./tests/guest/setup.sh || echo "guest: setup failed; the guest tests will fail" >&2
fi

status=0
for d in build build-asan; do
	echo "=== meson test ($d)"
	# A log left by an earlier run must not be counted for this one.
	rm -f "$d/meson-logs/testlog.json"
	if ! meson test -C "$d" --num-processes 2 --print-errorlogs >"$d/test-output.txt" 2>&1; then
		echo "meson test ($d) failed: $d/test-output.txt" >&2
		status=1
	fi
	grep -E '^ *[0-9]+/[0-9]+ ' "$d/test-output.txt"
done

echo "=== fuzz (${VFK_FUZZ_SECONDS:-60} s per harness)"
./fuzz/run.sh "${VFK_FUZZ_SECONDS:-60}" | tee build/fuzz.tap

echo "=== summary"
python3 scripts/tap-count.py \
	build=build/meson-logs/testlog.json \
	asan=build-asan/meson-logs/testlog.json \
	fuzz=build/fuzz.tap || status=1
exit $status
