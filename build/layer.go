package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/image/service"
	"github.com/berth-dev/berth/snapshot"
)

// workdir is a step's scratch directory: the mounted rootfs of the
// step's snapshot (rootfs/) and whatever else the step needs (a bundle).
type workdir struct {
	dir    string
	rootfs string
	upper  string // the snapshot's writable directory
}

// layerStep runs a step that changes files: reused from the cache when
// key is known, else do runs on a snapshot of the stage's image and the
// changes become a layer.
func (j *job) layerStep(ctx context.Context, st *stageState, key string, hist ocispec.History, do func(w *workdir) error) error {
	start := time.Now()
	if id := j.cached(ctx, key); id != "" {
		st.img, st.hist, st.dirty, st.key = id, nil, false, key
		fmt.Fprintf(j.out, " ---> Using cache\n ---> %s\n", shortID(id))
		return nil
	}
	id, err := j.fromCacheSources(ctx, st, hist)
	if err != nil {
		return err
	}
	if id != "" {
		st.img, st.hist, st.dirty, st.key = id, nil, false, key
		fmt.Fprintf(j.out, " ---> Using cache\n ---> %s\n", shortID(id))
		return j.b.cache.put(key, id)
	}
	snap := "build-" + randomHex(8)
	mounts, release, err := j.b.cfg.Images.PrepareBuild(ctx, st.img, snap)
	if err != nil {
		return err
	}
	defer release()
	defer j.b.cfg.Images.RemoveBuild(context.WithoutCancel(ctx), snap)
	dir, err := os.MkdirTemp(filepath.Join(j.b.cfg.Dir, "tmp"), "step-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	w := &workdir{dir: dir, rootfs: filepath.Join(dir, "rootfs")}
	if w.upper, err = upperDir(mounts); err != nil {
		return err
	}
	if err := os.Mkdir(w.rootfs, 0o755); err != nil {
		return err
	}
	if err := snapshot.MountAll(mounts, w.rootfs); err != nil {
		return fmt.Errorf("mount the step's root filesystem: %w", err)
	}
	err = do(w)
	if uerr := snapshot.UnmountAll(w.rootfs); err == nil && uerr != nil {
		err = fmt.Errorf("unmount the step's root filesystem: %w", uerr)
	}
	if err != nil {
		return err
	}
	cfg := st.cfg
	img, err := j.b.cfg.Images.BuildCommit(ctx, service.BuildCommitOptions{
		Parent: st.img, Key: snap, Config: &cfg, History: append(st.hist, hist), Platform: &st.plat,
	})
	if err != nil {
		return err
	}
	st.img, st.hist, st.dirty, st.key = img.ID.String(), nil, false, key
	if err := j.b.cache.put(key, st.img); err != nil {
		return err
	}
	fmt.Fprintf(j.out, " ---> %s (%.2fs)\n", shortID(st.img), time.Since(start).Seconds())
	return nil
}

// upperDir is the writable directory of a snapshot's mounts.
func upperDir(mounts []snapshot.Mount) (string, error) {
	if len(mounts) == 1 {
		if mounts[0].Type == "bind" {
			return mounts[0].Source, nil
		}
		if u, ok := mounts[0].Option("upperdir"); ok {
			return u, nil
		}
	}
	return "", fmt.Errorf("cannot find the writable directory of mounts %+v", mounts)
}

// unmountUnder unmounts the rootfs a crashed step left mounted in dir.
func unmountUnder(dir string) {
	_ = snapshot.UnmountAll(filepath.Join(dir, "rootfs"))
}
