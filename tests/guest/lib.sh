# shellcheck shell=bash
# Shared helpers for the vfiokit guest test scripts (setup.sh,
# mkinitramfs.sh, run-guest.sh).  Source it; do not execute it.
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
