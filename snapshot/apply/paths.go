package apply

import (
	"fmt"
	"path"
	"strings"
)

const (
	pathMax = 4096 // PATH_MAX, including the terminating NUL
	nameMax = 255  // NAME_MAX

	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	opaqueMarker   = ".wh..wh..opq"
)

// cleanName turns a tar name (or hardlink target) into a path relative to
// root: no leading "/", no "." or ".." components, no trailing "/"; "" is
// root itself. Absolute names are taken relative to root; a name that climbs
// above root after lexical cleaning ("../x", "a/../../x") is refused, as
// Docker refuses it.
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("name contains a NUL byte: %w", ErrUnsafe)
	}
	if len(name) >= pathMax {
		return "", fmt.Errorf("name of %d bytes is longer than PATH_MAX: %w", len(name), ErrUnsafe)
	}
	rel := path.Clean(strings.TrimLeft(name, "/"))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("name climbs out of the root: %w", ErrUnsafe)
	}
	if rel == "." {
		return "", nil
	}
	for c := range strings.SplitSeq(rel, "/") {
		if len(c) > nameMax {
			return "", fmt.Errorf("component of %d bytes is longer than NAME_MAX: %w", len(c), ErrUnsafe)
		}
	}
	return rel, nil
}

// split returns the parent and the last component of a clean relative path;
// the parent of a top-level name is "".
func split(rel string) (parent, base string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

// join is the inverse of split.
func join(parent, base string) string {
	if parent == "" {
		return base
	}
	return parent + "/" + base
}
