#!/bin/sh
# /init of the cgroup v2 test VM (see cgroupv2_test.go). Stage 1 copies the
# initramfs into a tmpfs and switch_roots there, because pivot_root cannot
# leave the initramfs rootfs; stage 2 mounts cgroup2 as the only cgroup
# hierarchy, runs the runtime/cgroups tests and a berth-runtime smoke test,
# prints one result line and powers off.
export PATH=/bin
export HOME=/root

if [ "$1" != stage2 ]; then
	/bin/busybox --install -s /bin
	mkdir -p /newroot
	mount -t tmpfs -o mode=755 tmpfs /newroot
	for f in /*; do
		case "$f" in /newroot | /proc | /sys | /dev) ;; *) cp -a "$f" /newroot/ ;; esac
	done
	mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/tmp /newroot/run /newroot/root
	exec switch_root /newroot /init stage2
	echo "BERTH-VM-RESULT: FAIL switch_root"
	poweroff -f
fi

fails=""
fail() {
	echo "vm: FAIL: $*"
	fails="$fails $1"
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
# The only cgroup hierarchy, mounted the way systemd mounts it.
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || fail cgroup2-mount
ln -sf /proc/self/fd /dev/fd
hostname berth-vm
insmod /loop.ko 2>/dev/null # a block device for the io controller test

echo "vm: kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
echo "vm: cgroup mounts:"
grep cgroup /proc/mounts
echo "vm: /proc/cgroups enabled v1 hierarchies: $(awk 'NR > 1 && $2 != 0' /proc/cgroups | wc -l)"
echo "vm: cgroup.controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"

cd /tmp
echo "vm: === runtime/cgroups tests ==="
/cgroups.test -test.v -test.count=1 -test.timeout=240s -test.run 'V2|.' || fail cgroups.test

echo "vm: === berth-runtime smoke tests ==="
rt="berth-runtime --root /run/berth-runtime"
for b in smoke-cgroupns smoke-bind; do
	out=$($rt run --bundle "/bundles/$b" "$b" 2>&1)
	rc=$?
	echo "$out" | sed "s/^/vm: $b: /"
	[ $rc -eq 0 ] || fail "$b" "exit $rc"
	echo "$out" | grep -q '^SMOKE-OK$' || fail "$b" "no SMOKE-OK"
	[ -e "/sys/fs/cgroup/vmtest/$b" ] && fail "$b-cgroup-left" "/sys/fs/cgroup/vmtest/$b remains"
done
out=$($rt run --bundle /bundles/oom oom 2>&1)
rc=$?
echo "$out" | sed "s/^/vm: oom: /"
[ $rc -eq 0 ] || fail oom "exit $rc"
echo "$out" | grep -q '^OOM-OK$' || fail oom "no OOM-OK"
[ -z "$($rt list -q 2>/dev/null)" ] || fail runtime-list "containers left: $($rt list 2>&1)"

if [ -z "$fails" ]; then
	echo "BERTH-VM-RESULT: PASS"
else
	echo "BERTH-VM-RESULT: FAIL$fails"
fi
sync
poweroff -f
