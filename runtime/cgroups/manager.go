package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// manager implements Manager for v1, hybrid and pure v2 hosts alike: each
// resource is routed to the v1 hierarchy of its controller when there is
// one, otherwise to the unified directory.
type manager struct {
	// paths: v1 subsystem -> dir, and "" -> unified (cgroup2) dir.
	paths map[string]string
	// v2only: the manager holds only the unified directory (pure v2 host,
	// or a unified-only manager built by Load).
	v2only bool
}

func (m *manager) init() {
	_, hasUnified := m.paths[""]
	m.v2only = hasUnified && len(m.paths) == 1
}

func (m *manager) Paths() map[string]string {
	out := make(map[string]string, len(m.paths))
	for k, v := range m.paths {
		out[k] = v
	}
	return out
}

// unified returns the cgroup2 directory, or "".
func (m *manager) unified() string { return m.paths[""] }

// v1 returns the v1 directory of controller c, or "" if c has no v1 hierarchy.
func (m *manager) v1(c string) string {
	if m.v2only {
		return ""
	}
	return m.paths[c]
}

// dirs returns the distinct directories: v1 ones sorted, then the unified one.
// Comma-mounted controllers (cpu,cpuacct) share a directory.
func (m *manager) dirs() []string {
	seen := map[string]bool{}
	var v1 []string
	for k, d := range m.paths {
		if k != "" && !seen[d] {
			seen[d] = true
			v1 = append(v1, d)
		}
	}
	sort.Strings(v1)
	if u := m.unified(); u != "" && !seen[u] {
		v1 = append(v1, u)
	}
	return v1
}

// Apply creates the cgroups and moves pid into all of them.
func (m *manager) Apply(pid int) error {
	if err := m.create(); err != nil {
		return err
	}
	p := strconv.Itoa(pid)
	for _, d := range m.dirs() {
		if err := writeFile(d, "cgroup.procs", p); err != nil {
			return fmt.Errorf("cgroups: move pid %d: %w", pid, err)
		}
	}
	return nil
}

// create makes every directory and prepares it so that processes can be
// admitted: v1 cpuset needs cpus/mems filled in (new cpusets start empty),
// v2 needs the controllers enabled in every ancestor's subtree_control.
func (m *manager) create() error {
	for _, d := range m.dirs() {
		// One mkdir for the usual case (the parent exists); MkdirAll's
		// stat of every level only when it does not.
		err := unix.Mkdir(d, 0o755)
		if errors.Is(err, unix.ENOENT) {
			err = os.MkdirAll(d, 0o755)
		}
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("cgroups: create %s: %w", d, unwrapErrno(err))
		}
	}
	if d := m.v1("cpuset"); d != "" {
		if err := fillCpuset(d); err != nil {
			return err
		}
	}
	if u := m.unified(); u != "" {
		enableControllers(u)
	}
	return nil
}

// fillCpuset copies cpuset.cpus/mems from the nearest non-empty ancestor
// down to dir, for every level that is still empty.
func fillCpuset(dir string) error {
	type level struct{ dir, cpus, mems string }
	var chain []level
	for d := dir; ; d = filepath.Dir(d) {
		if d == "/" || !exists(d, "cpuset.cpus") {
			break
		}
		cpus, _ := readFile(d, "cpuset.cpus")
		mems, _ := readFile(d, "cpuset.mems")
		if cpus != "" && mems != "" {
			// The nearest filled ancestor: copy its values down.
			for i := len(chain) - 1; i >= 0; i-- {
				l := chain[i]
				for _, f := range [...]struct{ name, cur, want string }{{"cpuset.cpus", l.cpus, cpus}, {"cpuset.mems", l.mems, mems}} {
					if f.cur != "" {
						continue
					}
					if err := writeFile(l.dir, f.name, f.want); err != nil {
						return fmt.Errorf("cgroups: %w", err)
					}
				}
				if l.cpus != "" {
					cpus = l.cpus
				}
				if l.mems != "" {
					mems = l.mems
				}
			}
			return nil
		}
		chain = append(chain, level{d, cpus, mems})
	}
	if len(chain) == 0 {
		return nil
	}
	top := filepath.Dir(chain[len(chain)-1].dir)
	return fmt.Errorf("cgroups: read %s: no cpuset.cpus and cpuset.mems to copy", filepath.Join(top, "cpuset.cpus"))
}

// enableControllers enables, in every ancestor of dir up to the cgroup2
// mount root, all controllers that ancestor has, so dir gets every
// controller the host offers. Failures are ignored: an ancestor that holds
// processes refuses (the "no internal processes" rule), and Set reports the
// missing controller precisely if a limit actually needs it.
func enableControllers(dir string) {
	var chain []string
	for d := filepath.Dir(dir); d != "/" && onCgroup2(d); d = filepath.Dir(d) {
		chain = append(chain, d)
	}
	for i := len(chain) - 1; i >= 0; i-- {
		d := chain[i]
		have := readControllers(d)
		cur, _ := readFile(d, "cgroup.subtree_control")
		enabled := map[string]bool{}
		for _, c := range strings.Fields(cur) {
			enabled[c] = true
		}
		var want []string
		for _, c := range have {
			if !enabled[c] {
				want = append(want, "+"+c)
			}
		}
		if len(want) == 0 {
			continue
		}
		if writeFile(d, "cgroup.subtree_control", strings.Join(want, " ")) != nil {
			for _, w := range want {
				_ = writeFile(d, "cgroup.subtree_control", w)
			}
		}
	}
}

func onCgroup2(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// v2 returns the unified dir if controller c is usable there, or an error
// explaining why not.
func (m *manager) v2(c string) (string, error) {
	u := m.unified()
	if u == "" {
		return "", fmt.Errorf("%s controller is not mounted (neither a v1 hierarchy nor cgroup2)", c)
	}
	for _, have := range readControllers(u) {
		if have == c {
			return u, nil
		}
	}
	return "", fmt.Errorf("%s controller is not available in %s (not in cgroup.controllers: not mounted on this host, or not enabled in the parent's cgroup.subtree_control)", c, u)
}

// controllerDir picks where controller c lives: v1 first, then unified.
func (m *manager) controllerDir(c string) (dir string, v2 bool, err error) {
	if d := m.v1(c); d != "" {
		return d, false, nil
	}
	d, err := m.v2(c)
	return d, true, err
}

// Pids lists the processes of the cgroup and its sub-cgroups.
func (m *manager) Pids() ([]int, error) {
	dir := m.unified()
	if !m.v2only {
		for _, c := range []string{"pids", "freezer", "memory", "cpu", "devices"} {
			if d := m.paths[c]; d != "" {
				dir = d
				break
			}
		}
	}
	if dir == "" {
		for k, d := range m.paths {
			if k != "" {
				dir = d
				break
			}
		}
	}
	pids, err := walkPids(dir)
	if err != nil {
		return nil, fmt.Errorf("cgroups: list pids: %w", err)
	}
	return pids, nil
}

// Destroy removes every leaf directory (and sub-cgroups), never parents.
func (m *manager) Destroy() error {
	var errs []error
	for _, d := range m.dirs() {
		if err := removeTree(d); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cgroups: destroy: %w", errors.Join(errs...))
	}
	return nil
}

// freezeTimeout bounds how long Freeze waits for every task to stop; a task
// stuck in an uninterruptible sleep (e.g. on NFS) can keep a cgroup FREEZING.
const freezeTimeout = 5 * time.Second

func (m *manager) Freeze() error { return m.setFreezer(true) }
func (m *manager) Thaw() error   { return m.setFreezer(false) }

func (m *manager) setFreezer(freeze bool) error {
	if d := m.v1("freezer"); d != "" {
		return freezeV1(d, freeze)
	}
	if u := m.unified(); u != "" && exists(u, "cgroup.freeze") {
		return freezeV2(u, freeze)
	}
	return errors.New("cgroups: no freezer: neither a v1 freezer hierarchy nor cgroup.freeze (cgroup v2, Linux >= 5.2)")
}

// freezeV1 writes freezer.state and polls until the kernel reports the new
// state. Writing FROZEN again while FREEZING nudges tasks that were forking.
func freezeV1(dir string, freeze bool) error {
	want := Thawed
	if freeze {
		want = Frozen
	}
	deadline := time.Now().Add(freezeTimeout)
	delay := 100 * time.Microsecond
	for {
		if err := writeFile(dir, "freezer.state", string(want)); err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
		s, err := readFile(dir, "freezer.state")
		if err != nil {
			return fmt.Errorf("cgroups: read freezer.state: %w", unwrapErrno(err))
		}
		if FreezerState(s) == want {
			return nil
		}
		if time.Now().After(deadline) {
			if freeze {
				_ = writeFile(dir, "freezer.state", string(Thawed))
			}
			return fmt.Errorf("cgroups: %s/freezer.state: still %s after %v waiting for %s", dir, s, freezeTimeout, want)
		}
		time.Sleep(delay)
		if delay < 10*time.Millisecond {
			delay *= 2
		}
	}
}

// freezeV2 writes cgroup.freeze and waits for "frozen" in cgroup.events.
func freezeV2(dir string, freeze bool) error {
	v := "0"
	if freeze {
		v = "1"
	}
	if err := writeFile(dir, "cgroup.freeze", v); err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	deadline := time.Now().Add(freezeTimeout)
	delay := 100 * time.Microsecond
	for {
		ev, err := readKV(dir, "cgroup.events")
		if err != nil {
			return fmt.Errorf("cgroups: read cgroup.events: %w", unwrapErrno(err))
		}
		if (ev["frozen"] == 1) == freeze {
			return nil
		}
		if time.Now().After(deadline) {
			if freeze {
				_ = writeFile(dir, "cgroup.freeze", "0")
			}
			return fmt.Errorf("cgroups: %s/cgroup.events: frozen is %d after %v", dir, ev["frozen"], freezeTimeout)
		}
		time.Sleep(delay)
		if delay < 10*time.Millisecond {
			delay *= 2
		}
	}
}

// State reports the freezer state.
func (m *manager) State() (FreezerState, error) {
	if d := m.v1("freezer"); d != "" {
		s, err := readFile(d, "freezer.state")
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return Undefined, nil
			}
			return Undefined, fmt.Errorf("cgroups: read freezer.state: %w", unwrapErrno(err))
		}
		return FreezerState(s), nil
	}
	u := m.unified()
	if u == "" {
		return Undefined, nil
	}
	s, err := readFile(u, "cgroup.freeze")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Undefined, nil
		}
		return Undefined, fmt.Errorf("cgroups: read cgroup.freeze: %w", unwrapErrno(err))
	}
	if s != "1" {
		return Thawed, nil
	}
	ev, err := readKV(u, "cgroup.events")
	if err != nil {
		return Undefined, fmt.Errorf("cgroups: read cgroup.events: %w", unwrapErrno(err))
	}
	if ev["frozen"] == 1 {
		return Frozen, nil
	}
	return Freezing, nil
}
