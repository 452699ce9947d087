// Package runopts owns the flags of docker run and docker create and
// turns them into the Engine API's container Config, HostConfig and
// NetworkingConfig the way Docker's CLI does, so the daemon receives
// the same request from berth as from docker.
package runopts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/docker/cli/opts"
	"github.com/docker/go-connections/nat"
	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/pflag"
)

// Options are the parsed flags of run/create.
type Options struct {
	attach      opts.ListOpts
	env         opts.ListOpts
	envFile     opts.ListOpts
	labels      opts.ListOpts
	labelFile   opts.ListOpts
	volumes     opts.ListOpts
	tmpfs       opts.ListOpts
	publish     opts.ListOpts
	expose      opts.ListOpts
	capAdd      opts.ListOpts
	capDrop     opts.ListOpts
	securityOpt opts.ListOpts
	devices     opts.ListOpts
	groupAdd    opts.ListOpts
	logOpts     opts.ListOpts
	dns         opts.ListOpts
	dnsOptions  opts.ListOpts
	dnsSearch   opts.ListOpts
	extraHosts  opts.ListOpts
	volumesFrom opts.ListOpts
	links       opts.ListOpts
	aliases     opts.ListOpts
	sysctls     *opts.MapOpts
	storageOpt  opts.ListOpts
	ulimits     *opts.UlimitOpt
	mounts      opts.MountOpt
	memory      opts.MemBytes
	memReserve  opts.MemBytes
	memSwap     opts.MemSwapBytes
	shmSize     opts.MemBytes
	cpus        opts.NanoCPUs
	ulimitMap   map[string]*container.Ulimit

	// Name is --name.
	Name string
	// Platform is --platform.
	Platform string
	// Pull is --pull: missing, always or never.
	Pull string
	// AutoRemove is --rm.
	AutoRemove bool
	// Interactive is -i, TTY is -t.
	Interactive, TTY bool
	// CIDFile is --cidfile.
	CIDFile string
	// Quiet is -q: no pull output.
	Quiet bool
	// DisableContentTrust is --disable-content-trust (see
	// ContentTrustDefault).
	DisableContentTrust bool

	user, workdir, entrypoint, hostname, domainname, restart string
	stopSignal, logDriver, network, ip, ip6, macAddress      string
	pid, ipc, uts, userns, cgroupns, cgroupParent, runtime   string
	isolation, volumeDriver                                  string
	cpuShares, cpuPeriod, cpuQuota, pidsLimit, memSwappiness int64
	cpusetCpus, cpusetMems                                   string
	blkioWeight                                              uint16
	oomScoreAdj, stopTimeout                                 int
	init, privileged, readOnly, publishAll, oomKillDisable   bool
	healthCmd                                                string
	healthInterval, healthTimeout, healthStartPeriod         time.Duration
	healthRetries                                            int
	noHealthcheck                                            bool
	extra                                                    extraOpts
}

// AddFlags registers the flags shared by run and create on fs.
func AddFlags(fs *pflag.FlagSet) *Options {
	o := &Options{
		attach: opts.NewListOpts(validateAttach), env: opts.NewListOpts(opts.ValidateEnv),
		envFile: opts.NewListOpts(nil), labels: opts.NewListOpts(opts.ValidateLabel),
		labelFile: opts.NewListOpts(nil), volumes: opts.NewListOpts(nil), tmpfs: opts.NewListOpts(nil),
		publish: opts.NewListOpts(nil), expose: opts.NewListOpts(nil), capAdd: opts.NewListOpts(nil),
		capDrop: opts.NewListOpts(nil), securityOpt: opts.NewListOpts(nil), devices: opts.NewListOpts(nil),
		groupAdd: opts.NewListOpts(nil), logOpts: opts.NewListOpts(nil), dns: opts.NewListOpts(opts.ValidateIPAddress),
		dnsOptions: opts.NewListOpts(nil), dnsSearch: opts.NewListOpts(opts.ValidateDNSSearch),
		extraHosts: opts.NewListOpts(opts.ValidateExtraHost), volumesFrom: opts.NewListOpts(nil),
		links: opts.NewListOpts(opts.ValidateLink), aliases: opts.NewListOpts(nil),
		sysctls: opts.NewMapOpts(nil, opts.ValidateSysctl), storageOpt: opts.NewListOpts(nil),
		ulimitMap: map[string]*container.Ulimit{},
	}
	o.ulimits = opts.NewUlimitOpt(&o.ulimitMap)
	fs.SetInterspersed(false)
	fs.VarP(&o.attach, "attach", "a", "Attach to STDIN, STDOUT or STDERR")
	fs.VarP(&o.env, "env", "e", "Set environment variables")
	fs.Var(&o.envFile, "env-file", "Read in a file of environment variables")
	fs.VarP(&o.labels, "label", "l", "Set meta data on a container")
	fs.Var(&o.labelFile, "label-file", "Read in a line delimited file of labels")
	fs.VarP(&o.volumes, "volume", "v", "Bind mount a volume")
	fs.Var(&o.mounts, "mount", "Attach a filesystem mount to the container")
	fs.Var(&o.tmpfs, "tmpfs", "Mount a tmpfs directory")
	fs.VarP(&o.publish, "publish", "p", "Publish a container's port(s) to the host")
	fs.Var(&o.expose, "expose", "Expose a port or a range of ports")
	fs.BoolVarP(&o.publishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	fs.Var(&o.capAdd, "cap-add", "Add Linux capabilities")
	fs.Var(&o.capDrop, "cap-drop", "Drop Linux capabilities")
	fs.Var(&o.securityOpt, "security-opt", "Security Options")
	fs.Var(&o.devices, "device", "Add a host device to the container")
	fs.Var(&o.groupAdd, "group-add", "Add additional groups to join")
	fs.Var(&o.logOpts, "log-opt", "Log driver options")
	fs.StringVar(&o.logDriver, "log-driver", "", "Logging driver for the container")
	fs.Var(&o.dns, "dns", "Set custom DNS servers")
	fs.Var(&o.dnsOptions, "dns-option", "Set DNS options")
	fs.Var(&o.dnsSearch, "dns-search", "Set custom DNS search domains")
	fs.Var(&o.extraHosts, "add-host", "Add a custom host-to-IP mapping (host:ip)")
	fs.Var(&o.volumesFrom, "volumes-from", "Mount volumes from the specified container(s)")
	fs.Var(&o.links, "link", "Add link to another container")
	fs.Var(&o.aliases, "network-alias", "Add network-scoped alias for the container")
	fs.Var(o.sysctls, "sysctl", "Sysctl options")
	fs.Var(&o.storageOpt, "storage-opt", "Storage driver options for the container")
	fs.Var(o.ulimits, "ulimit", "Ulimit options")
	fs.VarP(&o.memory, "memory", "m", "Memory limit")
	fs.Var(&o.memReserve, "memory-reservation", "Memory soft limit")
	fs.Var(&o.memSwap, "memory-swap", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
	fs.Int64Var(&o.memSwappiness, "memory-swappiness", -1, "Tune container memory swappiness (0 to 100)")
	fs.Var(&o.shmSize, "shm-size", "Size of /dev/shm")
	fs.Var(&o.cpus, "cpus", "Number of CPUs")
	fs.Int64VarP(&o.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fs.Int64Var(&o.cpuPeriod, "cpu-period", 0, "Limit CPU CFS (Completely Fair Scheduler) period")
	fs.Int64Var(&o.cpuQuota, "cpu-quota", 0, "Limit CPU CFS (Completely Fair Scheduler) quota")
	fs.StringVar(&o.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	fs.StringVar(&o.cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	fs.Int64Var(&o.pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	fs.Uint16Var(&o.blkioWeight, "blkio-weight", 0, "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)")
	fs.BoolVar(&o.oomKillDisable, "oom-kill-disable", false, "Disable OOM Killer")
	fs.IntVar(&o.oomScoreAdj, "oom-score-adj", 0, "Tune host's OOM preferences (-1000 to 1000)")
	fs.StringVarP(&o.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	fs.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	fs.StringVar(&o.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	fs.StringVarP(&o.hostname, "hostname", "h", "", "Container host name")
	fs.StringVar(&o.domainname, "domainname", "", "Container NIS domain name")
	fs.StringVar(&o.restart, "restart", "no", "Restart policy to apply when a container exits")
	fs.StringVar(&o.stopSignal, "stop-signal", "", "Signal to stop a container")
	fs.IntVar(&o.stopTimeout, "stop-timeout", 0, "Timeout (in seconds) to stop a container")
	fs.StringVar(&o.network, "network", "default", "Connect a container to a network")
	fs.StringVar(&o.network, "net", "default", "Connect a container to a network")
	fs.MarkHidden("net")
	fs.StringVar(&o.ip, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	fs.StringVar(&o.ip6, "ip6", "", "IPv6 address (e.g., 2001:db8::33)")
	fs.StringVar(&o.macAddress, "mac-address", "", "Container MAC address (e.g., 92:d0:c6:0a:29:33)")
	fs.StringVar(&o.pid, "pid", "", "PID namespace to use")
	fs.StringVar(&o.ipc, "ipc", "", "IPC mode to use")
	fs.StringVar(&o.uts, "uts", "", "UTS namespace to use")
	fs.StringVar(&o.userns, "userns", "", "User namespace to use")
	fs.StringVar(&o.cgroupns, "cgroupns", "", "Cgroup namespace to use (host|private)")
	fs.StringVar(&o.cgroupParent, "cgroup-parent", "", "Optional parent cgroup for the container")
	fs.StringVar(&o.runtime, "runtime", "", "Runtime to use for this container")
	fs.StringVar(&o.isolation, "isolation", "", "Container isolation technology")
	fs.StringVar(&o.volumeDriver, "volume-driver", "", "Optional volume driver for the container")
	fs.BoolVar(&o.init, "init", false, "Run an init inside the container that forwards signals and reaps processes")
	fs.BoolVar(&o.privileged, "privileged", false, "Give extended privileges to this container")
	fs.BoolVar(&o.readOnly, "read-only", false, "Mount the container's root filesystem as read only")
	fs.StringVar(&o.healthCmd, "health-cmd", "", "Command to run to check health")
	fs.DurationVar(&o.healthInterval, "health-interval", 0, "Time between running the check (ms|s|m|h) (default 0s)")
	fs.DurationVar(&o.healthTimeout, "health-timeout", 0, "Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
	fs.DurationVar(&o.healthStartPeriod, "health-start-period", 0, "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)")
	fs.IntVar(&o.healthRetries, "health-retries", 0, "Consecutive failures needed to report unhealthy")
	fs.BoolVar(&o.noHealthcheck, "no-healthcheck", false, "Disable any container-specified HEALTHCHECK")
	fs.StringVar(&o.Name, "name", "", "Assign a name to the container")
	fs.StringVar(&o.Platform, "platform", "", "Set platform if server is multi-platform capable")
	fs.StringVar(&o.Pull, "pull", "missing", `Pull image before running ("always"|"missing"|"never")`)
	fs.BoolVar(&o.AutoRemove, "rm", false, "Automatically remove the container when it exits")
	fs.BoolVarP(&o.Interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	fs.BoolVarP(&o.TTY, "tty", "t", false, "Allocate a pseudo-TTY")
	fs.StringVar(&o.CIDFile, "cidfile", "", "Write the container ID to the file")
	fs.BoolVarP(&o.Quiet, "quiet", "q", false, "Suppress the pull output")
	fs.BoolVar(&o.DisableContentTrust, "disable-content-trust", ContentTrustDefault(), "Skip image verification")
	o.extra.addFlags(fs)
	return o
}

func validateAttach(val string) (string, error) {
	s := strings.ToLower(val)
	for _, str := range []string{"stdin", "stdout", "stderr"} {
		if s == str {
			return s, nil
		}
	}
	return val, errors.New("valid streams are STDIN, STDOUT and STDERR")
}

// Config is the request Options make for one image and command.
type Config struct {
	Config     *container.Config
	HostConfig *container.HostConfig
	Network    *network.NetworkingConfig
}

// Parse builds the create request from the flags (fs tells which were
// set) and the positional arguments: the image and its command.
func (o *Options) Parse(fs *pflag.FlagSet, args []string) (*Config, error) {
	img, cmd := args[0], args[1:]
	attachStdin := o.attach.Get("stdin")
	attachStdout := o.attach.Get("stdout")
	attachStderr := o.attach.Get("stderr")
	if o.Interactive {
		attachStdin = true
	}
	if o.attach.Len() == 0 {
		attachStdout, attachStderr = true, true
	}
	if o.Interactive && o.attach.Len() > 0 && !o.attach.Get("stdin") {
		// docker -a stdout -i: stdin stays attached because of -i.
		attachStdin = true
	}

	var binds []string
	volumes := map[string]struct{}{}
	for _, v := range o.volumes.GetSlice() {
		if isAnonymousVolume(v) {
			volumes[v] = struct{}{}
			continue
		}
		binds = append(binds, v)
	}
	tmpfs := map[string]string{}
	for _, t := range o.tmpfs.GetSlice() {
		dst, opt, _ := strings.Cut(t, ":")
		if !path.IsAbs(dst) {
			return nil, fmt.Errorf("invalid tmpfs mount %q: destination must be an absolute path", t)
		}
		tmpfs[dst] = opt
	}

	exposed, bindings, err := ports(o.publish.GetSlice(), o.expose.GetSlice())
	if err != nil {
		return nil, err
	}

	env, err := opts.ReadKVEnvStrings(o.envFile.GetSlice(), o.env.GetSlice())
	if err != nil {
		return nil, err
	}
	labels, err := opts.ReadKVStrings(o.labelFile.GetSlice(), o.labels.GetSlice())
	if err != nil {
		return nil, err
	}

	var entrypoint []string
	if o.entrypoint != "" {
		entrypoint = []string{o.entrypoint}
	} else if fs.Changed("entrypoint") {
		// --entrypoint "" clears the image's entrypoint.
		entrypoint = []string{""}
	}

	restart, err := parseRestartPolicy(o.restart)
	if err != nil {
		return nil, err
	}
	if o.AutoRemove && restart.Name != "" && restart.Name != container.RestartPolicyDisabled {
		return nil, errors.New("Conflicting options: --restart and --rm")
	}

	health, err := o.healthConfig()
	if err != nil {
		return nil, err
	}
	secOpts, err := securityOpts(o.securityOpt.GetSlice())
	if err != nil {
		return nil, err
	}
	devices := make([]container.DeviceMapping, 0, len(o.devices.GetSlice()))
	for _, d := range o.devices.GetSlice() {
		dm, err := parseDevice(d)
		if err != nil {
			return nil, err
		}
		devices = append(devices, dm)
	}
	logOpts, err := kvMap(o.logOpts.GetSlice(), "log-opt")
	if err != nil {
		return nil, err
	}
	storageOpts, err := kvMap(o.storageOpt.GetSlice(), "storage-opt")
	if err != nil {
		return nil, err
	}

	cfg := &container.Config{
		Hostname: o.hostname, Domainname: o.domainname, User: o.user,
		ExposedPorts: exposed, Tty: o.TTY, OpenStdin: o.Interactive,
		AttachStdin: attachStdin, AttachStdout: attachStdout, AttachStderr: attachStderr,
		Env: env, Cmd: cmd, Image: img, Volumes: volumes, WorkingDir: o.workdir,
		Entrypoint: entrypoint, Labels: opts.ConvertKVStringsToMap(labels),
		StopSignal: o.stopSignal, Healthcheck: health,
	}
	if len(cmd) == 0 {
		cfg.Cmd = nil
	}
	if cfg.OpenStdin && cfg.AttachStdin {
		cfg.StdinOnce = true
	}
	if fs.Changed("stop-timeout") {
		t := o.stopTimeout
		cfg.StopTimeout = &t
	}
	if o.macAddress != "" {
		if _, err := opts.ValidateMACAddress(o.macAddress); err != nil {
			return nil, fmt.Errorf("%s is not a valid mac address", o.macAddress)
		}
	}

	hc := &container.HostConfig{
		Binds: binds, ContainerIDFile: o.CIDFile, LogConfig: container.LogConfig{Type: o.logDriver, Config: logOpts},
		NetworkMode: container.NetworkMode(o.network), PortBindings: bindings, RestartPolicy: restart,
		AutoRemove: o.AutoRemove, VolumeDriver: o.volumeDriver, VolumesFrom: o.volumesFrom.GetSlice(),
		CapAdd: o.capAdd.GetSlice(), CapDrop: o.capDrop.GetSlice(), CgroupnsMode: container.CgroupnsMode(o.cgroupns),
		DNS: addrs(o.dns.GetSlice()), DNSOptions: o.dnsOptions.GetAllOrEmpty(), DNSSearch: o.dnsSearch.GetAllOrEmpty(),
		ExtraHosts: o.extraHosts.GetSlice(), GroupAdd: o.groupAdd.GetSlice(), IpcMode: container.IpcMode(o.ipc),
		Links: o.links.GetSlice(), OomScoreAdj: o.oomScoreAdj, PidMode: container.PidMode(o.pid),
		Privileged: o.privileged, PublishAllPorts: o.publishAll, ReadonlyRootfs: o.readOnly,
		SecurityOpt: secOpts, StorageOpt: storageOpts, Tmpfs: tmpfs, UTSMode: container.UTSMode(o.uts),
		UsernsMode: container.UsernsMode(o.userns), ShmSize: o.shmSize.Value(), Sysctls: o.sysctls.GetAll(),
		Runtime: o.runtime, Isolation: container.Isolation(o.isolation), Mounts: o.mounts.Value(),
		Resources: container.Resources{
			CgroupParent: o.cgroupParent, Memory: o.memory.Value(), MemoryReservation: o.memReserve.Value(),
			MemorySwap: o.memSwap.Value(), NanoCPUs: o.cpus.Value(), CPUShares: o.cpuShares,
			CPUPeriod: o.cpuPeriod, CPUQuota: o.cpuQuota, CpusetCpus: o.cpusetCpus, CpusetMems: o.cpusetMems,
			BlkioWeight: o.blkioWeight, Devices: devices, Ulimits: ulimits(o.ulimits.GetList()),
			BlkioWeightDevice: []*blkiodev.WeightDevice{},
		},
	}
	if len(hc.Tmpfs) == 0 {
		hc.Tmpfs = nil
	}
	if o.memSwappiness != -1 {
		s := o.memSwappiness
		hc.MemorySwappiness = &s
	}
	if fs.Changed("oom-kill-disable") {
		v := o.oomKillDisable
		hc.OomKillDisable = &v
	}
	if fs.Changed("pids-limit") {
		v := o.pidsLimit
		hc.PidsLimit = &v
	}
	if fs.Changed("init") {
		v := o.init
		hc.Init = &v
	}
	if err := o.extra.apply(cfg, hc); err != nil {
		return nil, err
	}

	netCfg := &network.NetworkingConfig{}
	if o.ip != "" || o.ip6 != "" || o.aliases.Len() > 0 || o.macAddress != "" {
		ep := &network.EndpointSettings{Aliases: o.aliases.GetSlice()}
		if o.ip != "" || o.ip6 != "" {
			ep.IPAMConfig = &network.EndpointIPAMConfig{}
			if o.ip != "" {
				a, err := netip.ParseAddr(o.ip)
				if err != nil {
					return nil, fmt.Errorf("invalid IPv4 address: %s", o.ip)
				}
				ep.IPAMConfig.IPv4Address = a
			}
			if o.ip6 != "" {
				a, err := netip.ParseAddr(o.ip6)
				if err != nil {
					return nil, fmt.Errorf("invalid IPv6 address: %s", o.ip6)
				}
				ep.IPAMConfig.IPv6Address = a
			}
		}
		if o.macAddress != "" {
			mac, err := parseMAC(o.macAddress)
			if err != nil {
				return nil, err
			}
			ep.MacAddress = mac
		}
		netCfg.EndpointsConfig = map[string]*network.EndpointSettings{o.network: ep}
	}
	return &Config{Config: cfg, HostConfig: hc, Network: netCfg}, nil
}

// isAnonymousVolume reports whether a -v value names only a container
// path (a new anonymous volume) rather than source:target[:mode].
func isAnonymousVolume(v string) bool {
	return !strings.Contains(v, ":") && path.IsAbs(v)
}

// addrs parses validated addresses; none is an empty list, not null, as
// Docker's CLI sends it.
func addrs(ss []string) []netip.Addr {
	out := []netip.Addr{}
	for _, s := range ss {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

func ulimits(l []*container.Ulimit) []*container.Ulimit {
	if len(l) == 0 {
		return nil
	}
	return l
}

// parseRestartPolicy splits name[:max-retries] and leaves the name to
// the daemon to judge, as Docker 20.10's CLI does.
func parseRestartPolicy(policy string) (container.RestartPolicy, error) {
	p := container.RestartPolicy{}
	if policy == "" {
		return p, nil
	}
	parts := strings.Split(policy, ":")
	if len(parts) > 2 {
		return p, errors.New("invalid restart policy format")
	}
	if len(parts) == 2 {
		n, err := strconv.Atoi(parts[1])
		if err != nil {
			return p, errors.New("maximum retry count must be an integer")
		}
		p.MaximumRetryCount = n
	}
	p.Name = container.RestartPolicyMode(parts[0])
	return p, nil
}

func (o *Options) healthConfig() (*container.HealthConfig, error) {
	have := o.healthCmd != "" || o.healthInterval != 0 || o.healthTimeout != 0 || o.healthStartPeriod != 0 || o.healthRetries != 0
	if o.noHealthcheck {
		if have {
			return nil, errors.New("--no-healthcheck conflicts with --health-* options")
		}
		return &container.HealthConfig{Test: []string{"NONE"}}, nil
	}
	if !have {
		return nil, nil
	}
	var probe []string
	if o.healthCmd != "" {
		probe = []string{"CMD-SHELL", o.healthCmd}
	}
	switch {
	case o.healthInterval < 0:
		return nil, errors.New("--health-interval cannot be negative")
	case o.healthTimeout < 0:
		return nil, errors.New("--health-timeout cannot be negative")
	case o.healthRetries < 0:
		return nil, errors.New("--health-retries cannot be negative")
	case o.healthStartPeriod < 0:
		return nil, errors.New("--health-start-period cannot be negative")
	}
	return &container.HealthConfig{Test: probe, Interval: o.healthInterval, Timeout: o.healthTimeout,
		StartPeriod: o.healthStartPeriod, Retries: o.healthRetries}, nil
}

// securityOpts checks --security-opt values and inlines a seccomp
// profile file's JSON, as the daemon expects the profile itself.
func securityOpts(in []string) ([]string, error) {
	var out []string
	for _, opt := range in {
		k, v, ok := strings.Cut(opt, "=")
		if !ok && k != "no-new-privileges" {
			if !strings.Contains(opt, ":") {
				return nil, fmt.Errorf("Invalid --security-opt: %q", opt)
			}
			k, v, _ = strings.Cut(opt, ":")
		}
		if k == "seccomp" && v != "unconfined" && v != "builtin" {
			f, err := os.ReadFile(v)
			if err != nil {
				return nil, fmt.Errorf("opening seccomp profile (%s) failed: %w", v, err)
			}
			var b bytes.Buffer
			if err := json.Compact(&b, f); err != nil {
				return nil, fmt.Errorf("compacting json for seccomp profile (%s) failed: %w", v, err)
			}
			opt = "seccomp=" + b.String()
		}
		out = append(out, opt)
	}
	return out, nil
}

// parseDevice parses host[:container][:permissions].
func parseDevice(d string) (container.DeviceMapping, error) {
	parts := strings.Split(d, ":")
	src, dst, perms := "", "", "rwm"
	switch len(parts) {
	case 3:
		if !validPerms(parts[2]) {
			return container.DeviceMapping{}, fmt.Errorf("invalid device specification: %s", d)
		}
		src, dst, perms = parts[0], parts[1], parts[2]
	case 2:
		if validPerms(parts[1]) {
			src, perms = parts[0], parts[1]
		} else {
			src, dst = parts[0], parts[1]
		}
	case 1:
		src = parts[0]
	default:
		return container.DeviceMapping{}, fmt.Errorf("invalid device specification: %s", d)
	}
	if dst == "" {
		dst = src
	}
	if !path.IsAbs(dst) {
		return container.DeviceMapping{}, fmt.Errorf("invalid device specification: %s", d)
	}
	return container.DeviceMapping{PathOnHost: src, PathInContainer: dst, CgroupPermissions: perms}, nil
}

func validPerms(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c != 'r' && c != 'w' && c != 'm' {
			return false
		}
	}
	return true
}

func kvMap(kvs []string, flag string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("invalid %s: %s", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

func parseMAC(s string) (network.HardwareAddr, error) {
	var mac network.HardwareAddr
	if err := mac.UnmarshalText([]byte(s)); err != nil {
		return nil, fmt.Errorf("%s is not a valid mac address", s)
	}
	return mac, nil
}

// ports turns -p and --expose into the exposed set and host bindings.
func ports(publish, expose []string) (network.PortSet, network.PortMap, error) {
	natExposed, natBindings, err := nat.ParsePortSpecs(publish)
	if err != nil {
		return nil, nil, err
	}
	exposed := network.PortSet{}
	bindings := network.PortMap{}
	for p := range natExposed {
		np, err := network.ParsePort(string(p))
		if err != nil {
			return nil, nil, err
		}
		exposed[np] = struct{}{}
	}
	for p, bs := range natBindings {
		np, err := network.ParsePort(string(p))
		if err != nil {
			return nil, nil, err
		}
		for _, b := range bs {
			pb := network.PortBinding{HostPort: b.HostPort}
			if b.HostIP != "" {
				a, err := netip.ParseAddr(b.HostIP)
				if err != nil {
					return nil, nil, fmt.Errorf("invalid IP address %q: %w", b.HostIP, err)
				}
				pb.HostIP = a
			}
			bindings[np] = append(bindings[np], pb)
		}
	}
	for _, e := range expose {
		if strings.Contains(e, ":") {
			return nil, nil, fmt.Errorf("invalid port format for --expose: %s", e)
		}
		proto, rng := nat.SplitProtoPort(e)
		start, end, err := nat.ParsePortRange(rng)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid range format for --expose: %s, error: %w", e, err)
		}
		for i := start; i <= end; i++ {
			np, err := network.ParsePort(strconv.FormatUint(i, 10) + "/" + proto)
			if err != nil {
				return nil, nil, err
			}
			exposed[np] = struct{}{}
		}
	}
	if len(exposed) == 0 {
		exposed = nil
	}
	return exposed, bindings, nil
}

// ContentTrustDefault is --disable-content-trust's default, as docker's:
// true unless DOCKER_CONTENT_TRUST asks for signed images.
func ContentTrustDefault() bool {
	on, _ := strconv.ParseBool(os.Getenv("DOCKER_CONTENT_TRUST"))
	return !on
}

// ErrContentTrust refuses a request for signed images: berth verifies no
// signatures, and must not pretend to.
var ErrContentTrust = errors.New("content trust (DOCKER_CONTENT_TRUST=1 or --disable-content-trust=false) is not supported: berth does not verify image signatures")
