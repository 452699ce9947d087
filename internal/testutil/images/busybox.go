package images

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/testutil/fixture"
)

// DefaultPath is the PATH of the fixture images' configs.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// BusyboxOptions tune WriteBusybox.
type BusyboxOptions struct {
	// MultiPlatform writes an image index with linux/amd64 and
	// linux/arm64/v8 manifests (the arm64 one carries the same layer) and
	// no docker-archive.
	MultiPlatform bool
}

// WriteBusybox writes the busybox image into dir (created if missing): an
// OCI layout named "busybox:latest" with one gzip layer holding
// fixture.BusyboxRootfsCache(), config Env PATH and Cmd ["sh"], and (single
// platform) a docker-archive.
func WriteBusybox(dir string, opts BusyboxOptions) (*Image, error) {
	rootfs, err := fixture.BusyboxRootfsCache()
	if err != nil {
		return nil, err
	}
	return writeTreeImage(dir, treeImage{
		name:    "busybox",
		src:     rootfs,
		cfg:     ocispec.ImageConfig{Env: []string{DefaultPath}, Cmd: []string{"sh"}},
		history: []ocispec.History{{Created: &epoch, CreatedBy: "ADD busybox-rootfs / # berth fixture"}, {Created: &epoch, CreatedBy: `CMD ["sh"]`, EmptyLayer: true}},
		multi:   opts.MultiPlatform,
	})
}

// CachedBusybox returns the cached busybox image, building it when missing.
func CachedBusybox(opts BusyboxOptions) (*Image, error) {
	// The rootfs cache's name carries busybox's hash and the rootfs
	// layout version: a new busybox or layout makes a new image.
	rootfs, err := fixture.BusyboxRootfsCache()
	if err != nil {
		return nil, err
	}
	return cached(cacheKey("busybox", filepath.Base(rootfs), opts), func(dir string) (*Image, error) { return WriteBusybox(dir, opts) })
}

// WriteScratch writes a FROM-scratch image around the static binary at
// binPath into dir: one gzip layer with the binary at /<basename>, which is
// also the Entrypoint. Named "<basename>:latest".
func WriteScratch(dir, binPath string) (*Image, error) {
	name := filepath.Base(binPath)
	st, err := os.Stat(binPath)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("scratch image: %q is not a regular file", binPath)
	}
	src, err := os.MkdirTemp("", "berth-scratch-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(src)
	if err := os.Symlink(binPath, filepath.Join(src, name)); err != nil {
		return nil, err
	}
	return writeTreeImage(dir, treeImage{
		name:        name,
		src:         src,
		followLinks: true,
		cfg:         ocispec.ImageConfig{Env: []string{DefaultPath}, Entrypoint: []string{"/" + name}},
		history:     []ocispec.History{{Created: &epoch, CreatedBy: "COPY " + name + " / # berth fixture"}, {Created: &epoch, CreatedBy: `ENTRYPOINT ["/` + name + `"]`, EmptyLayer: true}},
	})
}

// CachedScratch returns the cached scratch image around binPath (keyed by
// the binary's contents), building it when missing.
func CachedScratch(binPath string) (*Image, error) {
	sum, err := fixture.FileSHA256(binPath)
	if err != nil {
		return nil, err
	}
	return cached(cacheKey("scratch", filepath.Base(binPath), sum), func(dir string) (*Image, error) { return WriteScratch(dir, binPath) })
}

// treeImage is a one-layer image made from a directory tree.
type treeImage struct {
	name        string
	src         string
	followLinks bool // top-level symlinks in src stand for their targets
	cfg         ocispec.ImageConfig
	history     []ocispec.History
	multi       bool
}

func writeTreeImage(dir string, ti treeImage) (*Image, error) {
	layout := filepath.Join(dir, layoutDir)
	if err := os.MkdirAll(layout, 0o755); err != nil {
		return nil, err
	}
	rawPath := ""
	if !ti.multi {
		rawPath = filepath.Join(dir, ".layer.tar")
		defer os.Remove(rawPath)
	}
	lw, err := newLayerWriter(layout, Gzip, rawPath)
	if err != nil {
		return nil, err
	}
	if err := tarTree(lw.Writer, ti.src, ti.followLinks); err != nil {
		lw.abort()
		return nil, fmt.Errorf("%s image: %w", ti.name, err)
	}
	layer, err := lw.finish()
	if err != nil {
		return nil, err
	}
	layers := []Layer{layer}
	img := &Image{Name: ti.name, Tag: "latest", Layers: layers}
	img.Config = imageConfig("amd64", "", ti.cfg, layers, ti.history)
	md, m, err := writeManifest(layout, img.Config, layers)
	if err != nil {
		return nil, err
	}
	img.Manifest, img.Top, img.Manifests = m, md, []ocispec.Descriptor{md}
	if ti.multi {
		armd, _, err := writeManifest(layout, imageConfig("arm64", "v8", ti.cfg, layers, ti.history), layers)
		if err != nil {
			return nil, err
		}
		img.Manifests = append(img.Manifests, armd)
		idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: img.Manifests}
		if img.Top, _, err = writeJSONBlob(layout, ocispec.MediaTypeImageIndex, idx); err != nil {
			return nil, err
		}
	} else {
		img.Top.Platform = nil
	}
	if err := writeLayoutIndex(layout, img.Top, img.Tag); err != nil {
		return nil, err
	}
	if !ti.multi {
		config, err := os.ReadFile(blobPath(layout, m.Config.Digest))
		if err != nil {
			return nil, err
		}
		if err := writeDockerArchive(filepath.Join(dir, archiveName), config, []archiveLayer{{rawPath, layer.DiffID}}, img.Name, img.Tag); err != nil {
			return nil, err
		}
	}
	img.setPaths(dir)
	return img, img.save()
}

// blobPath is the path of blob d in layout.
func blobPath(layout string, d digest.Digest) string {
	return filepath.Join(layout, "blobs", d.Algorithm().String(), d.Encoded())
}

// tarTree writes the tree under src as layer entries, in lexical order,
// with reproducible headers (fixed times, no user or group names).
func tarTree(tw *tar.Writer, src string, followTopLinks bool) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		stat := os.Lstat
		if followTopLinks && filepath.Dir(rel) == "." {
			stat = os.Stat
		}
		fi, err := stat(path)
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		}
		hdr.Uname, hdr.Gname = "", ""
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = epoch, time.Time{}, time.Time{}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.Copy(tw, f)
		if err == nil && n != hdr.Size {
			err = errors.New("file changed while archived")
		}
		if err != nil {
			return fmt.Errorf("%q: %w", path, err)
		}
		return nil
	})
}
