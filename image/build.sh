#!/bin/sh
# Builds the Aetherium guest image for the qemu driver from Debian packages only.
#
#   image/build.sh [OUT_DIR]          (default: .aetherium/images/default, or $AETHERIUM_IMAGE_DIR)
#
# Output (see image/README.md):
#   vmlinux            uncompressed ELF kernel (PVH entry) extracted from linux-image-*-cloud-amd64
#   initramfs.cpio.gz  busybox + virtio modules + /init (loads modules, mounts the root disk, switch_root)
#   rootfs.ext4        the base root disk (raw ext4, sparse): busybox, /sbin/aetherium-agent, /sbin/aetherium-init;
#                      every VM gets a copy-on-write qcow2 overlay on top of it
#   manifest.json      package versions, input hash and sha256 of every output
#
# Idempotent: when manifest.json records the same inputs (kernel package version, busybox version,
# hash of this script and of the agent source), nothing is done. Set AETHERIUM_IMAGE_FORCE=1 to rebuild.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-${AETHERIUM_IMAGE_DIR:-.aetherium/images/default}}
KERNEL_META=${AETHERIUM_KERNEL_PACKAGE:-linux-image-cloud-amd64}
ROOTFS_SIZE=${AETHERIUM_ROOTFS_SIZE:-1G}
AGENT_SRC="$HERE/agent/aetherium-agent.c"

log() { echo "build.sh: $*" >&2; }
die() { echo "build.sh: error: $*" >&2; exit 1; }
# Progress: one line per phase, `build.sh: step N/7: what` (`aetherium image build` shows them).
STEPS=7
STEP=0
step() { STEP=$((STEP + 1)); log "step $STEP/$STEPS: $*"; }

# --- tools: installed only when missing -------------------------------------------------------
step "tools (installing only what is missing)"
need=""
have() { command -v "$1" >/dev/null 2>&1; }
have gcc || need="$need gcc"
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need="$need libc6-dev"
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 && ldd /bin/busybox 2>&1 | grep -q "not a dynamic" || need="$need busybox-static"
have cpio || need="$need cpio"
have mkfs.ext4 || need="$need e2fsprogs"
have lz4 || need="$need lz4"
have xz || need="$need xz-utils"
have gzip || need="$need gzip"
have dpkg-deb || die "dpkg-deb is required (a Debian/Ubuntu host)"
if [ -n "$need" ]; then
  [ "$(id -u)" = 0 ] || die "missing packages:$need (run as root or install them)"
  log "installing:$need"
  apt-get update -qq >&2
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >&2
fi

# --- inputs -------------------------------------------------------------------------------------
step "inputs (resolving $KERNEL_META and the busybox version)"
KERNEL_PKG=$(apt-cache depends "$KERNEL_META" 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
[ -n "$KERNEL_PKG" ] || { apt-get update -qq >&2; KERNEL_PKG=$(apt-cache depends "$KERNEL_META" | awk '/Depends: linux-image-/{print $2; exit}'); }
[ -n "$KERNEL_PKG" ] || die "cannot resolve $KERNEL_META to a kernel package (apt-get update?)"
KERNEL_VERSION=$(apt-cache show "$KERNEL_PKG" | awk '/^Version:/{print $2; exit}')
BUSYBOX_VERSION=$(dpkg-query -W -f '${Version}' busybox-static)
SCRIPT_SHA=$(sha256sum "$0" | cut -d' ' -f1)
AGENT_SHA=$(sha256sum "$AGENT_SRC" | cut -d' ' -f1)
INPUTS=$(printf '%s\n' "$KERNEL_PKG=$KERNEL_VERSION" "busybox-static=$BUSYBOX_VERSION" "build.sh=$SCRIPT_SHA" "agent=$AGENT_SHA" "rootfs=$ROOTFS_SIZE" | sha256sum | cut -d' ' -f1)

if [ "${AETHERIUM_IMAGE_FORCE:-0}" != 1 ] && [ -f "$OUT/manifest.json" ] && grep -q "\"inputs_sha256\": \"$INPUTS\"" "$OUT/manifest.json" \
  && [ -f "$OUT/vmlinux" ] && [ -f "$OUT/initramfs.cpio.gz" ] && [ -f "$OUT/rootfs.ext4" ]; then
  log "up to date: $OUT"
  exit 0
fi

mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
log "building in $WORK: $KERNEL_PKG $KERNEL_VERSION, busybox $BUSYBOX_VERSION"

# --- kernel -------------------------------------------------------------------------------------
step "kernel (downloading $KERNEL_PKG $KERNEL_VERSION, extracting vmlinux)"
(cd "$WORK" && apt-get download "$KERNEL_PKG=$KERNEL_VERSION" >/dev/null 2>&1) || die "apt-get download $KERNEL_PKG failed"
dpkg-deb -x "$WORK"/linux-image-*.deb "$WORK/kpkg"
KREL=$(ls "$WORK/kpkg/lib/modules")
VMLINUZ="$WORK/kpkg/boot/vmlinuz-$KREL"

# The logic of the kernel tree's scripts/extract-vmlinux: find each known compression magic in the
# bzImage, decompress from there, keep the first result that is an ELF file.
is_elf() { [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = "177ELF" ]; }
try_decompress() { # $1 magic (printf format), $2 grep pattern, $3.. decompressor
  magic=$1; pat=$2; shift 2
  for pos in $(tr "$magic\n$pat" "\n$pat=" < "$VMLINUZ" | grep -abo "^$pat" | cut -d: -f1); do
    tail -c+"$pos" "$VMLINUZ" | "$@" > "$WORK/vmlinux" 2>/dev/null || true
    if is_elf "$WORK/vmlinux"; then return 0; fi
  done
  return 1
}
try_decompress '\002!L\030' xxx lz4 -d -c ||
  try_decompress '\037\213\010' xy gunzip -c ||
  try_decompress '\3757zXZ\000' abcde xz -dc ||
  die "could not find an ELF vmlinux inside $VMLINUZ"

# --- guest agent --------------------------------------------------------------------------------
step "guest agent (gcc -static)"
gcc -static -O2 -Wall -Wextra -o "$WORK/aetherium-agent" "$AGENT_SRC"
strip "$WORK/aetherium-agent"

# --- initramfs: loads the virtio modules, mounts /dev/vda and switches to it ---------------------
step "initramfs (busybox and the virtio modules)"
I="$WORK/initramfs"
mkdir -p "$I/bin" "$I/dev" "$I/proc" "$I/sys" "$I/newroot" "$I/lib/modules"
cp /bin/busybox "$I/bin/busybox"
for a in sh mount umount insmod switch_root mkdir cat sleep echo ls; do ln -s busybox "$I/bin/$a"; done
M="$WORK/kpkg/lib/modules/$KREL/kernel"
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_mmio drivers/block/virtio_blk drivers/char/virtio_console; do
  cp "$M/$m.ko" "$I/lib/modules/"
done
cat > "$I/init" <<'INIT'
#!/bin/sh
# Aetherium initramfs: virtio modules, root disk, switch_root.
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
for m in virtio_ring virtio virtio_mmio virtio_blk virtio_console; do insmod /lib/modules/$m.ko; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
if mount -t ext4 -o noatime /dev/vda /newroot; then
  umount /proc /sys /dev
  exec switch_root /newroot /sbin/aetherium-init
fi
echo "aetherium: cannot mount the root disk /dev/vda" >&2
exec sh
INIT
chmod 755 "$I/init"
(cd "$I" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -9n) > "$WORK/initramfs.cpio.gz"

# --- base root disk -----------------------------------------------------------------------------
step "root disk (ext4, $ROOTFS_SIZE sparse)"
R="$WORK/rootfs"
mkdir -p "$R/bin" "$R/sbin" "$R/usr/bin" "$R/usr/sbin" "$R/dev" "$R/proc" "$R/sys" "$R/tmp" "$R/root" "$R/etc" "$R/run" "$R/var/tmp"
chmod 1777 "$R/tmp" "$R/var/tmp"
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
cp "$WORK/aetherium-agent" "$R/sbin/aetherium-agent"
echo "root:x:0:0:root:/root:/bin/sh" > "$R/etc/passwd"
echo "root:x:0:" > "$R/etc/group"
echo "aetherium" > "$R/etc/hostname"
cat > "$R/sbin/aetherium-init" <<'GINIT'
#!/bin/sh
# PID 1 of the guest: mounts, then runs the agent on the virtio-serial ports named
# org.aetherium.agent.N (one session each), restarting it should it ever die.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
hostname -F /etc/hostname
ip link set lo up 2>/dev/null
ports=""
i=0
while [ -z "$ports" ] && [ $i -lt 200 ]; do
  for p in /sys/class/virtio-ports/*; do
    case "$(cat "$p/name" 2>/dev/null)" in org.aetherium.agent.*) ports="$ports /dev/${p##*/}" ;; esac
  done
  [ -n "$ports" ] || { sleep 0.05; i=$((i + 1)); }
done
echo "aetherium-init: agent ports$ports" > /dev/kmsg
while :; do
  # shellcheck disable=SC2086
  /sbin/aetherium-agent $ports
  echo "aetherium-init: agent exited ($?), restarting" > /dev/kmsg
  sleep 0.2
done
GINIT
chmod 755 "$R/sbin/aetherium-init"
rm -f "$WORK/rootfs.ext4"
truncate -s "$ROOTFS_SIZE" "$WORK/rootfs.ext4"
mkfs.ext4 -q -F -L aetherium-root -E root_owner=0:0 -d "$R" "$WORK/rootfs.ext4"

# --- install + manifest -------------------------------------------------------------------------
step "install and manifest.json"
for f in vmlinux initramfs.cpio.gz rootfs.ext4; do mv -f "$WORK/$f" "$OUT/$f.tmp" && mv -f "$OUT/$f.tmp" "$OUT/$f"; done
sha() { sha256sum "$OUT/$1" | cut -d' ' -f1; }
cat > "$OUT/manifest.json.tmp" <<JSON
{
  "format": 1,
  "inputs_sha256": "$INPUTS",
  "kernel": { "package": "$KERNEL_PKG", "version": "$KERNEL_VERSION", "release": "$KREL" },
  "busybox": { "package": "busybox-static", "version": "$BUSYBOX_VERSION" },
  "agent": { "source_sha256": "$AGENT_SHA", "protocol_version": 1 },
  "build_script_sha256": "$SCRIPT_SHA",
  "files": {
    "vmlinux": { "sha256": "$(sha vmlinux)", "bytes": $(stat -c %s "$OUT/vmlinux") },
    "initramfs.cpio.gz": { "sha256": "$(sha initramfs.cpio.gz)", "bytes": $(stat -c %s "$OUT/initramfs.cpio.gz") },
    "rootfs.ext4": { "sha256": "$(sha rootfs.ext4)", "bytes": $(stat -c %s "$OUT/rootfs.ext4"), "format": "raw" }
  },
  "built_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
JSON
mv -f "$OUT/manifest.json.tmp" "$OUT/manifest.json"
log "done: $OUT ($KREL)"
