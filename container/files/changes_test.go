package files_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/container/files"
	"github.com/berth-dev/berth/internal/testutil"
)

// changeOps is run by busybox sh in a dockerd container and, chrooted, in
// a berth container snapshot: both must report the same changes.
const changeOps = `set -e
echo hi > /etc/newfile
echo x >> /etc/passwd
touch -d '2030-01-01 00:00:00' /etc/group
rm /bin/ls
chown -h 5:5 /bin/cat
mkdir -p /usr/share/deep/er
touch /usr/share/deep/er/f
rm -rf /home
mkdir /home
touch /home/z
echo a > /tmp/a
chmod 711 /root
ln -s /etc /lnk
mkdir -p /var/spool/x
rm -rf /var/spool/x
rm -rf /usr/sbin
echo f > /usr/sbin
mv /bin/vi /bin/vi2
echo same > /etc/same; rm /etc/same
`

func TestChangesAgainstDockerd(t *testing.T) {
	testutil.LeakCheck(t)
	c := newContainer(t)
	d := busyboxDockerd(t)
	d.Must(t, "run", "--name", "ops", "--network", "none", "busybox", "sh", "-c", changeOps)
	resp, err := api(d, "GET", "/containers/ops/changes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var want []container.FilesystemChange
	if err := json.NewDecoder(resp.Body).Decode(&want); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command("chroot", c.dir, "/bin/sh", "-c", changeOps)
	cmd.Env = []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ops in the chroot: %v\n%s", err, out)
	}
	got, err := files.MountChanges(c.mounts)
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, got)
	if len(got) < 15 || !slices.Equal(sorted(got), sorted(want)) {
		t.Errorf("changes:\n got  %v\n want %v", sorted(got), sorted(want))
	}
}

// checkOrder checks that a directory comes before what is below it, and
// that every change below the root has its parent directory listed.
func checkOrder(t *testing.T, ch []container.FilesystemChange) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range ch {
		if dir := filepath.Dir(c.Path); dir != "/" && !seen[dir] {
			t.Errorf("%s %s comes before (or without) its directory", c.Kind, c.Path)
		}
		seen[c.Path] = true
	}
}

func sorted(ch []container.FilesystemChange) []string {
	var out []string
	for _, c := range ch {
		out = append(out, c.Kind.String()+" "+c.Path)
	}
	slices.SortFunc(out, func(a, b string) int {
		if c := strings.Compare(a[2:], b[2:]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return out
}

// TestChangesLayers checks the lower view across layers: a whiteout or
// an opaque directory in a higher layer hides what is below it, so
// recreating such a name is an addition, not a change.
func TestChangesLayers(t *testing.T) {
	testutil.RequireRoot(t)
	base := t.TempDir()
	l1, l2, upper := filepath.Join(base, "l1"), filepath.Join(base, "l2"), filepath.Join(base, "upper")
	mk := func(p string, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	whiteout := func(p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := mknodWhiteout(p); err != nil {
			t.Fatal(err)
		}
	}
	// l1 (bottom): a/x, b/y, c/z, keep. l2 hides a/x and makes b opaque.
	mk(filepath.Join(l1, "a/x"), "1")
	mk(filepath.Join(l1, "b/y"), "1")
	mk(filepath.Join(l1, "c/z"), "1")
	mk(filepath.Join(l1, "keep"), "1")
	whiteout(filepath.Join(l2, "a/x"))
	mk(filepath.Join(l2, "b/new"), "2")
	if err := setOpaque(filepath.Join(l2, "b")); err != nil {
		t.Fatal(err)
	}
	// The container: recreates a/x and b/y, deletes c/z and keep.
	mk(filepath.Join(upper, "a/x"), "3")
	mk(filepath.Join(upper, "b/y"), "3")
	whiteout(filepath.Join(upper, "c/z"))
	whiteout(filepath.Join(upper, "keep"))
	for _, d := range []string{"a", "b", "c"} {
		copyMeta(t, filepath.Join(l1, d), filepath.Join(upper, d))
	}
	got, err := files.Changes(upper, []string{l2, l1})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"C /a", "A /a/x", "C /b", "A /b/y", "C /c", "D /c/z", "D /keep"}
	if s := sorted(got); !slices.Equal(s, want) {
		t.Errorf("changes %v, want %v", s, want)
	}
	checkOrder(t, got)
}
