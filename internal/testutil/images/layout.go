package images

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// epoch is the timestamp of every fixture file that has no other: fixtures
// are byte-for-byte reproducible.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// blobWriter writes a blob into a layout's blobs/sha256 directory: bytes go
// to a temp file while being hashed and counted; commit renames the file to
// its digest.
type blobWriter struct {
	dir string
	f   *os.File
	h   hash.Hash
	n   int64
}

func newBlobWriter(layout string) (*blobWriter, error) {
	dir := filepath.Join(layout, "blobs", "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return nil, err
	}
	return &blobWriter{dir: dir, f: f, h: sha256.New()}, nil
}

func (w *blobWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// commit closes the blob and moves it under its digest.
func (w *blobWriter) commit(mediaType string) (ocispec.Descriptor, error) {
	if err := w.f.Chmod(0o644); err != nil {
		w.abort()
		return ocispec.Descriptor{}, err
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return ocispec.Descriptor{}, err
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(w.h.Sum(nil)))
	if err := os.Rename(w.f.Name(), filepath.Join(w.dir, d.Encoded())); err != nil {
		os.Remove(w.f.Name())
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: w.n}, nil
}

func (w *blobWriter) abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

// writeBlob stores b as a blob of the layout.
func writeBlob(layout, mediaType string, b []byte) (ocispec.Descriptor, error) {
	w, err := newBlobWriter(layout)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if _, err := w.Write(b); err != nil {
		w.abort()
		return ocispec.Descriptor{}, err
	}
	return w.commit(mediaType)
}

// writeJSONBlob marshals v and stores it as a blob of the layout.
func writeJSONBlob(layout, mediaType string, v any) (ocispec.Descriptor, []byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	d, err := writeBlob(layout, mediaType, b)
	return d, b, err
}

// writeLayoutIndex writes oci-layout and index.json, naming top by tag.
func writeLayoutIndex(layout string, top ocispec.Descriptor, tag string) error {
	if err := os.MkdirAll(layout, 0o755); err != nil {
		return err
	}
	b, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(layout, ocispec.ImageLayoutFile), b, 0o644); err != nil {
		return err
	}
	top.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{top},
	}
	b, err = json.Marshal(idx)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(layout, "index.json"), b, 0o644)
}

// imageConfig returns the config of a linux image with the given layers.
func imageConfig(arch, variant string, cfg ocispec.ImageConfig, layers []Layer, history []ocispec.History) ocispec.Image {
	created := epoch
	img := ocispec.Image{
		Created:  &created,
		Author:   "berth test fixtures",
		Platform: ocispec.Platform{OS: "linux", Architecture: arch, Variant: variant},
		Config:   cfg,
		RootFS:   ocispec.RootFS{Type: "layers"},
		History:  history,
	}
	for _, l := range layers {
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, l.DiffID)
	}
	return img
}

// writeManifest stores config and the manifest of config + layers and
// returns the manifest's descriptor (with platform) and the manifest.
func writeManifest(layout string, config ocispec.Image, layers []Layer) (ocispec.Descriptor, ocispec.Manifest, error) {
	cd, _, err := writeJSONBlob(layout, ocispec.MediaTypeImageConfig, config)
	if err != nil {
		return ocispec.Descriptor{}, ocispec.Manifest{}, err
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cd,
	}
	for _, l := range layers {
		m.Layers = append(m.Layers, l.Descriptor)
	}
	md, _, err := writeJSONBlob(layout, ocispec.MediaTypeImageManifest, m)
	if err != nil {
		return ocispec.Descriptor{}, ocispec.Manifest{}, err
	}
	p := config.Platform
	md.Platform = &p
	return md, m, nil
}

// archiveLayer is one layer of a docker-archive: its uncompressed tar on
// disk and its diff id.
type archiveLayer struct {
	tarPath string
	diffID  digest.Digest
}

// writeDockerArchive writes a docker-archive tar in the layout `docker save`
// of Docker 20.10 produces: <id>/{VERSION,json,layer.tar} per layer,
// <config-hex>.json, manifest.json and repositories.
func writeDockerArchive(path string, config []byte, layers []archiveLayer, name, tag string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	hdr := func(name string, mode int64, size int64, typ byte) *tar.Header {
		return &tar.Header{Name: name, Mode: mode, Size: size, Typeflag: typ, ModTime: epoch, Format: tar.FormatUSTAR}
	}
	writeFile := func(name string, b []byte) error {
		if err := tw.WriteHeader(hdr(name, 0o644, int64(len(b)), tar.TypeReg)); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	configHex := digest.FromBytes(config).Encoded()
	var (
		parent   string
		layerIDs []string
	)
	err = func() error {
		for i, l := range layers {
			// The v1 id chains the diff ids, as Docker's v1 ids chain the
			// layers below them.
			id := digest.FromString(parent + " " + l.diffID.String()).Encoded()
			if i == len(layers)-1 {
				id = digest.FromString(parent + " " + configHex).Encoded()
			}
			v1 := map[string]any{"id": id, "created": epoch.Format(time.RFC3339)}
			if parent != "" {
				v1["parent"] = parent
			}
			v1json, err := json.Marshal(v1)
			if err != nil {
				return err
			}
			if err := tw.WriteHeader(hdr(id+"/", 0o755, 0, tar.TypeDir)); err != nil {
				return err
			}
			if err := writeFile(id+"/VERSION", []byte("1.0")); err != nil {
				return err
			}
			if err := writeFile(id+"/json", v1json); err != nil {
				return err
			}
			if err := copyIntoTar(tw, hdr(id+"/layer.tar", 0o644, 0, tar.TypeReg), l.tarPath); err != nil {
				return err
			}
			layerIDs = append(layerIDs, id+"/layer.tar")
			parent = id
		}
		if err := writeFile(configHex+".json", config); err != nil {
			return err
		}
		manifest, err := json.Marshal([]map[string]any{{
			"Config":   configHex + ".json",
			"RepoTags": []string{name + ":" + tag},
			"Layers":   layerIDs,
		}})
		if err != nil {
			return err
		}
		if err := writeFile("manifest.json", manifest); err != nil {
			return err
		}
		repos, err := json.Marshal(map[string]map[string]string{name: {tag: parent}})
		if err != nil {
			return err
		}
		if err := writeFile("repositories", repos); err != nil {
			return err
		}
		return tw.Close()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("docker-archive %q: %w", path, err)
	}
	return nil
}

func copyIntoTar(tw *tar.Writer, hdr *tar.Header, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	hdr.Size = st.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
