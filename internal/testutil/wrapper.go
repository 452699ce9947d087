package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil/fixture"
)

// RuntimeWrapper writes dir/berth-runtime, a script that logs each
// invocation's arguments and execs bin/berth-runtime: hand it to a runc
// consumer (containerd, podman, dockerd) to prove berth-runtime really ran.
type RuntimeWrapper struct {
	Path string // the script
	log  string
}

// NewRuntimeWrapper creates the wrapper in dir.
func NewRuntimeWrapper(t testing.TB, dir string) *RuntimeWrapper {
	t.Helper()
	runtime, err := fixture.BerthRuntimePath()
	if err != nil {
		t.Fatal(err)
	}
	w := &RuntimeWrapper{Path: filepath.Join(dir, "berth-runtime"), log: filepath.Join(dir, "runtime.log")}
	script := "#!/bin/sh\necho \"$*\" >> " + w.log + "\nexec " + runtime + " \"$@\"\n"
	if err := os.WriteFile(w.Path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

// RequireCalls fails t unless berth-runtime ran each of the commands.
func (w *RuntimeWrapper) RequireCalls(t testing.TB, cmds ...string) {
	t.Helper()
	b, err := os.ReadFile(w.log)
	if err != nil {
		t.Fatalf("berth-runtime was never called: %v", err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		// Global flags may come first ("--root X --log Y --log-format json create ..."):
		// the command is the first word that is neither a flag nor a flag's value.
		f := strings.Fields(line)
		for i := 0; i < len(f); i++ {
			if strings.HasPrefix(f[i], "-") {
				if !strings.Contains(f[i], "=") && i+1 < len(f) && globalFlagTakesValue(f[i]) {
					i++
				}
				continue
			}
			seen[f[i]] = true
			break
		}
	}
	for _, c := range cmds {
		if !seen[c] {
			t.Errorf("berth-runtime never ran %q; calls:\n%s", c, b)
		}
	}
}

func globalFlagTakesValue(flag string) bool {
	switch strings.TrimLeft(flag, "-") {
	case "root", "log", "log-format", "criu", "rootless":
		return true
	}
	return false
}

// RemoveCgroupTree removes the cgroup directory parent (a path below the
// hierarchy roots, "/name") and everything below it, deepest first, in
// every v1 hierarchy and the unified one.
func RemoveCgroupTree(parent string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + parent)
	dirs = append(dirs, "/sys/fs/cgroup"+parent)
	for _, d := range dirs {
		var all []string
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				all = append(all, p)
			}
			return nil
		})
		for i := len(all) - 1; i >= 0; i-- {
			os.Remove(all[i])
		}
	}
}
