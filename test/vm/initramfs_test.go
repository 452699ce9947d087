package vm

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// cpioWriter writes a "newc" cpio archive, the format the kernel unpacks as
// an initramfs. Entries carry their own modes, owners and device numbers,
// so device nodes need no mknod on the host.
type cpioWriter struct {
	w   *bufio.Writer
	off int64
	ino uint32
	err error
}

func newCPIO(w io.Writer) *cpioWriter { return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20)} }

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.off += int64(n)
	c.err = err
}

func (c *cpioWriter) pad() {
	if r := c.off % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// entry writes one header, the name and size bytes of data from r.
func (c *cpioWriter) entry(name string, mode uint32, size int64, rdevMajor, rdevMinor uint32, r io.Reader) {
	c.ino++
	name = strings.TrimPrefix(name, "/")
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name + "\x00"))
	c.pad()
	if r != nil && c.err == nil {
		n, err := io.CopyN(c.w, r, size)
		c.off += n
		if err != nil {
			c.err = fmt.Errorf("cpio %s: %w", name, err)
		}
	}
	c.pad()
}

// Dir adds a directory.
func (c *cpioWriter) Dir(name string, perm uint32) { c.entry(name, 0o040000|perm, 0, 0, 0, nil) }

// Symlink adds a symbolic link name -> target.
func (c *cpioWriter) Symlink(name, target string) {
	c.entry(name, 0o120000|0o777, int64(len(target)), 0, 0, strings.NewReader(target))
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(name string, perm, major, minor uint32) {
	c.entry(name, 0o020000|perm, 0, major, minor, nil)
}

// Bytes adds a regular file with the given content.
func (c *cpioWriter) Bytes(name string, perm uint32, data []byte) {
	c.entry(name, 0o100000|perm, int64(len(data)), 0, 0, strings.NewReader(string(data)))
}

// File adds the host file src as name, keeping its permission bits.
func (c *cpioWriter) File(name, src string) {
	f, err := os.Open(src)
	if err != nil {
		c.fail(err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		c.fail(err)
		return
	}
	c.entry(name, 0o100000|modeBits(st.Mode()), st.Size(), 0, 0, f)
}

// modeBits turns Go's file mode into the permission, setuid, setgid and
// sticky bits of a Unix st_mode.
func modeBits(m fs.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// Tree adds the host directory src (directories, regular files, symlinks;
// hard links become copies) under the archive directory name.
func (c *cpioWriter) Tree(name, src string) {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(name, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			c.Dir(dst, modeBits(info.Mode()))
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			c.Symlink(dst, target)
		case d.Type().IsRegular():
			c.File(dst, p)
		default:
			return fmt.Errorf("cpio: %s: unsupported file type %v", p, d.Type())
		}
		return c.err
	})
	c.fail(err)
}

func (c *cpioWriter) fail(err error) {
	if c.err == nil && err != nil {
		c.err = err
	}
}

// Close writes the trailer and flushes; it reports the first error.
func (c *cpioWriter) Close() error {
	c.entry("TRAILER!!!", 0, 0, 0, 0, nil)
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}
