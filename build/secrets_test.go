package build

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

func tarOf(t *testing.T, entries ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		data := bytes.Repeat([]byte{'s'}, int(h.Size))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The secrets tar is read to its end-of-archive blocks exactly: the
// context tar after it arrives whole.
func TestSecretStoreReadsUpToTheContext(t *testing.T) {
	testutil.LeakCheck(t)
	long := strings.Repeat("n", 150) // a PAX header
	secrets := tarOf(t,
		&tar.Header{Name: "a", Size: 3, Mode: 0o400, Typeflag: tar.TypeReg},
		&tar.Header{Name: long, Size: 700, Mode: 0o400, Typeflag: tar.TypeReg, Format: tar.FormatPAX},
	)
	context := tarOf(t, &tar.Header{Name: "Dockerfile", Size: 20, Mode: 0o644, Typeflag: tar.TypeReg})
	s, err := newSecretStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mounted := false
	var st unix.Statfs_t
	if unix.Statfs(s.dir, &st) == nil && st.Type == unix.TMPFS_MAGIC {
		mounted = true
	}
	if os.Geteuid() == 0 && !mounted {
		t.Error("as root, the secrets are not on a tmpfs")
	}
	r := bytes.NewReader(append(append([]byte{}, secrets...), context...))
	if err := s.read(r); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	if !bytes.Equal(rest, context) {
		t.Errorf("the context after the secrets: %d bytes, want %d", len(rest), len(context))
	}
	for id, n := range map[string]int{"a": 3, long: 700} {
		b, err := os.ReadFile(s.get(id))
		if err != nil || len(b) != n {
			t.Errorf("secret %.10s: %d bytes, %v", id, len(b), err)
		}
	}
	if s.get("missing") != "" {
		t.Error("a missing secret has a file")
	}
	dir := s.dir
	s.close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("closed store left %s: %v", dir, err)
	}
}

func TestSecretStoreRefusesBadTars(t *testing.T) {
	testutil.LeakCheck(t)
	for name, c := range map[string][]byte{
		"too big":   tarOf(t, &tar.Header{Name: "big", Size: MaxSecretSize + 1, Mode: 0o400, Typeflag: tar.TypeReg}),
		"twice":     tarOf(t, &tar.Header{Name: "x", Size: 1, Typeflag: tar.TypeReg}, &tar.Header{Name: "x", Size: 1, Typeflag: tar.TypeReg}),
		"directory": tarOf(t, &tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o700}),
		"garbage":   bytes.Repeat([]byte{'x'}, 1024),
	} {
		s, err := newSecretStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.read(bytes.NewReader(c)); err == nil || !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v, want an invalid argument", name, err)
		}
		s.close()
	}
}
