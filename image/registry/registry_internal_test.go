package registry

import (
	"slices"
	"testing"

	"github.com/berth-dev/berth/image/reference"
)

func TestInsecure(t *testing.T) {
	c := New(Options{Insecure: []string{"reg.local:5000", "plain.example"}})
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "localhost": true, "localhost:80": true, "[::1]:5000": true, "127.3.4.5": true,
		"reg.local:5000": true, "reg.local:5001": false, "plain.example:443": true,
		"docker.io": false, "10.0.0.1:5000": false,
	} {
		if got := c.Insecure(host); got != want {
			t.Errorf("Insecure(%q) = %v, want %v", host, got, want)
		}
	}
	if registryHost("docker.io") != "registry-1.docker.io" {
		t.Error("docker.io endpoint")
	}
}

func TestContentRangeStart(t *testing.T) {
	for h, want := range map[string]int64{"bytes 100-199/200": 100, "bytes 0-9/*": 0, "bogus": -1, "bytes x-1/2": -1} {
		got, ok := contentRangeStart(h)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("%q: %d, want %d", h, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	if Backoff(100e6, 0) != 100e6 || Backoff(100e6, 3) != 800e6 || Backoff(100e6, 40) != maxBackoff {
		t.Error("backoff")
	}
}

// TestMirrorsOnlyForDockerHub: --registry-mirror is Docker Hub's alone.
func TestMirrorsOnlyForDockerHub(t *testing.T) {
	mirrors := []string{"http://127.0.0.1:5000/", "https://mirror.example.com/"}
	c := New(Options{Mirrors: mirrors})
	for ref, want := range map[string][]string{
		"busybox":                        mirrors,
		"docker.io/someone/app:1":        mirrors,
		"quay.io/someone/app:1":          nil,
		"127.0.0.1:5000/library/busybox": nil,
	} {
		if got := c.Mirrors(reference.MustParse(ref)); !slices.Equal(got, want) {
			t.Errorf("mirrors of %s: %v, want %v", ref, got, want)
		}
	}
}
