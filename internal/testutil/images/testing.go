package images

import "testing"

// Busybox returns the cached single-platform busybox image (OCI layout and
// docker-archive), failing the test when it cannot be built. Read-only.
func Busybox(t testing.TB) *Image {
	t.Helper()
	img, err := CachedBusybox(BusyboxOptions{})
	if err != nil {
		t.Fatalf("busybox image: %v", err)
	}
	return img
}

// BusyboxIndex returns the cached multi-platform busybox image: an OCI
// layout whose index.json names an image index with linux/amd64 and
// linux/arm64/v8 manifests. Read-only.
func BusyboxIndex(t testing.TB) *Image {
	t.Helper()
	img, err := CachedBusybox(BusyboxOptions{MultiPlatform: true})
	if err != nil {
		t.Fatalf("busybox index image: %v", err)
	}
	return img
}

// Scratch returns the cached FROM-scratch image around the static binary
// at binPath (e.g. bin/berth-whoami). Read-only.
func Scratch(t testing.TB, binPath string) *Image {
	t.Helper()
	img, err := CachedScratch(binPath)
	if err != nil {
		t.Fatalf("scratch image: %v", err)
	}
	return img
}

// Generated returns the cached generated image for spec, with its expected
// Tree. Read-only.
func Generated(t testing.TB, spec Spec) *Image {
	t.Helper()
	img, err := CachedGenerated(spec)
	if err != nil {
		t.Fatalf("generated image: %v", err)
	}
	return img
}
