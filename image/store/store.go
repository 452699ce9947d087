// Package store owns Berth's image records: which images exist locally,
// the names (tags and digest references) that point at them, and the
// Docker views of them (images, inspect, history, tag, rmi, image prune).
//
// An image is identified as Docker identifies it: by the digest of its
// config blob (the image ID, "sha256:..."). A record keeps the image's
// target (the manifest or index it was pulled, loaded or built as), the
// platform manifest resolved from it, its diff ids and chain id (the name
// of its top committed snapshot), layer sizes and times. Blobs live in the
// content store and layers in the snapshotter; a record only points at
// them, and the garbage collector (package gc) keeps whatever a record
// points at (GCRoots).
//
// # Persistence
//
// Records live in one bbolt database (meta.db): bucket "images" maps an
// image ID to its JSON record, bucket "names" maps a full reference
// ("docker.io/library/busybox:latest", "...@sha256:...") to an image ID.
// bbolt was chosen over one JSON file per record because the operations
// change several records at once — `rmi` untags names and deletes the image
// record, Put moves a tag from one image to another — and bbolt commits
// such a change atomically and durably (copy-on-write pages, fsync before
// the meta page flips): after a crash the store shows the change entirely
// or not at all. It also gives readers consistent snapshots while a writer
// works, so the store is safe for concurrent use without locks of its own.
//
// # Crash safety with the content store and snapshots
//
// A record is written only after its blobs (and snapshots) exist, and
// deleting an image only deletes its record: the blobs and snapshots become
// unreferenced and are reclaimed by the next garbage collection (mark, then
// sweep). So a crash can never leave a record pointing at nothing. Writers
// that create blobs hold a gc.Lease until the record is committed.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/gc"
	"github.com/berth-dev/berth/image/reference"
)

var (
	bucketImages = []byte("images")
	bucketNames  = []byte("names")
)

// Image is one image record.
type Image struct {
	// ID is the config digest, Docker's image ID.
	ID digest.Digest `json:"id"`
	// Target is the manifest or index the image was created from.
	Target ocispec.Descriptor `json:"target"`
	// Manifest is the platform manifest resolved from Target.
	Manifest ocispec.Descriptor `json:"manifest"`
	// Config is the config blob (its digest is ID).
	Config ocispec.Descriptor `json:"config"`
	// Platform is the config's os/architecture/variant.
	Platform ocispec.Platform `json:"platform"`
	// DiffIDs are the uncompressed digests of the layers, bottom first.
	DiffIDs []digest.Digest `json:"diffIDs,omitempty"`
	// ChainID names the image's top committed snapshot ("" for an image
	// without layers).
	ChainID digest.Digest `json:"chainID,omitempty"`
	// LayerSizes are the uncompressed sizes of the layers (what `docker
	// history` shows), parallel to DiffIDs.
	LayerSizes []int64 `json:"layerSizes,omitempty"`
	// Size is the sum of LayerSizes.
	Size int64 `json:"size"`
	// Created is when the image was built (the config's created time).
	Created time.Time `json:"created,omitzero"`
	// LastTagTime is when a name was last given to the image here.
	LastTagTime time.Time `json:"lastTagTime,omitzero"`

	// Parent is the local image a build step or commit started from
	// (Docker's Parent; "" for pulled and loaded images).
	Parent digest.Digest `json:"parent,omitempty"`

	// Names are the references pointing at the image, sorted (filled on
	// read, never stored in the record).
	Names []reference.Named `json:"-"`
}

// RepoTags are the image's tagged names, as Docker shows them
// ("busybox:latest").
func (img Image) RepoTags() []string {
	out := []string{}
	for _, n := range img.Names {
		if n.Digest() == "" {
			out = append(out, reference.FamiliarString(n))
		}
	}
	return out
}

// RepoDigests are the image's digest references ("busybox@sha256:...").
func (img Image) RepoDigests() []string {
	out := []string{}
	for _, n := range img.Names {
		if n.Digest() != "" {
			out = append(out, reference.Familiar(n)+"@"+n.Digest().String())
		}
	}
	return out
}

// Dangling reports whether no tag points at the image.
func (img Image) Dangling() bool { return len(img.RepoTags()) == 0 }

// ShortID is the 12-hex-digit form of id that `docker images` shows.
func ShortID(id digest.Digest) string {
	e := id.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}

// Options configure a Store.
type Options struct {
	// InUse returns the containers using the image id; rmi refuses to
	// delete an image a container uses. nil means none.
	InUse func(id digest.Digest) []string
	// Platform is the platform images are resolved for (default
	// DefaultPlatform).
	Platform *ocispec.Platform
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Store is the image record store. It is safe for concurrent use.
type Store struct {
	db       *bolt.DB
	cs       content.Provider
	inUse    func(digest.Digest) []string
	platform ocispec.Platform
	now      func() time.Time
}

// Open opens (creating if needed) the records in dir/meta.db. Blobs are
// read from cs. Only one process may have dir open; a second Open fails
// after a second with ErrUnavailable.
func Open(dir string, cs content.Provider, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			err = fmt.Errorf("%w: %v", errdefs.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("image store %s: %w", dir, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketImages, bucketNames} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("image store %s: %w", dir, err)
	}
	s := &Store{db: db, cs: cs, inUse: opts.InUse, platform: DefaultPlatform(), now: time.Now}
	if opts.Platform != nil {
		s.platform = *opts.Platform
	}
	if opts.Now != nil {
		s.now = opts.Now
	}
	if s.inUse == nil {
		s.inUse = func(digest.Digest) []string { return nil }
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// PutOptions tune Put.
type PutOptions struct {
	// Names to point at the image (moved from another image if they
	// pointed elsewhere).
	Names []reference.Named
	// LayerSizes are the uncompressed layer sizes; when missing, the
	// manifest's (compressed) blob sizes are recorded instead.
	LayerSizes []int64
	// Platform overrides the store's platform to pick from an index.
	Platform *ocispec.Platform
	// Parent is the image this one was built or committed on.
	Parent digest.Digest
}

// Put records the image whose manifest or index is target; its manifest
// and config must be in the content store. It returns the record. Putting
// an image that exists updates its target and adds the names.
func (s *Store) Put(ctx context.Context, target ocispec.Descriptor, opts PutOptions) (Image, error) {
	platform := s.platform
	if opts.Platform != nil {
		platform = *opts.Platform
	}
	r, err := Resolve(ctx, s.cs, target, platform)
	if err != nil {
		return Image{}, fmt.Errorf("put image %s: %w", target.Digest, err)
	}
	img := Image{
		ID:       r.ManifestBody.Config.Digest,
		Target:   target,
		Manifest: r.Manifest,
		Config:   r.ManifestBody.Config,
		Platform: r.Config.Platform,
		DiffIDs:  r.Config.RootFS.DiffIDs,
		Parent:   opts.Parent,
	}
	if r.Config.Created != nil {
		img.Created = *r.Config.Created
	}
	if ids := ChainIDs(img.DiffIDs); len(ids) > 0 {
		img.ChainID = ids[len(ids)-1]
	}
	if len(opts.LayerSizes) == len(img.DiffIDs) {
		img.LayerSizes = opts.LayerSizes
	} else {
		for _, l := range r.ManifestBody.Layers {
			img.LayerSizes = append(img.LayerSizes, l.Size)
		}
	}
	for _, n := range img.LayerSizes {
		img.Size += n
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if old, err := getRecord(tx, img.ID); err == nil {
			img.LastTagTime = old.LastTagTime
			if img.Parent == "" {
				img.Parent = old.Parent
			}
		}
		if len(opts.Names) > 0 {
			img.LastTagTime = s.now().UTC()
		}
		if err := putRecord(tx, img); err != nil {
			return err
		}
		for _, n := range opts.Names {
			if err := tx.Bucket(bucketNames).Put([]byte(n.String()), []byte(img.ID)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Image{}, fmt.Errorf("put image %s: %w", img.ID, err)
	}
	return s.Get(ctx, img.ID.String())
}

func getRecord(tx *bolt.Tx, id digest.Digest) (Image, error) {
	v := tx.Bucket(bucketImages).Get([]byte(id))
	if v == nil {
		return Image{}, fmt.Errorf("no such image: %s: %w", id, errdefs.ErrNotFound)
	}
	var img Image
	if err := json.Unmarshal(v, &img); err != nil {
		return Image{}, fmt.Errorf("image record %s: %w", id, err)
	}
	img.Names = namesOf(tx, id)
	return img, nil
}

func putRecord(tx *bolt.Tx, img Image) error {
	b, err := json.Marshal(img)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketImages).Put([]byte(img.ID), b)
}

// namesOf lists the names pointing at id, sorted.
func namesOf(tx *bolt.Tx, id digest.Digest) []reference.Named {
	var out []reference.Named
	_ = tx.Bucket(bucketNames).ForEach(func(k, v []byte) error {
		if string(v) == string(id) {
			if n, err := reference.Parse(string(k)); err == nil {
				out = append(out, n)
			}
		}
		return nil
	})
	return out
}

// Get finds an image by name ("busybox", "busybox:1.36",
// "busybox@sha256:..."), by ID ("sha256:<hex>" or "<hex>"), or by a
// prefix of its ID's hex ("d2c94e258dcb"), as Docker does: a name that
// exists wins over an ID prefix. A prefix matching several images is
// refused with ErrInvalidArgument naming the ambiguity; nothing found is
// ErrNotFound ("No such image: ...").
func (s *Store) Get(ctx context.Context, refOrID string) (Image, error) {
	var img Image
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		img, _, err = lookup(tx, refOrID)
		return err
	})
	return img, err
}

// lookup resolves refOrID; byName reports whether it matched a name (and
// returns that name).
func lookup(tx *bolt.Tx, refOrID string) (Image, *reference.Named, error) {
	if d, err := digest.Parse(refOrID); err == nil {
		img, err := getRecord(tx, d)
		if err != nil {
			return Image{}, nil, fmt.Errorf("No such image: %s: %w", refOrID, errdefs.ErrNotFound)
		}
		return img, nil, nil
	}
	what := refOrID
	if n, err := reference.Parse(refOrID); err == nil {
		if v := tx.Bucket(bucketNames).Get([]byte(n.String())); v != nil {
			img, err := getRecord(tx, digest.Digest(v))
			return img, &n, err
		}
		what = reference.FamiliarString(n) // dockerd names the tag: "No such image: nosuch:latest"
	}
	if isHexPrefix(refOrID) {
		var found []digest.Digest
		c := tx.Bucket(bucketImages).Cursor()
		prefix := []byte(string(digest.SHA256) + ":" + refOrID)
		for k, _ := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, _ = c.Next() {
			found = append(found, digest.Digest(k))
		}
		switch len(found) {
		case 1:
			img, err := getRecord(tx, found[0])
			return img, nil, err
		case 0:
		default:
			return Image{}, nil, fmt.Errorf("short ID %q is ambiguous: it matches %d images (%s, %s, ...); give more digits: %w",
				refOrID, len(found), ShortID(found[0]), ShortID(found[1]), errdefs.ErrInvalidArgument)
		}
	}
	return Image{}, nil, fmt.Errorf("No such image: %s: %w", what, errdefs.ErrNotFound)
}

func isHexPrefix(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ListOptions filter List, as `docker images --filter` does.
type ListOptions struct {
	// Dangling, when set, keeps only untagged (true) or tagged (false)
	// images.
	Dangling *bool
	// Reference, when set, keeps images with a name matching the glob
	// pattern, as Docker matches it: against the familiar repository
	// ("busybox", "user/*") or repository:tag ("busybox:1.*").
	Reference string
	// HideIntermediate leaves out untagged images that are another
	// image's parent (a build's steps), as `docker images` without -a.
	HideIntermediate bool
}

// List returns the images, newest first (by Created, then ID).
func (s *Store) List(ctx context.Context, opts ListOptions) ([]Image, error) {
	var all []Image
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketImages).ForEach(func(k, _ []byte) error {
			img, err := getRecord(tx, digest.Digest(k))
			if err != nil {
				return err
			}
			all = append(all, img)
			return nil
		})
	})
	parents := map[digest.Digest]bool{}
	for _, img := range all {
		if img.Parent != "" {
			parents[img.Parent] = true
		}
	}
	var out []Image
	for _, img := range all {
		switch {
		case opts.Dangling != nil && img.Dangling() != *opts.Dangling:
		case opts.Reference != "" && !matchReference(img, opts.Reference):
		case opts.HideIntermediate && img.Dangling() && parents[img.ID]:
		default:
			out = append(out, img)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

func matchReference(img Image, pattern string) bool {
	for _, n := range img.Names {
		fam := reference.Familiar(n)
		if ok, _ := filepathMatch(pattern, fam); ok {
			return true
		}
		if n.Tag() != "" {
			if ok, _ := filepathMatch(pattern, fam+":"+n.Tag()); ok {
				return true
			}
		}
	}
	return false
}

// filepathMatch is path.Match on reference strings (which use '/').
func filepathMatch(pattern, name string) (bool, error) { return filepath.Match(pattern, name) }

// Tag points name at the image refOrID (moving it from another image).
func (s *Store) Tag(ctx context.Context, refOrID string, name reference.Named) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		img, _, err := lookup(tx, refOrID)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketNames).Put([]byte(name.String()), []byte(img.ID)); err != nil {
			return err
		}
		img.LastTagTime = s.now().UTC()
		return putRecord(tx, img)
	})
}

// GCRoots returns what the image records keep alive: every record's
// target, manifest and config blobs (the collector walks from them to the
// layers) and its chain id snapshot (with its parents).
func (s *Store) GCRoots(ctx context.Context) (gc.Roots, error) {
	var roots gc.Roots
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
			var img Image
			if err := json.Unmarshal(v, &img); err != nil {
				return fmt.Errorf("image record %s: %w", k, err)
			}
			roots.Blobs = append(roots.Blobs, img.Target, img.Manifest, img.Config)
			if img.ChainID != "" {
				roots.Snapshots = append(roots.Snapshots, img.ChainID.String())
			}
			return nil
		})
	})
	return roots, err
}
