package local

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/content/testsuite"
	"github.com/berth-dev/berth/internal/testutil"
)

var ctx = context.Background()

func TestSuite(t *testing.T) {
	testsuite.Run(t, func(t *testing.T) content.Store { return newStore(t, t.TempDir()) })
}

func newStore(t *testing.T, root string) *Store {
	t.Helper()
	s, err := NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func data(n int) ([]byte, ocispec.Descriptor) {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}).Read(b)
	return b, content.Descriptor(ocispec.MediaTypeImageLayerGzip, b)
}

func TestLayout(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	b, desc := data(3000)
	w, err := s.Writer(ctx, "layer", desc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(b[:1000])
	dir := filepath.Join(root, "ingest", digest.FromString("layer").Encoded())
	for name, want := range map[string]string{"ref": "layer", "total": "3000", "expected": string(desc.Digest), "data": string(b[:1000])} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("ingest file %s = %.40q, %v; want %.40q", name, got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "startedat")); err != nil {
		t.Error(err)
	}
	w.Write(b[1000:])
	if err := w.Commit(ctx, 0, ""); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "blobs", "sha256", desc.Digest.Encoded()))
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("blob file: %d bytes, %v", len(got), err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("ingest dir left after commit: %v", err)
	}
}

// A process that dies mid-ingest never Closes its Writer. A new Store on
// the same root (the restarted process) sees no blob, and resumes.
func TestResumeAfterAbandonedWriter(t *testing.T) {
	root := t.TempDir()
	b, desc := data(1 << 20)
	w, err := newStore(t, root).Writer(ctx, "layer", desc)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b[:len(b)/2]) // ... and the process "dies": no Commit, no Close

	s := newStore(t, root)
	if _, err := s.Info(ctx, desc.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("partial blob visible: %v", err)
	}
	w, err = s.Writer(ctx, "layer", desc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Offset() != int64(len(b)/2) {
		t.Fatalf("resumed at %d, want %d", w.Offset(), len(b)/2)
	}
	w.Write(b[len(b)/2:])
	if err := w.Commit(ctx, 0, ""); err != nil {
		t.Fatal(err)
	}
}

// The same with a real crash: a child process writes half a blob and is
// SIGKILLed; the parent resumes.
func TestResumeAfterKill(t *testing.T) {
	if root := os.Getenv("BERTH_CONTENT_CRASH_ROOT"); root != "" {
		crashHelper(root)
		return
	}
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestResumeAfterKill$")
	cmd.Env = append(os.Environ(), "BERTH_CONTENT_CRASH_ROOT="+root)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper did not die by SIGKILL: %v\n%s", err, out)
	}
	s := newStore(t, root)
	b, desc := data(1 << 20)
	if _, err := s.Info(ctx, desc.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("partial blob visible after the crash: %v", err)
	}
	st, err := s.Status(ctx, "layer")
	if err != nil || st.Offset != 300_000 {
		t.Fatalf("Status after the crash = %+v, %v", st, err)
	}
	if err := content.WriteBlob(ctx, s, "layer", bytes.NewReader(b), desc); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Info(ctx, desc.Digest); err != nil {
		t.Fatal(err)
	}
}

func crashHelper(root string) {
	s, err := NewStore(root)
	if err != nil {
		panic(err)
	}
	b, desc := data(1 << 20)
	w, err := s.Writer(ctx, "layer", desc)
	if err != nil {
		panic(err)
	}
	w.Write(b[:300_000])
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// Ingests that cannot be trusted are restarted from zero.
func TestCorruptIngestRestarts(t *testing.T) {
	b, desc := data(10_000)
	for name, corrupt := range map[string]func(dir string){
		"no ref":          func(dir string) { os.Remove(filepath.Join(dir, "ref")) },
		"other ref":       func(dir string) { os.WriteFile(filepath.Join(dir, "ref"), []byte("x"), 0o600) },
		"bad total":       func(dir string) { os.WriteFile(filepath.Join(dir, "total"), []byte("-3"), 0o600) },
		"bad expected":    func(dir string) { os.WriteFile(filepath.Join(dir, "expected"), []byte("sha256:zz"), 0o600) },
		"bad startedat":   func(dir string) { os.WriteFile(filepath.Join(dir, "startedat"), []byte("yesterday"), 0o600) },
		"no data":         func(dir string) { os.Remove(filepath.Join(dir, "data")) },
		"data too long":   func(dir string) { os.WriteFile(filepath.Join(dir, "data"), make([]byte, 10_001), 0o600) },
		"data is a dir":   func(dir string) { os.Remove(filepath.Join(dir, "data")); os.Mkdir(filepath.Join(dir, "data"), 0o700) },
		"ingest is afile": func(dir string) { os.RemoveAll(dir); os.WriteFile(dir, nil, 0o600) },
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			s := newStore(t, root)
			w, err := s.Writer(ctx, "layer", desc)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(b[:4000])
			w.Close()
			corrupt(s.ingestDir("layer"))
			w, err = s.Writer(ctx, "layer", desc)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if w.Offset() != 0 {
				t.Fatalf("corrupt ingest resumed at %d", w.Offset())
			}
			w.Write(b)
			if err := w.Commit(ctx, 0, ""); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Bytes damaged in a resumed ingest (a power loss can leave garbage in
// unsynced data) fail the digest check; the data is discarded and the
// retry starts from zero.
func TestDamagedDataFailsCommitThenRetries(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	b, desc := data(10_000)
	w, _ := s.Writer(ctx, "layer", desc)
	w.Write(b[:5000])
	w.Close()
	f, _ := os.OpenFile(filepath.Join(s.ingestDir("layer"), "data"), os.O_WRONLY, 0)
	f.WriteAt([]byte{0, 0, 0, 0}, 100)
	f.Close()
	w, _ = s.Writer(ctx, "layer", desc)
	w.Write(b[5000:])
	if err := w.Commit(ctx, 0, ""); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Commit of damaged data: %v", err)
	}
	if err := content.WriteBlob(ctx, s, "layer", bytes.NewReader(b), desc); err != nil {
		t.Fatal(err)
	}
}

func TestHalfCreatedIngestRemovedAtOpen(t *testing.T) {
	root := t.TempDir()
	newStore(t, root)
	tmp := filepath.Join(root, "ingest", ".tmp-123")
	os.Mkdir(tmp, 0o700)
	os.WriteFile(filepath.Join(tmp, "ref"), []byte("x"), 0o600)
	s := newStore(t, root)
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("half-created ingest left: %v", err)
	}
	if st, err := s.ListStatuses(ctx); err != nil || len(st) != 0 {
		t.Fatalf("ListStatuses = %v, %v", st, err)
	}
}

// A 64 MiB blob goes through without being held in memory.
func TestLargeBlobStreams(t *testing.T) {
	const size = 64 << 20
	s := newStore(t, t.TempDir())
	src := func() io.Reader { return io.LimitReader(rand.NewChaCha8([32]byte{7}), size) }
	want, err := digest.FromReader(src())
	if err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{Digest: want, Size: size}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	w, err := s.Writer(ctx, "big", desc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := io.Copy(w, src()); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, 0, ""); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("writing a %d MiB blob allocated %d MiB", size>>20, alloc>>20)
	}
	ra, err := s.ReaderAt(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	if got, err := digest.FromReader(content.NewReader(ra)); err != nil || got != want {
		t.Fatalf("read back %s, %v", got, err)
	}
}

// On a full filesystem the write fails with ENOSPC named clearly, nothing
// becomes visible, and the ingest can be aborted to free the space.
func TestFullDisk(t *testing.T) {
	testutil.RequireRoot(t)
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	s := newStore(t, mnt)
	b, desc := data(2 << 20)
	w, err := s.Writer(ctx, "big", desc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(w, bytes.NewReader(b))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write to a full disk: %v", err)
	}
	t.Logf("error: %v", err)
	if w.Offset() >= desc.Size || w.Offset() == 0 {
		t.Fatalf("Offset %d after a partial write", w.Offset())
	}
	if err := w.Commit(ctx, 0, ""); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Commit of a short blob: %v", err)
	}
	if _, err := s.Info(ctx, desc.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("blob visible after a full disk: %v", err)
	}
	var n int
	s.Walk(ctx, func(content.Info) error { n++; return nil })
	if st, _ := s.ListStatuses(ctx); n != 0 || len(st) != 0 {
		t.Fatalf("%d blobs and ingests %+v left", n, st)
	}
	// The space is back: a small blob fits.
	small, sdesc := data(100_000)
	if err := content.WriteBlob(ctx, s, "small", bytes.NewReader(small), sdesc); err != nil {
		t.Fatal(err)
	}
}
