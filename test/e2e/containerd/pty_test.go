package containerd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// openPty returns a new pseudo-terminal's master and slave.
func openPty() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, s, nil
}

// ctrTTY runs ctr with a pseudo-terminal as its stdin, stdout and stderr
// (ctr -t insists on one) and returns what it printed and its exit code.
func (d *daemon) ctrTTY(timeout time.Duration, args ...string) ctrResult {
	r := ctrResult{args: args}
	m, s, err := openPty()
	if err != nil {
		r.err, r.code = err, -1
		return r
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := d.ctrCommand(ctx, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		s.Close()
		r.err, r.code = err, -1
		return r
	}
	s.Close()
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		// Ends with EIO once every slave fd is closed.
		_, _ = io.Copy(&out, m)
		close(copied)
	}()
	err = cmd.Wait()
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
	}
	r.stdout = out.String()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		r.code, r.err = ee.ExitCode(), err
	default:
		r.code, r.err = -1, err
	}
	if ctx.Err() != nil {
		r.code, r.err = -1, fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	return r
}
