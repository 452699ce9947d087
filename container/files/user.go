package files

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// maxDatabase caps how much of /etc/passwd or /etc/group is read: they
// are the container's, hence untrusted.
const maxDatabase = 4 << 20

// lookupUser resolves a container user spec ("name", "uid", "name:group",
// "uid:gid") to ids with the container's own /etc/passwd and /etc/group.
func (r *root) lookupUser(spec string) (uid, gid int, err error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	passwd, _ := r.readFile("etc/passwd")
	if n, err := strconv.Atoi(userPart); err == nil && n >= 0 {
		uid, gid = n, n
		// A numeric user in passwd still gives its primary group.
		if f := findEntry(passwd, 2, userPart); f != nil {
			gid, _ = strconv.Atoi(f[3])
		}
	} else {
		f := findEntry(passwd, 0, userPart)
		if f == nil {
			return 0, 0, fmt.Errorf("unable to find user %s: no matching entries in passwd file: %w", userPart, errdefs.ErrInvalidArgument)
		}
		uid, _ = strconv.Atoi(f[2])
		gid, _ = strconv.Atoi(f[3])
	}
	if hasGroup {
		if n, err := strconv.Atoi(groupPart); err == nil && n >= 0 {
			gid = n
		} else {
			group, _ := r.readFile("etc/group")
			f := findEntry(group, 0, groupPart)
			if f == nil {
				return 0, 0, fmt.Errorf("unable to find group %s: no matching entries in group file: %w", groupPart, errdefs.ErrInvalidArgument)
			}
			gid, _ = strconv.Atoi(f[2])
		}
	}
	return uid, gid, nil
}

// findEntry returns the fields of the first colon-separated line whose
// field col is value, with at least 4 fields.
func findEntry(db []byte, col int, value string) []string {
	s := bufio.NewScanner(bytes.NewReader(db))
	for s.Scan() {
		f := strings.Split(s.Text(), ":")
		if len(f) >= 4 && f[col] == value {
			if _, err := strconv.Atoi(f[2]); err != nil {
				continue
			}
			if _, err := strconv.Atoi(f[3]); err != nil && len(f) >= 7 {
				continue
			}
			return f
		}
	}
	return nil
}

// readFile reads a regular file of the container (resolved inside the
// root), at most maxDatabase bytes.
func (r *root) readFile(rel string) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Openat2(r.fd, rel, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_NONBLOCK | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err != unix.EAGAIN && err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", rel)
	}
	return io.ReadAll(io.LimitReader(f, maxDatabase))
}
