# shellcheck shell=sh disable=SC2046
# (SC2046: "set -- $(...)" splits words on purpose.)
# Guest half of the QEMU interoperability test of `vfiokit serve dma-test`
# (host half: qemu-dma-test.sh, which copies this file into the 9p share as
# guest-test.sh; the guest's /init runs it with busybox sh).
#
# Output protocol and the ok/nok/note/eq helpers: guest-lib.sh.
#
# What it drives, all from guest userspace through sysfs (no guest driver):
#   identity, BARs, ROM and capabilities as the guest kernel enumerated them;
#   BAR0 registers (all access widths), BAR2/BAR4 shared memory that QEMU
#   maps from the server, the BAR5 I/O register;
#   DMA copies programmed through BAR0 into physically contiguous guest
#   buffers, with the Bus Master bit off and on, across the server's 64 KiB
#   bounce buffer, into the device's own BAR2, and to places the device
#   must not reach;
#   a function-level reset through the sysfs reset file.

# The share is mounted with cache=none: running the tool from tmpfs saves
# reading it over 9p at every one of the ~200 invocations.
P=/tmp/pci-probe
cp /mnt/pci-probe $P || P=/mnt/pci-probe
t_start=$(cut -d' ' -f1 /proc/uptime)
# shellcheck source=guest-lib.sh
. /mnt/guest-lib.sh

has() { # WHAT TEXT PATTERN (grep -E)
	if printf '%s\n' "$2" | grep -Eq -- "$3"; then
		ok "$1"
	else
		nok "$1: no match for '$3'"
	fi
}
hex() { printf '0x%0*x' "$1" "$2"; } # hex WIDTH_DIGITS VALUE

bdf=$($P find 1234:df01 2>/dev/null)
eq "one device 1234:df01 in /sys/bus/pci" "$(printf '%s\n' "$bdf" | grep -c .)" 1
if [ -z "$bdf" ]; then
	note "no device, giving up"
	vfk_done
fi
bdf=$(printf '%s\n' "$bdf" | head -n1)
D=/sys/bus/pci/devices/$bdf
note "device at $bdf"

# ------------------------------------------------------------- identity
eq "vendor id" "$(cat $D/vendor)" 0x1234
eq "device id" "$(cat $D/device)" 0xdf01
eq "class code" "$(cat $D/class)" 0xff0000
eq "revision" "$(cat $D/revision)" 0x01
eq "subsystem vendor id" "$(cat $D/subsystem_vendor)" 0x1234
eq "subsystem id" "$(cat $D/subsystem_device)" 0x0001
eq "interrupt pin INTA" "$($P cfgread $bdf 0x3d 1)" 0x01
eq "header type 0" "$($P cfgread $bdf 0x0e 1)" 0x00

# ----------------------------------------------------------------- BARs
note "uptime $(cut -d' ' -f1 /proc/uptime) s"
# sysfs resource: one "start end flags" line per BAR, then the ROM.
IO=0x100 MEM=0x200 MEM64=0x100000 PREF=0x2000
res() { sed -n "$(($1 + 1))p" $D/resource; }
bar_size() {
	set -- $(res "$1")
	if [ "$(($2))" -eq 0 ]; then echo 0; else echo $(($2 - $1 + 1)); fi
}
bar_start() {
	set -- $(res "$1")
	echo "$1"
}
bar_kind() { # mem32, mem64, io or none, plus "-pf" when prefetchable
	set -- $(res "$1")
	f=$(($3))
	if [ $((f & IO)) -ne 0 ]; then
		k=io
	elif [ $((f & MEM)) -ne 0 ]; then
		if [ $((f & MEM64)) -ne 0 ]; then k=mem64; else k=mem32; fi
		[ $((f & PREF)) -eq 0 ] || k=$k-pf
	else
		k=none
	fi
	echo $k
}
eq "BAR0 is 32-bit memory" "$(bar_kind 0)" mem32
eq "BAR0 size 4 KiB" "$(bar_size 0)" 4096
eq "BAR1 unused" "$(bar_size 1)" 0
eq "BAR2 is 64-bit memory" "$(bar_kind 2)" mem64
eq "BAR2 size 64 KiB" "$(bar_size 2)" 65536
eq "BAR3 is the upper half of BAR2" "$(bar_size 3)" 0
eq "BAR4 is 32-bit memory" "$(bar_kind 4)" mem32
eq "BAR4 size 256 bytes" "$(bar_size 4)" 256
eq "BAR5 is I/O" "$(bar_kind 5)" io
eq "BAR5 size 16 bytes" "$(bar_size 5)" 16
eq "expansion ROM size 2 KiB" "$(bar_size 6)" 2048
# "VFKROM" starts the image; reading it makes QEMU fetch the ROM region.
eq "expansion ROM contents" "$($P rom $bdf 0 6 2>&1)" "56 46 4b 52 4f 4d"

# --------------------------------------------------------- capabilities
note "uptime $(cut -d' ' -f1 /proc/uptime) s"
info=$($P info $bdf 2>&1)
printf '%s\n' "$info" | sed 's/^/VFKTAP # info: /'
has "config space is 4 KiB" "$info" '^config_size 4096$'
has "capability: power management" "$info" '^cap 0x01 power-management '
has "capability: MSI, 1 vector, 64-bit, maskable" "$info" \
	'^cap 0x05 msi .* vectors=1/1 64bit=1 per_vector_mask=1'
has "capability: MSI-X, 4 vectors, table BAR2+0x1000, PBA BAR2+0x2000" "$info" \
	'^cap 0x11 msi-x .*table_size=4 .*table_bar=2 table_offset=0x1000 pba_bar=2 pba_offset=0x2000'
has "capability: PCI Express v2 endpoint" "$info" '^cap 0x10 pci-express .*version=2 port_type=0$'
has "capability: vendor-specific" "$info" '^cap 0x09 vendor-specific '
has "extended capability: device serial number" "$info" \
	'^ecap 0x0003 serial-number offset=0x100 version=1'
vs=$(printf '%s\n' "$info" | sed -n 's/^cap 0x09 vendor-specific offset=\(0x[0-9a-f]*\).*/\1/p')
if [ -n "$vs" ]; then
	eq "vendor-specific capability text" \
		"$(dd if=$D/config bs=1 skip=$((vs + 3)) count=16 2>/dev/null)" "vfiokit dma-test"
fi
eq "device serial number" \
	"$(dd if=$D/config bs=1 skip=260 count=8 2>/dev/null | od -An -tx1 | tr -s ' ' | sed 's/^ //')" \
	"01 00 6b 66 76 00 00 00"
px=$(printf '%s\n' "$info" | sed -n 's/^cap 0x10 pci-express offset=\(0x[0-9a-f]*\).*/\1/p')
if [ -n "$px" ]; then
	devcap=$($P cfgread $bdf $((px + 4)) 4)
	eq "PCI Express DevCap advertises FLR" $((devcap >> 28 & 1)) 1
fi
has "kernel offers FLR as a reset method" "$(cat $D/reset_method)" '(^| )flr( |$)'

# ------------------------------------------------------- BAR0 registers
note "uptime $(cut -d' ' -f1 /proc/uptime) s"
r0() { $P read $bdf 0 "$1" "$2" 2>&1; }
w0() { $P write $bdf 0 "$1" "$2" "$3"; }
eq "BAR0 ID register" "$(r0 0 4)" 0x444b4656
eq "BAR0 VERSION register" "$(r0 4 4)" 0x00000001
eq "BAR0 8-byte read of ID and VERSION" "$(r0 0 8)" 0x00000001444b4656
eq "BAR0 1-byte read of ID" "$(r0 1 1)" 0x46
eq "BAR0 2-byte read of ID" "$(r0 2 2)" 0x444b
w0 0 4 0x12345678
eq "BAR0 ID is read-only" "$(r0 0 4)" 0x444b4656
for v in 0x00000000 0xffffffff 0xa5a5a5a5 0x5a5a5a5a 0x80000001 0xdeadbeef; do
	w0 0x40 4 $v
	eq "scratch 4-byte write/read $v" "$(r0 0x40 4)" $v
done
w0 0x41 1 0x5a
eq "scratch 1-byte write merges" "$(r0 0x40 4)" 0xdead5aef
w0 0x42 2 0x1234
eq "scratch 2-byte write merges" "$(r0 0x40 4)" 0x12345aef
eq "scratch 1-byte read" "$(r0 0x43 1)" 0x12
eq "scratch 2-byte read" "$(r0 0x42 2)" 0x1234
w0 0x40 8 0x0123456789abcdef
eq "scratch 8-byte write keeps the low 32 bits" "$(r0 0x40 8)" 0x0000000089abcdef
w0 0x08 8 0x1122334455667788
eq "SRC 8-byte write/read" "$(r0 0x08 8)" 0x1122334455667788
w0 0x0c 4 0x99aabbcc
eq "SRC upper half 4-byte write" "$(r0 0x08 8)" 0x99aabbcc55667788
w0 0x18 4 0x00001000
eq "LEN write/read" "$(r0 0x18 4)" 0x00001000
eq "STATUS is 0 before any copy" "$(r0 0x24 4)" 0x00000000
count0=$(r0 0x2c 4)

# ---------------------------------------- shared memory BARs, I/O BAR
note "uptime $(cut -d' ' -f1 /proc/uptime) s"
for o in 0x0 0x8 0xff8; do
	$P write $bdf 2 $o 8 "$(hex 16 $((0x0102030405060708 + o)))"
	eq "BAR2 page 0 8-byte write/read at $o" "$($P read $bdf 2 $o 8)" "$(hex 16 $((0x0102030405060708 + o)))"
done
$P write $bdf 2 0x3000 4 0xcafef00d
$P write $bdf 2 0xfffc 4 0x600dd00d
eq "BAR2 page 3 write/read" "$($P read $bdf 2 0x3000 4)" 0xcafef00d
eq "BAR2 last dword write/read" "$($P read $bdf 2 0xfffc 4)" 0x600dd00d
$P write $bdf 2 0x10 4 0x11223344
$P write $bdf 2 0x11 1 0xab
eq "BAR2 1-byte write merges" "$($P read $bdf 2 0x10 4)" 0x1122ab44
eq "BAR2 MSI-X PBA reads 0 (no vector pending)" "$($P read $bdf 2 0x2000 8)" 0x0000000000000000
$P write $bdf 4 0x0 4 0x44444444
$P write $bdf 4 0xf8 8 0x4141414142424242
eq "BAR4 write/read at 0" "$($P read $bdf 4 0x0 4)" 0x44444444
eq "BAR4 8-byte write/read at the end" "$($P read $bdf 4 0xf8 8)" 0x4141414142424242
eq "BAR5 I/O id at 4" "$($P read $bdf 5 4 4)" 0x444b4656
$P write $bdf 5 0 4 0x13572468
eq "BAR5 I/O scratch write/read" "$($P read $bdf 5 0 4)" 0x13572468
$P write $bdf 5 1 1 0xee
eq "BAR5 I/O 1-byte write merges" "$($P read $bdf 5 0 4)" 0x1357ee68
eq "BAR5 I/O 2-byte read" "$($P read $bdf 5 2 2)" 0x1357

# ------------------------------------------------------------------ DMA
note "uptime $(cut -d' ' -f1 /proc/uptime) s"
# Poll STATUS until BUSY clears; prints the last value.
wait_idle() {
	i=0
	while [ $i -lt 500 ]; do
		s=$(r0 0x24 4)
		case $s in 0x*) [ $((s & 1)) -eq 0 ] && break ;; esac
		usleep 10000
		i=$((i + 1))
	done
	echo "$s"
}
# Program a copy and ring the doorbell; sets $st (STATUS) and $er (ERRNO).
copy() { # SRC DST LEN
	w0 0x08 8 "$(hex 16 $(($1)))"
	w0 0x10 8 "$(hex 16 $(($2)))"
	w0 0x18 4 "$(hex 8 $(($3)))"
	w0 0x1c 4 0
	w0 0x20 4 1
	st=$(wait_idle)
	er=$(r0 0x28 4)
}
ack() { w0 0x24 4 0x6; }

# A buffer pair from pci-probe copybuf, run in the background.
cb_start() { # SIZE SKEW
	cb_out=/tmp/copybuf.$1.$2
	$P copybuf "$1" 60 "$2" >$cb_out 2>&1 &
	cb_pid=$!
	i=0
	while ! grep -q '^src ' $cb_out && [ $i -lt 500 ] && kill -0 $cb_pid 2>/dev/null; do
		usleep 10000
		i=$((i + 1))
	done
	set -- $(grep '^src ' $cb_out) x x x x
	cb_src=$2 cb_dst=$4
}
cb_abort() {
	kill $cb_pid 2>/dev/null
	wait $cb_pid 2>/dev/null
}
cb_finish() { # WHAT: the copy must have landed exactly
	if [ "$st" != 0x00000002 ]; then
		cb_abort # no point waiting for its timeout
		nok "$1: the device did not complete the copy (STATUS $st ERRNO $er)"
	elif wait $cb_pid; then
		ok "$1"
	else
		nok "$1: $(tr '\n' ' ' <$cb_out)"
	fi
}

cmd=$($P cfgread $bdf 4 2)
$P cfgwrite $bdf 4 2 "$(hex 4 $(((cmd | 0x2) & ~0x4)))"
cb_start 256 0
note "copybuf 256: src $cb_src dst $cb_dst"
copy $cb_src $cb_dst 256
eq "copy without Bus Master Enable fails" "$st" 0x00000004
eq "ERRNO is EACCES without Bus Master Enable" "$er" 0x0000000d
w0 0x24 4 0x2
eq "STATUS W1C: writing DONE leaves ERROR set" "$(r0 0x24 4)" 0x00000004
w0 0x24 4 0x4
eq "STATUS W1C: writing ERROR clears it" "$(r0 0x24 4)" 0x00000000

$P enable $bdf
eq "COMMAND has Memory, I/O and Bus Master enabled" $(($($P cfgread $bdf 4 2) & 7)) 7
w0 0x20 4 1
st=$(wait_idle)
er=$(r0 0x28 4)
eq "copy of 256 bytes completes (STATUS DONE)" "$st" 0x00000002
cb_finish "256-byte copy landed in guest memory"
w0 0x24 4 0x4
eq "STATUS W1C: writing ERROR leaves DONE set" "$(r0 0x24 4)" 0x00000002
w0 0x24 4 0x2
eq "STATUS W1C: writing DONE clears it" "$(r0 0x24 4)" 0x00000000
eq "COUNT counts the completed copy" "$(r0 0x2c 4)" "$(hex 8 $((count0 + 1)))"

# Unaligned, and longer than the server's 64 KiB bounce buffer.
cb_start 65659 5
copy $cb_src $cb_dst 65659
eq "unaligned copy of 65659 bytes completes" "$st" 0x00000002
cb_finish "65659-byte unaligned copy landed in guest memory"
ack
cb_start 1048576 0
copy $cb_src $cb_dst 1048576
eq "copy of 1 MiB completes" "$st" 0x00000002
cb_finish "1 MiB copy landed in guest memory"
ack
eq "COUNT counts three copies" "$(r0 0x2c 4)" "$(hex 8 $((count0 + 3)))"
note "BOUNCED register after three copies: $(r0 0x30 4)"

# Into the device's own BAR2 page 0 (QEMU DMA-maps it without an fd):
# pci-probe dmabuf holds bytes i ^ 0x5a.
$P fill $bdf 2 0x100 64 0
db_out=/tmp/dmabuf.out
$P dmabuf 64 30 >$db_out 2>&1 &
db_pid=$!
i=0
while ! grep -q '^phys ' $db_out && [ $i -lt 500 ]; do
	usleep 10000
	i=$((i + 1))
done
bar2=$(bar_start 2)
copy "$(sed -n 's/^phys //p' $db_out)" $((bar2 + 0x100)) 64
kill $db_pid 2>/dev/null
wait $db_pid 2>/dev/null
eq "copy from guest RAM into the device's BAR2 completes" "$st" 0x00000002
want="" i=0
while [ $i -lt 16 ]; do
	b=$((i * 4))
	want="$want $(hex 8 $(((b ^ 0x5a) | ((b + 1) ^ 0x5a) << 8 | ((b + 2) ^ 0x5a) << 16 | ((b + 3) ^ 0x5a) << 24)) | cut -c3-)"
	i=$((i + 1))
done
got=$($P dump $bdf 2 0x100 64 | sed 's/^[0-9a-f]*://' | tr -s ' \n' '  ' | sed 's/ *$//')
eq "BAR2 holds what the device copied there" "$got" "$want"
ack

# What the device must not reach.
copy 0 0 0x1000001
eq "copy longer than 16 MiB fails with E2BIG" "$st/$er" 0x00000004/0x00000007
ack
copy 0x8000000000 0x100000 16
eq "copy from unmapped IOVA 512 GiB fails with EFAULT" "$st/$er" 0x00000004/0x0000000e
ack
cb_start 16 0
copy $cb_src 0xfffc0000 16
eq "copy into the read-only BIOS ROM mapping fails with EACCES" "$st/$er" 0x00000004/0x0000000d
ack
copy $cb_src $cb_dst 16
eq "a copy after the failed ones completes" "$st" 0x00000002
cb_finish "16-byte copy after the failures landed"
ack

# ------------------------------------------------------------------ FLR
note "uptime $(cut -d' ' -f1 /proc/uptime) s"
w0 0x40 4 0x1234abcd
$P write $bdf 5 0 4 0x0badcafe
if echo flr >$D/reset_method 2>/dev/null; then
	ok "select FLR as the reset method"
else
	nok "select FLR as the reset method"
fi
if echo 1 >$D/reset 2>/dev/null; then
	ok "function-level reset through sysfs"
else
	nok "function-level reset through sysfs"
fi
echo default >$D/reset_method 2>/dev/null
eq "scratch is 0 after FLR" "$(r0 0x40 4)" 0x00000000
eq "COUNT is 0 after FLR" "$(r0 0x2c 4)" 0x00000000
eq "STATUS is 0 after FLR" "$(r0 0x24 4)" 0x00000000
eq "BAR5 I/O scratch is 0 after FLR" "$($P read $bdf 5 0 4)" 0x00000000
eq "ID after FLR" "$(r0 0 4)" 0x444b4656
w0 0x40 4 0x0f1e2d3c
eq "scratch works after FLR" "$(r0 0x40 4)" 0x0f1e2d3c
$P enable $bdf
cb_start 2048 0
copy $cb_src $cb_dst 2048
eq "copy after FLR completes" "$st" 0x00000002
cb_finish "2048-byte copy after FLR landed in guest memory"
ack

note "uptime $(cut -d' ' -f1 /proc/uptime) s (test started at $t_start s)"
vfk_done
