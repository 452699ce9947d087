package shim_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The shim runs once per container: it must not link the engine, an HTTP
// stack, package net (its resolver brings cgo and libc) or anything else
// it does not use.
func TestShimDependencies(t *testing.T) {
	allowed := []string{
		"github.com/berth-dev/berth/cmd/berth-shim",
		"github.com/berth-dev/berth/container/shim",
		"github.com/berth-dev/berth/container/logs",
		"github.com/berth-dev/berth/internal/replace",
		"golang.org/x/sys/",
	}
	forbidden := []string{"net", "net/http", "crypto/tls", "os/user", "runtime/cgo", "text/template", "html/template"}
	out, err := exec.Command("go", "list", "-deps", "github.com/berth-dev/berth/cmd/berth-shim").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if !strings.Contains(strings.SplitN(dep, "/", 2)[0], ".") {
			for _, f := range forbidden {
				if dep == f {
					t.Errorf("berth-shim links %s", dep)
				}
			}
			continue
		}
		ok := false
		for _, a := range allowed {
			if dep == a || strings.HasPrefix(dep, a) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("berth-shim links %s, which it must not depend on", dep)
		}
	}
}

// Packages imported for one small thing can still link their machinery:
// the built shim must not contain encoding/json's or fmt's encoders and
// decoders (their code and tables were a third of the executable, whose
// pages every running shim maps).
func TestShimBinaryHasNoReflectiveCodecs(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "berth-shim")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/berth-dev/berth/cmd/berth-shim").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	forbidden := []string{"fmt.(*pp)", "fmt.Fprintf", "fmt.Sprintf", "fmt.Errorf", "encoding/json.(*encodeState)", "encoding/json.(*decodeState)",
		"encoding/json.Marshal", "encoding/json.Unmarshal", "reflect.Value.Call", "bufio."}
	symbols := 0
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		symbols++
		name := f[len(f)-1]
		for _, bad := range forbidden {
			if strings.HasPrefix(name, bad) {
				t.Errorf("berth-shim links %s", name)
			}
		}
	}
	if symbols < 1000 {
		t.Fatalf("go tool nm listed %d symbols: not a Go binary's table?", symbols)
	}
}
