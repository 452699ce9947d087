// Package gc owns garbage collection of the image side: it deletes the
// blobs of the content store and the committed snapshots that nothing
// references any more.
//
// # What is kept
//
// Marking starts from roots: what the image records reference (RootSource,
// implemented by image/store: every image's target, manifest and config
// blobs and its chain-id snapshot) and what live leases hold. From a blob
// root the collector walks the graph: an index keeps its manifests, a
// manifest its config and layers. From a snapshot root it keeps the whole
// parent chain. Active snapshots and views (containers, unpacks in
// progress) are roots too, and so are their parent chains, unless they
// carry LabelTemporary and no lease holds them: those are litter of an
// unpack that crashed.
//
// # Leases
//
// A pull, load or build takes a Lease before it writes anything and adds
// every blob and snapshot to it before relying on its existence (Add,
// then check or write); it releases the lease after the image record is
// committed, at which point the record keeps the content. Leases live in
// memory: after a crash no operation is in progress, so nothing needs one.
//
// # Crash safety
//
// Collect holds the collector's lock from marking to the end of the sweep,
// so no lease can be extended in between; roots are read at mark time from
// committed records. Records are only ever created after their content
// exists and deleting an image deletes only its record (the first phase);
// Collect is the second phase. Each blob deletion and each snapshot
// removal is atomic in its store, so a crash mid-sweep leaves some garbage
// for the next run and never a record pointing at nothing. Snapshots are
// removed leaves first (a snapshot store refuses to remove a parent).
package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/snapshot"
)

// LabelTemporary marks a snapshot as scratch work (an unpack in
// progress): it is collected unless a lease holds it.
const LabelTemporary = "berth.gc/temporary"

// Roots are the blobs and snapshots kept by records.
type Roots struct {
	Blobs     []ocispec.Descriptor
	Snapshots []string
}

// RootSource gives the current roots (image/store.Store implements it).
type RootSource interface {
	GCRoots(ctx context.Context) (Roots, error)
}

// ContentStore is what the collector needs of the content store.
type ContentStore interface {
	content.Provider
	content.Manager
}

// Collector collects garbage of one content store and one snapshotter.
// It is safe for concurrent use.
type Collector struct {
	cs    ContentStore
	sn    snapshot.Snapshotter
	roots []RootSource

	mu     sync.Mutex
	leases map[*Lease]struct{}
}

// New returns a collector for cs and sn (sn may be nil) keeping what
// roots reference.
func New(cs ContentStore, sn snapshot.Snapshotter, roots ...RootSource) *Collector {
	return &Collector{cs: cs, sn: sn, roots: roots, leases: map[*Lease]struct{}{}}
}

// Lease protects blobs and snapshots of an operation in progress from
// collection until Release.
type Lease struct {
	c         *Collector
	blobs     map[digest.Digest]struct{}
	snapshots map[string]struct{}
}

// NewLease starts a lease.
func (c *Collector) NewLease() *Lease {
	l := &Lease{c: c, blobs: map[digest.Digest]struct{}{}, snapshots: map[string]struct{}{}}
	c.mu.Lock()
	c.leases[l] = struct{}{}
	c.mu.Unlock()
	return l
}

// AddBlob protects the blob d (whether or not it exists yet). It waits for
// a running collection to finish: a blob that collection deleted is
// absent when AddBlob returns, so the caller writes it again.
func (l *Lease) AddBlob(d digest.Digest) {
	l.c.mu.Lock()
	l.blobs[d] = struct{}{}
	l.c.mu.Unlock()
}

// AddSnapshot protects the snapshot key or name (and its parents), like
// AddBlob.
func (l *Lease) AddSnapshot(key string) {
	l.c.mu.Lock()
	l.snapshots[key] = struct{}{}
	l.c.mu.Unlock()
}

// Release ends the lease; what it held is collectable unless a record
// references it. Releasing twice is a no-op.
func (l *Lease) Release() {
	l.c.mu.Lock()
	delete(l.c.leases, l)
	l.c.mu.Unlock()
}

// Result says what a collection removed.
type Result struct {
	Blobs     []digest.Digest // blobs deleted
	Snapshots []string        // snapshots removed, in removal order
	// Bytes reclaimed: sizes of the deleted blobs plus the disk usage of
	// the removed snapshots.
	Bytes int64
}

// Collect marks from the roots and leases and sweeps the rest.
func (c *Collector) Collect(ctx context.Context) (Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var res Result

	// Mark.
	blobRoots := map[digest.Digest]ocispec.Descriptor{}
	snapRoots := map[string]bool{}
	for _, src := range c.roots {
		r, err := src.GCRoots(ctx)
		if err != nil {
			return res, fmt.Errorf("gc: roots: %w", err)
		}
		for _, b := range r.Blobs {
			if b.Digest != "" {
				blobRoots[b.Digest] = b
			}
		}
		for _, s := range r.Snapshots {
			snapRoots[s] = true
		}
	}
	for l := range c.leases {
		for d := range l.blobs {
			if _, ok := blobRoots[d]; !ok {
				blobRoots[d] = ocispec.Descriptor{Digest: d}
			}
		}
		for s := range l.snapshots {
			snapRoots[s] = true
		}
	}
	liveBlobs, err := c.markBlobs(ctx, blobRoots)
	if err != nil {
		return res, err
	}

	// Sweep snapshots first: nothing points from a blob to a snapshot,
	// and freeing layers first is what a caller short of disk wants.
	if c.sn != nil {
		if err := c.sweepSnapshots(ctx, snapRoots, &res); err != nil {
			return res, err
		}
	}

	// Sweep blobs.
	var dead []content.Info
	if err := c.cs.Walk(ctx, func(info content.Info) error {
		if !liveBlobs[info.Digest] {
			dead = append(dead, info)
		}
		return nil
	}); err != nil {
		return res, fmt.Errorf("gc: walk blobs: %w", err)
	}
	for _, info := range dead {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := c.cs.Delete(ctx, info.Digest); err != nil && !errdefs.IsNotFound(err) {
			return res, fmt.Errorf("gc: delete blob %s: %w", info.Digest, err)
		}
		res.Blobs = append(res.Blobs, info.Digest)
		res.Bytes += info.Size
	}
	return res, nil
}

// markBlobs walks from the roots through indexes and manifests and
// returns every reachable digest. Children that are absent are fine (an
// index lists platforms that were never pulled).
func (c *Collector) markBlobs(ctx context.Context, roots map[digest.Digest]ocispec.Descriptor) (map[digest.Digest]bool, error) {
	live := map[digest.Digest]bool{}
	queue := make([]ocispec.Descriptor, 0, len(roots))
	for _, d := range roots {
		queue = append(queue, d)
	}
	for len(queue) > 0 {
		d := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if live[d.Digest] {
			continue
		}
		live[d.Digest] = true
		children, err := c.children(ctx, d)
		if err != nil {
			return nil, err
		}
		queue = append(queue, children...)
	}
	return live, nil
}

// children reads d when it can reference other blobs. The media type is
// sniffed from the blob when the root did not say (a lease root).
func (c *Collector) children(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	switch d.MediaType {
	case "", ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
		"application/vnd.docker.distribution.manifest.v2+json",
		"application/vnd.docker.distribution.manifest.list.v2+json":
	default:
		return nil, nil
	}
	info, err := c.cs.Info(ctx, d.Digest)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	if info.Size > 8<<20 {
		return nil, nil // not metadata
	}
	b, err := content.ReadBlob(ctx, c.cs, ocispec.Descriptor{Digest: d.Digest}, 8<<20)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	var v struct {
		MediaType string               `json:"mediaType"`
		Config    *ocispec.Descriptor  `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
		Manifests []ocispec.Descriptor `json:"manifests"`
		Subject   *ocispec.Descriptor  `json:"subject"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		if d.MediaType == "" {
			return nil, nil // a layer or some other blob
		}
		return nil, fmt.Errorf("gc: decode %s: %w", d.Digest, err)
	}
	var out []ocispec.Descriptor
	if v.Config != nil {
		out = append(out, *v.Config)
	}
	out = append(out, v.Layers...)
	out = append(out, v.Manifests...)
	return out, nil
}

// sweepSnapshots removes every snapshot not kept, leaves first.
func (c *Collector) sweepSnapshots(ctx context.Context, roots map[string]bool, res *Result) error {
	all := map[string]snapshot.Info{}
	if err := c.sn.Walk(ctx, func(_ context.Context, info snapshot.Info) error {
		all[info.Name] = info
		return nil
	}); err != nil {
		return fmt.Errorf("gc: walk snapshots: %w", err)
	}
	live := map[string]bool{}
	var keep func(name string)
	keep = func(name string) {
		for name != "" && !live[name] {
			info, ok := all[name]
			if !ok {
				return
			}
			live[name] = true
			name = info.Parent
		}
	}
	for name, info := range all {
		if roots[name] || (info.Kind != snapshot.KindCommitted && info.Labels[LabelTemporary] == "") {
			keep(name)
		}
	}
	children := map[string]int{}
	for _, info := range all {
		if info.Parent != "" {
			children[info.Parent]++
		}
	}
	// Repeatedly remove dead snapshots without children.
	for {
		var leaves []string
		for name := range all {
			if !live[name] && children[name] == 0 {
				leaves = append(leaves, name)
			}
		}
		if len(leaves) == 0 {
			break
		}
		sort.Strings(leaves)
		for _, name := range leaves {
			if err := ctx.Err(); err != nil {
				return err
			}
			var size int64
			if u, err := c.sn.Usage(ctx, name); err == nil {
				size = u.Size
			}
			if err := c.sn.Remove(ctx, name); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				return fmt.Errorf("gc: remove snapshot %s: %w", name, err)
			}
			res.Snapshots = append(res.Snapshots, name)
			res.Bytes += size
			if p := all[name].Parent; p != "" {
				children[p]--
			}
			delete(all, name)
		}
	}
	if cl, ok := c.sn.(snapshot.Cleaner); ok && len(res.Snapshots) > 0 {
		if err := cl.Cleanup(ctx); err != nil {
			return fmt.Errorf("gc: snapshot cleanup: %w", err)
		}
	}
	return nil
}
