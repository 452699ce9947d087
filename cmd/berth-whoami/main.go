// Command berth-whoami is Berth's demo workload: a small static program
// that prints what it sees from inside its walls — pid, hostname, user,
// mounts, cgroup and limits, visible processes and capabilities — as plain
// text. Build it with CGO_ENABLED=0 so it runs in a FROM-scratch rootfs.
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

func main() {
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	section(w, "process")
	pid := os.Getpid()
	if pid == 1 {
		fmt.Fprintf(w, "  pid:      1 (I am pid 1: init of my own pid namespace)\n")
	} else {
		fmt.Fprintf(w, "  pid:      %d (not pid 1: I share a pid namespace)\n", pid)
	}
	host, err := os.Hostname()
	if err != nil {
		host = "? (" + err.Error() + ")"
	}
	fmt.Fprintf(w, "  hostname: %s\n", host)
	fmt.Fprintf(w, "  uid/gid:  %d/%d (groups %v)\n", os.Getuid(), os.Getgid(), groups())
	cwd, _ := os.Getwd()
	fmt.Fprintf(w, "  cwd:      %s\n", cwd)

	section(w, "capabilities")
	capabilities(w)

	section(w, "cgroup")
	cgroup(w)

	section(w, "processes I can see in /proc")
	processes(w)

	section(w, "mounts")
	mounts(w)
}

func section(w *bufio.Writer, title string) { fmt.Fprintf(w, "\n== %s\n", title) }

func groups() []int {
	g, err := os.Getgroups()
	if err != nil {
		return nil
	}
	return g
}

// capNames are the capability numbers 0..40 by name.
var capNames = []string{
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
	"setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
	"ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
	"sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
	"lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
	"wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
}

func capabilities(w *bufio.Writer) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Fprintf(w, "  cannot read /proc/self/status: %v\n", err)
		return
	}
	for _, line := range strings.Split(string(status), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "CapEff", "CapBnd":
			mask, err := strconv.ParseUint(val, 16, 64)
			if err != nil {
				continue
			}
			var names []string
			for i := 0; i < 64; i++ {
				if mask&(1<<i) == 0 {
					continue
				}
				if i < len(capNames) {
					names = append(names, capNames[i])
				} else {
					names = append(names, "cap_"+strconv.Itoa(i))
				}
			}
			desc := strings.Join(names, " ")
			if desc == "" {
				desc = "(none)"
			}
			fmt.Fprintf(w, "  %s %s: %s\n", key, val, desc)
		case "NoNewPrivs", "Seccomp":
			fmt.Fprintf(w, "  %s: %s\n", key, val)
		}
	}
}

// cgroup prints the process's cgroup and the limits that apply to it, from
// whichever layout (v1, v2, hybrid) is mounted at /sys/fs/cgroup. With a
// cgroup namespace, or a runtime that mounts only the container's own
// cgroup, the path shows as / and the files are at the top.
func cgroup(w *bufio.Writer) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		fmt.Fprintf(w, "  cannot read /proc/self/cgroup: %v\n", err)
		return
	}
	paths := map[string]string{} // controller ("" for v2) -> path
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			paths[c] = parts[2]
		}
		if parts[0] == "0" {
			paths[""] = parts[2]
		}
	}
	if p, ok := paths[""]; ok {
		fmt.Fprintf(w, "  cgroup v2 path: %s\n", p)
	}
	for _, c := range []string{"memory", "pids", "cpu"} {
		if p, ok := paths[c]; ok {
			fmt.Fprintf(w, "  cgroup v1 %s path: %s\n", c, p)
		}
	}
	limit := func(label string, v1ctl string, v1files []string, v2file string) {
		var cands []string
		if p, ok := paths[v1ctl]; ok {
			for _, f := range v1files {
				cands = append(cands, filepath.Join("/sys/fs/cgroup", v1ctl, p, f), filepath.Join("/sys/fs/cgroup", v1ctl, f))
			}
		}
		if p, ok := paths[""]; ok {
			cands = append(cands, filepath.Join("/sys/fs/cgroup", p, v2file), filepath.Join("/sys/fs/cgroup", v2file))
		}
		for _, c := range cands {
			b, err := os.ReadFile(c)
			if err == nil {
				fmt.Fprintf(w, "  %-13s %s  (%s)\n", label+":", humanize(label, strings.TrimSpace(string(b))), c)
				return
			}
		}
		fmt.Fprintf(w, "  %-13s not visible\n", label+":")
	}
	limit("memory limit", "memory", []string{"memory.limit_in_bytes"}, "memory.max")
	limit("pids limit", "pids", []string{"pids.max"}, "pids.max")
	limit("cpu quota", "cpu", []string{"cpu.cfs_quota_us"}, "cpu.max")
}

func humanize(label, v string) string {
	if label != "memory limit" {
		if v == "-1" {
			return "unlimited"
		}
		return v
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n >= 1<<62 {
		if v == "max" || err == nil {
			return "unlimited"
		}
		return v
	}
	return fmt.Sprintf("%d bytes (%.1f MiB)", n, float64(n)/(1<<20))
}

func processes(w *bufio.Writer) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		fmt.Fprintf(w, "  cannot read /proc: %v\n", err)
		return
	}
	var pids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, n)
		}
	}
	sort.Ints(pids)
	const show = 40
	for i, p := range pids {
		if i == show {
			fmt.Fprintf(w, "  ... and %d more\n", len(pids)-show)
			break
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		c := strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		if c == "" {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
			c = "[" + strings.TrimSpace(string(comm)) + "]"
		}
		fmt.Fprintf(w, "  %6d  %s\n", p, c)
	}
	fmt.Fprintf(w, "  (%d processes visible)\n", len(pids))
}

// mounts prints /proc/self/mountinfo compactly: mount point, type, source,
// and whether it is read-only.
func mounts(w *bufio.Writer) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		fmt.Fprintf(w, "  cannot read mountinfo: %v\n", err)
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		point, opts := fields[4], fields[5]
		var fstype, source string
		for i := 6; i < len(fields)-2; i++ {
			if fields[i] == "-" {
				fstype, source = fields[i+1], fields[i+2]
				break
			}
		}
		ro := ""
		if strings.HasPrefix(opts, "ro") {
			ro = " ro"
		}
		fmt.Fprintf(w, "  %-28s %-8s %s%s\n", point, fstype, source, ro)
		n++
	}
	fmt.Fprintf(w, "  (%d mounts)\n", n)
}
