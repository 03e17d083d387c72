#!/bin/bash
# Prepare the guest test environment for vfiokit:
#   * a Debian trixie chroot (debootstrap --variant=minbase) with QEMU from
#     trixie-backports (it has -device vfio-user-pci) plus busybox-static,
#     cpio, kmod and xz-utils;
#   * the guest kernel ($VFK_GUEST_DIR/vmlinuz) unpacked from trixie's
#     linux-image package with dpkg-deb -x;
#   * the base initramfs input ($VFK_GUEST_DIR/initramfs-base): busybox and
#     the decompressed kernel modules for PCI, virtio-9p, VFIO and NVMe,
#     with their dependencies resolved from modules.dep (depmod -b).
#
# Idempotent: each step leaves a stamp in $VFK_GUEST_DIR/.stamps and is
# skipped on re-run.  Run as root.  Options:
#   --force      redo every step
#   --modules "M1 M2 ..."  extra guest modules (also env VFK_GUEST_MODULES)
# The archive URI is read from this machine's apt configuration (or env
# VFK_MIRROR); with none found, debootstrap's default is used.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

force=0
extra_modules=${VFK_GUEST_MODULES:-}
while (($#)); do
    case $1 in
        --force) force=1 ;;
        --modules) extra_modules="$extra_modules ${2:?--modules needs a list}"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) vfk_die "unknown option: $1" ;;
    esac
    shift
done

vfk_need_root
mkdir -p "$VFK_GUEST_DIR" "$VFK_STAMPS"
((force)) && rm -f "$VFK_STAMPS"/*

# Only one setup at a time per guest directory.
exec 9>"$VFK_GUEST_DIR/.setup.lock"
flock 9

C=$VFK_CHROOT
cleanup() {
    local rc=$?
    vfk_umount_under "$C.new"
    vfk_umount_under "$C"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t_start=$SECONDS
vfk_host_need debootstrap:debootstrap unshare:util-linux gzip:gzip flock:util-linux xz:xz-utils
# Every mount the guest set-up makes lives in a private mount namespace.
# Making one fails when / is not a mount point (a plain chroot), so say so
# now rather than as an apt failure later.
unshare --mount --propagation private true 2>/dev/null ||
    vfk_die "cannot make a private mount namespace (unshare -m); is / a mount point? (in a chroot, bind-mount its root onto itself first)"

# ---------------------------------------------------------------- chroot
if ! vfk_stamp_ok chroot || [[ ! -x $C/usr/bin/apt-get ]]; then
    mirror=$(vfk_host_mirror)
    vfk_log "debootstrap trixie (minbase) into $C ${mirror:+from $mirror}"
    vfk_umount_under "$C.new"
    rm -rf "$C.new"
    t0=$SECONDS
    # shellcheck disable=SC2086
    debootstrap --variant=minbase trixie "$C.new" ${mirror:+"$mirror"} \
        >"$VFK_GUEST_DIR/debootstrap.log" 2>&1 \
        || { tail -n 20 "$VFK_GUEST_DIR/debootstrap.log" >&2; vfk_die "debootstrap failed (log: $VFK_GUEST_DIR/debootstrap.log)"; }
    vfk_umount_under "$C.new"
    if [[ -z $mirror ]]; then
        # Use whatever debootstrap chose by default for the chroot's sources.
        mirror=$(awk '$1 == "deb" { print $2; exit }' "$C.new/etc/apt/sources.list" 2>/dev/null || true)
        [[ -n $mirror ]] || mirror=$(sed -n 's/^URIs: *//p' "$C.new"/etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
        [[ -n $mirror ]] || vfk_die "cannot tell which archive debootstrap used"
    fi
    rm -rf "$C"
    mv "$C.new" "$C"
    printf '%s\n' "$mirror" >"$VFK_GUEST_DIR/mirror"
    vfk_stamp_set chroot "$mirror"
    rm -f "$VFK_STAMPS/packages" "$VFK_STAMPS/kernel" "$VFK_STAMPS/modules"
    vfk_log "debootstrap done in $((SECONDS - t0)) s"
fi
mirror=$(vfk_stamp_get chroot)

# --------------------------------------------------------------- packages
if ! vfk_stamp_ok packages || [[ ! -x $C/usr/bin/qemu-system-x86_64 ]]; then
    vfk_log "configuring trixie + trixie-backports sources and installing QEMU"
    t0=$SECONDS
    rm -f "$C/etc/apt/sources.list.d/debian.sources"
    cat >"$C/etc/apt/sources.list" <<EOF
deb $mirror trixie main
deb $mirror trixie-backports main
EOF
    # Carry over an apt proxy setting of the host, if it has one.
    proxy=$(apt-config dump 2>/dev/null | grep -Ei '^Acquire::(http|https)::Proxy ' || true)
    if [[ -n $proxy ]]; then
        printf '%s\n' "$proxy" >"$C/etc/apt/apt.conf.d/90vfk-proxy"
    fi
    cat >"$C/etc/apt/apt.conf.d/90vfk-minimal" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
    cp -L /etc/resolv.conf "$C/etc/resolv.conf" 2>/dev/null || true
    vfk_chroot_run "$C" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
        sh -c 'apt-get update -qq &&
               apt-get install -y -qq -t trixie-backports \
                   qemu-system-x86 busybox-static cpio kmod xz-utils' \
        >"$VFK_GUEST_DIR/apt.log" 2>&1 \
        || { tail -n 20 "$VFK_GUEST_DIR/apt.log" >&2; vfk_die "package installation failed (log: $VFK_GUEST_DIR/apt.log)"; }
    qver=$(chroot "$C" qemu-system-x86_64 --version | head -n1)
    chroot "$C" qemu-system-x86_64 -device help 2>/dev/null | grep -q '"vfio-user-pci"' \
        || vfk_die "$qver has no vfio-user-pci device"
    vfk_stamp_set packages "$qver"
    vfk_log "packages done in $((SECONDS - t0)) s: $qver"
fi

# ----------------------------------------------------------------- kernel
K=$C/vfk/kernel
if ! vfk_stamp_ok kernel || [[ ! -s $VFK_GUEST_DIR/vmlinuz ]]; then
    t0=$SECONDS
    kpkg=${VFK_KERNEL_PKG:-}
    if [[ -z $kpkg ]]; then
        # The metapackage depends on the versioned image package; take the
        # one of trixie proper (not backports), which is the candidate.
        kpkg=$(chroot "$C" apt-cache depends linux-image-amd64 \
               | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
        [[ -n $kpkg ]] || vfk_die "cannot resolve linux-image-amd64 in the chroot"
    fi
    vfk_log "unpacking kernel package $kpkg"
    rm -rf "$C/vfk/dl" "$K"
    mkdir -p "$C/vfk/dl" "$K"
    vfk_chroot_run "$C" sh -c 'cd /vfk/dl && apt-get download -qq "$1" && dpkg-deb -x ./*.deb /vfk/kernel' \
        vfk "$kpkg" >"$VFK_GUEST_DIR/kernel.log" 2>&1 \
        || { tail -n 20 "$VFK_GUEST_DIR/kernel.log" >&2; vfk_die "downloading/unpacking $kpkg failed"; }
    rm -rf "$C/vfk/dl"
    # depmod -b ROOT wants ROOT/lib/modules; trixie ships /usr/lib/modules.
    if [[ ! -d $K/lib/modules && -d $K/usr/lib/modules ]]; then
        ln -s usr/lib "$K/lib"
    fi
    kver=$(ls "$K/lib/modules" | head -n1)
    [[ -n $kver && -e $K/boot/vmlinuz-$kver ]] || vfk_die "unexpected layout in $kpkg"
    chroot "$C" depmod -b /vfk/kernel "$kver" || vfk_die "depmod failed"
    cp "$K/boot/vmlinuz-$kver" "$VFK_GUEST_DIR/vmlinuz.new"
    mv "$VFK_GUEST_DIR/vmlinuz.new" "$VFK_GUEST_DIR/vmlinuz"
    printf '%s\n' "$kver" >"$VFK_GUEST_DIR/kernel.version"
    vfk_stamp_set kernel "$kpkg $kver"
    rm -f "$VFK_STAMPS/modules"
    vfk_log "kernel done in $((SECONDS - t0)) s: $kver"
fi
kver=$(cat "$VFK_GUEST_DIR/kernel.version")

# ------------------------------------------------ initramfs builder input
modules="$VFK_DEFAULT_MODULES $extra_modules"
modules=$(tr ' ' '\n' <<<"$modules" | sed '/^$/d' | awk '!seen[$0]++' | tr '\n' ' ')
B=$VFK_GUEST_DIR/initramfs-base
if [[ $(vfk_stamp_get modules) != "$kver $modules" || ! -s $B/lib/modules/vfk/load.list ]]; then
    t0=$SECONDS
    vfk_log "resolving modules: $modules"
    rm -rf "$B.new"
    mkdir -p "$B.new/bin" "$B.new/lib/modules/vfk"
    bb=$C/usr/bin/busybox
    [[ -x $bb ]] || bb=$C/bin/busybox
    [[ -x $bb ]] || vfk_die "busybox not found in the chroot"
    cp "$bb" "$B.new/bin/busybox"
    # modprobe --show-depends prints "insmod PATH" lines in load order
    # (dependencies first) and "builtin NAME" for built-in ones.
    deps='' unknown=''
    for m in $modules; do
        if out=$(chroot "$C" modprobe -d /vfk/kernel -S "$kver" --show-depends "$m"); then
            deps+=$out$'\n'
        else
            unknown+=" $m"
        fi
    done
    [[ -z $unknown ]] || vfk_die "unknown module(s):$unknown"
    : >"$B.new/lib/modules/vfk/load.list"
    while read -r kind path _; do
        [[ $kind == insmod ]] || continue
        name=${path##*/}
        name=${name%.xz}; name=${name%.zst}; name=${name%.gz}
        grep -qxF "$name" "$B.new/lib/modules/vfk/load.list" && continue
        src=$C$path
        case $path in
            *.ko.xz)  xz -dc "$src" ;;
            *.ko.zst) zstd -dc "$src" ;;
            *.ko.gz)  gzip -dc "$src" ;;
            *)        cat "$src" ;;
        esac >"$B.new/lib/modules/vfk/$name" || vfk_die "cannot decompress $path"
        printf '%s\n' "$name" >>"$B.new/lib/modules/vfk/load.list"
    done <<<"$deps"
    printf '%s\n' "$kver" >"$B.new/lib/modules/vfk/kernel.version"
    rm -rf "$B"
    mv "$B.new" "$B"
    vfk_stamp_set modules "$kver $modules"
    rm -f "$VFK_GUEST_DIR/initramfs.cpio.gz"
    vfk_log "modules done in $((SECONDS - t0)) s: $(wc -l <"$B/lib/modules/vfk/load.list") files"
fi

vfk_log "ready in $((SECONDS - t_start)) s: $(vfk_stamp_get packages), kernel $kver"
vfk_log "guest dir: $VFK_GUEST_DIR (next: tests/guest/mkinitramfs.sh)"
