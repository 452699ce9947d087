package images

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"github.com/berth-dev/berth/internal/testutil/fixture"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/testutil"
)

// skopeo runs skopeo with a private HOME (no host credentials or policy
// surprises) and returns its stdout.
func skopeo(t *testing.T, args ...string) string {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command("skopeo", append([]string{"--insecure-policy"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_RUNTIME_DIR="+home, "REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

type inspectOut struct {
	Digest       string
	Architecture string
	Os           string
	Layers       []string
	Env          []string
}

func inspect(t *testing.T, args ...string) inspectOut {
	t.Helper()
	var out inspectOut
	if err := json.Unmarshal([]byte(skopeo(t, append([]string{"inspect"}, args...)...)), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// verifyLayout checks every blob against its name, and the manifest,
// config and layers against each other (diff ids by decompressing).
// inspectArch inspects ref choosing the arch (a global skopeo flag).
func inspectArch(t *testing.T, arch, ref string) inspectOut {
	t.Helper()
	var out inspectOut
	if err := json.Unmarshal([]byte(skopeo(t, "--override-arch="+arch, "inspect", ref)), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func verifyLayout(t *testing.T, img *Image) {
	t.Helper()
	dir := filepath.Join(img.Layout, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if sum := fileSumT(t, filepath.Join(dir, e.Name())); sum != e.Name() {
			t.Errorf("blob %s has sha256 %s", e.Name(), sum)
		}
	}
	var idx ocispec.Index
	b, err := os.ReadFile(filepath.Join(img.Layout, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != img.Top.Digest || idx.Manifests[0].Annotations[ocispec.AnnotationRefName] != img.Tag {
		t.Fatalf("index.json = %s", b)
	}
	var m ocispec.Manifest
	readJSON(t, img, img.Manifests[0], &m)
	var cfg ocispec.Image
	readJSON(t, img, m.Config, &cfg)
	if len(m.Layers) != len(cfg.RootFS.DiffIDs) || len(m.Layers) != len(img.Layers) {
		t.Fatalf("%d layers, %d diff ids", len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	nonEmpty := 0
	for _, h := range cfg.History {
		if !h.EmptyLayer {
			nonEmpty++
		}
	}
	if nonEmpty != len(m.Layers) {
		t.Errorf("history has %d non-empty entries for %d layers", nonEmpty, len(m.Layers))
	}
	for i, l := range m.Layers {
		f, err := os.Open(img.BlobPath(l.Digest))
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = f
		switch l.MediaType {
		case ocispec.MediaTypeImageLayerGzip:
			if r, err = gzip.NewReader(f); err != nil {
				t.Fatal(err)
			}
		case ocispec.MediaTypeImageLayerZstd:
			zr, err := zstd.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			defer zr.Close()
			r = zr
		}
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != cfg.RootFS.DiffIDs[i].String() {
			t.Errorf("layer %d: diff id %s, config says %s", i, got, cfg.RootFS.DiffIDs[i])
		}
		if st, err := os.Stat(img.BlobPath(l.Digest)); err != nil || st.Size() != l.Size {
			t.Errorf("layer %d: size %v, manifest says %d", i, st.Size(), l.Size)
		}
	}
}

func fileSumT(t *testing.T, p string) string {
	t.Helper()
	s, err := fixture.FileSHA256(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBusybox(t *testing.T) {
	img := Busybox(t)
	verifyLayout(t, img)
	if img.Config.Architecture != "amd64" || img.Config.OS != "linux" || img.Config.Config.Cmd[0] != "sh" {
		t.Fatalf("config: %+v", img.Config)
	}
	oci := inspect(t, img.OCIRef())
	arch := inspect(t, img.ArchiveRef())
	if oci.Digest != img.Top.Digest.String() || oci.Architecture != "amd64" || len(oci.Layers) != 1 {
		t.Errorf("skopeo inspect oci: %+v, want digest %s", oci, img.Top.Digest)
	}
	if len(arch.Layers) != 1 || arch.Os != "linux" || arch.Env[0] != DefaultPath {
		t.Errorf("skopeo inspect docker-archive: %+v", arch)
	}
	// Copies out of both transports, and back into a layout.
	dst := t.TempDir()
	skopeo(t, "copy", "--quiet", img.OCIRef(), "dir:"+filepath.Join(dst, "fromoci"))
	skopeo(t, "copy", "--quiet", img.ArchiveRef(), "oci:"+filepath.Join(dst, "fromarchive")+":busybox")
	if got := inspect(t, "oci:"+filepath.Join(dst, "fromarchive")+":busybox"); len(got.Layers) != 1 {
		t.Errorf("round trip through docker-archive: %+v", got)
	}
	// The unpacked layer is the busybox rootfs.
	testutil.RequireRoot(t)
	root := t.TempDir()
	naiveUnpack(t, img, root)
	if fi, err := os.Lstat(filepath.Join(root, "bin", "sh")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("bin/sh: %v %v", fi, err)
	}
	if out, err := exec.Command("chroot", root, "/bin/sh", "-c", "echo hi").CombinedOutput(); err != nil || string(out) != "hi\n" {
		t.Fatalf("chroot sh: %q %v", out, err)
	}
}

func TestBusyboxIndex(t *testing.T) {
	img := BusyboxIndex(t)
	if img.Archive != "" || img.Top.MediaType != ocispec.MediaTypeImageIndex || len(img.Manifests) != 2 {
		t.Fatalf("index image: %+v", img)
	}
	var idx ocispec.Index
	if err := json.Unmarshal([]byte(skopeo(t, "inspect", "--raw", img.OCIRef())), &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 2 || idx.Manifests[1].Platform.Architecture != "arm64" || idx.Manifests[1].Platform.Variant != "v8" {
		t.Fatalf("index: %+v", idx)
	}
	if got := inspect(t, img.OCIRef()); got.Architecture != "amd64" || got.Digest != img.Top.Digest.String() {
		t.Errorf("default platform: %+v", got)
	}
	if got := inspectArch(t, "arm64", img.OCIRef()); got.Architecture != "arm64" {
		t.Errorf("arm64: %+v", got)
	}
	skopeo(t, "copy", "--quiet", "--all", img.OCIRef(), "oci:"+filepath.Join(t.TempDir(), "all")+":x")
}

func TestScratch(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "berth-whoami")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/berth-dev/berth/cmd/berth-whoami")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	img := Scratch(t, bin)
	verifyLayout(t, img)
	if img.Config.Config.Entrypoint[0] != "/berth-whoami" {
		t.Fatalf("entrypoint %v", img.Config.Config.Entrypoint)
	}
	if got := inspect(t, img.ArchiveRef()); len(got.Layers) != 1 {
		t.Errorf("skopeo inspect docker-archive: %+v", got)
	}
	root := t.TempDir()
	naiveUnpack(t, img, root)
	if fileSumT(t, filepath.Join(root, "berth-whoami")) != fileSumT(t, bin) {
		t.Fatal("unpacked binary differs")
	}
}

var smallSpec = Spec{Seed: 7, Size: 6 << 20, Archive: true, Name: "gen-small"}

func TestGeneratedSmall(t *testing.T) {
	testutil.RequireRoot(t) // owners, device nodes, security.capability
	img := Generated(t, smallSpec)
	verifyLayout(t, img)
	if fresh, err := Generate(t.TempDir(), smallSpec); err != nil {
		t.Fatal(err)
	} else if fresh.Top.Digest != img.Top.Digest {
		t.Fatalf("cached image %s differs from a fresh one %s: the generator changed, bump cacheVersion", img.Top.Digest, fresh.Top.Digest)
	}
	if len(img.Layers) != 20 {
		t.Fatalf("%d layers", len(img.Layers))
	}
	seen := map[Compression]bool{}
	for _, l := range img.Layers {
		seen[l.Compression] = true
	}
	if len(seen) != 3 {
		t.Errorf("compressions %v", seen)
	}
	checkFeatures(t, img)
	root := t.TempDir()
	naiveUnpack(t, img, root)
	if err := img.Tree.Check(root); err != nil {
		t.Fatal(err)
	}
	// A wrong tree is noticed.
	if err := os.WriteFile(filepath.Join(root, "specials", "empty"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := img.Tree.Check(root); err == nil || !strings.Contains(err.Error(), "specials/empty") {
		t.Fatalf("Check after a change: %v", err)
	}

	got := inspect(t, img.OCIRef())
	if len(got.Layers) != 20 {
		t.Errorf("skopeo inspect: %d layers", len(got.Layers))
	}
	if got := inspect(t, img.ArchiveRef()); len(got.Layers) != 20 {
		t.Errorf("skopeo inspect docker-archive: %d layers", len(got.Layers))
	}
	skopeo(t, "copy", "--quiet", img.OCIRef(), "dir:"+filepath.Join(t.TempDir(), "dir"))
}

// checkFeatures asserts the layers exercise what unpackers get wrong.
func checkFeatures(t *testing.T, img *Image) {
	t.Helper()
	count := map[string]int{}
	for _, l := range img.Layers {
		f, err := os.Open(img.BlobPath(l.Digest))
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = f
		switch l.Compression {
		case Gzip:
			r, _ = gzip.NewReader(f)
		case Zstd:
			zr, _ := zstd.NewReader(f)
			defer zr.Close()
			r = zr
		}
		tr := tar.NewReader(r)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			base := filepath.Base(hdr.Name)
			switch {
			case base == ".wh..wh..opq":
				count["opaque"]++
			case strings.HasPrefix(base, ".wh."):
				count["whiteout"]++
			case hdr.Typeflag == tar.TypeLink:
				count["hardlink"]++
			case hdr.Typeflag == tar.TypeSymlink:
				count["symlink"]++
			case hdr.Typeflag == tar.TypeChar:
				count["char"]++
			case hdr.Typeflag == tar.TypeFifo:
				count["fifo"]++
			case len(hdr.Name) > 100:
				count["longname"]++
			}
			for k := range hdr.PAXRecords {
				if strings.HasPrefix(k, "SCHILY.xattr.") {
					count["xattr"]++
				}
			}
		}
		f.Close()
	}
	for _, k := range []string{"opaque", "whiteout", "hardlink", "symlink", "char", "fifo", "longname", "xattr"} {
		if count[k] == 0 {
			t.Errorf("no %s entries in the layers (%v)", k, count)
		}
	}
	hard := 0
	for _, e := range img.Tree.Entries {
		if e.Hardlink != "" {
			hard++
		}
	}
	if hard == 0 {
		t.Error("no hardlinks in the expected tree")
	}
	t.Logf("entries: %v; %d paths in the tree", count, len(img.Tree.Entries))
}

func TestGeneratedDeterministic(t *testing.T) {
	spec := Spec{Seed: 3, Layers: 6, Size: 1 << 20}
	a, err := Generate(t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if a.Top.Digest != b.Top.Digest {
		t.Fatalf("same spec, digests %s and %s", a.Top.Digest, b.Top.Digest)
	}
	ja, _ := json.Marshal(a.Tree)
	jb, _ := json.Marshal(b.Tree)
	if !bytes.Equal(ja, jb) {
		t.Fatal("same spec, different trees")
	}
	spec.Seed = 4
	c, err := Generate(t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if c.Top.Digest == a.Top.Digest {
		t.Fatal("different seeds, same image")
	}
}

// TestGeneratedBig makes (or reuses) the ~200 MB, 20-layer image of the
// pull tests and benchmarks, and checks it against a naive unpack.
func TestGeneratedBig(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	testutil.RequireRoot(t)
	start := time.Now()
	img := Generated(t, Spec{Seed: 1})
	t.Logf("generated (or cached) in %s: %d layers, %d MB compressed, %d paths",
		time.Since(start).Round(time.Millisecond), len(img.Layers), img.TotalSize()>>20, len(img.Tree.Entries))
	checkFeatures(t, img)
	start = time.Now()
	root := t.TempDir()
	naiveUnpack(t, img, root)
	if err := img.Tree.Check(root); err != nil {
		t.Fatal(err)
	}
	t.Logf("naive unpack and check: %s", time.Since(start).Round(time.Millisecond))
}
