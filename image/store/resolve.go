package store

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/content"
)

// Media types of Docker's v2 schema 2, accepted wherever their OCI
// counterparts are.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
)

// MaxMetadataSize caps manifests, indexes and configs read into memory.
const MaxMetadataSize = 8 << 20

// IsIndex reports whether mediaType is an OCI index or a Docker manifest list.
func IsIndex(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == MediaTypeDockerManifestList
}

// IsManifest reports whether mediaType is an OCI or Docker image manifest.
func IsManifest(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageManifest || mediaType == MediaTypeDockerManifest
}

// DefaultPlatform is the platform images are resolved for: linux on the
// host's architecture.
func DefaultPlatform() ocispec.Platform {
	p := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if p.Architecture == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// PlatformMatches reports whether have satisfies want: same OS and
// architecture, and the same variant when both name one (arm64's "v8" is
// its default and matches an empty variant).
func PlatformMatches(want, have ocispec.Platform) bool {
	if want.OS != have.OS || want.Architecture != have.Architecture {
		return false
	}
	wv, hv := want.Variant, have.Variant
	if want.Architecture == "arm64" {
		wv, hv = strings.TrimPrefix(wv, "v8"), strings.TrimPrefix(hv, "v8")
	}
	return wv == "" || hv == "" || wv == hv
}

// ReadJSON reads the blob desc (at most MaxMetadataSize bytes) and decodes
// it into v.
func ReadJSON(ctx context.Context, p content.Provider, desc ocispec.Descriptor, v any) ([]byte, error) {
	b, err := content.ReadBlob(ctx, p, desc, MaxMetadataSize)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w: %v", desc.MediaType, desc.Digest, errdefs.ErrInvalidArgument, err)
	}
	return b, nil
}

// Resolved is an image as its blobs describe it.
type Resolved struct {
	Manifest     ocispec.Descriptor // the platform manifest (the target itself when it is one)
	ManifestBody ocispec.Manifest
	Config       ocispec.Image
	ConfigBytes  []byte
}

// Resolve reads target (an index or a manifest) from p, picks the manifest
// for platform from an index, and reads the manifest and its config.
func Resolve(ctx context.Context, p content.Provider, target ocispec.Descriptor, platform ocispec.Platform) (Resolved, error) {
	var r Resolved
	desc := target
	if IsIndex(desc.MediaType) {
		var idx ocispec.Index
		if _, err := ReadJSON(ctx, p, desc, &idx); err != nil {
			return r, err
		}
		found := false
		for _, m := range idx.Manifests {
			if !IsManifest(m.MediaType) {
				continue
			}
			if m.Platform == nil || PlatformMatches(platform, *m.Platform) {
				desc, found = m, true
				break
			}
		}
		if !found {
			return r, fmt.Errorf("index %s has no manifest for %s/%s: %w", target.Digest, platform.OS, platform.Architecture, errdefs.ErrNotFound)
		}
	}
	if !IsManifest(desc.MediaType) {
		return r, fmt.Errorf("%s has media type %q, not an image manifest or index: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	r.Manifest = desc
	if _, err := ReadJSON(ctx, p, desc, &r.ManifestBody); err != nil {
		return r, err
	}
	b, err := ReadJSON(ctx, p, r.ManifestBody.Config, &r.Config)
	if err != nil {
		return r, err
	}
	r.ConfigBytes = b
	if len(r.Config.RootFS.DiffIDs) != len(r.ManifestBody.Layers) {
		return r, fmt.Errorf("manifest %s lists %d layers, its config %d diff ids: %w", desc.Digest, len(r.ManifestBody.Layers), len(r.Config.RootFS.DiffIDs), errdefs.ErrInvalidArgument)
	}
	return r, nil
}

// ChainIDs returns the chain id of every prefix of diffIDs, as the OCI
// image spec defines them: the first is the first diff id, each next one
// is sha256(previous + " " + diffID).
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}
