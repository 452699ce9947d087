package network

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// reserveSCTP binds an SCTP socket to [ip]:port (ip unspecified: all
// addresses of its family, IPv6 only for v6) so that no host process
// takes a published SCTP port; the DNAT rules carry the traffic, as for
// TCP and UDP. A kernel without SCTP cannot run SCTP containers either:
// publishing is refused with that reason.
func reserveSCTP(ip netip.Addr, port uint16, v6 bool) (io.Closer, error) {
	fam := unix.AF_INET
	if v6 {
		fam = unix.AF_INET6
	}
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
	if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.ESOCKTNOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) {
		return nil, fmt.Errorf("publishing sctp ports: this kernel has no SCTP support: %w", errdefs.ErrNotImplemented)
	}
	if err != nil {
		return nil, fmt.Errorf("sctp socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "sctp")
	var sa unix.Sockaddr
	if v6 {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
		a := &unix.SockaddrInet6{Port: int(port)}
		if ip.IsValid() {
			a.Addr = ip.As16()
		}
		sa = a
	} else {
		a := &unix.SockaddrInet4{Port: int(port)}
		if ip.IsValid() {
			a.Addr = ip.As4()
		}
		sa = a
	}
	if err := unix.Bind(fd, sa); err != nil {
		f.Close()
		return nil, fmt.Errorf("bind sctp port %d: %w", port, err)
	}
	return f, nil
}
