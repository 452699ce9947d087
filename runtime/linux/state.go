package linux

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/replace"
	"github.com/berth-dev/berth/runtime/cgroups"
	"github.com/berth-dev/berth/runtime/rawio"
)

// Status values, as the OCI runtime spec names them (plus runc's "paused").
const (
	Creating = "creating"
	Created  = "created"
	Running  = "running"
	Stopped  = "stopped"
	Paused   = "paused"
)

const (
	stateFile = "state.json"
	fifoName  = "exec.fifo"
)

// State is what survives between runtime invocations: each command is a
// fresh process that finds its container here, in <root>/<id>/state.json.
type State struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	InitPid     int               `json:"init_pid"`
	InitStart   uint64            `json:"init_start"` // guards against pid reuse
	Created     time.Time         `json:"created"`
	CgroupPaths map[string]string `json:"cgroup_paths"`
	Owner       string            `json:"owner"`
	// Config is the spec the container was created with. Load leaves it
	// nil (see Spec): decoding a whole specs.Spec builds encoding/json's
	// codec for its entire type tree, a fifth of a delete's CPU time,
	// and most commands need no more than the hooks and annotations.
	Config *specs.Spec `json:"config"`

	rawConfig  json.RawMessage // Config as stored (or as read from the bundle)
	rawCurrent bool            // rawConfig says what Config says: save may write it as it is
	lite       *configLite
	dir        string
}

// configLite is the part of the config that start, delete and state read.
type configLite struct {
	Hooks       *specs.Hooks      `json:"hooks,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Spec returns the container's config, decoding it on first use. The
// caller may change it; save then encodes it.
func (s *State) Spec() (*specs.Spec, error) {
	s.rawCurrent = false
	if s.Config == nil && len(s.rawConfig) > 0 {
		c, err := decodeSpec(s.rawConfig)
		if err != nil {
			return nil, fmt.Errorf("container %q: corrupt config in %s: %w", s.ID, filepath.Join(s.dir, stateFile), err)
		}
		s.Config = c
	}
	if s.Config == nil {
		return nil, fmt.Errorf("container %q has no config yet", s.ID)
	}
	return s.Config, nil
}

// execLinux is the part of linux that exec needs.
type execLinux struct {
	Namespaces []specs.LinuxNamespace `json:"namespaces,omitempty"`
	Seccomp    *specs.LinuxSeccomp    `json:"seccomp,omitempty"`
}

// execConfig returns the namespaces and seccomp config of the container,
// decoding only them (not the whole spec's type tree).
func (s *State) execConfig() (*execLinux, error) {
	if s.Config != nil {
		if s.Config.Linux == nil {
			return nil, fmt.Errorf("container %q: config has no linux section", s.ID)
		}
		return &execLinux{Namespaces: s.Config.Linux.Namespaces, Seccomp: s.Config.Linux.Seccomp}, nil
	}
	var c struct {
		Linux *execLinux `json:"linux"`
	}
	if len(s.rawConfig) == 0 {
		return nil, fmt.Errorf("container %q has no config yet", s.ID)
	}
	if err := json.Unmarshal(s.rawConfig, &c); err != nil {
		return nil, fmt.Errorf("container %q: corrupt config in %s: %w", s.ID, filepath.Join(s.dir, stateFile), err)
	}
	if c.Linux == nil {
		return nil, fmt.Errorf("container %q: config has no linux section", s.ID)
	}
	return c.Linux, nil
}

// configLite returns the hooks and annotations without decoding the rest
// of the config. A config that does not decode has none.
func (s *State) configLite() *configLite {
	if s.Config != nil {
		return &configLite{Hooks: s.Config.Hooks, Annotations: s.Config.Annotations}
	}
	if s.lite == nil {
		s.lite = &configLite{}
		if len(s.rawConfig) > 0 {
			json.Unmarshal(s.rawConfig, s.lite)
		}
	}
	return s.lite
}

// badIDRune is false for what runc allows in ids: [A-Za-z0-9_+.-]. (A
// regexp would do, but compiling one costs every runtime invocation.)
func badIDRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_+-.", r))
}

// ValidateID refuses ids that are not safe as a single path element.
func ValidateID(id string) error {
	if id == "" || id == "." || id == ".." || len(id) > 1024 || strings.IndexFunc(id, badIDRune) >= 0 {
		return fmt.Errorf("invalid container id %q: use letters, digits, and . _ + -", id)
	}
	return nil
}

// notExistError says container id has no state under the root. It
// matches os.ErrNotExist (delete --force treats it as done, as runc does),
// and its text says "does not exist", which containerd's shim looks for.
type notExistError string

func (e notExistError) Error() string        { return fmt.Sprintf("container %q does not exist", string(e)) }
func (e notExistError) Is(target error) bool { return target == os.ErrNotExist }

// Load reads the state of container id under root.
func Load(root, id string) (*State, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	dir := filepath.Join(root, id)
	b, err := rawio.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, derr := os.Stat(dir); derr == nil {
				return &State{ID: id, dir: dir}, nil // still being created
			}
			return nil, notExistError(id)
		}
		return nil, fmt.Errorf("container %q: read state: %w", id, err)
	}
	// The outer Config (depth 0) shadows State's: it is kept as it is.
	type state State
	var d struct {
		*state
		Config json.RawMessage `json:"config"`
	}
	s := &State{}
	d.state = (*state)(s)
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("container %q: corrupt state %s: %w", id, filepath.Join(dir, stateFile), err)
	}
	if string(d.Config) != "null" {
		s.rawConfig, s.rawCurrent = d.Config, true
	}
	s.dir = dir
	return s, nil
}

// save replaces the state atomically (temp file, rename). No fsync: the
// state lives on /run and means nothing after a power loss, when every
// container is gone too.
func (s *State) save() error {
	type state State
	var b []byte
	var err error
	if s.rawCurrent {
		b, err = json.Marshal(struct {
			*state
			Config json.RawMessage `json:"config"`
		}{(*state)(s), s.rawConfig})
	} else {
		// Through linuxSpec, the type the config was decoded as (its
		// encoders exist; specs.Spec's other platforms are never set).
		b, err = json.Marshal(struct {
			*state
			Config *linuxSpec `json:"config"`
		}{(*state)(s), toLinuxSpec(s.Config)})
	}
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.dir, stateFile), b, 0o600)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), mode)
	}
	if err == nil {
		err = replace.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Status derives the container's status from the kernel's view of its
// first process, never from a recorded string that could go stale.
func (s *State) Status() string {
	if s.InitPid == 0 {
		return Creating
	}
	if !s.initAlive() {
		return Stopped
	}
	if _, err := os.Lstat(filepath.Join(s.dir, fifoName)); err == nil {
		return Created
	}
	if s.CgroupPaths != nil {
		if m, err := cgroups.Load(s.CgroupPaths); err == nil {
			if st, err := m.State(); err == nil && st == cgroups.Frozen {
				return Paused
			}
		}
	}
	return Running
}

func (s *State) initAlive() bool {
	st, start, err := procStat(s.InitPid)
	return err == nil && start == s.InitStart && st != 'Z' && st != 'X'
}

// procStat returns a process's state letter and start time (clock ticks).
func procStat(pid int) (byte, uint64, error) {
	b, err := rawio.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return f[0][0], start, nil
}

// OCIState is the state document of the OCI runtime spec (what `state`
// prints and what hooks read on stdin).
func (s *State) OCIState() specs.State {
	st := specs.State{Version: specs.Version, ID: s.ID, Status: specs.ContainerState(s.Status()), Bundle: s.Bundle}
	if st.Status != Stopped {
		st.Pid = s.InitPid
	}
	st.Annotations = s.configLite().Annotations
	return st
}

// lock takes an exclusive lock on the container's directory for the
// lifetime of one command, so that start/kill/delete do not interleave.
func (s *State) lock() (func(), error) {
	fd, err := unix.Open(s.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("container %q: %w", s.ID, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("container %q: lock: %w", s.ID, err)
	}
	return func() { unix.Close(fd) }, nil
}

// loadLocked loads a container and holds its lock for the rest of the
// command (release with the returned func).
func loadLocked(root, id string) (*State, func(), error) {
	s, err := Load(root, id)
	if err != nil {
		return nil, nil, err
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, nil, err
	}
	return s, unlock, nil
}

// List returns the states of every container under root.
func List(root string) ([]*State, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*State
	for _, e := range ents {
		if !e.IsDir() || ValidateID(e.Name()) != nil {
			continue
		}
		s, err := Load(root, e.Name())
		if err != nil {
			continue // removed while we looked
		}
		out = append(out, s)
	}
	return out, nil
}

// seccompCache is where compiled seccomp programs are kept under a state
// root: "@" cannot start a container id, so no container collides with it
// and List passes it by.
func seccompCache(root string) string { return filepath.Join(root, "@seccomp") }
