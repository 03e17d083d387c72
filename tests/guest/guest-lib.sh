# shellcheck shell=sh
# The guest half's side of the test protocol, sourced by the *-guest.sh
# scripts under busybox sh (vfk_test_begin in lib.sh copies it into the 9p
# share next to guest-test.sh).  Every assertion prints one line "VFKTAP ok
# - WHAT" or "VFKTAP not ok - WHAT" on the serial console, and the host
# relays each as a TAP case (vfk_test_guest); "VFKTAP # TEXT" is a comment.
# A script ends with vfk_done: "VFKTAP done" tells the host it ran to its
# end, and its exit status is 0 only if every assertion passed.

failed=0
ok() { echo "VFKTAP ok - $*"; }
nok() {
	echo "VFKTAP not ok - $*"
	failed=$((failed + 1))
}
note() { echo "VFKTAP # $*"; }
eq() { # WHAT GOT WANT
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		nok "$1: got '$2', want '$3'"
	fi
}
# The kernel VFIO tests' binaries, copied from the share: $T
# (vfio-client-test), $V (vfiokit) and $P (pci-probe); exits on failure.
vfk_kernel_test_binaries() {
	T=/tmp/vfio-client-test
	V=/tmp/vfiokit
	P=/tmp/pci-probe
	cp /mnt/vfio-client-test $T && cp /mnt/vfiokit $V && cp /mnt/pci-probe $P || {
		nok "copy the test binaries from the share"
		exit 1
	}
}

# The kernel VFIO tests' helpers: run a test binary (a non-zero status is
# one more failure; it prints its own checks), wait for a socket, and check
# `vfiokit info BDF` ($V) on a kernel-bound device: it must succeed and
# show the BARs named (its output stays in $info_out).
run() {
	"$@" || failed=$((failed + 1))
}
wait_sock() {
	i=0
	while [ ! -S "$1" ] && [ $i -lt 300 ]; do
		usleep 20000
		i=$((i + 1))
	done
	[ -S "$1" ]
}
info_check() { # BDF NAME BARS...
	b=$1 name=$2
	shift 2
	out=$($V info "$b" 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && printf '%s\n' "$out" | grep -q '^kernel VFIO device .*(vfio-type1)'; then
		ok "vfiokit info $b ($name) exits 0 and describes the kernel VFIO device"
	else
		nok "vfiokit info $b ($name) exits 0 and describes the kernel VFIO device (status $rc)"
		printf '%s\n' "$out" | sed 's/^/VFKTAP # info: /'
	fi
	for bar in "$@"; do
		if printf '%s\n' "$out" | grep -q "^	BAR$bar: "; then ok "vfiokit info shows $name's BAR$bar"; else nok "vfiokit info shows $name's BAR$bar"; fi
	done
	info_out=$out
}
# `vfiokit serve passthrough --device BDF [ARGS...]` re-exports a kernel-bound
# device; `$T CLIENT-MODE SOCKET` (vfio-client-test) checks the re-export;
# the server must exit 0 on SIGTERM and log no error.
passthrough_check() { # BDF NAME CLIENT-MODE SERVE-ARGS...
	pb=$1 pname=$2 pmode=$3
	shift 3
	$V serve passthrough --device "$pb" "$@" --socket /tmp/pt.sock 2>/tmp/pt.log &
	pt=$!
	if wait_sock /tmp/pt.sock; then
		ok "vfiokit serve passthrough re-exports $pname"
		run $T "$pmode" /tmp/pt.sock
	else
		nok "vfiokit serve passthrough re-exports $pname"
	fi
	kill -TERM $pt 2>/dev/null
	wait $pt
	rc=$?
	sed 's/^/VFKTAP # server: /' /tmp/pt.log
	if [ $rc -eq 0 ]; then ok "passthrough server exits 0"; else nok "passthrough server exits 0 (status $rc)"; fi
	if grep -q 'error:' /tmp/pt.log; then nok "passthrough server logged no error"; else ok "passthrough server logged no error"; fi
	rm -f /tmp/pt.sock
}
vfk_done() {
	echo "VFKTAP done"
	exit $((failed ? 1 : 0))
}
