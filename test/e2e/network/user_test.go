package network_test

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestUserNetworks: network create with --subnet/--gateway/--ip-range,
// a bridge name and labels; containers on it with --ip and
// --mac-address talk to each other; inspect and ls show it as Docker
// does; connect/disconnect add and remove an interface of a running
// container; rm refuses while in use, then removes bridge and rules.
func TestUserNetworks(t *testing.T) {
	d, _ := startDaemon(t)
	tn := newTestNet(t, "bu")
	gw := tn.Subnet.Addr().Next().Next().Next().Next() // .4
	id := strings.TrimSpace(d.Must(t, "network", "create", "--subnet", tn.Subnet.String(), "--gateway", gw.String(),
		"--ip-range", netip.PrefixFrom(tn.Subnet.Addr(), 25).String(), "-o", "com.docker.network.bridge.name="+tn.Bridge,
		"--label", "team=net", "app"))
	if len(id) != 64 {
		t.Fatalf("network create printed %q", id)
	}
	l, err := netlink.LinkByName(tn.Bridge)
	if err != nil {
		t.Fatalf("bridge %s: %v", tn.Bridge, err)
	}
	addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != netip.PrefixFrom(gw, 24).String() {
		t.Errorf("bridge addresses %v, want %s/24", addrs, gw)
	}
	var insp []struct {
		Name, Id, Driver, Scope string
		Internal                bool
		IPAM                    struct {
			Config []struct{ Subnet, Gateway, IPRange string }
		}
		Options, Labels map[string]string
		Containers      map[string]struct{ Name, IPv4Address, MacAddress string }
	}
	if err := json.Unmarshal([]byte(d.Must(t, "network", "inspect", "app")), &insp); err != nil || len(insp) != 1 {
		t.Fatalf("network inspect: %v", err)
	}
	n := insp[0]
	if n.Id != id || n.Driver != "bridge" || n.Scope != "local" || len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet != tn.Subnet.String() ||
		n.IPAM.Config[0].Gateway != gw.String() || n.Labels["team"] != "net" || n.Options["com.docker.network.bridge.name"] != tn.Bridge {
		t.Errorf("network inspect: %+v", n)
	}
	ls := d.Must(t, "network", "ls")
	if !strings.HasPrefix(ls, "NETWORK ID     NAME      DRIVER    SCOPE\n") || !strings.Contains(ls, id[:12]+"   app       bridge    local\n") ||
		!strings.Contains(ls, "   bridge    bridge    local\n") || !strings.Contains(ls, "   host      host      local\n") || !strings.Contains(ls, "   none      null      local\n") {
		t.Errorf("docker network ls:\n%s", ls)
	}
	bls, err := berth(t, d, "network", "ls")
	if err != nil || bls != ls {
		t.Errorf("berth network ls: %v\n%s\nwant\n%s", err, bls, ls)
	}
	if out := d.Must(t, "network", "ls", "-q", "--filter", "label=team=net"); strings.TrimSpace(out) != id[:12] {
		t.Errorf("ls --filter label: %q", out)
	}

	fixed := tn.Subnet.Addr().Next().Next().Next().Next().Next().Next().Next().Next().Next().Next() // .10
	d.Must(t, "run", "-d", "--name", "srv", "--network", "app", "--ip", fixed.String(), "--mac-address", "02:aa:bb:cc:dd:ee",
		"busybox", "sh", "-c", "echo on-app > /tmp/i; exec nc -ll -p 9000 -e cat /tmp/i")
	srv := inspect(t, d, "srv").NetworkSettings.Networks["app"]
	if srv.IPAddress != fixed.String() || srv.MacAddress != "02:aa:bb:cc:dd:ee" || srv.Gateway != gw.String() {
		t.Errorf("srv on app: %+v", srv)
	}
	out := d.Must(t, "run", "--rm", "--network", "app", "busybox", "sh", "-c", "nc "+fixed.String()+" 9000 </dev/null; ip -4 -o addr show eth0")
	if !strings.Contains(out, "on-app") {
		t.Errorf("client -> srv on app: %q", out)
	}
	// Addresses come from --ip-range (the subnet's lower half).
	if f := strings.Fields(out[strings.Index(out, "inet "):]); len(f) < 2 {
		t.Errorf("ip addr: %q", out)
	} else if a := netip.MustParsePrefix(f[1]).Addr(); a.As4()[3] >= 128 {
		t.Errorf("address %s outside the ip-range", a)
	}
	if _, err := d.Docker("run", "--rm", "--network", "app", "--ip", fixed.String(), "busybox", "true"); err == nil {
		t.Errorf("a second container got the address in use")
	}
	if out, err := d.Docker("network", "rm", "app"); err == nil || !strings.Contains(out, "has active endpoints") {
		t.Errorf("rm of a network in use: %v %s", err, out)
	}
	insp = nil
	json.Unmarshal([]byte(d.Must(t, "network", "inspect", "app")), &insp)
	if c, ok := insp[0].Containers[inspect(t, d, "srv").ID]; !ok || c.Name != "srv" || c.IPv4Address != fixed.String()+"/24" {
		t.Errorf("network inspect containers: %+v", insp[0].Containers)
	}

	if out := d.Must(t, "ps", "--format", "{{.Names}}", "--filter", "network=app"); out != "srv\n" {
		t.Errorf("ps --filter network=app: %q", out)
	}
	if out := d.Must(t, "ps", "-q", "--filter", "network="+id[:12]); strings.TrimSpace(out) != inspect(t, d, "srv").ID[:12] {
		t.Errorf("ps --filter network=<id>: %q", out)
	}
	// connect and disconnect a running container on the default bridge.
	d.Must(t, "run", "-d", "--name", "roamer", "busybox", "sleep", "600")
	d.Must(t, "network", "connect", "app", "roamer")
	r := inspect(t, d, "roamer")
	if len(r.NetworkSettings.Networks) != 2 || r.NetworkSettings.Networks["app"].IPAddress == "" {
		t.Fatalf("after connect: %+v", r.NetworkSettings.Networks)
	}
	if out := d.Must(t, "exec", "roamer", "sh", "-c", "nc "+fixed.String()+" 9000 </dev/null"); !strings.Contains(out, "on-app") {
		t.Errorf("roamer -> srv after connect: %q", out)
	}
	d.Must(t, "network", "disconnect", "app", "roamer")
	if out, err := d.Docker("exec", "roamer", "ip", "link", "show", "eth1"); err == nil {
		t.Errorf("eth1 still there after disconnect: %s", out)
	}
	if v := hostVeths(t, tn.Bridge); len(v) != 1 {
		t.Errorf("veths on app after disconnect: %v", v)
	}
	d.Must(t, "rm", "-f", "srv", "roamer")
	if out, err := berth(t, d, "network", "rm", "app"); err != nil || strings.TrimSpace(out) != "app" {
		t.Errorf("berth network rm: %v %s", err, out)
	}
	if _, err := netlink.LinkByName(tn.Bridge); err == nil {
		t.Errorf("bridge %s left after network rm", tn.Bridge)
	}
	if out, err := d.Docker("network", "inspect", "app"); err == nil || !strings.Contains(out, "No such network: app") {
		t.Errorf("inspect after rm: %v %s", err, out)
	}
	if out, err := d.Docker("network", "rm", "bridge"); err == nil || !strings.Contains(out, "bridge is a pre-defined network and cannot be removed") {
		t.Errorf("rm bridge: %v %s", err, out)
	}
	if out, err := d.Docker("run", "--rm", "--network", "nosuch", "busybox", "true"); err == nil || !strings.Contains(out, "network nosuch not found") {
		t.Errorf("run on a missing network: %v %s", err, out)
	}
}

// TestIsolationAndInternal: containers on different user networks
// cannot reach each other; an --internal network has no default route
// and cannot reach the host's other networks, while its members still
// talk to each other.
func TestIsolationAndInternal(t *testing.T) {
	d, _ := startDaemon(t)
	n1, n2, n3 := newTestNet(t, "bi"), newTestNet(t, "bi"), newTestNet(t, "bi")
	for _, c := range []struct {
		name string
		tn   testNet
		args []string
	}{{"one", n1, nil}, {"two", n2, nil}, {"inside", n3, []string{"--internal"}}} {
		d.Must(t, append([]string{"network", "create", "--subnet", c.tn.Subnet.String(), "-o", "com.docker.network.bridge.name=" + c.tn.Bridge, c.name}, c.args...)...)
	}
	t.Cleanup(func() { d.Docker("rm", "-f", "s1", "s2", "s3"); d.Docker("network", "rm", "one", "two", "inside") })
	serve := "echo reached > /tmp/i; exec nc -ll -p 9000 -e cat /tmp/i"
	d.Must(t, "run", "-d", "--name", "s1", "--network", "one", "busybox", "sh", "-c", serve)
	d.Must(t, "run", "-d", "--name", "s2", "--network", "two", "busybox", "sh", "-c", serve)
	d.Must(t, "run", "-d", "--name", "s3", "--network", "inside", "busybox", "sh", "-c", serve)
	ip1 := inspect(t, d, "s1").NetworkSettings.Networks["one"].IPAddress
	ip2 := inspect(t, d, "s2").NetworkSettings.Networks["two"].IPAddress
	ip3 := inspect(t, d, "s3").NetworkSettings.Networks["inside"].IPAddress
	try := func(network, ip string) string {
		out, _ := d.Docker("run", "--rm", "--network", network, "busybox", "sh", "-c", "nc -w 2 "+ip+" 9000 </dev/null; true")
		return out
	}
	if out := try("one", ip1); !strings.Contains(out, "reached") {
		t.Errorf("one -> one: %q", out)
	}
	if out := try("one", ip2); strings.Contains(out, "reached") {
		t.Errorf("one reached two: isolation broken")
	}
	if out := try("two", ip1); strings.Contains(out, "reached") {
		t.Errorf("two reached one: isolation broken")
	}
	if out := try("inside", ip3); !strings.Contains(out, "reached") {
		t.Errorf("inside -> inside: %q", out)
	}
	if out := try("inside", ip1); strings.Contains(out, "reached") {
		t.Errorf("the internal network reached one")
	}
	if out := try("one", ip3); strings.Contains(out, "reached") {
		t.Errorf("one reached the internal network")
	}
	if out := d.Must(t, "run", "--rm", "--network", "inside", "busybox", "ip", "route"); strings.Contains(out, "default") {
		t.Errorf("internal network has a default route: %q", out)
	}
	if g := inspect(t, d, "s3").NetworkSettings.Networks["inside"].Gateway; g != "" {
		t.Errorf("internal network endpoint shows gateway %q", g)
	}
}

// TestNetworkModes: none has only lo; host sees the host's devices;
// container:<name> shares the other container's namespace (and address).
func TestNetworkModes(t *testing.T) {
	d, tn := startDaemon(t)
	if out := d.Must(t, "run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"); strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "lo:") || !strings.Contains(out, "UP") {
		t.Errorf("--network none links: %q", out)
	}
	if out := d.Must(t, "run", "--rm", "--network", "host", "busybox", "ip", "-o", "link"); !strings.Contains(out, tn.Bridge) {
		t.Errorf("--network host does not see the host's %s: %q", tn.Bridge, out)
	}
	// Host networking keeps its own UTS namespace: --hostname holds, as
	// with dockerd; --add-host makes a hosts file of its own.
	if out := d.Must(t, "run", "--rm", "--network", "host", "--hostname", "hostmode", "busybox", "sh", "-c", "hostname; cat /etc/hostname"); out != "hostmode\nhostmode\n" {
		t.Errorf("--network host --hostname: %q", out)
	}
	if out := d.Must(t, "run", "--rm", "--network", "host", "-p", "8080:80", "busybox", "true"); !strings.Contains(out, "WARNING: Published ports are discarded when using host network mode") {
		t.Errorf("--network host -p: no warning: %q", out)
	}
	if out := d.Must(t, "run", "--rm", "--network", "host", "--add-host", "extra:192.0.2.9", "busybox", "cat", "/etc/hosts"); !strings.HasPrefix(out, "127.0.0.1\tlocalhost\n") || !strings.HasSuffix(out, "192.0.2.9\textra\n") {
		t.Errorf("--network host --add-host: /etc/hosts:\n%s", out)
	}

	d.Must(t, "run", "-d", "--name", "base", "--hostname", "basehost", "--dns-search", "example.org", "busybox", "sh", "-c", "echo shared > /tmp/i; exec nc -ll -p 9100 -e cat /tmp/i")
	ip := inspect(t, d, "base").NetworkSettings.Networks["bridge"].IPAddress
	out := d.Must(t, "run", "--rm", "--network", "container:base", "busybox", "sh", "-c", "ip -4 -o addr show eth0; nc 127.0.0.1 9100 </dev/null")
	if !strings.Contains(out, ip+"/24") || !strings.Contains(out, "shared") {
		t.Errorf("container:base: %q", out)
	}
	// It takes base's hostname and shares its hosts and resolv.conf.
	want := d.Must(t, "exec", "base", "sh", "-c", "hostname; cat /etc/hosts /etc/resolv.conf")
	if got := d.Must(t, "run", "--rm", "--network", "container:base", "busybox", "sh", "-c", "hostname; cat /etc/hosts /etc/resolv.conf"); got != want || !strings.Contains(got, ip+"\tbasehost\n") || !strings.Contains(got, "search example.org") {
		t.Errorf("container:base: hostname and files:\n%s\nwant base's:\n%s", got, want)
	}
	// Its record says so too (inspect), as dockerd's once it started.
	d.Must(t, "run", "--name", "joined", "--network", "container:base", "busybox", "true")
	if got := d.Must(t, "inspect", "-f", "{{.Config.Hostname}}", "joined"); got != "basehost\n" {
		t.Errorf("container:base: inspect's Config.Hostname %q, want basehost", got)
	}
	d.Must(t, "rm", "joined")
	for _, c := range []struct{ flag, value, msg string }{
		{"--hostname", "x", "conflicting options: hostname and the network mode"},
		{"--dns", "192.0.2.53", "conflicting options: dns and the network mode"},
		{"--add-host", "a:192.0.2.1", "conflicting options: custom host-to-IP mapping and the network mode"},
		{"--expose", "80", "conflicting options: port exposing and the container type network mode"},
		{"-p", "8080:80", "conflicting options: port publishing and the container type network mode"},
	} {
		out, code := d.DockerCode(t, "run", "--rm", "--network", "container:base", c.flag, c.value, "busybox", "true")
		if code != 125 || !strings.Contains(out, c.msg) {
			t.Errorf("--network container:base %s %s: exit %d, %q; want 125 and %q", c.flag, c.value, code, out, c.msg)
		}
	}
	d.Must(t, "stop", "-t", "1", "base")
	if out, err := d.Docker("run", "--rm", "--network", "container:base", "busybox", "true"); err == nil || !strings.Contains(out, "non running container") {
		t.Errorf("joining a stopped container: %v %s", err, out)
	}
	if v := hostVeths(t, tn.Bridge); len(v) != 0 {
		t.Errorf("veths left: %v", v)
	}
}

// TestNetworkPrune: prune removes the unused user networks that pass
// the filters, keeps those a container uses and the predefined ones.
func TestNetworkPrune(t *testing.T) {
	d, _ := startDaemon(t)
	for _, c := range []struct{ name, label string }{{"keep", "keep=yes"}, {"drop1", "x=1"}, {"drop2", "x=2"}, {"used", "x=3"}} {
		tn := newTestNet(t, "bp")
		d.Must(t, "network", "create", "--subnet", tn.Subnet.String(), "-o", "com.docker.network.bridge.name="+tn.Bridge, "--label", c.label, c.name)
	}
	d.Must(t, "create", "--name", "user", "--network", "used", "busybox", "true")
	t.Cleanup(func() { d.Docker("rm", "-f", "user"); d.Docker("network", "rm", "keep", "used", "drop1", "drop2") })
	out := d.Must(t, "network", "prune", "-f", "--filter", "label=x")
	if !strings.HasPrefix(out, "Deleted Networks:\n") || !strings.Contains(out, "drop1\n") || !strings.Contains(out, "drop2\n") || strings.Contains(out, "used") || strings.Contains(out, "keep") {
		t.Errorf("docker network prune: %q", out)
	}
	d.Must(t, "rm", "user")
	bout, err := berth(t, d, "network", "prune", "-f")
	if err != nil || bout != "Deleted Networks:\nkeep\nused\n\n" {
		t.Errorf("berth network prune: %v %q", err, bout)
	}
	ls := d.Must(t, "network", "ls", "--format", "{{.Name}}")
	if ls != "bridge\nhost\nnone\n" {
		t.Errorf("networks left: %q", ls)
	}
}
