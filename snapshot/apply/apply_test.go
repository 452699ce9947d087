package apply

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		// The package creates devices and sets owners and trusted xattrs;
		// CI runs as root. Say so loudly instead of testing half of it.
		println("snapshot/apply: tests need root")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func TestEntryTypesAndMetadata(t *testing.T) {
	s := newSandbox(t)
	mt := time.Date(2021, 5, 6, 7, 8, 9, 123456789, time.UTC)
	at := time.Date(2022, 1, 1, 0, 0, 0, 5, time.UTC)

	suid := reg("usr/bin/su", "#!su")
	suid.hdr.Mode, suid.hdr.Uid, suid.hdr.Gid = 0o4755, 1000, 1001
	suid.hdr.ModTime, suid.hdr.AccessTime = mt, at
	suid.hdr.Format = tar.FormatPAX // nanoseconds and atime

	capped := reg("usr/bin/ping", "ping")
	capped.hdr.Mode = 0o755
	// cap_net_raw+ep, as setcap writes it (VFS_CAP_REVISION_2).
	capVal := string([]byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	capped.hdr.PAXRecords = map[string]string{
		"SCHILY.xattr.security.capability": capVal,
		"SCHILY.xattr.user.note":           "hello",
	}
	capped.hdr.Uid = 42 // chown must come before the capability, or it clears it

	shared := dir("shared")
	shared.hdr.Mode, shared.hdr.Gid = 0o2775, 50
	tmp := dir("tmp")
	tmp.hdr.Mode = 0o1777
	usr := dir("usr")
	usr.hdr.ModTime = mt
	private := dir("private")
	private.hdr.Mode, private.hdr.Uid = 0o700, 7

	ln := sym("usr/bin/sh", "/bin/busybox")
	ln.hdr.Uid, ln.hdr.Gid, ln.hdr.ModTime = 5, 6, mt

	null := ent{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: mt}}
	loop := ent{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/loop0", Mode: 0o660, Gid: 6, Devmajor: 7, Devminor: 0, ModTime: mt}}
	fifo := ent{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "run/initctl", Mode: 0o600, ModTime: mt}}
	umasked := reg("etc/shadow", "x")
	umasked.hdr.Mode = 0o666 // the process umask (022) must not apply

	st := s.mustApply(Options{},
		usr, dir("usr/bin"), suid, capped, ln,
		link("usr/bin/su-again", "usr/bin/su"),
		shared, reg("shared/f", "g"), tmp, private, reg("private/secret", "s"),
		null, loop, fifo, umasked,
	)
	want := Stats{Entries: 15, Files: 5, Dirs: 5, Symlinks: 1, Hardlinks: 1, Devices: 2, Fifos: 1, Bytes: 4 + 4 + 1 + 1 + 1}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}

	su := s.lstat("usr/bin/su") // before reading it updates the atime
	if c := s.content("usr/bin/su"); c != "#!su" {
		t.Errorf("content %q", c)
	}
	if su.Mode&0o7777 != 0o4755 || su.Uid != 1000 || su.Gid != 1001 {
		t.Errorf("su: mode %o uid %d gid %d (setuid must survive chown)", su.Mode&0o7777, su.Uid, su.Gid)
	}
	if su.Mtim.Sec != mt.Unix() || su.Mtim.Nsec != int64(mt.Nanosecond()) || su.Atim.Sec != at.Unix() || su.Atim.Nsec != 5 {
		t.Errorf("su times: mtime %v atime %v", su.Mtim, su.Atim)
	}
	if again := s.lstat("usr/bin/su-again"); again.Ino != su.Ino || again.Nlink != 2 {
		t.Errorf("hardlink: ino %d vs %d, nlink %d", again.Ino, su.Ino, again.Nlink)
	}
	if v, ok := s.xattr("usr/bin/ping", "security.capability"); !ok || v != capVal {
		t.Errorf("security.capability = %x, %v", v, ok)
	}
	if v, _ := s.xattr("usr/bin/ping", "user.note"); v != "hello" {
		t.Errorf("user.note = %q", v)
	}
	if p := s.lstat("usr/bin/ping"); p.Uid != 42 {
		t.Errorf("ping uid %d", p.Uid)
	}
	if l, _ := os.Readlink(s.p("usr/bin/sh")); l != "/bin/busybox" {
		t.Errorf("symlink -> %q", l)
	}
	if sh := s.lstat("usr/bin/sh"); sh.Uid != 5 || sh.Gid != 6 || sh.Mtim.Sec != mt.Unix() {
		t.Errorf("symlink owner %d:%d mtime %d", sh.Uid, sh.Gid, sh.Mtim.Sec)
	}
	if d := s.lstat("shared"); d.Mode&0o7777 != 0o2775 || d.Gid != 50 {
		t.Errorf("shared: mode %o gid %d", d.Mode&0o7777, d.Gid)
	}
	if f := s.lstat("shared/f"); f.Gid != 0 {
		t.Errorf("file in setgid dir: gid %d, want the entry's 0", f.Gid)
	}
	if d := s.lstat("tmp"); d.Mode&0o7777 != 0o1777 {
		t.Errorf("tmp mode %o", d.Mode&0o7777)
	}
	if d := s.lstat("private"); d.Mode&0o7777 != 0o700 || d.Uid != 7 {
		t.Errorf("private mode %o uid %d", d.Mode&0o7777, d.Uid)
	}
	// Directory times are set after their content was written.
	if d := s.lstat("usr"); d.Mtim.Sec != mt.Unix() {
		t.Errorf("usr mtime %v, want %v", time.Unix(d.Mtim.Sec, 0), mt)
	}
	if d := s.lstat("usr/bin"); d.Mtim.Sec != t0.Unix() {
		t.Errorf("usr/bin mtime %v, want %v", time.Unix(d.Mtim.Sec, 0), t0)
	}
	n := s.lstat("dev/null")
	if typeOf(n) != unix.S_IFCHR || n.Rdev != unix.Mkdev(1, 3) || n.Mode&0o7777 != 0o666 {
		t.Errorf("dev/null: mode %o rdev %x", n.Mode, n.Rdev)
	}
	if b := s.lstat("dev/loop0"); typeOf(b) != unix.S_IFBLK || b.Rdev != unix.Mkdev(7, 0) || b.Gid != 6 || b.Mode&0o777 != 0o660 {
		t.Errorf("dev/loop0: mode %o rdev %x gid %d", b.Mode, b.Rdev, b.Gid)
	}
	if f := s.lstat("run/initctl"); typeOf(f) != unix.S_IFIFO || f.Mode&0o777 != 0o600 {
		t.Errorf("fifo mode %o", f.Mode)
	}
	if f := s.lstat("etc/shadow"); f.Mode&0o777 != 0o666 {
		t.Errorf("umask applied: mode %o", f.Mode&0o777)
	}
	// Implicit parents: 0755, root.
	if d := s.lstat("dev"); d.Mode&0o7777 != 0o755 || d.Uid != 0 || d.Gid != 0 {
		t.Errorf("implicit dev: mode %o owner %d:%d", d.Mode&0o7777, d.Uid, d.Gid)
	}
}

func TestRootEntry(t *testing.T) {
	s := newSandbox(t)
	r := dir("./")
	r.hdr.Mode, r.hdr.Uid = 0o750, 3
	s.mustApply(Options{}, r, reg("./a", "a"))
	if st := s.lstat(""); st.Mode&0o7777 != 0o750 || st.Uid != 3 || st.Mtim.Sec != t0.Unix() {
		t.Errorf("root: mode %o uid %d mtime %d", st.Mode&0o7777, st.Uid, st.Mtim.Sec)
	}
	if _, err := s.apply(Options{}, layer(t, reg(".", ""))); !errors.Is(err, ErrUnsafe) {
		t.Errorf("file replacing root: %v", err)
	}
}

func TestIDMap(t *testing.T) {
	s := newSandbox(t)
	f := reg("a/f", "x")
	f.hdr.Uid, f.hdr.Gid = 1, 2
	s.mustApply(Options{IDMap: func(u, g int) (int, int, error) { return u + 100000, g + 100000, nil }}, f)
	if st := s.lstat("a/f"); st.Uid != 100001 || st.Gid != 100002 {
		t.Errorf("mapped owner %d:%d", st.Uid, st.Gid)
	}
	if st := s.lstat("a"); st.Uid != 100000 || st.Gid != 100000 {
		t.Errorf("implicit parent owner %d:%d, want mapped root", st.Uid, st.Gid)
	}
	_, err := s.apply(Options{IDMap: func(u, g int) (int, int, error) { return 0, 0, errors.New("unmapped") }}, layer(t, reg("b", "")))
	if err == nil || !strings.Contains(err.Error(), "unmapped") {
		t.Errorf("IDMap error: %v", err)
	}
}

// Later entries replace earlier ones, in the layer and below, as Docker does.
func TestReplace(t *testing.T) {
	s := newSandbox(t)
	lower := reg("d/keep", "lower")
	s.mustApply(Options{},
		reg("f2d", "file"), dir("d2f"), reg("d2f/child", "c"), sym("l2d", "/x"),
		dir("d"), lower, reg("hl", "shared"), link("hl2", "hl"),
	)
	newD := dir("d")
	newD.hdr.Mode, newD.hdr.Uid = 0o711, 9
	s.mustApply(Options{},
		dir("f2d"), reg("f2d/in", "in"),
		reg("d2f", "now a file"),
		dir("l2d"),
		newD, reg("d/new", "n"),
		reg("dup", "first"), reg("dup", "second"),
		reg("hl", "replaced"), // must not write through the lower hardlink
	)
	if st := s.lstat("f2d"); typeOf(st) != unix.S_IFDIR || s.content("f2d/in") != "in" {
		t.Error("file -> dir")
	}
	if st := s.lstat("d2f"); typeOf(st) != unix.S_IFREG || s.content("d2f") != "now a file" {
		t.Error("dir -> file")
	}
	if st := s.lstat("l2d"); typeOf(st) != unix.S_IFDIR {
		t.Error("symlink -> dir")
	}
	if s.content("d/keep") != "lower" || s.content("d/new") != "n" {
		t.Error("dir over dir must merge")
	}
	if st := s.lstat("d"); st.Mode&0o7777 != 0o711 || st.Uid != 9 {
		t.Errorf("merged dir takes new metadata: mode %o uid %d", st.Mode&0o7777, st.Uid)
	}
	if s.content("dup") != "second" {
		t.Error("duplicate entry: the last must win")
	}
	if s.content("hl") != "replaced" || s.content("hl2") != "shared" {
		t.Errorf("hardlink written through: hl=%q hl2=%q", s.content("hl"), s.content("hl2"))
	}
}

func TestWhiteoutsFullTree(t *testing.T) {
	s := newSandbox(t)
	s.mustApply(Options{},
		dir("etc"), reg("etc/gone", "x"), reg("etc/kept", "x"),
		dir("var/cache"), reg("var/cache/a", "a"), dir("var/cache/sub"), reg("var/cache/sub/b", "b"),
		dir("opq"), reg("opq/old", "o"), dir("opq/olddir"), reg("opq/olddir/x", "x"),
		sym("lnk", "/etc"),
	)
	st := s.mustApply(Options{},
		reg("etc/.wh.gone", ""),
		reg("var/.wh.cache", ""), // a whole tree
		reg("opq/early", "e"),    // same layer, before the marker: kept
		reg("opq/.wh..wh..opq", ""),
		reg("opq/late", "l"),
		reg("new", "n"), reg(".wh.new", ""), // same layer: whiteout does not apply
		reg(".wh.lnk", ""),      // removes the symlink, not /etc
		reg(".wh.missing", ""),  // nothing to delete: fine
		reg("nodir/.wh.x", ""),  // parent missing: fine
		reg(".wh..wh.plnk", ""), // AUFS metadata: skipped
	)
	for rel, want := range map[string]bool{
		"etc/gone": false, "etc/kept": true, "var/cache": false, "var": true,
		"opq/old": false, "opq/olddir": false, "opq/early": true, "opq/late": true,
		"new": true, "lnk": false, "etc": true, ".wh..wh.plnk": false, "nodir/.wh.x": false,
	} {
		if got := s.exists(rel); got != want {
			t.Errorf("%s exists: %v, want %v", rel, got, want)
		}
	}
	if st.Whiteouts != 5 || st.Opaques != 1 || st.Skipped != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestOverlayWhiteouts(t *testing.T) {
	s := newSandbox(t)
	st := s.mustApply(Options{Overlay: true},
		dir("etc"), reg("etc/.wh.gone", ""),
		dir("opq"), reg("opq/.wh..wh..opq", ""), reg("opq/new", "n"),
		reg("deep/er/.wh.x", ""),
	)
	for _, rel := range []string{"etc/gone", "deep/er/x"} {
		w := s.lstat(rel)
		if typeOf(w) != unix.S_IFCHR || w.Rdev != 0 {
			t.Errorf("%s: mode %o rdev %d, want a 0/0 char device", rel, w.Mode, w.Rdev)
		}
	}
	if v, ok := s.xattr("opq", "trusted.overlay.opaque"); !ok || v != "y" {
		t.Errorf("opaque xattr %q %v", v, ok)
	}
	if s.exists("etc/.wh.gone") || s.exists("opq/.wh..wh..opq") {
		t.Error("whiteout files were written as files")
	}
	if st.Whiteouts != 2 || st.Opaques != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestOverlayMount checks the overlay mode against the kernel: a lower layer
// applied in full-tree mode, an upper in overlay mode, mounted together.
func TestOverlayMount(t *testing.T) {
	base := t.TempDir()
	lower, upper, work, merged := filepath.Join(base, "l"), filepath.Join(base, "u"), filepath.Join(base, "w"), filepath.Join(base, "m")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if _, err := Apply(ctx, lower, bytes.NewReader(layer(t,
		dir("etc"), reg("etc/gone", "x"), reg("etc/kept", "k"),
		dir("opq"), reg("opq/old", "o"), dir("opq/sub"), reg("opq/sub/x", "x"),
	)), Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(ctx, upper, bytes.NewReader(layer(t,
		dir("etc"), reg("etc/.wh.gone", ""),
		dir("opq"), reg("opq/.wh..wh..opq", ""), reg("opq/new", "n"),
	)), Options{Overlay: true}); err != nil {
		t.Fatal(err)
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	var names []string
	filepath.WalkDir(merged, func(p string, d os.DirEntry, err error) error {
		if p != merged {
			rel, _ := filepath.Rel(merged, p)
			names = append(names, rel)
		}
		return nil
	})
	if got, want := strings.Join(names, " "), "etc etc/kept opq opq/new"; got != want {
		t.Errorf("merged tree %q, want %q", got, want)
	}
}

func TestDevicePolicy(t *testing.T) {
	s := newSandbox(t)
	dev := ent{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/mem", Mode: 0o600, Devmajor: 1, Devminor: 1}}
	fifo := ent{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "p", Mode: 0o600}}
	var logged []string
	st, err := s.apply(Options{Devices: DevicesSkip, Logf: func(f string, a ...any) { logged = append(logged, f) }}, layer(t, dev, fifo))
	if err != nil || st.Skipped != 1 || s.exists("dev/mem") || !s.exists("p") || len(logged) != 1 {
		t.Errorf("skip: err %v stats %+v logged %q", err, st, logged)
	}
	if _, err := s.apply(Options{Devices: DevicesRefuse}, layer(t, dev)); !errors.Is(err, ErrUnsafe) {
		t.Errorf("refuse: %v", err)
	}
	if s.exists("dev/mem") {
		t.Error("refused device was created")
	}
}

func TestSparseFile(t *testing.T) {
	s := newSandbox(t)
	// A PAX 1.0 sparse file written by hand (archive/tar cannot write
	// one): 1 MiB logical, 4 bytes of data at offset 512 KiB.
	data := "DATA"
	block := make([]byte, 512)
	copy(block, "1\n524288\n4\n")
	pax := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", "sparse") + paxRecord("GNU.sparse.realsize", "1048576")
	tb := rawTar(rawEntry("PaxHeaders/sparse", 'x', pax), rawEntry("GNUSparseFile.0/sparse", '0', string(block)+data))
	if _, err := s.apply(Options{}, tb); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(s.p("sparse"))
	if len(b) != 1<<20 || string(b[524288:524292]) != data {
		t.Errorf("sparse file: %d bytes", len(b))
	}
	// Its logical size counts against the cap.
	if _, err := s.apply(Options{MaxFileSize: 1 << 19}, tb); !errors.Is(err, ErrLimit) {
		t.Errorf("sparse over the cap: %v", err)
	}
}

func TestContextCanceled(t *testing.T) {
	s := newSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, s.root, bytes.NewReader(layer(t, reg("a", "a"))), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v", err)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Apply consumes the whole stream, padding included, so a digest over it
// is complete.
func TestReadsToEnd(t *testing.T) {
	s := newSandbox(t)
	tb := append(layer(t, reg("a", "a")), make([]byte, 10240)...)
	cr := &countingReader{r: bytes.NewReader(tb)}
	if _, err := Apply(context.Background(), s.root, cr, Options{}); err != nil {
		t.Fatal(err)
	}
	if cr.n != int64(len(tb)) {
		t.Errorf("read %d of %d bytes", cr.n, len(tb))
	}
}

func TestMissingRoot(t *testing.T) {
	_, err := Apply(context.Background(), filepath.Join(t.TempDir(), "nope"), bytes.NewReader(nil), Options{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err %v", err)
	}
}
