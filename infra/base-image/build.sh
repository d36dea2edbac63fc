#!/usr/bin/env bash
# Builds a local Debian bookworm base image with Node 20+ and nats-server, for
# machines that cannot pull the official node image (no registry access):
#   debootstrap --variant=minbase  →  copy this machine's node binary  →  podman import
#
# Node: Debian bookworm's nodejs is 18 (too old), so the host's own node binary
# (and the npm beside it) is copied in. It must be Node 20+ and need only glibc, libstdc++ and libgcc
# (true of the official and NodeSource builds); the script checks both.
#
# Usage: infra/base-image/build.sh [image-name]   (default localhost/coral-base:bookworm-node20)
# Env:   DEBIAN_MIRROR (default http://deb.debian.org/debian), NODE_BIN (default: `command -v node`)
set -euo pipefail

image="${1:-localhost/coral-base:bookworm-node20}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
node_bin="$(readlink -f "${NODE_BIN:-$(command -v node)}")"

for tool in debootstrap podman ldd; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing (apt-get install -y --no-install-recommends podman runc debootstrap)" >&2; exit 1; }
done
major="$("$node_bin" -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 20 ] || { echo "build.sh: $node_bin is Node $major; Node 20+ is needed" >&2; exit 1; }
unexpected="$(ldd "$node_bin" | awk '{print $1}' | grep -Ev '^(linux-vdso|/lib64/ld-linux|libc\.|libm\.|libdl\.|libpthread\.|libstdc\+\+\.|libgcc_s\.|librt\.)' || true)"
[ -z "$unexpected" ] || { echo "build.sh: $node_bin needs libraries the base image lacks: $unexpected" >&2; exit 1; }

work="$(mktemp -d /tmp/coral-base.XXXXXX)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
# libstdc++6 comes with apt in minbase; nats-server for the colony's own NATS.
debootstrap --variant=minbase --include=ca-certificates,nats-server bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
install -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
# npm from the same installation (the image's build stage runs npm install).
npm_dir="$(dirname "$(dirname "$node_bin")")/lib/node_modules/npm"
[ -f "$npm_dir/bin/npm-cli.js" ] || { echo "build.sh: npm not found next to $node_bin (looked in $npm_dir)" >&2; exit 1; }
mkdir -p "$rootfs/usr/local/lib/node_modules"
cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
# Node's headers, for native addons built in the image's build stage (better-sqlite3).
headers="$(dirname "$(dirname "$node_bin")")/include/node"
[ -f "$headers/node.h" ] || { echo "build.sh: Node's headers not found next to $node_bin (looked in $headers)" >&2; exit 1; }
mkdir -p "$rootfs/usr/local/include"
cp -a "$headers" "$rootfs/usr/local/include/node"
# Trim what a runtime image never reads.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
chroot "$rootfs" /usr/local/bin/node --version >/dev/null
chroot "$rootfs" /usr/local/bin/npm --version >/dev/null

tar -C "$rootfs" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["node"]' - "$image" >/dev/null
echo "$image"
