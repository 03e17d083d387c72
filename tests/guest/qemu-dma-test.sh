#!/bin/bash
# QEMU interoperability test: boot a Linux guest under QEMU 11.1 (TCG) with
# a vfio-user-pci device connected to `$VFIOKIT serve dma-test`, run
# dma-test-guest.sh in it, and report every assertion as TAP on stdout.
#
# Usage: qemu-dma-test.sh [--no-share]
#   (default)   guest RAM is memory-backend-memfd,share=on: each DMA_MAP
#               carries the memfd and the server copies through its mapping
#   --no-share  guest RAM is memory-backend-ram: DMA_MAP carries no fd and
#               the server must reach guest memory with DMA_READ/DMA_WRITE
#
# Environment: VFIOKIT (required) the vfiokit binary; VFK_GUEST_DIR (see
# lib.sh); VFK_GUEST_KEEP=1 keeps the work directory even on success;
# VFK_GUEST_TIMEOUT (default 300) seconds before QEMU is killed.
#
# Host-side assertions, around the guest's: the guest environment is ready
# (setup.sh, idempotent), pci-probe builds statically, the server listens,
# the guest test passes and runs to its end, QEMU reports no vfio-user
# errors, the server logs no warnings or errors, and it exits 0 on SIGTERM
# (in a sanitizer build, leaks and undefined behaviour make that fail).
# Without root the test is skipped (QEMU runs in a chroot).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

mode=share
while (($#)); do
    case $1 in
        --no-share) mode=noshare ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "Bail out! unknown option $1"; exit 2 ;;
    esac
    shift
done

# shellcheck source=lib.sh
source "$here/lib.sh"
vfk_tap_prefix="$mode: "
vfk_test_begin "guest-$mode" dma-test-guest.sh
vfk_test_gcc pci-probe "$here/pci-probe.c"

# ---------------------------------------------------------------- server
# -v: every message is logged, which is what one wants to read after a
# failure; the log stays small (a boot is a few hundred messages).
sock=$work/dma-test.sock
vfk_test_serve "$sock" dma-test -v

# ------------------------------------------------------------------ guest
opts=(--share "$share" --vfio-user "$sock" --rombar --root-port
      --timeout "${VFK_GUEST_TIMEOUT:-300}"
      --trace 'vfio_user_*' --trace vfio_region_mmap --trace vfio_region_mmap_fault)
[[ $mode == share ]] || opts+=(--no-share)
vfk_test_guest "$logs" "" "${opts[@]}"
vfk_test_qemu_quiet "$logs"
# Requests from the server are DMA_READ (0xb) and DMA_WRITE (0xc).  The
# 1 MiB copy alone takes 16 of each through the 64 KiB bounce buffer when
# guest RAM has no fd; with the memfd, only the copy into BAR2 (which QEMU
# DMA-maps without an fd) needs a message.
reqs=$(grep -cE '^vfio_user_recv_request +command 0x(b|c)$' "$logs/qemu.trace" 2>/dev/null)
reqs=${reqs:-0}
echo "# the server sent $reqs DMA_READ/DMA_WRITE requests to QEMU"
if [[ $mode == noshare ]]; then
    check "the server reached guest RAM through DMA_READ/DMA_WRITE messages" \
        test "$reqs" -ge 32
else
    check "the server reached guest RAM through the DMA_MAP memfd, not messages" \
        test "$reqs" -ge 1 -a "$reqs" -lt 32
fi
check "the server logged the guest's FLR" grep -q 'device reset (FLR)' "$work/server.log"
# QEMU maps what the server offers: BAR2 whole, MSI-X table included (the
# default MSIX_MAPPABLE layout: QEMU emulates the table over the mapping,
# and the guest's MSI-X checks above pass through it), and BAR4's page.
grep -a '^vfio_region_mmap ' "$logs/qemu.trace" 2>/dev/null | sort -u | diag
check "QEMU mmapped BAR2 whole from the server (MSIX_MAPPABLE)" \
    grep -qE '^vfio_region_mmap .*BAR 2 mmaps\[[0-9]+\] \[0x0 - 0xffff\]' "$logs/qemu.trace"
check "QEMU mmapped BAR4 from the server" \
    grep -qE '^vfio_region_mmap .*BAR 4 mmaps\[[0-9]+\] \[0x0 - ' "$logs/qemu.trace"

# What the guest wrote through those mappings (and the device's own DMA
# into BAR2) is in the server's memory: read its BAR2 memfd from outside.
shm=""
for f in /proc/"$srv_pid"/fd/*; do
    [[ $(readlink "$f" 2>/dev/null) == /memfd:dma-test-bar2* ]] && { shm=$f; break; }
done
at() { # OFFSET BYTES: hex bytes of the server's BAR2 memory
    [[ -n $shm ]] && dd if="$shm" bs=1 skip=$(($1)) count="$2" 2>/dev/null |
        od -An -tx1 | tr -s ' \n' '  ' | sed 's/^ //; s/ $//'
}
check "server memory holds the guest's BAR2 page 0 write" \
    test "$(at 0 8)" = "08 07 06 05 04 03 02 01"
check "server memory holds the guest's BAR2 page 3 write" \
    test "$(at 0x3000 4)" = "0d f0 fe ca"
check "server memory holds the device's DMA into BAR2" \
    test "$(at 0x100 8)" = "5a 5b 58 59 5e 5f 5c 5d"

# --------------------------------------------------------------- shutdown
vfk_test_stop_server
# Requests the server failed: not fatal by themselves for every command,
# but each is a disagreement with QEMU worth seeing.
if grep -aq ') failed: ' "$work/server.log"; then
    nok "server failed none of QEMU's requests"
    grep -a ') failed: ' "$work/server.log" | sed -E 's/^\[[0-9.]*\] //; s/ \(id [0-9]+\)//' | sort | uniq -c |
        sort -rn | head -n 20 | diag
else
    ok "server failed none of QEMU's requests"
fi
