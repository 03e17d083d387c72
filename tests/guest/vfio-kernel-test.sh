#!/bin/bash
# Kernel VFIO test: boot the Debian guest under QEMU (TCG, q35,
# -device intel-iommu,intremap=on,caching-mode=on) with QEMU's edu, nvme
# and e1000e, and run vfio-guest.sh in it (see there for what it checks).
# The guest programs are built here with gcc -static: vfiokit itself (from
# a static build directory next to the one under test) and
# vfio-client-test (the shared client test body, the edu test, and the
# passthrough client with the NVMe driver of devices/nvme).
#
# Environment: VFIOKIT (required) the vfiokit binary of the build under
# test; VFK_GUEST_DIR (see lib.sh); VFK_GUEST_KEEP=1 keeps the work
# directory; VFK_GUEST_TIMEOUT (default 400) seconds before QEMU is killed.
# Prints TAP.  Without root the test is skipped.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

# shellcheck source=lib.sh
source "$here/lib.sh"
vfk_test_begin guest-vfio vfio-guest.sh

# ------------------------------------------------------ static programs
static=$(dirname "$(dirname "$VFIOKIT")")/guest-static
if [[ ! -f $static/build.ninja ]]; then
    meson setup "$static" "$repo" -Ddefault_library=static -Dprefer_static=true \
        -Dtests=disabled -Dguest_tests=false -Dc_link_args=-static \
        >"$work/meson-static.log" 2>&1 || { rm -rf "$static"; tail_diag "$work/meson-static.log" 20; }
fi
if ninja -C "$static" tools/vfiokit >"$work/ninja-static.log" 2>&1 &&
   cp "$static/tools/vfiokit" "$share/vfiokit"; then
    ok "vfiokit builds statically"
else
    nok "vfiokit builds statically"
    tail_diag "$work/ninja-static.log" 30
    exit 1
fi
if gcc -static -O2 -Wall -Wextra -I"$repo/include" -I"$repo" -I"$repo/tests/kernel" -I"$repo/devices/nvme" \
        -o "$share/vfio-client-test" "$here/vfio-client-test.c" "$repo/tests/kernel/client_body.c" \
        "$repo/devices/nvme/nvme_drv.c" "$static/libvfiokit.a" -ljson-c -luring -lpthread >"$work/gcc.log" 2>&1 &&
   gcc -static -O2 -Wall -Wextra -o "$share/pci-probe" "$here/pci-probe.c" >>"$work/gcc.log" 2>&1; then
    ok "vfio-client-test and pci-probe build statically"
else
    nok "vfio-client-test and pci-probe build statically"
    tail_diag "$work/gcc.log" 30
    exit 1
fi
truncate -s 64M "$share/nvme.img"

# ------------------------------------------------------------------ guest
vfk_test_guest "$logs" "" --share "$share" --intel-iommu --timeout "${VFK_GUEST_TIMEOUT:-400}" \
    --extra "-device edu -drive if=none,id=nvm,format=raw,file=$share/nvme.img -device nvme,serial=vfkpt0001,drive=nvm -device e1000e"
# QEMU's complaints, if any, for the record (e1000e without a network
# backend warns about it).
if [[ -s $logs/qemu.stderr ]]; then sort "$logs/qemu.stderr" | uniq -c | head -n 10 | diag; fi
