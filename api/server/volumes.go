package server

import (
	"context"
	"fmt"
	"net/http"

	"github.com/moby/moby/api/types/volume"

	"github.com/berth-dev/berth/api/filters"
	"github.com/berth-dev/berth/errdefs"
)

// VolumeBackend is the volume side of the engine (volume.Store behind
// daemon/volumes.go). Errors carry errdefs categories.
type VolumeBackend interface {
	// VolumeList is GET /volumes; filters are dangling, driver, label,
	// name.
	VolumeList(ctx context.Context, f filters.Args) ([]volume.Volume, error)
	// VolumeCreate is POST /volumes/create: an existing volume of that
	// name is returned as it is.
	VolumeCreate(ctx context.Context, req volume.CreateRequest) (volume.Volume, error)
	// VolumeInspect is GET /volumes/{name}.
	VolumeInspect(ctx context.Context, name string) (volume.Volume, error)
	// VolumeRemove is DELETE /volumes/{name}: a volume in use is a
	// Conflict; force makes a missing one no error.
	VolumeRemove(ctx context.Context, name string, force bool) error
	// VolumePrune is POST /volumes/prune: unused volumes, only anonymous
	// ones unless all (the "all" filter, or an API version below 1.42).
	VolumePrune(ctx context.Context, f filters.Args, all bool) (volume.PruneReport, error)
}

func (s *Server) volumeList(w http.ResponseWriter, r *http.Request) error {
	f, err := filtersOf(r)
	if err != nil {
		return err
	}
	vols, err := s.b.Volumes.VolumeList(r.Context(), f)
	if err != nil {
		return err
	}
	if vols == nil {
		vols = []volume.Volume{}
	}
	writeJSON(w, http.StatusOK, volume.ListResponse{Volumes: vols}) // Warnings null, as dockerd
	return nil
}

func (s *Server) volumeCreate(w http.ResponseWriter, r *http.Request) error {
	var req volume.CreateRequest
	if _, err := readJSON(w, r, &req, false); err != nil {
		return err
	}
	if req.ClusterVolumeSpec != nil {
		return invalid("cluster volumes need a swarm, which berth does not have")
	}
	v, err := s.b.Volumes.VolumeCreate(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (s *Server) volumeInspect(w http.ResponseWriter, r *http.Request) error {
	v, err := s.b.Volumes.VolumeInspect(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) volumeRemove(w http.ResponseWriter, r *http.Request) error {
	if err := s.b.Volumes.VolumeRemove(r.Context(), r.PathValue("name"), boolValue(r, "force")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) volumePrune(w http.ResponseWriter, r *http.Request) error {
	f, err := filtersOf(r)
	if err != nil {
		return err
	}
	// Before 1.42 prune took every unused volume; since, only anonymous
	// ones unless all=true.
	rep, err := s.b.Volumes.VolumePrune(r.Context(), f, versionBefore(r.Context(), "1.42"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// withVolumes answers 501 when the engine runs without volumes.
func (s *Server) withVolumes(fn handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.b.Volumes == nil {
			return fmt.Errorf("volumes: %w", errdefs.ErrNotImplemented)
		}
		return fn(w, r)
	}
}
