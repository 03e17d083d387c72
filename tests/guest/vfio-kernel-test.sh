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

# shellcheck source=lib.sh
source "$here/lib.sh"
vfk_test_begin guest-vfio vfio-guest.sh

vfk_test_static_programs
truncate -s 64M "$share/nvme.img"

# ------------------------------------------------------------------ guest
vfk_test_guest "$logs" "" --share "$share" --intel-iommu --timeout "${VFK_GUEST_TIMEOUT:-400}" \
    --extra "-device edu -drive if=none,id=nvm,format=raw,file=$share/nvme.img -device nvme,serial=vfkpt0001,drive=nvm -device e1000e"
# QEMU's complaints, if any, for the record (e1000e without a network
# backend warns about it).
if [[ -s $logs/qemu.stderr ]]; then sort "$logs/qemu.stderr" | uniq -c | head -n 10 | diag; fi
