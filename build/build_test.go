package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/berth-dev/berth/errdefs"
)

func TestParseErrorsNameTheLine(t *testing.T) {
	for _, c := range []struct{ df, want string }{
		{"FROM busybox\nRUN true\nBOGUS x\n", "dockerfile parse error: Dockerfile:3: unknown instruction: BOGUS"},
		{"", "Dockerfile: file with no instructions"},
		{"FROM busybox\nCOPY\n", "Dockerfile:2: COPY requires at least two arguments"},
	} {
		_, err := parse([]byte(c.df), "")
		if err == nil || !strings.Contains(err.Error(), c.want) || !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: %v, want %q (invalid argument)", c.df, err, c.want)
		}
	}
	p, err := parse([]byte("ARG V=1\nFROM busybox AS a\nRUN x\nFROM a\nCOPY --from=a / /\n"), "")
	if err != nil || len(p.stages) != 2 || len(p.metaArgs) != 1 || p.stages[0].Name != "a" {
		t.Fatalf("parse: %+v %v", p, err)
	}
}

func TestStepKey(t *testing.T) {
	a := stepKey("p", "RUN", []string{"x"})
	if a != stepKey("p", "RUN", []string{"x"}) {
		t.Error("stepKey is not deterministic")
	}
	for _, other := range []string{stepKey("q", "RUN", []string{"x"}), stepKey("p", "RUN", []string{"y"}), stepKey("p", "COPY", []string{"x"})} {
		if other == a {
			t.Error("different steps share a key")
		}
	}
}

func TestParsePorts(t *testing.T) {
	ps, err := parsePorts("8000-8002/UDP")
	if err != nil || len(ps) != 3 || ps[2].String() != "8002/udp" {
		t.Errorf("range: %v %v", ps, err)
	}
	for _, bad := range []string{"x", "9-1", "70000"} {
		if _, err := parsePorts(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for n, c := range files {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestResolveSourcesStayInContext(t *testing.T) {
	ctx := t.TempDir()
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret": "s"})
	writeFiles(t, ctx, map[string]string{"a.txt": "a", "b.txt": "b", "d/c.txt": "c"})
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(ctx, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../"+outside+"/secret", filepath.Join(ctx, "rel")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(ctx, "dirlink")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"abs", "rel", "../" + filepath.Base(outside) + "/secret", "dirlink/secret", "dirlink/*"} {
		if srcs, err := resolveSources(ctx, []string{p}); err == nil {
			t.Errorf("%s resolved outside the context: %+v", p, srcs)
		}
	}
	srcs, err := resolveSources(ctx, []string{"*.txt", "d"})
	if err != nil || len(srcs) != 3 || !srcs[2].dir || srcs[0].name != "a.txt" {
		t.Errorf("glob: %+v %v", srcs, err)
	}
}

func TestHashTreeIsContentNotTime(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"d/f": "one"})
	sum := func() string {
		h := sha256.New()
		if err := hashTree(h, source{path: filepath.Join(dir, "d"), name: "d", dir: true}); err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	first := sum()
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "d/f"), old, old); err != nil {
		t.Fatal(err)
	}
	if sum() != first {
		t.Error("a new mtime changed the hash")
	}
	writeFiles(t, dir, map[string]string{"d/f": "two"})
	if sum() == first {
		t.Error("new content kept the hash")
	}
	if err := os.Chmod(filepath.Join(dir, "d/f"), 0o755); err != nil {
		t.Fatal(err)
	}
	if sum() == first {
		t.Error("a new mode kept the hash")
	}
}

func TestCopyIntoRules(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root") // the e2e tests cover this as root
	}
	ctxDir, rootfs := t.TempDir(), t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"f": "file", "d/x": "x", "d/sub/y": "y"})
	if err := os.MkdirAll(filepath.Join(rootfs, "existing"), 0o755); err != nil {
		t.Fatal(err)
	}
	// An absolute symlink in the image must not lead the copy out of it.
	hostDir := t.TempDir()
	if err := os.Symlink(hostDir, filepath.Join(rootfs, "escape")); err != nil {
		t.Fatal(err)
	}
	run := func(dest string, srcs ...string) error {
		ss, err := resolveSources(ctxDir, srcs)
		if err != nil {
			return err
		}
		return copyInto(context.Background(), rootfs, "/work", ss, copyArgs{SourcesAndDest: instructions.SourcesAndDest{DestPath: dest}}, nil)
	}
	for _, c := range []struct {
		dest string
		srcs []string
		want string
	}{
		{"/file", []string{"f"}, "file"},
		{"/dir/", []string{"f"}, "dir/f"},
		{"/existing", []string{"f"}, "existing/f"},
		{"rel", []string{"f"}, "work/rel"},
		{"/tree", []string{"d"}, "tree/sub/y"},
		{"/escape/f", []string{"f"}, "escape"},
	} {
		if err := run(c.dest, c.srcs...); err != nil {
			t.Errorf("COPY %v %s: %v", c.srcs, c.dest, err)
			continue
		}
		if _, err := os.Lstat(filepath.Join(rootfs, c.want)); err != nil {
			t.Errorf("COPY %v %s: %s missing", c.srcs, c.dest, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(rootfs, hostDir, "f")); err != nil {
		t.Errorf("COPY through an absolute symlink did not land inside the rootfs: %v", err)
	}
	if _, err := os.Stat(filepath.Join(hostDir, "f")); err == nil {
		t.Errorf("COPY wrote to the host through an image's symlink")
	}
	if err := run("/notdir", "f", "d"); err == nil || !strings.Contains(err.Error(), "must be a directory") {
		t.Errorf("many sources to a file: %v", err)
	}
}

func TestRemoveStubsKeepsWork(t *testing.T) {
	upper := t.TempDir()
	writeFiles(t, upper, map[string]string{"etc/hosts": "", "etc/mine": "x", "proc/.keep": ""})
	os.Remove(filepath.Join(upper, "proc/.keep"))
	if err := os.MkdirAll(filepath.Join(upper, "sys/fs/cgroup"), 0o755); err != nil {
		t.Fatal(err)
	}
	removeStubs(upper, []string{"/etc/hosts", "/etc", "/proc", "/sys", "/sys/fs/cgroup", "/sys/fs"})
	for p, want := range map[string]bool{"etc/hosts": false, "etc/mine": true, "proc": false, "sys": false} {
		_, err := os.Lstat(filepath.Join(upper, p))
		if (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", p, err == nil, want)
		}
	}
}

func TestTailWriter(t *testing.T) {
	tw := &tailWriter{n: 2}
	tw.Write([]byte("a\nb\nc\npartial"))
	if got := tw.String(); got != "b\nc\npartial" {
		t.Errorf("tail: %q", got)
	}
}
