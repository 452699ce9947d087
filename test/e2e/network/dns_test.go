package network_test

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestEmbeddedDNS: on a user network, containers resolve each other by
// name and by alias (a shared alias gives every address), a stopped
// container's name goes, other names are forwarded to the container's
// --dns server (a resolver of the test's on the network's gateway), and
// resolv.conf names 127.0.0.11.
func TestEmbeddedDNS(t *testing.T) {
	d, _ := startDaemon(t)
	tn := newTestNet(t, "bd")
	d.Must(t, "network", "create", "--subnet", tn.Subnet.String(), "-o", "com.docker.network.bridge.name="+tn.Bridge, "dnsnet")
	t.Cleanup(func() { d.Docker("rm", "-f", "web1", "web2"); d.Docker("network", "rm", "dnsnet") })

	// The upstream: answers outside.test. from the host side of the bridge.
	pc, err := net.ListenPacket("udp4", tn.Gateway().String()+":53")
	if err != nil {
		t.Fatal(err)
	}
	up := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg).SetReply(q)
		if q.Question[0].Name == "outside.test." && q.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "outside.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(203, 0, 113, 7)})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go up.ActivateAndServe()
	t.Cleanup(func() { up.Shutdown() })

	d.Must(t, "run", "-d", "--name", "web1", "--network", "dnsnet", "--network-alias", "svc", "busybox", "sleep", "600")
	d.Must(t, "run", "-d", "--name", "web2", "--network", "dnsnet", "--network-alias", "svc", "--hostname", "host2", "busybox", "sleep", "600")
	ip1 := inspect(t, d, "web1").NetworkSettings.Networks["dnsnet"].IPAddress
	ip2 := inspect(t, d, "web2").NetworkSettings.Networks["dnsnet"].IPAddress
	if a := inspect(t, d, "web1").NetworkSettings.Networks["dnsnet"]; len(a.Aliases) != 1 || a.Aliases[0] != "svc" {
		t.Errorf("web1 aliases: %v", a.Aliases)
	}
	out := d.Must(t, "run", "--rm", "--network", "dnsnet", "--dns", tn.Gateway().String(), "busybox", "sh", "-c",
		"cat /etc/resolv.conf; echo ==; nslookup web1; echo ==; nslookup svc; echo ==; nslookup outside.test; echo ==; ping -c 1 -W 2 web2")
	parts := strings.Split(out, "==")
	if len(parts) != 5 {
		t.Fatalf("output: %q", out)
	}
	if !strings.Contains(parts[0], "nameserver 127.0.0.11") || strings.Contains(parts[0], tn.Gateway().String()) {
		t.Errorf("resolv.conf: %q", parts[0])
	}
	if !strings.Contains(parts[1], "Address: "+ip1) || strings.Contains(parts[1], ip2) {
		t.Errorf("nslookup web1: %q", parts[1])
	}
	if !strings.Contains(parts[2], ip1) || !strings.Contains(parts[2], ip2) {
		t.Errorf("nslookup svc (both): %q", parts[2])
	}
	if !strings.Contains(parts[3], "203.0.113.7") {
		t.Errorf("nslookup outside.test (forwarded): %q", parts[3])
	}
	if !strings.Contains(parts[4], "1 packets received") {
		t.Errorf("ping web2 by name: %q", parts[4])
	}
	// As dockerd: the hostname is a name too, and every name answers
	// with the network's name appended.
	if es := inspect(t, d, "web2").NetworkSettings.Networks["dnsnet"]; !slices.Contains(es.DNSNames, "host2") {
		t.Errorf("web2's DNSNames: %v", es.DNSNames)
	}
	for _, name := range []string{"host2", "web2.dnsnet", "host2.dnsnet", "WEB2.DNSNET"} {
		if out, err := d.Docker("exec", "web1", "nslookup", name); err != nil || !strings.Contains(out, "Address: "+ip2) {
			t.Errorf("nslookup %s from web1: %v %q", name, err, out)
		}
	}
	if out, err := d.Docker("exec", "web1", "nslookup", "svc.dnsnet"); err != nil || !strings.Contains(out, ip1) || !strings.Contains(out, ip2) {
		t.Errorf("nslookup svc.dnsnet from web1: %v %q", err, out)
	}
	// kill -9 of berthd: after its restart, the running containers'
	// resolver answers again.
	d.Crash()
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	if out, err := d.Docker("exec", "web1", "nslookup", "web2"); err != nil || !strings.Contains(out, "Address: "+ip2) {
		t.Errorf("nslookup web2 from web1 after the restart: %v %q", err, out)
	}
	d.Must(t, "stop", "-t", "1", "web2")
	out = d.Must(t, "run", "--rm", "--network", "dnsnet", "busybox", "sh", "-c", "nslookup svc; nslookup web2; true")
	if !strings.Contains(out, ip1) || strings.Contains(out, ip2) {
		t.Errorf("after web2 stopped: %q", out)
	}
	// The default bridge has no embedded DNS: names do not resolve.
	out = d.Must(t, "run", "--rm", "busybox", "sh", "-c", "cat /etc/resolv.conf")
	if strings.Contains(out, "127.0.0.11") {
		t.Errorf("default bridge resolv.conf: %q", out)
	}
}
