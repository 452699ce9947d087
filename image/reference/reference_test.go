package reference

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
)

const hex = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa"

// Cases as Docker (distribution/reference's normalize tests and `docker
// pull` behaviour) resolves them.
func TestParseValid(t *testing.T) {
	for _, c := range []struct {
		in                       string
		full, domain, path, tag  string
		dgst                     string
		familiar, familiarString string
	}{
		{"busybox", "docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", "", "busybox", "busybox:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "docker.io", "library/busybox", "1.36", "", "busybox", "busybox:1.36"},
		{"library/busybox", "docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", "", "busybox", "busybox:latest"},
		{"docker.io/busybox", "docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", "", "busybox", "busybox:latest"},
		{"docker.io/library/busybox:latest", "docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", "", "busybox", "busybox:latest"},
		{"index.docker.io/busybox", "docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", "", "busybox", "busybox:latest"},
		{"index.docker.io/user/img", "docker.io/user/img:latest", "docker.io", "user/img", "latest", "", "user/img", "user/img:latest"},
		{"user/img", "docker.io/user/img:latest", "docker.io", "user/img", "latest", "", "user/img", "user/img:latest"},
		{"docker.io/user/img:v1", "docker.io/user/img:v1", "docker.io", "user/img", "v1", "", "user/img", "user/img:v1"},
		{"docker.io/library/a/b", "docker.io/library/a/b:latest", "docker.io", "library/a/b", "latest", "", "library/a/b", "library/a/b:latest"},
		{"a/b/c/d", "docker.io/a/b/c/d:latest", "docker.io", "a/b/c/d", "latest", "", "a/b/c/d", "a/b/c/d:latest"},
		{"localhost/foo", "localhost/foo:latest", "localhost", "foo", "latest", "", "localhost/foo", "localhost/foo:latest"},
		{"localhost:5000/x", "localhost:5000/x:latest", "localhost:5000", "x", "latest", "", "localhost:5000/x", "localhost:5000/x:latest"},
		{"127.0.0.1:5000/a/b:tag", "127.0.0.1:5000/a/b:tag", "127.0.0.1:5000", "a/b", "tag", "", "127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:tag"},
		{"[::1]:5000/foo", "[::1]:5000/foo:latest", "[::1]:5000", "foo", "latest", "", "[::1]:5000/foo", "[::1]:5000/foo:latest"},
		{"example.com/foo/bar", "example.com/foo/bar:latest", "example.com", "foo/bar", "latest", "", "example.com/foo/bar", "example.com/foo/bar:latest"},
		{"registry.example.com:443/team/app:1.0-rc.1_x", "registry.example.com:443/team/app:1.0-rc.1_x", "registry.example.com:443", "team/app", "1.0-rc.1_x", "", "registry.example.com:443/team/app", "registry.example.com:443/team/app:1.0-rc.1_x"},
		{"gcr.io/distroless/static-debian12:nonroot", "gcr.io/distroless/static-debian12:nonroot", "gcr.io", "distroless/static-debian12", "nonroot", "", "gcr.io/distroless/static-debian12", "gcr.io/distroless/static-debian12:nonroot"},
		{"myregistry:5000/x", "myregistry:5000/x:latest", "myregistry:5000", "x", "latest", "", "myregistry:5000/x", "myregistry:5000/x:latest"},
		{"a__b/c.d-e", "docker.io/a__b/c.d-e:latest", "docker.io", "a__b/c.d-e", "latest", "", "a__b/c.d-e", "a__b/c.d-e:latest"},
		{"busybox:" + strings.Repeat("a", 128), "docker.io/library/busybox:" + strings.Repeat("a", 128), "docker.io", "library/busybox", strings.Repeat("a", 128), "", "busybox", "busybox:" + strings.Repeat("a", 128)},
		// Docker reads a lone "host:port" as an image "host" with a tag.
		{"localhost:5000", "docker.io/library/localhost:5000", "docker.io", "library/localhost", "5000", "", "localhost", "localhost:5000"},
		// By digest: no default tag.
		{"busybox@sha256:" + hex, "docker.io/library/busybox@sha256:" + hex, "docker.io", "library/busybox", "", "sha256:" + hex, "busybox", "busybox@sha256:" + hex},
		// Tag and digest: both kept, the digest identifies the content.
		{"busybox:1.36@sha256:" + hex, "docker.io/library/busybox:1.36@sha256:" + hex, "docker.io", "library/busybox", "1.36", "sha256:" + hex, "busybox", "busybox:1.36@sha256:" + hex},
		{"localhost:5000/x@sha256:" + hex, "localhost:5000/x@sha256:" + hex, "localhost:5000", "x", "", "sha256:" + hex, "localhost:5000/x", "localhost:5000/x@sha256:" + hex},
	} {
		t.Run(short(c.in)[:min(len(c.in), 60)], func(t *testing.T) {
			n, err := Parse(c.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", c.in, err)
			}
			got := []string{n.String(), n.Domain(), n.Path(), n.Tag(), string(n.Digest()), Familiar(n), FamiliarString(n)}
			want := []string{c.full, c.domain, c.path, c.tag, c.dgst, c.familiar, c.familiarString}
			names := []string{"String", "Domain", "Path", "Tag", "Digest", "Familiar", "FamiliarString"}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s(%q) = %q, want %q", names[i], c.in, got[i], want[i])
				}
			}
			if n.Name() != c.domain+"/"+c.path {
				t.Errorf("Name = %q", n.Name())
			}
			// The full and familiar forms parse back to the same value.
			for _, s := range []string{n.String(), FamiliarString(n)} {
				if again, err := Parse(s); err != nil || again != n {
					t.Errorf("Parse(%q) = %v, %v; want %v", s, again, err, n)
				}
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	for _, c := range []struct {
		in, why string // why: a fragment the error must contain
	}{
		{"", "empty reference"},
		{"Busybox", "must be lowercase"},
		{"user/Img", "must be lowercase"},
		{"busybox:", "empty tag"},
		{"busybox:" + strings.Repeat("a", 129), "at most 128"},
		{"busybox:-tag", "invalid reference format"},
		{"busybox@sha256:abc", "invalid checksum digest length"},
		{"busybox@sha256:" + strings.Repeat("g", 64), "invalid checksum digest format"},
		{"busybox@sha256:" + strings.ToUpper(hex), "digest"},
		{"busybox@md5:0123456789abcdef0123456789abcdef", "unsupported digest algorithm"},
		{"busybox@", "digest"},
		{hex, "cannot specify 64-byte hexadecimal strings"},
		{"-busybox", "invalid reference format"},
		{"busybox-", "invalid reference format"},
		{"bu..sybox", "invalid reference format"},
		{"a//b", "invalid reference format"},
		{"/busybox", "invalid reference format"},
		{"busybox/", "invalid reference format"},
		{" busybox", "invalid reference format"},
		{"http://docker.io/busybox", "invalid reference format"},
		{"busybox:a:b", "invalid reference format"},
		{"@sha256:" + hex, "invalid reference format"},
		{"docker.io/" + strings.Repeat("a/", 128) + "a", "must not be more than 255 characters"},
	} {
		t.Run(short(c.in)[:min(len(c.in), 60)], func(t *testing.T) {
			n, err := Parse(c.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", c.in, n)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %v is not ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), c.why) {
				t.Errorf("error %q does not say %q", err, c.why)
			}
			if !strings.Contains(err.Error(), short(c.in)) && c.in != "" {
				t.Errorf("error %q does not name the input", err)
			}
			if !n.IsZero() {
				t.Errorf("got a non-zero Named %v with the error", n)
			}
		})
	}
}

func TestErrorTruncatesHugeInput(t *testing.T) {
	_, err := Parse(strings.Repeat("A", 1<<20))
	if err == nil || len(err.Error()) > 1000 {
		t.Fatalf("error for a 1 MiB input is %d bytes", len(err.Error()))
	}
}

func TestWithTagAndDigest(t *testing.T) {
	n := MustParse("busybox:1.36@sha256:" + hex)
	tagged, err := WithTag(n, "musl")
	if err != nil || tagged.String() != "docker.io/library/busybox:musl" {
		t.Fatalf("WithTag = %v, %v", tagged, err)
	}
	for _, bad := range []string{"", "-x", "a b", strings.Repeat("a", 129), "a:b"} {
		if _, err := WithTag(n, bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("WithTag(%q) error = %v", bad, err)
		}
	}
	d := digest.FromString("x")
	pinned, err := WithDigest(MustParse("busybox"), d)
	if err != nil || pinned.String() != "docker.io/library/busybox:latest@"+string(d) {
		t.Fatalf("WithDigest = %v, %v", pinned, err)
	}
	if _, err := WithDigest(n, "sha256:nope"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("WithDigest(bad) error = %v", err)
	}
	if _, err := WithTag(Named{}, "x"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("WithTag(zero) error = %v", err)
	}
}

func TestZero(t *testing.T) {
	var z Named
	if !z.IsZero() || z.String() != "" || Familiar(z) != "" || FamiliarString(z) != "" || z.Name() != "" {
		t.Fatalf("zero Named renders as %q/%q", z.String(), Familiar(z))
	}
}

func TestJSON(t *testing.T) {
	type rec struct {
		Ref Named `json:"ref"`
	}
	in := rec{MustParse("localhost:5000/a/b:tag")}
	b, err := json.Marshal(in)
	if err != nil || string(b) != `{"ref":"localhost:5000/a/b:tag"}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var out rec
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("Unmarshal = %v, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"ref":"Bad"}`), &out); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Unmarshal(bad) error = %v", err)
	}
	if err := json.Unmarshal([]byte(`{"ref":""}`), &out); err != nil || !out.Ref.IsZero() {
		t.Fatalf("Unmarshal(empty) = %v, %v", out, err)
	}
}

func TestMapKey(t *testing.T) {
	m := map[Named]int{MustParse("busybox"): 1}
	if m[MustParse("docker.io/library/busybox:latest")] != 1 {
		t.Fatal("equal references are not equal map keys")
	}
}
