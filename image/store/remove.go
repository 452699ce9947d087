package store

import (
	"context"
	"fmt"

	"github.com/moby/moby/api/types/image"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/reference"
)

// RemoveOptions tune Remove.
type RemoveOptions struct {
	// Force untags a name even when a container uses the image, and
	// deletes an image referenced by several repositories. An image a
	// container uses is never deleted, forced or not (it stays, untagged).
	Force bool
}

// Remove is `docker rmi`: it untags and deletes in one atomic change and
// returns Docker's lines in order ({"Untagged": "busybox:latest"}, ...,
// {"Deleted": "sha256:<image id>"}, then {"Deleted": "sha256:<chain id>"}
// for each layer no other image uses, top first).
//
// Given a name, Remove untags it (and the digest references of the same
// repository when no tag of it is left); the image is deleted when no name
// is left. Given an ID, it untags every name if they all belong to one
// repository (or with Force) and deletes the image. An image a container
// uses is refused with ErrConflict in Docker's words, except that Force
// untags the name anyway. Deleting only removes the record: blobs and
// snapshots go at the next garbage collection.
func (s *Store) Remove(ctx context.Context, refOrID string, opts RemoveOptions) ([]image.DeleteResponse, error) {
	var records []image.DeleteResponse
	err := s.db.Update(func(tx *bolt.Tx) error {
		records = nil
		img, name, err := lookup(tx, refOrID)
		if err != nil {
			return err
		}
		users := s.inUse(img.ID)
		refs := img.Names
		untag := func(n reference.Named) error {
			records = append(records, image.DeleteResponse{Untagged: reference.FamiliarString(n)})
			return tx.Bucket(bucketNames).Delete([]byte(n.String()))
		}
		if name != nil {
			if !opts.Force && isSingleReference(refs) && len(users) > 0 {
				return fmt.Errorf("conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s: %w",
					refOrID, shortContainer(users[0]), ShortID(img.ID), errdefs.ErrConflict)
			}
			if err := untag(*name); err != nil {
				return err
			}
			refs = without(refs, *name)
			if name.Digest() == "" {
				// The last tag of a repository takes its digest
				// references with it.
				tagLeft := false
				for _, r := range refs {
					if r.Digest() == "" && r.Name() == name.Name() {
						tagLeft = true
					}
				}
				if !tagLeft {
					var keep []reference.Named
					for _, r := range refs {
						if r.Digest() != "" && r.Name() == name.Name() {
							if err := untag(r); err != nil {
								return err
							}
						} else {
							keep = append(keep, r)
						}
					}
					refs = keep
				}
			}
			if len(refs) > 0 || len(users) > 0 {
				return nil
			}
		} else {
			if len(refs) > 0 && !isSingleReference(refs) && !opts.Force {
				return fmt.Errorf("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories: %w",
					ShortID(img.ID), errdefs.ErrConflict)
			}
			if len(users) > 0 && !opts.Force {
				return fmt.Errorf("conflict: unable to delete %s (must be forced) - image is being used by stopped container %s: %w",
					ShortID(img.ID), shortContainer(users[0]), errdefs.ErrConflict)
			}
			for _, r := range refs {
				if err := untag(r); err != nil {
					return err
				}
			}
			if len(users) > 0 {
				return nil
			}
		}
		deleted, err := s.deleteRecord(tx, img)
		records = append(records, deleted...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return records, nil
}

// deleteRecord deletes img's record and names and returns the Deleted
// lines: the image, then the layers no other image shares, top first.
func (s *Store) deleteRecord(tx *bolt.Tx, img Image) ([]image.DeleteResponse, error) {
	for _, n := range namesOf(tx, img.ID) {
		if err := tx.Bucket(bucketNames).Delete([]byte(n.String())); err != nil {
			return nil, err
		}
	}
	if err := tx.Bucket(bucketImages).Delete([]byte(img.ID)); err != nil {
		return nil, err
	}
	out := []image.DeleteResponse{{Deleted: img.ID.String()}}
	shared, err := chainsInUse(tx)
	if err != nil {
		return nil, err
	}
	chains := ChainIDs(img.DiffIDs)
	for i := len(chains) - 1; i >= 0; i-- {
		if shared[chains[i]] {
			break // its parents are shared too
		}
		out = append(out, image.DeleteResponse{Deleted: chains[i].String()})
	}
	return out, nil
}

// chainsInUse is the set of chain ids (every prefix) of all records.
func chainsInUse(tx *bolt.Tx) (map[digest.Digest]bool, error) {
	set := map[digest.Digest]bool{}
	err := tx.Bucket(bucketImages).ForEach(func(k, _ []byte) error {
		img, err := getRecord(tx, digest.Digest(k))
		if err != nil {
			return err
		}
		for _, c := range ChainIDs(img.DiffIDs) {
			set[c] = true
		}
		return nil
	})
	return set, err
}

// layerSizeFreed is the size of the Deleted chain ids of records.
func layerSizeFreed(img Image, records []image.DeleteResponse) uint64 {
	sizes := map[string]int64{}
	for i, c := range ChainIDs(img.DiffIDs) {
		if i < len(img.LayerSizes) {
			sizes[c.String()] = img.LayerSizes[i]
		}
	}
	var n uint64
	for _, r := range records {
		n += uint64(sizes[r.Deleted])
	}
	return n
}

// Prune is `docker image prune`: it deletes every dangling image (no tag)
// that no container uses and reports what went and the layer bytes freed.
func (s *Store) Prune(ctx context.Context) (image.PruneReport, error) {
	report := image.PruneReport{ImagesDeleted: []image.DeleteResponse{}}
	err := s.db.Update(func(tx *bolt.Tx) error {
		report.ImagesDeleted, report.SpaceReclaimed = []image.DeleteResponse{}, 0
		var ids []digest.Digest
		_ = tx.Bucket(bucketImages).ForEach(func(k, _ []byte) error {
			ids = append(ids, digest.Digest(k))
			return nil
		})
		for _, id := range ids {
			img, err := getRecord(tx, id)
			if err != nil {
				return err
			}
			if !img.Dangling() || len(s.inUse(id)) > 0 {
				continue
			}
			for _, n := range img.Names { // digest references
				report.ImagesDeleted = append(report.ImagesDeleted, image.DeleteResponse{Untagged: reference.FamiliarString(n)})
			}
			recs, err := s.deleteRecord(tx, img)
			if err != nil {
				return err
			}
			report.ImagesDeleted = append(report.ImagesDeleted, recs...)
			report.SpaceReclaimed += layerSizeFreed(img, recs)
		}
		return nil
	})
	return report, err
}

// isSingleReference is Docker's test: the names are one tag plus digest
// references, all of one repository (or one name only).
func isSingleReference(refs []reference.Named) bool {
	if len(refs) <= 1 {
		return len(refs) == 1
	}
	var tag *reference.Named
	repos := map[string]bool{}
	for i, r := range refs {
		if r.Digest() != "" {
			repos[r.Name()] = true
		} else if tag == nil {
			tag = &refs[i]
		} else {
			return false
		}
	}
	if tag == nil {
		tag = &refs[0]
	}
	return len(repos) == 1 && repos[tag.Name()]
}

func without(refs []reference.Named, n reference.Named) []reference.Named {
	var out []reference.Named
	for _, r := range refs {
		if r != n {
			out = append(out, r)
		}
	}
	return out
}

func shortContainer(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
