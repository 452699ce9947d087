package volume

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/mount"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/api/filters"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

func TestParseBind(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		raw  string
		want MountPoint
	}{
		{"/data", MountPoint{Type: mount.TypeVolume, Destination: "/data", Driver: "local", Mode: "z", RW: true, Anonymous: true, CopyData: true}},
		{"vol:/data", MountPoint{Type: mount.TypeVolume, Name: "vol", Destination: "/data", Driver: "local", Mode: "z", RW: true, CopyData: true}},
		{"vol:/data:ro,nocopy", MountPoint{Type: mount.TypeVolume, Name: "vol", Destination: "/data", Driver: "local", Mode: "ro,nocopy", RW: false}},
		{dir + ":/x/../y/", MountPoint{Type: mount.TypeBind, Source: dir, Destination: "/y", RW: true, Propagation: "rprivate", CreateSource: true}},
		{dir + ":/y:ro,rslave,Z", MountPoint{Type: mount.TypeBind, Source: dir, Destination: "/y", Mode: "ro,rslave,Z", Propagation: "rslave", CreateSource: true}},
		{"/no/such:/y:z", MountPoint{Type: mount.TypeBind, Source: "/no/such", Destination: "/y", Mode: "z", RW: true, Propagation: "rprivate", CreateSource: true}},
	} {
		got, err := ParseBind(c.raw)
		if err != nil || got != c.want {
			t.Errorf("ParseBind(%q) = %+v, %v\nwant %+v", c.raw, got, err, c.want)
		}
	}
	for _, c := range []struct{ raw, msg string }{
		{"", "invalid volume specification: ''"},
		{":/x", "invalid volume specification: ':/x'"},
		{"/a:rw", "invalid volume specification: '/a:rw'"},
		{"/a:/b:rw,ro", "invalid mode: rw,ro"},
		{"/a:/b:z,Z", "invalid mode: z,Z"},
		{"/a:/b:c:d", "invalid volume specification: '/a:/b:c:d'"},
		{"/a:b", "mount path must be absolute"},
		{"/a:/", "destination can't be '/'"},
		{"vol:/b:shared", "propagation is not supported for volumes"},
		{"-bad:/b", "includes invalid characters for a local volume name"},
	} {
		_, err := ParseBind(c.raw)
		if err == nil || !strings.Contains(err.Error(), c.msg) || !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseBind(%q) = %v, want invalid argument %q", c.raw, err, c.msg)
		}
	}
}

func TestParseMount(t *testing.T) {
	dir := t.TempDir()
	got, err := ParseMount(mount.Mount{Type: mount.TypeBind, Source: dir, Target: "/b", ReadOnly: true,
		BindOptions: &mount.BindOptions{Propagation: mount.PropagationShared, NonRecursive: true}})
	if err != nil || got != (MountPoint{Type: mount.TypeBind, Source: dir, Destination: "/b", Propagation: "shared", NonRecursive: true}) {
		t.Errorf("bind: %+v %v", got, err)
	}
	got, err = ParseMount(mount.Mount{Type: mount.TypeBind, Source: dir + "/new", Target: "/b", BindOptions: &mount.BindOptions{CreateMountpoint: true}})
	if err != nil || !got.CreateSource {
		t.Errorf("bind create-mountpoint: %+v %v", got, err)
	}
	got, err = ParseMount(mount.Mount{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 3 << 20, Mode: 01777, Options: [][]string{{"exec"}}}})
	if err != nil || got.Tmpfs != "mode=1777,size=3m,exec" {
		t.Errorf("tmpfs: %+v %v", got, err)
	}
	got, err = ParseMount(mount.Mount{Type: mount.TypeTmpfs, Target: "/t", ReadOnly: true, TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 1000}})
	if err != nil || got.Tmpfs != "ro,size=1000" {
		t.Errorf("tmpfs ro: %+v %v", got, err)
	}
	got, err = ParseMount(mount.Mount{Type: mount.TypeVolume, Source: "vv", Target: "/v", VolumeOptions: &mount.VolumeOptions{NoCopy: true, Labels: map[string]string{"a": "b"}}})
	if err != nil || got.CopyData || got.Name != "vv" || got.VolumeOptions == nil || got.Mode != "z" {
		t.Errorf("volume: %+v %v", got, err)
	}
	for _, c := range []struct {
		m   mount.Mount
		msg string
	}{
		{mount.Mount{Type: mount.TypeBind, Source: dir + "/gone", Target: "/b"}, `invalid mount config for type "bind": bind source path does not exist: ` + dir + "/gone"},
		{mount.Mount{Type: mount.TypeBind, Source: "rel", Target: "/b"}, "invalid mount path: 'rel' mount path must be absolute"},
		{mount.Mount{Type: mount.TypeBind, Target: "/b"}, "field Source must not be empty"},
		{mount.Mount{Type: mount.TypeBind, Source: dir}, "field Target must not be empty"},
		{mount.Mount{Type: mount.TypeBind, Source: dir, Target: "/b", VolumeOptions: &mount.VolumeOptions{}}, "field VolumeOptions must not be specified"},
		{mount.Mount{Type: mount.TypeVolume, Target: "/v", BindOptions: &mount.BindOptions{}}, "field BindOptions must not be specified"},
		{mount.Mount{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: &mount.TmpfsOptions{Options: [][]string{{"nosuid"}}}}, "invalid option: nosuid"},
		{mount.Mount{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: -1}}, "tmpfs size must not be negative"},
		{mount.Mount{Type: "npipe", Target: "/t"}, "mount type unknown"},
	} {
		_, err := ParseMount(c.m)
		if err == nil || !strings.Contains(err.Error(), c.msg) || !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseMount(%+v) = %v, want invalid argument %q", c.m, err, c.msg)
		}
	}
	if _, err := ParseMount(mount.Mount{Type: mount.TypeVolume, Source: "vv", Target: "/v", VolumeOptions: &mount.VolumeOptions{Subpath: "x"}}); !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), "volume-subpath") {
		t.Errorf("subpath: %v, want a not-implemented error naming it", err)
	}
	if _, err := ParseMount(mount.Mount{Type: mount.TypeImage, Source: "busybox", Target: "/i"}); !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), `mount type "image"`) {
		t.Errorf("image mount: %v, want a not-implemented error naming it", err)
	}
}

func TestParseVolumesFrom(t *testing.T) {
	for in, want := range map[string][2]string{"c": {"c", "rw"}, "c:ro": {"c", "ro"}, "c:rw,z": {"c", "rw,z"}} {
		n, m, err := ParseVolumesFrom(in)
		if err != nil || n != want[0] || m != want[1] {
			t.Errorf("ParseVolumesFrom(%q) = %q %q %v", in, n, m, err)
		}
	}
	for _, in := range []string{"", "c:shared", "c:nocopy", "c:bogus"} {
		if _, _, err := ParseVolumesFrom(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseVolumesFrom(%q) = %v, want invalid argument", in, err)
		}
	}
}

func TestStore(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Create(CreateOptions{Name: "data", Labels: map[string]string{"env": "test"}}, "")
	if err != nil || v.Driver != "local" || v.CreatedAt.IsZero() {
		t.Fatalf("create: %+v %v", v, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "data", "_data")); err != nil || !fi.IsDir() {
		t.Fatalf("data dir: %v", err)
	}
	// Creating again returns it; with other options it conflicts.
	if v2, err := s.Create(CreateOptions{Name: "data"}, "c1"); err != nil || v2.Labels["env"] != "test" {
		t.Errorf("create existing: %+v %v", v2, err)
	}
	if _, err := s.Create(CreateOptions{Name: "data", Options: map[string]string{"type": "tmpfs", "device": "tmpfs"}}, ""); !errdefs.IsConflict(err) {
		t.Errorf("create existing with other options: %v", err)
	}
	anon, err := s.Create(CreateOptions{Labels: map[string]string{AnonymousLabel: ""}}, "c2")
	if err != nil || len(anon.Name) != 64 || !anon.Anonymous() {
		t.Fatalf("anonymous: %+v %v", anon, err)
	}
	if _, err := s.Create(CreateOptions{Name: "x"}, ""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("one-character name: %v", err)
	}
	for _, o := range []map[string]string{{"foo": "1"}, {"type": "tmpfs"}, {"device": "/dev/sda"}, {"size": "1g"}} {
		if _, err := s.Create(CreateOptions{Name: "bad", Options: o}, ""); !errdefs.IsInvalidArgument(err) {
			t.Errorf("options %v: %v", o, err)
		}
	}
	if _, err := s.Create(CreateOptions{Name: "bad", Driver: "nfs"}, ""); !errdefs.IsNotFound(err) {
		t.Errorf("unknown driver: %v", err)
	}
	s.Create(CreateOptions{Name: "idle"}, "")

	// In use: refused, even forced.
	if err := s.Remove("data", true); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "volume is in use - [c1]") {
		t.Errorf("remove in use: %v", err)
	}
	list := func(f filters.Args) string {
		vs, err := s.List(f)
		if err != nil {
			return err.Error()
		}
		var names []string
		for _, v := range vs {
			if v.Anonymous() {
				names = append(names, "anon")
			} else {
				names = append(names, v.Name)
			}
		}
		sort.Strings(names)
		return strings.Join(names, ",")
	}
	f := func(kv ...string) filters.Args {
		a := filters.Args{}
		for i := 0; i < len(kv); i += 2 {
			a.Add(kv[i], kv[i+1])
		}
		return a
	}
	for _, c := range []struct {
		f    filters.Args
		want string
	}{
		{f(), "anon,data,idle"},
		{f("dangling", "true"), "idle"},
		{f("dangling", "false"), "anon,data"},
		{f("name", "dat"), "data"},
		{f("label", "env=test"), "data"},
		{f("label", "env"), "data"},
		{f("label", "env=prod"), ""},
		{f("driver", "local", "name", "idle"), "idle"},
		{f("bogus", "1"), "invalid filter 'bogus'"},
		{f("dangling", "maybe"), "invalid filter 'dangling=maybe'"},
	} {
		if got := list(c.f); got != c.want && (c.want == "" || !strings.HasPrefix(got, c.want+":")) {
			t.Errorf("List(%v) = %q, want %q", c.f, got, c.want)
		}
	}

	// Reopened: the records are back, the references are not (the
	// container service restores them).
	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if vs, _ := s2.List(filters.Args{}); len(vs) != 3 {
		t.Errorf("reopened store has %d volumes", len(vs))
	}
	os.WriteFile(filepath.Join(root, "data", "_data", "f"), []byte("12345"), 0o644)
	// Prune: anonymous unused only, unless all.
	s.Unref(anon.Name, "c2")
	names, _, err := s.Prune(filters.Args{}, false)
	if err != nil || len(names) != 1 || names[0] != anon.Name {
		t.Errorf("prune: %v %v", names, err)
	}
	s.Unref("data", "c1")
	names, space, err := s.Prune(f("label!", "env=test"), true)
	if err != nil || strings.Join(names, ",") != "idle" || space != 0 {
		t.Errorf("prune all label!: %v %d %v", names, space, err)
	}
	names, space, err = s.Prune(f("all", "true"), false)
	if err != nil || strings.Join(names, ",") != "data" || space != 5 {
		t.Errorf("prune all filter: %v %d %v", names, space, err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("left in the store: %v", ents)
	}
	if err := s.Remove("data", false); !errdefs.IsNotFound(err) {
		t.Errorf("remove missing: %v", err)
	}
	if err := s.Remove("data", true); err != nil {
		t.Errorf("remove -f missing: %v", err)
	}
}

// TestPopulate: copy-up copies the image's directory (symlinks as links,
// modes, owners), never follows a link out of the rootfs, and leaves a
// non-empty volume alone.
func TestPopulate(t *testing.T) {
	rootfs, outside := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o600)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(rootfs, "app", "sub"), 0o750))
	must(os.WriteFile(filepath.Join(rootfs, "app", "sub", "f"), []byte("data"), 0o640))
	must(os.Symlink(outside, filepath.Join(rootfs, "app", "out")))
	must(os.Link(filepath.Join(rootfs, "app", "sub", "f"), filepath.Join(rootfs, "app", "hardlink")))
	must(unix.Lsetxattr(filepath.Join(rootfs, "app", "sub", "f"), "user.berth", []byte("kept"), 0))
	must(unix.Chmod(filepath.Join(rootfs, "app"), 0o1777))
	// A destination through an absolute link resolves inside the rootfs.
	must(os.Symlink("/app", filepath.Join(rootfs, "link")))
	must(os.Symlink(outside, filepath.Join(rootfs, "escape")))

	data := t.TempDir()
	copied, err := Populate(rootfs, "/link", data)
	if err != nil || !copied {
		t.Fatalf("populate: %v %v", copied, err)
	}
	if b, err := os.ReadFile(filepath.Join(data, "sub", "f")); err != nil || string(b) != "data" {
		t.Errorf("file: %q %v", b, err)
	}
	if target, err := os.Readlink(filepath.Join(data, "out")); err != nil || target != outside {
		t.Errorf("symlink copied as %q %v", target, err)
	}
	if fi, _ := os.Stat(data); fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("volume root mode %v, want the image dir's 1777", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(data, "sub", "f")); fi.Mode().Perm() != 0o640 {
		t.Errorf("file mode %v", fi.Mode())
	}
	var a, b unix.Stat_t
	unix.Stat(filepath.Join(data, "sub", "f"), &a)
	unix.Stat(filepath.Join(data, "hardlink"), &b)
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hard links not kept: inodes %d %d, links %d", a.Ino, b.Ino, a.Nlink)
	}
	val := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(data, "sub", "f"), "user.berth", val); err != nil || string(val[:n]) != "kept" {
		t.Errorf("xattr not copied: %q %v", val[:max(n, 0)], err)
	}
	// Not again once it has content.
	if copied, err := Populate(rootfs, "/app", data); copied || err != nil {
		t.Errorf("second populate: %v %v", copied, err)
	}
	// /escape points at a host dir: resolved in the rootfs it is missing.
	data2 := t.TempDir()
	if copied, err := Populate(rootfs, "/escape", data2); copied || err != nil {
		t.Errorf("populate through an escaping link: %v %v", copied, err)
	}
	if ents, _ := os.ReadDir(data2); len(ents) != 0 {
		t.Errorf("escaping link copied %v", ents)
	}
	if copied, err := Populate(rootfs, "/missing", data2); copied || err != nil {
		t.Errorf("populate of a missing dir: %v %v", copied, err)
	}
}

// TestDeviceMount: a tmpfs volume is mounted at its first user's Mount
// and unmounted with its last user's Unmount.
func TestDeviceMount(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(CreateOptions{Name: "tv", Options: map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=0700"}}, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.UnmountAll() })
	p, err := s.Mount("tv", "c1")
	if err != nil || !isMountPoint(p) {
		t.Fatalf("mount: %v", err)
	}
	var st unix.Statfs_t
	if unix.Statfs(p, &st); st.Type != unix.TMPFS_MAGIC {
		t.Errorf("not a tmpfs: %#x", st.Type)
	}
	if _, err := s.Mount("tv", "c2"); err != nil {
		t.Fatal(err)
	}
	s.Unmount("tv", "c1")
	if !isMountPoint(p) {
		t.Error("unmounted while c2 still uses it")
	}
	s.Unmount("tv", "c2")
	if isMountPoint(p) {
		t.Error("still mounted after its last user")
	}
	if _, err := s.Create(CreateOptions{Name: "bad", Options: map[string]string{"type": "nosuchfs", "device": "x"}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount("bad", "c1"); err == nil || !strings.Contains(err.Error(), "error while mounting volume") {
		t.Errorf("mount of a bad device: %v", err)
	}
	s.Mount("tv", "c3")
	if err := s.Remove("tv", false); err != nil || isMountPoint(p) {
		t.Errorf("remove of a mounted unused volume: %v", err)
	}
}
