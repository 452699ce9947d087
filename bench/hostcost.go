package bench

import (
	"fmt"
	"syscall"
	"time"
)

// HostCosts are what the kernel charges this host for the two things every
// container start does many times over: map a fresh page of memory, and
// start and end a process. On a virtualised host both can cost many times
// what they cost on bare metal, and they set the floor of an engine's
// figures (each Go process start maps some hundreds of pages).
type HostCosts struct {
	Program      string        // the process ProcessStart starts
	PageFault    time.Duration // first touch of an anonymous page
	ProcessStart time.Duration // fork, exec and exit of a do-nothing program, until reaped
}

// MeasureHostCosts measures HostCosts with bin (e.g. /bin/true) as the
// process: medians of a few rounds.
func MeasureHostCosts(bin string) (HostCosts, error) {
	c := HostCosts{Program: bin}
	var faults []time.Duration
	for range 5 {
		d, err := pageFault()
		if err != nil {
			return c, err
		}
		faults = append(faults, d)
	}
	var starts []time.Duration
	for range 30 {
		d, err := processStart(bin)
		if err != nil {
			return c, err
		}
		starts = append(starts, d)
	}
	c.PageFault = Summarize(faults).Median
	c.ProcessStart = Summarize(starts).Median
	return c, nil
}

// String is the figures as the report prints them.
func (c HostCosts) String() string {
	return fmt.Sprintf("first touch of an anonymous page %.1f µs; fork, exec and exit of %s %.2f ms (medians)",
		float64(c.PageFault.Nanoseconds())/1e3, c.Program, float64(c.ProcessStart.Nanoseconds())/1e6)
}

// pageFault is the mean time of the first write to each page of a fresh
// 4 MiB anonymous mapping.
func pageFault() (time.Duration, error) {
	const size = 4 << 20
	page := syscall.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return 0, fmt.Errorf("host costs: mmap: %w", err)
	}
	defer syscall.Munmap(mem)
	// No transparent huge pages: the figure is per page.
	syscall.Madvise(mem, syscall.MADV_NOHUGEPAGE)
	start := time.Now()
	for i := 0; i < size; i += page {
		mem[i] = 1
	}
	return time.Since(start) / time.Duration(size/page), nil
}

// processStart forks and execs bin and reaps it.
func processStart(bin string) (time.Duration, error) {
	start := time.Now()
	pid, err := syscall.ForkExec(bin, []string{bin}, &syscall.ProcAttr{})
	if err != nil {
		return 0, fmt.Errorf("host costs: start %s: %w", bin, err)
	}
	var ws syscall.WaitStatus
	for {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("host costs: wait for %s: %w", bin, err)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		return 0, fmt.Errorf("host costs: %s: %v", bin, ws)
	}
	return d, nil
}
