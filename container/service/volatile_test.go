package service

import (
	"slices"
	"testing"

	"github.com/berth-dev/berth/snapshot"
)

func TestKernelAtLeast(t *testing.T) {
	for _, c := range []struct {
		release string
		want    bool
	}{
		{"6.1.0-13-amd64", true},
		{"5.10.0", true},
		{"5.10-rc1", true},
		{"5.9.16", false},
		{"4.19.0-25-amd64", false},
		{"garbage", false},
	} {
		if got := kernelAtLeast(c.release, 5, 10); got != c.want {
			t.Errorf("kernelAtLeast(%q, 5, 10) = %v, want %v", c.release, got, c.want)
		}
	}
}

func TestVolatileUpper(t *testing.T) {
	if !volatileSupported() {
		t.Skip("kernel older than 5.10: no overlayfs volatile")
	}
	in := []snapshot.Mount{
		{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/a", "upperdir=/u", "workdir=/w"}},
		{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/a:/b"}}, // read-only: no upper
		{Type: "bind", Source: "/x", Options: []string{"rbind"}},
	}
	out := volatileUpper(in)
	if !slices.Contains(out[0].Options, "volatile") {
		t.Errorf("writable overlay options %v lack volatile", out[0].Options)
	}
	if slices.Contains(out[1].Options, "volatile") || slices.Contains(out[2].Options, "volatile") {
		t.Errorf("volatile added to a mount without an upper dir: %v", out)
	}
	if slices.Contains(in[0].Options, "volatile") {
		t.Errorf("input mounts modified: %v", in[0].Options)
	}
}
