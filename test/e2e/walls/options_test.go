package walls_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecurityOptions: --cap-add/--cap-drop ALL, no-new-privileges,
// seccomp profiles (default, unconfined, a file) and the LSM options this
// host lacks, with both CLIs.
func TestSecurityOptions(t *testing.T) {
	d := daemon(t)
	profile := filepath.Join(t.TempDir(), "nomkdir.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	disk, _ := blockDevice(t) // a privileged container has the host's devices
	for _, c := range clis {
		t.Run(c.name, func(t *testing.T) {
			run := func(flags []string, script string) (string, int) {
				t.Helper()
				out, code := c.run(t, d, append(append([]string{"run", "--rm"}, flags...), "busybox", "sh", "-c", script)...)
				return strings.TrimSpace(out), code
			}
			if out, code := run([]string{"--cap-drop", "ALL"}, "chown 1 /tmp"); code == 0 || !strings.Contains(out, "Operation not permitted") {
				t.Errorf("chown with --cap-drop ALL: %q (exit %d)", out, code)
			}
			if out, code := run([]string{"--cap-drop", "ALL", "--cap-add", "CHOWN"}, "chown 1 /tmp && grep CapEff /proc/self/status"); code != 0 || !strings.HasSuffix(out, "0000000000000001") {
				t.Errorf("--cap-drop ALL --cap-add CHOWN: %q (exit %d)", out, code)
			}
			if out, code := run([]string{"--cap-add", "ALL"}, "grep CapEff /proc/self/status"); code != 0 || !strings.HasSuffix(out, "000001ffffffffff") && !strings.HasSuffix(out, "000001fffeffffff") {
				// ...fe...: CAP_SYS_RESOURCE is missing from this VM's bounding set.
				t.Errorf("--cap-add ALL: %q (exit %d)", out, code)
			}
			if out, code := run([]string{"--cap-add", "SYS_ADMIN"}, "mount -t tmpfs none /tmp && echo mounted"); code != 0 || out != "mounted" {
				t.Errorf("mount with --cap-add SYS_ADMIN: %q (exit %d)", out, code)
			}
			if out, _ := run(nil, "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\t ' ' '"); out != "NoNewPrivs: 0\nSeccomp: 2" {
				t.Errorf("defaults: %q", out)
			}
			if out, _ := run([]string{"--security-opt", "no-new-privileges"}, "grep NoNewPrivs /proc/self/status | tr -s '\t ' ' '"); out != "NoNewPrivs: 1" {
				t.Errorf("no-new-privileges: %q", out)
			}
			if out, _ := run([]string{"--security-opt", "seccomp=unconfined"}, "grep Seccomp: /proc/self/status | tr -s '\t ' ' '"); out != "Seccomp: 0" {
				t.Errorf("seccomp=unconfined: %q", out)
			}
			if out, code := run([]string{"--security-opt", "seccomp=" + profile}, "mkdir /tmp/x"); code == 0 || !strings.Contains(out, "Operation not permitted") {
				t.Errorf("seccomp profile denying mkdir: %q (exit %d)", out, code)
			}
			if out, code := run([]string{"--privileged"}, "grep -E '^(Seccomp|CapEff):' /proc/self/status | tr -s '\t ' ' '; ls "+disk); code != 0 || !strings.Contains(out, "Seccomp: 0") || !strings.Contains(out, "CapEff: 000001ffffffffff") && !strings.Contains(out, "CapEff: 000001fffeffffff") {
				// ...fe...: CAP_SYS_RESOURCE is missing from this VM's bounding set.
				t.Errorf("--privileged: %q (exit %d)", out, code)
			}
			for _, opt := range []string{"apparmor=berth-default", "label=type:svirt_t"} {
				out, code := run([]string{"--security-opt", opt}, "true")
				if code != 125 || !strings.Contains(out, opt) || !strings.Contains(out, "not enabled on this host") {
					t.Errorf("--security-opt %s: %q (exit %d)", opt, out, code)
				}
			}
			if out, code := run([]string{"--security-opt", "label=disable", "--security-opt", "apparmor=unconfined"}, "echo fine"); code != 0 || out != "fine" {
				t.Errorf("confinement turned off: %q (exit %d)", out, code)
			}
			if out, code := run([]string{"--security-opt", "systempaths=unconfined"}, "head -c 20 /proc/timer_list | wc -c"); code != 0 || hostHas("/proc/timer_list") && out != "20" {
				t.Errorf("systempaths=unconfined: %q (exit %d)", out, code)
			}
		})
	}
}

// TestDevicesAndLimits: --device with permissions, --device-cgroup-rule,
// --sysctl, --oom-score-adj, --ulimit, --shm-size, with both CLIs.
func TestDevicesAndLimits(t *testing.T) {
	d := daemon(t)
	for _, c := range clis {
		t.Run(c.name, func(t *testing.T) {
			run := func(flags []string, script string) (string, int) {
				t.Helper()
				out, code := c.run(t, d, append(append([]string{"run", "--rm"}, flags...), "busybox", "sh", "-c", "exec 2>&1; "+script)...)
				return strings.TrimSpace(out), code
			}
			// /dev/loop-control is in no default list; opening it does
			// nothing (only its ioctls do, and they need CAP_SYS_ADMIN).
			if out, code := run([]string{"--device", "/dev/loop-control:/dev/lc:r"}, "exec 3</dev/lc && echo opened; exec 4>/dev/lc"); code == 0 || !strings.HasPrefix(out, "opened\n") || !strings.Contains(out, "Operation not permitted") {
				t.Errorf("--device read-only: %q (exit %d)", out, code)
			}
			if out, code := run([]string{"--device", "/dev/loop-control:/dev/lc"}, "exec 4>/dev/lc && ls -l /dev/lc"); code != 0 || !strings.HasPrefix(out, "crw-------") || !strings.Contains(out, "10, 237") {
				t.Errorf("--device rwm: %q (exit %d)", out, code)
			}
			if out, code := run([]string{"--device", "/no/such/dev"}, "true"); code == 0 || !strings.Contains(out, "/no/such/dev") {
				t.Errorf("missing device: %q (exit %d)", out, code)
			}
			if out, code := run(nil, "mknod /tmp/lc c 10 237 && exec 3</tmp/lc"); code == 0 || !strings.Contains(out, "Operation not permitted") {
				t.Errorf("device outside the default list: %q (exit %d)", out, code)
			}
			if out, code := run([]string{"--device-cgroup-rule", "c 10:237 r"}, "mknod /tmp/lc c 10 237 && exec 3</tmp/lc && echo opened; exec 4>/tmp/lc"); code == 0 || !strings.HasPrefix(out, "opened\n") || !strings.Contains(out, "Operation not permitted") {
				t.Errorf("--device-cgroup-rule: %q (exit %d)", out, code)
			}
			if out, code := run([]string{"--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmax=1048576"}, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax"); code != 0 || out != "1\n1048576" {
				t.Errorf("--sysctl: %q (exit %d)", out, code)
			}
			if out, code := run([]string{"--sysctl", "kernel.panic=5"}, "true"); code == 0 || !strings.Contains(out, "kernel.panic") {
				t.Errorf("--sysctl of the host's kernel: %q (exit %d)", out, code)
			}
			if out, code := run([]string{"--oom-score-adj", "500", "--ulimit", "nofile=100:200", "--shm-size", "1m"},
				"cat /proc/self/oom_score_adj; ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1 | awk '{print $2}'"); code != 0 || out != "500\n100\n200\n1024" {
				t.Errorf("oom-score-adj, ulimit, shm-size: %q (exit %d)", out, code)
			}
		})
	}
}
