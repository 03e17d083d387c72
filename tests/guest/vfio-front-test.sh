#!/bin/bash
# Linux's vfio-pci in front of vfiokit's own devices: the host serves
# `vfiokit serve nvme` and `vfiokit serve dma-test`, QEMU gives both to a
# guest with -device intel-iommu through vfio-user-pci, and in the guest
# (vfio-front-guest.sh) the guest's vfio-pci takes them: `vfiokit info BDF`,
# the NVMe driver of devices/nvme doing verified I/O with MSI-X through the
# kernel transport, dma-test's engine with MSI-X, and `vfiokit serve
# passthrough` re-exporting the NVMe controller to a client doing I/O.
# Every DMA crosses two IOMMUs' worth of translation: the guest's type1
# container, then QEMU's vIOMMU mapping the IOVAs onto guest RAM with
# DMA_MAP messages to the host servers.
#
# Usage: vfio-front-test.sh [--msix LAYOUT]
#   --msix LAYOUT   dma-test's MSI-X layout (`vfiokit serve --msix`): with
#                   'relocated' its table and PBA sit in BAR1, and the
#                   guest's vfio-pci and MSI-X delivery go through it
#
# Environment: VFIOKIT (required), VFK_GUEST_DIR (see lib.sh),
# VFK_GUEST_KEEP=1 keeps the work directory, VFK_GUEST_TIMEOUT (default
# 400).  Prints TAP.  Without root the test is skipped.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

msix=()
while (($#)); do
    case $1 in
        --msix) msix=(--msix "${2:?}"); shift ;;
        *) echo "Bail out! unknown option $1"; exit 2 ;;
    esac
    shift
done

# shellcheck source=lib.sh
source "$here/lib.sh"
vfk_test_begin guest-vfio-front vfio-front-guest.sh
vfk_test_static_programs
# The BARs the guest must see on dma-test: relocation adds BAR1.
if [[ ${msix[1]:-} == relocated ]]; then echo "DT_BARS='0 1 2 4 5'"; else echo "DT_BARS='0 2 4 5'"; fi \
    >"$share/front-params"

# The dma-test server is the second one: vfk_test_serve keeps one pid.
"$VFIOKIT" serve dma-test --socket "$work/dt.sock" "${msix[@]}" -v 2>"$work/dt.log" &
dt_pid=$!
vfk_test_serve "$work/nvme.sock" nvme --size 64M -v
for ((i = 0; i < 100; i++)); do [[ -S $work/dt.sock ]] && break; sleep 0.05; done
check "vfiokit serve dma-test listens" test -S "$work/dt.sock"

vfk_test_guest "$logs" "" --share "$share" --intel-iommu --root-port --smp 2 \
    --vfio-user "$work/nvme.sock" --vfio-user "$work/dt.sock" \
    --timeout "${VFK_GUEST_TIMEOUT:-400}"
vfk_test_qemu_quiet "$logs"
vfk_test_stop_server
kill -TERM "$dt_pid" 2>/dev/null
wait "$dt_pid"
check "dma-test server exits 0 on SIGTERM" test $? -eq 0
if grep -qiE 'warn|error' "$work/dt.log"; then
    nok "dma-test server logged no warnings or errors"
    grep -iE 'warn|error' "$work/dt.log" | head -n 10 | diag
else
    ok "dma-test server logged no warnings or errors"
fi
