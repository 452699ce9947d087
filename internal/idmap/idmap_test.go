package idmap

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/snapshot"
)

var testMapping = Mapping{UID: Range{0, 200000, 65536}, GID: Range{0, 300000, 65536}}

func owner(t *testing.T, p string) (int, int) {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sys().(*syscall.Stat_t)
	return int(s.Uid), int(s.Gid)
}

func TestTranslate(t *testing.T) {
	m := testMapping
	if u, g := m.Root(); u != 200000 || g != 300000 {
		t.Errorf("Root = %d:%d", u, g)
	}
	if u, g := m.HostIDs(1000, 70000); u != 201000 || g != 65534 {
		t.Errorf("HostIDs(1000, 70000) = %d:%d", u, g)
	}
	if u, g := m.ContainerIDs(200005, 5); u != 5 || g != 65534 {
		t.Errorf("ContainerIDs(200005, 5) = %d:%d", u, g)
	}
	if m.Key() != "200000.300000" {
		t.Errorf("Key = %q", m.Key())
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	f := Files{Passwd: filepath.Join(dir, "passwd"), Group: filepath.Join(dir, "group"), Subuid: filepath.Join(dir, "subuid"), Subgid: filepath.Join(dir, "subgid")}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(f.Passwd, "root:x:0:0::/root:/bin/sh\nalice:x:1001:1002::/home/alice:/bin/sh\nbob:x:1003:1003::/:/bin/sh\n")
	write(f.Group, "root:x:0:\nstaff:x:1002:\nbob:x:1003:\n")
	write(f.Subuid, "alice:100000:65536\nalice:300000:65536\nbob:165536:1000")
	write(f.Subgid, "staff:200000:65536\n1003:400000:65536\n")
	for _, c := range []struct{ in, want, err string }{
		{in: "alice:staff", want: "alice staff uid 0 100000 65536, gid 0 200000 65536"},
		{in: "1001:1002", want: "alice staff uid 0 100000 65536, gid 0 200000 65536"},
		{in: "alice", err: `group "alice": no entry in ` + f.Group},
		{in: "carol", err: `user "carol": no entry in ` + f.Passwd},
		{in: "bob", err: `the subordinate range of "bob" in ` + f.Subuid + " holds 1000 ids: at least 65536 are needed"},
		{in: "root:staff", err: `no subordinate range for "root" in ` + f.Subuid},
		{in: "default", err: `user "berthremap" missing from ` + f.Passwd},
	} {
		r, err := Resolve(c.in, f)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Resolve(%q) = %v, want error with %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%q): %v", c.in, err)
			continue
		}
		if got := r.User + " " + r.Group + " " + r.Mapping.String(); got != c.want {
			t.Errorf("Resolve(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// EnsureRange appends after every existing range.
	if err := EnsureRange(f.Subuid, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := EnsureRange(f.Subuid, "carol"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.Subuid)
	if !strings.HasSuffix(string(b), "bob:165536:1000\ncarol:365536:65536\n") {
		t.Errorf("subuid after EnsureRange:\n%s", b)
	}
}

// rootfsTest mounts a two-layer overlay for testMapping with l and checks
// what the container's root sees and writes.
func rootfsTest(t *testing.T, l *Layers) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	dir := filepath.Join(filepath.Dir(l.CacheDir), "layers")
	var lowers []string
	for _, n := range []string{"l1", "l2"} {
		p := filepath.Join(dir, "snapshots", n, "fs")
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "file-"+n), []byte(n), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(p, "file-"+n), 1000, 1000); err != nil {
			t.Fatal(err)
		}
		lowers = append(lowers, p)
	}
	upper, work, target := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "rootfs")
	for _, d := range []string{upper, work, target} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mounts := []snapshot.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + strings.Join(lowers, ":"), "upperdir=" + upper, "workdir=" + work}}}
	if err := l.MountRootfs(mounts, target, filepath.Join(dir, "scratch")); err != nil {
		t.Fatal(err)
	}
	defer snapshot.UnmountAll(target)
	if _, err := os.Stat(filepath.Join(dir, "scratch")); !os.IsNotExist(err) {
		t.Errorf("scratch dir left after the mount: %v", err)
	}
	for p, want := range map[string][2]int{"": {200000, 300000}, "file-l1": {201000, 301000}, "file-l2": {201000, 301000}} {
		if u, g := owner(t, filepath.Join(target, p)); u != want[0] || g != want[1] {
			t.Errorf("/%s through the rootfs: %d:%d, want %v", p, u, g, want)
		}
	}
	// The shared layers keep the image's ownership.
	if u, _ := owner(t, filepath.Join(lowers[0], "file-l1")); u != 1000 {
		t.Errorf("layer file owner changed to %d", u)
	}
	// What the container's root writes is the range root's on the host,
	// and a copy-up keeps the shifted owner.
	if err := os.WriteFile(filepath.Join(target, "new"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(target, "new"), 200000, 300000); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(filepath.Join(target, "file-l1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if u, g := owner(t, filepath.Join(upper, "file-l1")); u != 201000 || g != 301000 {
		t.Errorf("copied-up file in the upper dir: %d:%d, want 201000:301000", u, g)
	}
}

func TestMountRootfsIDMapped(t *testing.T) {
	dir := t.TempDir()
	if !Supported(dir, testMapping) {
		t.Fatalf("idmapped mounts unsupported on %s (kernel 5.12+ and ext4/xfs/tmpfs expected)", dir)
	}
	rootfsTest(t, &Layers{Mapping: testMapping, CacheDir: filepath.Join(dir, "cache")})
}

func TestMountRootfsCopy(t *testing.T) {
	dir := t.TempDir()
	l := &Layers{Mapping: testMapping, CacheDir: filepath.Join(dir, "cache"), NoIDMap: true}
	rootfsTest(t, l)
	defer func() {
		// The layer l1 goes: its copy with it, l2's stays.
		snapshots := filepath.Join(dir, "layers", "snapshots")
		if err := os.RemoveAll(filepath.Join(snapshots, "l1")); err != nil {
			t.Fatal(err)
		}
		if err := l.Prune(snapshots); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(l.CacheDir)
		if len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), "l2.") {
			t.Errorf("cache after pruning l1: %v", ents)
		}
	}()
	// One copy per layer, named by its snapshot id, owned as shifted.
	ents, err := os.ReadDir(l.CacheDir)
	if err != nil || len(ents) != 2 {
		t.Fatalf("cache: %v %v", ents, err)
	}
	// Prune keeps the copies of layers that are still there.
	snapshots := filepath.Join(filepath.Dir(l.CacheDir), "layers", "snapshots")
	if err := l.Prune(snapshots); err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		n, _, _ := strings.Cut(e.Name(), ".")
		if u, _ := owner(t, filepath.Join(l.CacheDir, e.Name(), "file-"+n)); u != 201000 {
			t.Errorf("cached copy of %s: owner %d", n, u)
		}
	}
}
