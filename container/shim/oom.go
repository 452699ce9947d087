package shim

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// oomCounter reads how many processes the kernel's OOM killer has killed
// in the container's memory cgroup: memory.oom_control's oom_kill on
// cgroup v1, memory.events' oom_kill on v2.
type oomCounter struct {
	file string // empty: no memory cgroup found
}

// findOOMCounter locates pid's memory cgroup through /proc/<pid>/cgroup
// and the cgroup mounts in /proc/self/mountinfo. Must run while pid lives.
func findOOMCounter(pid int) oomCounter {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return oomCounter{}
	}
	var v1, v2 string
	haveV1, haveV2 := false, false
	for _, l := range strings.Split(string(data), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2, haveV2 = parts[2], true
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				v1, haveV1 = parts[2], true
			}
		}
	}
	mounts := cgroupMounts()
	if haveV1 {
		for _, m := range mounts {
			if m.v1Memory {
				if f := filepath.Join(m.point, rel(m.root, v1), "memory.oom_control"); exists(f) {
					return oomCounter{file: f}
				}
			}
		}
	}
	if haveV2 {
		for _, m := range mounts {
			if m.v2 {
				if f := filepath.Join(m.point, rel(m.root, v2), "memory.events"); exists(f) {
					return oomCounter{file: f}
				}
			}
		}
	}
	return oomCounter{}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// rel makes a cgroup path relative to the root of the mount that shows it.
func rel(root, p string) string {
	if root == "/" || root == "" {
		return p
	}
	r, err := filepath.Rel(root, p)
	if err != nil || strings.HasPrefix(r, "..") {
		return p
	}
	return r
}

type cgroupMount struct {
	point, root  string
	v1Memory, v2 bool
}

func cgroupMounts() []cgroupMount {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []cgroupMount
	for _, l := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 {
			continue
		}
		switch b[0] {
		case "cgroup":
			for _, o := range strings.Split(b[2], ",") {
				if o == "memory" {
					out = append(out, cgroupMount{point: a[4], root: a[3], v1Memory: true})
				}
			}
		case "cgroup2":
			out = append(out, cgroupMount{point: a[4], root: a[3], v2: true})
		}
	}
	return out
}

// read returns the oom_kill count (0 when unknown).
func (c oomCounter) read() uint64 {
	if c.file == "" {
		return 0
	}
	data, err := os.ReadFile(c.file)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
