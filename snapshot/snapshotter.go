// Package snapshot owns Berth's filesystem snapshots: the Snapshotter
// interface every snapshot driver implements and the Mount type that turns
// a snapshot into a mounted directory (errors wrap the categories of
// package errdefs). The overlay implementation lives in snapshot/overlay,
// upper-dir diffs in snapshot/diff, and the conformance tests every
// implementation must pass in snapshot/testsuite.
package snapshot

import (
	"context"
	"fmt"
	"time"

	"github.com/berth-dev/berth/errdefs"
)

// Kind is the state of a snapshot in its lifecycle.
type Kind uint8

// The kinds of snapshot.
const (
	// KindUnknown is the zero value; no stored snapshot has it.
	KindUnknown Kind = iota
	// KindView is a read-only snapshot made by View. It cannot be committed.
	KindView
	// KindActive is a writable snapshot made by Prepare. It becomes a
	// committed snapshot with Commit.
	KindActive
	// KindCommitted is an immutable snapshot made by Commit. Only committed
	// snapshots can be parents.
	KindCommitted
)

// String returns "view", "active", "committed" or "unknown".
func (k Kind) String() string {
	switch k {
	case KindView:
		return "view"
	case KindActive:
		return "active"
	case KindCommitted:
		return "committed"
	}
	return "unknown"
}

// MarshalText encodes the kind as its name.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText decodes a kind name written by MarshalText.
func (k *Kind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "view":
		*k = KindView
	case "active":
		*k = KindActive
	case "committed":
		*k = KindCommitted
	case "unknown":
		*k = KindUnknown
	default:
		return fmt.Errorf("snapshot kind %q: %w", b, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Info describes one snapshot.
type Info struct {
	Kind   Kind   // the snapshot's state
	Name   string // the key of an active or view snapshot, the name of a committed one
	Parent string // the name of the committed parent, "" for none
	// Labels are free-form metadata the caller attaches (the image store
	// and the garbage collector keep their references here).
	Labels  map[string]string
	Created time.Time
	Updated time.Time
	// Volatile asks Prepare to skip the fsyncs that make the new
	// snapshot survive a power loss, for a layer no reboot needs (a --rm
	// container's, whose upper is mounted volatile too). Not recorded.
	Volatile bool
}

// Usage is the disk space a snapshot uses by itself (not counting its
// parents).
type Usage struct {
	Inodes int64 // distinct inodes
	Size   int64 // bytes of disk used (allocated blocks)
}

// WalkFunc is called by Walk for every snapshot. Returning an error stops
// the walk and Walk returns it.
type WalkFunc func(context.Context, Info) error

// Opt sets optional fields of the snapshot Prepare, View or Commit creates.
type Opt func(*Info) error

// LabelLayerSize is the label of a committed snapshot holding the
// uncompressed size (tar bytes) of the layer it was unpacked from, so that
// image sizes need no second pass over the layer.
const LabelLayerSize = "berth.dev/layer.size"

// WithVolatile sets Info.Volatile.
func WithVolatile() Opt {
	return func(info *Info) error {
		info.Volatile = true
		return nil
	}
}

// WithLabels attaches labels to the snapshot being created.
func WithLabels(labels map[string]string) Opt {
	return func(info *Info) error {
		if info.Labels == nil {
			info.Labels = map[string]string{}
		}
		for k, v := range labels {
			info.Labels[k] = v
		}
		return nil
	}
}

// Snapshotter manages snapshots: filesystem trees stacked on a chain of
// committed parents, handed out as mounts.
//
// Lifecycle. A snapshot is made by one of two calls on a committed parent
// (or on no parent, "" — an empty tree):
//
//   - Prepare(key, parent) makes an active snapshot: a writable tree that
//     starts as the parent's contents. The caller mounts it (the returned
//     mounts, or Mounts(key) later), changes files, unmounts it, and then
//     either Commits it or Removes it. Unpacking a layer is: Prepare on the
//     previous layer's committed snapshot, apply the tar, Commit under the
//     layer chain's ID. A container's root filesystem is an active snapshot
//     on its image's top layer that is never committed (or committed by
//     `commit` and the builder).
//   - View(key, parent) makes a read-only view of the parent. Changes made
//     through its mounts are refused; it can only be Removed.
//   - Commit(name, key) turns the active snapshot key into the committed
//     snapshot name. The key ceases to exist; name is immutable from then
//     on and can be the parent of new snapshots. Callers choose names;
//     naming a committed layer by its chain ID lets images that share a
//     chain prefix share the snapshots.
//
// Keys and names share one namespace: a key in use by an active snapshot
// or view cannot be used as a committed name and vice versa.
//
// Remove deletes a snapshot of any kind, but refuses (ErrFailedPrecondition)
// to remove a committed snapshot that is the parent of another snapshot:
// a garbage collector Walks the snapshots and removes them leaves first.
// Implementations make removal crash-safe: once Remove returns, the record
// is gone; if the process crashes, either the snapshot is still complete or
// it is gone, and Cleaner.Cleanup reclaims any leftover data.
//
// Errors wrap the categories of this package (ErrNotFound,
// ErrAlreadyExists, ErrFailedPrecondition, errdefs.ErrInvalidArgument) so callers
// test them with errors.Is.
//
// Implementations are safe for concurrent use.
type Snapshotter interface {
	// Stat returns the information of the snapshot key (or committed name).
	Stat(ctx context.Context, key string) (Info, error)

	// Update changes the mutable fields of a snapshot: its labels. With
	// no fieldpaths all labels are replaced by info.Labels; a fieldpath
	// "labels.<name>" sets (or, when missing from info.Labels, deletes) one
	// label. Kind, Parent and Name cannot be changed. It returns the
	// updated information.
	Update(ctx context.Context, info Info, fieldpaths ...string) (Info, error)

	// Usage returns the disk space the snapshot uses by itself. For an
	// active snapshot it is computed now (it can take as long as walking
	// the tree); for a committed one it was recorded at Commit.
	Usage(ctx context.Context, key string) (Usage, error)

	// Mounts returns the mounts that show the snapshot key: writable for
	// an active snapshot, read-only for a view or a committed snapshot.
	// The mounts stay valid until the snapshot is removed or committed.
	Mounts(ctx context.Context, key string) ([]Mount, error)

	// Prepare makes the active snapshot key on top of the committed
	// snapshot parent ("" for an empty tree) and returns its mounts. It
	// fails with ErrAlreadyExists when key exists, ErrNotFound when parent
	// does not, and errdefs.ErrInvalidArgument when parent is not committed.
	Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error)

	// View makes the read-only snapshot key of the committed snapshot
	// parent and returns its mounts. Errors are as for Prepare.
	View(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error)

	// Commit turns the active snapshot key into the committed snapshot
	// name. The key's mounts must be unmounted first. It fails with
	// ErrNotFound when key does not exist, ErrFailedPrecondition when key
	// is not active, and ErrAlreadyExists when name is taken.
	Commit(ctx context.Context, name, key string, opts ...Opt) error

	// Remove deletes the snapshot key (or committed name). Its mounts must
	// be unmounted first. It fails with ErrNotFound when there is no such
	// snapshot and with ErrFailedPrecondition when it is the parent of
	// another snapshot.
	Remove(ctx context.Context, key string) error

	// Walk calls fn for every snapshot, in order of name.
	Walk(ctx context.Context, fn WalkFunc) error

	// Close releases the snapshotter. Snapshots stay on disk.
	Close() error
}

// Cleaner is implemented by snapshotters that can leave data behind when
// the process crashes mid-operation (a half-made snapshot, a removed one
// not yet deleted). The daemon calls Cleanup at start, and a garbage
// collector after removing snapshots. Cleanup never touches a snapshot
// that has a record.
type Cleaner interface {
	Cleanup(ctx context.Context) error
}
