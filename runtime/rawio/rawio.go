// Package rawio reads and writes small files (cgroup knobs, procfs, state)
// with plain open/read/write/close. An *os.File costs four more system
// calls for each file (fcntl twice, epoll_ctl add and delete: os registers
// every file it can with the netpoller), and the runtime opens dozens of
// such files per container.
package rawio

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

func open(path string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, perm)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// ReadFile is os.ReadFile.
func ReadFile(path string) ([]byte, error) {
	fd, err := open(path, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 2048)
	for {
		if len(buf) == cap(buf) {
			buf = append(make([]byte, 0, 2*cap(buf)), buf...)
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// File is an open file written to in single write(2) calls.
type File struct {
	fd   int
	path string
}

// Open opens path with flags (O_CLOEXEC is added).
func Open(path string, flags int, perm uint32) (*File, error) {
	fd, err := open(path, flags, perm)
	if err != nil {
		return nil, err
	}
	return &File{fd: fd, path: path}, nil
}

// Write writes b in one write(2), as cgroup and procfs files want each
// value: a short write is an error.
func (f *File) Write(b []byte) error {
	for {
		n, err := unix.Write(f.fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "write", Path: f.path, Err: err}
		}
		if n != len(b) {
			return &os.PathError{Op: "write", Path: f.path, Err: unix.EIO}
		}
		return nil
	}
}

// Fd returns the file descriptor.
func (f *File) Fd() int { return f.fd }

// Close closes the file.
func (f *File) Close() error {
	if err := unix.Close(f.fd); err != nil {
		return &os.PathError{Op: "close", Path: f.path, Err: err}
	}
	return nil
}

// WriteFile writes data to an existing file (cgroup knob, procfs entry)
// in one write(2), like os.WriteFile with O_WRONLY|O_TRUNC.
func WriteFile(path string, data []byte) error {
	f, err := Open(path, unix.O_WRONLY|unix.O_TRUNC, 0)
	if err != nil {
		return err
	}
	werr := f.Write(data)
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}
