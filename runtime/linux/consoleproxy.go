package linux

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// consoleProxy is the runtime's own console socket for foreground `run` and
// `exec` with a terminal: it receives the pty master and relays it to our
// stdio, with the user's terminal in raw mode.
type consoleProxy struct {
	child    *os.File // handed to the container process
	parent   *os.File
	master   *os.File
	restore  *unix.Termios
	copyDone sync.WaitGroup
}

func newConsoleProxy() (*consoleProxy, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return &consoleProxy{child: os.NewFile(uintptr(fds[1]), "console-child"), parent: os.NewFile(uintptr(fds[0]), "console-parent")}, nil
}

// start receives the master and begins relaying.
func (c *consoleProxy) start() error {
	c.child.Close()
	master, err := recvFd(c.parent)
	if err != nil {
		return err
	}
	c.master = master
	if t, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		c.restore = t
		raw := *t
		raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		raw.Oflag &^= unix.OPOST
		raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		raw.Cflag &^= unix.CSIZE | unix.PARENB
		raw.Cflag |= unix.CS8
		unix.IoctlSetTermios(0, unix.TCSETS, &raw)
		c.resize()
	}
	go io.Copy(master, os.Stdin)
	c.copyDone.Add(1)
	go func() {
		defer c.copyDone.Done()
		io.Copy(os.Stdout, master) // ends with EIO when the last slave closes
	}()
	return nil
}

func (c *consoleProxy) resize() {
	if c.master == nil {
		return
	}
	if ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ); err == nil {
		unix.IoctlSetWinsize(int(c.master.Fd()), unix.TIOCSWINSZ, ws)
	}
}

func (c *consoleProxy) wait() { c.copyDone.Wait() }

func (c *consoleProxy) close() {
	if c.restore != nil {
		unix.IoctlSetTermios(0, unix.TCSETS, c.restore)
	}
	c.child.Close()
	c.parent.Close()
	if c.master != nil {
		c.master.Close()
	}
}

// recvFd receives one file descriptor sent with SCM_RIGHTS.
func recvFd(sock *os.File) (*os.File, error) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, errors.New("receive pty master: no file descriptor")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, errors.New("receive pty master: no file descriptor")
	}
	return os.NewFile(uintptr(fds[0]), string(buf[:n])), nil
}
