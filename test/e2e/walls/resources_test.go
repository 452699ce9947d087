package walls_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil/berthd"
)

// cgroupFile reads file of controller's v1 cgroup of container name's
// process, from the host.
func cgroupFile(t *testing.T, d *berthd.Daemon, name, controller, file string) string {
	t.Helper()
	pid := inspect(t, d, "{{.State.Pid}}", name)
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) == 3 && strings.Contains(","+parts[1]+",", ","+controller+",") {
			v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, parts[2], file))
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(v))
		}
	}
	t.Fatalf("%s has no %s cgroup: %s", name, controller, b)
	return ""
}

// TestMemoryLimitOOMKills: a container that exceeds --memory is killed by
// the kernel, and inspect and events say so.
func TestMemoryLimitOOMKills(t *testing.T) {
	d := daemon(t)
	for _, c := range clis {
		name := "oom-" + c.name
		// tail buffers /dev/zero's endless first line in memory.
		out, code := c.run(t, d, "run", "--name", name, "--memory", "16m", "--memory-swap", "16m", "busybox", "tail", "/dev/zero")
		if code != 137 {
			t.Errorf("%s: exit %d, want 137: %s", c.name, code, out)
		}
		if got := inspect(t, d, "{{.State.OOMKilled}} {{.State.ExitCode}} {{.HostConfig.Memory}}", name); got != "true 137 16777216" {
			t.Errorf("%s: inspect %q", c.name, got)
		}
		if ev := d.Must(t, "events", "--since", "0", "--until", strconv.FormatInt(time.Now().Unix()+1, 10), "--filter", "container="+name, "--format", "{{.Action}}"); !strings.Contains(ev, "oom\n") {
			t.Errorf("%s: no oom event: %q", c.name, ev)
		}
	}
}

// TestPidsLimitStopsForkBomb: a fork bomb stops at --pids-limit, the host
// keeps answering, and stats reports the pids and memory in use.
func TestPidsLimitStopsForkBomb(t *testing.T) {
	d := daemon(t)
	d.Must(t, "run", "-d", "--name", "bomb", "--pids-limit", "32", "--memory", "64m", "busybox", "sh", "-c",
		"bomb() { bomb | bomb & }; bomb; sleep 1000")
	// The bomb's shells die and fork again, so pids.current hovers at the
	// limit rather than sitting on it; that forks were refused at the
	// limit shows in pids.events.
	nearLimit := func(s string) bool { n, err := strconv.Atoi(s); return err == nil && n >= 30 && n <= 32 }
	eventually(t, 20*time.Second, "pids.current at the limit, forks refused", func() (bool, string) {
		cur := cgroupFile(t, d, "bomb", "pids", "pids.current")
		ev := cgroupFile(t, d, "bomb", "pids", "pids.events")
		return nearLimit(cur) && ev != "max 0", cur + ", " + ev
	})
	if got := cgroupFile(t, d, "bomb", "pids", "pids.max"); got != "32" {
		t.Errorf("pids.max %q", got)
	}
	// The host and the daemon still answer promptly.
	start := time.Now()
	d.Must(t, "ps")
	if _, err := os.ReadFile("/proc/loadavg"); err != nil || time.Since(start) > 10*time.Second {
		t.Errorf("host slow during the fork bomb: %v, %v", time.Since(start), err)
	}
	for _, c := range clis {
		// A sample may catch the count off the limit (it hovers).
		eventually(t, 20*time.Second, c.name+" stats at the limit", func() (bool, string) {
			out, code := c.run(t, d, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.MemUsage}}", "bomb")
			f := strings.Fields(out)
			return code == 0 && len(f) >= 3 && f[0] == "bomb" && nearLimit(f[1]) && strings.HasSuffix(strings.Join(f[2:], " "), "/ 64MiB") && !strings.HasPrefix(f[2], "0B"), out
		})
	}
	d.Must(t, "rm", "-f", "bomb")
}

// TestUpdateRunningLimits: update changes a running container's cgroup
// at once and what inspect shows.
func TestUpdateRunningLimits(t *testing.T) {
	d := daemon(t)
	for _, c := range clis {
		name := "upd-" + c.name
		d.Must(t, "run", "-d", "--name", name, "--memory", "32m", "--cpus", "0.5", "--pids-limit", "100", "busybox", "sleep", "1000")
		if got := cgroupFile(t, d, name, "memory", "memory.limit_in_bytes"); got != "33554432" {
			t.Errorf("memory limit before update: %s", got)
		}
		if out, code := c.run(t, d, "update", "--memory", "64m", "--memory-swap", "128m", "--cpus", "1.5", "--pids-limit", "50", "--cpu-shares", "512", name); code != 0 {
			t.Fatalf("%s update: exit %d: %s", c.name, code, out)
		}
		for _, f := range []struct{ ctl, file, want string }{
			{"memory", "memory.limit_in_bytes", "67108864"},
			{"memory", "memory.memsw.limit_in_bytes", "134217728"},
			{"cpu", "cpu.cfs_quota_us", "150000"},
			{"cpu", "cpu.shares", "512"},
			{"pids", "pids.max", "50"},
		} {
			if f.file == "memory.memsw.limit_in_bytes" {
				if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err != nil {
					continue // no swap accounting on this kernel
				}
			}
			if got := cgroupFile(t, d, name, f.ctl, f.file); got != f.want {
				t.Errorf("%s update: %s = %s, want %s", c.name, f.file, got, f.want)
			}
		}
		if got := inspect(t, d, "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}", name); got != "67108864 1500000000 50" {
			t.Errorf("%s inspect after update: %q", c.name, got)
		}
		if out, code := c.run(t, d, "update", "--pids-limit", "-1", name); code != 0 {
			t.Errorf("%s update --pids-limit -1: exit %d: %s", c.name, code, out)
		} else if got := cgroupFile(t, d, name, "pids", "pids.max"); got != "max" {
			t.Errorf("%s update --pids-limit -1: pids.max %s", c.name, got)
		}
	}
	// Block I/O throttles reach the cgroup, for the disk the data root is on.
	disk, num := blockDevice(t)
	d.Must(t, "run", "-d", "--name", "bps", "--device-read-bps", disk+":1mb", "--device-write-iops", disk+":100", "busybox", "sleep", "1000")
	if got := cgroupFile(t, d, "bps", "blkio", "blkio.throttle.read_bps_device"); got != num+" 1048576" {
		t.Errorf("read_bps_device %q, want %s 1048576", got, num)
	}
	if got := cgroupFile(t, d, "bps", "blkio", "blkio.throttle.write_iops_device"); got != num+" 100" {
		t.Errorf("write_iops_device %q, want %s 100", got, num)
	}
}

// blockDevice is a whole-disk block device of the host (from
// /sys/block) and its "major:minor".
func blockDevice(t *testing.T) (string, string) {
	t.Helper()
	ents, _ := os.ReadDir("/sys/block")
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "ram") || strings.HasPrefix(n, "zram") {
			continue
		}
		num, err := os.ReadFile(filepath.Join("/sys/block", n, "dev"))
		if _, serr := os.Stat("/dev/" + n); err == nil && serr == nil {
			return "/dev/" + n, strings.TrimSpace(string(num))
		}
	}
	t.Fatal("no block device on this host for the throttle check")
	return "", ""
}

// TestCreateLimits: the resource flags of run reach the container's
// cgroups, with both CLIs.
func TestCreateLimits(t *testing.T) {
	d := daemon(t)
	for _, c := range clis {
		name := "lim-" + c.name
		if out, code := c.run(t, d, "run", "-d", "--name", name, "--memory", "32m", "--memory-reservation", "8m",
			"--memory-swappiness", "10", "--oom-kill-disable", "--cpuset-cpus", "0", "--cpu-shares", "256",
			"--cpu-period", "50000", "--cpu-quota", "25000", "busybox", "sleep", "1000"); code != 0 {
			t.Fatalf("%s run: exit %d: %s", c.name, code, out)
		}
		for _, f := range []struct{ ctl, file, want string }{
			{"memory", "memory.limit_in_bytes", "33554432"},
			{"memory", "memory.soft_limit_in_bytes", "8388608"},
			{"memory", "memory.swappiness", "10"},
			{"cpuset", "cpuset.cpus", "0"},
			{"cpu", "cpu.shares", "256"},
			{"cpu", "cpu.cfs_period_us", "50000"},
			{"cpu", "cpu.cfs_quota_us", "25000"},
		} {
			if got := cgroupFile(t, d, name, f.ctl, f.file); got != f.want {
				t.Errorf("%s: %s = %q, want %q", c.name, f.file, got, f.want)
			}
		}
		if got := cgroupFile(t, d, name, "memory", "memory.oom_control"); !strings.Contains(got, "oom_kill_disable 1") {
			t.Errorf("%s: --oom-kill-disable: memory.oom_control %q", c.name, got)
		}
	}
}
