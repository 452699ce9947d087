package dns

import (
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/network/netns"
)

// testNS is a network namespace of the test's own (root only).
func testNS(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	ns := filepath.Join(t.TempDir(), "ns")
	if err := netns.Create(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Remove(ns) })
	return ns
}

// TestResolver: in a namespace of the test's own, the resolver answers
// our names (every address, A only), forwards the rest to the upstream
// from the host's namespace, and stops answering after Stop.
func TestResolver(t *testing.T) {
	ns := testNS(t)

	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg).SetReply(q)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.IPv4(198, 51, 100, 1)})
		w.WriteMsg(m)
	})}
	go up.ActivateAndServe()
	t.Cleanup(func() { up.Shutdown() })

	r := New(func(id, name string) []netip.Addr {
		if id == "c1" && name == "web" {
			return []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")}
		}
		return nil
	}, t.Logf)
	if err := r.Listen("c1", ns, []string{pc.LocalAddr().String()}); err != nil {
		t.Fatal(err)
	}
	ask := func(name string, typ uint16) (*dns.Msg, error) {
		var resp *dns.Msg
		err := netns.Do(ns, func() error {
			c := &dns.Client{Timeout: 2 * time.Second}
			var err error
			resp, _, err = c.Exchange(new(dns.Msg).SetQuestion(name, typ), Address+":53")
			return err
		})
		return resp, err
	}
	resp, err := ask("web.", dns.TypeA)
	if err != nil || len(resp.Answer) != 2 {
		t.Fatalf("web A: %v %v", resp, err)
	}
	if resp, err := ask("web.", dns.TypeAAAA); err != nil || len(resp.Answer) != 0 || resp.Rcode != dns.RcodeSuccess {
		t.Fatalf("web AAAA: %v %v", resp, err)
	}
	resp, err = ask("elsewhere.test.", dns.TypeA)
	if err != nil || len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "198.51.100.1" {
		t.Fatalf("forwarded: %v %v", resp, err)
	}
	r.Stop("c1")
	if r.Serving("c1") {
		t.Fatal("still serving after Stop")
	}
	if _, err := ask("web.", dns.TypeA); err == nil {
		t.Fatal("answered after Stop")
	}
}

// TestResolverUDP: a forward waiting on a silent upstream does not hold
// up the answer to a name of ours; an answer too big for the client's
// buffer is truncated (TC set) unless EDNS0 makes room, and TCP gets it
// whole; a response sent to the resolver gets no answer; an opcode
// other than QUERY gets NOTIMP.
func TestResolverUDP(t *testing.T) {
	ns := testNS(t)
	// An upstream that answers only when the test lets it.
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var many []netip.Addr
	for i := range 60 {
		many = append(many, netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}))
	}
	r := New(func(id, name string) []netip.Addr {
		if name == "many" {
			return many
		}
		return nil
	}, t.Logf)
	if err := r.Listen("c1", ns, []string{silent.LocalAddr().String()}); err != nil {
		t.Fatal(err)
	}
	defer r.Stop("c1")
	exchange := func(c *dns.Client, q *dns.Msg) (*dns.Msg, error) {
		var resp *dns.Msg
		err := netns.Do(ns, func() error {
			var err error
			resp, _, err = c.Exchange(q, Address+":53")
			return err
		})
		return resp, err
	}

	forwarded := make(chan error, 1)
	go func() {
		_, err := exchange(&dns.Client{Timeout: 10 * time.Second}, new(dns.Msg).SetQuestion("elsewhere.test.", dns.TypeA))
		forwarded <- err
	}()
	// The forward is read first: the resolver waits on the upstream.
	buf := make([]byte, 512)
	silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, asker, err := silent.ReadFrom(buf)
	if err != nil {
		t.Fatalf("the forward never reached the upstream: %v", err)
	}
	resp, err := exchange(&dns.Client{Timeout: 10 * time.Second}, new(dns.Msg).SetQuestion("many.", dns.TypeA))
	if err != nil {
		t.Fatalf("many A while a forward waits: %v", err)
	}
	select {
	case err := <-forwarded:
		t.Fatalf("the forward ended (%v) before the local answer came: they were served in turn", err)
	default:
	}
	// Now the upstream answers, and the forward ends (before the test
	// does: the resolver logs through t).
	fq := new(dns.Msg)
	if err := fq.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	if b, err := new(dns.Msg).SetReply(fq).Pack(); err != nil {
		t.Fatal(err)
	} else if _, err := silent.WriteTo(b, asker); err != nil {
		t.Fatal(err)
	}
	if err := <-forwarded; err != nil {
		t.Errorf("the forward, once the upstream answered: %v", err)
	}
	resp.Compress = true // as it came: Len is then its size on the wire
	if !resp.Truncated || resp.Len() > dns.MinMsgSize {
		t.Errorf("60 A records without EDNS0: truncated %v, %d bytes; want TC and at most 512", resp.Truncated, resp.Len())
	}
	q := new(dns.Msg).SetQuestion("many.", dns.TypeA).SetEdns0(4096, false)
	if resp, err := exchange(&dns.Client{Timeout: 2 * time.Second}, q); err != nil {
		t.Errorf("with EDNS0 4096: %v", err)
	} else if resp.Truncated || len(resp.Answer) != 60 {
		t.Errorf("with EDNS0 4096: truncated %v, %d answers; want all 60", resp.Truncated, len(resp.Answer))
	}
	if resp, err := exchange(&dns.Client{Net: "tcp", Timeout: 2 * time.Second}, new(dns.Msg).SetQuestion("many.", dns.TypeA)); err != nil || len(resp.Answer) != 60 {
		t.Errorf("over TCP: %v %v", resp, err)
	}
	update := new(dns.Msg).SetQuestion("many.", dns.TypeA)
	update.Opcode = dns.OpcodeUpdate
	if resp, err := exchange(&dns.Client{Timeout: 2 * time.Second}, update); err != nil || resp.Rcode != dns.RcodeNotImplemented {
		t.Errorf("UPDATE: %v %v, want NOTIMP", resp, err)
	}
	reply := new(dns.Msg).SetQuestion("many.", dns.TypeA)
	reply.Response = true
	if resp, err := exchange(&dns.Client{Timeout: 500 * time.Millisecond}, reply); err == nil {
		t.Errorf("a response sent to the resolver was answered: %v", resp)
	}
}
