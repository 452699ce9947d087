package diff_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/snapshot/diff"
	"github.com/berth-dev/berth/snapshot/overlay"
)

var (
	t1 = time.Unix(1700000000, 0)
	t2 = time.Unix(1710000000, 0)
)

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeFile writes a file with an exact mode, owner and mtime.
func writeFile(t *testing.T, p, content string, mode os.FileMode, uid, gid int, mtime time.Time) {
	t.Helper()
	check(t, os.MkdirAll(filepath.Dir(p), 0o755))
	check(t, os.WriteFile(p, []byte(content), mode))
	check(t, os.Lchown(p, uid, gid))
	check(t, os.Chmod(p, mode))
	check(t, os.Chtimes(p, mtime, mtime))
}

// lower makes the image layer the tests change.
func lower(t *testing.T, dir string) {
	writeFile(t, filepath.Join(dir, "etc/a"), "lower a", 0o644, 0, 0, t1)
	writeFile(t, filepath.Join(dir, "etc/b"), "lower b", 0o644, 0, 0, t1)
	writeFile(t, filepath.Join(dir, "dir/x"), "x", 0o644, 0, 0, t1)
	writeFile(t, filepath.Join(dir, "dir/sub/y"), "y", 0o600, 5, 5, t1)
	writeFile(t, filepath.Join(dir, "bin/tool"), "tool", 0o755, 0, 0, t1)
	writeFile(t, filepath.Join(dir, "data/f"), "data", 0o644, 0, 0, t1)
	writeFile(t, filepath.Join(dir, "gone/z"), "z", 0o644, 0, 0, t1)
	check(t, os.Symlink("a", filepath.Join(dir, "etc/link-to-a")))
	// lower makes two copies that must be equal: a creation time would
	// differ when they straddle a second.
	ts := []unix.Timespec{unix.NsecToTimespec(t1.UnixNano()), unix.NsecToTimespec(t1.UnixNano())}
	check(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dir, "etc/link-to-a"), ts, unix.AT_SYMLINK_NOFOLLOW))
	for _, d := range []string{"etc", "dir", "dir/sub", "bin", "data", "gone"} {
		check(t, os.Chmod(filepath.Join(dir, d), 0o755))
	}
}

// change makes the container's changes through its mounted rootfs.
func change(t *testing.T, root string) {
	writeFile(t, filepath.Join(root, "new.txt"), "new", 0o640, 1000, 1000, t2)
	check(t, os.Link(filepath.Join(root, "new.txt"), filepath.Join(root, "new-link")))
	writeFile(t, filepath.Join(root, "etc/a"), "changed a", 0o644, 0, 0, t2) // modify
	check(t, os.Remove(filepath.Join(root, "etc/b")))                        // delete a lower file
	check(t, os.RemoveAll(filepath.Join(root, "gone")))                      // delete a lower dir
	check(t, os.RemoveAll(filepath.Join(root, "dir")))                       // replace a dir
	check(t, os.Mkdir(filepath.Join(root, "dir"), 0o700))
	writeFile(t, filepath.Join(root, "dir/z"), "replaced", 0o644, 0, 0, t2)
	check(t, unix.Chmod(filepath.Join(root, "bin/tool"), 0o4700)) // chmod, setuid
	check(t, unix.Lsetxattr(filepath.Join(root, "data/f"), "user.note", []byte("hi\x00bin"), 0))
	check(t, os.Symlink("etc/a", filepath.Join(root, "link")))
	check(t, os.Lchown(filepath.Join(root, "link"), 7, 8))
	check(t, unix.Mkfifo(filepath.Join(root, "fifo"), 0o600))
	check(t, unix.Mknod(filepath.Join(root, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	check(t, unix.Chmod(filepath.Join(root, "null"), 0o666))
	for _, p := range []string{"link", "fifo", "null"} {
		ts := []unix.Timespec{unix.NsecToTimespec(t2.UnixNano()), unix.NsecToTimespec(t2.UnixNano())}
		check(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, p), ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// container sets up an overlay snapshotter with the lower layer
// committed and an active snapshot on it with the changes made through a
// real mount; it returns the snapshotter, the active snapshot's mounts,
// and the merged tree as the container saw it.
func container(t *testing.T) (snapshot.Snapshotter, []snapshot.Mount, map[string]string) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	ctx := context.Background()
	sn, err := overlay.New(t.TempDir())
	check(t, err)
	t.Cleanup(func() { sn.Close() })
	m, err := sn.Prepare(ctx, "base-active", "")
	check(t, err)
	withMount(t, m, func(dir string) { lower(t, dir) })
	check(t, sn.Commit(ctx, "base", "base-active"))
	m, err = sn.Prepare(ctx, "ctr", "base")
	check(t, err)
	var merged map[string]string
	withMount(t, m, func(dir string) {
		change(t, dir)
		merged = tree(t, dir)
	})
	return sn, m, merged
}

func withMount(t *testing.T, mounts []snapshot.Mount, fn func(dir string)) {
	t.Helper()
	dir := t.TempDir()
	check(t, snapshot.MountAll(mounts, dir))
	defer func() { check(t, snapshot.UnmountAll(dir)) }()
	fn(dir)
}

// entry is a tar header in a form that is easy to compare.
func entry(h *tar.Header, content []byte) string {
	s := fmt.Sprintf("%s %c %04o %d:%d", h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid)
	switch h.Typeflag {
	case tar.TypeReg:
		s += fmt.Sprintf(" %q", content)
	case tar.TypeSymlink, tar.TypeLink:
		s += " -> " + h.Linkname
	case tar.TypeChar, tar.TypeBlock:
		s += fmt.Sprintf(" %d,%d", h.Devmajor, h.Devminor)
	}
	var xs []string
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			xs = append(xs, fmt.Sprintf("%s=%q", name, v))
		}
	}
	sort.Strings(xs)
	if len(xs) > 0 {
		s += " " + strings.Join(xs, " ")
	}
	return s
}

func entries(t *testing.T, b []byte) ([]string, []*tar.Header) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []string
	var hdrs []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, hdrs
		}
		check(t, err)
		c, err := io.ReadAll(tr)
		check(t, err)
		out = append(out, entry(h, c))
		hdrs = append(hdrs, h)
	}
}

func TestDiffEntries(t *testing.T) {
	_, mounts, _ := container(t)
	var buf bytes.Buffer
	res, err := diff.Write(context.Background(), &buf, mounts)
	check(t, err)
	got, hdrs := entries(t, buf.Bytes())
	want := []string{
		`.wh.gone 0 0000 0:0 ""`,
		`bin/ 5 0755 0:0`,
		`bin/tool 0 4700 0:0 "tool"`,
		`data/ 5 0755 0:0`,
		`data/f 0 0644 0:0 "data" user.note="hi\x00bin"`,
		`dir/ 5 0700 0:0`,
		`dir/.wh..wh..opq 0 0000 0:0 ""`,
		`dir/z 0 0644 0:0 "replaced"`,
		`etc/ 5 0755 0:0`,
		`etc/.wh.b 0 0000 0:0 ""`,
		`etc/a 0 0644 0:0 "changed a"`,
		`fifo 6 0600 0:0`,
		`link 2 0777 7:8 -> etc/a`,
		`new-link 0 0640 1000:1000 "new"`,
		`new.txt 1 0640 1000:1000 -> new-link`,
		`null 3 0666 0:0 1,3`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("diff entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, h := range hdrs {
		switch {
		case strings.HasPrefix(path.Base(h.Name), diff.WhiteoutPrefix):
			if !h.ModTime.Equal(time.Unix(0, 0)) {
				t.Errorf("%s: mtime %v, want the epoch", h.Name, h.ModTime)
			}
		case h.Name == "etc/a" || h.Name == "new-link" || h.Name == "link" || h.Name == "null":
			if !h.ModTime.Equal(t2) {
				t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, t2)
			}
		}
		if h.Uname != "" || h.Gname != "" || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() || h.ModTime.Nanosecond() != 0 {
			t.Errorf("%s: unstable header fields: %+v", h.Name, h)
		}
	}
	sum := sha256.Sum256(buf.Bytes())
	if res.DiffID != digest.NewDigestFromBytes(digest.SHA256, sum[:]) || res.Size != int64(buf.Len()) {
		t.Errorf("result %+v does not describe the %d bytes written", res, buf.Len())
	}
	// Same snapshot, same bytes.
	var again bytes.Buffer
	res2, err := diff.Write(context.Background(), &again, mounts)
	check(t, err)
	if res2 != res || !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Errorf("second diff differs: %v vs %v", res2.DiffID, res.DiffID)
	}
}

// TestDiffRoundTrip applies the diff to a fresh copy of the lower layer and
// checks the result equals the tree the container saw.
func TestDiffRoundTrip(t *testing.T) {
	_, mounts, merged := container(t)
	var buf bytes.Buffer
	_, err := diff.Write(context.Background(), &buf, mounts)
	check(t, err)
	dir := t.TempDir()
	lower(t, dir)
	extract(t, dir, &buf)
	got := tree(t, dir)
	if !reflect.DeepEqual(got, merged) {
		for _, k := range union(got, merged) {
			if got[k] != merged[k] {
				t.Errorf("%s:\n  applied: %s\n   merged: %s", k, got[k], merged[k])
			}
		}
	}
}

func union(a, b map[string]string) []string {
	var ks []string
	for k := range a {
		ks = append(ks, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

// TestDiffDeterministic: two trees with equal content, made in different
// orders at different times, give byte-equal layers; so does a bind mount
// (an active snapshot with no parent) of one of them.
func TestDiffDeterministic(t *testing.T) {
	testutil.RequireRoot(t)
	make := func(reverse bool) string {
		dir := t.TempDir()
		names := []string{"b/2", "a/1", "c", "a/0"}
		if reverse {
			for i, j := 0, len(names)-1; i < j; i, j = i+1, j-1 {
				names[i], names[j] = names[j], names[i]
			}
		}
		for _, n := range names {
			writeFile(t, filepath.Join(dir, n), n, 0o644, 0, 0, t1.Add(time.Duration(len(n))*time.Millisecond))
		}
		check(t, os.Link(filepath.Join(dir, "c"), filepath.Join(dir, "b/hard")))
		for _, d := range []string{"a", "b"} {
			check(t, os.Chmod(filepath.Join(dir, d), 0o755))
			check(t, os.Chtimes(filepath.Join(dir, d), t1, t1))
		}
		return dir
	}
	d1, d2 := make(false), make(true)
	var b1, b2, b3 bytes.Buffer
	r1, err := diff.WriteUpper(context.Background(), &b1, d1)
	check(t, err)
	r2, err := diff.WriteUpper(context.Background(), &b2, d2)
	check(t, err)
	r3, err := diff.Write(context.Background(), &b3, []snapshot.Mount{{Type: "bind", Source: d1, Options: []string{"rw", "rbind"}}})
	check(t, err)
	if r1 != r2 || r1 != r3 || !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Fatalf("equal trees gave different layers: %v %v %v", r1.DiffID, r2.DiffID, r3.DiffID)
	}
	got, _ := entries(t, b1.Bytes())
	want := []string{`a/ 5 0755 0:0`, `a/0 0 0644 0:0 "a/0"`, `a/1 0 0644 0:0 "a/1"`, `b/ 5 0755 0:0`,
		`b/2 0 0644 0:0 "b/2"`, `b/hard 0 0644 0:0 "c"`, `c 1 0644 0:0 -> b/hard`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDiffRefusesReadOnlyMounts(t *testing.T) {
	for _, m := range []snapshot.Mount{
		{Type: "overlay", Source: "overlay", Options: []string{"ro", "lowerdir=/a:/b"}},
		{Type: "bind", Source: "/x", Options: []string{"ro", "rbind"}},
	} {
		_, err := diff.Write(context.Background(), io.Discard, []snapshot.Mount{m})
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("diff of %+v: %v, want ErrInvalidArgument", m, err)
		}
	}
}

func TestDiffRefusesRedirects(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	check(t, os.Mkdir(filepath.Join(dir, "moved"), 0o755))
	check(t, unix.Setxattr(filepath.Join(dir, "moved"), "trusted.overlay.redirect", []byte("/orig"), 0))
	_, err := diff.WriteUpper(context.Background(), io.Discard, dir)
	if !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("diff of a redirected dir: %v, want ErrNotImplemented", err)
	}
}

// tree describes every entry under root: type, permissions, owner, size,
// content, link target, device, user xattrs, mtime (seconds, not for
// directories, whose times extraction changes) and link count.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	check(t, filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		check(t, unix.Lstat(p, &st))
		s := fmt.Sprintf("%s %04o %d:%d", fi.Mode().Type(), st.Mode&0o7777, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			check(t, err)
			s += fmt.Sprintf(" %q nlink=%d", b, st.Nlink)
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			s += " -> " + l
		case unix.S_IFCHR, unix.S_IFBLK:
			s += fmt.Sprintf(" %d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if !fi.IsDir() {
			s += fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
		}
		if v, err := unix.Lgetxattr(p, "user.note", make([]byte, 64)); err == nil {
			s += fmt.Sprintf(" user.note(%d)", v)
		}
		out[rel] = s
		return nil
	}))
	return out
}

// extract applies a layer naively: whiteouts remove, entries replace.
func extract(t *testing.T, root string, r io.Reader) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		check(t, err)
		name := path.Clean(h.Name)
		dir, base := path.Split(name)
		p := filepath.Join(root, name)
		switch {
		case base == diff.WhiteoutOpaque:
			ents, err := os.ReadDir(filepath.Join(root, dir))
			check(t, err)
			for _, e := range ents {
				check(t, os.RemoveAll(filepath.Join(root, dir, e.Name())))
			}
			continue
		case strings.HasPrefix(base, diff.WhiteoutPrefix):
			check(t, os.RemoveAll(filepath.Join(root, dir, strings.TrimPrefix(base, diff.WhiteoutPrefix))))
			continue
		}
		if fi, err := os.Lstat(p); err == nil && !(fi.IsDir() && h.Typeflag == tar.TypeDir) {
			check(t, os.RemoveAll(p))
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(p, 0o755); err != nil && !os.IsExist(err) {
				t.Fatal(err)
			}
		case tar.TypeReg:
			f, err := os.Create(p)
			check(t, err)
			_, err = io.Copy(f, tr)
			check(t, err)
			check(t, f.Close())
		case tar.TypeLink:
			check(t, os.Link(filepath.Join(root, h.Linkname), p))
			continue
		case tar.TypeSymlink:
			check(t, os.Symlink(h.Linkname, p))
		case tar.TypeFifo:
			check(t, unix.Mkfifo(p, 0o600))
		case tar.TypeChar, tar.TypeBlock:
			mode := uint32(unix.S_IFCHR)
			if h.Typeflag == tar.TypeBlock {
				mode = unix.S_IFBLK
			}
			check(t, unix.Mknod(p, mode|0o600, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor)))))
		default:
			t.Fatalf("%s: unexpected type %c", h.Name, h.Typeflag)
		}
		check(t, os.Lchown(p, h.Uid, h.Gid))
		if h.Typeflag != tar.TypeSymlink {
			check(t, unix.Chmod(p, uint32(h.Mode)))
		}
		for k, v := range h.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				check(t, unix.Lsetxattr(p, name, []byte(v), 0))
			}
		}
		ts := []unix.Timespec{unix.NsecToTimespec(h.ModTime.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
		check(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}
