package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Mount is one mount(2) call that shows a snapshot: what a Snapshotter
// hands out and what a runtime bundle uses for its rootfs.
//
// Type is "overlay" or "bind"; Source is the device or directory;
// Options are mount(8)-style options: flags ("ro", "rw", "nosuid", ...)
// become mount flags, everything else ("lowerdir=...") is passed to the
// filesystem. Overlay paths in options are absolute.
type Mount struct {
	Type    string   `json:"type"`
	Source  string   `json:"source"`
	Options []string `json:"options,omitempty"`
}

// ReadOnly reports whether the mount is made read-only.
func (m Mount) ReadOnly() bool {
	ro := false
	for _, o := range m.Options {
		switch o {
		case "ro":
			ro = true
		case "rw":
			ro = false
		}
	}
	return ro
}

// Option returns the value of a key=value option ("upperdir") and whether
// it is present.
func (m Mount) Option(key string) (string, bool) {
	for _, o := range m.Options {
		if k, v, ok := strings.Cut(o, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// mountFlags are the options that are flags of mount(2) rather than
// filesystem options; clear means the option clears the flag.
var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":          {false, unix.MS_RDONLY},
	"rw":          {true, unix.MS_RDONLY},
	"bind":        {false, unix.MS_BIND},
	"rbind":       {false, unix.MS_BIND | unix.MS_REC},
	"nosuid":      {false, unix.MS_NOSUID},
	"suid":        {true, unix.MS_NOSUID},
	"nodev":       {false, unix.MS_NODEV},
	"dev":         {true, unix.MS_NODEV},
	"noexec":      {false, unix.MS_NOEXEC},
	"exec":        {true, unix.MS_NOEXEC},
	"noatime":     {false, unix.MS_NOATIME},
	"nodiratime":  {false, unix.MS_NODIRATIME},
	"relatime":    {false, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME},
	"sync":        {false, unix.MS_SYNCHRONOUS},
	"dirsync":     {false, unix.MS_DIRSYNC},
}

// parseOptions splits options into mount flags and filesystem data.
func parseOptions(options []string) (flags uintptr, data []string) {
	for _, o := range options {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		data = append(data, o)
	}
	return flags, data
}

// Mount mounts m on target, an existing directory.
//
// Overlay mounts whose options do not fit in one page (the kernel's limit
// on mount(2) data: about 60 layers with typical paths) are made with the
// new mount API, one fsconfig call per lower layer ("lowerdir+", Linux
// 6.8), or on older kernels with mount(2) given paths relative to their
// common parent directory, from a thread that changed into it.
func (m Mount) Mount(target string) error {
	flags, data := parseOptions(m.Options)
	var err error
	switch {
	case flags&unix.MS_BIND != 0 || m.Type == "bind":
		err = m.bind(target, flags|unix.MS_BIND)
	case len(strings.Join(data, ",")) < os.Getpagesize():
		err = unix.Mount(m.Source, target, m.Type, flags, strings.Join(data, ","))
	default:
		err = mountFS(m.Type, m.Source, target, flags, data)
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) {
			err = mountRelative(m.Type, m.Source, target, flags, data)
		}
	}
	if err != nil {
		return fmt.Errorf("mount %s %q on %q: %w", m.Type, m.Source, target, err)
	}
	return nil
}

// bind makes a bind mount; flags other than MS_BIND|MS_REC need a
// remount to take effect.
func (m Mount) bind(target string, flags uintptr) error {
	if err := unix.Mount(m.Source, target, "", flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
		return err
	}
	if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|rest, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return err
		}
	}
	return nil
}

// mountFS mounts with fsopen/fsconfig/fsmount/move_mount, which take one
// option per call: a lowerdir list becomes one "lowerdir+" per layer, so
// the number of layers is limited only by overlayfs itself.
func mountFS(fstype, source, target string, flags uintptr, data []string) error {
	fd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen: %w", err)
	}
	defer unix.Close(fd)
	set := func(key, value string) error {
		if err := unix.FsconfigSetString(fd, key, value); err != nil {
			return fmt.Errorf("fsconfig %s=%q: %w%s", key, value, err, fsLog(fd))
		}
		return nil
	}
	if source != "" {
		if err := set("source", source); err != nil {
			return err
		}
	}
	for _, o := range data {
		k, v, hasValue := strings.Cut(o, "=")
		switch {
		case k == "lowerdir" && fstype == "overlay":
			for _, l := range strings.Split(v, ":") {
				if err := set("lowerdir+", l); err != nil {
					return err
				}
			}
		case hasValue:
			if err := set(k, v); err != nil {
				return err
			}
		default:
			if err := unix.FsconfigSetFlag(fd, k); err != nil {
				return fmt.Errorf("fsconfig %s: %w%s", k, err, fsLog(fd))
			}
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("fsconfig create: %w%s", err, fsLog(fd))
	}
	var attr int
	for f, a := range map[uintptr]int{
		unix.MS_RDONLY: unix.MOUNT_ATTR_RDONLY, unix.MS_NOSUID: unix.MOUNT_ATTR_NOSUID,
		unix.MS_NODEV: unix.MOUNT_ATTR_NODEV, unix.MS_NOEXEC: unix.MOUNT_ATTR_NOEXEC,
		unix.MS_NOATIME: unix.MOUNT_ATTR_NOATIME, unix.MS_NODIRATIME: unix.MOUNT_ATTR_NODIRATIME,
		unix.MS_STRICTATIME: unix.MOUNT_ATTR_STRICTATIME,
	} {
		if flags&f != 0 {
			attr |= a
		}
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return fmt.Errorf("fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// fsLog drains the messages the kernel left on an fs context ("e
// overlayfs: ..."), for error messages.
func fsLog(fd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}

// mountRelative calls mount(2) with the overlay's directories relative to
// their common parent, from an OS thread that has its own working
// directory (unshare(CLONE_FS)) and is discarded afterwards, so the rest
// of the process never sees the chdir.
func mountRelative(fstype, source, target string, flags uintptr, data []string) error {
	target, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	var paths []string
	for _, o := range data {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			paths = append(paths, strings.Split(v, ":")...)
		case "upperdir", "workdir":
			paths = append(paths, v)
		}
	}
	dir := commonDir(paths)
	rel := func(p string) string {
		if r, err := filepath.Rel(dir, p); err == nil {
			return r
		}
		return p
	}
	short := make([]string, len(data))
	for i, o := range data {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			ls := strings.Split(v, ":")
			for j := range ls {
				ls[j] = rel(ls[j])
			}
			short[i] = k + "=" + strings.Join(ls, ":")
		case "upperdir", "workdir":
			short[i] = k + "=" + rel(v)
		default:
			short[i] = o
		}
	}
	opts := strings.Join(short, ",")
	if len(opts) >= os.Getpagesize() {
		return fmt.Errorf("options are %d bytes even relative to %q: %w", len(opts), dir, unix.E2BIG)
	}
	errc := make(chan error, 1)
	go func() {
		// The thread stays locked: it dies with this goroutine instead of
		// going back to the scheduler with a private working directory.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_FS): %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- fmt.Errorf("chdir %q: %w", dir, err)
			return
		}
		errc <- unix.Mount(source, target, fstype, flags, opts)
	}()
	return <-errc
}

// commonDir is the longest directory that holds all of the absolute paths.
func commonDir(paths []string) string {
	if len(paths) == 0 {
		return "/"
	}
	dir := filepath.Dir(filepath.Clean(paths[0]))
	for _, p := range paths[1:] {
		p = filepath.Clean(p)
		for dir != "/" && p != dir && !strings.HasPrefix(p, dir+"/") {
			dir = filepath.Dir(dir)
		}
	}
	return dir
}

// MountAll mounts mounts on target in order (the first at the bottom).
// On error, the ones already made are unmounted.
func MountAll(mounts []Mount, target string) error {
	for i, m := range mounts {
		if err := m.Mount(target); err != nil {
			for j := 0; j < i; j++ {
				_ = Unmount(target)
			}
			return err
		}
	}
	return nil
}

// Unmount unmounts the topmost mount on target, retrying for a moment
// while it is busy.
func Unmount(target string) error {
	var err error
	for i := 0; i < 50; i++ {
		if err = unix.Unmount(target, 0); !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("unmount %q: %w", target, err)
	}
	return nil
}

// UnmountAll unmounts every mount stacked on target; it is not an error
// if there is none.
func UnmountAll(target string) error {
	for {
		err := Unmount(target)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
