package build_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/images"
)

// hostArch is the host's platform as BuildKit's args show it.
func hostArch() string { return runtime.GOARCH }

// foreignArch is an architecture that is not the host's, with its QEMU
// name (what a binfmt_misc handler would be called).
func foreignArch() (arch, qemu string) {
	if runtime.GOARCH == "arm64" {
		return "amd64", "x86_64"
	}
	return "arm64", "aarch64"
}

// emulated says whether the kernel has a binfmt_misc handler for the
// QEMU architecture name (then foreign RUN steps execute).
func emulated(qemu string) bool {
	b, err := os.ReadFile(filepath.Join("/proc/sys/fs/binfmt_misc", "qemu-"+qemu))
	return err == nil && bytes.HasPrefix(b, []byte("enabled"))
}

// TestBuildPlatforms: FROM --platform and build --platform take the
// foreign manifest of the busybox fixture's index (linux/amd64 and
// linux/arm64/v8); the platform args are BuildKit's; metadata and COPY
// work on a foreign stage, RUN fails naming the platform unless the
// kernel can emulate it.
func TestBuildPlatforms(t *testing.T) {
	d := withBusybox(t)
	loadBusyboxIndex(t, d)
	arch, qemu := foreignArch()
	dir := writeContext(t, map[string]string{
		"Dockerfile": `ARG BASE=busybox
FROM --platform=$BUILDPLATFORM ${BASE} AS tools
ARG BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT
RUN echo "platform-args $BUILDPLATFORM $BUILDOS $BUILDARCH [$BUILDVARIANT] -> $TARGETPLATFORM $TARGETOS $TARGETARCH [$TARGETVARIANT]" > /args

FROM ${BASE}
ARG TARGETARCH
COPY --from=tools /args /args
COPY hello.txt /hello.txt
LABEL arch=$TARGETARCH
ENV STAGE=final
`,
		"hello.txt": "hello\n",
	})
	for _, c := range []struct {
		name string
		run  func(args ...string) (string, int)
	}{
		{"docker", func(args ...string) (string, int) { return docker(t, d, args...) }},
		{"berth", func(args ...string) (string, int) { return berthCLI(t, d, nil, args...) }},
	} {
		tag := "plat-" + c.name
		out, code := c.run("build", "--platform", "linux/"+arch, "-t", tag, dir)
		if code != 0 {
			t.Fatalf("%s build --platform linux/%s: exit %d\n%s", c.name, arch, code, out)
		}
		var img []struct {
			Architecture, Os, Variant string
			Config                    struct {
				Labels map[string]string
				Env    []string
			}
		}
		decode(t, d.Must(t, "image", "inspect", tag), &img)
		if img[0].Architecture != arch || img[0].Os != "linux" || img[0].Config.Labels["arch"] != arch {
			t.Errorf("%s: image platform %+v", c.name, img[0])
		}
		// The files of the foreign image, from its saved layers.
		tarPath := filepath.Join(t.TempDir(), "plat.tar")
		d.Must(t, "save", "-o", tarPath, tag)
		var layers []byte
		for _, b := range savedFiles(t, tarPath) {
			layers = append(layers, b...)
		}
		want := "platform-args linux/" + hostArch() + " linux " + hostArch() + " [] -> linux/" + arch + " linux " + arch + " []\n"
		if !bytes.Contains(layers, []byte(want)) || !bytes.Contains(layers, []byte("hello\n")) {
			t.Errorf("%s: the image's layers lack %q or hello.txt", c.name, want)
		}
	}
	// Without a platform asked for, a local foreign image is used as it
	// is (as dockerd: no pull), and its RUN steps are foreign.
	onLocal := writeContext(t, map[string]string{"Dockerfile": "FROM plat-docker\nLABEL on=local\n"})
	if out, code := docker(t, d, "build", "-t", "plat-local", onLocal); code != 0 {
		t.Errorf("FROM a local foreign image: exit %d\n%s", code, out)
	} else if got := d.Must(t, "image", "inspect", "-f", "{{.Architecture}}", "plat-local"); got != arch+"\n" {
		t.Errorf("FROM a local foreign image: %q", got)
	}
	writeContextFile(t, onLocal, "Dockerfile", "FROM plat-docker\nRUN true\n")
	if out, code := docker(t, d, "build", onLocal); !emulated(qemu) && (code == 0 || !strings.Contains(out, "RUN on platform linux/"+arch)) {
		t.Errorf("RUN on a local foreign image: exit %d\n%s", code, out)
	}

	// The host's busybox is still the host's.
	var host []struct{ Architecture string }
	decode(t, d.Must(t, "image", "inspect", "busybox"), &host)
	if host[0].Architecture != hostArch() {
		t.Errorf("busybox is now %s", host[0].Architecture)
	}

	// FROM --platform on a stage, and scratch stages per platform.
	multi := writeContext(t, map[string]string{
		// The second stage inherits the first's platform.
		"Dockerfile": "FROM --platform=linux/" + arch + " scratch AS files\nCOPY hello.txt /\nFROM files\nLABEL on=files\n",
		"hello.txt":  "hello\n",
	})
	if out, code := docker(t, d, "build", "-t", "plat-scratch", multi); code != 0 {
		t.Fatalf("FROM --platform scratch: exit %d\n%s", code, out)
	}
	var sc []struct{ Architecture, ID string }
	decode(t, d.Must(t, "image", "inspect", "plat-scratch"), &sc)
	if sc[0].Architecture != arch {
		t.Errorf("FROM --platform=linux/%s scratch made a %s image", arch, sc[0].Architecture)
	}
	writeContextFile(t, multi, "Dockerfile", "FROM scratch\nCOPY hello.txt /\n")
	if out, code := docker(t, d, "build", "-t", "plat-scratch-host", multi); code != 0 {
		t.Fatalf("FROM scratch: exit %d\n%s", code, out)
	}
	var sh []struct{ Architecture, ID string }
	decode(t, d.Must(t, "image", "inspect", "plat-scratch-host"), &sh)
	if sh[0].Architecture != hostArch() || sh[0].ID == sc[0].ID {
		t.Errorf("host scratch stage: %+v, foreign %+v", sh[0], sc[0])
	}

	// RUN on the foreign platform (a stage on a foreign stage is foreign
	// too).
	run := writeContext(t, map[string]string{"Dockerfile": "FROM --platform=linux/" + arch + " busybox AS base\nFROM base\nRUN echo ran > /ran\n"})
	out, code := docker(t, d, "build", "-t", "plat-run", run)
	if emulated(qemu) {
		if code != 0 {
			t.Errorf("foreign RUN with a binfmt_misc handler for %s: exit %d\n%s", qemu, code, out)
		}
	} else if code == 0 || !strings.Contains(out, "Dockerfile:3") || !strings.Contains(out, "RUN on platform linux/"+arch) || !strings.Contains(out, "no binfmt_misc handler for "+qemu) {
		t.Errorf("foreign RUN: exit %d\n%s", code, out)
	}

	// Bad platforms.
	for _, p := range []string{"windows/amd64", "linux//x"} {
		if out, code := docker(t, d, "build", "--platform", p, run); code == 0 || !strings.Contains(out, "platform") {
			t.Errorf("--platform %s: exit %d\n%s", p, code, out)
		}
	}
}

func decode(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
}

// loadBusyboxIndex loads the multi-platform busybox fixture (an index of
// linux/amd64 and linux/arm64/v8 with the same layer) as busybox: its
// host manifest is the single-platform busybox's.
func loadBusyboxIndex(t *testing.T, d *berthd.Daemon) {
	t.Helper()
	idx := images.BusyboxIndex(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(idx.Layout, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(idx.Layout, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if rel == "index.json" {
			b = bytes.Replace(b, []byte(`"annotations":{`), []byte(`"annotations":{"io.containerd.image.name":"docker.io/library/busybox:latest",`), 1)
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "busybox-index.tar")
	if err := os.WriteFile(archive, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := d.Must(t, "load", "-i", archive); !strings.Contains(out, "busybox:latest") {
		t.Fatalf("load the busybox index: %s", out)
	}
}
