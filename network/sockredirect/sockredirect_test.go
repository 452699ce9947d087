package sockredirect

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
)

// serve answers every connection on a fresh 127.0.0.1 port with line.
func serve(t *testing.T, line string) netip.AddrPort { return serveOn(t, "127.0.0.1", line) }

// serveOn is serve on ip.
func serveOn(t *testing.T, ip, line string) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(line + "\n"))
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// freePort is a TCP port nothing listens on now.
func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// ask connects to addr and returns the line read and the peer address
// getpeername gives, or the error.
func ask(addr netip.AddrPort) (string, netip.AddrPort, error) {
	if addr.Addr().Is4In6() {
		return askMapped(addr)
	}
	network := "tcp4"
	if addr.Addr().Is6() {
		network = "tcp6"
	}
	c, err := net.DialTimeout(network, addr.String(), time.Second)
	if err != nil {
		return "", netip.AddrPort{}, err
	}
	defer c.Close()
	var peer netip.AddrPort
	raw, _ := c.(*net.TCPConn).SyscallConn()
	raw.Control(func(fd uintptr) {
		if sa, err := unix.Getpeername(int(fd)); err == nil {
			switch in := sa.(type) {
			case *unix.SockaddrInet4:
				peer = netip.AddrPortFrom(netip.AddrFrom4(in.Addr), uint16(in.Port))
			case *unix.SockaddrInet6:
				peer = netip.AddrPortFrom(netip.AddrFrom16(in.Addr), uint16(in.Port))
			}
		}
	})
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 64)
	n, err := c.Read(b)
	if err != nil {
		return "", peer, err
	}
	return strings.TrimSpace(string(b[:n])), peer, nil
}

// askMapped is ask for a v4-mapped address, from an AF_INET6 socket
// (Go's net package dials those over AF_INET).
func askMapped(addr netip.AddrPort) (string, netip.AddrPort, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", netip.AddrPort{}, err
	}
	defer unix.Close(fd)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
	if err := unix.Connect(fd, &unix.SockaddrInet6{Addr: addr.Addr().As16(), Port: int(addr.Port())}); err != nil {
		return "", netip.AddrPort{}, err
	}
	var peer netip.AddrPort
	if sa, err := unix.Getpeername(fd); err == nil {
		if in, ok := sa.(*unix.SockaddrInet6); ok {
			peer = netip.AddrPortFrom(netip.AddrFrom16(in.Addr), uint16(in.Port))
		}
	}
	b := make([]byte, 64)
	n, err := unix.Read(fd, b)
	if err != nil {
		return "", peer, err
	}
	return strings.TrimSpace(string(b[:n])), peer, nil
}

// hostAddr is a global IPv4 address of the host.
func hostAddr(t *testing.T) netip.Addr {
	t.Helper()
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && !ip.IsLoopback() {
			return ip
		}
	}
	t.Fatal("the host has no non-loopback IPv4 address")
	return netip.Addr{}
}

// hostAddr6 is a global IPv6 address of the host (invalid: none).
func hostAddr6(t *testing.T) netip.Addr {
	t.Helper()
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.IsGlobalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
			return ip
		}
	}
	return netip.Addr{}
}

func open(t *testing.T) *Redirector {
	t.Helper()
	testutil.RequireRoot(t)
	r, err := Open()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestRedirect: an exact entry takes its address only, a wildcard one
// every local address (one added later too) and nothing else;
// getpeername shows the dialled address; Sync removes what is gone.
func TestRedirect(t *testing.T) {
	r := open(t)
	backend := serve(t, "backend")
	lo := netip.MustParseAddr("127.0.0.1")
	pExact, pAll := freePort(t), freePort(t)
	svcs := []Service{
		{Proto: "tcp", HostIP: lo, HostPort: pExact, Backend: backend},
		{Proto: "tcp", HostPort: pAll, Backend: backend},
		{Proto: "sctp", HostPort: pAll, Backend: backend}, // not ours: skipped
	}
	if err := r.Sync(svcs); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(svcs); err != nil { // idempotent
		t.Fatal(err)
	}
	got, err := Entries(r.ProgramIDs()...)
	if err != nil {
		t.Fatal(err)
	}
	want := []Service{
		{Proto: "tcp", HostIP: lo, HostPort: pExact, Backend: backend},
		{Proto: "tcp", HostIP: netip.IPv4Unspecified(), HostPort: pAll, Backend: backend},
	}
	if pAll < pExact {
		want[0], want[1] = want[1], want[0]
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("entries %v, want %v", got, want)
	}

	dialled := netip.AddrPortFrom(lo, pExact)
	line, peer, err := ask(dialled)
	if err != nil || line != "backend" || peer != dialled {
		t.Errorf("%s: %q peer %s %v", dialled, line, peer, err)
	}
	if line, _, err := ask(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), pExact)); err == nil {
		t.Errorf("127.0.0.2:%d answered %q: an entry for 127.0.0.1 took another address", pExact, line)
	}
	self := hostAddr(t)
	for _, a := range []netip.Addr{lo, netip.MustParseAddr("127.0.0.2"), self} {
		d := netip.AddrPortFrom(a, pAll)
		if line, peer, err := ask(d); err != nil || line != "backend" || peer != d {
			t.Errorf("wildcard via %s: %q peer %s %v", d, line, peer, err)
		}
	}
	// Dialled on the host's own address, the socket is bound to it: the
	// backend sees it as the source, as with the DNAT.
	if c, err := net.Dial("tcp4", netip.AddrPortFrom(self, pAll).String()); err != nil {
		t.Error(err)
	} else {
		if got := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); got != self {
			t.Errorf("source of a connection dialled to %s: %s", self, got)
		}
		c.Close()
	}
	// TEST-NET-1 is no address of this host: not redirected.
	if line, _, err := ask(netip.MustParseAddrPort("192.0.2.1:" + itoa(pAll))); err == nil && line == "backend" {
		t.Errorf("a wildcard entry took a remote address")
	}

	// An address that appears later is a local one too.
	dev := "bsr" + randHex(4)
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: dev}}); err != nil {
		t.Fatal(err)
	}
	l, err := netlink.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netlink.LinkDel(l) })
	extra := netip.MustParseAddr("198.51.100.77")
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: extra.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		line, _, err := ask(netip.AddrPortFrom(extra, pAll))
		if err == nil && line == "backend" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new local address %s not redirected: %q %v", extra, line, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if err := r.Sync(nil); err != nil {
		t.Fatal(err)
	}
	if got, err := Entries(r.ProgramIDs()...); err != nil || len(got) != 0 {
		t.Errorf("entries after Sync(nil): %v %v", got, err)
	}
	if line, _, err := ask(dialled); err == nil {
		t.Errorf("%s answered %q after its entry went", dialled, line)
	}
}

// serveUDP answers every datagram on a fresh 127.0.0.1 port with line
// and the sender's address.
func serveUDP(t *testing.T, line string) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		b := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(line+" "+from.(*net.UDPAddr).AddrPort().Addr().String()+"\n"), from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// TestRedirectUDP: a connected UDP socket reaches the backend and sees
// the dialled address as its peer; an unconnected one's datagrams go to
// the backend and the answers come from the address sent to.
func TestRedirectUDP(t *testing.T) {
	r := open(t)
	backend := serveUDP(t, "udp-backend")
	p := freePort(t)
	if err := r.Sync([]Service{{Proto: "udp", HostPort: p, Backend: backend}}); err != nil {
		t.Fatal(err)
	}
	if got, err := Entries(r.ProgramIDs()...); err != nil || len(got) != 1 || got[0].Proto != "udp" {
		t.Errorf("entries %v %v", got, err)
	}
	for _, ip := range []string{"127.0.0.1", hostAddr(t).String()} {
		dialled := netip.AddrPortFrom(netip.MustParseAddr(ip), p)
		c, err := net.Dial("udp4", dialled.String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write([]byte("ping"))
		b := make([]byte, 100)
		n, err := c.Read(b)
		// The backend sees the address dialled as the source, as with
		// the DNAT (127.0.0.1 here: the backend is on the loopback).
		if want := "udp-backend " + ip; err != nil || strings.TrimSpace(string(b[:n])) != want {
			t.Errorf("connected UDP to %s: %q %v, want %q", dialled, b[:n], err, want)
		}
		if got := c.RemoteAddr().(*net.UDPAddr).AddrPort(); got != dialled {
			t.Errorf("connected UDP peer %s, want %s", got, dialled)
		}
		c.Close()

		pc, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		pc.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := pc.WriteTo([]byte("ping"), net.UDPAddrFromAddrPort(dialled)); err != nil {
			t.Fatal(err)
		}
		n, from, err := pc.ReadFrom(b)
		if err != nil || strings.TrimSpace(string(b[:n])) != "udp-backend "+ip || from.(*net.UDPAddr).AddrPort() != dialled {
			t.Errorf("unconnected UDP to %s: %q from %v, %v", dialled, b[:n], from, err)
		}
		pc.Close()
	}
}

// TestRedirect6: IPv6 entries (exact and wildcard, ::1 a local address
// like any other) and IPv4 ones dialled from a dual-stack socket
// (::ffff:a.b.c.d).
func TestRedirect6(t *testing.T) {
	r := open(t)
	backend4 := serve(t, "backend4")
	backend6 := serveOn(t, "::1", "backend6")
	lo6 := netip.IPv6Loopback()
	p4, pExact, pAll := freePort(t), freePort(t), freePort(t)
	if err := r.Sync([]Service{
		{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: p4, Backend: backend4},
		{Proto: "tcp", HostIP: lo6, HostPort: pExact, Backend: backend6},
		{Proto: "tcp", HostPort: pAll, Backend: backend6},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := Entries(r.ProgramIDs()...)
	if err != nil || len(got) != 3 {
		t.Errorf("entries %v %v", got, err)
	}
	mapped := netip.AddrPortFrom(netip.AddrFrom16(netip.MustParseAddr("127.0.0.1").As16()), p4)
	for d, want := range map[netip.AddrPort]string{
		mapped:                          "backend4",
		netip.AddrPortFrom(lo6, pExact): "backend6",
		netip.AddrPortFrom(lo6, pAll):   "backend6",
	} {
		if line, peer, err := ask(d); err != nil || line != want || peer != d {
			t.Errorf("%s: %q peer %s %v, want %q", d, line, peer, err, want)
		}
	}
	// On a global IPv6 address of the host, the socket is bound to it.
	if self6 := hostAddr6(t); self6.IsValid() {
		d := netip.AddrPortFrom(self6, pAll)
		c, err := net.Dial("tcp6", d.String())
		if err != nil {
			t.Error(err)
		} else {
			if got := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); got != self6 {
				t.Errorf("source of a connection dialled to %s: %s", d, got)
			}
			c.Close()
		}
	}
	// 2001:db8:: is documentation space, no address of this host.
	if line, _, err := ask(netip.AddrPortFrom(netip.MustParseAddr("2001:db8::1"), pAll)); err == nil && line == "backend6" {
		t.Errorf("an IPv6 wildcard entry took a remote address")
	}
	if err := r.Sync(nil); err != nil {
		t.Fatal(err)
	}
	if line, _, err := ask(netip.AddrPortFrom(lo6, pExact)); err == nil {
		t.Errorf("[::1]:%d answered %q after its entry went", pExact, line)
	}
}

// TestOtherNamespace: in another network namespace 127.0.0.1:P is that
// namespace's own, entry or not.
func TestOtherNamespace(t *testing.T) {
	r := open(t)
	backend := serve(t, "backend")
	p := freePort(t)
	if err := r.Sync([]Service{{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: p, Backend: backend}}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread never returns to the host's namespace: locked
		// and not unlocked, it ends with the goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			ch <- result{err: err}
			return
		}
		l, err := net.Listen("tcp4", "127.0.0.1:"+itoa(p))
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer l.Close()
		go func() {
			if c, err := l.Accept(); err == nil {
				c.Write([]byte("own\n"))
				c.Close()
			}
		}()
		line, _, err := ask(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p))
		ch <- result{line, err}
	}()
	res := <-ch
	if res.err != nil || res.line != "own" {
		t.Errorf("in a new namespace 127.0.0.1:%d: %q %v, want its own listener", p, res.line, res.err)
	}
	// And on the host the entry holds.
	if line, _, err := ask(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p)); err != nil || line != "backend" {
		t.Errorf("host 127.0.0.1:%d: %q %v", p, line, err)
	}
}

// TestCloseDetaches: after Close neither program is attached to the
// cgroup2 root nor loaded.
func TestCloseDetaches(t *testing.T) {
	testutil.RequireRoot(t)
	r, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	var ids []ebpf.ProgramID
	for _, p := range r.progs {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		ids = append(ids, id)
	}
	if !attached(t, r.Cgroup, ids[0]) {
		t.Fatalf("program %d not attached to %s", ids[0], r.Cgroup)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if attached(t, r.Cgroup, ids[0]) {
		t.Errorf("program %d attached after Close", ids[0])
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range ids {
		for {
			p, err := ebpf.NewProgramFromID(id)
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			if err == nil {
				p.Close()
			}
			if time.Now().After(deadline) {
				t.Errorf("program %d still loaded after Close: %v", id, err)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// attached says whether program id is attached to cgroup.
func attached(t *testing.T, cgroup string, id ebpf.ProgramID) bool {
	t.Helper()
	ok, err := Attached(cgroup, id)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestCgroup2Root: the cgroup2 mount of pure-v2 and hybrid hosts; none
// (v1 only, or only a subtree) is an error.
func TestCgroup2Root(t *testing.T) {
	for _, c := range []struct{ name, mountinfo, want string }{
		{"v2", "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n", "/sys/fs/cgroup"},
		{"hybrid", "25 24 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n" +
			"26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n" +
			"28 25 0:25 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n", "/sys/fs/cgroup/unified"},
		{"elsewhere", "40 24 0:40 / /mnt/cg\\040two rw - cgroup2 none rw\n", "/mnt/cg two"},
		{"v1 only", "28 25 0:25 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n", ""},
		{"subtree", "35 24 0:30 /berth /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", ""},
	} {
		got, err := cgroup2Root(strings.NewReader(c.mountinfo))
		if got != c.want || (err != nil) != (c.want == "") {
			t.Errorf("%s: %q %v, want %q", c.name, got, err, c.want)
		}
	}
}
