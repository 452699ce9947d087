package service

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/container/files"
	"github.com/berth-dev/berth/container/spec"
	"github.com/berth-dev/berth/container/stats"
	"github.com/berth-dev/berth/container/store"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/change"
	"github.com/berth-dev/berth/image/reference"
	imageservice "github.com/berth-dev/berth/image/service"
	"github.com/berth-dev/berth/internal/idmap"
	"github.com/berth-dev/berth/snapshot"
)

// withRootfs runs fn on the container's root filesystem: the mounted one
// of a running container, else a temporary mount (while it lasts, the
// container cannot start: an overlay's upper directory takes one mount).
// When fn returns keep, the caller owns release and must call it.
func (s *Service) withRootfs(ctx context.Context, name string, fn func(rootfs string) (keep bool, err error)) (release func(), err error) {
	rec, _, unlock, err := s.lock(name)
	if err != nil {
		return nil, err
	}
	if rec.State.Running {
		unlock() // the run keeps its rootfs mounted until it ends
		_, err := fn(filepath.Join(s.bundleDir(rec.ID), "rootfs"))
		return func() {}, err
	}
	mounts, err := s.opts.Images.ContainerMounts(ctx, rec.ID)
	if err != nil {
		unlock()
		return nil, err
	}
	if mounts, err = s.withInitLayer(rec, mounts); err != nil {
		unlock()
		return nil, err
	}
	dir, err := os.MkdirTemp(filepath.Join(s.opts.ExecRoot, "containers"), "mnt-")
	if err != nil {
		unlock()
		return nil, err
	}
	if err := s.mountRootfs(rec, mounts, dir, dir+".idmap"); err != nil {
		os.Remove(dir)
		unlock()
		return nil, err
	}
	release = func() {
		snapshot.UnmountAll(dir)
		os.Remove(dir)
		unlock()
	}
	keep, err := fn(dir)
	if !keep || err != nil {
		release()
		return func() {}, err
	}
	return release, nil
}

// StatPath stats path in the container.
func (s *Service) StatPath(ctx context.Context, name, path string) (st container.PathStat, err error) {
	_, err = s.withContainerFS(ctx, name, func(root string) (bool, error) {
		st, err = files.Stat(root, path)
		return false, err
	})
	return st, s.notFoundIn(err, name, path)
}

// ArchivePath returns a tar of path in the container; closing it
// releases the container's filesystem.
func (s *Service) ArchivePath(ctx context.Context, name, path string) (io.ReadCloser, container.PathStat, error) {
	rec, err := s.store.Get(name)
	if err != nil {
		return nil, container.PathStat{}, err
	}
	var rc io.ReadCloser
	var st container.PathStat
	release, err := s.withContainerFS(ctx, name, func(root string) (bool, error) {
		var err error
		rc, st, err = files.Archive(root, path)
		if err == nil {
			rc = s.toImageOwners(rec, rc)
		}
		return err == nil, err
	})
	if err != nil {
		return nil, st, s.notFoundIn(err, name, path)
	}
	s.publish(rec, events.ActionArchivePath, nil)
	return &releaser{ReadCloser: rc, release: release}, st, nil
}

type releaser struct {
	io.ReadCloser
	release func()
}

func (r *releaser) Close() error {
	err := r.ReadCloser.Close()
	r.release()
	return err
}

// Extract writes the tar content into directory path of the container.
func (s *Service) Extract(ctx context.Context, name, path string, content io.Reader, o files.ExtractOptions) error {
	rec, err := s.store.Get(name)
	if err != nil {
		return err
	}
	if o.User == "" && rec.Config != nil {
		o.User = rec.Config.User
	}
	if m, ok := s.mapping(rec.HostConfig); ok {
		o.Owner = m.HostIDs
	}
	_, err = s.withContainerFS(ctx, name, func(root string) (bool, error) {
		return false, files.Extract(root, path, content, o)
	})
	if err != nil {
		return s.notFoundIn(err, name, path)
	}
	s.publish(rec, events.ActionExtractToDir, nil)
	return nil
}

func (s *Service) notFoundIn(err error, name, path string) error {
	if errdefs.IsNotFound(err) {
		if rec, gerr := s.store.Get(name); gerr == nil {
			return fmt.Errorf("Could not find the file %s in container %s: %w", path, trimSlash(rec.Name), errdefs.ErrNotFound)
		}
	}
	return err
}

// Export writes the container's whole filesystem as a tar.
func (s *Service) Export(ctx context.Context, name string, w io.Writer) error {
	rec, err := s.store.Get(name)
	if err != nil {
		return err
	}
	_, err = s.withRootfs(ctx, name, func(root string) (bool, error) {
		owner := s.imageOwner(rec)
		if owner == nil {
			return false, files.Export(root, w)
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(files.Export(root, pw)) }()
		_, _, err := idmap.ShiftTar(w, pr, owner)
		pr.CloseWithError(err)
		return false, err
	})
	if err == nil {
		s.publish(rec, events.ActionExport, nil)
	}
	return err
}

// Changes lists what the container changed in its filesystem.
func (s *Service) Changes(ctx context.Context, name string) ([]container.FilesystemChange, error) {
	rec, err := s.store.Get(name)
	if err != nil {
		return nil, err
	}
	mounts, err := s.opts.Images.ContainerMounts(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	return files.MountChanges(mounts)
}

// CommitOptions are a commit request.
type CommitOptions struct {
	// Ref names the image ("" for untagged).
	Ref             string
	Comment, Author string
	// Pause freezes a running container during the commit.
	Pause   bool
	Changes []string
	// Config overrides the container's config (nil: none).
	Config *container.Config
}

// Commit makes an image of the container's filesystem and config and
// returns its ID.
func (s *Service) Commit(ctx context.Context, name string, o CommitOptions) (string, error) {
	rec, err := s.store.Get(name)
	if err != nil {
		return "", err
	}
	cfg := *rec.Config
	if o.Config != nil {
		overrideConfig(&cfg, o.Config)
	}
	if err := change.Apply(&cfg, o.Changes); err != nil {
		return "", err
	}
	if o.Pause && rec.State.Running && !rec.State.Paused {
		if err := s.Pause(ctx, rec.ID); err == nil {
			defer s.Unpause(context.WithoutCancel(ctx), rec.ID)
		}
	}
	img, err := s.opts.Images.Commit(ctx, imageservice.CommitOptions{
		ContainerKey: rec.ID, Parent: rec.Image, Config: &cfg, ContainerConfig: rec.Config,
		Owner:   s.imageOwner(rec),
		Comment: o.Comment, Author: o.Author, Ref: o.Ref,
	})
	if err != nil {
		return "", err
	}
	if o.Ref != "" && s.opts.Events != nil {
		// As dockerd: naming the new image is a tag, reported first.
		if named, err := reference.Parse(o.Ref); err == nil {
			s.opts.Events.Publish(events.ImageEventType, events.ActionTag, events.Actor{ID: img.ID.String(), Attributes: map[string]string{"name": reference.FamiliarString(named)}})
		}
	}
	s.publish(rec, events.ActionCommit, map[string]string{"comment": o.Comment, "imageID": img.ID.String(), "imageRef": o.Ref})
	return img.ID.String(), nil
}

// overrideConfig applies the non-empty fields of o to c, as dockerd merges
// a commit's config.
func overrideConfig(c, o *container.Config) {
	if o.User != "" {
		c.User = o.User
	}
	if len(o.Env) > 0 {
		c.Env = o.Env
	}
	if len(o.Cmd) > 0 {
		c.Cmd = o.Cmd
	}
	if len(o.Entrypoint) > 0 {
		c.Entrypoint = o.Entrypoint
	}
	if o.WorkingDir != "" {
		c.WorkingDir = o.WorkingDir
	}
	if len(o.Labels) > 0 {
		c.Labels = o.Labels
	}
	if len(o.ExposedPorts) > 0 {
		c.ExposedPorts = o.ExposedPorts
	}
	if len(o.Volumes) > 0 {
		c.Volumes = o.Volumes
	}
	if o.StopSignal != "" {
		c.StopSignal = o.StopSignal
	}
}

// cgroupsPath is the running container's cgroup, from its bundle.
func (s *Service) cgroupsPath(id string) (string, error) {
	b, err := os.ReadFile(filepath.Join(s.bundleDir(id), "config.json"))
	if err != nil {
		return "", err
	}
	var sp specs.Spec
	if err := json.Unmarshal(b, &sp); err != nil {
		return "", err
	}
	if sp.Linux == nil || sp.Linux.CgroupsPath == "" {
		return "", fmt.Errorf("container %s: no cgroup in its bundle", id)
	}
	return sp.Linux.CgroupsPath, nil
}

// Top lists the container's processes with ps psArgs.
func (s *Service) Top(ctx context.Context, name, psArgs string) (container.TopResponse, error) {
	rec, _, err := s.running(name)
	if err != nil {
		return container.TopResponse{}, err
	}
	cg, err := s.cgroupsPath(rec.ID)
	if err != nil {
		return container.TopResponse{}, err
	}
	pids, err := stats.Pids(cg)
	if err != nil {
		return container.TopResponse{}, err
	}
	top, err := stats.Top(pids, psArgs)
	if err == nil {
		s.publish(rec, events.ActionTop, nil)
	}
	return top, err
}

// Stats sends samples of the container's resource use: with stream one per
// second until ctx ends or the container stops; else one, taken a second
// after a first (for the CPU delta) unless oneShot.
func (s *Service) Stats(ctx context.Context, name string, stream, oneShot bool, send func(*container.StatsResponse) error) error {
	rec, err := s.store.Get(name)
	if err != nil {
		return err
	}
	sample := func() (*container.StatsResponse, bool) {
		cur, err := s.store.Get(rec.ID)
		if err != nil || !cur.State.Running || cur.State.Restarting {
			return &container.StatsResponse{}, false
		}
		cg, err := s.cgroupsPath(rec.ID)
		if err != nil {
			return &container.StatsResponse{}, false
		}
		st, err := stats.Read(cg, cur.State.Pid)
		if err != nil {
			return &container.StatsResponse{}, false
		}
		return st, true
	}
	var prev *container.StatsResponse
	cur, running := sample()
	if !stream && !oneShot && running {
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
		prev = cur
		cur, running = sample()
	}
	for {
		stats.SetPrevious(cur, prev)
		cur.ID, cur.Name = rec.ID, rec.Name
		if err := send(cur); err != nil || !stream || !running {
			return err
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return nil
		}
		prev = cur
		cur, running = sample()
	}
}

// Update changes a container's resources and restart policy; a running
// container's cgroup gets the new limits at once (berth-runtime update).
func (s *Service) Update(ctx context.Context, name string, u container.UpdateConfig) (container.UpdateResponse, error) {
	rec, _, unlock, err := s.lock(name)
	if err != nil {
		return container.UpdateResponse{}, err
	}
	defer unlock()
	hc := *rec.HostConfig
	r := &hc.Resources
	n := u.Resources
	set := func(dst *int64, v int64) {
		if v != 0 {
			*dst = v
		}
	}
	set(&r.Memory, n.Memory)
	set(&r.MemorySwap, n.MemorySwap)
	set(&r.MemoryReservation, n.MemoryReservation)
	set(&r.CPUShares, n.CPUShares)
	set(&r.CPUQuota, n.CPUQuota)
	set(&r.CPUPeriod, n.CPUPeriod)
	set(&r.NanoCPUs, n.NanoCPUs)
	if n.CpusetCpus != "" {
		r.CpusetCpus = n.CpusetCpus
	}
	if n.CpusetMems != "" {
		r.CpusetMems = n.CpusetMems
	}
	if n.PidsLimit != nil {
		r.PidsLimit = n.PidsLimit
	}
	warnings := []string{}
	if n.BlkioWeight != 0 {
		if blkioWeightSupported() {
			r.BlkioWeight = n.BlkioWeight
		} else {
			warnings = append(warnings, "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.")
		}
	}
	if n.Memory != 0 && n.MemorySwap == 0 && rec.HostConfig.MemorySwap > 0 && rec.HostConfig.MemorySwap < n.Memory {
		r.MemorySwap = 2 * n.Memory // as dockerd: the old swap limit would be below the memory limit
	}
	if u.RestartPolicy.Name != "" {
		if hc.AutoRemove && u.RestartPolicy.Name != container.RestartPolicyDisabled {
			return container.UpdateResponse{}, fmt.Errorf("Restart policy cannot be updated because AutoRemove is enabled for the container: %w", errdefs.ErrInvalidArgument)
		}
		hc.RestartPolicy = u.RestartPolicy
	}
	if err := spec.Validate(rec.Config, &hc); err != nil {
		return container.UpdateResponse{}, err
	}
	if rec.State.Running && !rec.State.Restarting {
		if err := s.applyResources(ctx, rec.ID, rec.Config, &hc); err != nil {
			return container.UpdateResponse{}, fmt.Errorf("Cannot update container %s: %w", rec.ID, err)
		}
	}
	if _, err := s.store.Update(rec.ID, func(r *store.Container) error { r.HostConfig = &hc; return nil }); err != nil {
		return container.UpdateResponse{}, err
	}
	s.publish(rec, events.ActionUpdate, nil)
	return container.UpdateResponse{Warnings: warnings}, nil
}
