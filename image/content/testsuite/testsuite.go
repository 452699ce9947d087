// Package testsuite is the conformance suite every content.Store must
// pass: commit and verification, deduplication, resume, locking of refs,
// walk and delete. Implementation-specific behaviour (disk layout, crash
// recovery, full disks) is tested next to each implementation.
package testsuite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/content"
)

// Run runs the suite; newStore returns an empty store that lives for the
// test it is given.
func Run(t *testing.T, newStore func(t *testing.T) content.Store) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, content.Store)
	}{
		{"CommitAndRead", testCommitAndRead},
		{"DigestMismatch", testDigestMismatch},
		{"SizeMismatch", testSizeMismatch},
		{"WritePastSize", testWritePastSize},
		{"AlreadyExists", testAlreadyExists},
		{"ResumeAfterClose", testResumeAfterClose},
		{"RestartForOtherContent", testRestartForOtherContent},
		{"Truncate", testTruncate},
		{"UnknownDigest", testUnknownDigest},
		{"EmptyBlob", testEmptyBlob},
		{"SHA512", testSHA512},
		{"ConcurrentSameRef", testConcurrentSameRef},
		{"WaitHonoursContext", testWaitHonoursContext},
		{"WaiterResumesClosedIngest", testWaiterResumesClosedIngest},
		{"ConcurrentRefsSameDigest", testConcurrentRefsSameDigest},
		{"WalkAndDelete", testWalkAndDelete},
		{"ReaderSurvivesDelete", testReaderSurvivesDelete},
		{"Abort", testAbort},
		{"InvalidInput", testInvalidInput},
		{"WriteBlob", testWriteBlob},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

var ctx = context.Background()

// blob returns n deterministic bytes (distinct per seed) and their
// descriptor.
func blob(seed string, n int) ([]byte, ocispec.Descriptor) {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+len(seed)) ^ seed[i%len(seed)]
	}
	return b, content.Descriptor(ocispec.MediaTypeImageLayer, b)
}

func mustWriter(t *testing.T, s content.Store, ref string, desc ocispec.Descriptor) content.Writer {
	t.Helper()
	w, err := s.Writer(ctx, ref, desc)
	if err != nil {
		t.Fatalf("Writer(%q): %v", ref, err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func mustWrite(t *testing.T, w io.Writer, b []byte) {
	t.Helper()
	if n, err := w.Write(b); err != nil || n != len(b) {
		t.Fatalf("Write = %d, %v", n, err)
	}
}

// visible lists the committed digests.
func visible(t *testing.T, s content.Store) []digest.Digest {
	t.Helper()
	var out []digest.Digest
	if err := s.Walk(ctx, func(i content.Info) error { out = append(out, i.Digest); return nil }); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return out
}

func checkBlob(t *testing.T, s content.Store, desc ocispec.Descriptor, want []byte) {
	t.Helper()
	info, err := s.Info(ctx, desc.Digest)
	if err != nil || info.Size != int64(len(want)) || info.Digest != desc.Digest {
		t.Fatalf("Info(%s) = %+v, %v", desc.Digest, info, err)
	}
	got, err := content.ReadBlob(ctx, s, desc, 1<<30)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadBlob(%s) = %d bytes, %v; want %d bytes", desc.Digest, len(got), err, len(want))
	}
}

func checkNothing(t *testing.T, s content.Store) {
	t.Helper()
	if v := visible(t, s); len(v) != 0 {
		t.Fatalf("visible blobs: %v", v)
	}
	if st, err := s.ListStatuses(ctx); err != nil || len(st) != 0 {
		t.Fatalf("ingests left: %+v, %v", st, err)
	}
}

func wantErr(t *testing.T, err, category error, fragments ...string) {
	t.Helper()
	if !errors.Is(err, category) {
		t.Fatalf("error %v, want %v", err, category)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
}

func testCommitAndRead(t *testing.T, s content.Store) {
	b, desc := blob("a", 100_000)
	w := mustWriter(t, s, "ref-a", desc)
	for off := 0; off < len(b); off += 4096 {
		mustWrite(t, w, b[off:min(off+4096, len(b))])
	}
	if w.Offset() != int64(len(b)) || w.Digest() != desc.Digest {
		t.Fatalf("Offset, Digest = %d, %s; want %d, %s", w.Offset(), w.Digest(), len(b), desc.Digest)
	}
	if _, err := s.Info(ctx, desc.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("blob visible before Commit: %v", err)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	checkBlob(t, s, desc, b)
	if _, err := s.Status(ctx, "ref-a"); !errdefs.IsNotFound(err) {
		t.Fatalf("ingest left after Commit: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close after Commit: %v", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Commit succeeded")
	}
	if v := visible(t, s); len(v) != 1 || v[0] != desc.Digest {
		t.Fatalf("Walk = %v", v)
	}
}

func testDigestMismatch(t *testing.T, s content.Store) {
	b, _ := blob("b", 5000)
	_, other := blob("other", 5000)
	w := mustWriter(t, s, "ref-b", ocispec.Descriptor{})
	mustWrite(t, w, b)
	err := w.Commit(ctx, int64(len(b)), other.Digest)
	wantErr(t, err, errdefs.ErrFailedPrecondition, "digest mismatch", string(other.Digest), string(digest.FromBytes(b)))
	checkNothing(t, s)
	if err := w.Close(); err != nil {
		t.Fatalf("Close after failed Commit: %v", err)
	}

	// The expectation may also come from the descriptor.
	w = mustWriter(t, s, "ref-b", other)
	mustWrite(t, w, b)
	wantErr(t, w.Commit(ctx, 0, ""), errdefs.ErrFailedPrecondition, "digest mismatch")
	checkNothing(t, s)
}

func testSizeMismatch(t *testing.T, s content.Store) {
	b, desc := blob("c", 10_000)
	w := mustWriter(t, s, "ref-c", desc)
	mustWrite(t, w, b[:6000])
	wantErr(t, w.Commit(ctx, 0, ""), errdefs.ErrFailedPrecondition, "size mismatch", "10000", "6000")
	checkNothing(t, s)

	// A short write with the right digest of the short data still fails
	// on the size the caller expects.
	w = mustWriter(t, s, "ref-c", ocispec.Descriptor{})
	mustWrite(t, w, b[:6000])
	wantErr(t, w.Commit(ctx, 10_000, digest.FromBytes(b[:6000])), errdefs.ErrFailedPrecondition, "size mismatch")
	checkNothing(t, s)
}

func testWritePastSize(t *testing.T, s content.Store) {
	b, desc := blob("d", 100)
	w := mustWriter(t, s, "ref-d", desc)
	mustWrite(t, w, b[:60])
	n, err := w.Write(b[:60])
	wantErr(t, err, errdefs.ErrFailedPrecondition, "exceed")
	if n != 0 || w.Offset() != 60 {
		t.Fatalf("refused write wrote %d bytes, Offset %d", n, w.Offset())
	}
	mustWrite(t, w, b[60:])
	if err := w.Commit(ctx, 0, ""); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	checkBlob(t, s, desc, b)
}

func testAlreadyExists(t *testing.T, s content.Store) {
	b, desc := blob("e", 3000)
	if err := content.WriteBlob(ctx, s, "ref-e1", bytes.NewReader(b), desc); err != nil {
		t.Fatal(err)
	}
	// Known digest: refused at once.
	_, err := s.Writer(ctx, "ref-e2", desc)
	wantErr(t, err, errdefs.ErrAlreadyExists, string(desc.Digest))
	// Unknown digest: the duplicate is found at Commit and discarded.
	w := mustWriter(t, s, "ref-e3", ocispec.Descriptor{})
	mustWrite(t, w, b)
	wantErr(t, w.Commit(ctx, 0, ""), errdefs.ErrAlreadyExists)
	if st, _ := s.ListStatuses(ctx); len(st) != 0 {
		t.Fatalf("duplicate left an ingest: %+v", st)
	}
	checkBlob(t, s, desc, b)
	if v := visible(t, s); len(v) != 1 {
		t.Fatalf("Walk = %v", v)
	}
}

func testResumeAfterClose(t *testing.T, s content.Store) {
	b, desc := blob("f", 50_000)
	w := mustWriter(t, s, "ref-f", desc)
	mustWrite(t, w, b[:20_000])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := s.Status(ctx, "ref-f")
	if err != nil || st.Ref != "ref-f" || st.Offset != 20_000 || st.Total != desc.Size || st.Expected != desc.Digest || st.StartedAt.IsZero() {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if v := visible(t, s); len(v) != 0 {
		t.Fatalf("a closed ingest is visible: %v", v)
	}
	w = mustWriter(t, s, "ref-f", desc)
	if w.Offset() != 20_000 || w.Digest() != digest.FromBytes(b[:20_000]) {
		t.Fatalf("resumed at %d with %s", w.Offset(), w.Digest())
	}
	mustWrite(t, w, b[20_000:])
	if err := w.Commit(ctx, 0, ""); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	checkBlob(t, s, desc, b)
}

func testRestartForOtherContent(t *testing.T, s content.Store) {
	a, descA := blob("g1", 1000)
	b, descB := blob("g2", 2000)
	w := mustWriter(t, s, "ref-g", descA)
	mustWrite(t, w, a[:500])
	w.Close()
	w = mustWriter(t, s, "ref-g", descB)
	if w.Offset() != 0 {
		t.Fatalf("ingest for other content resumed at %d", w.Offset())
	}
	mustWrite(t, w, b)
	if err := w.Commit(ctx, 0, ""); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, descB, b)
}

func testTruncate(t *testing.T, s content.Store) {
	b, desc := blob("h", 4000)
	w := mustWriter(t, s, "ref-h", desc)
	mustWrite(t, w, []byte("garbage from a server that ignored Range"))
	if err := w.Truncate(w.Offset() + 1); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Truncate past Offset: %v", err)
	}
	if err := w.Truncate(0); err != nil || w.Offset() != 0 {
		t.Fatalf("Truncate(0) = %v, Offset %d", err, w.Offset())
	}
	mustWrite(t, w, b[:1000])
	mustWrite(t, w, []byte("xx"))
	if err := w.Truncate(1000); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, w, b[1000:])
	if err := w.Commit(ctx, 0, ""); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, desc, b)
}

func testUnknownDigest(t *testing.T, s content.Store) {
	b, desc := blob("i", 777)
	w := mustWriter(t, s, "ref-i", ocispec.Descriptor{})
	mustWrite(t, w, b)
	if err := w.Commit(ctx, 0, ""); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, desc, b)
}

func testEmptyBlob(t *testing.T, s content.Store) {
	desc := content.Descriptor(ocispec.MediaTypeImageConfig, nil)
	w := mustWriter(t, s, "ref-empty", desc)
	if err := w.Commit(ctx, 0, desc.Digest); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, desc, []byte{})
}

func testSHA512(t *testing.T, s content.Store) {
	b, _ := blob("j", 3333)
	desc := ocispec.Descriptor{Digest: digest.SHA512.FromBytes(b), Size: int64(len(b))}
	if err := content.WriteBlob(ctx, s, "ref-j", bytes.NewReader(b), desc); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, desc, b)
	// A sha256 writer committed with a sha512 expectation is re-hashed.
	c, _ := blob("k", 100)
	w := mustWriter(t, s, "ref-k", ocispec.Descriptor{})
	mustWrite(t, w, c)
	if err := w.Commit(ctx, 0, digest.SHA512.FromBytes(c)); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, ocispec.Descriptor{Digest: digest.SHA512.FromBytes(c)}, c)
}

// Eight pullers of one blob through one ref: one downloads, the others
// wait and find the blob.
func testConcurrentSameRef(t *testing.T, s content.Store) {
	b, desc := blob("l", 256<<10)
	const pullers = 8
	var downloads, found atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, pullers)
	for range pullers {
		wg.Go(func() {
			w, err := s.Writer(ctx, "pull-"+string(desc.Digest), desc)
			if errdefs.IsAlreadyExists(err) {
				found.Add(1)
				return
			}
			if err != nil {
				errs <- err
				return
			}
			defer w.Close()
			downloads.Add(1)
			for off := w.Offset(); off < desc.Size; off += 32 << 10 {
				if _, err := w.Write(b[off:min(off+32<<10, desc.Size)]); err != nil {
					errs <- err
					return
				}
				time.Sleep(time.Millisecond) // a slow network
			}
			if err := w.Commit(ctx, 0, ""); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if downloads.Load() != 1 || found.Load() != pullers-1 {
		t.Fatalf("%d downloads, %d found present; want 1 and %d", downloads.Load(), found.Load(), pullers-1)
	}
	checkBlob(t, s, desc, b)
}

func testWaitHonoursContext(t *testing.T, s content.Store) {
	_, desc := blob("m", 10)
	w := mustWriter(t, s, "ref-m", desc)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Writer(short, "ref-m", desc)
	wantErr(t, err, errdefs.ErrUnavailable, "locked")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) < 40*time.Millisecond {
		t.Fatalf("error %v after %v", err, time.Since(start))
	}
	// Other refs are not blocked.
	w2 := mustWriter(t, s, "ref-m2", desc)
	w2.Close()
	w.Close()
	mustWriter(t, s, "ref-m", desc).Close()
}

func testWaiterResumesClosedIngest(t *testing.T, s content.Store) {
	b, desc := blob("n", 10_000)
	w := mustWriter(t, s, "ref-n", desc)
	mustWrite(t, w, b[:4000])
	got := make(chan content.Writer)
	go func() {
		w2, err := s.Writer(ctx, "ref-n", desc)
		if err != nil {
			t.Error(err)
		}
		got <- w2
	}()
	select {
	case <-got:
		t.Fatal("second Writer did not wait")
	case <-time.After(20 * time.Millisecond):
	}
	w.Close() // the first puller gives up
	w2 := <-got
	if w2 == nil {
		t.FailNow()
	}
	defer w2.Close()
	if w2.Offset() != 4000 {
		t.Fatalf("waiter starts at %d, want 4000", w2.Offset())
	}
	mustWrite(t, w2, b[4000:])
	if err := w2.Commit(ctx, 0, ""); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, desc, b)
}

// Different refs (say, two images sharing a layer, pulled at once) write
// the same content: one commit wins, the others are told it exists.
func testConcurrentRefsSameDigest(t *testing.T, s content.Store) {
	b, desc := blob("o", 64<<10)
	const writers = 6
	results := make(chan error, writers)
	var wrote sync.WaitGroup // all have written before any commits
	wrote.Add(writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			w, err := s.Writer(ctx, fmt.Sprintf("ref-o-%d", i), ocispec.Descriptor{Size: desc.Size})
			if err == nil {
				defer w.Close()
				_, err = w.Write(b)
			}
			wrote.Done()
			if err != nil {
				results <- err
				return
			}
			wrote.Wait()
			results <- w.Commit(ctx, 0, desc.Digest)
		})
	}
	wg.Wait()
	close(results)
	var ok, exists int
	for err := range results {
		switch {
		case err == nil:
			ok++
		case errdefs.IsAlreadyExists(err):
			exists++
		default:
			t.Error(err)
		}
	}
	if ok != 1 || exists != writers-1 {
		t.Fatalf("%d commits succeeded and %d found the blob; want 1 and %d", ok, exists, writers-1)
	}
	checkBlob(t, s, desc, b)
	if st, _ := s.ListStatuses(ctx); len(st) != 0 {
		t.Fatalf("ingests left: %+v", st)
	}
}

func testWalkAndDelete(t *testing.T, s content.Store) {
	var descs []ocispec.Descriptor
	for _, seed := range []string{"p1", "p2", "p3"} {
		b, desc := blob(seed, 1000+len(descs))
		if err := content.WriteBlob(ctx, s, seed, bytes.NewReader(b), desc); err != nil {
			t.Fatal(err)
		}
		descs = append(descs, desc)
	}
	// An ingest in progress is not walked.
	w := mustWriter(t, s, "in-progress", ocispec.Descriptor{})
	mustWrite(t, w, []byte("partial"))
	sizes := map[digest.Digest]int64{}
	if err := s.Walk(ctx, func(i content.Info) error { sizes[i.Digest] = i.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 3 {
		t.Fatalf("Walk saw %v", sizes)
	}
	for _, d := range descs {
		if sizes[d.Digest] != d.Size {
			t.Fatalf("Walk: %s has size %d, want %d", d.Digest, sizes[d.Digest], d.Size)
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := s.Walk(ctx, func(content.Info) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("Walk returned %v after %d calls, want the callback's error after 1", err, n)
	}
	if err := s.Delete(ctx, descs[1].Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Info(ctx, descs[1].Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("Info after Delete: %v", err)
	}
	if _, err := s.ReaderAt(ctx, descs[1]); !errdefs.IsNotFound(err) {
		t.Fatalf("ReaderAt after Delete: %v", err)
	}
	wantErr(t, s.Delete(ctx, descs[1].Digest), errdefs.ErrNotFound)
	if v := visible(t, s); len(v) != 2 {
		t.Fatalf("Walk after Delete = %v", v)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Walk(cancelled, func(content.Info) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Walk with a cancelled context: %v", err)
	}
}

func testReaderSurvivesDelete(t *testing.T, s content.Store) {
	b, desc := blob("q", 9000)
	if err := content.WriteBlob(ctx, s, "ref-q", bytes.NewReader(b), desc); err != nil {
		t.Fatal(err)
	}
	ra, err := s.ReaderAt(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	if err := s.Delete(ctx, desc.Digest); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(content.NewReader(ra))
	if err != nil || !bytes.Equal(got, b) || ra.Size() != desc.Size {
		t.Fatalf("read after Delete: %d bytes, %v", len(got), err)
	}
}

func testAbort(t *testing.T, s content.Store) {
	w := mustWriter(t, s, "ref-r", ocispec.Descriptor{})
	mustWrite(t, w, []byte("abc"))
	wantErr(t, s.Abort(ctx, "ref-r"), errdefs.ErrUnavailable)
	w.Close()
	if err := s.Abort(ctx, "ref-r"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.Abort(ctx, "ref-r"), errdefs.ErrNotFound)
	if _, err := s.Status(ctx, "ref-r"); !errdefs.IsNotFound(err) {
		t.Fatalf("Status after Abort: %v", err)
	}
	checkNothing(t, s)
	w = mustWriter(t, s, "ref-r", ocispec.Descriptor{})
	if w.Offset() != 0 {
		t.Fatalf("aborted ingest resumed at %d", w.Offset())
	}
}

func testInvalidInput(t *testing.T, s content.Store) {
	for _, d := range []digest.Digest{"", "sha256:../../../etc/passwd", "sha256:abc", "md5:d41d8cd98f00b204e9800998ecf8427e", "../x"} {
		if _, err := s.Info(ctx, d); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Info(%q): %v", d, err)
		}
		if err := s.Delete(ctx, d); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Delete(%q): %v", d, err)
		}
		if _, err := s.ReaderAt(ctx, ocispec.Descriptor{Digest: d}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ReaderAt(%q): %v", d, err)
		}
		if d == "" {
			continue // an empty digest is "unknown" for Writer
		}
		if _, err := s.Writer(ctx, "ref-s", ocispec.Descriptor{Digest: d}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Writer(%q): %v", d, err)
		}
	}
	if _, err := s.Writer(ctx, "", ocispec.Descriptor{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Writer with an empty ref: %v", err)
	}
	if _, err := s.Writer(ctx, "ref-s", ocispec.Descriptor{Size: -1}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Writer with a negative size: %v", err)
	}
	b, desc := blob("s", 100)
	if err := content.WriteBlob(ctx, s, "ref-s", bytes.NewReader(b), desc); err != nil {
		t.Fatal(err)
	}
	wrong := desc
	wrong.Size++
	if _, err := s.ReaderAt(ctx, wrong); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("ReaderAt with a wrong size: %v", err)
	}
	if _, err := content.ReadBlob(ctx, s, desc, 99); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("ReadBlob over its limit: %v", err)
	}
	if _, err := s.Info(ctx, digest.FromString("absent")); !errdefs.IsNotFound(err) {
		t.Errorf("Info of an absent blob: %v", err)
	}
}

func testWriteBlob(t *testing.T, s content.Store) {
	b, desc := blob("t", 20_000)
	// A partial ingest, then WriteBlob with a seekable source resumes it.
	w := mustWriter(t, s, "ref-t", desc)
	mustWrite(t, w, b[:7000])
	w.Close()
	if err := content.WriteBlob(ctx, s, "ref-t", bytes.NewReader(b), desc); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, desc, b)
	// Present already: success without reading.
	if err := content.WriteBlob(ctx, s, "ref-t2", iotest{t}, desc); err != nil {
		t.Fatal(err)
	}
	// A non-seekable source restarts a partial ingest.
	c, descC := blob("u", 5000)
	w = mustWriter(t, s, "ref-u", descC)
	mustWrite(t, w, c[:100])
	w.Close()
	if err := content.WriteBlob(ctx, s, "ref-u", io.MultiReader(bytes.NewReader(c)), descC); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, descC, c)
}

type iotest struct{ t *testing.T }

func (r iotest) Read([]byte) (int, error) {
	r.t.Error("WriteBlob read the source of a blob that is present")
	return 0, io.EOF
}
