package files_test

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container/files"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

// TestArchiveAgainstDockerd asks dockerd 20.10 and Archive/Stat for the
// same paths of the same image and compares stats, entry names, types,
// modes, owners, sizes, link targets, file times and contents.
func TestArchiveAgainstDockerd(t *testing.T) {
	testutil.LeakCheck(t)
	c := newContainer(t)
	d := busyboxDockerd(t)
	id := strings.TrimSpace(d.Must(t, "create", "--network", "none", "busybox"))

	for _, p := range []string{"/etc", "/etc/", "/etc/.", "/bin/sh", "/bin/sh/", "/etc/passwd", "/etc/passwd/", "/", "/usr", "/bin", "/nonexistent", "/home/../etc//group", "linuxrc"} {
		resp, err := api(d, "GET", "/containers/"+id+"/archive?path="+url.QueryEscape(p))
		if err != nil {
			t.Fatal(err)
		}
		rc, stat, err := files.Archive(c.dir, p)
		if resp.StatusCode != 200 {
			resp.Body.Close()
			switch {
			case err == nil:
				rc.Close()
				t.Errorf("%s: dockerd answers %d, Archive succeeds", p, resp.StatusCode)
			case (resp.StatusCode == 404) != errdefs.IsNotFound(err):
				t.Errorf("%s: dockerd answers %d, Archive: %v", p, resp.StatusCode, err)
			}
			if _, err := files.Stat(c.dir, p); (resp.StatusCode == 404) != errdefs.IsNotFound(err) || err == nil {
				t.Errorf("%s: dockerd answers %d, Stat: %v", p, resp.StatusCode, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		var want container.PathStat
		hdr, _ := base64.StdEncoding.DecodeString(resp.Header.Get("X-Docker-Container-Path-Stat"))
		if err := json.Unmarshal(hdr, &want); err != nil {
			t.Fatal(err)
		}
		got, err := files.Stat(c.dir, p)
		if err != nil {
			t.Fatal(err)
		}
		if got != stat {
			t.Errorf("%s: Stat %+v, Archive's stat %+v", p, got, stat)
		}
		if got.Name != want.Name || got.Mode != want.Mode || got.LinkTarget != want.LinkTarget ||
			(!got.Mode.IsDir() && (got.Size != want.Size || !got.Mtime.Equal(want.Mtime))) {
			t.Errorf("%s: stat\n got  %+v\n want %+v", p, got, want)
		}
		wantEntries := readTar(t, resp.Body, initLayer)
		resp.Body.Close()
		gotEntries := readTar(t, rc, initLayer)
		rc.Close()
		if !slices.Equal(gotEntries, wantEntries) {
			t.Errorf("%s: %d entries, dockerd %d", p, len(gotEntries), len(wantEntries))
			for i := range max(len(gotEntries), len(wantEntries)) {
				var g, w entry
				if i < len(gotEntries) {
					g = gotEntries[i]
				}
				if i < len(wantEntries) {
					w = wantEntries[i]
				}
				if g != w {
					t.Errorf("  got  %v\n  want %v", g, w)
				}
			}
		}
	}
}

// TestExportAgainstDockerd compares Export with docker export of the same
// image's container.
func TestExportAgainstDockerd(t *testing.T) {
	testutil.LeakCheck(t)
	c := newContainer(t)
	d := busyboxDockerd(t)
	id := strings.TrimSpace(d.Must(t, "create", "--network", "none", "busybox"))
	resp, err := api(d, "GET", "/containers/"+id+"/export")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	want := readTar(t, resp.Body, initLayer)
	var buf bytes.Buffer
	if err := files.Export(c.dir, &buf); err != nil {
		t.Fatal(err)
	}
	got := readTar(t, &buf, initLayer)
	if len(got) < 100 || !slices.Equal(got, want) {
		t.Errorf("export: %d entries, dockerd %d", len(got), len(want))
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Errorf("first difference:\n got  %v\n want %v", got[i], want[i])
				break
			}
		}
	}
}

// TestArchiveTree checks what the busybox image cannot show: hardlinks,
// devices, fifos, sockets (left out), setuid bits, capabilities, owners,
// symlinks below the top, and a symlink named with a trailing "/".
func TestArchiveTree(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "d/sub"), 0o750))
	must(os.WriteFile(filepath.Join(root, "d/a"), []byte("aaa"), 0o4755))
	must(unix.Chmod(filepath.Join(root, "d/a"), 0o4755))
	must(os.Link(filepath.Join(root, "d/a"), filepath.Join(root, "d/sub/hard")))
	must(os.Symlink("/etc/shadow", filepath.Join(root, "d/abs")))
	must(os.Symlink("../../..", filepath.Join(root, "d/up")))
	must(os.Chown(filepath.Join(root, "d/sub"), 42, 43))
	must(syscallMkfifo(filepath.Join(root, "d/fifo")))
	must(os.Symlink("d", filepath.Join(root, "link")))
	ln := listenUnix(t, filepath.Join(root, "d/sock"))
	defer ln.Close()

	rc, st, err := files.Archive(root, "/link/")
	if err != nil {
		t.Fatal(err)
	}
	got := readTar(t, rc, nil)
	rc.Close()
	if st.Name != "link" || !st.Mode.IsDir() {
		t.Errorf("stat of /link/: %+v", st)
	}
	var names []string
	byName := map[string]entry{}
	for _, e := range got {
		names = append(names, e.Name)
		byName[e.Name] = e
	}
	if want := []string{"link/", "link/a", "link/abs", "link/fifo", "link/sub/", "link/sub/hard", "link/up"}; !slices.Equal(names, want) {
		t.Errorf("names %q, want %q", names, want)
	}
	if e := byName["link/a"]; e.Mode != 0o104755 || e.Content != "aaa" {
		t.Errorf("setuid file: %v", e)
	}
	if e := byName["link/sub/hard"]; e.Type != tar.TypeLink || e.Link != "link/a" || e.Size != 0 {
		t.Errorf("hardlink: %v", e)
	}
	if e := byName["link/abs"]; e.Type != tar.TypeSymlink || e.Link != "/etc/shadow" || e.Mode != 0o120777 {
		t.Errorf("symlink: %v", e)
	}
	if e := byName["link/sub/"]; e.UID != 42 || e.GID != 43 || e.Mode != 0o40750 {
		t.Errorf("directory: %v", e)
	}
	if e := byName["link/fifo"]; e.Type != tar.TypeFifo {
		t.Errorf("fifo: %v", e)
	}

	// The symlink itself, and the stat of a link climbing out: resolved
	// inside the root.
	rc, st, err = files.Archive(root, "/d/up")
	if err != nil {
		t.Fatal(err)
	}
	if got := readTar(t, rc, nil); len(got) != 1 || got[0].Name != "up" || got[0].Link != "../../.." {
		t.Errorf("archive of a symlink: %v", got)
	}
	rc.Close()
	if st.LinkTarget != "/" {
		t.Errorf("link target of d/up: %q, want /", st.LinkTarget)
	}
	// Through a symlink climbing out of the root: still inside it.
	if st, err := files.Stat(root, "/d/up/d/a"); err != nil || st.Size != 3 {
		t.Errorf("stat through d/up: %+v %v", st, err)
	}
	if _, err := files.Stat(root, "/d/abs/"); !errdefs.IsNotFound(err) {
		t.Errorf("stat through a symlink to a host file: %v, want not found", err)
	}
}
