package service

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/snapshot"
)

// volatileUpper returns mounts with overlayfs's "volatile" option on each
// overlay that has a writable layer. A --rm container's writable layer
// is deleted when it exits, so it never needs to reach the disk: without
// the option, the unmount at its exit syncs the whole filesystem holding
// the upper dir (2 to 60 ms here, behind every other writer on that disk)
// and `run --rm` waits for it. Podman does the same for --rm.
// Kernels before 5.10 do not know the option and get the mounts unchanged.
func volatileUpper(mounts []snapshot.Mount) []snapshot.Mount {
	if !volatileSupported() {
		return mounts
	}
	out := slices.Clone(mounts)
	for i, m := range out {
		if m.Type != "overlay" || slices.Contains(m.Options, "volatile") {
			continue
		}
		if _, ok := m.Option("upperdir"); !ok {
			continue
		}
		out[i].Options = append(slices.Clone(m.Options), "volatile")
	}
	return out
}

// acceptVolatile removes the marker overlayfs leaves in the work dir of
// a volatile mount ("work/incompat/volatile"), without which it refuses
// to mount the layer again (EINVAL): a --rm container restarted (docker
// restart) mounts its layer a second time. The marker tells of data that
// may not have reached the disk; that matters after a host crash only,
// and a --rm container does not outlive one (the daemon removes it at
// its next start).
func acceptVolatile(mounts []snapshot.Mount) error {
	for _, m := range mounts {
		if m.Type != "overlay" || !slices.Contains(m.Options, "volatile") {
			continue
		}
		if work, ok := m.Option("workdir"); ok {
			if err := os.RemoveAll(filepath.Join(work, "work", "incompat", "volatile")); err != nil {
				return fmt.Errorf("clear the volatile marker of %s: %w", work, err)
			}
		}
	}
	return nil
}

// volatileSupported reports whether the kernel is 5.10 or newer, where
// overlayfs gained "volatile".
var volatileSupported = sync.OnceValue(func() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	return kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 10)
})

// kernelAtLeast reports whether release ("6.1.0-13-amd64") is at least
// major.minor.
func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	digits := parts[1]
	if i := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		digits = digits[:i] // "10-rc1"
	}
	min, err2 := strconv.Atoi(digits)
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || maj == major && min >= minor
}
