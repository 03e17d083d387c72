# shellcheck shell=sh
# Guest half of the kernel VFIO test (host half: vfio-kernel-test.sh, which
# copies this file into the 9p share as guest-test.sh).  The guest runs
# under -device intel-iommu with QEMU's edu, nvme and e1000e; vfiokit's
# client opens each through the kernel's VFIO (binding it to vfio-pci) and
# runs the client test body that vfio-user servers pass, the edu device's
# DMA engine and MSI prove DMA and interrupts end to end, the same body runs
# over vfio-user against `vfiokit serve dma-test`, and `vfiokit serve
# passthrough` re-exports the nvme controller over a socket for a client to
# read its registers and Identify data.
#
# Output protocol and helpers: guest-lib.sh (the test binaries print
# their own VFKTAP lines).
# shellcheck source=guest-lib.sh
. /mnt/guest-lib.sh
vfk_kernel_test_binaries

if [ -c /dev/vfio/vfio ]; then ok "/dev/vfio/vfio exists (type1 container)"; else nok "/dev/vfio/vfio exists"; fi
if [ -e /dev/iommu ]; then note "/dev/iommu exists"; else note "no /dev/iommu: this kernel has no IOMMUFD, type1 only"; fi
n=$(ls /sys/kernel/iommu_groups 2>/dev/null | wc -l)
if [ "$n" -gt 0 ]; then ok "the IOMMU made $n groups"; else nok "the IOMMU made groups"; fi

edu=$($P find 1234:11e8 | head -n1)
nvme=$($P find 1b36:0010 | head -n1)
e1k=$($P find 8086:10d3 | head -n1)
note "edu at $edu, nvme at $nvme, e1000e at $e1k"
for d in "$edu" "$nvme" "$e1k"; do
	[ -n "$d" ] || nok "a device is missing"
done

# ------------------------------------------------- kernel type1, the body
note "uptime $(cut -d' ' -f1 /proc/uptime) s"
[ -n "$edu" ] && run $T body "$edu" 1234:11e8
[ -n "$nvme" ] && run $T body "$nvme" 1b36:0010
[ -n "$e1k" ] && run $T body "$e1k" 8086:10d3
if [ -n "$nvme" ]; then
	drv=$(basename "$(readlink /sys/bus/pci/devices/$nvme/driver)")
	if [ "$drv" = vfio-pci ]; then ok "nvme moved from its guest driver to vfio-pci"; else nok "nvme bound to vfio-pci (is $drv)"; fi
fi

# vfiokit info BDF, the README's command, on kernel-bound devices: vfio-pci
# refuses the VGA region of these non-VGA functions (EINVAL), which must
# show as absent, not fail the command.
if [ -n "$e1k" ]; then
	info_check "$e1k" e1000e 0 1 2 3
	if printf '%s\n' "$info_out" | grep -q 'msix-mappable'; then ok "vfiokit info shows e1000e's MSIX_MAPPABLE BAR"; else nok "vfiokit info shows e1000e's MSIX_MAPPABLE BAR"; fi
fi
[ -n "$nvme" ] && info_check "$nvme" "QEMU nvme" 0

# ----------------------------------------------- edu: DMA and MSI for real
note "uptime $(cut -d' ' -f1 /proc/uptime) s"
[ -n "$edu" ] && run $T edu "$edu"

# ------------------------------------------------------ the body, vfio-user
note "uptime $(cut -d' ' -f1 /proc/uptime) s"
$V serve dma-test --socket /tmp/dt.sock -q 2>/tmp/dt.log &
dt=$!
if wait_sock /tmp/dt.sock; then
	ok "vfiokit serve dma-test listens in the guest"
	run $T body-socket /tmp/dt.sock 1234:df01
else
	nok "vfiokit serve dma-test listens in the guest"
fi
kill -TERM $dt 2>/dev/null
wait $dt
rc=$?
if [ $rc -eq 0 ]; then ok "dma-test server exits 0"; else nok "dma-test server exits 0 (status $rc)"; fi

# ------------------------------------------------- passthrough of the nvme
note "uptime $(cut -d' ' -f1 /proc/uptime) s"
if [ -n "$nvme" ]; then
	passthrough_check "$nvme" "$nvme" nvme-socket --bind
fi

note "uptime $(cut -d' ' -f1 /proc/uptime) s"
vfk_done
