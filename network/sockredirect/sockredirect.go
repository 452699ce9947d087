// Package sockredirect is the published ports' fast path for
// connections made on the host itself, as Cilium's socket-level load
// balancing: a cgroup/connect4 BPF program, attached to the root of the
// cgroup2 hierarchy, rewrites connect(hostIP:hostPort) of a TCP socket
// in the host's network namespace to connect(containerIP:containerPort)
// when its map holds that published port, so no packet of the
// connection crosses conntrack and the NAT; cgroup/getpeername4 shows
// the client the address it dialled.
//
// It is an accelerator only: the nftables DNAT rules stay in place and
// carry everything it does not (other hosts, containers, UDP, IPv6,
// and every connection while no program is attached). The programs and
// maps are not pinned: they belong to the daemon's file descriptors and
// vanish with its process, killed or not, so nothing is ever left
// behind; a restarted daemon loads them again and refills the map from
// its state (Sync).
package sockredirect

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
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
	// Proto is "tcp" (other protocols are left to the NAT).
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

	services, locals, origins *ebpf.Map
	progs                     []*ebpf.Program
	links                     []link.Link

	mu      sync.Mutex
	current map[[svcKeySize]byte][svcValueSize]byte
	done    chan struct{}
	wg      sync.WaitGroup
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
	r := &Redirector{Cgroup: root, current: map[[svcKeySize]byte][svcValueSize]byte{}, done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			r.Close()
		}
	}()
	if r.services, err = ebpf.NewMap(&ebpf.MapSpec{Name: servicesName, Type: ebpf.Hash, KeySize: svcKeySize, ValueSize: svcValueSize, MaxEntries: maxServices}); err != nil {
		return nil, fmt.Errorf("socket redirect: map %s: %w", servicesName, err)
	}
	if r.locals, err = ebpf.NewMap(&ebpf.MapSpec{Name: localsName, Type: ebpf.Hash, KeySize: 4, ValueSize: 1, MaxEntries: maxLocals}); err != nil {
		return nil, fmt.Errorf("socket redirect: map %s: %w", localsName, err)
	}
	if r.origins, err = ebpf.NewMap(&ebpf.MapSpec{Name: originsName, Type: ebpf.LRUHash, KeySize: 8, ValueSize: originSize, MaxEntries: maxOrigins}); err != nil {
		return nil, fmt.Errorf("socket redirect: map %s: %w", originsName, err)
	}
	if err := r.watchLocals(); err != nil {
		return nil, fmt.Errorf("socket redirect: %w", err)
	}
	for _, p := range []struct {
		name   string
		attach ebpf.AttachType
		prog   *ebpf.ProgramSpec
	}{
		{connectName, ebpf.AttachCGroupInet4Connect, &ebpf.ProgramSpec{Instructions: connect4(cookie, r.services, r.locals, r.origins)}},
		{peernameName, ebpf.AttachCgroupInet4GetPeername, &ebpf.ProgramSpec{Instructions: getpeername4(r.origins)}},
	} {
		p.prog.Name, p.prog.Type, p.prog.AttachType, p.prog.License = p.name, ebpf.CGroupSockAddr, p.attach, "GPL"
		prog, err := ebpf.NewProgram(p.prog)
		if err != nil {
			return nil, fmt.Errorf("socket redirect: load %s: %w", p.name, err)
		}
		r.progs = append(r.progs, prog)
		l, err := link.AttachCgroup(link.CgroupOptions{Path: root, Attach: p.attach, Program: prog})
		if err != nil {
			return nil, fmt.Errorf("socket redirect: attach %s to %s: %w", p.name, root, err)
		}
		r.links = append(r.links, l)
	}
	ok = true
	return r, nil
}

// ProgramID is the connect4 program's kernel ID (for logs and tests).
func (r *Redirector) ProgramID() ebpf.ProgramID {
	if len(r.progs) == 0 {
		return 0
	}
	info, err := r.progs[0].Info()
	if err != nil {
		return 0
	}
	id, _ := info.ID()
	return id
}

// Sync makes the services map hold exactly svcs (TCP IPv4 ones; others
// are skipped). It is idempotent: entries already there are kept, so a
// connection being made meanwhile never sees a gap.
func (r *Redirector) Sync(svcs []Service) error {
	want := map[[svcKeySize]byte][svcValueSize]byte{}
	for _, s := range svcs {
		k, v, ok := encode(s)
		if ok {
			want[k] = v
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for k, v := range want {
		if old, ok := r.current[k]; ok && old == v {
			continue
		}
		if err := r.services.Put(k, v); err != nil {
			errs = append(errs, fmt.Errorf("socket redirect: add %s: %w", decodeKey(k), err))
			continue
		}
		r.current[k] = v
	}
	for k := range r.current {
		if _, ok := want[k]; ok {
			continue
		}
		if err := r.services.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("socket redirect: remove %s: %w", decodeKey(k), err))
			continue
		}
		delete(r.current, k)
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
	for _, m := range []*ebpf.Map{r.services, r.locals, r.origins} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	r.services, r.locals, r.origins = nil, nil, nil
	return errors.Join(errs...)
}

// encode is s's map key and value; ok is false for services the
// program does not handle.
func encode(s Service) (k [svcKeySize]byte, v [svcValueSize]byte, ok bool) {
	if s.Proto != "tcp" || !s.Backend.Addr().Is4() || (s.HostIP.IsValid() && !s.HostIP.Is4()) {
		return k, v, false
	}
	if s.HostIP.IsValid() {
		a := s.HostIP.As4()
		copy(k[:4], a[:])
	}
	binary.BigEndian.PutUint16(k[4:6], s.HostPort)
	k[6] = ipprotoTCP
	b := s.Backend.Addr().As4()
	copy(v[:4], b[:])
	binary.BigEndian.PutUint16(v[4:6], s.Backend.Port())
	return k, v, true
}

func decodeKey(k [svcKeySize]byte) string {
	return fmt.Sprintf("%s:%d/tcp", netip.AddrFrom4([4]byte(k[:4])), binary.BigEndian.Uint16(k[4:6]))
}

// Entries reads the services map of the connect4 program whose ID is
// id, sorted (for tests and debugging: the maps are not pinned).
func Entries(id ebpf.ProgramID) ([]Service, error) {
	prog, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return nil, fmt.Errorf("program %d: %w", id, err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return nil, fmt.Errorf("program %d: %w", id, err)
	}
	ids, _ := info.MapIDs()
	for _, mid := range ids {
		m, err := ebpf.NewMapFromID(mid)
		if err != nil {
			return nil, fmt.Errorf("map %d: %w", mid, err)
		}
		mi, err := m.Info()
		if err != nil || mi.Name != servicesName {
			m.Close()
			continue
		}
		var out []Service
		var k [svcKeySize]byte
		var v [svcValueSize]byte
		it := m.Iterate()
		for it.Next(&k, &v) {
			s := Service{Proto: "tcp", HostIP: netip.AddrFrom4([4]byte(k[:4])), HostPort: binary.BigEndian.Uint16(k[4:6]),
				Backend: netip.AddrPortFrom(netip.AddrFrom4([4]byte(v[:4])), binary.BigEndian.Uint16(v[4:6]))}
			out = append(out, s)
		}
		err = it.Err()
		m.Close()
		sort.Slice(out, func(i, j int) bool {
			if out[i].HostPort != out[j].HostPort {
				return out[i].HostPort < out[j].HostPort
			}
			return out[i].HostIP.Less(out[j].HostIP)
		})
		return out, err
	}
	return nil, fmt.Errorf("program %d has no map %s", id, servicesName)
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
	var found []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, after := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(after) < 1 || after[0] != "cgroup2" || fields[3] != "/" {
			continue
		}
		found = append(found, strings.ReplaceAll(fields[4], `\040`, " "))
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read /proc/self/mountinfo: %w", err)
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

// watchLocals fills the locals map with the host's IPv4 addresses and
// keeps it current, so that a wildcard port is redirected for exactly
// the destinations the DNAT rule's "fib daddr type local" takes.
func (r *Redirector) watchLocals() error {
	ch := make(chan netlink.AddrUpdate, 64)
	// Subscribe before listing: an address added in between is seen.
	if err := netlink.AddrSubscribeWithOptions(ch, r.done, netlink.AddrSubscribeOptions{ReceiveBufferSize: 1 << 20}); err != nil {
		return fmt.Errorf("watch host addresses: %w", err)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list host addresses: %w", err)
	}
	for _, a := range addrs {
		r.setLocal(a.IP.To4(), true)
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
				r.setLocal(u.LinkAddress.IP.To4(), u.NewAddr)
			}
		}
	}()
	return nil
}

func (r *Redirector) setLocal(ip4 []byte, add bool) {
	if len(ip4) != 4 {
		return
	}
	k := [4]byte(ip4)
	if add {
		r.locals.Put(k, uint8(1))
	} else {
		r.locals.Delete(k)
	}
}
