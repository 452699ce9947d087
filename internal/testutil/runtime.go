package testutil

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil/fixture"
)

// Runtime runs a runtime binary with --root set to the test's own state
// dir. It embeds fixture.Runner (Run, RunContext, State, WaitStatus, List,
// Cleanup).
type Runtime struct {
	*fixture.Runner
	t testing.TB
}

// NewRuntime returns a Runtime for the berth-runtime binary ($BERTH_RUNTIME
// or bin/berth-runtime at the module root) with a fresh StateRoot. When the
// binary is missing it skips the test, or fails it under CI. After the test
// it force-deletes whatever containers are still listed.
func NewRuntime(t testing.TB) *Runtime {
	t.Helper()
	bin, err := fixture.BerthRuntimePath()
	if err != nil {
		if InCI() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return RuntimeFor(t, bin)
}

// RuntimeFor is NewRuntime for another runc-compatible binary (e.g. "runc",
// "crun"), with its own StateRoot.
func RuntimeFor(t testing.TB, binary string) *Runtime {
	t.Helper()
	r := &Runtime{Runner: &fixture.Runner{Binary: binary, Root: StateRoot(t)}, t: t}
	t.Cleanup(func() { _ = r.Cleanup() })
	return r
}

// RequireCrun prepares the host for crun (see fixture.EnsureHugetlbHierarchy)
// and returns a Runtime for it.
func RequireCrun(t testing.TB) *Runtime {
	t.Helper()
	RequireRoot(t)
	if err := fixture.EnsureHugetlbHierarchy(); err != nil {
		t.Fatal(err)
	}
	return RuntimeFor(t, "crun")
}

// MustRun is Run that fails the test on error and returns stdout.
func (r *Runtime) MustRun(args ...string) string {
	r.t.Helper()
	out, _, err := r.Run(args...)
	if err != nil {
		r.t.Fatalf("%s %s: %v", r.Binary, strings.Join(args, " "), err)
	}
	return out
}
