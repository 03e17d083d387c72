# shellcheck shell=sh
# Guest half of the NVMe test (host half: nvme-qemu-test.sh, which copies
# this file into the 9p share as guest-test.sh, with nvme-io and
# nvme-params next to it).  Runs under busybox sh from the guest's /init.
#
# Output protocol and the ok/nok/note/eq helpers: guest-lib.sh; plus
# "VFKNUM NAME VALUE..." lines with measurements for the host to collect.
#
# MODE=vfiokit (the default): the unmodified Linux nvme driver binds to
# `vfiokit serve nvme`, /dev/nvme0n1 has the backing's size, a pattern
# written with O_DIRECT reads back, also after a controller reset through
# sysfs and after a function-level reset; a timed workload runs, with the
# device's own count of vfio-user messages around it; a last pattern is
# written for the host to find in the backing file after power-off.
# MODE=qemu: the same timed workload against QEMU's own -device nvme.

N=/tmp/nvme-io
cp /mnt/nvme-io $N 2>/dev/null || N=/mnt/nvme-io
# shellcheck disable=SC1091
. /mnt/nvme-params
# shellcheck source=guest-lib.sh
. /mnt/guest-lib.sh

run() { # WHAT COMMAND...
	w=$1
	shift
	if out=$("$@" 2>&1); then ok "$w"; else nok "$w: $out"; fi
}
wait_live() { # the controller is back after a reset
	i=0
	while [ "$(cat $C/state 2>/dev/null)" != live ] && [ $i -lt 300 ]; do
		usleep 100000
		i=$((i + 1))
	done
	i=0
	while [ ! -b /dev/nvme0n1 ] && [ $i -lt 100 ]; do
		usleep 100000
		i=$((i + 1))
	done
	eq "$1: controller live again" "$(cat $C/state 2>/dev/null)" live
}

bdf=""
for d in /sys/bus/pci/devices/*; do
	if [ "$(cat "$d/vendor")" = "0x$NVME_VENDOR" ] && [ "$(cat "$d/device")" = "0x$NVME_DEVICE" ]; then
		bdf=${d##*/}
	fi
done
if [ -z "$bdf" ]; then
	nok "an NVMe function $NVME_VENDOR:$NVME_DEVICE is present"
	vfk_done
fi
ok "an NVMe function $NVME_VENDOR:$NVME_DEVICE is present ($bdf)"
D=/sys/bus/pci/devices/$bdf
eq "class code is NVM Express" "$(cat $D/class)" 0x010802

i=0
while [ ! -b /dev/nvme0n1 ] && [ $i -lt 300 ]; do
	usleep 100000
	i=$((i + 1))
done
drv=$(readlink $D/driver)
eq "the nvme driver is bound" "${drv##*/}" nvme
if [ ! -b /dev/nvme0n1 ]; then
	nok "/dev/nvme0n1 appeared"
	dmesg | tail -n 30 | sed 's/^/VFKTAP # dmesg: /'
	vfk_done
fi
ok "/dev/nvme0n1 appeared (after $((i / 10)).$((i % 10)) s)"
C=/sys/class/nvme/nvme0
eq "namespace size" "$(($(cat /sys/block/nvme0n1/size) * 512))" "$SIZE"
note "model '$(cat $C/model)' serial '$(cat $C/serial)' firmware '$(cat $C/firmware_rev)'"
note "$(ls /sys/block/nvme0n1/mq | wc -l) I/O queue(s); interrupts: $(grep nvme /proc/interrupts | awk '{ print $NF }' | tr '\n' ' ')"
note "max transfer $(cat /sys/block/nvme0n1/queue/max_hw_sectors_kb) KiB, discard max $(cat /sys/block/nvme0n1/queue/discard_max_hw_bytes), write cache: $(cat /sys/block/nvme0n1/queue/write_cache)"

if [ "$MODE" = vfiokit ]; then
	eq "model string" "$(sed 's/ *$//' $C/model)" "vfiokit NVMe controller"
	eq "firmware revision" "$(sed 's/ *$//' $C/firmware_rev)" "0.1.0"
	case $(cat $C/serial) in VFK*) ok "serial number" ;; *) nok "serial number: $(cat $C/serial)" ;; esac
	if grep -q 'nvme0q1' /proc/interrupts && grep 'nvme0q0' /proc/interrupts | grep -q MSI; then
		ok "admin and I/O queues have MSI-X interrupts"
	else
		nok "admin and I/O queues have MSI-X interrupts: $(grep nvme /proc/interrupts)"
	fi
	eq "volatile write cache reported" "$(cat /sys/block/nvme0n1/queue/write_cache)" "write back"

	run "write the pattern with O_DIRECT ($LEN1 bytes at $OFF1)" $N write /dev/nvme0n1 "$OFF1" "$LEN1" "$SEED1"
	run "read the pattern back" $N verify /dev/nvme0n1 "$OFF1" "$LEN1" "$SEED1"
	run "a 12 KiB pattern at an odd 4 KiB offset ($OFF3)" $N write /dev/nvme0n1 "$OFF3" 12288 "$SEED1"
	run "the 12 KiB pattern reads back" $N verify /dev/nvme0n1 "$OFF3" 12288 "$SEED1"
	# The controller always offers Dataset Management (ONCS), so the
	# kernel must pass the discard on.  A read that fails must not count
	# as zeros: count the bytes read as well.
	run "discard (Dataset Management deallocate)" blkdiscard -o "$OFF3" -l 4096 /dev/nvme0n1
	dd if=/dev/nvme0n1 of=/tmp/discarded bs=4096 skip=$((OFF3 / 4096)) count=1 iflag=direct 2>/dev/null
	eq "the discarded block reads back as zeros (bytes read, non-zero bytes)" \
		"$(wc -c </tmp/discarded) $(tr -d '\000' </tmp/discarded | wc -c)" "4096 0"
	run "the rest of the 12 KiB pattern is intact" $N verify /dev/nvme0n1 $((OFF3 + 4096)) 8192 "$SEED1"

	if echo 1 >$C/reset_controller; then ok "controller reset through sysfs"; else nok "controller reset through sysfs"; fi
	wait_live "sysfs controller reset"
	run "the pattern reads back after the controller reset" $N verify /dev/nvme0n1 "$OFF1" "$LEN1" "$SEED1"

	if echo 1 >$D/reset 2>/dev/null; then ok "function-level reset through sysfs ($(cat $D/reset_method))"; else nok "function-level reset through sysfs"; fi
	wait_live "function-level reset"
	run "the pattern reads back after the function-level reset" $N verify /dev/nvme0n1 "$OFF1" "$LEN1" "$SEED1"
fi

# ------------------------------------------------------------ workload
before=""
if [ "$MODE" = vfiokit ]; then
	before=$($N stats /dev/nvme0 2>&1)
	case $before in stats*) ok "statistics log page through the admin passthrough" ;; *) nok "statistics log page: $before"; before="" ;; esac
fi
for m in read write; do
	out=$($N bench /dev/nvme0n1 $m 4096 "$BENCH_COUNT" "$BENCH_SPAN" 2>&1)
	case $out in
	bench*)
		ok "QD1 4 KiB random $m workload ran"
		note "$out"
		echo "VFKNUM $MODE $out"
		;;
	*) nok "QD1 4 KiB random $m workload: $out" ;;
	esac
done
seq_dd() { # read|write DD-OPERANDS...: $SEQ_MB MiB, timed
	what=$1
	shift
	t0=$(cut -d' ' -f1 /proc/uptime)
	if dd "$@" bs=1M count="$SEQ_MB" 2>/tmp/dd.out; then
		t1=$(cut -d' ' -f1 /proc/uptime)
		ok "sequential O_DIRECT $what of $SEQ_MB MiB"
		echo "VFKNUM $MODE seq$what $SEQ_MB $t0 $t1"
		note "dd $what: $(tail -n1 /tmp/dd.out)"
	else
		nok "sequential O_DIRECT $what: $(cat /tmp/dd.out)"
	fi
}
seq_dd read if=/dev/nvme0n1 of=/dev/null iflag=direct
seq_dd write if=/dev/zero of=/dev/nvme0n1 seek="$SEQ_SEEK_MB" oflag=direct conv=fsync
if [ -n "$before" ]; then
	after=$($N stats /dev/nvme0 2>&1)
	# shellcheck disable=SC2086
	set -- $before
	c0=$3 m0=$4 i0=$5
	# shellcheck disable=SC2086
	set -- $after
	note "device statistics before: $before"
	note "device statistics after:  $after"
	echo "VFKNUM $MODE messages $((${4:-0} - m0)) io_commands $((${3:-0} - c0)) irqs $((${5:-0} - i0)) server_p50_ns ${7:-0} server_p99_ns ${8:-0}"
fi

if [ "$MODE" = vfiokit ]; then
	# For the host to find after power-off: written, fsync'd (Flush).
	run "write the final pattern ($LEN2 bytes at $OFF2)" $N write /dev/nvme0n1 "$OFF2" "$LEN2" "$SEED2"
	run "read the final pattern back" $N verify /dev/nvme0n1 "$OFF2" "$LEN2" "$SEED2"
fi
vfk_done
