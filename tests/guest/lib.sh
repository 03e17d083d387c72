# shellcheck shell=bash
# Shared helpers for the vfiokit guest test scripts: the set-up (setup.sh,
# mkinitramfs.sh, run-guest.sh) and the host half of each test
# (qemu-dma-test.sh, nvme-qemu-test.sh, vfio-kernel-test.sh; the vfk_test_*
# functions below).  Source it; do not execute it.
#
# Layout of the generated state (default /work/main/.guest, or $VFK_GUEST_DIR):
#   chroot/                 trixie chroot (debootstrap minbase) holding QEMU
#   chroot/vfk/kernel/      the unpacked linux-image package (dpkg-deb -x)
#   vmlinuz                 guest kernel
#   kernel.version          its version (uname -r in the guest)
#   initramfs-base/         busybox + decompressed modules + load order
#   initramfs.cpio.gz       built by mkinitramfs.sh
#   logs/                   per-run serial and QEMU logs (run-guest.sh)
#   .stamps/                completion markers that make re-runs fast

VFK_GUEST_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VFK_REPO_ROOT=$(cd "$VFK_GUEST_SRC/../.." && pwd)
: "${VFK_GUEST_DIR:=$VFK_REPO_ROOT/.guest}"
# shellcheck disable=SC2034  # used by the scripts that source this file
VFK_CHROOT=$VFK_GUEST_DIR/chroot
VFK_STAMPS=$VFK_GUEST_DIR/.stamps

# Modules the guest loads at boot (dependencies are added automatically).
# shellcheck disable=SC2034
VFK_DEFAULT_MODULES="virtio_pci 9p 9pnet_virtio vfio vfio_pci vfio_iommu_type1 nvme"

vfk_log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
vfk_die() { printf '[%s] error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

vfk_need_root() {
    [[ $(id -u) -eq 0 ]] || vfk_die "must run as root (debootstrap, chroot and mounts need it)"
}

vfk_stamp_ok()  { [[ -e "$VFK_STAMPS/$1" ]]; }
vfk_stamp_set() { mkdir -p "$VFK_STAMPS" && printf '%s\n' "${2:-done}" >"$VFK_STAMPS/$1"; }
vfk_stamp_get() { cat "$VFK_STAMPS/$1" 2>/dev/null; }

# Install host packages (Debian 12) that provide the given commands.
# Arguments are pairs COMMAND:PACKAGE.
vfk_host_need() {
    local pair cmd pkg missing=()
    for pair in "$@"; do
        cmd=${pair%%:*} pkg=${pair#*:}
        command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd ]] || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    vfk_log "installing host packages: ${missing[*]}"
    if [[ ! -e "$VFK_STAMPS/host-apt-updated" ]]; then
        apt-get update -qq || vfk_die "apt-get update failed"
        vfk_stamp_set host-apt-updated
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || vfk_die "apt-get install ${missing[*]} failed"
}

# Print the URI of the Debian main archive as configured on this machine:
# the first enabled "deb" entry whose suites contain exactly "bookworm"
# (so -updates, -backports and -security entries are ignored).  Handles
# deb822 *.sources files and one-line *.list files.  Prints nothing when
# no such entry exists (callers then let debootstrap use its default).
vfk_host_mirror() {
    local f
    if [[ -n ${VFK_MIRROR:-} ]]; then
        printf '%s\n' "$VFK_MIRROR"
        return
    fi
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r $f ]] || continue
        awk '
            function flush() {
                if (uri != "" && types ~ /(^| )deb( |$)/ && enabled != "no" &&
                    (" " suites " ") ~ / bookworm /) { print uri; found = 1; exit }
                uri = ""; types = ""; suites = ""; enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            {
                line = $0
                key = tolower(line); sub(/:.*/, "", key)
                val = line; sub(/^[^:]*:[ \t]*/, "", val); gsub(/[ \t]+/, " ", val)
                if (key == "uris") { split(val, u, " "); uri = u[1] }
                else if (key == "types") types = val
                else if (key == "suites") suites = val
                else if (key == "enabled") enabled = tolower(val)
            }
            END { if (!found) flush() }
        ' "$f" | head -n1 | grep . && return
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r $f ]] || continue
        awk '
            /^[ \t]*#/ { next }
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == "bookworm") { print $i; exit }
            }
        ' "$f" | head -n1 | grep . && return
    done
    return 0
}

# Print the mount points at or below DIR, deepest first.
vfk_mounts_under() {
    local dir=${1%/}
    awk -v d="$dir" '{ m = $2; gsub(/\\040/, " ", m); if (m == d || index(m, d "/") == 1) print m }' \
        /proc/self/mounts | sort -r
}

# Unmount everything at or below DIR (used by traps; never fails).
vfk_umount_under() {
    local m
    while read -r m; do
        [[ -n $m ]] && { umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }
    done < <(vfk_mounts_under "$1")
}

# Run a command inside the chroot with /proc, /sys and /dev available.
# The mounts are made in a private mount namespace (unshare -m), so they
# disappear with the command even if it is killed; the inner trap
# unmounts them explicitly as well.
vfk_chroot_run() {
    local root=$1; shift
    unshare --mount --propagation private /bin/bash -c '
        root=$1; shift
        trap "umount -R \"\$root/dev\" \"\$root/sys\" \"\$root/proc\" 2>/dev/null || true" EXIT
        mount -t proc proc "$root/proc" &&
        mount --rbind /sys "$root/sys" &&
        mount --rbind /dev "$root/dev" || exit 1
        chroot "$root" "$@"
    ' vfk-chroot "$root" "$@"
}

# ------------------------------------------- the host half of a guest test
# A test prints TAP: one case per assertion, numbered as it goes, and the
# plan ("1..N") at the end.  vfk_tap_prefix, when set, starts every case's
# description (qemu-dma-test.sh names its memory mode there).
vfk_tap_n=0 vfk_tap_failed=0 vfk_tap_prefix=""
ok() { vfk_tap_n=$((vfk_tap_n + 1)); echo "ok $vfk_tap_n - $vfk_tap_prefix$*"; }
nok() {
    vfk_tap_n=$((vfk_tap_n + 1)) vfk_tap_failed=$((vfk_tap_failed + 1))
    echo "not ok $vfk_tap_n - $vfk_tap_prefix$*"
}
check() { # WHAT COMMAND...: one case from a command's status
    local what=$1; shift
    if "$@"; then ok "$what"; else nok "$what"; fi
}
diag() { sed 's/^/# /'; }
tail_diag() { # FILE LINES: the end of a log, as TAP comments
    [[ -s $1 ]] || return 0
    echo "# --- last $2 lines of $1"
    tail -n "$2" "$1" | tr -d '\r' | diag
}

# Begin a test whose guest half is GUEST_SCRIPT.  Without root, skip it (QEMU
# runs in a chroot); without $VFIOKIT, bail out.  Make the work directory
# $work, /tmp/vfk-NAME.XXXXXX (run-guest.sh shows /tmp to the chroot), with
# $share (the guest's 9p share: GUEST_SCRIPT as guest-test.sh, and
# guest-lib.sh, which it sources) and $logs.  The first case is setup.sh
# (idempotent, quick once done); the test bails out when it fails.  At exit
# the server still running is stopped, the plan printed, and $work removed
# unless a case failed or VFK_GUEST_KEEP=1.
vfk_test_begin() { # NAME GUEST_SCRIPT
    if [[ $(id -u) -ne 0 ]]; then
        echo "1..0 # SKIP the guest test needs root (chroot, mount namespaces)"
        exit 0
    fi
    if [[ -z ${VFIOKIT:-} || ! -x ${VFIOKIT:-} ]]; then
        echo "Bail out! VFIOKIT must name the vfiokit binary"
        exit 1
    fi
    work=$(mktemp -d "/tmp/vfk-$1.XXXXXX") || exit 1
    share=$work/share logs=$work/logs srv_pid=""
    mkdir -p "$share" "$logs"
    trap vfk_test_finish EXIT
    trap 'exit 130' INT TERM
    echo "# work directory $work"
    cp "$VFK_GUEST_SRC/$2" "$share/guest-test.sh"
    cp "$VFK_GUEST_SRC/guest-lib.sh" "$share/guest-lib.sh"
    if "$VFK_GUEST_SRC/setup.sh" >"$work/setup.log" 2>&1; then
        ok "guest environment ready (setup.sh)"
    else
        nok "guest environment ready (setup.sh)"
        tail_diag "$work/setup.log" 20
        echo "Bail out! no guest environment"
        exit 1
    fi
}

vfk_test_finish() {
    if [[ -n $srv_pid ]]; then
        kill -TERM "$srv_pid" 2>/dev/null
        wait "$srv_pid" 2>/dev/null
    fi
    echo "# total $SECONDS s"
    echo "1..$vfk_tap_n"
    if ((vfk_tap_failed)) || [[ ${VFK_GUEST_KEEP:-0} == 1 ]]; then
        echo "# logs kept in $work"
    else
        rm -rf "$work"
    fi
    exit $((vfk_tap_failed ? 1 : 0))
}

# Two cases: the guest programs of the kernel VFIO tests, built with gcc
# -static into the share: vfiokit itself (from a static build directory
# next to the build under test, $VFIOKIT's), vfio-client-test (the client
# test body, the edu, NVMe and dma-test clients) and pci-probe.  Bails out
# when one does not build.
vfk_test_static_programs() {
    local static repo=$VFK_REPO_ROOT
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
        echo "Bail out! no static vfiokit"
        exit 1
    fi
    if gcc -static -O2 -Wall -Wextra -I"$repo/include" -I"$repo" -I"$repo/tests/kernel" \
            -I"$repo/devices/nvme" -I"$repo/devices/dma-test" \
            -o "$share/vfio-client-test" "$VFK_GUEST_SRC/vfio-client-test.c" \
            "$repo/tests/kernel/client_body.c" "$repo/devices/nvme/nvme_drv.c" \
            "$repo/devices/dma-test/driver.c" "$static/libvfiokit.a" -ljson-c -luring -lpthread \
            >"$work/gcc.log" 2>&1 &&
       gcc -static -O2 -Wall -Wextra -o "$share/pci-probe" "$VFK_GUEST_SRC/pci-probe.c" >>"$work/gcc.log" 2>&1; then
        ok "vfio-client-test and pci-probe build statically"
    else
        nok "vfio-client-test and pci-probe build statically"
        tail_diag "$work/gcc.log" 30
        echo "Bail out! no guest programs"
        exit 1
    fi
}

# One case: build the guest program $share/NAME with gcc -static (the guest
# has no libc); bail out when it does not build.
vfk_test_gcc() { # NAME GCC-ARGUMENTS (sources, flags)...
    local name=$1; shift
    if gcc -static -O2 -Wall -Wextra -o "$share/$name" "$@" >"$work/gcc.log" 2>&1; then
        ok "$name builds statically"
    else
        nok "$name builds statically"
        tail_diag "$work/gcc.log" 20
        echo "Bail out! no $name"
        exit 1
    fi
}

# One case: start `$VFIOKIT serve DEVICE --socket SOCK OPTIONS...` in the
# background (pid in $srv_pid, stderr in $work/server.log) and wait for it
# to listen; bail out when it does not.
vfk_test_serve() { # SOCK DEVICE OPTIONS...
    local sock=$1 dev=$2 i; shift 2
    "$VFIOKIT" serve "$dev" --socket "$sock" "$@" 2>"$work/server.log" &
    srv_pid=$!
    for ((i = 0; i < 200; i++)); do
        [[ -S $sock ]] && break
        kill -0 "$srv_pid" 2>/dev/null || break
        sleep 0.05
    done
    if [[ -S $sock ]]; then
        ok "vfiokit serve $dev listens"
    else
        nok "vfiokit serve $dev listens"
        tail_diag "$work/server.log" 20
        echo "Bail out! no server"
        exit 1
    fi
}

# Two cases: the server exits 0 on SIGTERM (in a sanitizer build, leaks and
# undefined behaviour make that fail), and it logged no warning or error.
# Debug lines may mention failures of single messages; a warning or an
# error is the server's own verdict that something went wrong.
vfk_test_stop_server() {
    local rc bad
    kill -TERM "$srv_pid" 2>/dev/null
    wait "$srv_pid"
    rc=$?
    srv_pid=""
    if ((rc == 0)); then
        ok "server exits 0 on SIGTERM"
    else
        nok "server exits 0 on SIGTERM (status $rc)"
        tail_diag "$work/server.log" 40
    fi
    bad=$(grep -aE '\] (warning|error): |ERROR: |runtime error' "$work/server.log")
    if [[ -z $bad ]]; then
        ok "server logged no warnings or errors"
    else
        nok "server logged no warnings or errors"
        printf '%s\n' "$bad" | head -n 20 | diag
    fi
}

# Boot the guest: run-guest.sh --quiet --log-dir LOG_DIR RUN-GUEST-OPTIONS...
# (its own output in LOG_DIR/run-guest.out).  The guest half prints
# "VFKTAP ok - WHAT", "VFKTAP not ok - WHAT", "VFKTAP # TEXT" and, last,
# "VFKTAP done" on the serial console (guest-lib.sh); each assertion becomes
# a case here (PREFIX starts its description), and two more follow: the
# guest test passed (run-guest.sh's verdict) and it ran to its end.
vfk_test_guest() { # LOG_DIR PREFIX RUN-GUEST-OPTIONS...
    local dir=$1 prefix=$2 line rc done_seen=0 t=$SECONDS
    shift 2
    mkdir -p "$dir"
    "$VFK_GUEST_SRC/run-guest.sh" --quiet --log-dir "$dir" "$@" >"$dir/run-guest.out" 2>&1
    rc=$?
    echo "# guest run took $((SECONDS - t)) s"
    while IFS= read -r line; do
        case $line in
            "VFKTAP ok - "*) ok "$prefix${line#VFKTAP ok - }" ;;
            "VFKTAP not ok - "*) nok "$prefix${line#VFKTAP not ok - }" ;;
            "VFKTAP # "*) echo "# ${line#VFKTAP # }" ;;
            "VFKTAP done") done_seen=1 ;;
        esac
    done < <(grep -a -o 'VFKTAP .*' "$dir/serial.log" 2>/dev/null | tr -d '\r')
    if ((rc == 0)); then
        ok "${prefix}guest test passed (VFK-GUEST-RESULT: PASS)"
    else
        nok "${prefix}guest test passed (VFK-GUEST-RESULT: PASS)"
        diag <"$dir/run-guest.out"
        tail_diag "$dir/serial.log" 60
    fi
    check "${prefix}guest test ran to its end" test "$done_seen" -eq 1
}

# One case: QEMU's stderr in LOG_DIR is empty.  With --trace the traces go
# to qemu.trace, so anything there is QEMU's own complaint: error replies
# from the server, failed region accesses, a lost socket.
vfk_test_qemu_quiet() { # LOG_DIR
    if [[ ! -s $1/qemu.stderr ]]; then
        ok "QEMU reported no vfio-user errors"
    else
        nok "QEMU reported no vfio-user errors"
        sort "$1/qemu.stderr" | uniq -c | sort -rn | head -n 20 | diag
    fi
}
