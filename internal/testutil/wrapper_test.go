package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeT records failures instead of failing the real test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Errorf(string, ...any) { f.failed = true }
func (f *fakeT) Fatalf(string, ...any) { f.failed = true }

func TestRuntimeWrapperRequireCalls(t *testing.T) {
	dir := t.TempDir()
	w := &RuntimeWrapper{log: filepath.Join(dir, "runtime.log")}
	log := "--root /run/x --log /tmp/l --log-format json create --bundle /b id1\nstart id1\n--root=/r kill id1 9\n"
	if err := os.WriteFile(w.log, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	ok := &fakeT{TB: t}
	w.RequireCalls(ok, "create", "start", "kill")
	if ok.failed {
		t.Error("create, start and kill were called but RequireCalls failed")
	}
	missing := &fakeT{TB: t}
	w.RequireCalls(missing, "delete")
	if !missing.failed {
		t.Error("delete was never called but RequireCalls passed")
	}
	notCmd := &fakeT{TB: t}
	w.RequireCalls(notCmd, "json")
	if !notCmd.failed {
		t.Error("a flag's value was taken for a command")
	}
}
