package network_test

import (
	"strings"
	"testing"
)

// TestConnectUpdatesHosts: network connect adds the new address's line
// to a running container's /etc/hosts and disconnect takes it away
// again, seen from inside the container (the file is bind-mounted).
func TestConnectUpdatesHosts(t *testing.T) {
	d, _ := startDaemon(t)
	tn := newTestNet(t, "bh")
	t.Cleanup(func() { d.Docker("rm", "-f", "hx"); d.Docker("network", "rm", "hnet") })
	d.Must(t, "network", "create", "--subnet", tn.Subnet.String(), "-o", "com.docker.network.bridge.name="+tn.Bridge, "hnet")
	d.Must(t, "run", "-d", "--name", "hx", "--hostname", "hh", "busybox", "sleep", "600")
	bridgeIP := inspect(t, d, "hx").NetworkSettings.Networks["bridge"].IPAddress
	hosts := func() string { return d.Must(t, "exec", "hx", "cat", "/etc/hosts") }
	if h := hosts(); !strings.Contains(h, bridgeIP+"\thh\n") {
		t.Fatalf("hosts before connect:\n%s", h)
	}
	d.Must(t, "network", "connect", "hnet", "hx")
	netIP := inspect(t, d, "hx").NetworkSettings.Networks["hnet"].IPAddress
	if h := hosts(); !strings.Contains(h, bridgeIP+"\thh\n") || !strings.Contains(h, netIP+"\thh\n") {
		t.Errorf("hosts after connect lacks %s or %s:\n%s", bridgeIP, netIP, h)
	}
	if out, err := berth(t, d, "network", "disconnect", "hnet", "hx"); err != nil {
		t.Fatalf("berth network disconnect: %v %s", err, out)
	}
	if h := hosts(); strings.Contains(h, netIP+"\t") || !strings.Contains(h, bridgeIP+"\thh\n") {
		t.Errorf("hosts after disconnect from hnet:\n%s", h)
	}
	d.Must(t, "network", "disconnect", "bridge", "hx")
	if h := hosts(); strings.Contains(h, bridgeIP+"\t") || strings.Contains(h, "\thh\n") {
		t.Errorf("hosts after disconnect from bridge:\n%s", h)
	}
}

// TestAddHostGateway: --add-host NAME:host-gateway
// names the default bridge's gateway, the host as containers reach it,
// on the default bridge and on a user network alike; entries come before
// the container's own line, as dockerd writes them.
func TestAddHostGateway(t *testing.T) {
	d, tn := startDaemon(t)
	un := newTestNet(t, "bg")
	t.Cleanup(func() { d.Docker("network", "rm", "gnet") })
	d.Must(t, "network", "create", "--subnet", un.Subnet.String(), "-o", "com.docker.network.bridge.name="+un.Bridge, "gnet")
	gw := tn.Gateway().String()
	for _, network := range []string{"bridge", "gnet"} {
		out := d.Must(t, "run", "--rm", "--network", network, "--hostname", "me", "--add-host", "host.docker.internal:host-gateway", "--add-host", "gw2:host-gateway", "busybox", "cat", "/etc/hosts")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < 3 || lines[len(lines)-3] != gw+"\thost.docker.internal" || lines[len(lines)-2] != gw+"\tgw2" || !strings.HasSuffix(lines[len(lines)-1], "\tme") {
			t.Errorf("--network %s: /etc/hosts:\n%s", network, out)
		}
	}
	// The address answers: the host is reachable there.
	if out := d.Must(t, "run", "--rm", "--add-host", "gw:host-gateway", "busybox", "ping", "-c", "1", "-W", "2", "gw"); !strings.Contains(out, "1 packets received") {
		t.Errorf("ping host-gateway: %q", out)
	}
}
