#!/bin/bash
# Kernel VFIO test: boot the Debian guest under QEMU (TCG, q35,
# -device intel-iommu,intremap=on,caching-mode=on) with QEMU's edu, nvme
# and e1000e, and run vfio-guest.sh in it (see there for what it checks).
# The guest programs are built here with gcc -static: vfiokit itself (from
# a static build directory next to the one under test) and
# vfio-client-test (the shared client test body, the edu test, and the
# passthrough client, with the NVMe driver when devices/nvme has it).
#
# Environment: VFIOKIT (required) the vfiokit binary of the build under
# test; VFK_GUEST_DIR (see lib.sh); VFK_GUEST_KEEP=1 keeps the work
# directory; VFK_GUEST_TIMEOUT (default 400) seconds before QEMU is killed.
# Prints TAP.  Without root the test is skipped.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
diag() { sed 's/^/# /'; }
tail_diag() { [[ -s $1 ]] && { echo "# --- last $2 lines of $1"; tail -n "$2" "$1" | tr -d '\r' | diag; }; }

if [[ $(id -u) -ne 0 ]]; then
    echo "1..0 # SKIP the guest test needs root (chroot, mount namespaces)"
    exit 0
fi
if [[ -z ${VFIOKIT:-} || ! -x ${VFIOKIT:-} ]]; then
    echo "Bail out! VFIOKIT must name the vfiokit binary"
    exit 1
fi

work=$(mktemp -d /tmp/vfk-guest-vfio.XXXXXX)
share=$work/share logs=$work/logs
mkdir -p "$share" "$logs"
finish() {
    echo "1..$n"
    if ((failed)) || [[ ${VFK_GUEST_KEEP:-0} == 1 ]]; then
        echo "# logs kept in $work"
    else
        rm -rf "$work"
    fi
    exit $((failed ? 1 : 0))
}
trap finish EXIT
trap 'exit 130' INT TERM
echo "# work directory $work"

t0=$SECONDS
if "$here/setup.sh" >"$work/setup.log" 2>&1; then
    ok "guest environment ready (setup.sh)"
else
    nok "guest environment ready (setup.sh)"
    tail_diag "$work/setup.log" 20
    exit 1
fi

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
nvd=()
if [[ -f $repo/devices/nvme/nvme_drv.c && -f $repo/devices/nvme/nvme_drv.h ]]; then
    nvd=(-DHAVE_NVD -I"$repo/devices/nvme" "$repo/devices/nvme/nvme_drv.c")
fi
if gcc -static -O2 -Wall -Wextra -I"$repo/include" -I"$repo" -I"$repo/tests/kernel" \
        -o "$share/vfio-client-test" "$here/vfio-client-test.c" "$repo/tests/kernel/client_body.c" \
        "${nvd[@]}" "$static/libvfiokit.a" -ljson-c -luring -lpthread >"$work/gcc.log" 2>&1 &&
   gcc -static -O2 -Wall -Wextra -o "$share/pci-probe" "$here/pci-probe.c" >>"$work/gcc.log" 2>&1; then
    ok "vfio-client-test and pci-probe build statically${nvd:+ (with the NVMe driver)}"
else
    nok "vfio-client-test and pci-probe build statically"
    tail_diag "$work/gcc.log" 30
    exit 1
fi
cp "$here/vfio-guest.sh" "$share/guest-test.sh"
truncate -s 64M "$share/nvme.img"

# ------------------------------------------------------------------ guest
t1=$SECONDS
"$here/run-guest.sh" --share "$share" --intel-iommu --quiet --log-dir "$logs" \
    --timeout "${VFK_GUEST_TIMEOUT:-400}" \
    --extra "-device edu -drive if=none,id=nvm,format=raw,file=$share/nvme.img -device nvme,serial=vfkpt0001,drive=nvm -device e1000e" \
    >"$work/run-guest.out" 2>&1
guest_rc=$?
echo "# guest boot took $((SECONDS - t1)) s (preparation $((t1 - t0)) s)"

done_seen=0
while IFS= read -r line; do
    case $line in
        "VFKTAP ok - "*) ok "${line#VFKTAP ok - }" ;;
        "VFKTAP not ok - "*) nok "${line#VFKTAP not ok - }" ;;
        "VFKTAP # "*) echo "# ${line#VFKTAP # }" ;;
        "VFKTAP done") done_seen=1 ;;
    esac
done < <(grep -a -o 'VFKTAP .*' "$logs/serial.log" 2>/dev/null | tr -d '\r')

if ((guest_rc == 0)); then
    ok "guest test passed (VFK-GUEST-RESULT: PASS)"
else
    nok "guest test passed (VFK-GUEST-RESULT: PASS)"
    diag <"$work/run-guest.out"
    tail_diag "$logs/serial.log" 40
fi
if ((done_seen)); then ok "guest test ran to its end"; else nok "guest test ran to its end"; fi
# QEMU's complaints, if any, for the record (e1000e without a network
# backend warns about it).
[[ -s $logs/qemu.stderr ]] && sort "$logs/qemu.stderr" | uniq -c | head -n 10 | diag
echo "# total $((SECONDS - t0)) s"
