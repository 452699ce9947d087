package images

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Compression is how a layer blob is compressed.
type Compression string

// The layer compressions a fixture can use.
const (
	Gzip         Compression = "gzip"
	Zstd         Compression = "zstd"
	Uncompressed Compression = "none"
)

// MediaType returns the OCI layer media type for c.
func (c Compression) MediaType() string {
	switch c {
	case Gzip:
		return ocispec.MediaTypeImageLayerGzip
	case Zstd:
		return ocispec.MediaTypeImageLayerZstd
	default:
		return ocispec.MediaTypeImageLayer
	}
}

// Layer describes one layer blob of a fixture image.
type Layer struct {
	// Descriptor is the blob as the manifest lists it.
	ocispec.Descriptor
	// DiffID is the digest of the uncompressed tar.
	DiffID digest.Digest `json:"diffID"`
	// TarSize is the size of the uncompressed tar.
	TarSize int64 `json:"tarSize"`
	// Compression is how the blob is compressed.
	Compression Compression `json:"compression"`
}

// Image is a fixture image on disk. Its fields never change after it is
// returned; cached images must not be modified.
type Image struct {
	// Dir holds everything below; Layout and Archive are inside it.
	Dir string `json:"-"`
	// Layout is the OCI image layout directory.
	Layout string `json:"-"`
	// Archive is the docker-archive tar ("" for multi-platform images).
	Archive string `json:"-"`

	// Name and Tag: the layout's index.json names the image Tag
	// (org.opencontainers.image.ref.name) and the archive's manifest.json
	// lists "Name:Tag" in RepoTags.
	Name string `json:"name"`
	Tag  string `json:"tag"`

	// Top is what the layout's index.json points at: an image manifest,
	// or an image index for multi-platform images.
	Top ocispec.Descriptor `json:"top"`
	// Manifests are the platform manifests (one for a single-platform
	// image; the index's entries otherwise, with their platforms).
	Manifests []ocispec.Descriptor `json:"manifests"`
	// Manifest is the linux/amd64 image manifest.
	Manifest ocispec.Manifest `json:"manifest"`
	// Config is the linux/amd64 image config.
	Config ocispec.Image `json:"config"`
	// Layers are the linux/amd64 manifest's layers, in order.
	Layers []Layer `json:"layers"`

	// Tree is the expected root filesystem after unpacking all layers
	// (set for generated images; nil otherwise).
	Tree *Tree `json:"-"`
}

const (
	layoutDir   = "oci"
	archiveName = "docker-archive.tar"
	imageJSON   = "image.json"
	treeJSON    = "tree.json"
)

// OCIRef returns the image as a skopeo/containers-image reference,
// "oci:<layout>:<tag>".
func (img *Image) OCIRef() string { return "oci:" + img.Layout + ":" + img.Tag }

// ArchiveRef returns the docker-archive as a skopeo reference,
// "docker-archive:<tar>" ("" when there is no archive).
func (img *Image) ArchiveRef() string {
	if img.Archive == "" {
		return ""
	}
	return "docker-archive:" + img.Archive
}

// BlobPath returns the path of the blob d in the layout.
func (img *Image) BlobPath(d digest.Digest) string {
	return filepath.Join(img.Layout, "blobs", d.Algorithm().String(), d.Encoded())
}

// TotalSize is the sum of the amd64 manifest's layer blob sizes.
func (img *Image) TotalSize() int64 {
	var n int64
	for _, l := range img.Layers {
		n += l.Size
	}
	return n
}

// Load reads an image previously written into dir.
func Load(dir string) (*Image, error) {
	b, err := os.ReadFile(filepath.Join(dir, imageJSON))
	if err != nil {
		return nil, err
	}
	img := new(Image)
	if err := json.Unmarshal(b, img); err != nil {
		return nil, fmt.Errorf("image %q: %w", dir, err)
	}
	img.setPaths(dir)
	if b, err := os.ReadFile(filepath.Join(dir, treeJSON)); err == nil {
		img.Tree = new(Tree)
		if err := json.Unmarshal(b, img.Tree); err != nil {
			return nil, fmt.Errorf("image %q: tree: %w", dir, err)
		}
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	return img, nil
}

func (img *Image) setPaths(dir string) {
	img.Dir = dir
	img.Layout = filepath.Join(dir, layoutDir)
	img.Archive = ""
	if _, err := os.Stat(filepath.Join(dir, archiveName)); err == nil {
		img.Archive = filepath.Join(dir, archiveName)
	}
}

// save writes image.json (and tree.json) into img.Dir.
func (img *Image) save() error {
	b, err := json.MarshalIndent(img, "", "\t")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(img.Dir, imageJSON), b, 0o644); err != nil {
		return err
	}
	if img.Tree != nil {
		b, err := json.Marshal(img.Tree)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(img.Dir, treeJSON), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
