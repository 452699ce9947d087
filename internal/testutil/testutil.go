// Package testutil is Berth's shared test support: busybox root
// filesystems, OCI bundles, per-test runtime state, a runner for the
// berth-runtime binary, leak checks and root requirements. Every package's
// tests and test/e2e use it.
//
// The builders themselves live in package fixture, which does not import
// package testing (the benchmark uses it); this package wraps them with
// *testing.T helpers that fail the test on error and clean up after it.
package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/internal/testutil/fixture"
)

// RequireRoot skips the test when not running as root, except under CI
// (CI=true), where root tests must never skip: there it fails instead.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		t.Fatal("test needs root, and CI runs as root: refusing to skip")
	}
	t.Skip("test needs root")
}

// InCI reports whether the environment says this is a CI run (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" || os.Getenv("CI") == "1" }

var (
	markers   sync.Map // testing.TB -> string
	nameCount sync.Map // testing.TB -> *int64-ish counter guarded by mu
	nameMu    sync.Mutex
	unsafeRe  = regexp.MustCompile(`[^a-zA-Z0-9]+`)
)

// Marker returns a string unique to this test and this run,
// "berth-test-<test>-<random>", that LeakCheck uses to attribute cgroups,
// mounts and netns to the test.
func Marker(t testing.TB) string {
	if m, ok := markers.Load(t); ok {
		return m.(string)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.ToLower(unsafeRe.ReplaceAllString(t.Name(), ""))
	if len(name) > 20 {
		name = name[len(name)-20:]
	}
	m, loaded := markers.LoadOrStore(t, fixture.MarkerPrefix+name+"-"+hex.EncodeToString(b[:]))
	if !loaded {
		t.Cleanup(func() { markers.Delete(t); nameCount.Delete(t) })
	}
	return m.(string)
}

// UniqueName returns a new name, unique to this call, that starts with the
// test's Marker. Use it for container ids, cgroup paths, netns and
// interface-free names so LeakCheck can find what the test left behind.
func UniqueName(t testing.TB) string {
	m := Marker(t)
	nameMu.Lock()
	defer nameMu.Unlock()
	v, _ := nameCount.LoadOrStore(t, new(int))
	n := v.(*int)
	*n++
	return fmt.Sprintf("%s-%d", m, *n)
}

// BusyboxRootfs returns a private busybox root filesystem (a fresh copy of
// the per-machine cache) in a temp dir removed after the test.
func BusyboxRootfs(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := fixture.NewBusyboxRootfs(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// BusyboxRootfsShared returns the shared cached busybox root filesystem.
// Never modify it: use it only for containers with a read-only rootfs.
func BusyboxRootfsShared(t testing.TB) string {
	t.Helper()
	dir, err := fixture.BusyboxRootfsCache()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// StateRoot returns a temp dir to pass as the runtime's --root; it is
// removed after the test.
func StateRoot(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir())
}
