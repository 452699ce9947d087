package network_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil/berthd"
)

// TestDefaultBridge: a container on the default bridge gets an address
// of the daemon's subnet, a veth on its bridge, a default route via the
// gateway, its address in /etc/hosts, and inspect shows it in Docker's
// shape; the host and another container reach it; stop and rm take
// everything down.
func TestDefaultBridge(t *testing.T) {
	d, tn := startDaemon(t)
	d.Must(t, "run", "-d", "--name", "web", "busybox", "sh", "-c", "echo hello-from-web > /tmp/i; exec nc -ll -p 8080 -e cat /tmp/i")
	web := inspect(t, d, "web")
	br, ok := web.NetworkSettings.Networks["bridge"]
	if !ok {
		t.Fatalf("inspect: no bridge network: %+v", web.NetworkSettings)
	}
	ip := netip.MustParseAddr(br.IPAddress)
	if !tn.Subnet.Contains(ip) || ip == tn.Gateway() || br.Gateway != tn.Gateway().String() || br.IPPrefixLen != 24 {
		t.Fatalf("address %s gateway %s/%d, want in %s via %s", ip, br.Gateway, br.IPPrefixLen, tn.Subnet, tn.Gateway())
	}
	// dockerd's default bridge has no IPAM options: null, not {}; a
	// network the docker CLI creates has {} (it sends an empty map).
	if out := strings.TrimSpace(d.Must(t, "network", "inspect", "bridge", "-f", "{{json .IPAM.Options}}")); out != "null" {
		t.Errorf("bridge IPAM options: %s", out)
	}
	a := ip.As4()
	if br.MacAddress != fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3]) || br.EndpointID == "" || br.NetworkID == "" {
		t.Errorf("endpoint: %+v", br)
	}
	// docker 20.10 (API 1.41) reads the default bridge's endpoint at the
	// top of NetworkSettings too.
	if got := strings.TrimSpace(d.Must(t, "inspect", "-f", "{{.NetworkSettings.IPAddress}} {{.NetworkSettings.Gateway}} {{.NetworkSettings.MacAddress}}", "web")); got != ip.String()+" "+br.Gateway+" "+br.MacAddress {
		t.Errorf("top-level NetworkSettings for API 1.41: %q, want %s %s %s", got, ip, br.Gateway, br.MacAddress)
	}
	// So do clients up to API 1.51 (docker 28 speaks 1.50); 1.52 dropped
	// the fields.
	for _, c := range []struct {
		version string
		legacy  bool
	}{{"1.50", true}, {"1.51", true}, {"1.52", false}} {
		ns := rawInspect(t, d, c.version, "web")["NetworkSettings"].(map[string]any)
		_, hasHairpin := ns["HairpinMode"]
		if c.legacy && (ns["IPAddress"] != ip.String() || ns["Gateway"] != br.Gateway || ns["IPPrefixLen"] != float64(24) || ns["EndpointID"] != br.EndpointID || !hasHairpin) ||
			!c.legacy && (ns["IPAddress"] != nil || hasHairpin) {
			t.Errorf("API %s: NetworkSettings %v", c.version, ns)
		}
	}
	if !strings.HasPrefix(web.NetworkSettings.SandboxKey, d.ExecRoot) {
		t.Errorf("SandboxKey %q not under the exec root %s", web.NetworkSettings.SandboxKey, d.ExecRoot)
	}
	if v := hostVeths(t, tn.Bridge); len(v) != 1 {
		t.Errorf("veths on %s: %v, want one", tn.Bridge, v)
	}
	// From the host, over the bridge.
	if got := readFrom(t, ip.String()+":8080"); got != "hello-from-web" {
		t.Errorf("host -> web: %q", got)
	}
	// From another container on the bridge.
	out := d.Must(t, "run", "--rm", "busybox", "sh", "-c",
		"nc "+ip.String()+" 8080 </dev/null; ip -4 route; cat /etc/hosts; hostname; ip -4 -o addr show eth0")
	if !strings.Contains(out, "hello-from-web") {
		t.Errorf("container -> web: %q", out)
	}
	if !strings.Contains(out, "default via "+tn.Gateway().String()+" dev eth0") {
		t.Errorf("no default route via the gateway: %q", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	host := lines[len(lines)-2]
	addrLine := lines[len(lines)-1]
	f := strings.Fields(addrLine)
	if len(f) < 4 {
		t.Fatalf("ip addr: %q", addrLine)
	}
	own := strings.Split(f[3], "/")[0]
	if own == ip.String() || !tn.Subnet.Contains(netip.MustParseAddr(own)) {
		t.Errorf("second container's address %s", own)
	}
	if !strings.Contains(out, own+"\t"+host) {
		t.Errorf("/etc/hosts lacks %s\t%s: %q", own, host, out)
	}
	// The --rm container's veth went with it.
	waitFor(t, "the --rm container's veth to go", func() bool { return len(hostVeths(t, tn.Bridge)) == 1 })

	// Stop: the sandbox goes (veth, namespace file); start again:
	// the address may change but works.
	d.Must(t, "stop", "-t", "1", "web")
	if v := hostVeths(t, tn.Bridge); len(v) != 0 {
		t.Errorf("veths after stop: %v", v)
	}
	if _, err := os.Stat(web.NetworkSettings.SandboxKey); !os.IsNotExist(err) {
		t.Errorf("namespace file after stop: %v", err)
	}
	if s := inspect(t, d, "web").NetworkSettings; s.SandboxKey != "" || s.Networks["bridge"].IPAddress != "" {
		t.Errorf("stopped container's settings: %+v", s)
	}
	d.Must(t, "start", "web")
	ip2 := inspect(t, d, "web").NetworkSettings.Networks["bridge"].IPAddress
	if got := readFrom(t, ip2+":8080"); got != "hello-from-web" {
		t.Errorf("host -> restarted web: %q", got)
	}
	d.Must(t, "rm", "-f", "web")
	if v := hostVeths(t, tn.Bridge); len(v) != 0 {
		t.Errorf("veths after rm: %v", v)
	}
}

// readFrom reads the first line a TCP server at addr sends.
func readFrom(t *testing.T, addr string) string {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c, derr := hostDial(addr)
		if derr != nil {
			err = derr
			continue
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, rerr := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if rerr != nil && line == "" {
			err = rerr
			continue
		}
		return strings.TrimSpace(line)
	}
	t.Errorf("read from %s: %v", addr, err)
	return ""
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Errorf("timed out waiting for %s", what)
}

// TestNetworkEvents: a container's run sends dockerd's network connect
// and disconnect events for its network.
func TestNetworkEvents(t *testing.T) {
	d, _ := startDaemon(t)
	since := time.Now().Add(-time.Second).Unix()
	d.Must(t, "run", "--rm", "--name", "evt", "busybox", "true")
	until := time.Now().Add(time.Second).Unix()
	out := d.Must(t, "events", "--since", fmt.Sprint(since), "--until", fmt.Sprint(until),
		"--filter", "type=network", "--format", "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}} {{.Actor.Attributes.container}}")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "connect bridge bridge ") || !strings.HasPrefix(lines[1], "disconnect bridge bridge ") {
		t.Fatalf("network events: %q", out)
	}
	if c0, c1 := strings.Fields(lines[0])[3], strings.Fields(lines[1])[3]; c0 != c1 || len(c0) != 64 {
		t.Errorf("network events name containers %q and %q", c0, c1)
	}
	// The none and host networks too, once each way (a --rm container's
	// teardown runs twice).
	for _, mode := range []struct{ name, driver string }{{"none", "null"}, {"host", "host"}} {
		since := time.Now().Add(-time.Second).Unix()
		id := strings.TrimSpace(d.Must(t, "run", "-d", "--rm", "--network", mode.name, "busybox", "true"))
		d.Docker("wait", id)
		time.Sleep(500 * time.Millisecond) // the removal after the exit
		until := time.Now().Add(time.Second).Unix()
		all := d.Must(t, "events", "--since", fmt.Sprint(since), "--until", fmt.Sprint(until),
			"--filter", "type=network", "--format", "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}} {{.Actor.Attributes.container}}")
		var out string
		for _, l := range strings.SplitAfter(all, "\n") {
			if strings.HasSuffix(l, " "+id+"\n") {
				out += strings.TrimSuffix(l, " "+id+"\n") + "\n"
			}
		}
		if want := "connect " + mode.name + " " + mode.driver + "\ndisconnect " + mode.name + " " + mode.driver + "\n"; out != want {
			t.Errorf("--network %s: network events %q, want %q", mode.name, out, want)
		}
	}
}

// rawInspect is GET /v<version>/containers/<name>/json as a client of
// that API version receives it.
func rawInspect(t *testing.T, d *berthd.Daemon, version, name string) map[string]any {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.Socket)
	}}}
	resp, err := c.Get("http://berthd/v" + version + "/containers/" + name + "/json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("inspect %s at API %s: %d %v", name, version, resp.StatusCode, err)
	}
	return doc
}
