#!/bin/bash
# NVMe guest test: boot a Linux guest under QEMU 11.1 (TCG) with a
# vfio-user-pci device connected to `$VFIOKIT serve nvme --backing FILE`,
# run nvme-guest.sh in it (the unmodified Linux nvme driver uses the device
# as a disk), and report every assertion as TAP on stdout.
#
# Usage: nvme-qemu-test.sh [--compare] [--bench-count N] [--poll-us N]
#                          [--trap-doorbells] [--smp N]
#   --compare         afterwards, boot the same guest with QEMU's built-in
#                     -device nvme on a file of the same size and run the
#                     same timed workload; print both and their ratio
#   --bench-count N   I/Os of each QD1 4 KiB random workload (default 1000)
#   --poll-us N, --trap-doorbells   passed to `vfiokit serve nvme`
#   --smp N           guest CPUs (default 1)
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

compare=0 bench_count=1000 smp=1 srv_opts=() trapped=0
while (($#)); do
    case $1 in
        --compare) compare=1 ;;
        --bench-count) bench_count=${2:?}; shift ;;
        --poll-us) srv_opts+=(--poll-us "${2:?}"); shift ;;
        --trap-doorbells) srv_opts+=(--trap-doorbells); trapped=1 ;;
        --smp) smp=${2:?}; shift ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "Bail out! unknown option $1"; exit 2 ;;
    esac
    shift
done

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else nok "$what"; fi; }
diag() { sed 's/^/# /'; }
tail_diag() { [[ -s $1 ]] || return 0; echo "# --- last $2 lines of $1"; tail -n "$2" "$1" | tr -d '\r' | diag; }

if [[ $(id -u) -ne 0 ]]; then
    echo "1..0 # SKIP the guest test needs root (chroot, mount namespaces)"
    exit 0
fi
if [[ -z ${VFIOKIT:-} || ! -x ${VFIOKIT:-} ]]; then
    echo "Bail out! VFIOKIT must name the vfiokit binary"
    exit 1
fi

# The work directory holds the backing file: it must be on a file system
# with O_DIRECT (not tmpfs), and under /tmp, which run-guest.sh shows to
# the chroot (for --compare, QEMU opens its own drive file there).
work=$(mktemp -d "/tmp/vfk-nvme.XXXXXX")
share=$work/share sock=$work/nvme.sock
mkdir -p "$share"
srv_pid=""
finish() {
    if [[ -n $srv_pid ]]; then kill -TERM "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; fi
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

# Layout: the random workloads use the first 64 MiB, the patterns live
# past it, the sequential write goes to 160-192 MiB.
SIZE=$((256 << 20))
OFF1=$((80 << 20)) LEN1=$((1 << 20)) SEED1=$((RANDOM + 1))
OFF2=$((100 << 20)) LEN2=$((2 << 20)) SEED2=$((RANDOM + 70000))
OFF3=$(((128 << 20) + 4096))

t0=$SECONDS
if "$here/setup.sh" >"$work/setup.log" 2>&1; then
    ok "guest environment ready (setup.sh)"
else
    nok "guest environment ready (setup.sh)"
    tail_diag "$work/setup.log" 20
    echo "Bail out! no guest environment"
    exit 1
fi
if gcc -static -O2 -Wall -Wextra -I"$repo/devices/nvme" -o "$share/nvme-io" "$here/nvme-io.c" \
        >"$work/gcc.log" 2>&1; then
    ok "nvme-io builds statically"
else
    nok "nvme-io builds statically"
    tail_diag "$work/gcc.log" 20
    echo "Bail out! no nvme-io"
    exit 1
fi
cp "$here/nvme-guest.sh" "$share/guest-test.sh"

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

# Relay the guest's VFKTAP lines as TAP; collect VFKNUM lines.
relay() { # SERIAL_LOG PREFIX
    local line done_seen=0
    while IFS= read -r line; do
        case $line in
            "VFKTAP ok - "*) ok "$2${line#VFKTAP ok - }" ;;
            "VFKTAP not ok - "*) nok "$2${line#VFKTAP not ok - }" ;;
            "VFKTAP # "*) echo "# ${line#VFKTAP # }" ;;
            "VFKTAP done") done_seen=1 ;;
        esac
    done < <(grep -a -o 'VFKTAP .*' "$1" 2>/dev/null | tr -d '\r')
    check "${2}guest test ran to its end" test "$done_seen" -eq 1
}

# ---------------------------------------------------------------- vfiokit
truncate -s "$SIZE" "$work/backing.img"
params vfiokit 1234 df04
"$VFIOKIT" serve nvme --socket "$sock" --backing "$work/backing.img" "${srv_opts[@]}" -v \
    2>"$work/server.log" &
srv_pid=$!
for ((i = 0; i < 200; i++)); do
    [[ -S $sock ]] && break
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.05
done
if [[ -S $sock ]]; then
    ok "vfiokit serve nvme listens"
else
    nok "vfiokit serve nvme listens"
    tail_diag "$work/server.log" 20
    echo "Bail out! no server"
    exit 1
fi
mkdir -p "$work/logs"
t1=$SECONDS
"$here/run-guest.sh" --share "$share" --vfio-user "$sock" --root-port --quiet --smp "$smp" \
    --log-dir "$work/logs" --timeout "${VFK_GUEST_TIMEOUT:-300}" \
    --trace 'vfio_user_*' --trace vfio_region_mmap >"$work/run-guest.out" 2>&1
guest_rc=$?
echo "# guest run took $((SECONDS - t1)) s (preparation $((t1 - t0)) s)"
relay "$work/logs/serial.log" ""
if ((guest_rc == 0)); then
    ok "guest test passed (VFK-GUEST-RESULT: PASS)"
else
    nok "guest test passed (VFK-GUEST-RESULT: PASS)"
    diag <"$work/run-guest.out"
    tail_diag "$work/logs/serial.log" 60
fi
if [[ ! -s $work/logs/qemu.stderr ]]; then
    ok "QEMU reported no vfio-user errors"
else
    nok "QEMU reported no vfio-user errors"
    sort "$work/logs/qemu.stderr" | uniq -c | sort -rn | head -n 20 | diag
fi
if ((trapped)); then
    check "QEMU mapped nothing of BAR0 (doorbells trapped)" \
        test -z "$(grep -E '^vfio_region_mmap .*BAR 0 ' "$work/logs/qemu.trace")"
else
    check "QEMU mapped the doorbell page from the server" \
        grep -qE '^vfio_region_mmap .*BAR 0 mmaps\[[0-9]+\] \[0x1000 - 0x1fff\]' "$work/logs/qemu.trace"
fi
check "the server saw the guest's shutdown notification (clean power-off)" \
    grep -q 'nvme: shutdown complete' "$work/server.log"
check "the server saw the guest's function-level reset" \
    grep -q 'nvme: controller reset by FLR' "$work/server.log"
kill -TERM "$srv_pid" 2>/dev/null
wait "$srv_pid"
srv_rc=$?
srv_pid=""
check "server exits 0 on SIGTERM (status $srv_rc)" test "$srv_rc" -eq 0
bad=$(grep -aE '\] (warning|error): |ERROR: |runtime error' "$work/server.log")
if [[ -z $bad ]]; then
    ok "server logged no warnings or errors"
else
    nok "server logged no warnings or errors"
    printf '%s\n' "$bad" | head -n 20 | diag
fi
check "after power-off, the backing file holds the guest's last pattern at offset $OFF2" \
    "$share/nvme-io" verify "$work/backing.img" "$OFF2" "$LEN2" "$SEED2"
check "and the first pattern at offset $OFF1" \
    "$share/nvme-io" verify "$work/backing.img" "$OFF1" "$LEN1" "$SEED1"
check "the backing file kept its size" test "$(stat -c %s "$work/backing.img")" -eq "$SIZE"
grep -a '^VFKNUM' "$work/logs/serial.log" | tr -d '\r' | sed 's/^/# /'

# -------------------------------------------------- QEMU's own NVMe device
if ((compare)); then
    truncate -s "$SIZE" "$work/qemu.img"
    params qemu 1b36 0010
    mkdir -p "$work/logs-qemu"
    "$here/run-guest.sh" --share "$share" --quiet --smp "$smp" --log-dir "$work/logs-qemu" \
        --timeout "${VFK_GUEST_TIMEOUT:-300}" \
        --extra "-drive file=$work/qemu.img,if=none,id=nvm,format=raw,cache=none,aio=io_uring -device nvme,serial=qemu0001,drive=nvm" \
        >"$work/run-guest-qemu.out" 2>&1
    qrc=$?
    relay "$work/logs-qemu/serial.log" "qemu nvme: "
    check "qemu nvme: guest test passed" test "$qrc" -eq 0
    ((qrc == 0)) || { diag <"$work/run-guest-qemu.out"; tail_diag "$work/logs-qemu/serial.log" 40; }
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
        }' <(grep -a '^VFKNUM' "$work/logs/serial.log") <(grep -a '^VFKNUM' "$work/logs-qemu/serial.log")
fi
echo "# total $((SECONDS - t0)) s"
