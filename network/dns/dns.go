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
	udp, tcp  *dns.Server
	upstreams []string
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
	s := &served{upstreams: upstreams}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) { r.serve(id, s, w, q) })
	s.udp = &dns.Server{PacketConn: pc, Handler: h}
	s.tcp = &dns.Server{Listener: l, Handler: h}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
	}
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
		s.udp.Shutdown()
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

func (r *Resolver) serve(id string, s *served, w dns.ResponseWriter, q *dns.Msg) {
	if len(q.Question) != 1 {
		r.reply(w, new(dns.Msg).SetRcode(q, dns.RcodeFormatError))
		return
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
			r.reply(w, m)
			return
		}
	}
	r.reply(w, r.forward(s.upstreams, q, w.LocalAddr().Network()))
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
