// Package mountinfo reads /proc/<pid>/mountinfo: the one mount-table parser
// the runtime, the cgroup manager and the tests share.
package mountinfo

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/runtime/rawio"
)

// Entry is one line of mountinfo (see proc(5)).
type Entry struct {
	ID, Parent   int
	Root         string // the path within the filesystem mounted here
	Mountpoint   string
	Options      string // per-mount options
	FSType       string
	Source       string
	SuperOptions string // per-superblock options (v1 cgroup controllers live here)
}

// Read parses the calling process's mount table.
func Read() ([]Entry, error) {
	b, err := rawio.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return Parse(string(b))
}

// Parse parses mountinfo text.
func Parse(s string) ([]Entry, error) {
	var out []Entry
	for _, line := range strings.Split(s, "\n") {
		if line == "" {
			continue
		}
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 2 {
			return nil, fmt.Errorf("mountinfo: malformed line %q", line)
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mountinfo: malformed line %q", line)
		}
		e := Entry{ID: id, Parent: parent, Root: Unescape(f[3]), Mountpoint: Unescape(f[4]), Options: f[5],
			FSType: g[0], Source: Unescape(g[1])}
		if len(g) > 2 {
			e.SuperOptions = g[2]
		}
		out = append(out, e)
	}
	return out, nil
}

// Unescape undoes mountinfo's octal escapes (\040 for a space, ...).
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// MountPointOf returns the mount point of the mount holding path (the
// longest mount point that is path or one of its parents).
func MountPointOf(entries []Entry, path string) string {
	best := "/"
	for _, e := range entries {
		mp := e.Mountpoint
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	return best
}

// Under lists the mount points at or below dir, deepest first (the order
// to unmount them in).
func Under(entries []Entry, dir string) []string {
	var out []string
	for _, e := range entries {
		if e.Mountpoint == dir || strings.HasPrefix(e.Mountpoint, strings.TrimSuffix(dir, "/")+"/") {
			out = append(out, e.Mountpoint)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}
