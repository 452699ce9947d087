package names

import (
	"regexp"
	"strings"
	"testing"

	"github.com/berth-dev/berth/errdefs"
)

func TestGenerateShape(t *testing.T) {
	shape := regexp.MustCompile(`^[a-z]+_[a-z]+[0-9]*$`)
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		n := Generate(nil)
		if !shape.MatchString(n) {
			t.Fatalf("generated %q, not adjective_surname", n)
		}
		if _, err := Validate(n); err != nil {
			t.Fatalf("generated name %q is not valid: %v", n, err)
		}
		seen[n] = true
	}
	if len(seen) < 100 {
		t.Fatalf("only %d distinct names in 200: not random enough", len(seen))
	}
}

func TestGenerateAvoidsNamesInUse(t *testing.T) {
	used := map[string]bool{}
	// Take every plain name: Generate must fall back to numbered ones.
	for _, a := range adjectives {
		for _, s := range surnames {
			used[a+"_"+s] = true
		}
	}
	for i := 0; i < 50; i++ {
		n := Generate(func(name string) bool { return used[name] })
		if used[n] {
			t.Fatalf("Generate returned %q, which is in use", n)
		}
		if strings.TrimRight(n, "0123456789") == n {
			t.Fatalf("Generate returned %q without a numeric suffix while all plain names are taken", n)
		}
		used[n] = true
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"web", "/web", true},
		{"/web", "/web", true},
		{"a1", "/a1", true},
		{"my_app.v2-x", "/my_app.v2-x", true},
		{"9lives", "/9lives", true},
		{"a", "", false}, // Docker needs two characters at least
		{"", "", false},
		{"bad/x", "", false},
		{"_x", "", false},
		{"-x", "", false},
		{"//x", "", false},
		{"x y", "", false},
		{"ünï", "", false},
	} {
		got, err := Validate(tc.in)
		if tc.ok {
			if err != nil || got != tc.want {
				t.Errorf("Validate(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("Validate(%q) accepted it", tc.in)
			continue
		}
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("Validate(%q): %v is not InvalidArgument", tc.in, err)
		}
		// dockerd: Invalid container name (bad/x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed
		want := "Invalid container name (" + tc.in + "), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
		if !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Validate(%q) error %q, want dockerd's %q", tc.in, err, want)
		}
	}
}
