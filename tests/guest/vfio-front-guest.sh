# shellcheck shell=sh
# Guest half of vfio-front-test.sh: vfiokit's nvme (1234:df04) and
# dma-test (1234:df01), given to this guest by QEMU's vfio-user-pci behind
# intel-iommu, are taken over by the guest's vfio-pci and driven through
# vfiokit's kernel transport, then the NVMe controller is re-exported by
# `vfiokit serve passthrough`.
# shellcheck source=guest-lib.sh
. /mnt/guest-lib.sh
vfk_kernel_test_binaries

DT_BARS='0 2 4 5'
. /mnt/front-params
nvme=$($P find 1234:df04 | head -n1)
dt=$($P find 1234:df01 | head -n1)
note "vfiokit nvme at $nvme, dma-test at $dt"
[ -n "$nvme" ] && ok "the guest sees vfiokit's nvme" || nok "the guest sees vfiokit's nvme"
[ -n "$dt" ] && ok "the guest sees vfiokit's dma-test" || nok "the guest sees vfiokit's dma-test"
n=$(ls /sys/kernel/iommu_groups 2>/dev/null | wc -l)
if [ "$n" -gt 0 ]; then ok "the IOMMU made $n groups"; else nok "the IOMMU made groups"; fi

# The NVMe driver first: the guest's nvme driver took the controller at
# boot; the client moves it to vfio-pci (VFK_PCI_OPEN_BIND).
[ -n "$nvme" ] && run $T nvme-io "$nvme"
[ -n "$dt" ] && run $T dmatest "$dt"

if [ -n "$nvme" ]; then
	info_check "$nvme" "vfiokit nvme" 0
	if printf '%s\n' "$info_out" | grep -q 'msix-mappable'; then ok "vfio-pci offers vfiokit nvme's MSI-X BAR mappable"; else nok "vfio-pci offers vfiokit nvme's MSI-X BAR mappable"; fi
	if printf '%s\n' "$info_out" | grep -q 'Device 1234:df04'; then ok "vfiokit info reads the nvme's ids through vfio-pci"; else nok "vfiokit info reads the nvme's ids through vfio-pci"; fi
fi
# shellcheck disable=SC2086
[ -n "$dt" ] && info_check "$dt" "vfiokit dma-test" $DT_BARS
if [ -n "$dt" ] && [ "$DT_BARS" = "0 1 2 4 5" ]; then
	if printf '%s\n' "$info_out" | grep -q 'Vector table: BAR=1 offset=00000000'; then
		ok "vfio-pci shows dma-test's relocated MSI-X table in BAR1"
	else
		nok "vfio-pci shows dma-test's relocated MSI-X table in BAR1"
	fi
fi

# vfiokit serve passthrough re-exports the vfio-pci-bound controller.
if [ -n "$nvme" ]; then
	passthrough_check "$nvme" "vfiokit's nvme" nvme-io-socket
fi
vfk_done
