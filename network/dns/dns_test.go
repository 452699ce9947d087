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

// TestResolver: in a namespace of the test's own, the resolver answers
// our names (every address, A only), forwards the rest to the upstream
// from the host's namespace, and stops answering after Stop.
func TestResolver(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	ns := filepath.Join(t.TempDir(), "ns")
	if err := netns.Create(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Remove(ns) })

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
