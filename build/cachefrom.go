package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/image/service"
)

// cacheSources are the --cache-from images: a step missing from the local
// cache is taken from one of them when their history says they ran the
// same steps on the same layers (as dockerd's classic builder does), so
// an image pulled from a registry seeds the cache of a new machine.
type cacheSources struct {
	images  []service.BuildImageRecord
	records map[string]service.BuildImageRecord // by ID, the stages' images
}

// loadCacheFrom reads the --cache-from images; missing ones are skipped
// with a warning, as docker does.
func (j *job) loadCacheFrom(ctx context.Context) {
	j.cacheFrom = &cacheSources{records: map[string]service.BuildImageRecord{}}
	for _, name := range j.o.CacheFrom {
		r, err := j.b.cfg.Images.BuildImageRecordOf(ctx, name)
		if err != nil {
			fmt.Fprintf(j.out, "[Warning] --cache-from %s: %v\n", name, err)
			continue
		}
		j.cacheFrom.images = append(j.cacheFrom.images, r)
	}
}

// record is image id's history and layers ("" is the empty base).
func (j *job) record(ctx context.Context, id string) (service.BuildImageRecord, error) {
	if id == "" {
		return service.BuildImageRecord{}, nil
	}
	j.mu.Lock()
	r, ok := j.cacheFrom.records[id]
	j.mu.Unlock()
	if ok {
		return r, nil
	}
	r, err := j.b.cfg.Images.BuildImageRecordOf(ctx, id)
	if err != nil {
		return r, err
	}
	j.mu.Lock()
	j.cacheFrom.records[id] = r
	j.mu.Unlock()
	return r, nil
}

// matches reports whether src's history starts with want (created_by and
// empty_layer; the last entry of want must be a layer when layer is set)
// and its layers with diffIDs.
func matches(src service.BuildImageRecord, base service.BuildImageRecord, want []ocispec.History, layer bool) bool {
	if len(src.History) < len(want) || len(src.DiffIDs) < len(base.DiffIDs) {
		return false
	}
	for i, w := range want {
		h := src.History[i]
		empty := w.EmptyLayer
		if layer && i == len(want)-1 {
			empty = false
		}
		if h.CreatedBy != w.CreatedBy || h.EmptyLayer != empty {
			return false
		}
	}
	return slices.Equal(src.DiffIDs[:len(base.DiffIDs)], base.DiffIDs)
}

// fromCacheSources makes a layer step's image from a --cache-from image
// that ran it; "" when none did.
func (j *job) fromCacheSources(ctx context.Context, st *stageState, hist ocispec.History) (string, error) {
	if len(j.cacheFrom.images) == 0 || j.o.NoCache {
		return "", nil
	}
	base, err := j.record(ctx, st.img)
	if err != nil {
		return "", err
	}
	want := append(append(slices.Clone(base.History), st.hist...), hist)
	for _, src := range j.cacheFrom.images {
		if !matches(src, base, want, true) || len(src.DiffIDs) <= len(base.DiffIDs) {
			continue
		}
		cfg := st.cfg
		img, err := j.b.cfg.Images.BuildReuse(ctx, service.BuildReuseOptions{
			Parent: st.img, Source: src.ID, Layer: len(base.DiffIDs), Config: &cfg,
			History: append(slices.Clone(st.hist), hist),
		})
		if err != nil {
			return "", err
		}
		return img.ID.String(), nil
	}
	return "", nil
}

// finalFromCacheSources is a --cache-from image that is exactly what the
// stage's metadata steps would make ("" when none is).
func (j *job) finalFromCacheSources(ctx context.Context, st *stageState) (string, error) {
	if len(j.cacheFrom.images) == 0 || j.o.NoCache {
		return "", nil
	}
	base, err := j.record(ctx, st.img)
	if err != nil {
		return "", err
	}
	want := append(slices.Clone(base.History), st.hist...)
	mine, _ := json.Marshal(st.cfg)
	for _, src := range j.cacheFrom.images {
		if len(src.History) != len(want) || len(src.DiffIDs) != len(base.DiffIDs) || !matches(src, base, want, false) {
			continue
		}
		theirs, _ := json.Marshal(src.Config)
		if bytes.Equal(mine, theirs) {
			return src.ID, nil
		}
	}
	return "", nil
}
