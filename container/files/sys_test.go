package files_test

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

func syscallMkfifo(p string) error { return unix.Mkfifo(p, 0o644) }

func listenUnix(t *testing.T, p string) net.Listener {
	t.Helper()
	ln, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
