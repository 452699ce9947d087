package build_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const basicDockerfile = `FROM busybox
ARG GREETING=hello
ENV APP=/app
WORKDIR $APP
COPY hello.txt ./
COPY sub/ ./sub/
RUN echo "$GREETING from run" > run.txt && cat hello.txt
LABEL org.example.k=v
ARG UDP=53/udp
EXPOSE 8080 $UDP
VOLUME /data
STOPSIGNAL SIGUSR1
CMD ["cat", "/app/run.txt"]
`

func TestBuildDockerCLI(t *testing.T) {
	d := withBusybox(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile": basicDockerfile,
		"hello.txt":  "hello file\n",
		"sub/a.txt":  "a\n",
	})
	out, code := docker(t, d, "build", "-t", "basic:1", "-t", "basic:2", dir)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s", code, out)
	}
	for _, want := range []string{"Step 1/13 : FROM busybox", "hello file", "Successfully built", "Successfully tagged basic:1", "Successfully tagged basic:2"} {
		if !strings.Contains(out, want) {
			t.Errorf("build output lacks %q:\n%s", want, out)
		}
	}
	// The steps' images are intermediate: hidden from `docker images`
	// unless -a, as Docker shows a classic build's.
	if ls := d.Must(t, "images", "--format", "{{.Repository}}:{{.Tag}}"); strings.Contains(ls, "<none>") {
		t.Errorf("docker images shows intermediate images:\n%s", ls)
	}
	if ls := d.Must(t, "images", "-a", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(ls, "<none>:<none>") {
		t.Errorf("docker images -a lacks the build's intermediate images:\n%s", ls)
	}
	if got := d.Must(t, "run", "--rm", "basic:1"); got != "hello from run\n" {
		t.Errorf("run: %q", got)
	}
	if got := d.Must(t, "run", "--rm", "basic:2", "cat", "/app/hello.txt", "/app/sub/a.txt"); got != "hello file\na\n" {
		t.Errorf("copied files: %q", got)
	}
	img := inspect(t, d, "basic:1")
	if !slices.Contains(img.Config.Env, "APP=/app") || img.Config.WorkingDir != "/app" ||
		img.Config.Labels["org.example.k"] != "v" || img.Config.StopSignal != "SIGUSR1" {
		t.Errorf("config: %+v", img.Config)
	}
	if _, ok := img.Config.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("exposed ports: %v", img.Config.ExposedPorts)
	}
	if _, ok := img.Config.ExposedPorts["53/udp"]; !ok {
		t.Errorf("exposed ports: %v", img.Config.ExposedPorts)
	}
	if _, ok := img.Config.Volumes["/data"]; !ok {
		t.Errorf("volumes: %v", img.Config.Volumes)
	}
	base := inspect(t, d, "busybox")
	// Three layer steps: two COPY and one RUN.
	if len(img.RootFS.Layers) != len(base.RootFS.Layers)+3 {
		t.Errorf("layers: %d on a base of %d", len(img.RootFS.Layers), len(base.RootFS.Layers))
	}
	hist := d.Must(t, "history", "--no-trunc", "--format", "{{.CreatedBy}}", "basic:1")
	for _, want := range []string{"|1 GREETING=hello /bin/sh -c echo", "#(nop)  ENV APP=/app", "#(nop)  CMD"} {
		if !strings.Contains(hist, want) {
			t.Errorf("history lacks %q:\n%s", want, hist)
		}
	}
	// The mount points of the RUN container are not in its layer.
	if got := d.Must(t, "run", "--rm", "basic:1", "sh", "-c", "ls -a /app"); strings.Contains(got, "hosts") {
		t.Errorf("/app: %q", got)
	}
	// save accepts the image.
	tarPath := filepath.Join(t.TempDir(), "basic.tar")
	d.Must(t, "save", "-o", tarPath, "basic:1")
	if fi, err := os.Stat(tarPath); err != nil || fi.Size() == 0 {
		t.Errorf("save: %v", err)
	}

	// Fully cached: every layer step reused, the same image.
	out, code = docker(t, d, "build", "-t", "basic:1", dir)
	if code != 0 {
		t.Fatalf("cached build: exit %d\n%s", code, out)
	}
	if n := strings.Count(out, "Using cache"); n != 3 {
		t.Errorf("cached build used the cache %d times, want 3:\n%s", n, out)
	}
	if strings.Contains(out, "hello file") {
		t.Errorf("cached build ran RUN again:\n%s", out)
	}
	if id := inspect(t, d, "basic:1").ID; id != img.ID {
		t.Errorf("cached build made %s, first %s", id, img.ID)
	}

	// A touched file with the same content keeps the cache; a changed
	// one invalidates the steps that read it and those after only.
	if err := os.WriteFile(filepath.Join(dir, "sub/a.txt"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ = docker(t, d, "build", dir)
	if n := strings.Count(out, "Using cache"); n != 3 {
		t.Errorf("rewritten unchanged file: cache used %d times, want 3:\n%s", n, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub/a.txt"), []byte("b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = docker(t, d, "build", "-t", "basic:3", dir)
	if code != 0 || strings.Count(out, "Using cache") != 1 || !strings.Contains(out, "hello file") {
		t.Errorf("changed file: exit %d, want the first COPY cached only:\n%s", code, out)
	}
	if got := d.Must(t, "run", "--rm", "basic:3", "cat", "/app/sub/a.txt"); got != "b\n" {
		t.Errorf("rebuilt copy: %q", got)
	}

	// --build-arg changes the RUN, --no-cache reuses nothing.
	out, code = docker(t, d, "build", "--build-arg", "GREETING=hi", "-t", "basic:4", dir)
	if code != 0 || strings.Count(out, "Using cache") != 2 {
		t.Errorf("build-arg: exit %d:\n%s", code, out)
	}
	if got := d.Must(t, "run", "--rm", "basic:4"); got != "hi from run\n" {
		t.Errorf("build-arg run: %q", got)
	}
	out, code = docker(t, d, "build", "--no-cache", dir)
	if code != 0 || strings.Contains(out, "Using cache") {
		t.Errorf("--no-cache: exit %d:\n%s", code, out)
	}
}

// TestBuildNewerDockerCLI: a current docker CLI's classic builder
// (DOCKER_BUILDKIT=0) speaks the same /build to berthd.
func TestBuildNewerDockerCLI(t *testing.T) {
	const newer = "/usr/local/bin/docker"
	if _, err := os.Stat(newer); err != nil {
		t.Skip("no newer docker CLI at " + newer)
	}
	d := withBusybox(t)
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo new > /n\n"})
	out, err := d.DockerWith(newer, nil, "build", "-t", "newer", dir)
	if err != nil || !strings.Contains(out, "Successfully tagged newer:latest") {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if got := d.Must(t, "run", "--rm", "newer", "cat", "/n"); got != "new\n" {
		t.Errorf("run: %q", got)
	}
}
