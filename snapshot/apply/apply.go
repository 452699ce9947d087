// Package apply owns layer unpacking: it applies one uncompressed OCI or
// Docker layer tar onto a directory. It is the boundary where untrusted
// image content meets the host filesystem, so every path is resolved by the
// kernel inside the target directory (openat2 RESOLVE_IN_ROOT) and every
// final component is created or changed without following symlinks: a layer
// can change anything under its root and nothing outside it.
//
// Two modes share the code:
//
//   - Full tree (Options.Overlay false): root holds the layers below already
//     (or is empty); whiteouts delete entries of those layers.
//   - Overlay (Options.Overlay true): root is the layer's own overlayfs upper
//     directory; whiteouts are written the way overlayfs reads them: a
//     character device 0/0 for a deleted entry, the xattr
//     trusted.overlay.opaque=y for an opaque directory.
//
// # Semantics
//
// Regular files, directories, symlinks, hardlinks, character and block
// devices and fifos are created with their ownership (optionally mapped by
// Options.IDMap), mode bits including setuid, setgid and sticky (chmod after
// chown, since chown clears setuid), PAX xattrs (SCHILY.xattr.*, including
// security.capability, set after chown which clears it) and modification and
// access times. Directory times are set after the whole layer, when their
// content can no longer change them. Missing parent directories are created
// with mode 0755 owned by the (mapped) root user, as Docker does.
//
// A later entry replaces an earlier one of the same name, in the layer or
// below (duplicate entries: the last one wins, as with Docker and tar -x): a
// directory over a directory merges and takes the new metadata; any other
// combination removes the old entry (recursively for a directory) first. An
// existing file is never opened for writing: it is unlinked and created
// anew, so a hardlink of a lower layer is not written through.
//
// Whiteouts (.wh.NAME) and opaque markers (.wh..wh..opq) only affect the
// layers below, as the OCI image spec says: an entry created earlier in the
// same layer is kept. Other .wh..wh.* names are AUFS metadata and are
// skipped, as Docker does. Hardlinks carry no metadata of their own: they
// share the inode of their target, which must already exist under root
// (earlier in this layer, or in full-tree mode in a layer below).
//
// # Hostile layers
//
// Refused (Apply fails with an error wrapping ErrUnsafe or ErrLimit, both in
// errdefs.ErrInvalidArgument): names that climb out of root after cleaning
// ("../x", "a/../../x"), also as hardlink targets and whiteouts; names with
// NUL bytes, longer than PATH_MAX or with a component over NAME_MAX; a
// whiteout of "", "." or ".."; a non-directory entry for root itself;
// unknown entry types; ids outside 0..2^32-2; header sizes over
// Options.MaxFileSize, a total over Options.MaxTotalSize, more entries than
// Options.MaxEntries; devices when Options.Devices is DevicesRefuse; a parent
// path that exists but is not a directory.
//
// Neutralised: absolute names are taken relative to root ("/etc/x" is
// root/etc/x, as Docker does); symlinks are created verbatim (absolute
// targets are normal in images) but never followed out of root: when a later
// entry, hardlink target or whiteout has a symlink as a path component, it
// is resolved as if root were "/" (chroot semantics, what Docker gets by
// unpacking in a chroot), so "evil -> /etc" then "evil/passwd" is
// root/etc/passwd. xattrs in the overlay namespaces (trusted.overlay.*,
// user.overlay.*) are dropped, since overlayfs would act on them (redirects,
// metacopy, opacity). Devices are skipped with a logged reason when
// Options.Devices is DevicesSkip, or when mknod fails with EPERM (no
// CAP_MKNOD).
//
// Decompression bombs are the caller's to cap: wrap the decompressed stream
// with compression.NewLimitReader; its error comes back from Apply.
//
// When Apply fails, root is left partly written; the caller discards the
// snapshot.
package apply

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// Errors wrapped by Apply. Both are in the errdefs.ErrInvalidArgument
// category: the layer itself is at fault and retrying it cannot succeed.
var (
	// ErrUnsafe: an entry is malformed or tries to reach outside root.
	ErrUnsafe = fmt.Errorf("unsafe layer entry: %w", errdefs.ErrInvalidArgument)
	// ErrLimit: the layer exceeds one of the Options caps.
	ErrLimit = fmt.Errorf("layer exceeds a limit: %w", errdefs.ErrInvalidArgument)
)

// DevicePolicy says what Apply does with character and block devices.
type DevicePolicy int

const (
	// DevicesCreate creates device nodes with mknod. Without CAP_MKNOD they
	// are skipped with a logged reason.
	DevicesCreate DevicePolicy = iota
	// DevicesSkip skips device nodes, logging each.
	DevicesSkip
	// DevicesRefuse fails the layer at the first device node.
	DevicesRefuse
)

// IDMapFunc maps a uid and gid of the layer to host ids (user namespace
// remapping). An error fails the layer.
type IDMapFunc func(uid, gid int) (hostUID, hostGID int, err error)

// Default caps, used when the Options field is 0. A negative field means no
// cap.
const (
	DefaultMaxEntries   = 4 << 20  // entries per layer
	DefaultMaxFileSize  = 64 << 30 // bytes in one entry
	DefaultMaxTotalSize = 1 << 40  // bytes in all entries together
)

// Options controls Apply. The zero value applies a layer in full-tree mode
// with the default caps, creating devices.
type Options struct {
	// Overlay writes whiteouts as overlayfs whiteouts instead of deleting.
	Overlay bool
	// Devices is the device node policy.
	Devices DevicePolicy
	// IDMap, if set, maps every uid/gid of the layer (and the root owner of
	// implicitly created directories).
	IDMap IDMapFunc
	// MaxEntries caps the number of tar headers.
	MaxEntries int64
	// MaxFileSize caps the size declared by one header. Sizes of sparse
	// files count at their full (logical) size, since that is what is
	// written.
	MaxFileSize int64
	// MaxTotalSize caps the sum of all declared sizes.
	MaxTotalSize int64
	// Logf, if set, receives a line for each entry skipped or changed
	// (devices without CAP_MKNOD, dropped xattrs, ...).
	Logf func(format string, args ...any)
	// NoSync skips the syncfs that makes the applied files durable before
	// Apply returns: only for throwaway targets (fuzzing, tests).
	NoSync bool
}

// Stats counts what Apply did.
type Stats struct {
	Entries   int64 // tar headers read
	Files     int64 // regular files written
	Dirs      int64 // directories created or updated
	Symlinks  int64
	Hardlinks int64
	Devices   int64 // character and block devices
	Fifos     int64
	Whiteouts int64 // whiteouts applied (deletions or overlay whiteouts)
	Opaques   int64 // opaque directory markers applied
	Skipped   int64 // entries skipped (see Options.Logf)
	Bytes     int64 // file content bytes written
}

// Apply reads the uncompressed layer tar r and applies it onto root, which
// must exist. It reads r to its end (also past the tar end marker), so a
// digest computed over r covers all of it. See the package documentation
// for semantics and for how hostile entries are handled.
func Apply(ctx context.Context, root string, r io.Reader, opts Options) (Stats, error) {
	a, err := newApplier(ctx, root, opts)
	if err != nil {
		return Stats{}, err
	}
	defer a.close()
	if err := a.run(r); err != nil {
		return a.stats, err
	}
	// A layer is committed (its record fsynced) once applied: its files
	// must be on disk first, or a power cut leaves a committed layer of
	// empty files that no re-pull repairs (containerd #5854, moby #49784).
	// One syncfs per layer instead of an fsync per file.
	if !opts.NoSync {
		if err := unix.Syncfs(a.root); err != nil {
			return a.stats, fmt.Errorf("apply layer: syncfs %s: %w", root, err)
		}
	}
	return a.stats, nil
}

func (a *applier) run(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("apply layer: read tar after %d entries: %w", a.stats.Entries, err)
		}
		a.stats.Entries++
		if a.maxEntries >= 0 && a.stats.Entries > a.maxEntries {
			return fmt.Errorf("apply layer: more than %d entries: %w", a.maxEntries, ErrLimit)
		}
		if err := a.entry(tr, hdr); err != nil {
			return fmt.Errorf("apply layer: entry %q: %w", shortName(hdr.Name), err)
		}
	}
	if err := a.finishDirs(); err != nil {
		return fmt.Errorf("apply layer: %w", err)
	}
	// Drain what follows the end marker (zero padding) so that a digest
	// computed over r sees every byte.
	for {
		_, err := r.Read(a.buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("apply layer: read after tar end: %w", err)
		}
	}
}

func (a *applier) logf(format string, args ...any) {
	if a.opts.Logf != nil {
		a.opts.Logf(format, args...)
	}
}

// entry applies one header.
func (a *applier) entry(tr *tar.Reader, hdr *tar.Header) error {
	if hdr.Size < 0 || (a.maxFileSize >= 0 && hdr.Size > a.maxFileSize) {
		return fmt.Errorf("size %d over the cap of %d: %w", hdr.Size, a.maxFileSize, ErrLimit)
	}
	a.total += hdr.Size
	if a.maxTotalSize >= 0 && a.total > a.maxTotalSize {
		return fmt.Errorf("layer content over the cap of %d bytes: %w", a.maxTotalSize, ErrLimit)
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		// pax_global_header (git archive): no file.
		a.stats.Skipped++
		return nil
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink,
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo, tar.TypeGNUSparse:
	default:
		return fmt.Errorf("unsupported tar entry type %q: %w", hdr.Typeflag, ErrUnsafe)
	}
	a.flush()
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	parent, base := split(rel)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(parent, base)
	}
	if rel == "" {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("a %q entry cannot replace the root directory: %w", hdr.Typeflag, ErrUnsafe)
		}
		return a.rootDir(hdr)
	}
	if (hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock) && a.opts.Devices != DevicesCreate {
		if a.opts.Devices == DevicesRefuse {
			return fmt.Errorf("device nodes are not allowed: %w", ErrUnsafe)
		}
		a.logf("apply layer: skipping device node %q: devices are not allowed", rel)
		a.stats.Skipped++
		return nil
	}
	a.created[rel] = struct{}{}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		return a.file(tr, hdr, rel, parent, base)
	case tar.TypeDir:
		return a.directory(hdr, rel, parent, base)
	case tar.TypeSymlink:
		return a.symlink(hdr, rel, parent, base)
	case tar.TypeLink:
		return a.hardlink(hdr, rel, parent, base)
	default:
		return a.node(hdr, rel, parent, base)
	}
}

// errNotDir is returned when a parent path exists but is not a directory
// (or is a symlink that resolves to nothing inside root).
var errNotDir = fmt.Errorf("not a directory: %w", ErrUnsafe)

// shortName bounds an entry name quoted in an error.
func shortName(name string) string {
	if len(name) > 256 {
		return name[:256] + "..."
	}
	return name
}
