#!/bin/bash
# NVMe guest test: boot a Linux guest under QEMU 11.1 (TCG) with a
# vfio-user-pci device connected to `$VFIOKIT serve nvme --backing FILE`,
# run nvme-guest.sh in it (the unmodified Linux nvme driver uses the device
# as a disk), and report every assertion as TAP on stdout.
#
# Usage: nvme-qemu-test.sh [--compare] [--bench-count N] [--poll-us N]
#                          [--trap-doorbells] [--smp N]
#                          [--iommu strict|lazy] [--no-share]
#   --compare         afterwards, boot the same guest with QEMU's built-in
#                     -device nvme on a file of the same size and run the
#                     same timed workload; print both and their ratio
#   --bench-count N   I/Os of each QD1 4 KiB random workload (default 1000)
#   --poll-us N, --trap-doorbells, --page-size N
#                     passed to `vfiokit serve nvme` (--page-size 65536 lays
#                     BAR0 out for a 64K-page host)
#   --smp N           guest CPUs (default 1)
#   --iommu MODE      the guest behind -device intel-iommu, with Linux's
#                     iommu.strict=1 (strict: every I/O maps and unmaps its
#                     buffers, one DMA_MAP/DMA_UNMAP each) or iommu.strict=0
#                     (lazy: batched invalidations); --compare's QEMU nvme
#                     sits behind the same IOMMU
#   --no-share        guest RAM the server cannot map (memory-backend-ram):
#                     every DMA goes through DMA_READ/DMA_WRITE messages
#
# Host-side assertions around the guest's: the environment is ready, the
# guest tool builds, the server listens, the guest test passes and runs to
# its end, QEMU reports no vfio-user errors, the server logs the guest's
# shutdown notification (a clean power-off) and no warnings or errors,
# exits 0 on SIGTERM, and -- after the guest powered off -- the pattern the
# guest wrote last is in the backing file at the right offset.
#
# Environment: VFIOKIT (required), VFK_GUEST_DIR (see lib.sh),
# VFK_GUEST_KEEP=1 keeps the work directory, VFK_GUEST_TIMEOUT (default
# 300).  Without root the test is skipped (QEMU runs in a chroot).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

compare=0 bench_count=1000 smp=1 srv_opts=() trapped=0 guest_opts=() iommu=0
while (($#)); do
    case $1 in
        --compare) compare=1 ;;
        --bench-count) bench_count=${2:?}; shift ;;
        --poll-us) srv_opts+=(--poll-us "${2:?}"); shift ;;
        --trap-doorbells) srv_opts+=(--trap-doorbells); trapped=1 ;;
        --page-size) srv_opts+=(--page-size "${2:?}"); ((${2} > 4096)) && trapped=1; shift ;;
        --smp) smp=${2:?}; shift ;;
        --iommu)
            case ${2:-} in
                strict) guest_opts+=(--intel-iommu --append iommu.strict=1); iommu=1 ;;
                lazy) guest_opts+=(--intel-iommu --append iommu.strict=0); iommu=1 ;;
                *) echo "Bail out! --iommu takes strict or lazy"; exit 2 ;;
            esac
            shift ;;
        --no-share) guest_opts+=(--no-share) ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "Bail out! unknown option $1"; exit 2 ;;
    esac
    shift
done

# shellcheck source=lib.sh
source "$here/lib.sh"
# The work directory holds the backing file: it must be on a file system
# with O_DIRECT (not tmpfs), and under /tmp, which run-guest.sh shows to
# the chroot (for --compare, QEMU opens its own drive file there).
vfk_test_begin nvme nvme-guest.sh
sock=$work/nvme.sock

# Layout: the random workloads use the first 64 MiB, the patterns live
# past it, the sequential write goes to 160-192 MiB.
SIZE=$((256 << 20))
OFF1=$((80 << 20)) LEN1=$((1 << 20)) SEED1=$((RANDOM + 1))
OFF2=$((100 << 20)) LEN2=$((2 << 20)) SEED2=$((RANDOM + 70000))
OFF3=$(((128 << 20) + 4096))

vfk_test_gcc nvme-io -I"$repo/devices/nvme" "$here/nvme-io.c"

params() { # MODE VENDOR DEVICE
    cat >"$share/nvme-params" <<EOF
MODE=$1
NVME_VENDOR=$2
NVME_DEVICE=$3
SIZE=$SIZE
OFF1=$OFF1
LEN1=$LEN1
SEED1=$SEED1
OFF2=$OFF2
LEN2=$LEN2
SEED2=$SEED2
OFF3=$OFF3
BENCH_COUNT=$bench_count
BENCH_SPAN=$((64 << 20))
SEQ_MB=32
SEQ_SEEK_MB=160
EOF
}

# ---------------------------------------------------------------- vfiokit
truncate -s "$SIZE" "$work/backing.img"
params vfiokit 1234 df04
vfk_test_serve "$sock" nvme --backing "$work/backing.img" "${srv_opts[@]}" -v
vfk_test_guest "$logs" "" --share "$share" --vfio-user "$sock" --root-port --smp "$smp" \
    "${guest_opts[@]}" --timeout "${VFK_GUEST_TIMEOUT:-300}" --trace 'vfio_user_*' \
    --trace vfio_region_mmap
vfk_test_qemu_quiet "$logs"
# The register page is never mapped; the doorbell page is, unless the
# doorbells are trapped (the MSI-X pages are mapped with MSIX_MAPPABLE).
check "QEMU mapped no register of BAR0" \
    test -z "$(grep -E '^vfio_region_mmap .*BAR 0 .*\[0x0 - ' "$logs/qemu.trace")"
if ((trapped)); then
    check "QEMU mapped no doorbell of BAR0 (doorbells trapped)" \
        test -z "$(grep -E '^vfio_region_mmap .*BAR 0 .*\[0x1000 - ' "$logs/qemu.trace")"
else
    check "QEMU mapped the doorbell page from the server" \
        grep -qE '^vfio_region_mmap .*BAR 0 mmaps\[[0-9]+\] \[0x1000 - 0x[0-9a-f]+\]' "$logs/qemu.trace"
fi
check "the server saw the guest's shutdown notification (clean power-off)" \
    grep -q 'nvme: shutdown complete' "$work/server.log"
check "the server saw the guest's function-level reset" \
    grep -q 'nvme: controller reset by FLR' "$work/server.log"
vfk_test_stop_server
# What the IOMMU costs in messages: QEMU sends one DMA_MAP per guest IOMMU
# mapping and one DMA_UNMAP per unmap (its trace has a line for each).
maps=$(grep -c '^vfio_user_dma_map ' "$logs/qemu.trace")
unmaps=$(grep -c '^vfio_user_dma_unmap ' "$logs/qemu.trace")
ios=$(grep -a '^VFKNUM .* messages ' "$logs/serial.log" | tr -d '\r' | awk '{print $6}')
echo "# DMA_MAP $maps, DMA_UNMAP $unmaps messages for ${ios:-?} I/O commands (whole boot)"
if ((iommu)); then
    check "the guest IOMMU was in the DMA path (a DMA_MAP per I/O or more)" \
        test "$maps" -ge "${ios:-1}"
fi
check "after power-off, the backing file holds the guest's last pattern at offset $OFF2" \
    "$share/nvme-io" verify "$work/backing.img" "$OFF2" "$LEN2" "$SEED2"
check "and the first pattern at offset $OFF1" \
    "$share/nvme-io" verify "$work/backing.img" "$OFF1" "$LEN1" "$SEED1"
check "the backing file kept its size" test "$(stat -c %s "$work/backing.img")" -eq "$SIZE"
grep -a '^VFKNUM' "$logs/serial.log" | tr -d '\r' | sed 's/^/# /'

# -------------------------------------------------- QEMU's own NVMe device
if ((compare)); then
    truncate -s "$SIZE" "$work/qemu.img"
    params qemu 1b36 0010
    vfk_test_guest "$work/logs-qemu" "qemu nvme: " --share "$share" --smp "$smp" "${guest_opts[@]}" \
        --timeout "${VFK_GUEST_TIMEOUT:-300}" \
        --extra "-drive file=$work/qemu.img,if=none,id=nvm,format=raw,cache=none,aio=io_uring -device nvme,serial=qemu0001,drive=nvm"
    grep -a '^VFKNUM' "$work/logs-qemu/serial.log" | tr -d '\r' | sed 's/^/# /'
    # Ratios: IOPS (vfiokit / qemu) for the random workloads, time
    # (qemu / vfiokit) for the sequential ones: > 1 means vfiokit is faster.
    awk '
        FNR == 1 { f++ }
        /^VFKNUM/ {
            gsub(/\r/, "")
            if ($3 == "bench") { key = $4; iops[f, key] = $8; p50[f, key] = $9 }
            if ($3 == "seqread" || $3 == "seqwrite") { secs[f, $3] = $6 - $5; mb = $4 }
        }
        END {
            for (k in iops) { split(k, a, SUBSEP); keys[a[2]] = 1 }
            for (key in keys)
                if (iops[2, key] > 0)
                    printf "# ratio QD1 4K random %s: vfiokit %d IOPS (p50 %d us), qemu nvme %d IOPS (p50 %d us): %.2fx\n",
                        key, iops[1, key], p50[1, key], iops[2, key], p50[2, key], iops[1, key] / iops[2, key]
            for (s in secs) { split(s, a, SUBSEP); seqs[a[2]] = 1 }
            for (s in seqs)
                if (secs[1, s] > 0 && secs[2, s] > 0)
                    printf "# ratio %s %d MiB: vfiokit %.2f s, qemu nvme %.2f s: %.2fx\n",
                        s, mb, secs[1, s], secs[2, s], secs[2, s] / secs[1, s]
        }' <(grep -a '^VFKNUM' "$logs/serial.log") <(grep -a '^VFKNUM' "$work/logs-qemu/serial.log")
fi
