package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/runtime/rawio"
)

// writeFile writes value to dir/name in one write(2), as cgroup files
// require. The error reads "write <file>: <value>: <errno>" so that a
// refused limit tells the user exactly which knob and why.
func writeFile(dir, name, value string) error {
	p := filepath.Join(dir, name)
	if err := rawio.WriteFile(p, []byte(value)); err != nil {
		return fmt.Errorf("write %s: %s: %w", p, value, unwrapErrno(err))
	}
	return nil
}

// unwrapErrno strips *PathError so the message is not repeated.
func unwrapErrno(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func readFile(dir, name string) (string, error) {
	b, err := rawio.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func exists(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}

// readUint reads a single number; "max" (v2) is returned as MaxUint64.
func readUint(dir, name string) (uint64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return 0, err
	}
	return parseUint(s, filepath.Join(dir, name))
}

func parseUint(s, what string) (uint64, error) {
	if s == "max" {
		return ^uint64(0), nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		// v1 reports some "unlimited" values as negative numbers.
		if i, ierr := strconv.ParseInt(s, 10, 64); ierr == nil && i < 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("parse %s: %q is not a number", what, s)
	}
	return v, nil
}

// readKV parses "key value" lines (memory.stat, cpu.stat, memory.events ...).
func readKV(dir, name string) (map[string]uint64, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		out[k] = n
	}
	return out, sc.Err()
}

// readControllers returns the controllers listed in dir/cgroup.controllers.
func readControllers(dir string) []string {
	s, err := readFile(dir, "cgroup.controllers")
	if err != nil {
		return nil
	}
	return strings.Fields(s)
}

// readProcs reads a cgroup.procs file.
func readProcs(dir string) ([]int, error) {
	s, err := readFile(dir, "cgroup.procs")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, l := range strings.Fields(s) {
		pid, err := strconv.Atoi(l)
		if err == nil {
			out = append(out, pid)
		}
	}
	return out, nil
}

// walkPids collects cgroup.procs of dir and every sub-cgroup.
func walkPids(dir string) ([]int, error) {
	var out []int
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && p != dir {
				return nil // a sub-cgroup went away while walking
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		pids, err := readProcs(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		out = append(out, pids...)
		return nil
	})
	return out, err
}

// removeTree removes dir and its sub-cgroups bottom-up. cgroup directories
// only accept rmdir (their files cannot be unlinked). EBUSY, which the kernel
// returns briefly after the last task exits, is retried for about a second.
func removeTree(dir string) error {
	// Most cgroups have no children: try the rmdir before listing.
	if err := syscall.Rmdir(dir); err == nil || err == syscall.ENOENT {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove %s: %w", dir, unwrapErrno(err))
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	delay := 5 * time.Millisecond
	for i := 0; ; i++ {
		err := syscall.Rmdir(dir)
		if err == nil || err == syscall.ENOENT {
			return nil
		}
		if err != syscall.EBUSY || i >= 8 {
			return fmt.Errorf("remove %s: %w", dir, err)
		}
		time.Sleep(delay)
		delay *= 2
	}
}
