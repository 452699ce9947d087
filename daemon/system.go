package daemon

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/api/types/volume"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/api/server"
	cservice "github.com/berth-dev/berth/container/service"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/store"
)

// systemBackend answers /info and /system/df from the image service and
// the container backend.
type systemBackend struct {
	d          *Daemon
	images     *imageBackend
	containers server.ContainerBackend
	volumes    server.VolumeBackend // nil without a container engine
}

var _ server.SystemBackend = (*systemBackend)(nil)

// containerList lists every container; a berthd without a container
// engine has none.
func (s *systemBackend) containerList(ctx context.Context, size bool) ([]container.Summary, error) {
	list, err := s.containers.ContainerList(ctx, server.ListOptions{All: true, Size: size})
	if errdefs.IsNotImplemented(err) {
		return nil, nil
	}
	return list, err
}

func (s *systemBackend) Info(ctx context.Context) (system.Info, error) {
	cfg := s.d.config()
	imgs, err := s.images.svc.List(ctx, store.ListOptions{})
	if err != nil {
		return system.Info{}, err
	}
	ctrs, err := s.containerList(ctx, false)
	if err != nil {
		return system.Info{}, err
	}
	info := system.Info{
		ID:                 s.d.id,
		Containers:         len(ctrs),
		Images:             len(imgs),
		Driver:             "overlayfs",
		DriverStatus:       [][2]string{{"Backing Filesystem", backingFS(cfg.DataRoot)}},
		Plugins:            system.PluginsInfo{Volume: []string{"local"}, Network: []string{}, Log: []string{"json-file"}},
		IPv4Forwarding:     readTrimmed("/proc/sys/net/ipv4/ip_forward") == "1",
		Debug:              cfg.LogLevel == "debug",
		NFd:                countFDs(),
		NGoroutines:        runtime.NumGoroutine(),
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		LoggingDriver:      "json-file",
		CgroupDriver:       "cgroupfs",
		CgroupVersion:      cgroupVersion(),
		NEventsListener:    s.d.bus.Subscribers(),
		KernelVersion:      s.KernelVersion(),
		OSType:             runtime.GOOS,
		Architecture:       machine(),
		IndexServerAddress: "https://index.docker.io/v1/",
		RegistryConfig:     registryConfig(cfg),
		NCPU:               runtime.NumCPU(),
		MemTotal:           memTotal(),
		DockerRootDir:      cfg.DataRoot,
		HTTPProxy:          os.Getenv("HTTP_PROXY"),
		HTTPSProxy:         os.Getenv("HTTPS_PROXY"),
		NoProxy:            os.Getenv("NO_PROXY"),
		Labels:             []string{},
		ExperimentalBuild:  cfg.Experimental,
		ServerVersion:      Version,
		Runtimes:           map[string]system.RuntimeWithStatus{cservice.RuntimeName: {Runtime: system.Runtime{Path: "berth-runtime"}}},
		DefaultRuntime:     cservice.RuntimeName,
		Swarm:              swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive},
		LiveRestoreEnabled: true,
		SecurityOptions:    []string{"name=seccomp,profile=builtin"},
		CDISpecDirs:        []string{},
		Warnings:           []string{},
	}
	if s.d.cfg.Remap != nil {
		info.SecurityOptions = append(info.SecurityOptions, "name=userns")
	}
	info.OperatingSystem, info.OSVersion = osRelease()
	info.Name, _ = os.Hostname()
	for _, c := range ctrs {
		switch c.State {
		case container.StateRunning:
			info.ContainersRunning++
		case container.StatePaused:
			info.ContainersPaused++
		default:
			info.ContainersStopped++
		}
	}
	// Resource controls the cgroup hierarchies offer.
	v1 := info.CgroupVersion == "1"
	has := func(v1path, v2controller string) bool {
		if v1 {
			_, err := os.Stat(filepath.Join("/sys/fs/cgroup", v1path))
			return err == nil
		}
		return strings.Contains(readTrimmed("/sys/fs/cgroup/cgroup.controllers"), v2controller)
	}
	info.MemoryLimit = has("memory", "memory")
	info.SwapLimit = has("memory/memory.memsw.limit_in_bytes", "memory")
	info.CPUCfsPeriod = has("cpu/cpu.cfs_period_us", "cpu")
	info.CPUCfsQuota = info.CPUCfsPeriod
	info.CPUShares = has("cpu/cpu.shares", "cpu")
	info.CPUSet = has("cpuset", "cpuset")
	info.PidsLimit = has("pids", "pids")
	info.OomKillDisable = v1 && info.MemoryLimit
	return info, nil
}

// KernelVersion is the running kernel's release.
func (s *systemBackend) KernelVersion() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func machine() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return runtime.GOARCH
	}
	return unix.ByteSliceToString(u.Machine[:])
}

func registryConfig(cfg Config) *registry.ServiceConfig {
	rc := &registry.ServiceConfig{
		InsecureRegistryCIDRs: []netip.Prefix{netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("127.0.0.0/8")},
		IndexConfigs: map[string]*registry.IndexInfo{
			"docker.io": {Name: "docker.io", Mirrors: append([]string{}, cfg.RegistryMirrors...), Secure: true, Official: true},
		},
		Mirrors: append([]string{}, cfg.RegistryMirrors...),
	}
	for _, r := range cfg.InsecureRegistries {
		if p, err := netip.ParsePrefix(r); err == nil {
			rc.InsecureRegistryCIDRs = append(rc.InsecureRegistryCIDRs, p)
			continue
		}
		rc.IndexConfigs[r] = &registry.IndexInfo{Name: r, Mirrors: []string{}, Secure: false}
	}
	return rc
}

func cgroupVersion() string {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "2"
	}
	return "1"
}

func backingFS(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	switch st.Type {
	case unix.EXT4_SUPER_MAGIC:
		return "extfs"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return fmt.Sprintf("0x%x", st.Type)
}

func memTotal() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// osRelease is PRETTY_NAME and VERSION_ID of /etc/os-release.
func osRelease() (name, version string) {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return "Linux", ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "PRETTY_NAME":
			name = v
		case "VERSION_ID":
			version = v
		}
	}
	if name == "" {
		name = "Linux"
	}
	return name, version
}

func (s *systemBackend) DiskUsage(ctx context.Context, opts server.DiskUsageOptions) (system.DiskUsage, error) {
	want := func(o system.DiskUsageObject) bool {
		if len(opts.Types) == 0 {
			return true
		}
		for _, t := range opts.Types {
			if t == o {
				return true
			}
		}
		return false
	}
	var du system.DiskUsage
	if want(system.ImageObject) {
		imgs, err := s.images.svc.List(ctx, store.ListOptions{})
		if err != nil {
			return du, err
		}
		use := layerUse(imgs)
		iu := &image.DiskUsage{TotalCount: int64(len(imgs)), TotalSize: uniqueLayerBytes(imgs)}
		var active []store.Image
		for _, img := range imgs {
			n := len(s.images.users(img.ID))
			if n > 0 {
				iu.ActiveCount++
				active = append(active, img)
			}
			if opts.Verbose {
				sum, err := s.images.summary(ctx, img)
				if err != nil {
					return du, err
				}
				sum.SharedSize = sharedSize(img, use)
				iu.Items = append(iu.Items, sum)
			}
		}
		iu.Reclaimable = iu.TotalSize - uniqueLayerBytes(active)
		du.ImageUsage = iu
	}
	if want(system.ContainerObject) {
		ctrs, err := s.containerList(ctx, true)
		if err != nil {
			return du, err
		}
		cu := &container.DiskUsage{TotalCount: int64(len(ctrs))}
		for _, c := range ctrs {
			cu.TotalSize += c.SizeRw
			if c.State == container.StateRunning || c.State == container.StatePaused {
				cu.ActiveCount++
			} else {
				cu.Reclaimable += c.SizeRw
			}
		}
		if opts.Verbose {
			cu.Items = ctrs
		}
		du.ContainerUsage = cu
	}
	// No build cache exists in this engine yet.
	if want(system.VolumeObject) {
		du.VolumeUsage = &volume.DiskUsage{}
		if vb, ok := s.volumes.(*volumeBackend); ok {
			du.VolumeUsage = vb.volumeDiskUsage(opts.Verbose)
		}
	}
	if want(system.BuildCacheObject) {
		du.BuildCacheUsage = &build.DiskUsage{}
	}
	return du, nil
}

// engineID is the daemon's persistent random ID (Info.ID), created on
// first start.
func engineID(dataRoot string) (string, error) {
	path := filepath.Join(dataRoot, "engine-id")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read engine id: %w", err)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	h := hex.EncodeToString(raw[:])
	id := fmt.Sprintf("%s-%s-%s-%s-%s", h[:8], h[8:12], h[12:16], h[16:20], h[20:])
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write engine id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write engine id: %w", err)
	}
	return id, nil
}
