package daemon

import (
	"context"
	"path/filepath"
	"time"

	"github.com/moby/moby/api/types/events"
	apivolume "github.com/moby/moby/api/types/volume"

	"github.com/berth-dev/berth/api/filters"
	"github.com/berth-dev/berth/api/server"
	"github.com/berth-dev/berth/volume"
)

// openVolumes opens the volume store under <data-root>/volumes, where
// dockerd keeps its own.
func openVolumes(e Engine) (*volume.Store, error) {
	return volume.Open(filepath.Join(e.Config.DataRoot, "volumes"))
}

// volumeBackend serves the volume routes from the store and announces
// creations and removals on the bus, as dockerd.
type volumeBackend struct {
	st  *volume.Store
	bus interface {
		Publish(typ events.Type, action events.Action, actor events.Actor)
	}
}

var _ server.VolumeBackend = (*volumeBackend)(nil)

// Volumes is the container engine's volume backend (wired into the API
// by daemon.New).
func (b *containerBackend) Volumes() server.VolumeBackend {
	return &volumeBackend{st: b.vols, bus: b.e.Events}
}

func apiVolume(v *volume.Volume, st *volume.Store) apivolume.Volume {
	return apivolume.Volume{
		Name: v.Name, Driver: v.Driver, Mountpoint: st.Path(v.Name),
		CreatedAt: v.CreatedAt.Local().Format(time.RFC3339),
		Labels:    v.Labels, Options: v.Options, Scope: "local",
	}
}

func (b *volumeBackend) publish(action events.Action, name string) {
	if b.bus != nil {
		b.bus.Publish(events.VolumeEventType, action, events.Actor{ID: name, Attributes: map[string]string{"driver": volume.DefaultDriver}})
	}
}

func (b *volumeBackend) VolumeList(ctx context.Context, f filters.Args) ([]apivolume.Volume, error) {
	vs, err := b.st.List(f)
	if err != nil {
		return nil, err
	}
	out := make([]apivolume.Volume, 0, len(vs))
	for _, v := range vs {
		out = append(out, apiVolume(v, b.st))
	}
	return out, nil
}

func (b *volumeBackend) VolumeCreate(ctx context.Context, req apivolume.CreateRequest) (apivolume.Volume, error) {
	existed := false
	if req.Name != "" {
		_, err := b.st.Get(req.Name)
		existed = err == nil
	}
	v, err := b.st.Create(volume.CreateOptions{Name: req.Name, Driver: req.Driver, Labels: req.Labels, Options: req.DriverOpts}, "")
	if err != nil {
		return apivolume.Volume{}, err
	}
	if !existed {
		b.publish(events.ActionCreate, v.Name)
	}
	return apiVolume(v, b.st), nil
}

func (b *volumeBackend) VolumeInspect(ctx context.Context, name string) (apivolume.Volume, error) {
	v, err := b.st.Get(name)
	if err != nil {
		return apivolume.Volume{}, err
	}
	return apiVolume(v, b.st), nil
}

func (b *volumeBackend) VolumeRemove(ctx context.Context, name string, force bool) error {
	_, gerr := b.st.Get(name)
	if err := b.st.Remove(name, force); err != nil {
		return err
	}
	if gerr == nil {
		b.publish(events.ActionDestroy, name)
	}
	return nil
}

func (b *volumeBackend) VolumePrune(ctx context.Context, f filters.Args, all bool) (apivolume.PruneReport, error) {
	names, space, err := b.st.Prune(f, all)
	for _, n := range names {
		b.publish(events.ActionDestroy, n)
	}
	return apivolume.PruneReport{VolumesDeleted: names, SpaceReclaimed: space}, err
}

// volumeDiskUsage is system df's volume part: sizes, users, and what
// removing the unused ones would free.
func (b *volumeBackend) volumeDiskUsage(verbose bool) *apivolume.DiskUsage {
	vs, err := b.st.List(filters.Args{})
	if err != nil {
		return &apivolume.DiskUsage{}
	}
	du := &apivolume.DiskUsage{TotalCount: int64(len(vs))}
	for _, v := range vs {
		size := volume.DirSize(b.st.Path(v.Name))
		refs := int64(len(b.st.Users(v.Name)))
		du.TotalSize += size
		if refs > 0 {
			du.ActiveCount++
		} else {
			du.Reclaimable += size
		}
		if verbose {
			item := apiVolume(v, b.st)
			item.UsageData = &apivolume.UsageData{Size: size, RefCount: refs}
			du.Items = append(du.Items, item)
		}
	}
	return du
}
