package seccomp

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestCompileCached: the cached program is the compiled one; an entry is
// what a later call loads (so a config compiles once); a damaged entry or
// another salt compiles again.
func TestCompileCached(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	c := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"read", "write", "exit_group", "no_such_syscall"}, Action: specs.ActAllow}},
	}
	want, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := CompileCached(c, dir, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("first compile differs from Compile's: %+v vs %+v", got, want)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("cache holds %d entries, want 1", len(ents))
	}
	entry := filepath.Join(dir, ents[0].Name())

	// Plant another (valid) program under the entry: a hit returns it.
	other, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := other.MarshalBinary()
	if err := os.WriteFile(entry, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := CompileCached(c, dir, "v1"); !reflect.DeepEqual(got.prog, other.prog) {
		t.Fatal("a second compile of the same config did not use the cache")
	}
	// Another salt (a new runtime version) never uses it.
	if got, _ := CompileCached(c, dir, "v2"); !reflect.DeepEqual(got, want) {
		t.Fatal("another salt used the old entry")
	}
	// A damaged entry is compiled again and replaced.
	if err := os.WriteFile(entry, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := CompileCached(c, dir, "v1"); !reflect.DeepEqual(got, want) {
		t.Fatal("a damaged entry was not compiled again")
	}
	if b, _ := os.ReadFile(entry); string(b) == "{garbage" {
		t.Fatal("the damaged entry was not replaced")
	}
	if len(want.Skipped) != 1 {
		t.Fatalf("skipped syscalls %v, want no_such_syscall", want.Skipped)
	}
}
