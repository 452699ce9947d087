// Package runtime_test guards the runtime's dependency diet: berth-runtime
// starts once per container operation, so it must not link the engine,
// an HTTP stack or anything else it does not use.
package runtime_test

import (
	"os/exec"
	"strings"
	"testing"
)

// allowed are the only non-standard-library packages berth-runtime may link.
var allowed = []string{
	"github.com/berth-dev/berth/runtime/",
	"github.com/berth-dev/berth/cmd/berth-runtime",
	"github.com/berth-dev/berth/internal/replace", // one function on x/sys
	"github.com/opencontainers/runtime-spec/",
	"golang.org/x/sys/",
	"github.com/seccomp/libseccomp-golang",
	"github.com/cyphar/filepath-securejoin/",
}

// forbiddenStd are standard packages that mean something heavy crept in.
var forbiddenStd = []string{"net/http", "net", "crypto/tls", "html/template", "text/template", "database/sql"}

func TestRuntimeDependencies(t *testing.T) {
	for _, pkg := range []string{"github.com/berth-dev/berth/cmd/berth-runtime", "github.com/berth-dev/berth/runtime/..."} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if !strings.Contains(strings.SplitN(dep, "/", 2)[0], ".") {
				for _, f := range forbiddenStd {
					if dep == f {
						t.Errorf("%s links %s", pkg, dep)
					}
				}
				continue
			}
			ok := false
			for _, a := range allowed {
				if strings.HasPrefix(dep, a) || dep == strings.TrimSuffix(a, "/") {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s links %s, which the runtime must not depend on", pkg, dep)
			}
		}
	}
}
