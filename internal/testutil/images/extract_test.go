package images

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// naiveUnpack applies the image's amd64 layers, in order, into dir: the
// simplest correct reading of the OCI layer rules, used to check the
// generator's expected tree. It trusts its input (fixtures only).
func naiveUnpack(t *testing.T, img *Image, dir string) {
	t.Helper()
	for i, l := range img.Layers {
		if err := naiveApply(img.BlobPath(l.Digest), l.MediaType, dir); err != nil {
			t.Fatalf("layer %d (%s): %v", i, l.Digest, err)
		}
	}
}

func naiveApply(blob, mediaType, dir string) error {
	f, err := os.Open(blob)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	switch mediaType {
	case ocispec.MediaTypeImageLayerGzip:
		zr, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		r = zr
	case ocispec.MediaTypeImageLayerZstd:
		zr, err := zstd.NewReader(f)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	case ocispec.MediaTypeImageLayer:
	default:
		return fmt.Errorf("media type %q", mediaType)
	}
	tr := tar.NewReader(r)
	inLayer := map[string]bool{}
	type dirAttr struct {
		path string
		hdr  *tar.Header
	}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
		base, parent := path.Base(name), path.Dir(name)
		target := filepath.Join(dir, name)
		if base == ".wh..wh..opq" {
			ents, err := os.ReadDir(filepath.Join(dir, parent))
			if err != nil {
				return err
			}
			for _, e := range ents {
				if !inLayer[path.Join(parent, e.Name())] {
					if err := os.RemoveAll(filepath.Join(dir, parent, e.Name())); err != nil {
						return err
					}
				}
			}
			continue
		}
		if strings.HasPrefix(base, ".wh.") {
			if err := os.RemoveAll(filepath.Join(dir, parent, strings.TrimPrefix(base, ".wh."))); err != nil {
				return err
			}
			continue
		}
		inLayer[name] = true
		if fi, err := os.Lstat(target); err == nil && !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(target, 0o700); err != nil && !os.IsExist(err) {
				return err
			}
		case tar.TypeReg:
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			if err := os.Link(filepath.Join(dir, path.Clean(hdr.Linkname)), target); err != nil {
				return err
			}
			continue
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			mode := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
			if err := unix.Mknod(target, mode|0o600, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: type %q", name, hdr.Typeflag)
		}
		// Owner before mode: chown clears setuid and setgid.
		if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeSymlink {
			mode := uint32(hdr.Mode) & 0o7777
			if err := unix.Fchmodat(unix.AT_FDCWD, target, mode, 0); err != nil {
				return err
			}
		}
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if err := unix.Lsetxattr(target, name, []byte(v), 0); err != nil {
					return fmt.Errorf("%s: xattr %s: %w", target, name, err)
				}
			}
		}
		if hdr.Typeflag != tar.TypeDir {
			ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
		}
	}
	return nil
}

// readJSON decodes a layout blob.
func readJSON(t *testing.T, img *Image, d ocispec.Descriptor, v any) {
	t.Helper()
	b, err := os.ReadFile(img.BlobPath(d.Digest))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != d.Size {
		t.Fatalf("blob %s: %d bytes, descriptor says %d", d.Digest, len(b), d.Size)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("blob %s: %v", d.Digest, err)
	}
}

var _ = time.Second
