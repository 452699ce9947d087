package build_test

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestBuildMultiStage(t *testing.T) {
	d := withBusybox(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile": `ARG BASE=busybox
FROM ${BASE} AS builder
RUN mkdir /out && echo built > /out/result && chmod 0640 /out/result
FROM busybox AS broken
RUN echo "this stage is not needed" && false
FROM scratch
COPY --from=builder /out/result /result
COPY --from=builder /bin/busybox /bin/cat
COPY --from=0 --chown=1000:1000 --chmod=0600 /out /owned/
ENTRYPOINT ["/bin/cat"]
CMD ["/result"]
`,
	})
	out, code := docker(t, d, "build", "-t", "multi", dir)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "not needed") {
		t.Errorf("a stage the target does not need ran:\n%s", out)
	}
	if got := d.Must(t, "run", "--rm", "multi"); got != "built\n" {
		t.Errorf("run: %q", got)
	}
	img := inspect(t, d, "multi")
	if len(img.RootFS.Layers) != 3 || strings.Join(img.Config.Entrypoint, " ") != "/bin/cat" {
		t.Errorf("scratch image: %d layers, entrypoint %v", len(img.RootFS.Layers), img.Config.Entrypoint)
	}

	// --target builds the named stage (and what it needs) only.
	out, code = docker(t, d, "build", "--target", "builder", "-t", "multi:builder", dir)
	if code != 0 {
		t.Fatalf("build --target: exit %d\n%s", code, out)
	}
	if got := d.Must(t, "run", "--rm", "multi:builder", "cat", "/out/result"); got != "built\n" {
		t.Errorf("target stage: %q", got)
	}
	out, code = docker(t, d, "build", "--target", "broken", dir)
	if code != 1 || !strings.Contains(out, "returned a non-zero code: 1") || !strings.Contains(out, "this stage is not needed") {
		t.Errorf("failing target: exit %d\n%s", code, out)
	}
	out, code = docker(t, d, "build", "--target", "nosuch", dir)
	if code == 0 || !strings.Contains(out, "failed to reach build target nosuch in Dockerfile") {
		t.Errorf("missing target: exit %d\n%s", code, out)
	}
}

func TestBuildMetadata(t *testing.T) {
	d := withBusybox(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile": `FROM busybox
SHELL ["/bin/sh", "-ec"]
USER 1234:5678
HEALTHCHECK --interval=5s CMD true
ONBUILD RUN echo triggered > /tmp/trigger
ENTRYPOINT echo entry
`,
	})
	out, code := docker(t, d, "build", "-t", "meta", dir)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s", code, out)
	}
	img := inspect(t, d, "meta")
	c := img.Config
	if c.User != "1234:5678" || strings.Join(c.Shell, " ") != "/bin/sh -ec" || len(c.OnBuild) != 1 ||
		c.Healthcheck == nil || strings.Join(c.Healthcheck.Test, " ") != "CMD-SHELL true" ||
		strings.Join(c.Entrypoint, " ") != "/bin/sh -ec echo entry" || len(c.Cmd) != 0 {
		t.Errorf("config: %+v", c)
	}
	base := inspect(t, d, "busybox")
	if len(img.RootFS.Layers) != len(base.RootFS.Layers) {
		t.Errorf("metadata-only steps added layers: %d vs %d", len(img.RootFS.Layers), len(base.RootFS.Layers))
	}
	// A child build runs the ONBUILD trigger and does not inherit it.
	child := writeContext(t, map[string]string{"Dockerfile": "FROM meta\nUSER 0\n"})
	out, code = docker(t, d, "build", "-t", "child", child)
	if code != 0 {
		t.Fatalf("child build: exit %d\n%s", code, out)
	}
	if got := d.Must(t, "run", "--rm", "--entrypoint", "cat", "child", "/tmp/trigger"); got != "triggered\n" {
		t.Errorf("trigger: %q", got)
	}
	if len(inspect(t, d, "child").Config.OnBuild) != 0 {
		t.Errorf("child inherited ONBUILD")
	}
}

func TestBuildBadInput(t *testing.T) {
	d := withBusybox(t)
	for _, c := range []struct {
		name, dockerfile string
		files            map[string]string
		code             int
		want             string
	}{
		{"unknown instruction", "FROM busybox\nFOO bar\n", nil, 1, "Dockerfile:2: unknown instruction: FOO"},
		{"empty", "# nothing\n", nil, 1, "Dockerfile:1: file with no instructions"},
		{"copy missing", "FROM busybox\nCOPY nosuch /x\n", nil, 1, "file not found in build context or excluded by .dockerignore: stat nosuch: file does not exist"},
		{"copy outside", "FROM busybox\nCOPY ../../etc/passwd /x\n", nil, 1, "file not found in build context"},
		{"copy symlink outside", "FROM busybox\nCOPY link /x\n", nil, 1, "file not found in build context"},
		{"run fails", "FROM busybox\nRUN echo first; echo last; exit 3\n", nil, 3, "The command '/bin/sh -c echo first; echo last; exit 3' returned a non-zero code: 3"},
		{"no image", "FROM 127.0.0.1:9/nosuchimage\n", nil, 1, "127.0.0.1:9/nosuchimage"},
		{"stop signal", "FROM busybox\nSTOPSIGNAL SIGNOPE\n", nil, 1, "SIGNOPE"},
		{"many to file", "FROM busybox\nCOPY a b /file\n", map[string]string{"a": "", "b": ""}, 1, "the destination must be a directory and end with a /"},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := map[string]string{"Dockerfile": c.dockerfile}
			for k, v := range c.files {
				files[k] = v
			}
			dir := writeContext(t, files)
			if c.name == "copy symlink outside" {
				if err := symlink("/etc/passwd", dir+"/link"); err != nil {
					t.Fatal(err)
				}
			}
			out, code := docker(t, d, "build", "-t", "bad:"+strings.ReplaceAll(c.name, " ", "-"), dir)
			if code != c.code || !strings.Contains(out, c.want) {
				t.Errorf("exit %d (want %d), output lacks %q:\n%s", code, c.code, c.want, out)
			}
			if _, code := docker(t, d, "image", "inspect", "bad:"+strings.ReplaceAll(c.name, " ", "-")); code == 0 {
				t.Errorf("a failed build was tagged")
			}
		})
	}
}

func TestBuildPlatform(t *testing.T) {
	d := withBusybox(t)
	ok := writeContext(t, map[string]string{"Dockerfile": "FROM --platform=$BUILDPLATFORM busybox AS b\nFROM --platform=linux/" + runtime.GOARCH + " b\nRUN true\n"})
	if out, code := docker(t, d, "build", ok); code != 0 {
		t.Errorf("host platform: exit %d\n%s", code, out)
	}
	// Another platform's stage from scratch needs no image (pulling one
	// would leave the machine: TestBuildPlatforms uses a local index).
	other := writeContext(t, map[string]string{"Dockerfile": "FROM --platform=linux/s390x scratch\nCOPY Dockerfile /\n"})
	if out, code := docker(t, d, "build", "-t", "s390x", other); code != 0 {
		t.Errorf("other platform: exit %d\n%s", code, out)
	}
	if got := d.Must(t, "image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", "s390x"); got != "linux/s390x\n" {
		t.Errorf("other platform: image is %q", got)
	}
}

func TestBuildUnsupportedFlags(t *testing.T) {
	d := withBusybox(t)
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\n"})
	for _, args := range [][]string{{"--memory", "64m"}, {"--cpu-shares", "2"}, {"--add-host", "a:1.2.3.4"}, {"--cgroup-parent", "x"}} {
		out, code := docker(t, d, append(append([]string{"build"}, args...), dir)...)
		if code == 0 || !strings.Contains(out, "is not supported") {
			t.Errorf("build %v: exit %d\n%s", args, code, out)
		}
	}
	if out, code := docker(t, d, "build", "--rm=false", "--force-rm", dir); code != 0 {
		t.Errorf("--rm/--force-rm (no containers are kept anyway): exit %d\n%s", code, out)
	}
}

// TestBuildDeletions checks that what a RUN removes stays removed in the
// image (whiteouts and opaque directories), through run and save/load.
func TestBuildDeletions(t *testing.T) {
	d := withBusybox(t)
	dir := writeContext(t, map[string]string{"Dockerfile": `FROM busybox
RUN mkdir -p /data/sub && echo keep > /data/keep && echo gone > /data/gone && echo x > /data/sub/x
RUN rm /data/gone /bin/ls && rm -rf /data/sub && mkdir /data/sub && echo y > /data/sub/y
`})
	if out, code := docker(t, d, "build", "-t", "del", dir); code != 0 {
		t.Fatalf("build: exit %d\n%s", code, out)
	}
	check := func(d2 interface {
		Must(testing.TB, ...string) string
	}) {
		t.Helper()
		got := d2.Must(t, "run", "--rm", "del", "sh", "-c", "find /data | sort; test -e /bin/ls && echo ls-present || echo ls-gone")
		if got != "/data\n/data/keep\n/data/sub\n/data/sub/y\nls-gone\n" {
			t.Errorf("image content: %q", got)
		}
	}
	check(d)
	tarPath := filepath.Join(t.TempDir(), "del.tar")
	d.Must(t, "save", "-o", tarPath, "del")
	d2 := withBusybox(t)
	d2.Must(t, "load", "-i", tarPath)
	check(d2)
}

// TestBuildParallelStages: two independent stages run at the same time
// (each waits, through a shared cache mount, for the other's mark).
func TestBuildParallelStages(t *testing.T) {
	d := withBusybox(t)
	wait := func(me, other string) string {
		return "RUN --mount=type=cache,id=rendezvous,target=/s touch /s/" + me +
			" && for i in $(seq 300); do [ -e /s/" + other + " ] && echo met > /" + me + " && exit 0; sleep 0.1; done; exit 1\n"
	}
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox AS a\n" + wait("a", "b") +
		"FROM busybox AS b\n" + wait("b", "a") +
		"FROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n"})
	out, code := docker(t, d, "build", "-t", "par", dir)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s", code, out)
	}
	if got := d.Must(t, "run", "--rm", "par", "cat", "/a", "/b"); got != "met\nmet\n" {
		t.Errorf("stages: %q", got)
	}
}

// TestBuildFailingStageStopsOthers: a failing stage stops the stages
// running beside it and its own error is the one reported.
func TestBuildFailingStageStopsOthers(t *testing.T) {
	d := withBusybox(t)
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox AS slow\nRUN sleep 4243\n" +
		"FROM busybox AS bad\nRUN sleep 1; exit 5\n" +
		"FROM busybox\nCOPY --from=slow /bin/sh /a\nCOPY --from=bad /bin/sh /b\n"})
	start := time.Now()
	out, code := docker(t, d, "build", dir)
	if code != 5 || !strings.Contains(out, "returned a non-zero code: 5") {
		t.Errorf("exit %d\n%s", code, out)
	}
	if time.Since(start) > time.Minute {
		t.Errorf("the failing build took %v: the slow stage was not stopped", time.Since(start))
	}
	if p := sleepers("4243"); len(p) > 0 {
		t.Errorf("the slow stage's RUN still runs: %v", p)
	}
}
