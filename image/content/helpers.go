package content

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
)

// NewReader returns a stream of the whole blob behind ra.
func NewReader(ra ReaderAt) io.Reader {
	return io.NewSectionReader(ra, 0, ra.Size())
}

// ReadBlob reads a whole blob into memory. It is meant for small blobs
// (manifests, configs): it refuses a blob larger than max bytes with
// ErrFailedPrecondition.
func ReadBlob(ctx context.Context, p Provider, desc ocispec.Descriptor, max int64) ([]byte, error) {
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	if ra.Size() > max {
		return nil, fmt.Errorf("blob %s is %d bytes, more than the %d allowed: %w", desc.Digest, ra.Size(), max, errdefs.ErrFailedPrecondition)
	}
	b := make([]byte, ra.Size())
	if _, err := ra.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && len(b) == 0) {
		return nil, fmt.Errorf("read blob %s: %w", desc.Digest, err)
	}
	return b, nil
}

// WriteBlob stores the content of r as the blob desc, through the ingest
// ref: it waits for another writer of ref, resumes a partial ingest when r
// is an io.Seeker (restarts it otherwise), and commits. A blob that is
// already present is success; r is then not read.
func WriteBlob(ctx context.Context, ing Ingester, ref string, r io.Reader, desc ocispec.Descriptor) error {
	w, err := ing.Writer(ctx, ref, desc)
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	if off := w.Offset(); off > 0 {
		s, ok := r.(io.Seeker)
		if ok {
			_, err = s.Seek(off, io.SeekStart)
		}
		if !ok || err != nil {
			if err := w.Truncate(0); err != nil {
				return err
			}
		}
	}
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("write blob %s: %w", desc.Digest, err)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// Descriptor describes b as a blob of the given media type, for tests and
// small generated blobs.
func Descriptor(mediaType string, b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
}
