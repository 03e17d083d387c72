#!/bin/bash
# Boot the test guest under QEMU 11.1 (run inside the trixie chroot made by
# setup.sh) and report whether its test passed.
#
# Usage: run-guest.sh [options]
#   --share DIR         export DIR to the guest over virtio-9p (tag vfk; the
#                       guest mounts it on /mnt and runs /mnt/guest-test.sh)
#   --test PATH         test script to run when the share has no
#                       guest-test.sh (kernel option vfk.test=PATH; a
#                       relative PATH is taken from /mnt)
#   --vfio-user SOCK[,PROP=VAL...]
#                       add a vfio-user-pci device connected to the UNIX
#                       socket SOCK (repeatable).  PROP=VAL pairs become
#                       extra device properties (numbers and true/false
#                       are passed as JSON numbers/booleans).
#   --rombar            leave the device ROM BAR enabled (default rombar=0)
#   --root-port         put each vfio-user device behind its own
#                       pcie-root-port, so the guest sees a PCI Express
#                       endpoint (on the q35 root bus QEMU turns an
#                       endpoint into a root-complex integrated endpoint)
#   --no-share          guest RAM that the server cannot map: plain anonymous
#                       memory (memory-backend-ram) instead of the default
#                       memory-backend-memfd with share=on.  DMA_MAP then
#                       carries no file descriptors and the server must use
#                       DMA_READ/DMA_WRITE.
#   --memfd-private     memory-backend-memfd with share=off.  Note: QEMU 11.1
#                       still passes the memfd with each DMA_MAP although the
#                       guest's writes land in private copy-on-write pages.
#   --intel-iommu       add -device intel-iommu,intremap=on,caching-mode=on
#                       and intel_iommu=on to the kernel command line
#   --trace PATTERN     QEMU -trace PATTERN, e.g. 'vfio_user_*' (repeatable;
#                       trace lines go to qemu.trace in the log directory,
#                       so that qemu.stderr holds only QEMU's own messages)
#   --extra 'ARGS'      extra QEMU arguments (split on white space)
#   --append 'ARGS'     extra kernel command line arguments
#   --timeout SEC       kill QEMU after SEC seconds (default 120)
#   --mem SIZE          guest RAM (default 512M)
#   --smp N             guest CPUs (default 1)
#   --kernel FILE       guest kernel (default $VFK_GUEST_DIR/vmlinuz)
#   --initrd FILE       initramfs (default $VFK_GUEST_DIR/initramfs.cpio.gz,
#                       rebuilt by mkinitramfs.sh when out of date)
#   --log-dir DIR       where to write serial.log, qemu.stderr, qemu.trace,
#                       qemu.cmdline
#                       (default $VFK_GUEST_DIR/logs/<date>-<pid>)
#   --quiet             do not echo the serial console to stdout
#   --dry-run           print the QEMU command line and exit
#
# Exit status: 0 iff the serial log contains "VFK-GUEST-RESULT: PASS".
# The chroot needs /proc, /sys, /dev, /tmp and the directories used here
# at the same paths; they are bind-mounted in a private mount namespace
# (unshare -m), so every mount goes away with QEMU even if it is killed.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

share_dir="" test_path="" rombar=0 root_port=0 iommu=0 timeout_s=120
mem_backend=memory-backend-memfd mem_opts=",share=on"
mem=512M smp=1 kernel="" initrd="" log_dir="" quiet=0 dry_run=0 append=""
devices=() traces=() extra=()

while (($#)); do
    case $1 in
        --share) share_dir=${2:?}; shift ;;
        --test) test_path=${2:?}; shift ;;
        --vfio-user) devices+=("${2:?--vfio-user needs a socket path}"); shift ;;
        --rombar) rombar=1 ;;
        --root-port) root_port=1 ;;
        --no-share) mem_backend=memory-backend-ram mem_opts="" ;;
        --memfd-private) mem_backend=memory-backend-memfd mem_opts=",share=off" ;;
        --intel-iommu) iommu=1 ;;
        --trace) traces+=("${2:?}"); shift ;;
        --extra) read -r -a words <<<"${2:-}"; extra+=("${words[@]}"); shift ;;
        --append) append="$append ${2:-}"; shift ;;
        --timeout) timeout_s=${2:?}; shift ;;
        --mem) mem=${2:?}; shift ;;
        --smp) smp=${2:?}; shift ;;
        --kernel) kernel=${2:?}; shift ;;
        --initrd) initrd=${2:?}; shift ;;
        --log-dir) log_dir=${2:?}; shift ;;
        --quiet) quiet=1 ;;
        --dry-run) dry_run=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) vfk_die "unknown option: $1 (see --help)" ;;
    esac
    shift
done

vfk_need_root
C=$VFK_CHROOT
QEMU=/usr/bin/qemu-system-x86_64
[[ -x $C$QEMU ]] || vfk_die "no QEMU in $C: run tests/guest/setup.sh first"
[[ $timeout_s =~ ^[0-9]+$ ]] || vfk_die "--timeout wants seconds"

: "${kernel:=$VFK_GUEST_DIR/vmlinuz}"
if [[ -z $initrd ]]; then
    initrd=$VFK_GUEST_DIR/initramfs.cpio.gz
    out=$("$VFK_GUEST_SRC/mkinitramfs.sh" 2>&1) || { printf '%s\n' "$out" >&2; exit 1; }
fi
kernel=$(realpath -e "$kernel") || vfk_die "no kernel: run tests/guest/setup.sh first"
initrd=$(realpath -e "$initrd") || vfk_die "no initramfs: run tests/guest/mkinitramfs.sh"

binds=()           # host directories to make visible in the chroot
add_bind() { binds+=("$(realpath -e "$1")"); }
add_bind "$(dirname "$kernel")"
add_bind "$(dirname "$initrd")"

# ---------------------------------------------------------------- QEMU args
# (commas inside these words are QEMU option syntax)
# shellcheck disable=SC2054
args=(-nodefaults -no-user-config -display none -no-reboot
      -machine q35,memory-backend=mem -accel tcg -cpu max
      -m "$mem" -smp "$smp"
      -object "$mem_backend,id=mem,size=$mem$mem_opts"
      -serial stdio -monitor none
      -kernel "$kernel" -initrd "$initrd")
cmdline="console=ttyS0 panic=-1 quiet"
if ((iommu)); then
    # shellcheck disable=SC2054
    args+=(-device intel-iommu,intremap=on,caching-mode=on)
    cmdline+=" intel_iommu=on"
fi
if [[ -n $share_dir ]]; then
    [[ -d $share_dir ]] || vfk_die "--share: $share_dir is not a directory"
    share_dir=$(realpath -e "$share_dir")
    [[ $share_dir != *,* ]] || vfk_die "--share: path must not contain a comma"
    add_bind "$share_dir"
    args+=(-virtfs "local,path=$share_dir,mount_tag=vfk,security_model=none,id=vfk")
fi
[[ -z $test_path ]] || cmdline+=" vfk.test=$test_path"
cmdline+="$append"

json_value() {
    if [[ $1 =~ ^-?[0-9]+$ || $1 == true || $1 == false ]]; then
        printf '%s' "$1"
    else
        printf '"%s"' "$1"
    fi
}
n=0
for d in "${devices[@]}"; do
    IFS=, read -r -a parts <<<"$d"
    sock=${parts[0]}
    [[ $sock == /* ]] || sock=$PWD/$sock
    [[ $sock != *[\"\\]* ]] || vfk_die "--vfio-user: unsupported character in $sock"
    [[ -d $(dirname "$sock") ]] || vfk_die "--vfio-user: directory of $sock does not exist"
    add_bind "$(dirname "$sock")"
    props="\"driver\":\"vfio-user-pci\",\"id\":\"vfu$n\",\"socket\":{\"path\":\"$sock\",\"type\":\"unix\"}"
    if ((root_port)); then
        # shellcheck disable=SC2054
        args+=(-device "pcie-root-port,id=vfurp$n,chassis=$((n + 1)),slot=$((n + 1))")
        props+=",\"bus\":\"vfurp$n\""
    fi
    ((rombar)) || props+=",\"rombar\":0"
    for p in "${parts[@]:1}"; do
        [[ $p == *=* ]] || vfk_die "--vfio-user: property '$p' is not PROP=VAL"
        props+=",\"${p%%=*}\":$(json_value "${p#*=}")"
    done
    args+=(-device "{$props}")
    n=$((n + 1))
done
for t in "${traces[@]}"; do args+=(-trace "$t"); done
args+=(-append "$cmdline")
args+=("${extra[@]}")

if ((dry_run)); then
    printf '%q ' "$QEMU" "${args[@]}"; echo
    exit 0
fi

# -------------------------------------------------------------------- logs
if [[ -z $log_dir ]]; then
    log_dir=$VFK_GUEST_DIR/logs/$(date +%Y%m%d-%H%M%S)-$$
    mkdir -p "$log_dir"
    ln -sfn "$(basename "$log_dir")" "$VFK_GUEST_DIR/logs/latest"
    # Keep the 50 newest run directories.
    ls -1d "$VFK_GUEST_DIR"/logs/[0-9]*-* 2>/dev/null | sort | head -n -50 | xargs -r rm -rf
fi
mkdir -p "$log_dir"
log_dir=$(realpath "$log_dir")
add_bind "$log_dir"
serial_log=$log_dir/serial.log
stderr_log=$log_dir/qemu.stderr
trace_log=$log_dir/qemu.trace
# Trace output (the "log" trace backend) goes where -D says; QEMU's error
# messages stay on stderr, so qemu.stderr shows only real complaints.
if ((${#traces[@]})); then
    args+=(-D "$trace_log")
    : >"$trace_log"
fi
printf '%q ' "$QEMU" "${args[@]}" >"$log_dir/qemu.cmdline"; echo >>"$log_dir/qemu.cmdline"
: >"$serial_log"; : >"$stderr_log"

# ------------------------------------------------------------------- boot
qpid="" tpid=""
cleanup() {
    local rc=$?
    [[ -n $qpid ]] && kill -TERM "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
    [[ -n $tpid ]] && kill "$tpid" 2>/dev/null
    # Nothing is mounted outside the private namespace, but be thorough.
    for b in /proc /sys /dev /tmp "${binds[@]}"; do
        mountpoint -q "$C$b" 2>/dev/null && vfk_umount_under "$C$b"
    done
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# De-duplicate the bind list; drop entries below another one or below /tmp.
mapfile -t binds < <(printf '%s\n' /tmp "${binds[@]}" | LC_ALL=C sort -u |
    awk '{ for (i = 1; i <= n; i++) if ($0 == k[i] || index($0, k[i] "/") == 1) next; k[++n] = $0 }
         END { for (i = 1; i <= n; i++) if (k[i] != "/tmp") print k[i] }')

start=$SECONDS
# timeout runs in its own process group and signals QEMU on expiry; the
# inner shell execs chroot, which execs QEMU, so the PID is QEMU's.
timeout -k 5 "$timeout_s" unshare --mount --propagation private /bin/bash -c '
    set -e
    root=$1; shift
    mount --rbind /tmp "$root/tmp"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    while [ "$1" != -- ]; do
        mkdir -p "$root$1"
        mount --bind "$1" "$root$1"
        shift
    done
    shift
    exec chroot "$root" "$@"
' vfk-run "$C" "${binds[@]}" -- "$QEMU" "${args[@]}" \
    </dev/null >"$serial_log" 2>"$stderr_log" &
qpid=$!
if ((!quiet)); then
    tail -n +1 --pid="$qpid" -f "$serial_log" &
    tpid=$!
fi
set +e
wait "$qpid"
qrc=$?
set -e
qpid=""
if [[ -n $tpid ]]; then wait "$tpid" 2>/dev/null || true; tpid=""; fi
elapsed=$((SECONDS - start))

result=$(grep -a -o 'VFK-GUEST-RESULT: .*' "$serial_log" | tr -d '\r' | tail -n1 || true)
echo "run-guest: serial log:  $serial_log"
echo "run-guest: qemu stderr: $stderr_log"
((${#traces[@]} == 0)) || echo "run-guest: qemu trace:  $trace_log"
if [[ $qrc -eq 124 || $qrc -eq 137 ]]; then
    echo "run-guest: QEMU killed after the ${timeout_s} s timeout"
elif [[ $qrc -ne 0 ]]; then
    echo "run-guest: QEMU exited with status $qrc; last stderr lines:"
    tail -n 5 "$stderr_log" | sed 's/^/  /'
fi
if [[ $result == "VFK-GUEST-RESULT: PASS" ]]; then
    echo "run-guest: PASS (${elapsed} s)"
    exit 0
fi
echo "run-guest: FAIL (${elapsed} s): ${result:-no VFK-GUEST-RESULT line}"
exit 1
