package main

import (
	"context"
	"path/filepath"

	"github.com/berth-dev/berth/bench"
	"github.com/berth-dev/berth/image/content/local"
	"github.com/berth-dev/berth/image/pull"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/registry"
	"github.com/berth-dev/berth/snapshot/overlay"
)

func init() { bench.BerthPull = berthPull }

// berthPull is a `berth pull` into the content store and overlay
// snapshotter under root (empty for a cold pull; the half-present scenario
// pre-pulls an image of the first half of the layers there first): every
// missing layer is fetched and unpacked, present ones are skipped.
func berthPull(ctx context.Context, ref, root string) error {
	named, err := reference.Parse(ref)
	if err != nil {
		return err
	}
	cs, err := local.NewStore(filepath.Join(root, "content"))
	if err != nil {
		return err
	}
	sn, err := overlay.New(filepath.Join(root, "snapshots"))
	if err != nil {
		return err
	}
	defer sn.Close()
	_, err = pull.Pull(ctx, named, pull.Options{Registry: registry.New(registry.Options{}), Content: cs, Snapshots: sn})
	return err
}
