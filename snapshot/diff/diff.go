// Package diff turns the changes recorded in an active snapshot back into
// an OCI layer: the overlay upper directory is walked and written as a
// tar stream, overlayfs whiteouts becoming ".wh." entries and opaque
// directories ".wh..wh..opq" entries, while the uncompressed digest (the
// layer's diffID) is computed on the way. The builder and `commit` use it.
//
// The output is deterministic: entries in lexical order of path within
// each directory (opaque marker and whiteouts first, as the image spec
// recommends, then the other entries), numeric ownership only, times
// truncated to seconds, no access or change times, xattrs in PAX records
// sorted by name. Equal trees give byte-equal tars and equal digests.
package diff

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/snapshot"
)

// Names of the OCI whiteout entries.
const (
	WhiteoutPrefix = ".wh."
	WhiteoutOpaque = ".wh..wh..opq"
)

// Overlay's private xattrs: the opaque-directory mark, and those of
// features this code cannot turn into a plain layer.
const (
	overlayPrefix = "trusted.overlay."
	opaqueXattr   = "trusted.overlay.opaque"
	redirectXattr = "trusted.overlay.redirect"
	metacopyXattr = "trusted.overlay.metacopy"
)

// Result describes a written layer.
type Result struct {
	// DiffID is the sha256 digest of the uncompressed tar, as the image
	// config's rootfs.diff_ids lists it.
	DiffID digest.Digest
	// Size is the number of bytes written.
	Size int64
}

// Write writes the changes of the active snapshot that mounts show (as
// returned by Snapshotter.Mounts) to w as a layer tar. For an overlay
// mount the changes are its upper dir; for a writable bind mount (an
// active snapshot with no parent) the whole tree is new. The snapshot
// should not be changed while this runs.
func Write(ctx context.Context, w io.Writer, mounts []snapshot.Mount) (Result, error) {
	if len(mounts) != 1 {
		return Result{}, fmt.Errorf("diff of %d mounts: %w", len(mounts), errdefs.ErrNotImplemented)
	}
	m := mounts[0]
	switch {
	case m.Type == "overlay":
		upper, ok := m.Option("upperdir")
		if !ok {
			return Result{}, fmt.Errorf("diff of a read-only overlay mount: %w", errdefs.ErrInvalidArgument)
		}
		return WriteUpper(ctx, w, upper)
	case m.Type == "bind" && !m.ReadOnly():
		return WriteUpper(ctx, w, m.Source)
	}
	return Result{}, fmt.Errorf("diff of a read-only %s mount: %w", m.Type, errdefs.ErrInvalidArgument)
}

// WriteUpper writes the overlay upper directory upper to w as a layer tar
// and returns its digest and size. Directories made without overlay (a
// plain tree) work too: every entry is then an addition.
//
// Upper dirs made with overlay's redirect_dir or metacopy features are
// refused (ErrNotImplemented): their entries do not hold what they show.
func WriteUpper(ctx context.Context, w io.Writer, upper string) (Result, error) {
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	d := &differ{ctx: ctx, root: upper, tw: tar.NewWriter(cw), links: map[inode]string{}}
	if err := d.dir("", true); err != nil {
		return Result{}, fmt.Errorf("diff of %q: %w", upper, err)
	}
	if err := d.tw.Close(); err != nil {
		return Result{}, fmt.Errorf("diff of %q: %w", upper, err)
	}
	return Result{DiffID: digest.NewDigest(digest.SHA256, h), Size: cw.n}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type inode struct{ dev, ino uint64 }

type differ struct {
	ctx   context.Context
	root  string
	tw    *tar.Writer
	links map[inode]string // first tar name of each multiply-linked file
	buf   []byte
}

// dir writes the entries of the directory rel ("" for the root), whose
// own header has already been written (the root has none).
func (d *differ) dir(rel string, isRoot bool) error {
	full := filepath.Join(d.root, rel)
	ents, err := os.ReadDir(full) // sorted by name
	if err != nil {
		return err
	}
	if !isRoot {
		opaque, err := getxattr(full, opaqueXattr)
		if err != nil {
			return err
		}
		if string(opaque) == "y" {
			if err := d.marker(path.Join(rel, WhiteoutOpaque)); err != nil {
				return err
			}
		}
	}
	// Whiteouts first, then everything else, each in name order.
	var rest []fs.DirEntry
	for _, e := range ents {
		if e.Type()&fs.ModeCharDevice == 0 {
			rest = append(rest, e)
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(full, e.Name()), &st); err != nil {
			return err
		}
		if st.Rdev != 0 {
			rest = append(rest, e)
			continue
		}
		if err := d.marker(path.Join(rel, WhiteoutPrefix+e.Name())); err != nil {
			return err
		}
	}
	for _, e := range rest {
		if err := d.ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(e.Name(), WhiteoutPrefix) {
			return fmt.Errorf("%q: a file name starting with %q cannot be put in a layer: %w",
				path.Join(rel, e.Name()), WhiteoutPrefix, errdefs.ErrInvalidArgument)
		}
		if err := d.entry(path.Join(rel, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// marker writes a whiteout or opaque entry. It carries the epoch as its
// time: a deletion has no time of its own worth making the digest vary.
func (d *differ) marker(name string) error {
	return d.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatPAX,
	})
}

// entry writes one file, and recurses into a directory.
func (d *differ) entry(rel string) error {
	full := filepath.Join(d.root, rel)
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		return err
	}
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, 0),
		Format:  tar.FormatPAX,
	}
	xattrs, err := listXattrs(full)
	if err != nil {
		return err
	}
	for name, value := range xattrs {
		if name == redirectXattr || name == metacopyXattr {
			return fmt.Errorf("%q has %s (overlay redirect_dir/metacopy): %w", rel, name, errdefs.ErrNotImplemented)
		}
		if strings.HasPrefix(name, overlayPrefix) {
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+name] = string(value)
	}
	var content bool
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		if st.Nlink > 1 {
			id := inode{uint64(st.Dev), st.Ino}
			if first, ok := d.links[id]; ok {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				break
			}
			d.links[id] = rel
		}
		hdr.Size = st.Size
		content = true
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		if hdr.Linkname, err = os.Readlink(full); err != nil {
			return err
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFSOCK:
		return nil // sockets cannot be archived (Docker skips them too)
	default:
		return fmt.Errorf("%q: unknown file type %o", rel, st.Mode&unix.S_IFMT)
	}
	if err := d.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%q: %w", rel, err)
	}
	if content {
		if err := d.copyFile(full, hdr.Size); err != nil {
			return fmt.Errorf("%q: %w", rel, err)
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		return d.dir(rel, false)
	}
	return nil
}

func (d *differ) copyFile(full string, size int64) error {
	f, err := os.Open(full)
	if err != nil {
		return err
	}
	defer f.Close()
	if d.buf == nil {
		d.buf = make([]byte, 128<<10)
	}
	n, err := io.CopyBuffer(d.tw, io.LimitReader(f, size), d.buf)
	if err == nil && n != size {
		err = fmt.Errorf("file shrank from %d to %d bytes while being read", size, n)
	}
	return err
}

// listXattrs returns the extended attributes of a file, not following a
// final symlink.
func listXattrs(p string) (map[string][]byte, error) {
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			err = nil
		}
		return nil, err
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, fmt.Errorf("listxattr %q: %w", p, err)
	}
	out := map[string][]byte{}
	names := bytes.Split(buf[:size], []byte{0})
	sort.Slice(names, func(i, j int) bool { return bytes.Compare(names[i], names[j]) < 0 })
	for _, n := range names {
		if len(n) == 0 {
			continue
		}
		v, err := getxattr(p, string(n))
		if err != nil {
			return nil, err
		}
		out[string(n)] = v
	}
	return out, nil
}

// getxattr reads one attribute (nil when absent), not following a final
// symlink.
func getxattr(p, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		switch {
		case errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case errors.Is(err, unix.ERANGE):
			size, err := unix.Lgetxattr(p, name, nil)
			if err != nil {
				return nil, fmt.Errorf("getxattr %q %s: %w", p, name, err)
			}
			buf = make([]byte, size)
			continue
		case err != nil:
			return nil, fmt.Errorf("getxattr %q %s: %w", p, name, err)
		}
		return buf[:n], nil
	}
}
