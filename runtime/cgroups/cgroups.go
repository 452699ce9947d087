// Package cgroups puts container processes into control groups and applies
// the OCI linux.resources limits to them. It drives cgroup v1 hierarchies,
// the cgroup v2 unified hierarchy, and "hybrid" hosts that have both.
//
// One Manager covers every hierarchy a container lives in. On v1 and hybrid
// hosts a controller is driven through its v1 hierarchy when it has one, and
// through the unified (cgroup2) mount only when it is bound there; on hybrid
// hosts the process is also placed in the unified hierarchy so that cgroup
// namespaces and v2-only features (cgroup.freeze, eBPF) see the container.
//
// The package is deliberately small and dependency-light because
// berth-runtime links it and must start fast: stdlib, x/sys/unix and the OCI
// runtime-spec types only.
package cgroups

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime/rawio"
)

// Manager controls the cgroup(s) of one container.
type Manager interface {
	// Apply creates the cgroup directories (all hierarchies) and moves pid in.
	Apply(pid int) error
	// Set writes the limits in r. It is used both before the container
	// starts and on a running container (update). Nil fields are left
	// untouched; values this host cannot honour give an error naming the knob.
	Set(r *specs.LinuxResources) error
	// Paths maps subsystem name ("" for the unified hierarchy) to the
	// absolute directory; save it in the runtime state and hand it to Load.
	Paths() map[string]string
	// Pids lists every process in the cgroup, including sub-cgroups.
	Pids() ([]int, error)
	// Freeze stops every process and returns once the kernel reports FROZEN.
	Freeze() error
	// Thaw resumes a frozen cgroup.
	Thaw() error
	// State reports the freezer state (Undefined when there is no freezer).
	State() (FreezerState, error)
	// Stats reads usage counters in the shape of runc's events types.
	Stats() (*Stats, error)
	// OOMKillCount returns how many processes the OOM killer killed here.
	OOMKillCount() (uint64, error)
	// Destroy removes the container's leaf cgroup(s) and their sub-cgroups.
	// It kills nothing: the cgroups must already be empty. Parents are kept.
	Destroy() error
}

// FreezerState is the freezer state as runc names it.
type FreezerState string

const (
	Undefined FreezerState = ""
	Frozen    FreezerState = "FROZEN"
	Thawed    FreezerState = "THAWED"
	// Freezing means a freeze was requested but some task has not stopped yet.
	Freezing FreezerState = "FREEZING"
)

// defaultRoot is the parent of containers that have no cgroupsPath.
const defaultRoot = "/berth"

const unifiedMountpoint = "/sys/fs/cgroup"

var (
	isV2Once sync.Once
	isV2     bool
)

// IsV2 reports whether the host runs pure cgroup v2 (/sys/fs/cgroup is
// cgroup2). Hybrid hosts report false.
func IsV2() bool {
	isV2Once.Do(func() {
		var st unix.Statfs_t
		if err := unix.Statfs(unifiedMountpoint, &st); err == nil {
			isV2 = st.Type == unix.CGROUP2_SUPER_MAGIC
		}
	})
	return isV2
}

// Controllers lists the controllers usable on this host, for `features`.
// "devices" and "freezer" are listed on v2 as well, where they are
// implemented by eBPF and cgroup.freeze.
func Controllers() []string {
	h, err := discover()
	if err != nil {
		return nil
	}
	set := map[string]bool{}
	for sub := range h.v1 {
		if !strings.HasPrefix(sub, "name=") {
			set[sub] = true
		}
	}
	if h.v2 != nil {
		for _, c := range readControllers(h.v2.mountpoint) {
			if _, onV1 := h.v1[c]; !onV1 {
				set[c] = true
			}
		}
		if len(h.v1) == 0 {
			set["devices"] = true
			set["freezer"] = true
		}
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// New returns the manager for a container's cgroup. path is the OCI
// cgroupsPath: absolute => relative to each hierarchy's root; relative =>
// relative to the calling process's own cgroup; "" => "/berth/<id>".
// Nothing is created until Apply (or Set).
func New(path, id string) (Manager, error) {
	if path == "" {
		if id == "" {
			return nil, errors.New("cgroups: neither cgroupsPath nor container id given")
		}
		path = defaultRoot + "/" + id
	}
	if strings.Contains(path, ":") && !strings.HasPrefix(path, "/") {
		// slice:prefix:name is the systemd driver's syntax, which we do not
		// implement; treating it as a relative directory would surprise.
		return nil, fmt.Errorf("cgroups: cgroupsPath %q looks like a systemd unit (slice:prefix:name); only the cgroupfs driver is supported", path)
	}
	h, err := discover()
	if err != nil {
		return nil, err
	}
	own, err := parseProcCgroup(mustRead("/proc/self/cgroup"))
	if err != nil {
		return nil, err
	}
	return newFromHierarchies(h, own, path)
}

// newFromHierarchies resolves path in every hierarchy; split out for tests.
func newFromHierarchies(h *hierarchies, own map[string]string, path string) (*manager, error) {
	m := &manager{paths: map[string]string{}}
	for sub, mnt := range h.v1 {
		dir, err := resolve(mnt, own[sub], path)
		if err != nil {
			return nil, fmt.Errorf("cgroups: %s: %w", sub, err)
		}
		m.paths[sub] = dir
	}
	if h.v2 != nil {
		dir, err := resolve(h.v2, own[""], path)
		if err != nil {
			return nil, fmt.Errorf("cgroups: unified: %w", err)
		}
		m.paths[""] = dir
	}
	if len(m.paths) == 0 {
		return nil, errors.New("cgroups: no cgroup hierarchy is mounted (see /proc/self/mountinfo)")
	}
	m.init()
	return m, nil
}

// Load reopens a manager from the paths a previous process saved (Paths()).
// A map holding only the "" key is a pure v2 manager.
func Load(paths map[string]string) (Manager, error) {
	if len(paths) == 0 {
		return nil, errors.New("cgroups: Load: no paths")
	}
	m := &manager{paths: map[string]string{}}
	for k, v := range paths {
		if !filepath.IsAbs(v) {
			return nil, fmt.Errorf("cgroups: Load: path %q for %q is not absolute", v, k)
		}
		m.paths[k] = filepath.Clean(v)
	}
	m.init()
	return m, nil
}

// resolve turns an OCI cgroupsPath into a directory of one hierarchy.
func resolve(mnt *mount, own, path string) (string, error) {
	var p string
	if filepath.IsAbs(path) {
		p = filepath.Clean(path)
	} else {
		if own == "" {
			return "", errors.New("calling process's own cgroup is unknown (/proc/self/cgroup)")
		}
		p = filepath.Join(own, path)
	}
	// When the hierarchy is mounted from a sub-directory (bind mount of a
	// cgroup, or a cgroup namespace created after the mount), paths from
	// /proc/self/cgroup include the mount's root: strip it.
	if mnt.root != "/" {
		if rel, ok := strings.CutPrefix(p, mnt.root); ok && (rel == "" || rel[0] == '/') {
			p = rel
		}
	}
	dir := filepath.Join(mnt.mountpoint, p)
	if !strings.HasPrefix(dir+"/", mnt.mountpoint+"/") {
		return "", fmt.Errorf("cgroupsPath %q escapes %s", path, mnt.mountpoint)
	}
	return dir, nil
}

func mustRead(p string) string {
	b, _ := rawio.ReadFile(p)
	return string(b)
}
