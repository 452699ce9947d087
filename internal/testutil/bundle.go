package testutil

import (
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testutil/fixture"
)

// Bundle is an OCI bundle on disk; see fixture.Bundle.
type Bundle = fixture.Bundle

// Option changes a bundle before it is written; see fixture.Option.
type Option = fixture.Option

// Bundle options, re-exported from package fixture.
var (
	WithArgs           = fixture.WithArgs
	WithEnv            = fixture.WithEnv
	WithNamespaces     = fixture.WithNamespaces
	WithMemoryLimit    = fixture.WithMemoryLimit
	WithPidsLimit      = fixture.WithPidsLimit
	WithUser           = fixture.WithUser
	WithCgroupsPath    = fixture.WithCgroupsPath
	WithHostname       = fixture.WithHostname
	WithRootfs         = fixture.WithRootfs
	WithReadonlyRootfs = fixture.WithReadonlyRootfs
	WithSpec           = fixture.WithSpec
)

// DefaultSpec returns the default bundle spec (runc spec with terminal
// false and a writable root); see fixture.DefaultSpec.
func DefaultSpec() *specs.Spec { return fixture.DefaultSpec() }

// NewBundle writes a bundle in a temp dir removed after the test: a private
// busybox rootfs/ and config.json from DefaultSpec, with linux.cgroupsPath
// set to "/"+UniqueName(t) (so LeakCheck can see a leaked cgroup), then opts
// applied in order.
func NewBundle(t testing.TB, opts ...Option) *Bundle {
	t.Helper()
	all := append([]Option{WithCgroupsPath("/" + UniqueName(t))}, opts...)
	b, err := fixture.NewBundle(filepath.Join(t.TempDir(), "bundle"), all...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
