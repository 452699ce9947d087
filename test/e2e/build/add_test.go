package build_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/images"
)

func tgz(t *testing.T, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for n, c := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(c))
	}
	tw.Close()
	zw.Close()
	return buf.String()
}

func TestBuildAddAndHeredocs(t *testing.T) {
	d := withBusybox(t)
	// A file server on loopback for ADD <url>.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/remote.txt" {
			w.Write([]byte("remote\n"))
			return
		}
		http.NotFound(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	url := "http://" + l.Addr().String()

	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM busybox\n" +
			"ADD archive.tar.gz /unpacked/\n" +
			"ADD plain.txt /plain.txt\n" +
			"ADD " + url + "/remote.txt /remote/\n" +
			"COPY <<EOF /inline.txt\ninline content\nEOF\n" +
			"RUN <<EOF\necho from heredoc > /heredoc.txt\necho second line >> /heredoc.txt\nEOF\n",
		"archive.tar.gz": tgz(t, map[string]string{"in/a.txt": "in archive\n"}),
		"plain.txt":      "plain\n",
	})
	out, code := docker(t, d, "build", "-t", "add", dir)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s", code, out)
	}
	got := d.Must(t, "run", "--rm", "add", "cat", "/unpacked/in/a.txt", "/plain.txt", "/remote/remote.txt", "/inline.txt", "/heredoc.txt")
	if got != "in archive\nplain\nremote\ninline content\nfrom heredoc\nsecond line\n" {
		t.Errorf("content: %q", got)
	}
	bad := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nADD " + url + "/missing /x\n"})
	out, code = docker(t, d, "build", bad)
	if code == 0 || !strings.Contains(out, "404 Not Found") {
		t.Errorf("unreachable URL: exit %d\n%s", code, out)
	}
}

func TestBuildContextLimit(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	d := berthd.Start(t, "--max-build-context", "65536")
	d.Must(t, "load", "-i", images.Busybox(t).Archive)
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY big /big\n"})
	if err := os.WriteFile(filepath.Join(dir, "big"), bytes.Repeat([]byte("x"), 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := docker(t, d, "build", "-t", "big", dir)
	if code == 0 || !strings.Contains(out, "build context is larger than the limit of 65536 bytes") {
		t.Errorf("big context: exit %d\n%s", code, out)
	}
	if _, code := docker(t, d, "image", "inspect", "big"); code == 0 {
		t.Error("a refused build was tagged")
	}
	// The daemon still builds what fits.
	writeContextFile(t, dir, "big", "small")
	if out, code := docker(t, d, "build", dir); code != 0 {
		t.Errorf("small context: exit %d\n%s", code, out)
	}
}
