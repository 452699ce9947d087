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
