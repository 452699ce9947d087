package network_test

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// freePort is a TCP and UDP port nothing on the host uses now.
func freePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp4", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", "0.0.0.0:"+strconv.Itoa(p))
		l.Close()
		if err == nil {
			u.Close()
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

// hostAddr is one of the host's own global IPv4 addresses outside the
// test's bridges (eth0's).
func hostAddr(t *testing.T) string {
	t.Helper()
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		l, err := netlink.LinkByIndex(a.LinkIndex)
		if err != nil || l.Type() == "bridge" || a.IP.IsLoopback() {
			continue
		}
		return a.IP.String()
	}
	t.Skip("the host has no non-loopback IPv4 address")
	return ""
}

// udpAsk sends a datagram to addr and returns the first answer.
func udpAsk(t *testing.T, addr string) string {
	t.Helper()
	return udpAskNet(t, "udp4", addr)
}

// udpAskNet is udpAsk over network ("udp4", "udp").
func udpAskNet(t *testing.T, network, addr string) string {
	t.Helper()
	for i := 0; i < 20; i++ {
		c, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(500 * time.Millisecond))
		c.Write([]byte("ping\n"))
		b := make([]byte, 100)
		n, err := c.Read(b)
		c.Close()
		if err == nil {
			return strings.TrimSpace(string(b[:n]))
		}
	}
	return ""
}

// TestPublishedPorts: -p on 127.0.0.1 and on all addresses, a UDP port,
// -P for an exposed port, reached from the host on loopback and on its
// own address, and from another container through the host's address
// (hairpin); docker port and berth port show them; a port in use is
// refused; rm frees the ports and drops the rules.
func TestPublishedPorts(t *testing.T) {
	d, _ := startDaemon(t)
	self := hostAddr(t)
	pLocal, pAll, pUDP := freePort(t), freePort(t), freePort(t)
	netechoImage(t, d)
	d.Must(t, "run", "-d", "--name", "pub",
		"-p", "127.0.0.1:"+strconv.Itoa(pLocal)+":8080", "berth-netecho", "-tcp", ":8080", "-reply", "local")
	// One workload per reply: netecho answers one line for all its ports.
	d.Must(t, "run", "-d", "--name", "pub-all", "-p", strconv.Itoa(pAll)+":8081", "berth-netecho", "-tcp", ":8081", "-reply", "all")
	d.Must(t, "run", "-d", "--name", "pub-udp", "-p", strconv.Itoa(pUDP)+":9000/udp", "berth-netecho", "-udp", ":9000", "-reply", "udp-ok")
	d.Must(t, "run", "-d", "--name", "pub-seven", "--expose", "7000", "-P", "berth-netecho", "-tcp", ":7000", "-reply", "seven")
	if got := readFrom(t, "127.0.0.1:"+strconv.Itoa(pLocal)); got != "local" {
		t.Errorf("127.0.0.1:%d: %q", pLocal, got)
	}
	if got := readFrom(t, "127.0.0.1:"+strconv.Itoa(pAll)); got != "all" {
		t.Errorf("127.0.0.1:%d: %q", pAll, got)
	}
	if got := readFrom(t, self+":"+strconv.Itoa(pAll)); got != "all" {
		t.Errorf("%s:%d: %q", self, pAll, got)
	}
	if c, err := net.DialTimeout("tcp", self+":"+strconv.Itoa(pLocal), time.Second); err == nil {
		// Bound to 127.0.0.1 only: the host's other address is not it.
		c.SetDeadline(time.Now().Add(time.Second))
		b := make([]byte, 10)
		if n, _ := c.Read(b); strings.Contains(string(b[:n]), "local") {
			t.Errorf("port published on 127.0.0.1 answered on %s", self)
		}
		c.Close()
	}
	if got := udpAsk(t, "127.0.0.1:"+strconv.Itoa(pUDP)); got != "udp-ok" {
		t.Errorf("udp 127.0.0.1:%d: %q", pUDP, got)
	}
	if got := udpAsk(t, self+":"+strconv.Itoa(pUDP)); got != "udp-ok" {
		t.Errorf("udp %s:%d: %q", self, pUDP, got)
	}
	ports := inspect(t, d, "pub-seven").NetworkSettings.Ports
	seven := ports["7000/tcp"]
	if len(seven) != 1 || seven[0].HostIp != "0.0.0.0" || seven[0].HostPort == "" {
		t.Fatalf("-P 7000/tcp: %+v", ports)
	}
	if got := readFrom(t, "127.0.0.1:"+seven[0].HostPort); got != "seven" {
		t.Errorf("-P port %s: %q", seven[0].HostPort, got)
	}
	// Hairpin: a container on the bridge reaches pub through the
	// host's address.
	if out := d.Must(t, "run", "--rm", "busybox", "sh", "-c", "nc -w 3 "+self+" "+strconv.Itoa(pAll)+" </dev/null"); !strings.Contains(out, "all") {
		t.Errorf("hairpin via %s:%d: %q", self, pAll, out)
	}
	for name, want := range map[string]string{
		"pub":       "8080/tcp -> 127.0.0.1:" + strconv.Itoa(pLocal) + "\n",
		"pub-seven": "7000/tcp -> 0.0.0.0:" + seven[0].HostPort + "\n",
		"pub-udp":   "9000/udp -> 0.0.0.0:" + strconv.Itoa(pUDP) + "\n",
	} {
		if out := d.Must(t, "port", name); out != want {
			t.Errorf("docker port %s: %q, want %q", name, out, want)
		}
		if out, err := berth(t, d, "port", name); err != nil || out != want {
			t.Errorf("berth port %s: %v %q, want %q", name, err, out, want)
		}
	}
	if bout, err := berth(t, d, "port", "pub", "8080"); err != nil || bout != "127.0.0.1:"+strconv.Itoa(pLocal)+"\n" {
		t.Errorf("berth port pub 8080: %v %q", err, bout)
	}
	if ps := d.Must(t, "ps", "--format", "{{.Ports}}", "--filter", "name=pub"); !strings.Contains(ps, "127.0.0.1:"+strconv.Itoa(pLocal)+"->8080/tcp") {
		t.Errorf("ps ports: %q", ps)
	}
	// The port is taken.
	if out, err := d.Docker("run", "-d", "--name", "clash", "-p", strconv.Itoa(pAll)+":80", "busybox", "sleep", "60"); err == nil || !strings.Contains(out, "port is already allocated") {
		t.Errorf("second publish of %d: %v %s", pAll, err, out)
	}
	d.Docker("rm", "-f", "clash")
	d.Must(t, "rm", "-f", "pub", "pub-all", "pub-udp", "pub-seven")
	for _, p := range []int{pLocal, pAll} {
		l, err := net.Listen("tcp4", "0.0.0.0:"+strconv.Itoa(p))
		if err != nil {
			t.Errorf("port %d not freed: %v", p, err)
			continue
		}
		l.Close()
	}
	if out, err := exec("nft", "list", "ruleset"); err != nil {
		t.Errorf("nft list ruleset: %v %s", err, out)
	} else if strings.Contains(out, "dport "+strconv.Itoa(pAll)) {
		t.Errorf("DNAT rule for %d left:\n%s", pAll, out)
	}
}
