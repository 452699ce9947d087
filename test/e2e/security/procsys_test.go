package security

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// procSysScript probes the masked and read-only paths of the default spec
// from inside, then tries to undo them, then probes again. Every write is
// an open with O_TRUNC and no data, so even a successful attempt changes
// nothing on the host.
const procSysScript = `
mkdir -p /mnt
try() { if (eval "$2") >/dev/null 2>&1; then echo "$1 allowed"; else echo "$1 denied"; fi; }
probe() {
	echo "$1 keys $(wc -c < /proc/keys)"
	echo "$1 timer_list $(wc -c < /proc/timer_list)"
	if [ -e /proc/kcore ]; then echo "$1 kcore $(wc -c < /proc/kcore)"; else echo "$1 kcore 0"; fi
	echo "$1 firmware $(ls -A /sys/firmware | wc -l)"
	echo "$1 acpi $(ls -A /proc/acpi | wc -l)"
	try "$1 write-sysrq-trigger" ": > /proc/sysrq-trigger"
	try "$1 write-core_pattern" ": > /proc/sys/kernel/core_pattern"
	try "$1 write-sys-kernel" ": > /proc/sys/kernel/domainname"
	try "$1 write-sysfs" ": > /sys/kernel/uevent_helper"
	try "$1 create-in-sysfs" "touch /sys/berth-probe"
	echo "$1 sys-mount $(grep ' /sys ' /proc/self/mountinfo | cut -d' ' -f6 | cut -d, -f1)"
}
probe before
try remount-proc-sys-rw "mount -o remount,rw /proc/sys"
try remount-sys-rw "mount -o remount,rw /sys"
try umount-keys "umount /proc/keys"
try umount-firmware "umount -l /sys/firmware"
try umount-sysrq "umount /proc/sysrq-trigger"
try mount-proc "mount -t proc proc /mnt"
try mount-sysfs "mount -t sysfs sysfs /mnt"
try bind-proc "mount --bind /proc /mnt"
probe after
`

// TestProcAndSysWallsHold checks the default spec's masked paths
// (/proc/keys, /proc/timer_list, /proc/kcore, /proc/acpi, /sys/firmware are
// empty), read-only paths (/proc/sysrq-trigger, /proc/sys) and read-only
// /sys, and that a container without CAP_SYS_ADMIN (runc's default
// capabilities, and Docker's) cannot remount, unmount or mount its way
// around them.
//
// Defense: maskPaths/readonlyPaths in init.go and the bounding set. With
// the masks and read-only paths skipped, or with the capabilities left as
// the runtime's own, this test fails.
func TestProcAndSysWallsHold(t *testing.T) {
	rt := setup(t)
	for name, caps := range map[string][]string{"runc-default-caps": nil, "docker-default-caps": dockerCaps} {
		t.Run(name, func(t *testing.T) {
			var opts []testutil.Option
			if caps != nil {
				opts = append(opts, withCaps(caps...))
			}
			out := runScript(t, rt, procSysScript, opts...)
			var want []string
			for _, when := range []string{"before", "after"} {
				for _, l := range []string{"keys 0", "timer_list 0", "kcore 0", "firmware 0", "acpi 0",
					"write-sysrq-trigger denied", "write-core_pattern denied", "write-sys-kernel denied",
					"write-sysfs denied", "create-in-sysfs denied", "sys-mount ro"} {
					want = append(want, when+" "+l)
				}
			}
			for _, l := range []string{"remount-proc-sys-rw", "remount-sys-rw", "umount-keys", "umount-firmware",
				"umount-sysrq", "mount-proc", "mount-sysfs", "bind-proc"} {
				want = append(want, l+" denied")
			}
			expectLines(t, out, want...)
			if t.Failed() {
				t.Logf("container output:\n%s", strings.TrimSpace(out))
			}
		})
	}
}
