// Package stats reads what `docker stats` and `docker top` show for a
// running container: resource usage from its cgroups (v1 hierarchies or the
// v2 unified hierarchy) and /proc, in the Engine API's StatsResponse shape
// as dockerd 20.10 fills it, and the host's ps output filtered to the
// container's processes.
//
// The package only reads: it never creates, changes or removes a cgroup.
package stats

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/runtime/cgroups"
)

// Read takes one sample of the container whose OCI linux.cgroupsPath is
// cgroupsPath (absolute: relative to each hierarchy's root) and whose init
// process has host pid pid (for its network counters; 0 skips them).
//
// ID, Name, OSType, PreRead and PreCPUStats are left to the caller (see
// SetPrevious). A cgroup that exists in no hierarchy is errdefs.ErrNotFound.
func Read(cgroupsPath string, pid int) (*container.StatsResponse, error) {
	paths, err := resolve(cgroupsPath)
	if err != nil {
		return nil, err
	}
	return reader{proc: "/proc", paths: paths}.read(pid)
}

// SetPrevious records prev as the previous sample of cur, the way dockerd's
// stream does, so that clients can compute CPU percentages from the delta.
// A nil prev leaves the previous sample empty (the first one of a stream).
func SetPrevious(cur, prev *container.StatsResponse) {
	if prev == nil {
		cur.PreRead, cur.PreCPUStats = time.Time{}, container.CPUStats{}
		return
	}
	cur.PreRead, cur.PreCPUStats = prev.Read, prev.CPUStats
}

// resolve maps cgroupsPath to its directory in every mounted hierarchy
// (v1 controller name -> dir, "" -> the unified dir), as the runtime did.
func resolve(cgroupsPath string) (map[string]string, error) {
	if cgroupsPath == "" {
		return nil, fmt.Errorf("stats: empty cgroupsPath: %w", errdefs.ErrInvalidArgument)
	}
	m, err := cgroups.New(cgroupsPath, "")
	if err != nil {
		return nil, fmt.Errorf("stats: cgroup %s: %w", cgroupsPath, err)
	}
	return m.Paths(), nil
}

// reader collects one sample. proc is the procfs root and paths the
// container's cgroup directories; both are parameters so that tests can
// point them at fake trees.
type reader struct {
	proc  string
	paths map[string]string
}

// unifiedOnly reports a pure v2 host. Hybrid hosts (v1 hierarchies plus a
// cgroup2 mount) are read as v1, like dockerd does, since their
// controllers live in the v1 hierarchies.
func (r reader) unifiedOnly() bool {
	_, ok := r.paths[""]
	return ok && len(r.paths) == 1
}

func (r reader) read(pid int) (*container.StatsResponse, error) {
	if !r.anyDirExists() {
		return nil, fmt.Errorf("stats: cgroup %s: %w", r.describe(), errdefs.ErrNotFound)
	}
	s := &container.StatsResponse{Read: time.Now()}
	var err error
	if r.unifiedOnly() {
		err = r.readV2(s, r.paths[""])
	} else {
		err = r.readV1(s)
	}
	if err != nil {
		return nil, err
	}
	h, err := readHostCPU(r.proc)
	if err != nil {
		return nil, err
	}
	s.CPUStats.SystemUsage, s.CPUStats.OnlineCPUs = h.systemUsage, h.onlineCPUs
	// Without a limit the cgroup reports a huge number; dockerd shows the
	// host's memory instead, which is what bounds the container.
	if mem, err := readMemTotal(r.proc); err == nil && mem > 0 && s.MemoryStats.Limit > mem {
		s.MemoryStats.Limit = mem
	}
	if pid > 0 {
		if s.Networks, err = readNetworks(r.proc, pid); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (r reader) anyDirExists() bool {
	for _, d := range r.paths {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return true
		}
	}
	return false
}

// describe names the cgroup in errors by one of its directories.
func (r reader) describe() string {
	for _, k := range []string{"memory", "pids", "cpuacct", ""} {
		if d, ok := r.paths[k]; ok {
			return d
		}
	}
	for _, d := range r.paths {
		return d
	}
	return "(no hierarchy)"
}

// ignoreMissing turns "file does not exist" into success: a controller or
// a knob this kernel lacks leaves its fields empty, as in dockerd.
func ignoreMissing(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
