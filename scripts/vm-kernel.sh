#!/usr/bin/env bash
# vm-kernel.sh [CACHE_DIR] — print the directory of a cached Debian amd64
# kernel for test VMs: it holds `vmlinuz` and `loop.ko`. The kernel comes
# from the package linux-image-amd64 depends on (linux-image-<ver>-amd64),
# fetched with `apt-get download` and unpacked with dpkg-deb, never
# installed: no initramfs or bootloader work on the host. A cached kernel is
# reused; a new one is fetched only when Debian's current version changes.
# CACHE_DIR defaults to $BERTH_VM_CACHE, else /var/cache/berth-test/vm-kernel.
set -euo pipefail
cache=${1:-${BERTH_VM_CACHE:-/var/cache/berth-test/vm-kernel}}
mkdir -p "$cache"

current() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9].*-amd64$/ { print $2; exit }'
}
cached() { # newest complete cache entry, for when apt knows nothing
	ls -d "$cache"/linux-image-*/ 2>/dev/null | sort -V | tail -n1 | sed 's:/$::'
}

pkg=$(current)
if [ -z "$pkg" ] && [ -z "$(cached)" ]; then
	apt-get update -qq >&2
	pkg=$(current)
fi
if [ -z "$pkg" ]; then
	dir=$(cached)
	[ -n "$dir" ] || { echo "vm-kernel: no linux-image-amd64 in apt and nothing cached" >&2; exit 1; }
	echo "$dir"
	exit 0
fi
dir="$cache/$pkg"
if [ -f "$dir/vmlinuz" ]; then
	echo "$dir"
	exit 0
fi

tmp=$(mktemp -d "$cache/.fetch-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" # apt's _apt user downloads into it
if ! (cd "$tmp" && apt-get download -q "$pkg" >&2 2>/dev/null); then
	# Stale package lists name a version the mirror no longer has.
	apt-get update -qq >&2
	pkg=$(current)
	dir="$cache/$pkg"
	(cd "$tmp" && apt-get download -q "$pkg" >&2)
fi
deb=$(ls "$tmp"/*.deb)
mkdir "$tmp/x" "$tmp/out"
# Only the kernel image and the loop module: the full tree is ~400 MB.
dpkg-deb --fsys-tarfile "$deb" |
	tar -x -C "$tmp/x" --wildcards './boot/vmlinuz-*' './boot/config-*' './lib/modules/*/kernel/drivers/block/loop.ko*'
mv "$tmp"/x/boot/vmlinuz-* "$tmp/out/vmlinuz"
mv "$tmp"/x/boot/config-* "$tmp/out/config"
mv "$tmp"/x/lib/modules/*/kernel/drivers/block/loop.ko* "$tmp/out/"
rm -rf "$dir"
mv -T "$tmp/out" "$dir"
echo "$dir"
