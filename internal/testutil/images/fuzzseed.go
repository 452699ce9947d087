package images

import (
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Placeholders for a config's and a child manifest's digests and sizes in
// fuzz seeds: the fuzzer mutates the document, and FillSeed puts the real
// digests and sizes back so inputs get past the lookups they name.
const (
	SeedConfig     = "sha256:c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0"
	SeedChild      = "sha256:c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"
	SeedConfigSize = "918273645"
	SeedChildSize  = "918273646"
)

// SeedFrom turns a real manifest or index into a fuzz seed: the config's
// and the child's digests and sizes become the placeholders.
func SeedFrom(b []byte, config, child ocispec.Descriptor) []byte {
	s := string(b)
	if config.Digest != "" {
		s = strings.ReplaceAll(s, config.Digest.String(), SeedConfig)
		s = strings.ReplaceAll(s, `"size":`+strconv.FormatInt(config.Size, 10), `"size":`+SeedConfigSize)
	}
	if child.Digest != "" {
		s = strings.ReplaceAll(s, child.Digest.String(), SeedChild)
		s = strings.ReplaceAll(s, `"size":`+strconv.FormatInt(child.Size, 10), `"size":`+SeedChildSize)
	}
	return []byte(s)
}

// FillSeed replaces the placeholders with the digests and sizes of config
// and child (child may be nil).
func FillSeed(b, config, child []byte) []byte {
	s := string(b)
	s = strings.ReplaceAll(s, SeedConfig, digest.FromBytes(config).String())
	s = strings.ReplaceAll(s, SeedConfigSize, strconv.Itoa(len(config)))
	if child != nil {
		s = strings.ReplaceAll(s, SeedChild, digest.FromBytes(child).String())
		s = strings.ReplaceAll(s, SeedChildSize, strconv.Itoa(len(child)))
	}
	return []byte(s)
}

// Dockerize rewrites OCI media types into Docker schema 2's.
func Dockerize(b []byte) []byte {
	return []byte(strings.NewReplacer(
		ocispec.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json",
		ocispec.MediaTypeImageManifest, "application/vnd.docker.distribution.manifest.v2+json",
		ocispec.MediaTypeImageConfig, "application/vnd.docker.container.image.v1+json",
		ocispec.MediaTypeImageLayerGzip, "application/vnd.docker.image.rootfs.diff.tar.gzip",
	).Replace(string(b)))
}
