package shim

import (
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// trimDelay is how long the shim must be idle before trimLater trims.
const trimDelay = time.Second

// trimLater runs trimText once no request has come for trimDelay.
func (s *shim) trimLater() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.trimTimer == nil {
		s.trimTimer = time.AfterFunc(trimDelay, trimText)
		return
	}
	s.trimTimer.Reset(trimDelay)
}

// trimText drops the shim's mappings of its own executable's read-only
// pages (code and rodata). Start-up touches much code that a running shim
// never uses again, and the kernel's fault-around maps even more; those
// pages stay in the page cache and fault back in on use, so this only
// lowers the shim's resident size, per container (by about 250 kB here:
// large folios bring much back at the next touch). Writable mappings are
// never touched (MADV_DONTNEED would reset them).
func trimText() {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	type span struct{ lo, hi uintptr }
	var spans []span
	for _, l := range strings.Split(string(maps), "\n") {
		fl := strings.Fields(l)
		if len(fl) < 6 || fl[5] != exe || strings.Contains(fl[1], "w") {
			continue
		}
		a, b, _ := strings.Cut(fl[0], "-")
		lo, err1 := strconv.ParseUint(a, 16, 64)
		hi, err2 := strconv.ParseUint(b, 16, 64)
		if err1 == nil && err2 == nil && hi > lo {
			spans = append(spans, span{uintptr(lo), uintptr(hi)})
		}
	}
	for _, sp := range spans {
		unix.Syscall(unix.SYS_MADVISE, sp.lo, sp.hi-sp.lo, unix.MADV_DONTNEED)
	}
}
