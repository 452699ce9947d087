// Package dns is berthd's embedded DNS server for containers on
// user-defined networks. One Resolver serves every container: for each,
// it opens a UDP and a TCP socket on 127.0.0.11:53 inside the container's
// network namespace and serves them from berthd's goroutines. Names of
// containers (and their aliases) on the asking container's networks are
// answered from the network manager's records, several addresses in
// random order (round robin); every other query is forwarded, from the
// host's namespace, to the container's upstream servers.
package dns

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/berth-dev/berth/network/netns"
)

// Address is where containers find the resolver (Docker's).
const Address = "127.0.0.11"

// Lookup answers a name for a container: the IPv4 and IPv6 addresses
// of the endpoints called name on the container's networks (nil: not
// ours).
type Lookup func(containerID, name string) []netip.Addr

// Resolver serves the embedded DNS of all containers.
type Resolver struct {
	lookup Lookup
	logf   func(string, ...any)

	mu      sync.Mutex
	servers map[string]*served
}

type served struct {
	udp       net.PacketConn
	tcp       *dns.Server
	upstreams []string
	done      chan struct{} // closed when serveUDP has returned
}

// New makes a Resolver answering from lookup.
func New(lookup Lookup, logf func(string, ...any)) *Resolver {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Resolver{lookup: lookup, logf: logf, servers: map[string]*served{}}
}

// Listen opens the resolver's sockets in the network namespace at path
// for container id, forwarding foreign names to upstreams ("ip" or
// "ip:port"). Listening again replaces the previous sockets.
func (r *Resolver) Listen(id, path string, upstreams []string) error {
	r.Stop(id)
	var pc net.PacketConn
	var l net.Listener
	err := netns.Do(path, func() error {
		var err error
		if pc, err = net.ListenPacket("udp4", Address+":53"); err != nil {
			return err
		}
		if l, err = net.Listen("tcp4", Address+":53"); err != nil {
			pc.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("embedded DNS for container %s: %w", id, err)
	}
	s := &served{udp: pc, upstreams: upstreams, done: make(chan struct{})}
	s.tcp = &dns.Server{Listener: l, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		r.reply(w, r.answer(id, s, q, "tcp"))
	})}
	started := make(chan struct{})
	s.tcp.NotifyStartedFunc = func() { close(started) }
	go s.tcp.ActivateAndServe()
	<-started
	go r.serveUDP(id, s)
	r.mu.Lock()
	r.servers[id] = s
	r.mu.Unlock()
	return nil
}

// Stop closes container id's sockets (a no-op without them).
func (r *Resolver) Stop(id string) {
	r.mu.Lock()
	s := r.servers[id]
	delete(r.servers, id)
	r.mu.Unlock()
	if s != nil {
		s.udp.Close()
		<-s.done
		s.tcp.Shutdown()
	}
}

// Close stops every container's sockets.
func (r *Resolver) Close() {
	r.mu.Lock()
	ids := make([]string, 0, len(r.servers))
	for id := range r.servers {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	for _, id := range ids {
		r.Stop(id)
	}
}

// serveUDP answers container id's UDP queries from one goroutine: a
// name of ours inline, so that a lookup wakes no other thread (on a
// virtualised host each wake-up is a good part of the lookup's time), and
// a forward, which may wait seconds for an upstream, in a goroutine of
// its own. The socket is bound to 127.0.0.11, so a plain WriteTo answers
// from the address asked.
func (r *Resolver) serveUDP(id string, s *served) {
	defer close(s.done)
	// Queries are small: 4 KiB, not a 64 KiB buffer per container.
	buf := make([]byte, dns.DefaultMsgSize)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.logf("embedded DNS for container %s: read: %v", id, err)
			continue
		}
		q := new(dns.Msg)
		if err := q.Unpack(buf[:n]); err != nil || q.Response {
			// Not a query: no answer, as miekg/dns's server does.
			continue
		}
		if m := r.local(id, q); m != nil {
			r.writeUDP(s.udp, from, q, m)
			continue
		}
		go func() { r.writeUDP(s.udp, from, q, r.forward(s.upstreams, q, "udp")) }()
	}
}

// writeUDP sends m to the client at to, truncated to what its query
// said it can take (512 bytes without EDNS0).
func (r *Resolver) writeUDP(pc net.PacketConn, to net.Addr, q, m *dns.Msg) {
	size := dns.MinMsgSize
	if o := q.IsEdns0(); o != nil && int(o.UDPSize()) > size {
		size = int(o.UDPSize())
	}
	m.Truncate(size)
	b, err := m.Pack()
	if err == nil {
		_, err = pc.WriteTo(b, to)
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		r.logf("embedded DNS: reply: %v", err)
	}
}

// answer is the reply to q: ours, or the upstreams'.
func (r *Resolver) answer(id string, s *served, q *dns.Msg, network string) *dns.Msg {
	if m := r.local(id, q); m != nil {
		return m
	}
	return r.forward(s.upstreams, q, network)
}

// local is the reply to a query the resolver answers itself (a name of
// ours, or one it refuses), nil for one to forward.
func (r *Resolver) local(id string, q *dns.Msg) *dns.Msg {
	if q.Opcode != dns.OpcodeQuery {
		return new(dns.Msg).SetRcode(q, dns.RcodeNotImplemented)
	}
	if len(q.Question) != 1 {
		return new(dns.Msg).SetRcode(q, dns.RcodeFormatError)
	}
	qn := q.Question[0]
	name := strings.TrimSuffix(strings.ToLower(qn.Name), ".")
	if qn.Qclass == dns.ClassINET && (qn.Qtype == dns.TypeA || qn.Qtype == dns.TypeAAAA || qn.Qtype == dns.TypeANY) {
		if addrs := r.lookup(id, name); len(addrs) > 0 {
			m := new(dns.Msg).SetReply(q)
			m.Authoritative, m.RecursionAvailable = true, true
			// A name of ours without an address of the asked family
			// gets an empty answer, not a forward (dockerd's too).
			rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
			for _, a := range addrs {
				hdr := dns.RR_Header{Name: qn.Name, Class: dns.ClassINET, Ttl: 600}
				switch {
				case a.Is4() && qn.Qtype != dns.TypeAAAA:
					hdr.Rrtype = dns.TypeA
					m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
				case a.Is6() && qn.Qtype != dns.TypeA:
					hdr.Rrtype = dns.TypeAAAA
					m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
				}
			}
			return m
		}
	}
	return nil
}

// forward asks the upstreams in turn; SERVFAIL when none answers.
func (r *Resolver) forward(upstreams []string, q *dns.Msg, network string) *dns.Msg {
	for _, u := range upstreams {
		if _, _, err := net.SplitHostPort(u); err != nil {
			u = net.JoinHostPort(u, "53")
		}
		c := &dns.Client{Net: network, Timeout: 4 * time.Second}
		resp, _, err := c.Exchange(q, u)
		if err == nil && resp.Truncated && network == "udp" {
			c.Net = "tcp"
			resp, _, err = c.Exchange(q, u)
		}
		if err == nil {
			return resp
		}
		r.logf("embedded DNS: forward %s to %s: %v", q.Question[0].Name, u, err)
	}
	return new(dns.Msg).SetRcode(q, dns.RcodeServerFailure)
}

func (r *Resolver) reply(w dns.ResponseWriter, m *dns.Msg) {
	if err := w.WriteMsg(m); err != nil {
		r.logf("embedded DNS: reply: %v", err)
	}
}

// Serving says whether container id has its sockets open.
func (r *Resolver) Serving(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.servers[id]
	return ok
}
