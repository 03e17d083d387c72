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
vfk_done() {
	echo "VFKTAP done"
	exit $((failed ? 1 : 0))
}
