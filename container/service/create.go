package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/container/logs"
	"github.com/berth-dev/berth/container/names"
	"github.com/berth-dev/berth/container/spec"
	"github.com/berth-dev/berth/container/store"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/snapshot"
)

// CreateOptions are a create request.
type CreateOptions struct {
	// Name is "" for a generated one.
	Name       string
	Config     *container.Config
	HostConfig *container.HostConfig
	// Networking is the request's NetworkingConfig (may be nil).
	Networking *network.NetworkingConfig
}

// Create makes a container: its record, with the image's config merged
// in as dockerd does, and its writable snapshot on the image. It returns
// the container's id and dockerd's warnings.
func (s *Service) Create(ctx context.Context, o CreateOptions) (string, []string, error) {
	cfg, hc := o.Config, o.HostConfig
	if cfg == nil {
		return "", nil, fmt.Errorf("config cannot be empty in order to create a container: %w", errdefs.ErrInvalidArgument)
	}
	if hc == nil {
		hc = &container.HostConfig{}
	}
	if cfg.Image == "" {
		return "", nil, fmt.Errorf("No command specified: %w", errdefs.ErrInvalidArgument)
	}
	img, err := s.opts.Images.Get(ctx, cfg.Image)
	if err != nil {
		if errdefs.IsNotFound(err) {
			name := cfg.Image
			if n, perr := reference.Parse(name); perr == nil {
				name = reference.FamiliarString(n) // dockerd names the tag: nosuch:latest
			}
			return "", nil, fmt.Errorf("No such image: %s: %w", name, errdefs.ErrNotFound)
		}
		return "", nil, err
	}
	imgCfg, err := s.imageConfig(ctx, img.ID.String())
	if err != nil {
		return "", nil, err
	}
	name := ""
	if o.Name != "" {
		if name, err = names.Validate(o.Name); err != nil {
			return "", nil, err
		}
	} // else the store generates one while it holds its name index

	if hc.LogConfig.Type != "" && hc.LogConfig.Type != "json-file" && hc.LogConfig.Type != "none" {
		return "", nil, fmt.Errorf("logger: no log driver named '%s' is registered: %w", hc.LogConfig.Type, errdefs.ErrInvalidArgument)
	}
	if _, err := logs.ParseOptions(hc.LogConfig.Config); err != nil {
		return "", nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}

	if err := validateRestartPolicy(hc.RestartPolicy, hc.AutoRemove); err != nil {
		return "", nil, err
	}
	if err := spec.ValidateNetworkMode(cfg, hc); err != nil {
		return "", nil, err
	}

	id := newID()
	spec.MergeImageConfig(cfg, imgCfg)
	// --entrypoint "" arrives as [""]: the merge took neither the image's
	// entrypoint nor its cmd (as dockerd's); the empty string goes.
	if len(cfg.Entrypoint) == 1 && cfg.Entrypoint[0] == "" {
		cfg.Entrypoint = nil
	}
	imgHealth, err := s.imageHealthcheck(ctx, img.ID.String())
	if err != nil {
		return "", nil, err
	}
	MergeHealthcheck(cfg, imgHealth)
	if err := ValidateHealthcheck(cfg.Healthcheck); err != nil {
		return "", nil, err
	}
	spec.SetDefaults(id, cfg, hc)
	warnings := adaptConfig(cfg, hc)
	warnings = append(warnings, spec.DiscardUnsupported(hc)...)
	if err := spec.Validate(cfg, hc); err != nil {
		return "", nil, err
	}
	if err := s.validateUserns(hc); err != nil {
		return "", nil, err
	}
	args := append(append([]string(nil), cfg.Entrypoint...), cfg.Cmd...)
	rec := &store.Container{
		ID: id, Name: name, Created: now(),
		Path: args[0], Args: args[1:],
		Config: cfg, HostConfig: hc,
		Image:    img.ID.String(),
		Driver:   "overlay2",
		Platform: "linux",
	}
	if hc.LogConfig.Type == "json-file" {
		rec.LogPath = filepath.Join(s.store.Dir(id), id+"-json.log")
	}
	rec.HostsPath = filepath.Join(s.store.Dir(id), "hosts")
	rec.HostnamePath = filepath.Join(s.store.Dir(id), "hostname")
	rec.ResolvConfPath = filepath.Join(s.store.Dir(id), "resolv.conf")
	if rec.MountPoints, err = s.resolveMounts(id, cfg, hc); err != nil {
		return "", nil, err
	}
	var snapOpts []snapshot.Opt
	if hc.AutoRemove {
		// No reboot needs it (see store.Create).
		snapOpts = append(snapOpts, snapshot.WithVolatile())
	}
	if _, err := s.opts.Images.RootfsMounts(ctx, img.ID.String(), id, snapOpts...); err != nil {
		s.releaseVolumes(rec, true)
		return "", nil, err
	}
	if err := s.store.Create(rec); err != nil {
		s.releaseVolumes(rec, true)
		s.opts.Images.RemoveContainerSnapshot(context.WithoutCancel(ctx), id)
		return "", nil, err
	}
	if err := s.networkRegister(rec, o.Networking); err != nil {
		s.store.Delete(id)
		s.opts.Images.RemoveContainerSnapshot(context.WithoutCancel(ctx), id)
		return "", nil, err
	}
	s.publish(rec, events.ActionCreate, nil)
	return id, warnings, nil
}

// RuntimeName is the runtime a container records (HostConfig.Runtime) and
// the daemon reports as its default.
const RuntimeName = spec.RuntimeName

// adaptConfig records the request as dockerd 20.10 records it, so that
// inspect shows the same values: defaults filled in, "unset" spellings
// of the CLI (-1, 0, {}) turned into null, and what this host cannot do
// discarded with dockerd's warning.
func adaptConfig(cfg *container.Config, hc *container.HostConfig) []string {
	var warnings []string
	if len(cfg.Entrypoint) == 0 {
		cfg.Entrypoint = nil
	}
	if len(cfg.Volumes) == 0 {
		cfg.Volumes = nil
	}
	if hc.LogConfig.Type == "" {
		hc.LogConfig.Type = "json-file"
	}
	if hc.LogConfig.Config == nil {
		hc.LogConfig.Config = map[string]string{}
	}
	if hc.Runtime == "" {
		hc.Runtime = RuntimeName
	}
	if !hc.Privileged {
		if hc.MaskedPaths == nil {
			hc.MaskedPaths = slices.Clone(spec.DefaultMaskedPaths)
		}
		if hc.ReadonlyPaths == nil {
			hc.ReadonlyPaths = slices.Clone(spec.DefaultReadonlyPaths)
		}
	}
	if hc.SecurityOpt == nil && (hc.Privileged || hc.IpcMode.IsHost() || hc.PidMode.IsHost()) {
		// As dockerd: SELinux labels make no sense with the host's
		// namespaces or without confinement.
		hc.SecurityOpt = []string{"label=disable"}
	}
	if hc.OomKillDisable == nil {
		hc.OomKillDisable = new(bool)
	}
	if hc.MemorySwappiness != nil && *hc.MemorySwappiness == -1 {
		hc.MemorySwappiness = nil
	}
	if hc.PidsLimit != nil && *hc.PidsLimit <= 0 {
		hc.PidsLimit = nil
	}
	if hc.NetworkMode.IsHost() && len(hc.PortBindings) > 0 {
		warnings = append(warnings, "Published ports are discarded when using host network mode")
	}
	if hc.BlkioWeight > 0 && !blkioWeightSupported() {
		warnings = append(warnings, "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.")
		hc.BlkioWeight = 0
	}
	return warnings
}

// blkioWeightSupported says whether the host's blkio controller takes a
// weight (only with the CFQ/BFQ schedulers' files), as dockerd's sysinfo.
func blkioWeightSupported() bool {
	for _, p := range []string{
		"/sys/fs/cgroup/blkio/blkio.weight",
		"/sys/fs/cgroup/io.weight",
		"/sys/fs/cgroup/io.bfq.weight",
	} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// validateRestartPolicy refuses what dockerd 20.10 refuses, with its
// messages.
func validateRestartPolicy(p container.RestartPolicy, autoRemove bool) error {
	switch p.Name {
	case "always", "unless-stopped", "no":
		if p.MaximumRetryCount != 0 {
			return fmt.Errorf("maximum retry count cannot be used with restart policy '%s': %w", p.Name, errdefs.ErrInvalidArgument)
		}
	case "on-failure":
		if p.MaximumRetryCount < 0 {
			return fmt.Errorf("maximum retry count cannot be negative: %w", errdefs.ErrInvalidArgument)
		}
	case "":
	default:
		return fmt.Errorf("invalid restart policy '%s': %w", p.Name, errdefs.ErrInvalidArgument)
	}
	if autoRemove && p.Name != "" && p.Name != "no" {
		return fmt.Errorf("can't create 'AutoRemove' container with restart policy: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// imageConfig is the runtime part of image id's config.
func (s *Service) imageConfig(ctx context.Context, id string) (ocispec.ImageConfig, error) {
	insp, err := s.opts.Images.Inspect(ctx, id)
	if err != nil {
		return ocispec.ImageConfig{}, err
	}
	if insp.Config == nil {
		return ocispec.ImageConfig{}, nil
	}
	return insp.Config.ImageConfig, nil
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}
