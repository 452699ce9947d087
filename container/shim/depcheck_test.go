package shim_test

import (
	"os/exec"
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
