package spec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// User is a resolved container user: what goes into the spec's
// process.user.
type User struct {
	UID, GID uint32
	// AdditionalGids is dockerd's list: the primary gid, the groups that
	// list the user as a member (only when the group was not given), then
	// --group-add. dockerd does not deduplicate it, and neither do we.
	AdditionalGids []uint32
	// Home is the passwd home directory, "/" when unknown.
	Home string
}

type passwdEntry struct {
	name string
	uid  uint32
	gid  uint32
	home string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// maxIDFile bounds what is read from the rootfs's /etc/passwd and
// /etc/group: an image must not make the daemon read gigabytes.
const maxIDFile = 16 << 20

// ResolveUser resolves a Docker user spec ("", "name", "uid", "uid:gid",
// "name:group", ...) and --group-add entries against rootfs/etc/passwd and
// rootfs/etc/group, opened inside the rootfs so that a symlinked
// /etc/passwd cannot point the daemon at a host file. Missing files are
// treated as empty, as dockerd does.
func ResolveUser(rootfs, userSpec string, groupAdd []string) (*User, error) {
	users, err := readPasswd(rootfs)
	if err != nil {
		return nil, err
	}
	groups, err := readGroup(rootfs)
	if err != nil {
		return nil, err
	}
	userArg, groupArg, hasGroup := strings.Cut(userSpec, ":")
	u := &User{Home: "/"}
	name := ""
	if userArg == "" {
		userArg = "0"
	}
	found := false
	numUID, numErr := parseID(userArg)
	for _, p := range users {
		if (numErr != nil && p.name == userArg) || (numErr == nil && p.uid == numUID) {
			u.UID, u.GID, u.Home, name, found = p.uid, p.gid, p.home, p.name, true
			break
		}
	}
	if !found {
		if numErr != nil {
			return nil, fmt.Errorf("unable to find user %s: no matching entries in passwd file: %w", userArg, errdefs.ErrInvalidArgument)
		}
		u.UID = numUID
	}
	if hasGroup && groupArg != "" {
		gid, err := lookupGroup(groups, groupArg, "unable")
		if err != nil {
			return nil, err
		}
		u.GID = gid
	}
	u.AdditionalGids = []uint32{u.GID}
	// Supplementary groups only come from membership when the group was not
	// given explicitly (libcontainer's rule, which dockerd uses).
	if !hasGroup && name != "" {
		for _, g := range groups {
			for _, m := range g.members {
				if m == name {
					u.AdditionalGids = append(u.AdditionalGids, g.gid)
					break
				}
			}
		}
	}
	for _, g := range groupAdd {
		gid, err := lookupGroup(groups, g, "Unable")
		if err != nil {
			return nil, err
		}
		u.AdditionalGids = append(u.AdditionalGids, gid)
	}
	return u, nil
}

// lookupGroup resolves a group name or number. dockerd words the error
// with "unable" for -u and "Unable" for --group-add.
func lookupGroup(groups []groupEntry, arg, unable string) (uint32, error) {
	num, numErr := parseID(arg)
	for _, g := range groups {
		if (numErr != nil && g.name == arg) || (numErr == nil && g.gid == num) {
			return g.gid, nil
		}
	}
	if numErr == nil {
		return num, nil
	}
	return 0, fmt.Errorf("%s to find group %s: no matching entries in group file: %w", unable, arg, errdefs.ErrInvalidArgument)
}

func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

// readRootfsFile reads a file by its path inside rootfs, resolving every
// symlink inside the rootfs. A missing file reads as empty.
func readRootfsFile(rootfs, path string) ([]byte, error) {
	h, err := pathrs.OpenInRoot(rootfs, path)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s in rootfs %s: %w", path, rootfs, err)
	}
	defer h.Close()
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("open %s in rootfs %s: %w", path, rootfs, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s in rootfs %s: %w", path, rootfs, err)
	}
	if !st.Mode().IsRegular() {
		// A fifo or device here would block or read the host's device.
		return nil, fmt.Errorf("%s in rootfs %s is not a regular file: %w", path, rootfs, errdefs.ErrInvalidArgument)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxIDFile))
	if err != nil {
		return nil, fmt.Errorf("read %s in rootfs %s: %w", path, rootfs, err)
	}
	return b, nil
}

func readPasswd(rootfs string) ([]passwdEntry, error) {
	b, err := readRootfsFile(rootfs, "/etc/passwd")
	if err != nil {
		return nil, err
	}
	var out []passwdEntry
	for _, f := range idFileLines(b, 7) {
		uid, err1 := parseID(f[2])
		gid, err2 := parseID(f[3])
		if f[0] == "" || err1 != nil || err2 != nil {
			continue
		}
		out = append(out, passwdEntry{name: f[0], uid: uid, gid: gid, home: f[5]})
	}
	return out, nil
}

func readGroup(rootfs string) ([]groupEntry, error) {
	b, err := readRootfsFile(rootfs, "/etc/group")
	if err != nil {
		return nil, err
	}
	var out []groupEntry
	for _, f := range idFileLines(b, 4) {
		gid, err := parseID(f[2])
		if f[0] == "" || err != nil {
			continue
		}
		var members []string
		if f[3] != "" {
			members = strings.Split(f[3], ",")
		}
		out = append(out, groupEntry{name: f[0], gid: gid, members: members})
	}
	return out, nil
}

// idFileLines splits a passwd-style file into lines of exactly n
// colon-separated fields (missing trailing fields are empty), skipping
// comments and blank lines.
func idFileLines(b []byte, n int) [][]string {
	var out [][]string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.SplitN(line, ":", n)
		for len(f) < n {
			f = append(f, "")
		}
		out = append(out, f)
	}
	return out
}
