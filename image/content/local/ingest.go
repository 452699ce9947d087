package local

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/content"
)

// Writer implements content.Ingester; see there for the contract.
func (s *Store) Writer(ctx context.Context, ref string, desc ocispec.Descriptor) (content.Writer, error) {
	if ref == "" {
		return nil, fmt.Errorf("ingest: empty ref: %w", errdefs.ErrInvalidArgument)
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("ingest %q: negative size %d: %w", ref, desc.Size, errdefs.ErrInvalidArgument)
	}
	if desc.Digest != "" {
		if _, err := s.blobPath(desc.Digest); err != nil {
			return nil, fmt.Errorf("ingest %q: %w", ref, err)
		}
		if !desc.Digest.Algorithm().Available() {
			return nil, fmt.Errorf("ingest %q: digest algorithm %q: %w", ref, desc.Digest.Algorithm(), errdefs.ErrInvalidArgument)
		}
		if err := s.exists(ref, desc.Digest); err != nil {
			return nil, err
		}
	}
	if err := s.lock(ctx, ref); err != nil {
		return nil, err
	}
	w, err := s.openIngest(ref, desc)
	if err != nil {
		s.unlock(ref)
		return nil, err
	}
	return w, nil
}

// exists returns ErrAlreadyExists when dgst is committed.
func (s *Store) exists(ref string, dgst digest.Digest) error {
	p, _ := s.blobPath(dgst)
	if _, err := os.Stat(p); err == nil {
		return fmt.Errorf("ingest %q: blob %s: %w", ref, dgst, errdefs.ErrAlreadyExists)
	}
	return nil
}

// openIngest resumes the ingest of ref, or starts it afresh when there is
// none or it cannot be trusted. The caller holds the lock of ref.
func (s *Store) openIngest(ref string, desc ocispec.Descriptor) (*writer, error) {
	dir := s.ingestDir(ref)
	if desc.Digest != "" {
		// The holder we may have waited for could have committed it.
		if err := s.exists(ref, desc.Digest); err != nil {
			os.RemoveAll(dir) // any leftover of ours is moot now
			return nil, err
		}
	}
	w, err := s.resume(ref, dir, desc)
	if err == nil {
		return w, nil
	}
	if !errors.Is(err, errStale) {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("ingest %q: remove stale ingest: %w", ref, err)
	}
	return s.create(ref, dir, desc)
}

// errStale marks an ingest that exists but is not usable for this write.
var errStale = errors.New("stale ingest")

// resume opens the existing ingest of ref, re-reading its data to rebuild
// the digest state. It returns errStale when there is none or it does not
// fit desc.
func (s *Store) resume(ref, dir string, desc ocispec.Descriptor) (*writer, error) {
	st, err := readStatus(dir)
	if err != nil || st.Ref != ref {
		return nil, errStale
	}
	if (desc.Size > 0 && st.Total > 0 && desc.Size != st.Total) ||
		(desc.Digest != "" && st.Expected != "" && desc.Digest != st.Expected) {
		return nil, errStale // another content under the same ref
	}
	if desc.Size > 0 {
		st.Total = desc.Size
	}
	if desc.Digest != "" {
		st.Expected = desc.Digest
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR, 0)
	if err != nil {
		return nil, errStale
	}
	w := newWriter(s, ref, dir, f, st)
	n, err := io.Copy(w.hash, f) // leaves f positioned at its end
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ingest %q: re-read data: %w", ref, err)
	}
	w.offset = n
	if st.Total > 0 && n > st.Total {
		f.Close()
		return nil, errStale
	}
	return w, nil
}

// create makes a new ingest directory, complete, by rename.
func (s *Store) create(ref, dir string, desc ocispec.Descriptor) (*writer, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tmp-")
	if err != nil {
		return nil, fmt.Errorf("ingest %q: %w", ref, err)
	}
	now := time.Now().UTC()
	files := map[string]string{"ref": ref, "startedat": now.Format(time.RFC3339Nano), "data": ""}
	if desc.Size > 0 {
		files["total"] = strconv.FormatInt(desc.Size, 10)
	}
	if desc.Digest != "" {
		files["expected"] = string(desc.Digest)
	}
	for name, val := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(val), 0o600); err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("ingest %q: %w", ref, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("ingest %q: %w", ref, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("ingest %q: %w", ref, err)
	}
	return newWriter(s, ref, dir, f, content.Status{Ref: ref, Total: desc.Size, Expected: desc.Digest, StartedAt: now}), nil
}

// readStatus reads an ingest directory's metadata.
func readStatus(dir string) (content.Status, error) {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		return string(b), err
	}
	var st content.Status
	var err error
	if st.Ref, err = read("ref"); err != nil {
		return st, err
	}
	if v, err := read("total"); err == nil {
		if st.Total, err = strconv.ParseInt(v, 10, 64); err != nil || st.Total < 0 {
			return st, fmt.Errorf("bad total %q", v)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return st, err
	}
	if v, err := read("expected"); err == nil {
		st.Expected = digest.Digest(v)
		if st.Expected.Validate() != nil {
			return st, fmt.Errorf("bad expected digest %q", v)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return st, err
	}
	v, err := read("startedat")
	if err != nil {
		return st, err
	}
	if st.StartedAt, err = time.Parse(time.RFC3339Nano, v); err != nil {
		return st, err
	}
	fi, err := os.Stat(filepath.Join(dir, "data"))
	if err != nil {
		return st, err
	}
	st.Offset, st.UpdatedAt = fi.Size(), fi.ModTime()
	return st, nil
}

// Status implements content.IngestManager.
func (s *Store) Status(ctx context.Context, ref string) (content.Status, error) {
	st, err := readStatus(s.ingestDir(ref))
	if err != nil || st.Ref != ref {
		return content.Status{}, fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
	}
	return st, nil
}

// ListStatuses implements content.IngestManager. Unreadable ingests (a
// crash while one was being discarded) are skipped; the next Writer for
// their ref restarts them.
func (s *Store) ListStatuses(ctx context.Context) ([]content.Status, error) {
	root := filepath.Join(s.root, "ingest")
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("list ingests: %w", err)
	}
	var out []content.Status
	for _, e := range entries {
		if !e.IsDir() || isTmp(e.Name()) {
			continue
		}
		if st, err := readStatus(filepath.Join(root, e.Name())); err == nil {
			out = append(out, st)
		}
	}
	return out, nil
}

// Abort implements content.IngestManager.
func (s *Store) Abort(ctx context.Context, ref string) error {
	if err := s.tryLock(ref); err != nil {
		return err
	}
	defer s.unlock(ref)
	dir := s.ingestDir(ref)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("ingest %q: abort: %w", ref, err)
	}
	return nil
}

// newHash returns the running hash for a write expecting dgst (sha256
// when unknown).
func newHash(dgst digest.Digest) (digest.Algorithm, hash.Hash) {
	alg := digest.Canonical
	if dgst != "" {
		alg = dgst.Algorithm()
	}
	return alg, alg.Hash()
}
