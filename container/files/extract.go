package files

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/snapshot/apply"
)

// ExtractOptions tune Extract, as the query of `PUT
// /containers/{id}/archive` does.
type ExtractOptions struct {
	// NoOverwriteDirNonDir refuses to replace an existing directory with a
	// non-directory of the archive and the other way round (the docker
	// CLI always sets it).
	NoOverwriteDirNonDir bool
	// CopyUIDGID (docker cp -a) gives every extracted entry the owner of
	// User, looked up in the container's /etc/passwd and /etc/group. With
	// an empty User, or without CopyUIDGID, entries keep the archive's
	// owners: what dockerd 20.10 does.
	CopyUIDGID bool
	// User is the container's configured user ("name", "uid",
	// "name:group", "uid:gid").
	User string
	// Owner, when set, translates every entry's final owner from the
	// container's ids to the host's (a remapped container).
	Owner func(uid, gid int) (int, int)
}

// ErrNotDirectory is dockerd's answer when the extraction point is not a
// directory.
var ErrNotDirectory = errors.New("extraction point is not a directory")

// Extract is `PUT /containers/{id}/archive` (docker cp - ctr:dir): it
// unpacks the uncompressed tar r into dstPath, an existing directory of
// the container whose root filesystem is rootfs (a symlink to one is
// followed inside the root).
//
// The archive is untrusted. Entry names that climb out of dstPath
// ("../x"), hardlinks to outside it and relative symlinks pointing out of
// it are refused as dockerd refuses them; everything is written by the
// hardened layer applier (snapshot/apply), which resolves every path
// inside rootfs, so absolute names, absolute symlinks and entries through
// symlinks (the container's or the archive's own) land inside rootfs and
// nowhere else. Unlike a layer, names starting with ".wh." are refused
// (the applier would read them as whiteouts), and the archive's entry for
// dstPath itself (".") is skipped, leaving the directory's metadata alone,
// as dockerd does.
//
// A missing dstPath is errdefs.ErrNotFound; a dstPath that is not a
// directory is ErrNotDirectory; a bad archive fails with "Error processing
// tar file: ..." (uncategorized, dockerd's 500), possibly after earlier
// entries were written, as with dockerd.
func Extract(rootfs, dstPath string, r io.Reader, o ExtractOptions) error {
	rt, err := openRoot(rootfs)
	if err != nil {
		return err
	}
	defer rt.close()
	abs := path.Join("/", dstPath)
	dirfd, err := rt.openDir(strings.TrimPrefix(abs, "/"))
	switch {
	case err == unix.ENOENT:
		return fmt.Errorf("no such directory in the container: %s: %w", abs, errdefs.ErrNotFound)
	case err == unix.ENOTDIR:
		return ErrNotDirectory
	case err != nil:
		return fmt.Errorf("open %s: %w", abs, err)
	}
	// Where dstPath really is, symlinks followed: the prefix of every
	// entry, so the applier (rooted at rootfs) writes there.
	dst, err := rt.containerPath(dirfd)
	unix.Close(dirfd)
	if err != nil {
		return err
	}
	var idmap apply.IDMapFunc
	if o.CopyUIDGID && o.User != "" {
		uid, gid, err := rt.lookupUser(o.User)
		if err != nil {
			return err
		}
		idmap = func(int, int) (int, int, error) { return uid, gid, nil }
	}
	if o.Owner != nil {
		inner := idmap
		idmap = func(uid, gid int) (int, int, error) {
			if inner != nil {
				var err error
				if uid, gid, err = inner(uid, gid); err != nil {
					return 0, 0, err
				}
			}
			uid, gid = o.Owner(uid, gid)
			return uid, gid, nil
		}
	}

	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		// No syncfs: docker cp is not durable with dockerd either, and
		// syncing the shared filesystem would make every cp pay for
		// everyone's dirty data.
		_, err := apply.Apply(context.Background(), rootfs, pr, apply.Options{IDMap: idmap, NoSync: true})
		pr.CloseWithError(err)
		done <- err
	}()
	x := &extractor{root: rt, dst: strings.TrimPrefix(dst, "/"), tw: tar.NewWriter(pw), opts: o}
	err = x.run(r)
	if err == nil {
		err = x.tw.Close()
	}
	pw.CloseWithError(err)
	applyErr := <-done
	if err == nil || errors.Is(err, io.ErrClosedPipe) {
		err = applyErr
	}
	if err != nil {
		return fmt.Errorf("Error processing tar file: %v", err)
	}
	return nil
}

// extractor checks the archive's entries and hands them, renamed under
// dst, to the applier through tw.
type extractor struct {
	root  *root
	dst   string // dstPath relative to the root, "" for the root
	tw    *tar.Writer
	opts  ExtractOptions
	count int
}

func (x *extractor) run(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		rel, err := x.inside(hdr.Name)
		if err != nil {
			return err
		}
		if rel == "" {
			continue // dstPath itself: dockerd leaves it alone
		}
		if strings.HasPrefix(path.Base(rel), ".wh.") {
			return fmt.Errorf("%q: names starting with .wh. cannot be copied into a container", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeLink:
			target, err := x.inside(hdr.Linkname)
			if err != nil || target == "" {
				return fmt.Errorf("invalid hardlink %q -> %q", path.Join("/"+x.dst, hdr.Linkname), hdr.Linkname)
			}
			hdr.Linkname = x.join(target)
		case tar.TypeSymlink:
			// dockerd's rule: a relative target must stay inside dstPath.
			if !path.IsAbs(hdr.Linkname) {
				t := path.Join(path.Dir(rel), hdr.Linkname)
				if t == ".." || strings.HasPrefix(t, "../") {
					return fmt.Errorf("invalid symlink %q -> %q", "/"+x.join(rel), hdr.Linkname)
				}
			}
		}
		if x.opts.NoOverwriteDirNonDir {
			if err := x.checkOverwrite(rel, hdr); err != nil {
				return err
			}
		}
		hdr.Name = x.join(rel)
		if err := x.tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(x.tw, tr); err != nil {
			return err
		}
		x.count++
	}
}

// inside cleans an entry name relative to dstPath ("" for dstPath
// itself), refusing one that climbs out of it.
func (x *extractor) inside(name string) (string, error) {
	rel := path.Clean("/" + name)
	if c := path.Clean(name); c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%q is outside of %q", name, "/"+x.dst)
	}
	return strings.TrimPrefix(rel, "/"), nil
}

func (x *extractor) join(rel string) string {
	if x.dst == "" {
		return rel
	}
	return x.dst + "/" + rel
}

// checkOverwrite applies NoOverwriteDirNonDir to the entry rel: it looks
// at what is at its place now, resolved as the applier will resolve it.
// The applier must have finished the entries before this one (they may
// have made that place), so a barrier goes first: a pax global header,
// which the applier skips, and whose write returns only once the applier
// has read it, that is after it has applied everything before it.
func (x *extractor) checkOverwrite(rel string, hdr *tar.Header) error {
	if x.count > 0 {
		if err := x.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "barrier",
			PAXRecords: map[string]string{"comment": "berth"}}); err != nil {
			return err
		}
		if err := x.tw.Flush(); err != nil {
			return err
		}
	}
	full := x.join(rel)
	parent, base := path.Split(full)
	fd, err := x.root.openDir(strings.TrimSuffix(parent, "/"))
	if err != nil {
		return nil // no parent yet: nothing to overwrite
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	switch {
	case isDir && hdr.Typeflag != tar.TypeDir:
		return fmt.Errorf("cannot overwrite directory %q with non-directory %q", "/"+full, "/"+x.dst)
	case !isDir && hdr.Typeflag == tar.TypeDir:
		return fmt.Errorf("cannot overwrite non-directory %q with directory %q", "/"+full, "/"+x.dst)
	}
	return nil
}
