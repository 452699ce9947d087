package idmap

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// DefaultUser is the user (and group) --userns-remap=default stands for:
// dockerd's "dockremap", with our name.
const DefaultUser = "berthremap"

// Files are the account databases Resolve reads (the host's by default;
// tests point them elsewhere).
type Files struct {
	Passwd, Group, Subuid, Subgid string
}

// HostFiles are the host's account databases.
var HostFiles = Files{Passwd: "/etc/passwd", Group: "/etc/group", Subuid: "/etc/subuid", Subgid: "/etc/subgid"}

// Remap is a resolved --userns-remap value.
type Remap struct {
	// User and Group are the names whose subordinate ranges are used.
	User, Group string
	Mapping
}

var errNoEntry = errors.New("no entry")

// subidMu serialises the creation of the default user and its ranges
// within this process.
var subidMu sync.Mutex

// Resolve turns a --userns-remap value ("default", "user[:group]" or
// "uid[:gid]", names or numbers) into the container id mapping, as
// dockerd does: container root maps to the first subordinate range of the
// user in f.Subuid and of the group in f.Subgid. "default" creates the
// user and group DefaultUser (useradd -r) and their ranges when missing.
func Resolve(value string, f Files) (Remap, error) {
	user, group, _ := strings.Cut(value, ":")
	if user == "" {
		return Remap{}, fmt.Errorf("--userns-remap %q: no user name", value)
	}
	if value == "default" {
		if err := ensureDefault(f); err != nil {
			return Remap{}, fmt.Errorf("--userns-remap=default: %w", err)
		}
		user, group = DefaultUser, DefaultUser
	}
	uname, uid, err := lookup(f.Passwd, user)
	if err != nil {
		return Remap{}, fmt.Errorf("--userns-remap %q: user %q: %w", value, user, err)
	}
	if group == "" {
		// dockerd: without a group, the user's name names the group too.
		group = uname
	}
	gname, gid, err := lookup(f.Group, group)
	if err != nil {
		return Remap{}, fmt.Errorf("--userns-remap %q: group %q: %w", value, group, err)
	}
	ur, err := firstRange(f.Subuid, uname, uid)
	if err != nil {
		return Remap{}, fmt.Errorf("--userns-remap %q: %w", value, err)
	}
	gr, err := firstRange(f.Subgid, gname, gid)
	if err != nil {
		return Remap{}, fmt.Errorf("--userns-remap %q: %w", value, err)
	}
	return Remap{User: uname, Group: gname, Mapping: Mapping{UID: ur, GID: gr}}, nil
}

// lookup finds name (or a number) in a passwd or group file and returns
// the entry's name and id.
func lookup(file, name string) (string, int, error) {
	n, numErr := strconv.Atoi(name)
	var found string
	id := -1
	err := eachLine(file, func(fields []string) bool {
		if len(fields) < 3 {
			return true
		}
		fid, err := strconv.Atoi(fields[2])
		if err != nil {
			return true
		}
		if fields[0] == name || (numErr == nil && fid == n) {
			found, id = fields[0], fid
			return false
		}
		return true
	})
	if err != nil {
		return "", 0, err
	}
	if id < 0 {
		return "", 0, fmt.Errorf("%w in %s", errNoEntry, file)
	}
	return found, id, nil
}

// firstRange is the first subordinate range of name (or its id) in file,
// which must hold at least MinRangeSize ids.
func firstRange(file, name string, id int) (Range, error) {
	var r *Range
	var bad error
	err := eachLine(file, func(fields []string) bool {
		if len(fields) != 3 || (fields[0] != name && fields[0] != strconv.Itoa(id)) {
			return true
		}
		start, err1 := strconv.ParseUint(fields[1], 10, 32)
		size, err2 := strconv.ParseUint(fields[2], 10, 32)
		if err1 != nil || err2 != nil {
			bad = fmt.Errorf("%s: malformed entry %q", file, strings.Join(fields, ":"))
			return false
		}
		r = &Range{ContainerID: 0, HostID: uint32(start), Size: uint32(size)}
		return false
	})
	switch {
	case err != nil:
		return Range{}, err
	case bad != nil:
		return Range{}, bad
	case r == nil:
		return Range{}, fmt.Errorf("no subordinate range for %q in %s", name, file)
	case r.Size < MinRangeSize:
		return Range{}, fmt.Errorf("the subordinate range of %q in %s holds %d ids: at least %d are needed", name, file, r.Size, MinRangeSize)
	case r.HostID == 0:
		return Range{}, fmt.Errorf("the subordinate range of %q in %s starts at 0: container root would be the host's root", name, file)
	}
	return *r, nil
}

// eachLine calls fn with the colon-separated fields of each non-comment
// line of file until fn returns false.
func eachLine(file string, fn func([]string) bool) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !fn(strings.Split(line, ":")) {
			break
		}
	}
	return sc.Err()
}

// ensureDefault creates DefaultUser (a system user with its own group)
// and gives it subordinate uid and gid ranges when it has none.
func ensureDefault(f Files) error {
	subidMu.Lock()
	defer subidMu.Unlock()
	if _, _, err := lookup(f.Passwd, DefaultUser); err != nil {
		if !errors.Is(err, errNoEntry) {
			return err
		}
		if f != HostFiles {
			return fmt.Errorf("user %q missing from %s", DefaultUser, f.Passwd)
		}
		out, err := exec.Command("useradd", "-r", "-U", "-M", "-s", "/bin/false", DefaultUser).CombinedOutput()
		if err != nil {
			return fmt.Errorf("create user %q: useradd: %v: %s", DefaultUser, err, strings.TrimSpace(string(out)))
		}
	}
	for _, file := range []string{f.Subuid, f.Subgid} {
		if err := EnsureRange(file, DefaultUser); err != nil {
			return err
		}
	}
	return nil
}

// EnsureRange gives name a subordinate range of MinRangeSize ids in file
// unless it has one: the first free one from 100000 on, after every range
// already there (so that none overlaps).
func EnsureRange(file, name string) error {
	start := uint64(100000)
	has := false
	err := eachLine(file, func(fields []string) bool {
		if len(fields) != 3 {
			return true
		}
		if fields[0] == name {
			has = true
			return false
		}
		s, err1 := strconv.ParseUint(fields[1], 10, 32)
		n, err2 := strconv.ParseUint(fields[2], 10, 32)
		if err1 == nil && err2 == nil && s+n > start {
			start = s + n
		}
		return true
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if has {
		return nil
	}
	if start+MinRangeSize > 1<<32-1 {
		return fmt.Errorf("%s: no free subordinate range left for %q", file, name)
	}
	return appendLine(file, fmt.Sprintf("%s:%d:%d", name, start, MinRangeSize))
}

// appendLine adds line to file, after a newline if the file does not end
// with one.
func appendLine(file, line string) error {
	b, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		line = "\n" + line
	}
	fh, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := fh.WriteString(line + "\n"); err != nil {
		fh.Close()
		return fmt.Errorf("%s: %w", file, err)
	}
	return fh.Close()
}
