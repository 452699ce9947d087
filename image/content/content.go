// Package content owns Berth's content store interfaces: immutable blobs
// (layers, configs, manifests, indexes) addressed by their digest.
//
// The lifecycle of a blob:
//
//  1. An Ingester hands out a Writer for a ref, a caller-chosen name for
//     one in-progress write (a puller uses e.g. "pull-<digest>"). Bytes are
//     appended with Write; an interrupted ingest keeps its bytes, and the
//     next Writer for the same ref continues at Offset.
//  2. Writer.Commit checks the size and digest of what was written against
//     what was expected. Only then does the blob become visible, atomically
//     and durably, under its digest. On a mismatch nothing becomes visible
//     and the partial data is discarded.
//  3. A Provider reads committed blobs; a Manager lists and deletes them.
//     A committed blob never changes. Deleting it is atomic: readers see
//     the whole blob or nothing.
//
// Identical content is stored once: committing a digest that is already
// present returns errdefs.ErrAlreadyExists and discards the duplicate,
// which callers that only want the blob to exist treat as success
// (WriteBlob does).
//
// Errors are in errdefs' categories: ErrNotFound (no such blob or ingest),
// ErrAlreadyExists, ErrFailedPrecondition (size or digest mismatch),
// ErrInvalidArgument (malformed digest or ref), ErrUnavailable (a ref
// locked by another writer).
//
// The implementation on disk is in package local; every implementation
// must pass package testsuite.
package content

import (
	"context"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Info describes a committed blob.
type Info struct {
	Digest    digest.Digest
	Size      int64
	CreatedAt time.Time // when the blob was written (its last byte, just before commit)
}

// ReaderAt reads a committed blob at any offset. It must be closed.
// A blob deleted while a ReaderAt is open stays readable through it.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	// Size is the blob's size in bytes.
	Size() int64
}

// Provider gives read access to committed blobs.
type Provider interface {
	// ReaderAt opens the blob desc.Digest. It returns ErrNotFound when the
	// blob is absent, and ErrFailedPrecondition when desc.Size is set and
	// differs from the stored size.
	ReaderAt(ctx context.Context, desc ocispec.Descriptor) (ReaderAt, error)
	// Info describes the blob dgst, or returns ErrNotFound.
	Info(ctx context.Context, dgst digest.Digest) (Info, error)
}

// Ingester starts or resumes writes of new blobs.
type Ingester interface {
	// Writer opens the ingest named ref: one write of one blob, described
	// by desc as far as the caller knows it (Digest and Size may be zero
	// when unknown, e.g. a layer being built).
	//
	// At most one Writer per ref is open at a time. While another is open,
	// Writer waits until it is committed or closed, or until ctx is done
	// (then it returns an error wrapping errdefs.ErrUnavailable and the
	// context's error). So two concurrent pulls of one blob, using the same
	// ref, download it once: the second waits and then finds the blob.
	//
	// If desc.Digest is already committed, Writer returns ErrAlreadyExists
	// (before or after waiting). If an earlier Writer for ref was closed
	// without committing, or its process died, the new Writer resumes at
	// its Offset; if that ingest is unusable (corrupt, or for different
	// content) it is discarded and the write restarts at 0.
	//
	// The caller must Close the Writer in every case.
	Writer(ctx context.Context, ref string, desc ocispec.Descriptor) (Writer, error)
}

// Writer writes one blob. It is not safe for concurrent use.
type Writer interface {
	// Write appends p at Offset. Writing past the expected size (when
	// known) is refused with ErrFailedPrecondition and writes nothing.
	io.Writer
	// Offset is the number of bytes written so far, resumed ones included.
	Offset() int64
	// Digest is the digest of the bytes written so far.
	Digest() digest.Digest
	// Truncate discards the bytes after size (size <= Offset); a puller
	// whose source cannot resume calls Truncate(0) and starts over.
	Truncate(size int64) error
	// Commit makes the blob visible. size and expected are checked when
	// non-zero; zero values fall back to the Writer's descriptor, and a
	// blob with no expected digest is stored under the digest of what was
	// written. On a size or digest mismatch Commit returns
	// ErrFailedPrecondition naming expected and actual, and discards the
	// data; if the digest is already present it returns ErrAlreadyExists
	// and discards the duplicate. After Commit, whatever its result, the
	// Writer is finished and Close is a no-op.
	Commit(ctx context.Context, size int64, expected digest.Digest) error
	// Close releases the ref without committing, keeping the bytes written
	// so that a later Writer for the ref resumes them. Closing twice, or
	// after Commit, is a no-op.
	Close() error
}

// WalkFunc is called for each committed blob. Returning an error stops the
// walk, and Walk returns that error.
type WalkFunc func(Info) error

// Manager lists and removes committed blobs.
type Manager interface {
	// Info describes the blob dgst, or returns ErrNotFound.
	Info(ctx context.Context, dgst digest.Digest) (Info, error)
	// Walk calls fn for each committed blob; in-progress ingests are
	// never visited.
	Walk(ctx context.Context, fn WalkFunc) error
	// Delete removes the blob dgst atomically, or returns ErrNotFound.
	Delete(ctx context.Context, dgst digest.Digest) error
}

// Status describes an in-progress ingest.
type Status struct {
	Ref       string
	Offset    int64         // bytes written so far
	Total     int64         // expected size, 0 when unknown
	Expected  digest.Digest // expected digest, "" when unknown
	StartedAt time.Time
	UpdatedAt time.Time
}

// IngestManager inspects and discards in-progress ingests.
type IngestManager interface {
	// Status describes the ingest ref, or returns ErrNotFound.
	Status(ctx context.Context, ref string) (Status, error)
	// ListStatuses describes every in-progress ingest.
	ListStatuses(ctx context.Context) ([]Status, error)
	// Abort discards the ingest ref and its data. It returns ErrNotFound
	// if there is none, and ErrUnavailable if a Writer holds it.
	Abort(ctx context.Context, ref string) error
}

// Store is a whole content store.
type Store interface {
	Provider
	Ingester
	Manager
	IngestManager
}
