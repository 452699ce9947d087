// Package dockerarchive_test exchanges images with a real, private dockerd
// (Debian's 20.10), offline: what `docker save` writes loads into berth
// (image/archive.Load) with the same IDs, tags and root filesystem, and
// what berth saves in the docker-archive format `docker load` accepts and
// runs. The daemon is private: its own data and exec roots, socket, cgroup
// parent, no bridge, no firewall rules, the vfs storage driver and its
// default runc.
package dockerarchive_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/berth-dev/berth/image/archive"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/store"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/dockerd"
	"github.com/berth-dev/berth/internal/testutil/images"
	"github.com/berth-dev/berth/internal/testutil/imagestore"
	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/snapshot/overlay"
)

// daemon is a private dockerd with its default runc.
type daemon struct {
	*dockerd.Daemon
	t   *testing.T
	dir string // scratch files of the test
}

func startDaemon(t *testing.T) *daemon {
	t.Helper()
	return &daemon{t: t, dir: t.TempDir(), Daemon: dockerd.Start(t, dockerd.Options{CgroupParent: "/" + testutil.UniqueName(t)})}
}

func (d *daemon) docker(args ...string) (string, error) { return d.Docker(args...) }

func (d *daemon) must(args ...string) string {
	d.t.Helper()
	return d.Must(d.t, args...)
}

func (d *daemon) id(ref string) string {
	d.t.Helper()
	return strings.TrimSpace(d.must("image", "inspect", "-f", "{{.Id}}", ref))
}

// berth is one berth image store (content, overlay snapshots, records).
type berth struct {
	t  *testing.T
	sn *overlay.Snapshotter
	st *store.Store
	a  *archive.Archiver
}

func newBerth(t *testing.T) *berth {
	t.Helper()
	s := imagestore.Open(t)
	return &berth{t: t, sn: s.Snapshots, st: s.Images,
		a: &archive.Archiver{Content: s.Content, Snapshots: s.Snapshots, Images: s.Images, GC: s.GC}}
}

func (b *berth) get(ref string) store.Image {
	b.t.Helper()
	img, err := b.st.Get(context.Background(), ref)
	if err != nil {
		b.t.Fatalf("berth image %s: %v", ref, err)
	}
	return img
}

// view mounts a read-only view of img's chain for fn.
func (b *berth) view(img store.Image, fn func(root string)) {
	b.t.Helper()
	ctx := context.Background()
	key := "view-" + testutil.UniqueName(b.t)
	mounts, err := b.sn.View(ctx, key, img.ChainID.String())
	if err != nil {
		b.t.Fatal(err)
	}
	defer b.sn.Remove(ctx, key)
	target := b.t.TempDir()
	if err := snapshot.MountAll(mounts, target); err != nil {
		b.t.Fatal(err)
	}
	defer snapshot.UnmountAll(target)
	fn(target)
}

// file returns the file at p in img's root filesystem.
func (b *berth) file(img store.Image, p string) []byte {
	b.t.Helper()
	var data []byte
	b.view(img, func(root string) {
		var err error
		if data, err = os.ReadFile(filepath.Join(root, p)); err != nil {
			b.t.Fatalf("%s in the rootfs of %s: %v", p, img.ID, err)
		}
	})
	return data
}

// save writes refs with berth's Save in the docker-archive format.
func (b *berth) save(refs ...string) string {
	b.t.Helper()
	out := filepath.Join(b.t.TempDir(), "berth-save.tar")
	f, err := os.Create(out)
	if err != nil {
		b.t.Fatal(err)
	}
	defer f.Close()
	if err := b.a.Save(context.Background(), f, refs, archive.DockerArchive); err != nil {
		b.t.Fatalf("berth save %v: %v", refs, err)
	}
	if err := f.Close(); err != nil {
		b.t.Fatal(err)
	}
	return out
}

func tarDir(t *testing.T, dir, out string) {
	t.Helper()
	if b, err := exec.Command("tar", "-C", dir, "-cf", out, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar %s: %v: %s", dir, err, b)
	}
}

func sum(b []byte) [32]byte { return sha256.Sum256(b) }

// fromDocker is the shared start of every test: a private dockerd with the
// busybox rootfs imported and tagged twice, `docker save` of both tags,
// and that archive loaded into a fresh berth store.
type fromDocker struct {
	d     *daemon
	b     *berth
	id    string // docker's image ID
	lines []string
}

const (
	tag1 = "berth-bb:one"
	tag2 = "example.com/team/berth-bb:two"
)

func setup(t *testing.T) *fromDocker {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	d := startDaemon(t)
	tarball := filepath.Join(d.dir, "rootfs.tar")
	tarDir(t, testutil.BusyboxRootfsShared(t), tarball)
	d.must("import", tarball, tag1)
	d.must("tag", tag1, tag2)
	id := d.id(tag1)
	if id2 := d.id(tag2); id2 != id {
		t.Fatalf("docker tag: %s vs %s", id2, id)
	}
	saved := filepath.Join(d.dir, "docker-save.tar")
	d.must("save", "-o", saved, tag1, tag2)

	b := newBerth(t)
	f, err := os.Open(saved)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, err := b.a.Load(context.Background(), f, archive.LoadOptions{})
	if err != nil {
		t.Fatalf("berth load of docker save output: %v", err)
	}
	return &fromDocker{d: d, b: b, id: id, lines: lines}
}

// TestLoadDockerSave: `docker save` of an imported image with two tags
// loads into berth with both tags, docker's image ID and the same files.
func TestLoadDockerSave(t *testing.T) {
	s := setup(t)
	sort.Strings(s.lines)
	want := []string{"Loaded image: " + tag2, "Loaded image: " + tag1}
	sort.Strings(want)
	if strings.Join(s.lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("load lines %q, want %q", s.lines, want)
	}
	img := s.b.get(tag1)
	if img.ID.String() != s.id {
		t.Fatalf("berth image ID %s, docker's %s", img.ID, s.id)
	}
	if img2 := s.b.get(tag2); img2.ID != img.ID {
		t.Fatalf("%s is %s, %s is %s", tag1, img.ID, tag2, img2.ID)
	}
	if got := strings.Join(img.RepoTags(), " "); got != tag2+" "+tag1 && got != tag1+" "+tag2 {
		t.Errorf("RepoTags %q", got)
	}
	// The layer is docker's diff id, unpacked into the same files.
	dockerDiffs := strings.TrimSpace(s.d.must("image", "inspect", "-f", "{{range .RootFS.Layers}}{{.}} {{end}}", tag1))
	if len(img.DiffIDs) != 1 || dockerDiffs != img.DiffIDs[0].String() {
		t.Errorf("diff ids %v, docker's %q", img.DiffIDs, dockerDiffs)
	}
	src, err := os.ReadFile(filepath.Join(testutil.BusyboxRootfsShared(t), "bin", "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.b.file(img, "bin/busybox"); len(got) == 0 || sum(got) != sum(src) {
		t.Fatalf("/bin/busybox unpacked by berth: %d bytes, differs from the source's %d", len(got), len(src))
	}
}

// TestDockerLoadsBerthSave: berth's save of the image (under a name only
// berth gave it) loads into docker after docker forgot the image, keeps
// its ID and runs.
func TestDockerLoadsBerthSave(t *testing.T) {
	s := setup(t)
	ctx := context.Background()
	const berthTag = "saved-by-berth:v1"
	if err := s.b.st.Tag(ctx, tag1, reference.MustParse(berthTag)); err != nil {
		t.Fatal(err)
	}
	out := s.b.save(berthTag)
	s.d.must("rmi", tag1, tag2)
	if _, err := s.d.docker("image", "inspect", s.id); err == nil {
		t.Fatalf("docker still has %s after rmi", s.id)
	}
	loaded := s.d.must("load", "-i", out)
	if !strings.Contains(loaded, "Loaded image: "+berthTag) {
		t.Errorf("docker load output %q", loaded)
	}
	if id := s.d.id(berthTag); id != s.id {
		t.Fatalf("docker load gave ID %s, berth's is %s", id, s.id)
	}
	if got := s.d.must("run", "--rm", "--network", "none", berthTag, "echo", "hi"); strings.TrimSpace(got) != "hi" {
		t.Fatalf("docker run of berth's save: %q", got)
	}
	// Docker saves what it loaded from berth back into the same ID.
	again := filepath.Join(s.d.dir, "again.tar")
	s.d.must("save", "-o", again, berthTag)
	b2 := newBerth(t)
	f, err := os.Open(again)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := b2.a.Load(ctx, f, archive.LoadOptions{}); err != nil {
		t.Fatalf("load docker's save of berth's image: %v", err)
	}
	if img := b2.get(berthTag); img.ID.String() != s.id {
		t.Errorf("round trip ID %s, want %s", img.ID, s.id)
	}
}

// TestDockerLoadsBerthMultiImageSave: two different images under three
// tags in one berth save all load into docker.
func TestDockerLoadsBerthMultiImageSave(t *testing.T) {
	s := setup(t)
	ctx := context.Background()
	// A second image: busybox plus a file, imported by berth.
	rootfs := testutil.BusyboxRootfs(t)
	if err := os.WriteFile(filepath.Join(rootfs, "hello"), []byte("hello from berth\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	cmd := exec.Command("tar", "-C", rootfs, "-cf", "-", ".")
	cmd.Stdout = &buf
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	const otherTag = "berth-other:1"
	other, err := s.b.a.Import(ctx, io.Reader(&buf), archive.ImportOptions{Name: reference.MustParse(otherTag), Changes: []string{`CMD ["cat", "/hello"]`}})
	if err != nil {
		t.Fatal(err)
	}
	if other.ID.String() == s.id {
		t.Fatal("the second image has the first one's ID")
	}
	out := s.b.save(tag1, tag2, otherTag)
	s.d.must("rmi", tag1, tag2)
	loaded := s.d.must("load", "-i", out)
	for _, tag := range []string{tag1, tag2, otherTag} {
		if !strings.Contains(loaded, "Loaded image: "+tag) {
			t.Errorf("docker load output lacks %s: %q", tag, loaded)
		}
	}
	for tag, want := range map[string]string{tag1: s.id, tag2: s.id, otherTag: other.ID.String()} {
		if id := s.d.id(tag); id != want {
			t.Errorf("docker's %s is %s, berth's %s", tag, id, want)
		}
	}
	list := s.d.must("images", "--format", "{{.Repository}}:{{.Tag}}")
	for _, tag := range []string{tag1, tag2, otherTag} {
		if !strings.Contains(list, tag+"\n") {
			t.Errorf("docker images lacks %s:\n%s", tag, list)
		}
	}
	if got := s.d.must("run", "--rm", "--network", "none", otherTag); strings.TrimSpace(got) != "hello from berth" {
		t.Errorf("docker run %s: %q", otherTag, got)
	}
	if got := s.d.must("run", "--rm", "--network", "none", tag2, "echo", "hi"); strings.TrimSpace(got) != "hi" {
		t.Errorf("docker run %s: %q", tag2, got)
	}
}

// TestMultiLayerExchange: a generated image of several layers (whiteouts,
// opaque directories, hardlinks, replaced files) goes berth → docker →
// berth through save and load, keeping its ID, and the tree berth unpacks
// from docker's save is exactly the generated one.
func TestMultiLayerExchange(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	ctx := context.Background()
	gen := images.Generated(t, images.Spec{Seed: 9, Layers: 6, Size: 4 << 20, Archive: true,
		Compressions: []images.Compression{images.Gzip}, Name: "berth-gen", Tag: "multi"})
	const ref = "berth-gen:multi"
	b := newBerth(t)
	f, err := os.Open(gen.Archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := b.a.Load(ctx, f, archive.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	id := b.get(ref).ID.String()

	d := startDaemon(t)
	d.must("load", "-i", b.save(ref))
	if got := d.id(ref); got != id {
		t.Fatalf("docker load of berth's save: ID %s, berth's %s", got, id)
	}
	if n := strings.Count(strings.TrimSpace(d.must("image", "inspect", "-f", "{{range .RootFS.Layers}}{{.}} {{end}}", ref)), "sha256:"); n != len(gen.Layers) {
		t.Errorf("docker has %d layers, want %d", n, len(gen.Layers))
	}
	saved := filepath.Join(d.dir, "docker-save.tar")
	d.must("save", "-o", saved, ref)

	b2 := newBerth(t)
	f2, err := os.Open(saved)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if _, err := b2.a.Load(ctx, f2, archive.LoadOptions{}); err != nil {
		t.Fatalf("berth load of docker's save: %v", err)
	}
	img := b2.get(ref)
	if img.ID.String() != id {
		t.Errorf("round trip ID %s, want %s", img.ID, id)
	}
	b2.view(img, func(root string) {
		if err := gen.Tree.Check(root); err != nil {
			t.Error(err)
		}
	})
}
