package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
	"golang.org/x/sys/unix"
)

// layers makes n lower dirs under a deliberately long directory name, each
// with its own file and a shared file that the newest one wins, and an
// upper and work dir.
func layers(t *testing.T, n int) (lowers []string, upper, work string) {
	root := filepath.Join(t.TempDir(), strings.Repeat("long-directory-name-", 8))
	for i := 0; i < n; i++ {
		d := filepath.Join(root, fmt.Sprintf("layer-%03d", i), "fs")
		must(t, os.MkdirAll(d, 0o755))
		must(t, os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", i)), []byte(fmt.Sprint(i)), 0o644))
		must(t, os.WriteFile(filepath.Join(d, "shared"), []byte(fmt.Sprint(i)), 0o644))
		lowers = append([]string{d}, lowers...) // newest first
	}
	upper, work = filepath.Join(root, "upper"), filepath.Join(root, "work")
	must(t, os.Mkdir(upper, 0o755))
	must(t, os.Mkdir(work, 0o755))
	return lowers, upper, work
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func checkLayers(t *testing.T, target string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		b, err := os.ReadFile(filepath.Join(target, fmt.Sprintf("f%d", i)))
		if err != nil || string(b) != fmt.Sprint(i) {
			t.Fatalf("f%d: %q, %v", i, b, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(target, "shared")); string(b) != fmt.Sprint(n-1) {
		t.Fatalf("shared = %q, want the newest layer's %d", b, n-1)
	}
}

func TestMountLongOverlay(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	const n = 30
	lowers, upper, work := layers(t, n)
	data := []string{"index=off", "lowerdir=" + strings.Join(lowers, ":"), "upperdir=" + upper, "workdir=" + work}
	if l := len(strings.Join(data, ",")); l < os.Getpagesize() {
		t.Fatalf("options are %d bytes; the test needs more than a page", l)
	}
	for _, c := range []struct {
		name  string
		mount func(target string) error
	}{
		{"Mount", func(target string) error {
			return Mount{Type: "overlay", Source: "overlay", Options: data}.Mount(target)
		}},
		{"fsconfig", func(target string) error { return mountFS("overlay", "overlay", target, 0, data) }},
		{"relative", func(target string) error { return mountRelative("overlay", "overlay", target, 0, data) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			target := t.TempDir()
			must(t, c.mount(target))
			defer func() { must(t, Unmount(target)) }()
			checkLayers(t, target, n)
			must(t, os.WriteFile(filepath.Join(target, "new"), nil, 0o644))
			if _, err := os.Stat(filepath.Join(upper, "new")); err != nil {
				t.Fatalf("write did not reach the upper dir: %v", err)
			}
		})
	}
	// The process's working directory is untouched by the relative mount.
	wd, _ := os.Getwd()
	if strings.Contains(wd, "long-directory-name") {
		t.Fatalf("working directory changed to %q", wd)
	}
}

func TestMountReadOnlyOverlayAndBind(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	lowers, _, _ := layers(t, 3)
	for _, m := range []Mount{
		{Type: "overlay", Source: "overlay", Options: []string{"ro", "lowerdir=" + strings.Join(lowers, ":")}},
		{Type: "bind", Source: lowers[0], Options: []string{"ro", "rbind"}},
	} {
		target := t.TempDir()
		must(t, m.Mount(target))
		if !m.ReadOnly() {
			t.Errorf("%v: ReadOnly() = false", m)
		}
		err := os.WriteFile(filepath.Join(target, "x"), nil, 0o644)
		if !errors.Is(err, unix.EROFS) {
			t.Errorf("%s mount: write = %v, want EROFS", m.Type, err)
		}
		if m.Type == "overlay" {
			checkLayers(t, target, 3)
		}
		must(t, UnmountAll(target))
		must(t, UnmountAll(target)) // nothing left: not an error
	}
}

func TestCommonDir(t *testing.T) {
	for _, c := range []struct {
		paths []string
		want  string
	}{
		{[]string{"/a/b/1/fs", "/a/b/2/fs", "/a/b/3/work"}, "/a/b"},
		{[]string{"/a/b/1/fs"}, "/a/b/1"},
		{[]string{"/a/bc/1", "/a/b/2"}, "/a"},
		{[]string{"/x", "/y"}, "/"},
	} {
		if got := commonDir(c.paths); got != c.want {
			t.Errorf("commonDir(%q) = %q, want %q", c.paths, got, c.want)
		}
	}
}
