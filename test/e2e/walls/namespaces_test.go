package walls_test

import (
	"os"
	"strings"
	"testing"
)

// TestNamespaceModes: --pid and --ipc container:<id> join the other
// container's namespaces (IPC only when it is shareable), --uts host,
// --cgroupns private, --userns=host; bad modes are refused.
func TestNamespaceModes(t *testing.T) {
	d := daemon(t)
	d.Must(t, "run", "-d", "--name", "donor", "--ipc", "shareable", "busybox", "sh", "-c", "echo shared > /dev/shm/marker; exec sleep 1000")
	d.Must(t, "run", "-d", "--name", "private", "busybox", "sleep", "1000")
	eventually(t, 5e9, "donor's marker", func() (bool, string) {
		out, _ := docker(t, d, "exec", "donor", "cat", "/dev/shm/marker")
		return out == "shared\n", out
	})
	host, _ := os.Hostname()
	for _, c := range clis {
		t.Run(c.name, func(t *testing.T) {
			run := func(flags []string, script string) (string, int) {
				t.Helper()
				out, code := c.run(t, d, append(append([]string{"run", "--rm"}, flags...), "busybox", "sh", "-c", "exec 2>&1; "+script)...)
				return strings.TrimSpace(out), code
			}
			// The donor's sleep is visible, and this shell is not pid 1.
			if out, code := run([]string{"--pid", "container:donor"}, "pidof sleep | wc -w; echo $$"); code != 0 || !strings.HasPrefix(out, "1\n") || strings.HasSuffix(out, "\n1") {
				t.Errorf("--pid container:donor: %q (exit %d)", out, code)
			}
			donorIPC := strings.TrimSpace(d.Must(t, "exec", "donor", "readlink", "/proc/self/ns/ipc"))
			if out, code := run([]string{"--ipc", "container:donor"}, "cat /dev/shm/marker; readlink /proc/self/ns/ipc"); code != 0 || out != "shared\n"+donorIPC {
				t.Errorf("--ipc container:donor: %q (exit %d), want the donor's /dev/shm and %s", out, code, donorIPC)
			}
			if out, code := run([]string{"--ipc", "container:private"}, "true"); code != 125 || !strings.Contains(out, "non-shareable IPC") {
				t.Errorf("--ipc container:private: %q (exit %d)", out, code)
			}
			if out, code := run([]string{"--pid", "container:nosuch"}, "true"); code != 125 || !strings.Contains(out, "nosuch") {
				t.Errorf("--pid container:nosuch: %q (exit %d)", out, code)
			}
			if out, code := run([]string{"--uts", "host"}, "hostname"); code != 0 || out != host {
				t.Errorf("--uts host: %q (exit %d), want %q", out, code, host)
			}
			if out, code := run([]string{"--cgroupns", "private"}, "grep -c -v ':/$' /proc/self/cgroup"); out != "0" {
				t.Errorf("--cgroupns private: %q (exit %d), every line should name the root", out, code)
			}
			if out, code := run([]string{"--userns", "host"}, "echo ok"); code != 0 || out != "ok" {
				t.Errorf("--userns host: %q (exit %d)", out, code)
			}
			if out, code := run([]string{"--userns", "other"}, "true"); code != 125 || !strings.Contains(out, "invalid USER mode") {
				t.Errorf("--userns other: %q (exit %d)", out, code)
			}
		})
	}
	// A stopped donor cannot be joined.
	d.Must(t, "stop", "-t", "0", "donor")
	if out, code := docker(t, d, "run", "--rm", "--pid", "container:donor", "busybox", "true"); code != 125 || !strings.Contains(out, "non running container") {
		t.Errorf("--pid of a stopped container: %q (exit %d)", out, code)
	}
}

// TestUnsupportedOptionsRefused: what berth cannot do fails at create
// with a message naming it, never silently.
func TestUnsupportedOptionsRefused(t *testing.T) {
	d := daemon(t)
	for _, c := range clis {
		for _, tc := range []struct {
			flags []string
			want  string
		}{
			{[]string{"--gpus", "all"}, "--gpus"},
			{[]string{"--storage-opt", "size=1G"}, "--storage-opt"},
			{[]string{"--isolation", "hyperv"}, "isolation"},
			{[]string{"--runtime", "kata"}, "kata"},
			{[]string{"--io-maxiops", "100"}, "io-maxiops|Maximum IO"},
			{[]string{"--security-opt", "writable-cgroups=true"}, "writable-cgroups"},
			{[]string{"--device", "/dev/null:rel/path"}, "rel/path"},
		} {
			out, code := c.run(t, d, append(append([]string{"run", "--rm"}, tc.flags...), "busybox", "true")...)
			named := false
			for _, w := range strings.Split(tc.want, "|") {
				named = named || strings.Contains(out, w)
			}
			if code == 0 || !named {
				t.Errorf("%s run %v: %q (exit %d), want an error naming %q", c.name, tc.flags, out, code, tc.want)
			}
		}
		// Discarded with dockerd's warnings.
		out, code := c.run(t, d, "create", "--blkio-weight", "300", "--oom-kill-disable", "busybox")
		if code != 0 || !strings.Contains(out, "Weight discarded") || !strings.Contains(out, "OOM killer is disabled") {
			t.Errorf("%s create with warnings: %q (exit %d)", c.name, out, code)
		}
		out, code = c.run(t, d, "create", "--kernel-memory", "64m", "busybox")
		if code != 0 || !strings.Contains(strings.ToLower(out), "kernel memory") {
			t.Errorf("%s --kernel-memory: %q (exit %d), want a warning", c.name, out, code)
		}
	}
}
