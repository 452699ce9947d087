// Package reference owns image references: the names users type
// ("busybox", "user/img:1.0", "localhost:5000/x@sha256:...") and their
// normalized, fully qualified form ("docker.io/library/busybox:latest").
//
// Parsing is Docker's own: github.com/distribution/reference does the
// grammar and the Docker Hub normalization, so Berth accepts and refuses
// exactly what `docker pull` does. This package wraps it in one small value
// type, Named, with errors in Berth's categories.
package reference

import (
	"fmt"
	"strings"

	dref "github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
)

// DefaultTag is the tag given to a reference that has neither a tag nor a
// digest.
const DefaultTag = "latest"

// maxTagLen is the longest tag the grammar allows.
const maxTagLen = 128

// Named is a normalized image reference: a domain, a repository path and
// at least one of a tag or a digest. It is a comparable value (usable as a
// map key) and never changes once made; the zero Named is "no reference".
//
// When a reference has both a tag and a digest ("busybox:1.36@sha256:..."),
// the digest is what identifies the content; the tag is kept as the user
// wrote it.
type Named struct {
	domain string
	path   string
	tag    string
	digest digest.Digest
}

// Parse normalizes s as Docker does: "busybox" becomes
// "docker.io/library/busybox:latest", "user/img" becomes
// "docker.io/user/img:latest", "index.docker.io/x" becomes
// "docker.io/library/x:latest"; a first component with a "." or ":" or
// equal to "localhost" is a registry ("localhost:5000/x",
// "127.0.0.1:5000/a/b:tag", "[::1]:5000/x"). A reference with neither a tag
// nor a digest gets the tag "latest".
//
// Invalid input (empty, uppercase repository, bad tag or digest, a 64-hex
// image ID, a name too long, ...) returns an error wrapping
// errdefs.ErrInvalidArgument that names the input.
func Parse(s string) (Named, error) {
	if s == "" {
		return Named{}, invalid(s, "empty reference")
	}
	r, err := dref.ParseNormalizedNamed(s)
	if err != nil {
		return Named{}, invalid(s, explain(s, err))
	}
	return fromDistribution(dref.TagNameOnly(r)), nil
}

// MustParse is Parse for references known to be valid (tests, constants);
// it panics on an invalid one.
func MustParse(s string) Named {
	n, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return n
}

func fromDistribution(r dref.Named) Named {
	n := Named{domain: dref.Domain(r), path: dref.Path(r)}
	if t, ok := r.(dref.Tagged); ok {
		n.tag = t.Tag()
	}
	if d, ok := r.(dref.Digested); ok {
		n.digest = d.Digest()
	}
	return n
}

// WithTag returns n with its tag replaced by tag (the digest, if any, is
// dropped: a new tag names other content). An invalid tag wraps
// errdefs.ErrInvalidArgument.
func WithTag(n Named, tag string) (Named, error) {
	if n.IsZero() {
		return Named{}, fmt.Errorf("%w: tag %q on an empty reference", errdefs.ErrInvalidArgument, tag)
	}
	if len(tag) > maxTagLen {
		return Named{}, fmt.Errorf("%w: tag %q: longer than %d characters", errdefs.ErrInvalidArgument, short(tag), maxTagLen)
	}
	if !tagChars(tag) {
		return Named{}, fmt.Errorf("%w: tag %q: %v", errdefs.ErrInvalidArgument, short(tag), dref.ErrTagInvalidFormat)
	}
	return Named{domain: n.domain, path: n.path, tag: tag}, nil
}

// WithDigest returns n pinned to d, keeping its tag. An invalid digest
// wraps errdefs.ErrInvalidArgument.
func WithDigest(n Named, d digest.Digest) (Named, error) {
	if n.IsZero() {
		return Named{}, fmt.Errorf("%w: digest %q on an empty reference", errdefs.ErrInvalidArgument, d)
	}
	if err := d.Validate(); err != nil {
		return Named{}, fmt.Errorf("%w: digest %q: %v", errdefs.ErrInvalidArgument, short(string(d)), err)
	}
	n.digest = d
	return n, nil
}

// IsZero reports whether n is the zero Named.
func (n Named) IsZero() bool { return n.path == "" }

// Domain is the registry host, with its port if any: "docker.io",
// "localhost:5000", "[::1]:5000".
func (n Named) Domain() string { return n.domain }

// Path is the repository path inside the registry: "library/busybox",
// "user/img", "a/b".
func (n Named) Path() string { return n.path }

// Name is the full repository name without tag or digest:
// "docker.io/library/busybox".
func (n Named) Name() string {
	if n.IsZero() {
		return ""
	}
	return n.domain + "/" + n.path
}

// Tag is the tag, or "" when the reference is by digest only.
func (n Named) Tag() string { return n.tag }

// Digest is the digest, or "" when the reference is by tag only.
func (n Named) Digest() digest.Digest { return n.digest }

// String is the fully qualified reference:
// "docker.io/library/busybox:latest", "localhost:5000/x@sha256:...".
func (n Named) String() string {
	return n.Name() + n.suffix()
}

func (n Named) suffix() string {
	var b strings.Builder
	if n.tag != "" {
		b.WriteString(":" + n.tag)
	}
	if n.digest != "" {
		b.WriteString("@" + string(n.digest))
	}
	return b.String()
}

// Familiar is the repository name as `docker images` shows it: the
// "docker.io/" domain and, for one-component official images, the
// "library/" prefix removed ("busybox", "user/img", "localhost:5000/x").
func Familiar(n Named) string {
	if n.IsZero() {
		return ""
	}
	if n.domain != "docker.io" {
		return n.Name()
	}
	if rest, ok := strings.CutPrefix(n.path, "library/"); ok && !strings.Contains(rest, "/") {
		return rest
	}
	return n.path
}

// FamiliarString is the short form with tag and digest, as `docker ps`
// shows an image: "busybox:latest", "user/img@sha256:...".
func FamiliarString(n Named) string {
	return Familiar(n) + n.suffix()
}

// MarshalText encodes n as its String, so records can store references.
func (n Named) MarshalText() ([]byte, error) { return []byte(n.String()), nil }

// UnmarshalText parses text with Parse; empty text gives the zero Named.
func (n *Named) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*n = Named{}
		return nil
	}
	p, err := Parse(string(text))
	if err != nil {
		return err
	}
	*n = p
	return nil
}

// invalid is the one shape of every parse error.
func invalid(s, why string) error {
	return fmt.Errorf("%w: reference %q: %s", errdefs.ErrInvalidArgument, short(s), short(why))
}

// explain turns the library's terse errors into ones that say what to fix
// where it can tell.
func explain(s string, err error) string {
	name, dgst, hasDigest := strings.Cut(s, "@")
	if hasDigest {
		if _, derr := digest.Parse(dgst); derr != nil {
			return fmt.Sprintf("digest %q: %v", short(dgst), derr)
		}
	}
	// A tag is what follows the last ':' after the last '/'.
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		tag := name[i+1:]
		switch {
		case tag == "":
			return "empty tag after ':'"
		case len(tag) > maxTagLen && tagChars(tag):
			return fmt.Sprintf("tag is %d characters, at most %d are allowed", len(tag), maxTagLen)
		}
	}
	return err.Error()
}

// short keeps error messages readable for absurd inputs.
func short(s string) string {
	const max = 300
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// tagChars reports whether tag is made of the tag grammar's characters,
// [A-Za-z0-9_][A-Za-z0-9_.-]*, whatever its length.
func tagChars(tag string) bool {
	if tag == "" {
		return false
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		word := c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
		if !word && (i == 0 || (c != '.' && c != '-')) {
			return false
		}
	}
	return true
}
