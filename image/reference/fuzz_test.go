package reference

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/errdefs"
)

// FuzzParse checks that Parse never panics, that every error is an
// ErrInvalidArgument, and that every accepted reference is stable: its full
// and familiar forms parse back to the same value.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"busybox", "user/img:1", "localhost:5000/x", "127.0.0.1:5000/a/b:tag",
		"[::1]:5000/foo", "busybox@sha256:" + hex, "busybox:1@sha256:" + hex,
		"index.docker.io/library/x", "docker.io/library/a/b", "Busybox", "",
		"a:b:c", "busybox:" + strings.Repeat("a", 129),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("Parse(%q) error %v is not ErrInvalidArgument", s, err)
			}
			if !n.IsZero() {
				t.Fatalf("Parse(%q) returned %v with an error", s, n)
			}
			return
		}
		if n.Domain() == "" || n.Path() == "" || (n.Tag() == "" && n.Digest() == "") {
			t.Fatalf("Parse(%q) = %#v: missing a part", s, n)
		}
		for _, form := range []string{n.String(), FamiliarString(n)} {
			again, err := Parse(form)
			if err != nil || again != n {
				t.Fatalf("Parse(%q) = %v; its form %q parses to %v, %v", s, n, form, again, err)
			}
		}
	})
}
