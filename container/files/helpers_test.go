package files_test

import (
	"archive/tar"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/image/service"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/dockerd"
	"github.com/berth-dev/berth/internal/testutil/images"
	"github.com/berth-dev/berth/snapshot"
)

// rootfsMount is a busybox container's root filesystem: an overlay snapshot
// of image/service, mounted.
type rootfsMount struct {
	dir    string
	mounts []snapshot.Mount
}

// newContainer loads the busybox fixture into a private image service and
// mounts a new container snapshot of it; all is undone after the test.
func newContainer(t *testing.T) *rootfsMount {
	t.Helper()
	testutil.RequireRoot(t)
	ctx := context.Background()
	s, err := service.Open(t.TempDir(), service.Options{ConfigPath: filepath.Join(t.TempDir(), "config.json")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f, err := os.Open(images.Busybox(t).Archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := s.Load(ctx, f); err != nil {
		t.Fatal(err)
	}
	mounts, err := s.RootfsMounts(ctx, "busybox:latest", "ctr")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := snapshot.MountAll(mounts, dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := snapshot.UnmountAll(dir); err != nil {
			t.Error(err)
		}
	})
	return &rootfsMount{dir: dir, mounts: mounts}
}

// busyboxDockerd starts a private dockerd with the busybox fixture loaded.
func busyboxDockerd(t *testing.T) *dockerd.Daemon {
	t.Helper()
	d := dockerd.Start(t, dockerd.Options{})
	d.Must(t, "load", "-i", images.Busybox(t).Archive)
	return d
}

// api calls dockerd's Engine API.
func api(d *dockerd.Daemon, method, path string) (*http.Response, error) {
	sock := strings.TrimPrefix(d.Host, "unix://")
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	req, err := http.NewRequest(method, "http://docker"+path, nil)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}

// entry is a tar header reduced to what both sides must agree on.
type entry struct {
	Name     string
	Type     byte
	Mode     int64
	UID, GID int
	Size     int64
	Link     string
	Mtime    int64 // 0 for directories (dockerd's init layer touches some)
	Content  string
}

// readTar lists a tar's entries, skipping names for which skip is true.
func readTar(t *testing.T, r io.Reader, skip func(string) bool) []entry {
	t.Helper()
	tr := tar.NewReader(r)
	var out []entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if skip != nil && skip(h.Name) {
			continue
		}
		e := entry{Name: h.Name, Type: h.Typeflag, Mode: h.Mode, UID: h.Uid, GID: h.Gid, Size: h.Size, Link: h.Linkname, Mtime: h.ModTime.Unix()}
		if h.Typeflag == tar.TypeDir {
			e.Mtime = 0
		}
		if h.Typeflag == tar.TypeReg && h.Size < 4096 {
			b, _ := io.ReadAll(tr)
			e.Content = string(b)
		}
		out = append(out, e)
	}
}

// initLayer reports whether a name is one of the files dockerd's init
// layer adds to every container (they are not in the image).
func initLayer(name string) bool {
	n := strings.TrimPrefix(strings.TrimPrefix(name, "/"), "./")
	for _, p := range []string{".dockerenv", "dev/", "proc/", "sys/", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab", "hostname", "hosts", "resolv.conf", "mtab"} {
		if n == p || strings.HasPrefix(n, p) || n == strings.TrimSuffix(p, "/") {
			return true
		}
	}
	return false
}
