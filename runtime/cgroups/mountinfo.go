package cgroups

import (
	"errors"
	"fmt"
	"strings"

	"github.com/berth-dev/berth/runtime/mountinfo"
	"github.com/berth-dev/berth/runtime/rawio"
)

// mount is one cgroup hierarchy as seen in /proc/self/mountinfo.
type mount struct {
	mountpoint string
	root       string // the hierarchy path mounted there, usually "/"
}

// hierarchies is what discover finds: v1 controllers (and name=xxx
// hierarchies) to their mount, plus the cgroup2 mount if any.
type hierarchies struct {
	v1 map[string]*mount // "cpu", "cpuacct", "name=systemd", ...
	v2 *mount
}

// discover reads the current mount table. It is not cached: a test (or an
// admin) may mount a v1 hierarchy, e.g. hugetlb for crun, at any time.
func discover() (*hierarchies, error) {
	b, err := rawio.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	return parseMountinfo(string(b))
}

// parseMountinfo extracts cgroup mounts. For each controller the first mount
// wins, except that a mount of the hierarchy root is preferred over a bind
// mount of a sub-directory. A cgroup2 mount at /sys/fs/cgroup is preferred
// over one elsewhere (e.g. /sys/fs/cgroup/unified).
func parseMountinfo(s string) (*hierarchies, error) {
	entries, err := mountinfo.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	h := &hierarchies{v1: map[string]*mount{}}
	for _, e := range entries {
		if e.FSType != "cgroup" && e.FSType != "cgroup2" {
			continue
		}
		m := &mount{root: e.Root, mountpoint: e.Mountpoint}
		if e.FSType == "cgroup2" {
			if h.v2 == nil || (m.mountpoint == unifiedMountpoint && h.v2.mountpoint != unifiedMountpoint) {
				h.v2 = m
			}
			continue
		}
		for _, opt := range strings.Split(e.SuperOptions, ",") {
			if !isV1Controller(opt) {
				continue
			}
			if old, ok := h.v1[opt]; !ok || (old.root != "/" && m.root == "/") {
				h.v1[opt] = m
			}
		}
	}
	return h, nil
}

// isV1Controller tells controller names apart from plain mount options in a
// v1 super-block option list ("rw,cpu,cpuacct", "rw,xattr,name=systemd").
func isV1Controller(opt string) bool {
	switch opt {
	case "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio",
		"pids", "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc":
		return true
	}
	return strings.HasPrefix(opt, "name=")
}

func octal3(s string) (byte, bool) {
	if len(s) != 3 {
		return 0, false
	}
	var v int
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	return byte(v), v < 256
}

// parseProcCgroup maps controller ("" for the v2 line, "name=systemd" for
// named hierarchies) to the process's cgroup path, from /proc/<pid>/cgroup.
func parseProcCgroup(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("cgroups: malformed /proc/self/cgroup line %q", line)
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	if len(out) == 0 {
		return nil, errors.New("cgroups: /proc/self/cgroup is empty")
	}
	return out, nil
}
