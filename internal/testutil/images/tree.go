package images

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/berth-dev/berth/internal/testutil/fixture"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Entry types of a Tree.
const (
	TypeDir     = "dir"
	TypeFile    = "file"
	TypeSymlink = "symlink"
	TypeChar    = "char"
	TypeBlock   = "block"
	TypeFifo    = "fifo"
)

// Tree is the expected root filesystem of an image: every path a correct
// unpack of all its layers produces, with its attributes.
type Tree struct {
	Entries []TreeEntry `json:"entries"` // sorted by Path
}

// TreeEntry is one expected path.
type TreeEntry struct {
	Path string `json:"path"` // slash-separated, relative to the rootfs
	Type string `json:"type"`
	// Mode holds the permission bits plus setuid (04000), setgid (02000)
	// and sticky (01000).
	Mode uint32 `json:"mode"`
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
	// Size and SHA256 (hex) of a regular file's contents.
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Link is a symlink's target.
	Link string `json:"link,omitempty"`
	// Hardlink names another path that must be the same inode.
	Hardlink string `json:"hardlink,omitempty"`
	// Xattrs that must be present (others are ignored).
	Xattrs map[string][]byte `json:"xattrs,omitempty"`
	// ModTime in Unix seconds, checked for files and symlinks (0: unchecked).
	ModTime int64 `json:"mtime,omitempty"`
	// Device numbers of char and block devices.
	DevMajor uint32 `json:"devmajor,omitempty"`
	DevMinor uint32 `json:"devminor,omitempty"`
}

// Lookup returns the entry for path, if any.
func (t *Tree) Lookup(path string) (TreeEntry, bool) {
	i := sort.Search(len(t.Entries), func(i int) bool { return t.Entries[i].Path >= path })
	if i < len(t.Entries) && t.Entries[i].Path == path {
		return t.Entries[i], true
	}
	return TreeEntry{}, false
}

// Check compares the directory root with the tree, file by file: types,
// modes, owners, sizes and content hashes, link targets, hardlinks,
// listed xattrs, file mtimes and device numbers, and no extra paths. It
// reports up to 20 differences in one error.
func (t *Tree) Check(root string) error {
	var diffs []string
	add := func(format string, args ...any) {
		diffs = append(diffs, fmt.Sprintf(format, args...))
	}
	seen := make(map[string]bool, len(t.Entries))
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		seen[rel] = true
		if _, ok := t.Lookup(rel); !ok {
			add("%s: not in the expected tree", rel)
			if d.IsDir() {
				return fs.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range t.Entries {
		if !seen[e.Path] {
			add("%s: missing", e.Path)
			continue
		}
		if err := e.check(root, add); err != nil {
			add("%s: %v", e.Path, err)
		}
		if len(diffs) > 20 {
			break
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	if len(diffs) > 20 {
		diffs = append(diffs[:20], "...")
	}
	return errors.New("tree differs:\n\t" + strings.Join(diffs, "\n\t"))
}

func (e *TreeEntry) check(root string, add func(string, ...any)) error {
	p := filepath.Join(root, filepath.FromSlash(e.Path))
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err
	}
	typ := map[uint32]string{unix.S_IFDIR: TypeDir, unix.S_IFREG: TypeFile, unix.S_IFLNK: TypeSymlink,
		unix.S_IFCHR: TypeChar, unix.S_IFBLK: TypeBlock, unix.S_IFIFO: TypeFifo}[st.Mode&unix.S_IFMT]
	if typ != e.Type {
		add("%s: type %q, want %q", e.Path, typ, e.Type)
		return nil
	}
	if e.Type != TypeSymlink && st.Mode&07777 != e.Mode {
		add("%s: mode %04o, want %04o", e.Path, st.Mode&07777, e.Mode)
	}
	if int(st.Uid) != e.UID || int(st.Gid) != e.GID {
		add("%s: owner %d:%d, want %d:%d", e.Path, st.Uid, st.Gid, e.UID, e.GID)
	}
	if e.ModTime != 0 && (e.Type == TypeFile || e.Type == TypeSymlink) && st.Mtim.Sec != e.ModTime {
		add("%s: mtime %d, want %d", e.Path, st.Mtim.Sec, e.ModTime)
	}
	switch e.Type {
	case TypeFile:
		if st.Size != e.Size {
			add("%s: size %d, want %d", e.Path, st.Size, e.Size)
		} else if sum, err := fixture.FileSHA256(p); err != nil {
			return err
		} else if sum != e.SHA256 {
			add("%s: sha256 %s, want %s", e.Path, sum, e.SHA256)
		}
	case TypeSymlink:
		if l, err := os.Readlink(p); err != nil {
			return err
		} else if l != e.Link {
			add("%s: link %q, want %q", e.Path, l, e.Link)
		}
	case TypeChar, TypeBlock:
		if unix.Major(st.Rdev) != e.DevMajor || unix.Minor(st.Rdev) != e.DevMinor {
			add("%s: device %d:%d, want %d:%d", e.Path, unix.Major(st.Rdev), unix.Minor(st.Rdev), e.DevMajor, e.DevMinor)
		}
	}
	if e.Hardlink != "" {
		var other unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, filepath.FromSlash(e.Hardlink)), &other); err != nil {
			return err
		}
		if other.Ino != st.Ino || other.Dev != st.Dev {
			add("%s: not a hardlink of %s", e.Path, e.Hardlink)
		}
	}
	for name, want := range e.Xattrs {
		buf := make([]byte, 4096)
		n, err := unix.Lgetxattr(p, name, buf)
		if err != nil {
			add("%s: xattr %s: %v", e.Path, name, err)
		} else if !bytes.Equal(buf[:n], want) {
			add("%s: xattr %s = %q, want %q", e.Path, name, buf[:n], want)
		}
	}
	return nil
}
