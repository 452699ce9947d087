package build_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// goToolchainContext is a build context holding the host's Go
// installation as go/ (hard links, or copies across file systems), with
// a .dockerignore that leaves out Go's own tests.
func goToolchainContext(t *testing.T) string {
	t.Helper()
	goroot := runtime.GOROOT()
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		goroot = strings.TrimSpace(string(out))
	}
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-al", goroot, filepath.Join(dir, "go")).CombinedOutput(); err != nil {
		if out, err := exec.Command("cp", "-a", goroot, filepath.Join(dir, "go")).CombinedOutput(); err != nil {
			t.Fatalf("copy GOROOT: %v\n%s", err, out)
		}
		_ = out
	}
	writeContextFile(t, dir, ".dockerignore", "go/test\ngo/doc\ngo/api\ngo/misc\ngo/**/testdata\ngo/**/*_test.go\ngo/pkg/tool/*/api\n")
	writeContextFile(t, dir, "Dockerfile", "FROM busybox\nCOPY go /usr/local/go\nENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin GOTOOLCHAIN=local GOCACHE=/root/.cache/go-build CGO_ENABLED=0\n")
	return dir
}

// TestBuildGoMultiStage is a realistic build: a Go program compiled in
// a toolchain image (made from the host's Go) with a cache mount for
// Go's build cache, copied into a scratch image.
func TestBuildGoMultiStage(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a Go program in a container (-short)")
	}
	d := withBusybox(t)
	tool := goToolchainContext(t)
	start := time.Now()
	// The toolchain image, through our CLI (.dockerignore applied there).
	if out, code := berthCLI(t, d, nil, "build", "-q", "-t", "gotool", tool); code != 0 {
		t.Fatalf("toolchain image: exit %d\n%s", code, out)
	}
	t.Logf("toolchain image: %v", time.Since(start))
	goVersion := strings.TrimPrefix(runtime.Version(), "go")
	if i := strings.IndexAny(goVersion, " -"); i > 0 {
		goVersion = goVersion[:i]
	}
	dir := writeContext(t, map[string]string{
		"go.mod":  "module example.com/hello\n\ngo " + goVersion + "\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello from scratch\") }\n",
		"Dockerfile": `FROM gotool AS build
WORKDIR /src
COPY go.mod main.go ./
RUN --mount=type=cache,target=/root/.cache/go-build go build -trimpath -o /out/hello .
FROM scratch
COPY --from=build /out/hello /hello
ENTRYPOINT ["/hello"]
`,
	})
	build := func(tag string) time.Duration {
		t.Helper()
		start := time.Now()
		out, code := docker(t, d, "build", "-t", tag, dir)
		if code != 0 {
			t.Fatalf("build %s: exit %d\n%s", tag, code, out)
		}
		return time.Since(start)
	}
	cold := build("hello:1")
	if got := d.Must(t, "run", "--rm", "hello:1"); got != "hello from scratch\n" {
		t.Errorf("run: %q", got)
	}
	if n := len(inspect(t, d, "hello:1").RootFS.Layers); n != 1 {
		t.Errorf("scratch image has %d layers, want 1", n)
	}
	warm := build("hello:2")
	writeContextFile(t, dir, "main.go", "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"changed\") }\n")
	touched := build("hello:3")
	if got := d.Must(t, "run", "--rm", "hello:3"); got != "changed\n" {
		t.Errorf("run after the change: %q", got)
	}
	t.Logf("Go multi-stage build: cold %v, warm %v, after touching main.go %v", cold, warm, touched)
	if warm > cold {
		t.Errorf("the fully cached build (%v) took longer than the cold one (%v)", warm, cold)
	}
	// The Go build cache lived on in the cache mount: the rebuild after
	// the change compiled main.go only, not the standard library again.
	if touched > cold/2 {
		t.Errorf("the rebuild after touching main.go took %v, the cold build %v: the cache mount did not keep Go's build cache", touched, cold)
	}
}
