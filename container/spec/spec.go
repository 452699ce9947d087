package spec

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/profiles/seccomp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// DefaultCgroupParent is the cgroup (below each hierarchy's root) that
// holds every container's cgroup, like dockerd's "docker" with the
// cgroupfs driver.
const DefaultCgroupParent = "berth"

// DefaultShmSize is the size of /dev/shm unless --shm-size says otherwise.
const DefaultShmSize = 64 << 20

// InitPath is where the --init binary appears inside the container: the
// path Docker uses for its tini, so that tools expecting it find it.
const InitPath = "/sbin/docker-init"

// Input is everything Generate needs about one container.
type Input struct {
	// ID is the container's 64-hex id.
	ID string
	// Config and HostConfig are the container's, as created.
	Config     *container.Config
	HostConfig *container.HostConfig
	// Image, when set, is an image config that Generate merges into a
	// copy of Config (entrypoint, cmd, env, user, workdir). A container
	// record is merged at create and passes none: merging it again would
	// bring back an entrypoint that --entrypoint "" cleared.
	Image ocispec.ImageConfig
	// Rootfs is the container's mounted root filesystem: users and groups
	// are resolved against its /etc files and the working directory is
	// created in it.
	Rootfs string
	// Dir is the container's own directory: hosts, hostname and
	// resolv.conf are written there and bind-mounted into the container.
	Dir string
	// InitBinary is the host path of berth-init, bind-mounted at InitPath
	// when HostConfig.Init is set.
	InitBinary string
	// CgroupParent defaults to DefaultCgroupParent; HostConfig.CgroupParent
	// wins over both.
	CgroupParent string
	// Addresses are the container's IP addresses, named in its /etc/hosts
	// (none until the container has a network).
	Addresses []netip.Addr
	// HostResolvConf defaults to /etc/resolv.conf.
	HostResolvConf string
	// NamespacePaths are the namespaces joined rather than created
	// (/proc/<pid>/ns/... of the containers named by --pid and --ipc
	// container:<id>), by type. Every container: mode needs its path.
	NamespacePaths map[specs.LinuxNamespaceType]string
	// IPCShm, when set, is the host directory bind-mounted at /dev/shm
	// instead of a private tmpfs: the tmpfs the daemon mounted for a
	// shareable IPC, or the /dev/shm of the container whose IPC
	// namespace this one joins (--ipc container:<id>).
	IPCShm string
	// Mounts are the container's volumes, binds and --mount tmpfs,
	// resolved to host paths (--tmpfs comes from HostConfig.Tmpfs).
	Mounts []specs.Mount
	// RootfsPropagation is "rshared" or "rslave" when a bind asks for
	// shared or slave propagation.
	RootfsPropagation string
	// NetNSPath is the network namespace the engine made for the
	// container (its sandbox) or the one it joins (container:<id>);
	// "" lets the runtime make a new, empty one.
	NetNSPath string
	// EmbeddedDNS makes resolv.conf name berthd's embedded DNS server
	// (containers on user-defined networks).
	EmbeddedDNS bool
	// UIDMappings and GIDMappings, when set, give the container a user
	// namespace of its own with these mappings (berthd --userns-remap).
	UIDMappings, GIDMappings []specs.LinuxIDMapping
	// UserNSPath, when set, is the user namespace joined instead (that of
	// the remapped container whose PID or IPC namespace this one joins).
	UserNSPath string
	// Links are the container's legacy links (default bridge): their
	// /etc/hosts lines and environment variables.
	Links []Link
	// HostGateway is the address --add-host NAME:host-gateway names.
	HostGateway netip.Addr
	// NetworkPeer, with --network container:<id>, is that container: as
	// with dockerd, this one takes its hostname and shares its hosts,
	// hostname and resolv.conf files.
	NetworkPeer *NetworkPeer
}

// NetworkPeer is the container whose network namespace a container joins.
type NetworkPeer struct {
	// Dir holds its hosts, hostname and resolv.conf files.
	Dir                  string
	Hostname, Domainname string
}

func (in *Input) hostResolvConf() string {
	if in.HostResolvConf != "" {
		return in.HostResolvConf
	}
	return HostResolvConf
}

// cgroup2Super is CGROUP2_SUPER_MAGIC.
const cgroup2Super = 0x63677270

// hostCgroupV2 reports whether the host runs the unified hierarchy only.
func hostCgroupV2() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == cgroup2Super
}

// SetDefaults fills the fields dockerd fills at create, so that inspect
// shows them: Hostname (the id's first 12 characters, the host's name
// with host networking), ShmSize, IpcMode,
// CgroupnsMode (private on a cgroup v2 host, host on v1, as dockerd),
// NetworkMode, RestartPolicy, and MemorySwap (twice Memory when unset).
func SetDefaults(id string, cfg *container.Config, hc *container.HostConfig) {
	if cfg.Hostname == "" {
		if hc.NetworkMode == "host" {
			cfg.Hostname, _ = osHostname()
		} else if len(id) >= 12 {
			cfg.Hostname = id[:12]
		}
	}
	if hc.ShmSize == 0 {
		hc.ShmSize = DefaultShmSize
	}
	if hc.IpcMode == "" {
		hc.IpcMode = container.IPCModePrivate
	}
	if hc.CgroupnsMode == "" {
		hc.CgroupnsMode = container.CgroupnsModeHost
		if hostCgroupV2() {
			hc.CgroupnsMode = container.CgroupnsModePrivate
		}
	}
	if hc.NetworkMode == "" {
		hc.NetworkMode = "default"
	}
	if hc.RestartPolicy.Name == "" {
		hc.RestartPolicy.Name = container.RestartPolicyDisabled
	}
	if hc.Memory > 0 && hc.MemorySwap == 0 {
		hc.MemorySwap = 2 * hc.Memory
	}
}

// ValidateNetworkMode refuses what dockerd refuses at create with
// --network container:<id>, in its order: a container that shares
// another's network has that one's hostname, names, resolvers and ports.
// It checks the request as sent, before SetDefaults and the image's
// config (whose EXPOSE does not count).
func ValidateNetworkMode(cfg *container.Config, hc *container.HostConfig) error {
	if !hc.NetworkMode.IsContainer() {
		return nil
	}
	switch {
	case cfg.Hostname != "":
		return invalid("conflicting options: hostname and the network mode")
	case len(hc.DNS) > 0:
		return invalid("conflicting options: dns and the network mode")
	case len(hc.ExtraHosts) > 0:
		return invalid("conflicting options: custom host-to-IP mapping and the network mode")
	case len(hc.PortBindings) > 0 || hc.PublishAllPorts:
		return invalid("conflicting options: port publishing and the container type network mode")
	case len(cfg.ExposedPorts) > 0:
		return invalid("conflicting options: port exposing and the container type network mode")
	}
	return nil
}

// Validate checks what can be checked without the rootfs, with dockerd's
// messages: the command, working dir, stop signal, capabilities, ulimits,
// resources, device rules, namespaces modes and security options. Call it
// at create (after MergeImageConfig); Generate calls it too.
func Validate(cfg *container.Config, hc *container.HostConfig) error {
	if cfg == nil || hc == nil {
		return invalid("container config and host config are required")
	}
	if len(processArgs(cfg)) == 0 {
		return invalid("No command specified")
	}
	if cfg.WorkingDir != "" && !path.IsAbs(cfg.WorkingDir) {
		return invalid("the working directory '%s' is invalid, it needs to be an absolute path", cfg.WorkingDir)
	}
	if cfg.StopSignal != "" {
		if _, err := ParseSignal(cfg.StopSignal); err != nil {
			return err
		}
	}
	if _, err := Capabilities(hc.CapAdd, hc.CapDrop, false); err != nil {
		return err
	}
	if hc.OomScoreAdj < -1000 || hc.OomScoreAdj > 1000 {
		return invalid("Invalid value %d, range for oom score adj is [-1000, 1000]", hc.OomScoreAdj)
	}
	if hc.ShmSize < 0 {
		return invalid("SHM size can not be less than 0")
	}
	if !hc.CgroupnsMode.Valid() {
		return invalid("invalid cgroup namespace mode: %v", hc.CgroupnsMode)
	}
	if hc.IpcMode.IsContainer() && hc.IpcMode.Container() == "" {
		return invalid("invalid IPC mode: %v", hc.IpcMode)
	}
	if hc.PidMode.IsContainer() && hc.PidMode.Container() == "" {
		return invalid("invalid PID mode: %v", hc.PidMode)
	}
	if !hc.IpcMode.Valid() {
		return invalid("invalid IPC mode: %v", hc.IpcMode)
	}
	if !hc.PidMode.Valid() {
		return invalid("invalid PID mode: %v", hc.PidMode)
	}
	if !hc.UTSMode.Valid() {
		return invalid("invalid UTS mode: %v", hc.UTSMode)
	}
	if hc.UsernsMode != "" && !hc.UsernsMode.IsHost() {
		return invalid("invalid USER mode: %v", hc.UsernsMode)
	}
	if _, err := securityOpts(hc.SecurityOpt); err != nil {
		return err
	}
	if err := validateUnsupported(hc); err != nil {
		return err
	}
	for _, e := range hc.ExtraHosts {
		if _, _, err := parseExtraHost(e); err != nil {
			return err
		}
	}
	return validateResources(&hc.Resources)
}

// validateUnsupported refuses the HostConfig fields berth cannot honour
// on Linux, naming the flag, rather than ignoring them.
func validateUnsupported(hc *container.HostConfig) error {
	if hc.Isolation != "" && !hc.Isolation.IsDefault() {
		return invalid("Invalid isolation: %q - linux only supports 'default'", hc.Isolation)
	}
	if hc.Cgroup != "" {
		return fmt.Errorf("--cgroup %q: joining another container's cgroup: %w", hc.Cgroup, errdefs.ErrNotImplemented)
	}
	if len(hc.StorageOpt) > 0 {
		return invalid("--storage-opt is supported only for overlay over xfs with 'pquota' mount option")
	}
	switch hc.Runtime {
	case "", RuntimeName, "runc":
	default:
		return invalid("Unknown runtime specified %s", hc.Runtime)
	}
	return nil
}

// RuntimeName is the runtime a container records (HostConfig.Runtime);
// "runc" is accepted too: berth-runtime takes its place.
const RuntimeName = "berth-runtime"

// security is what --security-opt asks for.
type security struct {
	seccompProfile  string // "" default, "unconfined", or a JSON profile
	noNewPrivileges bool
	// systemPathsUnconfined (systempaths=unconfined) unmasks /proc and
	// /sys paths.
	systemPathsUnconfined bool
}

// lsmEnabled says whether the host runs AppArmor or SELinux.
func lsmEnabled(name string) bool {
	switch name {
	case "apparmor":
		b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
		return err == nil && strings.TrimSpace(string(b)) == "Y"
	case "label":
		_, err := os.Stat("/sys/fs/selinux/enforce")
		return err == nil
	}
	return false
}

func securityOpts(opts []string) (security, error) {
	var s security
	for i, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			k, v, ok = strings.Cut(o, ":")
		}
		switch {
		case k == "no-new-privileges" && (!ok || v == "true"):
			s.noNewPrivileges = true
		case k == "no-new-privileges" && v == "false":
			s.noNewPrivileges = false
		case k == "seccomp" && ok && v == "builtin":
			s.seccompProfile = "" // the default profile, by name
		case k == "seccomp" && ok && v != "":
			s.seccompProfile = v
		case k == "label" && ok && v == "disable", k == "apparmor" && ok && v == "unconfined":
			// Confinement off: what berth does anyway.
		case (k == "apparmor" || k == "label") && ok:
			lsm := map[string]string{"apparmor": "AppArmor", "label": "SELinux"}[k]
			if lsmEnabled(k) {
				return s, fmt.Errorf("--security-opt %s: berth cannot apply %s profiles or labels: %w", o, lsm, errdefs.ErrNotImplemented)
			}
			return s, invalid("--security-opt %s: %s is not enabled on this host", o, lsm)
		case k == "systempaths" && ok && v == "unconfined":
			s.systemPathsUnconfined = true
		default:
			return s, invalid("invalid --security-opt %d: %q", i+1, o)
		}
	}
	return s, nil
}

// Generate returns the OCI runtime spec of the container, writes its
// hosts, hostname and resolv.conf into in.Dir, and creates its working
// directory inside the rootfs (owned by root, mode 0755, as dockerd does
// at start) when it is missing.
func Generate(in Input) (*specs.Spec, error) {
	if len(in.ID) < 12 {
		return nil, invalid("container id %q is too short", in.ID)
	}
	if in.Config == nil || in.HostConfig == nil {
		return nil, invalid("container %s: config and host config are required", in.ID)
	}
	cfg := *in.Config
	cfg.Env = slices.Clone(cfg.Env)
	hc := *in.HostConfig
	MergeImageConfig(&cfg, in.Image)
	SetDefaults(in.ID, &cfg, &hc)
	in.Config, in.HostConfig = &cfg, &hc
	if err := Validate(&cfg, &hc); err != nil {
		return nil, err
	}
	sec, _ := securityOpts(hc.SecurityOpt)

	hostname, domainname := cfg.Hostname, cfg.Domainname
	filesDir := in.Dir
	if p := in.NetworkPeer; p != nil {
		hostname, domainname, filesDir = p.Hostname, p.Domainname, p.Dir
	}
	if hc.UTSMode.IsHost() {
		hostname, _ = osHostname()
		domainname = ""
	}

	user, err := ResolveUser(in.Rootfs, cfg.User, hc.GroupAdd)
	if err != nil {
		return nil, err
	}
	cwd := "/"
	if cfg.WorkingDir != "" {
		cwd = path.Clean(cfg.WorkingDir)
		if err := makeWorkdir(in.Rootfs, cwd); err != nil {
			return nil, err
		}
	}

	caps, err := Capabilities(hc.CapAdd, hc.CapDrop, hc.Privileged)
	if err != nil {
		return nil, err
	}
	args := processArgs(&cfg)
	var mounts []specs.Mount
	mounts = append(mounts, defaultMounts(&hc)...)
	nDefault := len(mounts)
	if hc.Init != nil && *hc.Init {
		if in.InitBinary == "" {
			return nil, fmt.Errorf("container %s: --init: no init binary configured: %w", in.ID, errdefs.ErrFailedPrecondition)
		}
		mounts = append(mounts, specs.Mount{Destination: InitPath, Type: "bind", Source: in.InitBinary, Options: []string{"bind", "ro"}})
		args = append([]string{InitPath, "--"}, args...)
	}
	if in.NetworkPeer == nil {
		if err := writeFiles(in.Dir, &in, hostname, domainname); err != nil {
			return nil, err
		}
	}
	fileOpts := []string{"rbind", "rprivate"}
	if hc.ReadonlyRootfs {
		fileOpts = []string{"rbind", "ro", "rprivate"}
	}
	for _, f := range []struct{ dst, name string }{
		{"/etc/resolv.conf", ResolvConfFile}, {"/etc/hostname", HostnameFile}, {"/etc/hosts", HostsFile},
	} {
		mounts = append(mounts, specs.Mount{Destination: f.dst, Type: "bind", Source: filepath.Join(filesDir, f.name), Options: slices.Clone(fileOpts)})
	}
	mounts = withUserMounts(mounts, nDefault, &in, &hc)

	var rlimits []specs.POSIXRlimit
	for _, u := range hc.Ulimits {
		r, err := rlimit(u)
		if err != nil {
			return nil, err
		}
		rlimits = append(rlimits, r)
	}

	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal: cfg.Tty,
			User:     specs.User{UID: user.UID, GID: user.GID, AdditionalGids: user.AdditionalGids},
			Args:     args,
			Env:      processEnvLinks(&cfg, hostname, in.Links),
			Cwd:      cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: slices.Clone(caps), Permitted: slices.Clone(caps),
			},
			Rlimits:         rlimits,
			NoNewPrivileges: sec.noNewPrivileges,
			OOMScoreAdj:     intPtr(hc.OomScoreAdj),
		},
		Root:     &specs.Root{Path: in.Rootfs, Readonly: hc.ReadonlyRootfs},
		Hostname: hostname,
		Mounts:   mounts,
		Linux: &specs.Linux{
			Sysctl:      sysctls(&hc, domainname),
			CgroupsPath: cgroupsPath(&in, &hc),
			Namespaces:  namespaces(&hc, in.NetNSPath),
		},
	}
	if err := joinNamespaces(s, &in, &hc); err != nil {
		return nil, err
	}
	if in.UserNSPath != "" || len(in.UIDMappings) > 0 {
		// Joined or new, the mappings say what the namespace maps (runc
		// fills them in for a joined one too).
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: in.UserNSPath})
		s.Linux.UIDMappings, s.Linux.GIDMappings = in.UIDMappings, in.GIDMappings
	}
	if hc.UTSMode.IsHost() {
		s.Hostname = ""
	}
	s.Linux.RootfsPropagation = in.RootfsPropagation
	if h, w := hc.ConsoleSize[0], hc.ConsoleSize[1]; cfg.Tty && h > 0 && w > 0 {
		s.Process.ConsoleSize = &specs.Box{Height: h, Width: w}
	}

	devs, devRules, err := Devices(&hc)
	if err != nil {
		return nil, err
	}
	s.Linux.Devices = devs
	s.Linux.Resources = linuxResources(&hc.Resources, devRules)
	if err := blockIO(&hc.Resources, s.Linux.Resources.BlockIO); err != nil {
		return nil, err
	}
	if len(hc.Annotations) > 0 {
		s.Annotations = maps.Clone(hc.Annotations)
	}
	if hc.Umask != nil {
		s.Process.User.Umask = hc.Umask
	}

	if !hc.Privileged {
		s.Linux.MaskedPaths = slices.Clone(DefaultMaskedPaths)
		s.Linux.ReadonlyPaths = slices.Clone(DefaultReadonlyPaths)
		if hc.MaskedPaths != nil {
			s.Linux.MaskedPaths = slices.Clone(hc.MaskedPaths)
		}
		if hc.ReadonlyPaths != nil {
			s.Linux.ReadonlyPaths = slices.Clone(hc.ReadonlyPaths)
		}
		if sec.systemPathsUnconfined {
			s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
		}
		switch sec.seccompProfile {
		case "unconfined":
		case "":
			if s.Linux.Seccomp, err = seccomp.GetDefaultProfile(s); err != nil {
				return nil, fmt.Errorf("container %s: default seccomp profile: %w", in.ID, err)
			}
		default:
			if s.Linux.Seccomp, err = seccomp.LoadProfile(sec.seccompProfile, s); err != nil {
				return nil, fmt.Errorf("container %s: seccomp profile: %w: %w", in.ID, err, errdefs.ErrInvalidArgument)
			}
		}
	}
	return s, nil
}

// makeWorkdir creates dir inside rootfs (every symlink resolved inside
// it) when missing. An existing non-directory is dockerd's error. A
// dangling symlink on the way is refused rather than followed: pathrs
// will not create directories through it.
func makeWorkdir(rootfs, dir string) error {
	if h, err := pathrs.OpenInRoot(rootfs, dir); err == nil {
		var st unix.Stat_t
		serr := unix.Fstat(int(h.Fd()), &st)
		h.Close()
		if serr == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return invalid("Cannot mkdir: %s is not a directory", dir)
		}
		return nil
	}
	if err := pathrs.MkdirAll(rootfs, dir, 0o755); err != nil {
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EEXIST) {
			return invalid("Cannot mkdir: %s is not a directory (%v)", dir, err)
		}
		return fmt.Errorf("create working directory %s in %s: %w", dir, rootfs, err)
	}
	return nil
}

func cgroupsPath(in *Input, hc *container.HostConfig) string {
	parent := in.CgroupParent
	if parent == "" {
		parent = DefaultCgroupParent
	}
	if hc.CgroupParent != "" {
		parent = hc.CgroupParent
	}
	return path.Join("/", parent, in.ID)
}

// joinNamespaces points the namespaces of --pid/--ipc container:<id> at
// the paths the caller resolved, and gives a joined IPC namespace the
// other container's /dev/shm, as dockerd does.
func joinNamespaces(s *specs.Spec, in *Input, hc *container.HostConfig) error {
	for _, m := range []struct {
		typ       specs.LinuxNamespaceType
		flag      string
		container string
	}{{specs.PIDNamespace, "--pid", hc.PidMode.Container()}, {specs.IPCNamespace, "--ipc", hc.IpcMode.Container()}} {
		if m.container == "" {
			continue
		}
		p := in.NamespacePaths[m.typ]
		if p == "" {
			return fmt.Errorf("container %s: %s container:%s: the namespace to join was not resolved: %w", in.ID, m.flag, m.container, errdefs.ErrFailedPrecondition)
		}
		for i := range s.Linux.Namespaces {
			if s.Linux.Namespaces[i].Type == m.typ {
				s.Linux.Namespaces[i].Path = p
			}
		}
	}
	if hc.IpcMode.IsContainer() && in.IPCShm == "" {
		return fmt.Errorf("container %s: --ipc %s: no /dev/shm to share: %w", in.ID, hc.IpcMode, errdefs.ErrFailedPrecondition)
	}
	if in.IPCShm != "" {
		for i, m := range s.Mounts {
			if m.Destination == "/dev/shm" {
				s.Mounts[i] = specs.Mount{Destination: "/dev/shm", Type: "bind", Source: in.IPCShm, Options: []string{"rbind", "nosuid", "noexec", "nodev"}}
			}
		}
	}
	return nil
}

func namespaces(hc *container.HostConfig, netnsPath string) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	if hc.NetworkMode != "host" {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: netnsPath})
	}
	if !hc.UTSMode.IsHost() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.UTSNamespace})
	}
	if !hc.PidMode.IsHost() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	if !hc.IpcMode.IsHost() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.IPCNamespace})
	}
	if hc.CgroupnsMode.IsPrivate() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return ns
}

// sysctls are dockerd's: unprivileged ports and ping for a container with
// its own network namespace, the domain name, then the user's.
func sysctls(hc *container.HostConfig, domainname string) map[string]string {
	out := map[string]string{}
	if hc.NetworkMode != "host" {
		out["net.ipv4.ip_unprivileged_port_start"] = "0"
		out["net.ipv4.ping_group_range"] = "0 2147483647"
	}
	if domainname != "" && !hc.UTSMode.IsHost() {
		out["kernel.domainname"] = domainname
	}
	for k, v := range hc.Sysctls {
		out[k] = v
	}
	return out
}

func intPtr(v int) *int { return &v }

func osHostname() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	return unix.ByteSliceToString(u.Nodename[:]), nil
}
