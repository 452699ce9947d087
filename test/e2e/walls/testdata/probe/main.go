// Command probe attempts one privileged operation inside a container and
// says how it went: "ok" (exit 0) or the errno's name (exit 1). It never
// changes anything outside the container: files are opened for writing
// but not written, a module load is tried with a file that is no module.
package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe mount|module|rawsock|ptrace PID|openw PATH|read PATH|unshare|keyctl|chown PATH")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "mount":
		err = unix.Mount("none", "/tmp", "tmpfs", 0, "")
		if err == nil {
			unix.Unmount("/tmp", 0)
		}
	case "module":
		// Any file will do: a privileged load fails on its format.
		var f *os.File
		if f, err = os.Open("/proc/self/exe"); err == nil {
			err = unix.FinitModule(int(f.Fd()), "", 0)
			f.Close()
		}
	case "rawsock":
		var fd int
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP); err == nil {
			unix.Close(fd)
		}
	case "ptrace":
		pid, _ := strconv.Atoi(os.Args[2])
		if err = unix.PtraceSeize(pid); err == nil {
			unix.PtraceDetach(pid)
		}
	case "openw":
		var f *os.File
		if f, err = os.OpenFile(os.Args[2], os.O_WRONLY, 0); err == nil {
			f.Close()
		}
	case "read":
		var b []byte
		if b, err = readSome(os.Args[2]); err == nil {
			fmt.Printf("read %d bytes\n", len(b))
		}
	case "unshare":
		err = unix.Unshare(unix.CLONE_NEWUTS)
	case "keyctl":
		_, err = unix.KeyctlJoinSessionKeyring("probe")
	case "chown":
		err = os.Chown(os.Args[2], 1, 1)
	default:
		fmt.Fprintln(os.Stderr, "unknown probe", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		var errno unix.Errno
		if errors.As(err, &errno) {
			fmt.Println(unix.ErrnoName(errno))
		} else {
			fmt.Println(err)
		}
		os.Exit(1)
	}
	fmt.Println("ok")
}

func readSome(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, 4096)
	n, err := f.Read(b)
	if n == 0 && err != nil && err.Error() != "EOF" {
		return nil, err
	}
	return b[:n], nil
}
