package files_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container/files"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

type tarEntry struct {
	name, link string
	typ        byte
	body       string
	uid, gid   int
	mode       int64
}

func mkTar(t *testing.T, entries ...tarEntry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if e.typ == 0 {
			e.typ = tar.TypeReg
		}
		if e.mode == 0 {
			e.mode = 0o644
		}
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid, Size: int64(len(e.body))}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// hostileRoot makes a container root filesystem next to a directory
// "outside" that nothing may ever write to.
func hostileRoot(t *testing.T) (rootfs, outside string) {
	t.Helper()
	testutil.RequireRoot(t)
	base := t.TempDir()
	rootfs, outside = filepath.Join(base, "rootfs"), filepath.Join(base, "outside")
	for _, d := range []string{"tmp", "etc", outside} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(rootfs, outside)) // only the host has it
	if err := os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc/group"), []byte("root:x:0:\nstaff:x:50:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"tmp/hostlink": outside,                // absolute host path
		"tmp/up":       "../../../../../../..", // climbs past the root
		"tmp/etclink":  "/etc",
		"tmp/dstlink":  outside,
	} {
		if err := os.Symlink(target, filepath.Join(rootfs, link)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if ents, _ := os.ReadDir(outside); len(ents) > 0 {
			t.Errorf("something was written outside the root: %v", ents)
		}
		if _, err := os.Lstat(filepath.Join(filepath.Dir(rootfs), "pwn")); err == nil {
			t.Error("pwn was written next to the root")
		}
	})
	return rootfs, outside
}

func TestExtractHostile(t *testing.T) {
	rootfs, outside := hostileRoot(t)
	for _, c := range []struct {
		name    string
		dst     string
		tar     []tarEntry
		wantErr string
	}{
		{"dotdot", "/tmp", []tarEntry{{name: "../../pwn", body: "x"}}, "outside of"},
		{"dotdot inside a name", "/tmp", []tarEntry{{name: "a/../../../pwn", body: "x"}}, "outside of"},
		{"hardlink out", "/tmp", []tarEntry{{name: "h", typ: tar.TypeLink, link: "../../etc/passwd"}}, "invalid hardlink"},
		{"relative symlink out", "/tmp", []tarEntry{{name: "s", typ: tar.TypeSymlink, link: "../../../pwn"}}, "invalid symlink"},
		{"archive symlink to the host, then through it", "/tmp", []tarEntry{
			{name: "evil", typ: tar.TypeSymlink, link: outside}, {name: "evil/pwn", body: "x"}}, ""},
		{"container symlink to the host", "/tmp", []tarEntry{{name: "hostlink/pwn", body: "x"}}, ""},
		{"container symlink climbing out", "/tmp", []tarEntry{{name: "up/pwn", body: "x"}}, ""},
		{"destination is a symlink to the host", "/tmp/dstlink", []tarEntry{{name: "pwn", body: "x"}}, "no such directory"},
		{"destination climbs", "/../../..", []tarEntry{{name: "tmp/climbed", body: "x"}}, ""},
		{"absolute name", "/tmp", []tarEntry{{name: "/abs", body: "x"}}, ""},
		{"hardlink through a symlink", "/tmp", []tarEntry{{name: "h", typ: tar.TypeLink, link: "etclink/passwd"}}, ""},
		{"whiteout name", "/tmp", []tarEntry{{name: ".wh.etclink", body: ""}}, ".wh."},
	} {
		err := files.Extract(rootfs, c.dst, mkTar(t, c.tar...), files.ExtractOptions{NoOverwriteDirNonDir: true})
		switch {
		case c.wantErr == "" && err != nil:
			// Refusing is fine too, as long as nothing escaped.
			t.Logf("%s: refused: %v", c.name, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.wantErr)
		}
	}
	// Where the contained ones landed: inside the root.
	for _, p := range []string{"pwn", "tmp/abs", "tmp/climbed"} {
		if _, err := os.Lstat(filepath.Join(rootfs, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	var h, passwd unix.Stat_t
	if unix.Lstat(filepath.Join(rootfs, "tmp/h"), &h) != nil || unix.Lstat(filepath.Join(rootfs, "etc/passwd"), &passwd) != nil || h.Ino != passwd.Ino {
		t.Error("the hardlink through a symlink does not point at the container's /etc/passwd")
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "tmp/.wh.etclink")); err == nil {
		t.Error(".wh. entry written")
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "tmp/etclink")); err != nil {
		t.Error("a .wh. entry deleted its target")
	}
}

func TestExtract(t *testing.T) {
	rootfs, _ := hostileRoot(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	owner := func(p string) (int, int, uint32) {
		t.Helper()
		var st unix.Stat_t
		must(unix.Lstat(filepath.Join(rootfs, p), &st))
		return int(st.Uid), int(st.Gid), st.Mode & 0o7777
	}
	must(unix.Chmod(filepath.Join(rootfs, "tmp"), 0o1777))

	// Owners kept by default; the "." entry leaves the directory alone.
	must(files.Extract(rootfs, "/tmp/", mkTar(t,
		tarEntry{name: "./", typ: tar.TypeDir, mode: 0o700, uid: 9, gid: 9},
		tarEntry{name: "./d/", typ: tar.TypeDir, mode: 0o750, uid: 1234, gid: 2345},
		tarEntry{name: "./d/f", body: "hello", mode: 0o4755, uid: 1234, gid: 2345},
	), files.ExtractOptions{NoOverwriteDirNonDir: true}))
	if u, g, m := owner("tmp/d/f"); u != 1234 || g != 2345 || m != 0o4755 {
		t.Errorf("tmp/d/f: %d:%d %o", u, g, m)
	}
	if u, g, m := owner("tmp"); u != 0 || g != 0 || m != 0o1777 {
		t.Errorf("tmp itself changed: %d:%d %o", u, g, m)
	}
	// -a: the container user's ids, from the container's passwd/group.
	must(files.Extract(rootfs, "/tmp/etclink", mkTar(t, tarEntry{name: "owned", uid: 7, gid: 7}),
		files.ExtractOptions{CopyUIDGID: true, User: "nobody:staff"}))
	if u, g, _ := owner("etc/owned"); u != 65534 || g != 50 {
		t.Errorf("copyUIDGID: %d:%d", u, g)
	}
	if err := files.Extract(rootfs, "/tmp", mkTar(t, tarEntry{name: "x"}), files.ExtractOptions{CopyUIDGID: true, User: "ghost"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("unknown user: %v", err)
	}

	// NoOverwriteDirNonDir, against the tree and against the archive's own
	// earlier entries.
	for name, tr := range map[string][]tarEntry{
		"file over a directory": {{name: "d"}},
		"directory over a file": {{name: "d/f", typ: tar.TypeDir}},
		"within the archive":    {{name: "n/", typ: tar.TypeDir}, {name: "n/m", body: "1"}, {name: "n"}},
	} {
		err := files.Extract(rootfs, "/tmp", mkTar(t, tr...), files.ExtractOptions{NoOverwriteDirNonDir: true})
		if err == nil || !strings.Contains(err.Error(), "cannot overwrite") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Without it, a later entry replaces.
	must(files.Extract(rootfs, "/tmp", mkTar(t, tarEntry{name: "d", body: "now a file"}), files.ExtractOptions{}))
	if b, _ := os.ReadFile(filepath.Join(rootfs, "tmp/d")); string(b) != "now a file" {
		t.Errorf("tmp/d: %q", b)
	}

	// Bad destinations.
	if err := files.Extract(rootfs, "/etc/passwd", mkTar(t, tarEntry{name: "x"}), files.ExtractOptions{}); !errors.Is(err, files.ErrNotDirectory) {
		t.Errorf("a file as destination: %v", err)
	}
	if err := files.Extract(rootfs, "/nope", mkTar(t, tarEntry{name: "x"}), files.ExtractOptions{}); !errdefs.IsNotFound(err) {
		t.Errorf("a missing destination: %v", err)
	}
	if err := files.Extract(rootfs, "/tmp", strings.NewReader("not a tar at all, just some text that is long enough to fill a header block..."), files.ExtractOptions{}); err == nil {
		t.Error("garbage accepted")
	}
}
