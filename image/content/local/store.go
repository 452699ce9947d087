// Package local is the content store on disk (content.Store).
//
// Layout under the root directory:
//
//	blobs/<alg>/<hex>             committed blobs, read-only once there
//	ingest/<sha256 of ref>/       one in-progress write
//	    ref                       the ref, to recognise the ingest
//	    total                     expected size, when known
//	    expected                  expected digest, when known
//	    startedat                 RFC 3339 start time
//	    data                      the bytes written so far
//	ingest/.tmp-*                 an ingest being created (removed at open)
//
// Crash safety: an ingest directory appears by rename, complete with its
// metadata; a blob appears under blobs/ only after its size and digest were
// verified and its data fsynced, by a rename that refuses to replace (and a
// fsync of the directory). A process killed at any point leaves no partial
// blob visible; its ingest is resumed, or restarted when unusable, by the
// next Writer for the same ref. Deleting a blob is one unlink.
//
// One process owns a root: refs are locked in memory, not across
// processes (berthd holds the root).
package local

import (
	"context"
	_ "crypto/sha256" // the digest algorithms blobs may use
	_ "crypto/sha512"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/content"
)

// Store is a content.Store on a local filesystem.
type Store struct {
	root string

	mu     sync.Mutex
	active map[string]chan struct{} // ref -> closed when its Writer finishes
}

var _ content.Store = (*Store)(nil)

// NewStore opens (creating if needed) the store rooted at root and removes
// ingests that were being created when a previous owner died.
func NewStore(root string) (*Store, error) {
	for _, d := range []string{filepath.Join(root, "blobs"), filepath.Join(root, "ingest")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("content store: %w", err)
		}
	}
	tmps, _ := filepath.Glob(filepath.Join(root, "ingest", ".tmp-*"))
	for _, t := range tmps {
		if err := os.RemoveAll(t); err != nil {
			return nil, fmt.Errorf("content store: remove half-created ingest: %w", err)
		}
	}
	return &Store{root: root, active: map[string]chan struct{}{}}, nil
}

// Root is the directory the store lives in.
func (s *Store) Root() string { return s.root }

// blobPath is where dgst lives; dgst is validated first, so a hostile
// digest can never name a path outside blobs/.
func (s *Store) blobPath(dgst digest.Digest) (string, error) {
	if err := dgst.Validate(); err != nil {
		return "", fmt.Errorf("digest %q: %w: %v", dgst, errdefs.ErrInvalidArgument, err)
	}
	return filepath.Join(s.root, "blobs", string(dgst.Algorithm()), dgst.Encoded()), nil
}

func (s *Store) ingestDir(ref string) string {
	return filepath.Join(s.root, "ingest", digest.FromString(ref).Encoded())
}

// Info implements content.Provider and content.Manager.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	p, err := s.blobPath(dgst)
	if err != nil {
		return content.Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return content.Info{}, notFound(dgst, err)
	}
	return content.Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime()}, nil
}

// ReaderAt implements content.Provider.
func (s *Store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	p, err := s.blobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, notFound(desc.Digest, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if desc.Size > 0 && desc.Size != fi.Size() {
		f.Close()
		return nil, fmt.Errorf("blob %s is %d bytes, the descriptor says %d: %w", desc.Digest, fi.Size(), desc.Size, errdefs.ErrFailedPrecondition)
	}
	return &readerAt{File: f, size: fi.Size()}, nil
}

type readerAt struct {
	*os.File
	size int64
}

func (r *readerAt) Size() int64 { return r.size }

// Delete implements content.Manager.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	p, err := s.blobPath(dgst)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return notFound(dgst, err)
	}
	return nil
}

// Walk implements content.Manager. Blobs are visited in lexical order of
// algorithm and hex.
func (s *Store) Walk(ctx context.Context, fn content.WalkFunc) error {
	blobs := filepath.Join(s.root, "blobs")
	algs, err := os.ReadDir(blobs)
	if err != nil {
		return fmt.Errorf("walk %s: %w", blobs, err)
	}
	for _, alg := range algs {
		if !alg.IsDir() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(blobs, alg.Name()))
		if err != nil {
			return fmt.Errorf("walk %s: %w", blobs, err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			dgst := digest.NewDigestFromEncoded(digest.Algorithm(alg.Name()), e.Name())
			if !e.Type().IsRegular() || dgst.Validate() != nil {
				continue // not ours
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted meanwhile
			}
			if err != nil {
				return fmt.Errorf("walk %s: %w", blobs, err)
			}
			if err := fn(content.Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// lock takes ref for one Writer, waiting for the current holder to finish
// or ctx to be done.
func (s *Store) lock(ctx context.Context, ref string) error {
	for {
		s.mu.Lock()
		held, busy := s.active[ref]
		if !busy {
			s.active[ref] = make(chan struct{})
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return fmt.Errorf("ingest %q is locked by another writer: %w (%w)", ref, errdefs.ErrUnavailable, ctx.Err())
		}
	}
}

// tryLock takes ref if nobody holds it.
func (s *Store) tryLock(ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, busy := s.active[ref]; busy {
		return fmt.Errorf("ingest %q is locked by a writer: %w", ref, errdefs.ErrUnavailable)
	}
	s.active[ref] = make(chan struct{})
	return nil
}

func (s *Store) unlock(ref string) {
	s.mu.Lock()
	close(s.active[ref])
	delete(s.active, ref)
	s.mu.Unlock()
}

// notFound maps a missing file to ErrNotFound and keeps other errors.
func notFound(what any, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %v: %w", what, errdefs.ErrNotFound)
	}
	return fmt.Errorf("blob %v: %w", what, err)
}

func isTmp(name string) bool { return strings.HasPrefix(name, ".tmp-") }
