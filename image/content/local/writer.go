package local

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/internal/atomicfile"
)

// writer is one open ingest. It holds the lock of its ref until Commit or
// Close.
type writer struct {
	s      *Store
	ref    string
	dir    string
	f      *os.File
	st     content.Status
	alg    digest.Algorithm
	hash   hash.Hash
	offset int64
	done   bool
}

func newWriter(s *Store, ref, dir string, f *os.File, st content.Status) *writer {
	alg, h := newHash(st.Expected)
	return &writer{s: s, ref: ref, dir: dir, f: f, st: st, alg: alg, hash: h}
}

func (w *writer) Offset() int64 { return w.offset }

func (w *writer) Digest() digest.Digest { return digest.NewDigest(w.alg, w.hash) }

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("ingest %q: write after commit or close: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	if w.st.Total > 0 && w.offset+int64(len(p)) > w.st.Total {
		return 0, fmt.Errorf("ingest %q: %d more bytes at offset %d exceed the expected size %d: %w",
			w.ref, len(p), w.offset, w.st.Total, errdefs.ErrFailedPrecondition)
	}
	// Sequential writes: os.File.WriteAt drops the count of a partial
	// write that ends in an error (ENOSPC), Write does not.
	n, err := w.f.Write(p)
	w.hash.Write(p[:n])
	w.offset += int64(n)
	if err != nil {
		return n, fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	return n, nil
}

func (w *writer) Truncate(size int64) error {
	if w.done {
		return fmt.Errorf("ingest %q: truncate after commit or close: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	if size < 0 || size > w.offset {
		return fmt.Errorf("ingest %q: truncate to %d outside [0, %d]: %w", w.ref, size, w.offset, errdefs.ErrInvalidArgument)
	}
	if err := w.f.Truncate(size); err != nil {
		return fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	w.hash.Reset()
	if _, err := io.Copy(w.hash, io.NewSectionReader(w.f, 0, size)); err != nil {
		return fmt.Errorf("ingest %q: re-read data: %w", w.ref, err)
	}
	if _, err := w.f.Seek(size, io.SeekStart); err != nil {
		return fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	w.offset = size
	return nil
}

func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest) error {
	if w.done {
		return fmt.Errorf("ingest %q: commit after commit or close: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if size <= 0 {
		size = w.st.Total
	}
	if expected == "" {
		expected = w.st.Expected
	}
	if fi, err := w.f.Stat(); err != nil || fi.Size() != w.offset {
		w.discard() // bytes we did not account for: never publish them
		return fmt.Errorf("ingest %q: data file does not match the %d bytes written (%v): %w", w.ref, w.offset, err, errdefs.ErrFailedPrecondition)
	}
	if size > 0 && size != w.offset {
		w.discard()
		return fmt.Errorf("ingest %q: size mismatch: expected %d bytes, got %d: %w", w.ref, size, w.offset, errdefs.ErrFailedPrecondition)
	}
	actual := w.Digest()
	if expected != "" {
		if err := expected.Validate(); err != nil {
			w.discard()
			return fmt.Errorf("ingest %q: expected digest %q: %w: %v", w.ref, expected, errdefs.ErrInvalidArgument, err)
		}
		if expected.Algorithm() != w.alg {
			var err error
			if actual, err = expected.Algorithm().FromReader(io.NewSectionReader(w.f, 0, w.offset)); err != nil {
				return fmt.Errorf("ingest %q: re-read data: %w", w.ref, err)
			}
		}
		if actual != expected {
			w.discard()
			return fmt.Errorf("ingest %q: digest mismatch: expected %s, got %s: %w", w.ref, expected, actual, errdefs.ErrFailedPrecondition)
		}
	}
	// Durable before visible. An I/O error here keeps the ingest, so the
	// write can resume once the cause (e.g. a full disk) is gone.
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("ingest %q: fsync: %w", w.ref, err)
	}
	target, err := w.s.blobPath(actual)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	err = renameNoReplace(filepath.Join(w.dir, "data"), target)
	if errors.Is(err, os.ErrExist) {
		w.discard()
		return fmt.Errorf("ingest %q: blob %s: %w", w.ref, actual, errdefs.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("ingest %q: commit %s: %w", w.ref, actual, err)
	}
	if err := syncDir(filepath.Dir(target)); err != nil {
		// The blob is visible and complete; only its durability across a
		// power loss is uncertain. Say so rather than pretend.
		w.discard()
		return fmt.Errorf("ingest %q: fsync blob directory: %w", w.ref, err)
	}
	w.discard() // the data has moved; drop the metadata
	return nil
}

func (w *writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	err := w.f.Close()
	w.s.unlock(w.ref)
	if err != nil {
		return fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	return nil
}

// discard removes the ingest and finishes the writer.
func (w *writer) discard() {
	w.f.Close()
	os.RemoveAll(w.dir)
	w.done = true
	w.s.unlock(w.ref)
}

// renameNoReplace renames oldpath to newpath unless newpath exists, in
// which case it returns an error wrapping os.ErrExist. It is atomic where
// the filesystem supports RENAME_NOREPLACE.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// Not supported here: check, then rename. Two racing commits of
		// one digest then both succeed with identical, verified bytes.
		if _, serr := os.Lstat(newpath); serr == nil {
			return os.ErrExist
		}
		err = os.Rename(oldpath, newpath)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

func syncDir(dir string) error { return atomicfile.SyncDir(dir) }
