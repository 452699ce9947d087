package pull

import (
	"fmt"
	"runtime"
	"sort"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
)

// ParsePlatform parses Docker's --platform syntax, "os[/arch[/variant]]"
// ("linux/arm64/v8", "linux/amd64", "arm64"): a single component is an
// architecture of the host's OS when it is not a known OS. Architectures
// are normalised ("x86_64" is amd64, "aarch64" arm64). "" is the host's
// platform.
func ParsePlatform(s string) (ocispec.Platform, error) {
	if s == "" {
		return DefaultPlatform(), nil
	}
	parts := strings.Split(strings.ToLower(s), "/")
	if len(parts) > 3 {
		return ocispec.Platform{}, fmt.Errorf("platform %q: expected os[/arch[/variant]]: %w", s, errdefs.ErrInvalidArgument)
	}
	for _, p := range parts {
		if p == "" {
			return ocispec.Platform{}, fmt.Errorf("platform %q: empty component: %w", s, errdefs.ErrInvalidArgument)
		}
	}
	var p ocispec.Platform
	switch len(parts) {
	case 1:
		if knownOS(parts[0]) {
			p = ocispec.Platform{OS: parts[0], Architecture: runtime.GOARCH}
		} else {
			p = ocispec.Platform{OS: runtime.GOOS, Architecture: parts[0]}
		}
	case 2:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	case 3:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]}
	}
	return normalize(p), nil
}

func knownOS(s string) bool {
	switch s {
	case "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "plan9", "aix":
		return true
	}
	return false
}

// DefaultPlatform is the host's platform (Linux with Go's architecture,
// arm variants as Docker defaults them).
func DefaultPlatform() ocispec.Platform {
	return normalize(ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH})
}

// normalize maps architecture aliases and default variants as containerd's
// platforms package does: arm64 has variant v8, arm defaults to v7, amd64's
// v1 is no variant.
func normalize(p ocispec.Platform) ocispec.Platform {
	p.OS = strings.ToLower(p.OS)
	switch a := strings.ToLower(p.Architecture); a {
	case "x86_64", "x86-64", "amd64":
		p.Architecture = "amd64"
		if p.Variant == "v1" {
			p.Variant = ""
		}
	case "aarch64", "arm64":
		p.Architecture = "arm64"
		if p.Variant == "" || p.Variant == "8" {
			p.Variant = "v8"
		}
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	case "arm":
		if p.Variant == "" {
			p.Variant = "v7"
		} else if !strings.HasPrefix(p.Variant, "v") {
			p.Variant = "v" + p.Variant
		}
	case "i386", "i686", "386":
		p.Architecture = "386"
	default:
		p.Architecture = a
	}
	return p
}

// FormatPlatform writes p as "os/arch[/variant]".
func FormatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// matches reports whether the index entry's platform serves want.
func matches(want ocispec.Platform, have *ocispec.Platform) bool {
	if have == nil {
		return false
	}
	h := normalize(*have)
	return h.OS == want.OS && h.Architecture == want.Architecture && h.Variant == want.Variant
}

// selectManifest picks want's manifest from an index's entries (the first
// match, as Docker does), or fails with ErrNotFound listing what the index
// offers.
func selectManifest(entries []ocispec.Descriptor, want ocispec.Platform) (ocispec.Descriptor, error) {
	for _, d := range entries {
		if matches(want, d.Platform) {
			return d, nil
		}
	}
	// An arm variant lower than asked still runs (v6 on v7), as Docker allows.
	if want.Architecture == "arm" {
		for _, v := range []string{"v7", "v6", "v5"} {
			if v >= want.Variant {
				continue
			}
			w := want
			w.Variant = v
			for _, d := range entries {
				if matches(w, d.Platform) {
					return d, nil
				}
			}
		}
	}
	var offered []string
	for _, d := range entries {
		if d.Platform != nil && d.Platform.OS != "unknown" {
			offered = append(offered, FormatPlatform(normalize(*d.Platform)))
		}
	}
	sort.Strings(offered)
	return ocispec.Descriptor{}, fmt.Errorf("no manifest for platform %s in the image index (it has: %s): %w",
		FormatPlatform(want), strings.Join(offered, ", "), errdefs.ErrNotFound)
}
