package shim

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Unix sockets on raw fds wrapped in pollable *os.File: the shim stays off
// package net (its resolver alone would drag cgo and libc into a static
// binary's place).

// maxSockPath is below sun_path's 108 bytes; longer paths go through the
// state directory's fd (/proc/self/fd/N/name), which the kernel resolves.
const maxSockPath = 100

// sockPath returns a path for dir/name that fits in sun_path, using dirfd
// (an O_PATH fd of dir held by pid) when the plain path is too long.
func sockPath(dir, name string, pid, dirfd int) string {
	p := filepath.Join(dir, name)
	if len(p) < maxSockPath || dirfd < 0 {
		return p
	}
	return "/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(dirfd) + "/" + name
}

// listenUnix binds and listens on path.
func listenUnix(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, wrap("socket", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, wrap("bind "+path, err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		unix.Close(fd)
		return nil, wrap("listen "+path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// accept waits for a connection on l; it fails once l is closed.
func accept(l *os.File) (*os.File, error) {
	rc, err := l.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var aerr error
	err = rc.Read(func(fd uintptr) bool {
		nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return !errors.Is(aerr, unix.EAGAIN)
	})
	if err != nil {
		return nil, err
	}
	if aerr != nil {
		return nil, aerr
	}
	return os.NewFile(uintptr(nfd), "conn"), nil
}

// recvFd receives one fd sent with SCM_RIGHTS (the pty master from the
// runtime's console socket).
func recvFd(c *os.File) (*os.File, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4*4))
	var oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		_, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, wrap("receive pty master", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, wrap("receive pty master", err)
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, extra := range fds[1:] {
			unix.Close(extra)
		}
		if len(fds) > 0 {
			if err := unix.SetNonblock(fds[0], true); err != nil {
				unix.Close(fds[0])
				return nil, err
			}
			return os.NewFile(uintptr(fds[0]), "pty-master"), nil
		}
	}
	return nil, errors.New("receive pty master: no fd in the message")
}

// shutdownWrite half-closes c: the peer reads EOF.
func shutdownWrite(c *os.File) {
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_WR) })
	}
}

// pipe returns a pipe whose end ours is pollable (non-blocking, in Go's
// poller) while theirs stays blocking, as a container's stdio must be.
func pipe(oursIsRead bool) (ours *os.File, theirs int, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, -1, wrap("pipe", err)
	}
	o, t := p[1], p[0]
	if oursIsRead {
		o, t = p[0], p[1]
	}
	if err := unix.SetNonblock(o, true); err != nil {
		unix.Close(o)
		unix.Close(t)
		return nil, -1, err
	}
	return os.NewFile(uintptr(o), "pipe"), t, nil
}
