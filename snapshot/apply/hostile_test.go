package apply

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/compression"
	"golang.org/x/sys/unix"
)

// anyErr marks a case that must fail, with no particular category (the
// tar reader refuses it, or the kernel does).
var anyErr = errors.New("any error")

// Every hostile case runs in a sandbox whose canary directory (next to
// root) is checked to be untouched afterwards (newSandbox's cleanup).
func TestHostileLayers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tar   func(s *sandbox) []byte
		opts  Options
		want  error // nil: neutralised, the layer applies
		check func(t *testing.T, s *sandbox)
	}{{
		name: "dotdot path refused",
		tar:  func(s *sandbox) []byte { return layer(t, reg("../canary/file", "pwned")) },
		want: ErrUnsafe,
	}, {
		name: "dotdot deep path refused",
		tar:  func(s *sandbox) []byte { return layer(t, reg("a/b/../../../../canary/new", "pwned")) },
		want: ErrUnsafe,
	}, {
		name: "dotdot that stays inside is cleaned",
		tar:  func(s *sandbox) []byte { return layer(t, reg("a/../b", "ok")) },
		check: func(t *testing.T, s *sandbox) {
			if s.content("b") != "ok" || s.exists("a") {
				t.Error("a/../b not cleaned to b")
			}
		},
	}, {
		name: "absolute path lands inside root",
		tar:  func(s *sandbox) []byte { return layer(t, reg(s.canary+"/file", "inside"), reg("/etc/x", "x")) },
		check: func(t *testing.T, s *sandbox) {
			if s.content(s.canary+"/file") != "inside" || s.content("etc/x") != "x" {
				t.Error("absolute names not taken relative to root")
			}
		},
	}, {
		name: "symlink to host dir used as parent",
		tar: func(s *sandbox) []byte {
			return layer(t, sym("evil", s.canary), reg("evil/file", "pwned"), reg("evil/newfile", "pwned"))
		},
		want: errNotDir, // root/<canary path> does not exist inside root
	}, {
		name: "relative symlink out used as parent",
		tar: func(s *sandbox) []byte {
			return layer(t, sym("evil", "../../../canary"), reg("evil/file", "pwned"))
		},
		want: errNotDir,
	}, {
		name: "symlink out resolves inside root (chroot semantics)",
		tar: func(s *sandbox) []byte {
			return layer(t, dir(s.canary), sym("evil", s.canary), reg("evil/file", "contained"),
				sym("up", "../../.."), reg("up/x", "top"))
		},
		check: func(t *testing.T, s *sandbox) {
			if s.content(s.canary+"/file") != "contained" || s.content("x") != "top" {
				t.Error("symlinked parents not resolved inside root")
			}
		},
	}, {
		name: "symlink swapped for a dir already used as parent",
		tar: func(s *sandbox) []byte {
			// The parent cache must not keep resolving "d" to the old dir.
			return layer(t, dir("d"), reg("d/a", "1"), sym("d", s.canary), reg("d/b", "pwned"))
		},
		want: errNotDir,
	}, {
		name: "file over symlink replaces the link",
		tar: func(s *sandbox) []byte {
			return layer(t, sym("evil", s.canary+"/file"), reg("evil", "replaced"))
		},
		check: func(t *testing.T, s *sandbox) {
			if st := s.lstat("evil"); typeOf(st) != unix.S_IFREG || s.content("evil") != "replaced" {
				t.Error("file did not replace the symlink")
			}
		},
	}, {
		name: "dir over symlink replaces the link",
		tar: func(s *sandbox) []byte {
			return layer(t, sym("evil", s.canary), dir("evil"), reg("evil/file", "inside"))
		},
		check: func(t *testing.T, s *sandbox) {
			if st := s.lstat("evil"); typeOf(st) != unix.S_IFDIR || s.content("evil/file") != "inside" {
				t.Error("dir did not replace the symlink")
			}
		},
	}, {
		name: "device and fifo over symlink",
		tar: func(s *sandbox) []byte {
			return layer(t, sym("a", s.canary+"/file"), sym("b", s.canary+"/passwd"),
				ent{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "a", Mode: 0o666, Devmajor: 1, Devminor: 3}},
				ent{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "b", Mode: 0o600}})
		},
	}, {
		name: "hardlink to dotdot refused",
		tar:  func(s *sandbox) []byte { return layer(t, link("x", "../canary/file")) },
		want: ErrUnsafe,
	}, {
		name: "hardlink to absolute host path stays in root",
		tar:  func(s *sandbox) []byte { return layer(t, link("x", s.canary+"/file")) },
		want: ErrUnsafe, // root/<canary>/file does not exist
	}, {
		name: "hardlink through symlink to host",
		tar: func(s *sandbox) []byte {
			return layer(t, sym("evil", s.canary), link("x", "evil/file"))
		},
		want: ErrUnsafe,
	}, {
		name: "hardlink to symlink links the symlink",
		tar: func(s *sandbox) []byte {
			return layer(t, sym("evil", s.canary+"/file"), link("x", "evil"))
		},
		check: func(t *testing.T, s *sandbox) {
			if st := s.lstat("x"); typeOf(st) != unix.S_IFLNK {
				t.Errorf("x: mode %o, want the symlink itself", st.Mode)
			}
		},
	}, {
		name: "hardlink to root refused",
		tar:  func(s *sandbox) []byte { return layer(t, link("x", "/")) },
		want: ErrUnsafe,
	}, {
		name: "hardlink to itself refused",
		tar:  func(s *sandbox) []byte { return layer(t, reg("x", "1"), link("x", "x")) },
		want: ErrUnsafe,
	}, {
		name: "hardlink to a directory refused by the kernel",
		tar:  func(s *sandbox) []byte { return layer(t, dir("d"), link("x", "d")) },
		want: anyErr,
	}, {
		name: "whiteout with dotdot refused",
		tar:  func(s *sandbox) []byte { return layer(t, reg("../.wh.canary", "")) },
		want: ErrUnsafe,
	}, {
		name: "whiteout of dotdot refused",
		tar:  func(s *sandbox) []byte { return layer(t, reg("a/.wh..", "")) },
		want: ErrUnsafe,
	}, {
		name: "whiteout of empty name refused",
		tar:  func(s *sandbox) []byte { return layer(t, reg(".wh.", "")) },
		want: ErrUnsafe,
	}, {
		name: "whiteout through symlink to host",
		tar: func(s *sandbox) []byte {
			return layer(t, sym("evil", s.canary), reg("evil/.wh.file", ""), reg("evil/.wh.dir", ""))
		},
	}, {
		name: "whiteout of absolute host path",
		tar:  func(s *sandbox) []byte { return layer(t, reg(s.canary+"/.wh.file", "")) },
	}, {
		name: "overlay whiteout through symlink to host",
		tar: func(s *sandbox) []byte {
			return layer(t, sym("evil", s.canary), reg("evil/.wh.file", ""))
		},
		opts: Options{Overlay: true},
		want: errNotDir,
	}, {
		name: "opaque marker through symlink to host",
		tar: func(s *sandbox) []byte {
			return layer(t, sym("evil", s.canary), reg("evil/.wh..wh..opq", ""))
		},
		want: errNotDir,
	}, {
		name: "overlay opaque through symlink to host",
		tar: func(s *sandbox) []byte {
			return layer(t, sym("evil", s.canary), reg("evil/.wh..wh..opq", ""))
		},
		opts: Options{Overlay: true},
		want: errNotDir,
	}, {
		name: "opaque at a symlink to a dir inside root clears only inside",
		tar: func(s *sandbox) []byte {
			return layer(t, dir("real"), sym("evil", "/real"), reg("evil/.wh..wh..opq", ""))
		},
	}, {
		name: "header size over the cap",
		tar: func(s *sandbox) []byte {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "big", Size: 1 << 40, Mode: 0o644})
			tw.Flush() // header only: the content never comes
			return buf.Bytes()
		},
		opts: Options{MaxFileSize: 1 << 30},
		want: ErrLimit,
	}, {
		name: "total size over the cap",
		tar: func(s *sandbox) []byte {
			return layer(t, reg("a", strings.Repeat("a", 600)), reg("b", strings.Repeat("b", 600)))
		},
		opts: Options{MaxTotalSize: 1000},
		want: ErrLimit,
	}, {
		name: "too many entries",
		tar: func(s *sandbox) []byte {
			var ents []ent
			for range 11 {
				ents = append(ents, reg(".wh.x", ""))
			}
			return layer(t, ents...)
		},
		opts: Options{MaxEntries: 10},
		want: ErrLimit,
	}, {
		name: "device refused",
		tar: func(s *sandbox) []byte {
			return layer(t, ent{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "sda", Mode: 0o660, Devmajor: 8}})
		},
		opts: Options{Devices: DevicesRefuse},
		want: ErrUnsafe,
	}, {
		name: "NUL in a PAX path refused",
		tar: func(s *sandbox) []byte {
			return rawTar(rawEntry("x", 'x', paxRecord("path", "a\x00/../../canary/file")), rawEntry("a", '0', "pwned"))
		},
		want: anyErr,
	}, {
		name: "name longer than PATH_MAX",
		tar: func(s *sandbox) []byte {
			return layer(t, reg(strings.Repeat("a/", 2100)+"f", "x"))
		},
		want: ErrUnsafe,
	}, {
		name: "component longer than NAME_MAX",
		tar:  func(s *sandbox) []byte { return layer(t, reg(strings.Repeat("n", 300), "x")) },
		want: ErrUnsafe,
	}, {
		name: "symlink target longer than PATH_MAX",
		tar:  func(s *sandbox) []byte { return layer(t, sym("l", strings.Repeat("t", 5000))) },
		want: ErrUnsafe,
	}, {
		name: "unknown entry type",
		tar:  func(s *sandbox) []byte { return rawTar(rawEntry("v", 'V', "")) },
		want: ErrUnsafe,
	}, {
		name: "uid that means 'unchanged' to chown",
		tar: func(s *sandbox) []byte {
			f := reg("f", "x")
			f.hdr.Uid = 1<<32 - 1
			return layer(t, f)
		},
		want: ErrUnsafe,
	}, {
		name: "overlay xattrs dropped",
		tar: func(s *sandbox) []byte {
			d := dir("d")
			d.hdr.PAXRecords = map[string]string{
				"SCHILY.xattr.trusted.overlay.redirect": "/etc",
				"SCHILY.xattr.trusted.overlay.opaque":   "y",
				"SCHILY.xattr.user.overlay.metacopy":    "",
			}
			return layer(t, d)
		},
		check: func(t *testing.T, s *sandbox) {
			for _, x := range []string{"trusted.overlay.redirect", "trusted.overlay.opaque", "user.overlay.metacopy"} {
				if _, ok := s.xattr("d", x); ok {
					t.Errorf("%s was set", x)
				}
			}
		},
	}, {
		name: "duplicate entries: the last wins",
		tar: func(s *sandbox) []byte {
			return layer(t, reg("f", "1"), dir("f"), reg("f/x", "x"), sym("f", s.canary), reg("f", "last"))
		},
		check: func(t *testing.T, s *sandbox) {
			if s.content("f") != "last" {
				t.Error("last entry did not win")
			}
		},
	}, {
		name: "truncated layer",
		tar: func(s *sandbox) []byte {
			b := layer(t, reg("f", strings.Repeat("x", 4096)))
			return b[:1024]
		},
		want: anyErr,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			_, err := s.apply(tc.opts, tc.tar(s))
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("want the layer neutralised and applied, got %v", err)
			case tc.want == anyErr && err == nil:
				t.Fatal("want an error")
			case tc.want != nil && tc.want != anyErr && !errors.Is(err, tc.want):
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if err != nil {
				t.Logf("refused: %v", err)
				if (tc.want == ErrUnsafe || tc.want == ErrLimit) && !errdefs.IsInvalidArgument(err) {
					t.Errorf("not in the invalid-argument category: %v", err)
				}
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

// A hostile layer that also symlinks to the host must not be able to make a
// lower layer's content reachable: full-tree whiteouts below an existing
// symlinked dir delete inside root.
func TestWhiteoutThroughSymlinkInsideRoot(t *testing.T) {
	s := newSandbox(t)
	s.mustApply(Options{}, dir("real"), reg("real/victim", "v"), sym("via", "/real"))
	s.mustApply(Options{}, reg("via/.wh.victim", ""))
	if s.exists("real/victim") {
		t.Error("whiteout through an in-root symlink should act inside root (chroot semantics)")
	}
}

func TestDecompressionBomb(t *testing.T) {
	s := newSandbox(t)
	// 64 MiB of zeros in one file: a few hundred KiB of gzip.
	var gz bytes.Buffer
	w, err := compression.Compress(&gz, compression.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(w)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bomb", Size: 64 << 20, Mode: 0o644})
	zeros := make([]byte, 1<<20)
	for range 64 {
		tw.Write(zeros)
	}
	tw.Close()
	w.Close()
	rc, kind, err := compression.DecompressStream(&gz)
	if err != nil || kind != compression.Gzip {
		t.Fatal(kind, err)
	}
	defer rc.Close()
	_, err = Apply(context.Background(), s.root, compression.NewLimitReader(rc, 4<<20), Options{})
	if !errors.Is(err, compression.ErrTooLarge) || !errdefs.IsInvalidArgument(err) {
		t.Fatalf("err %v, want compression.ErrTooLarge", err)
	}
	if fi, err := os.Stat(s.p("bomb")); err == nil && fi.Size() > 4<<20 {
		t.Errorf("wrote %d bytes past the cap", fi.Size())
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"a": "a", "/a": "a", "./a/": "a", "a//b/./c": "a/b/c", "a/../b": "b",
		".": "", "/": "", "./": "", "//": "", "": "",
	} {
		if got, err := cleanName(in); err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"..", "../a", "/../a", "a/../../b", "a\x00b", strings.Repeat("x", 4096), strings.Repeat("y", 256)} {
		if got, err := cleanName(in); !errors.Is(err, ErrUnsafe) {
			t.Errorf("cleanName(%.20q) = %q, %v; want ErrUnsafe", in, got, err)
		}
	}
}
