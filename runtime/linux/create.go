package linux

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime/cgroups"
	"github.com/berth-dev/berth/runtime/rawio"
	"github.com/berth-dev/berth/runtime/seccomp"
)

// CreateOptions are the knobs of `create` and `run`.
type CreateOptions struct {
	Root          string // state directory (--root)
	ID            string
	Bundle        string
	PidFile       string
	ConsoleSocket string // path of a unix socket that receives the pty master
	NoPivot       bool
	NoNewKeyring  bool // share the caller's session keyring instead of a fresh one
	PreserveFds   int
	Stdin         *os.File
	Stdout        *os.File
	Stderr        *os.File
	console       *os.File    // already-connected console socket (run with a terminal)
	spec          *specs.Spec // already loaded by the caller
	rawSpec       []byte      // spec's config.json, as read
}

// Create builds the container up to the point where only the user's
// program is left to exec, and leaves it waiting for Start.
func Create(o CreateOptions) (*State, error) {
	return create(o, true)
}

func create(o CreateOptions, wait bool) (_ *State, retErr error) {
	if err := ValidateID(o.ID); err != nil {
		return nil, err
	}
	bundle, err := filepath.Abs(o.Bundle)
	if err != nil {
		return nil, err
	}
	spec, raw := o.spec, o.rawSpec
	if spec == nil {
		if spec, raw, err = loadSpec(bundle); err != nil {
			return nil, err
		}
	}
	rootfs := spec.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	if rootfs, err = filepath.EvalSymlinks(rootfs); err != nil {
		return nil, fmt.Errorf("rootfs %s: %w", spec.Root.Path, err)
	}
	if st, err := os.Stat(rootfs); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("rootfs %s is not a directory", rootfs)
	}
	if err := validate(spec); err != nil {
		return nil, err
	}
	// Bind sources are relative to the bundle (OCI runtime spec), not to
	// wherever the runtime happens to be started.
	for i, m := range spec.Mounts {
		bind := m.Type == "bind" || hasOption(m.Options, "bind") || hasOption(m.Options, "rbind")
		if bind && m.Source != "" && !filepath.IsAbs(m.Source) {
			spec.Mounts[i].Source = filepath.Join(bundle, m.Source)
			raw = nil // the state must record the absolute source
		}
	}
	filter, err := seccomp.CompileCached(spec.Linux.Seccomp, seccompCache(o.Root), Version)
	if err != nil {
		return nil, fmt.Errorf("config: linux.seccomp: %w", err)
	}

	if err := os.MkdirAll(o.Root, 0o700); err != nil {
		return nil, fmt.Errorf("create state root %s: %w", o.Root, err)
	}
	dir := filepath.Join(o.Root, o.ID)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container with id %q already exists", o.ID)
		}
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	s := &State{ID: o.ID, Bundle: bundle, Rootfs: rootfs, Created: time.Now().UTC(), Config: spec, dir: dir}
	if raw != nil {
		// The state records the config as read: re-encoding it costs more.
		s.rawConfig, s.rawCurrent = raw, true
	}
	if u, err := user.Current(); err == nil {
		s.Owner = u.Username
	}
	var cg cgroups.Manager
	defer func() {
		if retErr != nil {
			if cg != nil {
				if pids, err := cg.Pids(); err == nil {
					for _, p := range pids {
						unix.Kill(p, unix.SIGKILL)
					}
				}
				destroyCgroup(cg)
			}
			os.RemoveAll(dir)
		}
	}()

	cgPath := ""
	if spec.Linux != nil {
		cgPath = spec.Linux.CgroupsPath
	}
	if cg, err = cgroups.New(cgPath, o.ID); err != nil {
		return nil, err
	}
	resources := withDefaultDevices(spec)
	req := &spawnRequest{
		cgroup:      cg,
		preserve:    o.PreserveFds,
		stdio:       stdio{o.Stdin, o.Stdout, o.Stderr},
		oomScoreAdj: spec.Process.OOMScoreAdj,
		console:     o.console,
		resources:   resources,
	}
	if err := namespacesFor(spec, req); err != nil {
		return nil, err
	}
	if spec.Process.Terminal && req.console == nil {
		if o.ConsoleSocket == "" {
			return nil, errors.New("process.terminal is set: --console-socket is required")
		}
		if req.console, err = dialConsole(o.ConsoleSocket); err != nil {
			return nil, err
		}
		defer req.console.Close()
	} else if !spec.Process.Terminal && o.ConsoleSocket != "" {
		return nil, errors.New("--console-socket given but process.terminal is false")
	}
	if wait {
		fifo := filepath.Join(dir, fifoName)
		if err := unix.Mkfifo(fifo, 0o622); err != nil {
			return nil, fmt.Errorf("create exec fifo: %w", err)
		}
		// In a new user namespace the container's root has no power over
		// host root's files: give it the fifo it must open for writing.
		uids, gids := req.uidMaps, req.gidMaps
		if len(uids) == 0 && hasNSType(spec, specs.UserNamespace) {
			// A joined user namespace: the spec's mappings say whose root
			// opens the fifo.
			uids, gids = spec.Linux.UIDMappings, spec.Linux.GIDMappings
		}
		if uid, gid, ok := mappedRoot(uids, gids); ok {
			if err := os.Chown(fifo, uid, gid); err != nil {
				return nil, fmt.Errorf("chown exec fifo to the container's root %d:%d: %w", uid, gid, err)
			}
		}
		if req.fifo, err = os.OpenFile(fifo, unix.O_PATH|unix.O_CLOEXEC, 0); err != nil {
			return nil, fmt.Errorf("open exec fifo: %w", err)
		}
		defer req.fifo.Close()
	}
	hooks := spec.Hooks
	hasRuntimeHooks := hooks != nil && (len(hooks.Prestart) > 0 || len(hooks.CreateRuntime) > 0)
	req.config = &initConfig{
		ID: o.ID, Spec: newInitSpec(spec), Rootfs: rootfs, Bundle: bundle, NoPivot: o.NoPivot, NoNewKeyring: o.NoNewKeyring, Seccomp: filter,
		SyncHooks: hasRuntimeHooks, CgroupNS: req.cloneFlags&unix.CLONE_NEWCGROUP != 0,
		NewUserNS: req.cloneFlags&unix.CLONE_NEWUSER != 0 || hasNSType(spec, specs.UserNamespace),
	}
	if hasRuntimeHooks {
		req.onHooks = func(pid int) error {
			st := s.OCIState()
			st.Status, st.Pid = Creating, pid
			if err := runHooks("prestart", hooks.Prestart, st); err != nil {
				return err
			}
			return runHooks("createRuntime", hooks.CreateRuntime, st)
		}
	}
	req.config.CgroupPaths = cg.Paths()
	sp, err := spawn(req)
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", o.ID, err)
	}
	sp.sock.Close()
	s.InitPid = sp.pid
	s.CgroupPaths = cg.Paths()
	if _, s.InitStart, err = procStat(sp.pid); err != nil {
		return nil, fmt.Errorf("container process %d: %w", sp.pid, err)
	}
	if err := s.save(); err != nil {
		return nil, err
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, sp.pid); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func writePidFile(path string, pid int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	return writeFileAtomic(abs, []byte(strconv.Itoa(pid)), 0o644)
}

// loadSpec reads and decodes the bundle's config.json; it returns the
// bytes too.
func loadSpec(bundle string) (*specs.Spec, []byte, error) {
	path := filepath.Join(bundle, "config.json")
	b, err := rawio.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read bundle config: %w", err)
	}
	spec, err := decodeSpec(b)
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return spec, b, nil
}

// linuxSpec is specs.Spec without the sections of other platforms
// (Solaris, Windows, VM, z/OS, FreeBSD), which a Linux runtime ignores:
// encoding/json builds the codec of every type a struct can hold the first
// time it decodes one, and those sections are a fifth of specs.Spec's
// types.
type linuxSpec struct {
	Version     string            `json:"ociVersion"`
	Process     *specs.Process    `json:"process,omitempty"`
	Root        *specs.Root       `json:"root,omitempty"`
	Hostname    string            `json:"hostname,omitempty"`
	Domainname  string            `json:"domainname,omitempty"`
	Mounts      []specs.Mount     `json:"mounts,omitempty"`
	Hooks       *specs.Hooks      `json:"hooks,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Linux       *specs.Linux      `json:"linux,omitempty"`
}

func toLinuxSpec(s *specs.Spec) *linuxSpec {
	if s == nil {
		return nil
	}
	return &linuxSpec{
		Version: s.Version, Process: s.Process, Root: s.Root, Hostname: s.Hostname, Domainname: s.Domainname,
		Mounts: s.Mounts, Hooks: s.Hooks, Annotations: s.Annotations, Linux: s.Linux,
	}
}

// decodeSpec decodes a config.json for this runtime.
func decodeSpec(b []byte) (*specs.Spec, error) {
	var l linuxSpec
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, err
	}
	return &specs.Spec{
		Version: l.Version, Process: l.Process, Root: l.Root, Hostname: l.Hostname, Domainname: l.Domainname,
		Mounts: l.Mounts, Hooks: l.Hooks, Annotations: l.Annotations, Linux: l.Linux,
	}, nil
}

func destroyCgroup(cg cgroups.Manager) {
	// The kernel needs a moment to let go of a cgroup whose last process just died.
	for i := 0; i < 50; i++ {
		if err := cg.Destroy(); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dialConsole(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect to console socket %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), "console-socket"), nil
}

var nsFlags = map[specs.LinuxNamespaceType]uint32{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	specs.TimeNamespace:    unix.CLONE_NEWTIME,
}

func hasNSType(spec *specs.Spec, t specs.LinuxNamespaceType) bool {
	if spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}

// mappedRoot returns the host uid and gid of the container's root in the
// user namespace the mappings describe; ok is false without mappings or
// when root is not mapped.
func mappedRoot(uidMaps, gidMaps []specs.LinuxIDMapping) (uid, gid int, ok bool) {
	host := func(maps []specs.LinuxIDMapping) (int, bool) {
		for _, m := range maps {
			if m.ContainerID == 0 && m.Size > 0 {
				return int(m.HostID), true
			}
		}
		return 0, false
	}
	uid, uok := host(uidMaps)
	gid, gok := host(gidMaps)
	return uid, gid, uok && gok
}

// namespacesFor turns linux.namespaces into clone flags and joins.
func namespacesFor(spec *specs.Spec, req *spawnRequest) error {
	for _, ns := range spec.Linux.Namespaces {
		flag := nsFlags[ns.Type]
		if ns.Path == "" {
			req.cloneFlags |= flag
		} else {
			req.joins = append(req.joins, nsPath{flag: flag, path: ns.Path})
		}
	}
	if req.cloneFlags&unix.CLONE_NEWUSER != 0 {
		req.uidMaps, req.gidMaps = spec.Linux.UIDMappings, spec.Linux.GIDMappings
	}
	if req.cloneFlags&unix.CLONE_NEWTIME != 0 {
		for clock, off := range spec.Linux.TimeOffsets {
			req.timeOffsets += fmt.Sprintf("%s %d %d\n", clock, off.Secs, off.Nanosecs)
		}
	}
	return nil
}

// withDefaultDevices adds to a device allow-list the devices every
// container has, as runc does: the v2 device program denies whatever no
// rule allows.
func withDefaultDevices(spec *specs.Spec) *specs.LinuxResources {
	r := spec.Linux.Resources
	if r == nil || len(r.Devices) == 0 {
		return r
	}
	c := *r
	rule := func(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		d := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
		if major >= 0 {
			d.Major = &major
		}
		if minor >= 0 {
			d.Minor = &minor
		}
		return d
	}
	c.Devices = append([]specs.LinuxDeviceCgroup{}, r.Devices...)
	c.Devices = append(c.Devices,
		rule("c", -1, -1, "m"), rule("b", -1, -1, "m"),
		rule("c", 1, 3, "rwm"), rule("c", 1, 5, "rwm"), rule("c", 1, 7, "rwm"), rule("c", 1, 8, "rwm"),
		rule("c", 1, 9, "rwm"), rule("c", 5, 0, "rwm"), rule("c", 5, 1, "rwm"), rule("c", 5, 2, "rwm"),
		rule("c", 136, -1, "rwm"))
	// The spec's own devices get no rule here: as with runc, access to
	// them is what resources.devices grants (docker run --device X:r
	// must stay read-only).
	return &c
}

// initSpec is the part of the spec the container process acts on. The
// rest (resources, seccomp, namespaces) the runtime has already applied.
// It travels as its own small type, not as a specs.Spec: encoding/json
// builds its codec for a struct type's whole tree the first time it meets
// it, and specs.Spec's tree (every resource, Windows, VM, ...) was a fifth
// of the container process's own CPU time.
type initSpec struct {
	Process           *specs.Process      `json:"process,omitempty"`
	Root              *specs.Root         `json:"root,omitempty"`
	Hostname          string              `json:"hostname,omitempty"`
	Domainname        string              `json:"domainname,omitempty"`
	Mounts            []specs.Mount       `json:"mounts,omitempty"`
	Annotations       map[string]string   `json:"annotations,omitempty"`
	CreateContainer   []specs.Hook        `json:"createContainer,omitempty"`
	StartContainer    []specs.Hook        `json:"startContainer,omitempty"`
	Linux             bool                `json:"linux,omitempty"` // the spec has a linux section
	Sysctl            map[string]string   `json:"sysctl,omitempty"`
	MaskedPaths       []string            `json:"maskedPaths,omitempty"`
	ReadonlyPaths     []string            `json:"readonlyPaths,omitempty"`
	RootfsPropagation string              `json:"rootfsPropagation,omitempty"`
	Devices           []specs.LinuxDevice `json:"devices,omitempty"`
}

func newInitSpec(spec *specs.Spec) *initSpec {
	s := &initSpec{
		Process: spec.Process, Root: spec.Root, Hostname: spec.Hostname, Domainname: spec.Domainname,
		Mounts: spec.Mounts, Annotations: spec.Annotations,
	}
	if h := spec.Hooks; h != nil {
		s.CreateContainer, s.StartContainer = h.CreateContainer, h.StartContainer
	}
	if l := spec.Linux; l != nil {
		s.Linux = true
		s.Sysctl, s.MaskedPaths, s.ReadonlyPaths = l.Sysctl, l.MaskedPaths, l.ReadonlyPaths
		s.RootfsPropagation, s.Devices = l.RootfsPropagation, l.Devices
	}
	return s
}

// spec rebuilds the specs.Spec the container process's setup reads.
func (s *initSpec) spec() *specs.Spec {
	spec := &specs.Spec{
		Process: s.Process, Root: s.Root, Hostname: s.Hostname, Domainname: s.Domainname,
		Mounts: s.Mounts, Annotations: s.Annotations,
	}
	if spec.Root == nil {
		spec.Root = &specs.Root{}
	}
	if len(s.CreateContainer) > 0 || len(s.StartContainer) > 0 {
		spec.Hooks = &specs.Hooks{CreateContainer: s.CreateContainer, StartContainer: s.StartContainer}
	}
	if s.Linux {
		spec.Linux = &specs.Linux{
			Sysctl: s.Sysctl, MaskedPaths: s.MaskedPaths, ReadonlyPaths: s.ReadonlyPaths,
			RootfsPropagation: s.RootfsPropagation, Devices: s.Devices,
		}
	}
	return spec
}
