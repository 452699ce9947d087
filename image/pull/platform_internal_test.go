package pull

import (
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
)

func TestParsePlatform(t *testing.T) {
	for in, want := range map[string]string{
		"linux/arm64/v8": "linux/arm64/v8", "linux/arm64": "linux/arm64/v8", "linux/aarch64": "linux/arm64/v8",
		"linux/amd64": "linux/amd64", "linux/x86_64": "linux/amd64", "linux/arm": "linux/arm/v7",
		"linux/arm/6": "linux/arm/v6", "arm64": "linux/arm64/v8",
	} {
		p, err := ParsePlatform(in)
		if err != nil || FormatPlatform(p) != want {
			t.Errorf("%q: %s %v, want %s", in, FormatPlatform(p), err, want)
		}
	}
	for _, bad := range []string{"linux//", "a/b/c/d", "/amd64"} {
		if _, err := ParsePlatform(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestSelectManifest(t *testing.T) {
	ents := []ocispec.Descriptor{
		{Digest: "sha256:a", Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		{Digest: "sha256:b", Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}},
		{Digest: "sha256:c", Platform: &ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}},
		{Digest: "sha256:d", Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"}},
	}
	for in, want := range map[string]string{"linux/amd64": "sha256:a", "linux/arm64/v8": "sha256:b", "linux/arm/v7": "sha256:c"} {
		p, _ := ParsePlatform(in)
		d, err := selectManifest(ents, p)
		if err != nil || string(d.Digest) != want {
			t.Errorf("%s: %s %v, want %s", in, d.Digest, err, want)
		}
	}
	p, _ := ParsePlatform("linux/ppc64le")
	if _, err := selectManifest(ents, p); !errdefs.IsNotFound(err) {
		t.Errorf("ppc64le: %v", err)
	}
}
