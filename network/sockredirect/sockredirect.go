// Package sockredirect is the published ports' fast path for
// connections made on the host itself, as Cilium's socket-level load
// balancing: cgroup/connect4 and connect6 BPF programs, attached to the
// root of the cgroup2 hierarchy, rewrite connect(hostIP:hostPort) of a
// TCP socket in the host's network namespace to
// connect(containerIP:containerPort) when their maps hold that
// published port (IPv4, IPv6, and IPv4 dialled from a dual-stack socket
// as ::ffff:a.b.c.d), so no packet of the connection crosses the NAT;
// cgroup/getpeername4 and 6 show the client the address it dialled.
// IPv4 UDP is redirected too: connect4 for connected sockets,
// sendmsg4 per datagram for unconnected ones, and recvmsg4 shows the
// replies as coming from the address the client sent to. A socket that
// dialled one of the host's own addresses (not a loopback one) is bound
// to it, so that the container sees the client address the DNAT would
// show it.
//
// It needs Linux 5.8 (bpf_link for cgroups, bpf_get_netns_cookie in
// these programs, the getpeername hooks) and a cgroup2 mount.
//
// It is an accelerator only: the nftables DNAT rules stay in place and
// carry everything it does not (other hosts, containers, IPv6 UDP, and
// every connection while no program is attached). The programs and
// maps are not pinned: they and their bpf_links belong to the daemon's
// file descriptors and vanish with its process, killed or not, so
// nothing is ever left behind; a restarted daemon loads them again and
// refills the maps from its state (Sync).
package sockredirect

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Service is one published port the program redirects.
type Service struct {
	// Proto is "tcp", or "udp" for IPv4 (other protocols are left to
	// the NAT).
	Proto string
	// HostIP is the published address; unspecified (or invalid) means
	// every local address of the host.
	HostIP   netip.Addr
	HostPort uint16
	// Backend is the container's address and port.
	Backend netip.AddrPort
}

// Redirector holds the loaded programs, their links and maps.
type Redirector struct {
	// Cgroup is the cgroup2 directory the programs are attached to.
	Cgroup string

	services, locals, origins    *ebpf.Map
	rev                          *ebpf.Map
	services6, locals6, origins6 *ebpf.Map
	progs                        []*ebpf.Program
	links                        []link.Link

	mu       sync.Mutex
	current  map[[svcKeySize]byte][svcValueSize]byte
	current6 map[[svc6KeySize]byte][svc6ValueSize]byte
	done     chan struct{}
	wg       sync.WaitGroup
}

// Open loads the programs and attaches them to the cgroup2 root. The
// error says why the accelerator cannot run here (no cgroup2 mount, a
// kernel without the program types or helpers, the verifier's refusal).
func Open() (*Redirector, error) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		return nil, errors.New("socket redirect: only little-endian hosts are supported")
	}
	root, err := Cgroup2Root()
	if err != nil {
		return nil, fmt.Errorf("socket redirect: %w", err)
	}
	cookie, err := netnsCookie()
	if err != nil {
		return nil, fmt.Errorf("socket redirect: %w", err)
	}
	r := &Redirector{Cgroup: root, current: map[[svcKeySize]byte][svcValueSize]byte{},
		current6: map[[svc6KeySize]byte][svc6ValueSize]byte{}, done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			r.Close()
		}
	}()
	for _, m := range []struct {
		m    **ebpf.Map
		spec ebpf.MapSpec
	}{
		{&r.services, ebpf.MapSpec{Name: servicesName, Type: ebpf.Hash, KeySize: svcKeySize, ValueSize: svcValueSize, MaxEntries: maxServices}},
		{&r.locals, ebpf.MapSpec{Name: localsName, Type: ebpf.Hash, KeySize: 4, ValueSize: 1, MaxEntries: maxLocals}},
		{&r.origins, ebpf.MapSpec{Name: originsName, Type: ebpf.LRUHash, KeySize: 8, ValueSize: originSize, MaxEntries: maxOrigins}},
		{&r.rev, ebpf.MapSpec{Name: revName, Type: ebpf.LRUHash, KeySize: revKeySize, ValueSize: revValueSize, MaxEntries: maxOrigins}},
		{&r.services6, ebpf.MapSpec{Name: services6Name, Type: ebpf.Hash, KeySize: svc6KeySize, ValueSize: svc6ValueSize, MaxEntries: maxServices}},
		{&r.locals6, ebpf.MapSpec{Name: locals6Name, Type: ebpf.Hash, KeySize: 16, ValueSize: 1, MaxEntries: maxLocals}},
		{&r.origins6, ebpf.MapSpec{Name: origins6Name, Type: ebpf.LRUHash, KeySize: 8, ValueSize: origin6Size, MaxEntries: maxOrigins}},
	} {
		if *m.m, err = ebpf.NewMap(&m.spec); err != nil {
			return nil, fmt.Errorf("socket redirect: map %s: %w", m.spec.Name, err)
		}
	}
	if err := r.watchLocals(); err != nil {
		return nil, fmt.Errorf("socket redirect: %w", err)
	}
	specs := []struct {
		name   string
		attach ebpf.AttachType
		prog   *ebpf.ProgramSpec
	}{
		{connectName, ebpf.AttachCGroupInet4Connect, &ebpf.ProgramSpec{Instructions: connect4(cookie, r.services, r.locals, r.origins, r.rev)}},
		{peernameName, ebpf.AttachCgroupInet4GetPeername, &ebpf.ProgramSpec{Instructions: getpeername4(r.origins)}},
		{connect6Name, ebpf.AttachCGroupInet6Connect, &ebpf.ProgramSpec{Instructions: connect6(cookie, r.services, r.locals, r.services6, r.locals6, r.origins6)}},
		{peername6Name, ebpf.AttachCgroupInet6GetPeername, &ebpf.ProgramSpec{Instructions: getpeername6(r.origins6)}},
		{sendmsgName, ebpf.AttachCGroupUDP4Sendmsg, &ebpf.ProgramSpec{Instructions: sendmsg4(cookie, r.services, r.locals, r.rev)}},
		{recvmsgName, ebpf.AttachCGroupUDP4Recvmsg, &ebpf.ProgramSpec{Instructions: recvmsg4(r.rev)}},
	}
	for _, p := range specs {
		p.prog.Name, p.prog.Type, p.prog.AttachType, p.prog.License = p.name, ebpf.CGroupSockAddr, p.attach, "GPL"
		prog, err := ebpf.NewProgram(p.prog)
		if err != nil {
			return nil, fmt.Errorf("socket redirect: load %s: %w", p.name, err)
		}
		r.progs = append(r.progs, prog)
	}
	cg, err := os.Open(root)
	if err != nil {
		return nil, fmt.Errorf("socket redirect: %w", err)
	}
	defer cg.Close()
	// The programs that translate back (getpeername, recvmsg) go first,
	// so that no socket is redirected before its answers are.
	for _, i := range []int{1, 3, 5, 0, 2, 4} {
		// A bpf_link only (no fallback to the legacy attach): it ends
		// with the daemon's process, where a legacy attachment would
		// outlive it with a map nobody updates.
		l, err := link.AttachRawLink(link.RawLinkOptions{Target: int(cg.Fd()), Program: r.progs[i], Attach: specs[i].attach})
		if err != nil {
			return nil, fmt.Errorf("socket redirect: attach %s to %s: %w", specs[i].name, root, err)
		}
		r.links = append(r.links, l)
	}
	ok = true
	return r, nil
}

// ProgramIDs are the kernel IDs of the programs (connect4,
// getpeername4, connect6, getpeername6, sendmsg4, recvmsg4), for logs
// and tests.
func (r *Redirector) ProgramIDs() []ebpf.ProgramID {
	var out []ebpf.ProgramID
	for _, p := range r.progs {
		if info, err := p.Info(); err == nil {
			if id, ok := info.ID(); ok {
				out = append(out, id)
			}
		}
	}
	return out
}

// Sync makes the services maps hold exactly svcs (TCP, and UDP over
// IPv4; others are skipped). It is idempotent: entries already there are kept, so a
// connection being made meanwhile never sees a gap.
func (r *Redirector) Sync(svcs []Service) error {
	want := map[[svcKeySize]byte][svcValueSize]byte{}
	want6 := map[[svc6KeySize]byte][svc6ValueSize]byte{}
	for _, s := range svcs {
		if k, v, ok := encode(s); ok {
			want[k] = v
		} else if k, v, ok := encode6(s); ok {
			want6[k] = v
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(syncMap(r.services, r.current, want, decodeKey), syncMap(r.services6, r.current6, want6, decodeKey6))
}

// syncMap makes m (whose content is current) hold want, adding before
// removing.
func syncMap[K, V comparable](m *ebpf.Map, current, want map[K]V, name func(K) string) error {
	var errs []error
	for k, v := range want {
		if old, ok := current[k]; ok && old == v {
			continue
		}
		if err := m.Put(k, v); err != nil {
			errs = append(errs, fmt.Errorf("socket redirect: add %s: %w", name(k), err))
			continue
		}
		current[k] = v
	}
	for k := range current {
		if _, ok := want[k]; ok {
			continue
		}
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("socket redirect: remove %s: %w", name(k), err))
			continue
		}
		delete(current, k)
	}
	return errors.Join(errs...)
}

// Close detaches the programs and frees them and the maps.
func (r *Redirector) Close() error {
	select {
	case <-r.done:
	default:
		close(r.done)
	}
	r.wg.Wait()
	var errs []error
	for _, l := range r.links {
		errs = append(errs, l.Close())
	}
	r.links = nil
	for _, p := range r.progs {
		errs = append(errs, p.Close())
	}
	r.progs = nil
	for _, m := range []**ebpf.Map{&r.services, &r.locals, &r.origins, &r.rev, &r.services6, &r.locals6, &r.origins6} {
		if *m != nil {
			errs = append(errs, (*m).Close())
			*m = nil
		}
	}
	return errors.Join(errs...)
}

// encode is s's map key and value; ok is false for services the
// program does not handle.
func encode(s Service) (k [svcKeySize]byte, v [svcValueSize]byte, ok bool) {
	proto := map[string]byte{"tcp": ipprotoTCP, "udp": ipprotoUDP}[s.Proto]
	if proto == 0 || !s.Backend.Addr().Is4() || (s.HostIP.IsValid() && !s.HostIP.Is4()) {
		return k, v, false
	}
	if s.HostIP.IsValid() {
		a := s.HostIP.As4()
		copy(k[:4], a[:])
	}
	binary.BigEndian.PutUint16(k[4:6], s.HostPort)
	k[6] = proto
	b := s.Backend.Addr().As4()
	copy(v[:4], b[:])
	binary.BigEndian.PutUint16(v[4:6], s.Backend.Port())
	return k, v, true
}

// encode6 is encode for IPv6 services (an IPv6 backend, an IPv6 or
// unspecified host address).
func encode6(s Service) (k [svc6KeySize]byte, v [svc6ValueSize]byte, ok bool) {
	b := s.Backend.Addr()
	if s.Proto != "tcp" || !b.Is6() || b.Is4In6() || (s.HostIP.IsValid() && !s.HostIP.Is6() && !s.HostIP.IsUnspecified()) {
		return k, v, false
	}
	if s.HostIP.Is6() {
		a := s.HostIP.As16()
		copy(k[:16], a[:])
	}
	binary.BigEndian.PutUint16(k[16:18], s.HostPort)
	k[18] = ipprotoTCP
	a := b.As16()
	copy(v[:16], a[:])
	binary.BigEndian.PutUint16(v[16:18], s.Backend.Port())
	return k, v, true
}

func decodeKey6(k [svc6KeySize]byte) string {
	return fmt.Sprintf("[%s]:%d/tcp", netip.AddrFrom16([16]byte(k[:16])), binary.BigEndian.Uint16(k[16:18]))
}

func decodeKey(k [svcKeySize]byte) string {
	return fmt.Sprintf("%s:%d/%s", netip.AddrFrom4([4]byte(k[:4])), binary.BigEndian.Uint16(k[4:6]), protoName(k[6]))
}

func protoName(p byte) string {
	if p == ipprotoUDP {
		return "udp"
	}
	return "tcp"
}

// Entries reads the services maps (IPv4 and IPv6) the programs ids use,
// sorted by port (for tests and debugging: the maps are not pinned).
// The wildcard shows as 0.0.0.0 or ::.
func Entries(ids ...ebpf.ProgramID) ([]Service, error) {
	maps := map[ebpf.MapID]bool{}
	for _, id := range ids {
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			return nil, fmt.Errorf("program %d: %w", id, err)
		}
		info, err := prog.Info()
		prog.Close()
		if err != nil {
			return nil, fmt.Errorf("program %d: %w", id, err)
		}
		mids, _ := info.MapIDs()
		for _, mid := range mids {
			maps[mid] = true
		}
	}
	var out []Service
	found := 0
	for mid := range maps {
		m, err := ebpf.NewMapFromID(mid)
		if err != nil {
			return nil, fmt.Errorf("map %d: %w", mid, err)
		}
		mi, err := m.Info()
		if err != nil || (mi.Name != servicesName && mi.Name != services6Name) {
			m.Close()
			continue
		}
		found++
		k, v := make([]byte, mi.KeySize), make([]byte, mi.ValueSize)
		it := m.Iterate()
		for it.Next(&k, &v) {
			out = append(out, decode(k, v))
		}
		err = it.Err()
		m.Close()
		if err != nil {
			return nil, fmt.Errorf("map %s: %w", mi.Name, err)
		}
	}
	if found != 2 {
		return nil, fmt.Errorf("programs %v: %d services maps, want 2", ids, found)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].HostPort != out[j].HostPort {
			return out[i].HostPort < out[j].HostPort
		}
		if out[i].HostIP != out[j].HostIP {
			return out[i].HostIP.Less(out[j].HostIP)
		}
		return out[i].Proto < out[j].Proto
	})
	return out, nil
}

// decode is the Service of a services or services6 entry.
func decode(k, v []byte) Service {
	if len(k) == svcKeySize {
		return Service{Proto: protoName(k[6]), HostIP: netip.AddrFrom4([4]byte(k[:4])), HostPort: binary.BigEndian.Uint16(k[4:6]),
			Backend: netip.AddrPortFrom(netip.AddrFrom4([4]byte(v[:4])), binary.BigEndian.Uint16(v[4:6]))}
	}
	return Service{Proto: "tcp", HostIP: netip.AddrFrom16([16]byte(k[:16])), HostPort: binary.BigEndian.Uint16(k[16:18]),
		Backend: netip.AddrPortFrom(netip.AddrFrom16([16]byte(v[:16])), binary.BigEndian.Uint16(v[16:18]))}
}

// Cgroup2Root is the mount point of the cgroup2 hierarchy's root:
// /sys/fs/cgroup on pure-v2 hosts, /sys/fs/cgroup/unified on hybrid
// ones.
func Cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	return cgroup2Root(f)
}

// cgroup2Root finds the cgroup2 root mount in a mountinfo file.
func cgroup2Root(r io.Reader) (string, error) {
	var found []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, after := strings.Fields(pre), strings.Fields(post)
		// A mount of a subtree (root other than /, as in a cgroup
		// namespace) would cover only part of the host's sockets.
		if !ok || len(fields) < 5 || len(after) < 1 || after[0] != "cgroup2" || fields[3] != "/" {
			continue
		}
		found = append(found, strings.ReplaceAll(fields[4], `\040`, " "))
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	if len(found) == 0 {
		return "", errors.New("no cgroup2 hierarchy is mounted")
	}
	for _, p := range found {
		if p == "/sys/fs/cgroup" || p == "/sys/fs/cgroup/unified" {
			return p, nil
		}
	}
	return found[0], nil
}

// netnsCookie is the cookie of the calling thread's network namespace
// (the daemon's: the host's).
func netnsCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("network namespace cookie: %w", err)
	}
	defer unix.Close(fd)
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("network namespace cookie (SO_NETNS_COOKIE): %w", err)
	}
	return c, nil
}

// watchLocals fills the locals maps with the host's addresses and
// keeps it current, so that a wildcard port is redirected for exactly
// the destinations the DNAT rule's "fib daddr type local" takes.
func (r *Redirector) watchLocals() error {
	ch := make(chan netlink.AddrUpdate, 64)
	// Subscribe before listing: an address added in between is seen.
	if err := netlink.AddrSubscribeWithOptions(ch, r.done, netlink.AddrSubscribeOptions{ReceiveBufferSize: 1 << 20}); err != nil {
		return fmt.Errorf("watch host addresses: %w", err)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list host addresses: %w", err)
	}
	for _, a := range addrs {
		r.setLocal(a.IP, true)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			select {
			case <-r.done:
				return
			case u, ok := <-ch:
				if !ok {
					return
				}
				r.setLocal(u.LinkAddress.IP, u.NewAddr)
			}
		}
	}()
	return nil
}

func (r *Redirector) setLocal(ip net.IP, add bool) {
	m, k := r.locals, []byte(ip.To4())
	if k == nil {
		m, k = r.locals6, []byte(ip.To16())
	}
	if k == nil {
		return
	}
	if add {
		m.Put(k, uint8(1))
	} else {
		m.Delete(k)
	}
}

// attachTypes are the hooks the programs attach to.
var attachTypes = []ebpf.AttachType{
	ebpf.AttachCGroupInet4Connect, ebpf.AttachCgroupInet4GetPeername,
	ebpf.AttachCGroupInet6Connect, ebpf.AttachCgroupInet6GetPeername,
	ebpf.AttachCGroupUDP4Sendmsg, ebpf.AttachCGroupUDP4Recvmsg,
}

// Attached reports whether program id is attached to cgroup at any of
// the hooks this package uses (for checks that nothing is left behind).
func Attached(cgroup string, id ebpf.ProgramID) (bool, error) {
	f, err := os.Open(cgroup)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, at := range attachTypes {
		res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: at})
		if err != nil {
			return false, fmt.Errorf("query %s programs of %s: %w", at, cgroup, err)
		}
		for _, p := range res.Programs {
			if p.ID == id {
				return true, nil
			}
		}
	}
	return false, nil
}
