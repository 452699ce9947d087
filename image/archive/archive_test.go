package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/content/local"
	"github.com/berth-dev/berth/image/gc"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/store"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/images"
	"github.com/berth-dev/berth/internal/testutil/imagestore"
	"github.com/berth-dev/berth/internal/testutil/registry"
	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/snapshot/overlay"
)

type env struct {
	t  *testing.T
	cs *local.Store
	sn *overlay.Snapshotter
	st *store.Store
	gc *gc.Collector
	a  *Archiver
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testutil.RequireRoot(t)
	s := imagestore.Open(t)
	return &env{t: t, cs: s.Content, sn: s.Snapshots, st: s.Images, gc: s.GC,
		a: &Archiver{Content: s.Content, Snapshots: s.Snapshots, Images: s.Images, GC: s.GC}}
}

func (e *env) loadFile(path string, opts LoadOptions) []string {
	e.t.Helper()
	f, err := os.Open(path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	lines, err := e.a.Load(context.Background(), f, opts)
	if err != nil {
		e.t.Fatalf("load %s: %v", path, err)
	}
	return lines
}

// tarDir writes dir as a tar (an OCI layout as `docker save` would ship it).
func tarDir(t *testing.T, dir string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	cmd := exec.Command("tar", "-C", dir, "-cf", "-", ".")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tar: %v %s", err, stderr.String())
	}
	return &buf
}

// checkRootfs mounts a view of the image's chain and checks busybox is in it.
func (e *env) checkBusybox(img store.Image) {
	e.t.Helper()
	ctx := context.Background()
	key := "view-" + randomHex(4)
	mounts, err := e.sn.View(ctx, key, img.ChainID.String())
	if err != nil {
		e.t.Fatal(err)
	}
	defer e.sn.Remove(ctx, key)
	target := e.t.TempDir()
	if err := snapshot.MountAll(mounts, target); err != nil {
		e.t.Fatal(err)
	}
	defer snapshot.UnmountAll(target)
	if fi, err := os.Stat(filepath.Join(target, "bin", "busybox")); err != nil || fi.Size() == 0 {
		e.t.Fatalf("busybox in rootfs: %v", err)
	}
}

func TestLoadFixtureArchiveAndLayout(t *testing.T) {
	bb := images.Busybox(t)
	e := newEnv(t)
	ctx := context.Background()
	lines := e.loadFile(bb.Archive, LoadOptions{})
	if strings.Join(lines, "\n") != "Loaded image: busybox:latest" {
		t.Fatalf("lines %q", lines)
	}
	img, err := e.st.Get(ctx, "busybox")
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != bb.Manifest.Config.Digest {
		t.Fatalf("ID %s, fixture config %s", img.ID, bb.Manifest.Config.Digest)
	}
	if img.Size != bb.Layers[0].TarSize {
		t.Errorf("size %d, tar size %d", img.Size, bb.Layers[0].TarSize)
	}
	e.checkBusybox(img)

	// The OCI layout of the same image: same ID, and the layer snapshot
	// is shared (named by chain id).
	lines2, err := e.a.Load(ctx, tarDir(t, bb.Layout), LoadOptions{Repository: "layout/bb"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(lines2, "\n") != "Loaded image: layout/bb:latest" {
		t.Fatalf("lines %q", lines2)
	}
	img2, err := e.st.Get(ctx, "layout/bb")
	if err != nil || img2.ID != img.ID || img2.Target.Digest != bb.Top.Digest {
		t.Fatalf("layout image %+v %v", img2, err)
	}
	if got := fmt.Sprint(img2.RepoTags()); got != "[layout/bb:latest busybox:latest]" {
		t.Errorf("tags %s", got)
	}
	h, err := e.st.History(ctx, "busybox")
	if err != nil || len(h) != 2 || h[1].Size != bb.Layers[0].TarSize || h[0].Size != 0 {
		t.Errorf("history %+v %v", h, err)
	}

	// Without a repository, a tag-only layout loads untagged.
	e2 := newEnv(t)
	lines3, err := e2.a.Load(ctx, tarDir(t, bb.Layout), LoadOptions{})
	if err != nil || strings.Join(lines3, "\n") != "Loaded image ID: "+img.ID.String() {
		t.Fatalf("%q %v", lines3, err)
	}
}

func TestLoadMultiPlatformLayout(t *testing.T) {
	bb := images.BusyboxIndex(t)
	e := newEnv(t)
	if _, err := e.a.Load(context.Background(), tarDir(t, bb.Layout), LoadOptions{Repository: "multi"}); err != nil {
		t.Fatal(err)
	}
	img, err := e.st.Get(context.Background(), "multi")
	if err != nil || img.Target.Digest != bb.Top.Digest || img.ID != bb.Manifest.Config.Digest {
		t.Fatalf("%+v %v", img, err)
	}
	e.checkBusybox(img)
}

func TestSaveLoadRoundTripWithTools(t *testing.T) {
	bb := images.Busybox(t)
	e := newEnv(t)
	ctx := context.Background()
	e.loadFile(bb.Archive, LoadOptions{})
	if err := e.st.Tag(ctx, "busybox", reference.MustParse("example.com/team/bb:v1")); err != nil {
		t.Fatal(err)
	}
	rootfs := t.TempDir()
	os.WriteFile(filepath.Join(rootfs, "hello"), []byte("hi\n"), 0o644)
	imp, err := e.a.Import(ctx, tarDir(t, rootfs), ImportOptions{Name: reference.MustParse("imported:1"), Changes: []string{`CMD ["/hello"]`, "ENV A=1 B=2"}})
	if err != nil {
		t.Fatal(err)
	}
	bbImg, _ := e.st.Get(ctx, "busybox")

	dir := t.TempDir()
	out := filepath.Join(dir, "save.tar")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.a.Save(ctx, f, []string{"busybox", "example.com/team/bb:v1", "imported:1"}, DockerArchive); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// The layout is Docker's.
	names := tarNames(t, out)
	for _, want := range []string{"manifest.json", "repositories", bbImg.ID.Encoded() + ".json", imp.ID.Encoded() + ".json"} {
		if !names[want] {
			t.Errorf("archive lacks %s: %v", want, names)
		}
	}
	var manifest []struct {
		Config           string
		RepoTags, Layers []string
	}
	json.Unmarshal(readTarFile(t, out, "manifest.json"), &manifest)
	if len(manifest) != 2 || fmt.Sprint(manifest[0].RepoTags) != "[busybox:latest example.com/team/bb:v1]" || fmt.Sprint(manifest[1].RepoTags) != "[imported:1]" ||
		!strings.HasSuffix(manifest[0].Layers[0], "/layer.tar") {
		t.Errorf("manifest.json %+v", manifest)
	}
	var repos map[string]map[string]string
	json.Unmarshal(readTarFile(t, out, "repositories"), &repos)
	if repos["busybox"]["latest"] == "" || repos["example.com/team/bb"]["v1"] == "" {
		t.Errorf("repositories %v", repos)
	}

	// skopeo reads it.
	insp := registry.Skopeo(t, "inspect", "docker-archive:"+out+":busybox:latest")
	var si struct {
		Layers []string
		Os     string
	}
	if err := json.Unmarshal([]byte(insp), &si); err != nil || len(si.Layers) != 1 || si.Os != "linux" {
		t.Fatalf("skopeo inspect: %v %s", err, insp)
	}
	ociDir := filepath.Join(dir, "oci")
	registry.Skopeo(t, "copy", "--quiet", "docker-archive:"+out+":imported:1", "oci:"+ociDir+":imp")
	cfgOut := registry.Skopeo(t, "inspect", "--config", "oci:"+ociDir+":imp")
	if !strings.Contains(cfgOut, "Imported from -") || !strings.Contains(cfgOut, "/hello") {
		t.Errorf("config through skopeo: %s", cfgOut)
	}

	// save -> load elsewhere: the same IDs and names.
	e2 := newEnv(t)
	lines := e2.loadFile(out, LoadOptions{})
	want := "Loaded image: busybox:latest\nLoaded image: example.com/team/bb:v1\nLoaded image: imported:1"
	if strings.Join(lines, "\n") != want {
		t.Fatalf("lines %q", lines)
	}
	for ref, id := range map[string]digest.Digest{"busybox": bbImg.ID, "example.com/team/bb:v1": bbImg.ID, "imported:1": imp.ID} {
		got, err := e2.st.Get(ctx, ref)
		if err != nil || got.ID != id {
			t.Errorf("%s: %v %v", ref, got.ID, err)
		}
	}
	got, _ := e2.st.Get(ctx, "imported:1")
	checkHello(t, e2, got)

	// The OCI format: skopeo and umoci read it, and it loads back.
	ociTar := filepath.Join(dir, "oci.tar")
	f, _ = os.Create(ociTar)
	if err := e.a.Save(ctx, f, []string{"busybox:latest", "imported:1"}, OCILayout); err != nil {
		t.Fatal(err)
	}
	f.Close()
	insp = registry.Skopeo(t, "inspect", "oci-archive:"+ociTar+":latest")
	if !strings.Contains(insp, bbImg.DiffIDs[0].String()) && !strings.Contains(insp, "sha256:") {
		t.Errorf("skopeo inspect oci-archive: %s", insp)
	}
	layoutDir := filepath.Join(dir, "layout")
	os.MkdirAll(layoutDir, 0o755)
	if out, err := exec.Command("tar", "-C", layoutDir, "-xf", ociTar).CombinedOutput(); err != nil {
		t.Fatalf("untar: %v %s", err, out)
	}
	if out, err := exec.Command("umoci", "list", "--layout", layoutDir).CombinedOutput(); err != nil || !strings.Contains(string(out), "latest") || !strings.Contains(string(out), "1") {
		t.Errorf("umoci list: %v %s", err, out)
	}
	bundle := filepath.Join(dir, "bundle")
	if out, err := exec.Command("umoci", "unpack", "--image", layoutDir+":1", bundle).CombinedOutput(); err != nil {
		t.Errorf("umoci unpack: %v %s", err, out)
	} else if b, err := os.ReadFile(filepath.Join(bundle, "rootfs", "hello")); err != nil || string(b) != "hi\n" {
		t.Errorf("umoci rootfs: %q %v", b, err)
	}
	e3 := newEnv(t)
	lines, err = e3.a.Load(ctx, mustOpen(t, ociTar), LoadOptions{})
	if err != nil || strings.Join(lines, "\n") != "Loaded image: busybox:latest\nLoaded image: imported:1" {
		t.Fatalf("load oci: %q %v", lines, err)
	}
	if got, err := e3.st.Get(ctx, "imported:1"); err != nil || got.ID != imp.ID {
		t.Fatalf("oci round trip: %v", err)
	}
}

func checkHello(t *testing.T, e *env, img store.Image) {
	t.Helper()
	ctx := context.Background()
	key := "view-" + randomHex(4)
	mounts, err := e.sn.View(ctx, key, img.ChainID.String())
	if err != nil {
		t.Fatal(err)
	}
	defer e.sn.Remove(ctx, key)
	target := t.TempDir()
	if err := snapshot.MountAll(mounts, target); err != nil {
		t.Fatal(err)
	}
	defer snapshot.UnmountAll(target)
	if b, err := os.ReadFile(filepath.Join(target, "hello")); err != nil || string(b) != "hi\n" {
		t.Fatalf("hello: %q %v", b, err)
	}
}

func mustOpen(t *testing.T, p string) *os.File {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func tarNames(t *testing.T, p string) map[string]bool {
	names := map[string]bool{}
	tr := tar.NewReader(mustOpen(t, p))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
}

func readTarFile(t *testing.T, p, name string) []byte {
	tr := tar.NewReader(mustOpen(t, p))
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if h.Name == name {
			b, _ := io.ReadAll(tr)
			return b
		}
	}
}

func TestImport(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rootfs := t.TempDir()
	os.WriteFile(filepath.Join(rootfs, "hello"), []byte("hi\n"), 0o644)
	img, err := e.a.Import(ctx, tarDir(t, rootfs), ImportOptions{Changes: []string{"CMD /hello", "ENV A=1", "EXPOSE 80", "WORKDIR /w", "LABEL a=b"}})
	if err != nil {
		t.Fatal(err)
	}
	if !img.Dangling() || len(img.DiffIDs) != 1 {
		t.Fatalf("%+v", img)
	}
	checkHello(t, e, img)
	ins, err := e.st.Inspect(ctx, img.ID.String())
	if err != nil {
		t.Fatal(err)
	}
	c := ins.Config
	if fmt.Sprint(c.Cmd) != "[/bin/sh -c /hello]" || fmt.Sprint(c.Env) != "[A=1]" || c.WorkingDir != "/w" || c.Labels["a"] != "b" || len(c.ExposedPorts) != 1 {
		t.Errorf("config %+v", c)
	}
	h, _ := e.st.History(ctx, img.ID.String())
	if len(h) != 1 || h[0].Comment != "Imported from -" {
		t.Errorf("history %+v", h)
	}
	if _, err := e.a.Import(ctx, strings.NewReader(""), ImportOptions{Changes: []string{"RUN x"}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad change: %v", err)
	}
}

// entry is one file of a crafted archive.
type entry struct {
	name, link string
	body       []byte
	size       int64 // declared size when body is nil
}

func craft(t *testing.T, ents ...entry) *bytes.Buffer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.link != "" {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.link, 0
		}
		if e.body == nil && e.size > 0 {
			h.Size = e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.body != nil {
			tw.Write(e.body)
		} else if e.size > 0 {
			io.CopyN(tw, zeroReader{}, e.size)
		}
	}
	tw.Close()
	return &buf
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestLoadMalformed(t *testing.T) {
	bb := images.Busybox(t)
	layer, err := os.ReadFile(bb.BlobPath(bb.Layers[0].Digest))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(bb.BlobPath(bb.Manifest.Config.Digest))
	cfgName := bb.Manifest.Config.Digest.Encoded() + ".json"
	manifest := func(layers ...string) []byte {
		b, _ := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{"bad:1"}, "Layers": layers}})
		return b
	}
	// An uncompressed layer tar whose content is not the config's.
	var wrong bytes.Buffer
	tw := tar.NewWriter(&wrong)
	tw.WriteHeader(&tar.Header{Name: "x", Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Close()
	wrongDigest := digest.FromBytes([]byte("other"))
	for _, c := range []struct {
		name string
		tar  *bytes.Buffer
		want string
	}{
		{"empty", craft(t), "neither manifest.json"},
		{"traversal", craft(t, entry{name: "../evil", body: []byte("x")}), "climbs out"},
		{"absolute", craft(t, entry{name: "/etc/passwd", body: []byte("x")}), "absolute"},
		{"symlink out", craft(t, entry{name: "l/layer.tar", link: "../../x"}), "climbs out"},
		{"huge manifest", craft(t, entry{name: "manifest.json", size: MaxMetadataFile + 1}), "more than the"},
		{"bad json", craft(t, entry{name: "manifest.json", body: []byte("{")}), "manifest.json"},
		{"missing config", craft(t, entry{name: "manifest.json", body: manifest("l/layer.tar")}), "missing from the archive"},
		{"missing layer", craft(t, entry{name: cfgName, body: cfg}, entry{name: "manifest.json", body: manifest("l/layer.tar")}), `"l/layer.tar" is missing`},
		{"wrong layer", craft(t, entry{name: cfgName, body: cfg}, entry{name: "l/layer.tar", body: wrong.Bytes()}, entry{name: "manifest.json", body: manifest("l/layer.tar")}), "does not match the config's diff id"},
		{"layer count", craft(t, entry{name: cfgName, body: cfg}, entry{name: "manifest.json", body: manifest()}), "diff ids"},
		{"oci blob digest mismatch", craft(t, entry{name: "oci-layout", body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
			entry{name: "blobs/sha256/" + wrongDigest.Encoded(), body: layer},
			entry{name: "index.json", body: []byte(`{"schemaVersion":2,"manifests":[]}`)}), "digest"},
		{"oci missing manifest", craft(t, entry{name: "oci-layout", body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
			entry{name: "index.json", body: []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + wrongDigest.String() + `","size":5}]}`)}), "not found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			_, err := e.a.Load(ctx, c.tar, LoadOptions{})
			if err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) && !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one with %q", err, c.want)
			}
			// Nothing half-loaded: no record, and a collection leaves
			// no blob and no snapshot.
			if l, _ := e.st.List(ctx, store.ListOptions{}); len(l) != 0 {
				t.Fatalf("records after failed load: %v", l)
			}
			if _, err := e.gc.Collect(ctx); err != nil {
				t.Fatal(err)
			}
			e.assertEmpty()
		})
	}
}

func (e *env) assertEmpty() {
	e.t.Helper()
	ctx := context.Background()
	e.cs.Walk(ctx, func(i content.Info) error {
		e.t.Errorf("blob left: %s", i.Digest)
		return nil
	})
	e.sn.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		e.t.Errorf("snapshot left: %s (%s)", i.Name, i.Kind)
		return nil
	})
}

// Docker 20.10 writes a layer shared by two v1 ids once and symlinks the
// other: `<id2>/layer.tar -> ../<id1>/layer.tar`.
func TestLoadSymlinkedLayer(t *testing.T) {
	bb := images.Busybox(t)
	e := newEnv(t)
	ctx := context.Background()
	layerTar := readTarFile(t, bb.Archive, mustManifestLayer(t, bb.Archive))
	cfg, _ := os.ReadFile(bb.BlobPath(bb.Manifest.Config.Digest))
	cfgName := bb.Manifest.Config.Digest.Encoded() + ".json"
	m, _ := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{"linked:1"}, "Layers": []string{"b/layer.tar"}}})
	arch := craft(t, entry{name: "a/layer.tar", body: layerTar}, entry{name: "b/layer.tar", link: "../a/layer.tar"},
		entry{name: cfgName, body: cfg}, entry{name: "manifest.json", body: m})
	lines, err := e.a.Load(ctx, arch, LoadOptions{})
	if err != nil || strings.Join(lines, "\n") != "Loaded image: linked:1" {
		t.Fatalf("%q %v", lines, err)
	}
	img, err := e.st.Get(ctx, "linked:1")
	if err != nil || img.ID != bb.Manifest.Config.Digest {
		t.Fatalf("%v %v", img.ID, err)
	}
	e.checkBusybox(img)
}

func mustManifestLayer(t *testing.T, archive string) string {
	var m []struct{ Layers []string }
	if err := json.Unmarshal(readTarFile(t, archive, "manifest.json"), &m); err != nil || len(m) == 0 {
		t.Fatal(err)
	}
	return m[0].Layers[0]
}
