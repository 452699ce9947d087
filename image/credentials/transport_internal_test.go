package credentials

import (
	"maps"
	"testing"

	"github.com/berth-dev/berth/errdefs"
)

func TestParseChallenge(t *testing.T) {
	for h, want := range map[string]map[string]string{
		`Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"`: {
			"realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a/b:pull,push",
		},
		`Basic realm="Registry Realm"`:        {"realm": "Registry Realm"},
		`Bearer realm=https://x/t, service=y`: {"realm": "https://x/t", "service": "y"},
	} {
		_, got := parseChallenge(h)
		if !maps.Equal(got, want) {
			t.Errorf("parseChallenge(%q) = %v, want %v", h, got, want)
		}
	}
	if s, _ := parseChallenge(`Bearer realm="x"`); s != "bearer" {
		t.Errorf("scheme %q", s)
	}
}

func TestCheckRealm(t *testing.T) {
	for _, ok := range []string{"https://auth.docker.io/token", "http://127.0.0.1:4000/token", "http://10.1.2.3/token"} {
		if err := checkRealm(ok, "registry.example"); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	if err := checkRealm("http://169.254.169.254/latest/meta-data", "registry.example"); !errdefs.IsPermissionDenied(err) {
		t.Errorf("metadata realm: %v", err)
	}
	if err := checkRealm("file:///etc/passwd", "registry.example"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("file realm: %v", err)
	}
}
