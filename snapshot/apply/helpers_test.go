package apply

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ent is one entry of a test layer.
type ent struct {
	hdr  tar.Header
	body string
}

func reg(name, body string) ent {
	return ent{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: t0}, body}
}
func dir(name string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: t0}}
}
func sym(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, ModTime: t0}}
}
func link(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, ModTime: t0}}
}

var t0 = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// layer builds a tar from entries. Sizes are taken from the bodies unless a
// header sets its own (for crafted headers the body is then truncated).
func layer(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if h.Format == tar.FormatUnknown && len(h.PAXRecords) > 0 {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("write header %q: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatalf("write %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandbox is a test root with a canary directory next to it: the host
// outside root, which no layer may touch.
type sandbox struct {
	t      testing.TB
	base   string // holds root and canary
	root   string
	canary string
	before map[string]string
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	base := t.TempDir()
	s := &sandbox{t: t, base: base, root: filepath.Join(base, "root"), canary: filepath.Join(base, "canary")}
	for _, d := range []string{s.root, s.canary, filepath.Join(s.canary, "dir")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"file", "passwd", "dir/file"} {
		if err := os.WriteFile(filepath.Join(s.canary, f), []byte("canary "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.before = s.outside()
	t.Cleanup(s.checkCanary)
	return s
}

// outside describes everything under base except root: names, types,
// modes, owners, sizes, times, contents, link targets and xattrs.
func (s *sandbox) outside() map[string]string {
	m := map[string]string{}
	err := filepath.WalkDir(s.base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == s.root {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode=%o uid=%d gid=%d size=%d mtime=%d.%d nlink=%d", st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Nlink)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" sha=%x", sha256.Sum256(b))
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		}
		sz, _ := unix.Llistxattr(p, nil)
		if sz > 0 {
			buf := make([]byte, sz)
			n, _ := unix.Llistxattr(p, buf)
			desc += " xattrs=" + string(buf[:n])
		}
		if p != s.base { // base's mtime changes when root is recreated
			m[p] = desc
		}
		return nil
	})
	if err != nil {
		s.t.Fatalf("walk outside: %v", err)
	}
	return m
}

func (s *sandbox) checkCanary() {
	after := s.outside()
	var diffs []string
	for k, v := range s.before {
		if after[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s: %q -> %q", k, v, after[k]))
		}
	}
	for k, v := range after {
		if _, ok := s.before[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("new outside root: %s %s", k, v))
		}
	}
	sort.Strings(diffs)
	for _, d := range diffs {
		s.t.Errorf("host outside root changed: %s", d)
	}
}

func (s *sandbox) apply(opts Options, tarball []byte) (Stats, error) {
	s.t.Helper()
	if opts.Logf == nil {
		opts.Logf = s.t.Logf
	}
	return Apply(context.Background(), s.root, bytes.NewReader(tarball), opts)
}

func (s *sandbox) mustApply(opts Options, ents ...ent) Stats {
	s.t.Helper()
	st, err := s.apply(opts, layer(s.t, ents...))
	if err != nil {
		s.t.Fatalf("apply: %v", err)
	}
	return st
}

func (s *sandbox) p(rel string) string { return filepath.Join(s.root, rel) }

func (s *sandbox) lstat(rel string) *unix.Stat_t {
	s.t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(s.p(rel), &st); err != nil {
		s.t.Fatalf("lstat %s: %v", rel, err)
	}
	return &st
}

func (s *sandbox) exists(rel string) bool {
	var st unix.Stat_t
	return unix.Lstat(s.p(rel), &st) == nil
}

func (s *sandbox) content(rel string) string {
	s.t.Helper()
	b, err := os.ReadFile(s.p(rel))
	if err != nil {
		s.t.Fatalf("read %s: %v", rel, err)
	}
	return string(b)
}

func (s *sandbox) xattr(rel, name string) (string, bool) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(s.p(rel), name, buf)
	if err != nil {
		return "", false
	}
	return string(buf[:n]), true
}

func typeOf(st *unix.Stat_t) uint32 { return st.Mode & unix.S_IFMT }

// rawHeader is a hand-made ustar header block, for layers archive/tar's
// writer refuses to write.
func rawHeader(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], "00000000000\x00")
	b[156] = typ
	copy(b[257:265], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// paxRecord formats one PAX record ("LEN key=value\n").
func paxRecord(k, v string) string {
	body := " " + k + "=" + v + "\n"
	n := len(body) + 1
	for len(fmt.Sprint(n))+len(body) != n {
		n++
	}
	return fmt.Sprint(n) + body
}

// rawEntry is a header block followed by its padded data.
func rawEntry(name string, typ byte, data string) []byte {
	b := rawHeader(name, typ, int64(len(data)))
	b = append(b, data...)
	if pad := len(data) % 512; pad != 0 {
		b = append(b, make([]byte, 512-pad)...)
	}
	return b
}

// rawTar concatenates entries and the end marker.
func rawTar(entries ...[]byte) []byte {
	var out []byte
	for _, e := range entries {
		out = append(out, e...)
	}
	return append(out, make([]byte, 1024)...)
}
