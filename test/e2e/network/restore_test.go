package network_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestDaemonKillKeepsNetworks: after kill -9 of berthd and a restart,
// running containers keep their address and stay reachable, a new
// container never gets an address in use, a container that exited
// while the daemon was away has its network taken down, and rm leaves
// no veth or namespace file.
func TestDaemonKillKeepsNetworks(t *testing.T) {
	d, tn := startDaemon(t)
	d.Must(t, "run", "-d", "--name", "ca", "busybox", "sh", "-c", "echo alive > /tmp/i; exec nc -ll -p 7000 -e cat /tmp/i")
	d.Must(t, "run", "-d", "--name", "cb", "busybox", "sleep", "3")
	ipA := inspect(t, d, "ca").NetworkSettings.Networks["bridge"].IPAddress
	b := inspect(t, d, "cb")
	keyB, pidB := b.NetworkSettings.SandboxKey, b.State.Pid
	d.Crash()
	// b exits while berthd is away.
	waitFor(t, "b to exit", func() bool { _, err := os.Stat(fmt.Sprintf("/proc/%d", pidB)); return os.IsNotExist(err) })
	if _, err := os.Stat(keyB); err != nil {
		t.Errorf("b's namespace file went without berthd: %v", err)
	}
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := readFrom(t, ipA+":7000"); got != "alive" {
		t.Errorf("a after the restart: %q", got)
	}
	if ip := inspect(t, d, "ca").NetworkSettings.Networks["bridge"].IPAddress; ip != ipA {
		t.Errorf("a's address changed across the restart: %s -> %s", ipA, ip)
	}
	waitFor(t, "b's namespace to go", func() bool { _, err := os.Stat(keyB); return os.IsNotExist(err) })
	d.Must(t, "run", "-d", "--name", "cc", "busybox", "sleep", "600")
	if ipC := inspect(t, d, "cc").NetworkSettings.Networks["bridge"].IPAddress; ipC == ipA {
		t.Errorf("c got a's address %s", ipC)
	}
	if v := hostVeths(t, tn.Bridge); len(v) != 2 {
		t.Errorf("veths: %v, want a's and c's", v)
	}
	d.Must(t, "rm", "-f", "ca", "cb", "cc")
	if v := hostVeths(t, tn.Bridge); len(v) != 0 {
		t.Errorf("veths after rm: %v", v)
	}
	if ents, _ := os.ReadDir(filepath.Join(d.ExecRoot, "netns")); len(ents) != 0 {
		t.Errorf("namespace files after rm: %v", ents)
	}
}

// TestManyContainers: 60 containers started at once on the default
// bridge get 60 distinct addresses, and once removed no veth, namespace
// file or address is left (a new container gets the pool's first
// address again after a restart of the daemon).
func TestManyContainers(t *testing.T) {
	d, tn := startDaemon(t)
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if out, err := d.Docker("run", "-d", "--name", fmt.Sprintf("m%d", i), "busybox", "sleep", "600"); err != nil {
				errs <- fmt.Errorf("run m%d: %v: %s", i, err, out)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]string{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("m%d", i)
		ip := strings.TrimSpace(d.Must(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name))
		a, err := netip.ParseAddr(ip)
		if err != nil || !tn.Subnet.Contains(a) {
			t.Errorf("%s: address %q", name, ip)
		}
		if other, dup := seen[ip]; dup {
			t.Errorf("%s and %s share %s", name, other, ip)
		}
		seen[ip] = name
	}
	if v := hostVeths(t, tn.Bridge); len(v) != n {
		t.Errorf("%d veths, want %d", len(v), n)
	}
	ids := strings.Fields(d.Must(t, "ps", "-aq"))
	d.Must(t, append([]string{"rm", "-f"}, ids...)...)
	if v := hostVeths(t, tn.Bridge); len(v) != 0 {
		t.Errorf("veths after rm: %v", v)
	}
	if ents, _ := os.ReadDir(filepath.Join(d.ExecRoot, "netns")); len(ents) != 0 {
		t.Errorf("%d namespace files after rm", len(ents))
	}
	// Every address went back: the daemon's state lists none in use
	// but the gateway.
	if used := usedAddresses(t, d.DataRoot); len(used) != 1 || used[0] != tn.Gateway().String() {
		t.Errorf("addresses in use after rm: %v", used)
	}
}

// usedAddresses reads the addresses the daemon's state has handed out
// on all bridge networks.
func usedAddresses(t *testing.T, dataRoot string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataRoot, "network", "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Networks map[string]struct {
			Pool *struct{ Used map[string]string }
		}
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range st.Networks {
		if n.Pool != nil {
			for a := range n.Pool.Used {
				out = append(out, a)
			}
		}
	}
	return out
}

// TestStopStartKeepsNetworks: a clean stop with no container running
// removes the bridges and the nftables table; the next start makes them
// again from the saved state, and the user network works.
func TestStopStartKeepsNetworks(t *testing.T) {
	d, _ := startDaemon(t)
	tn := newTestNet(t, "bs")
	d.Must(t, "network", "create", "--subnet", tn.Subnet.String(), "-o", "com.docker.network.bridge.name="+tn.Bridge, "kept")
	t.Cleanup(func() { d.Docker("network", "rm", "kept") })
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if v, err := exec("ip", "link", "show", tn.Bridge); err == nil {
		t.Errorf("bridge %s while berthd is stopped: %s", tn.Bridge, v)
	}
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	out := d.Must(t, "run", "--rm", "--network", "kept", "busybox", "ip", "-4", "-o", "addr", "show", "eth0")
	if !strings.Contains(out, tn.Subnet.Addr().String()[:len(tn.Subnet.Addr().String())-1]) {
		t.Errorf("container on kept after restart: %q", out)
	}
	if _, err := exec("ip", "link", "show", tn.Bridge); err != nil {
		t.Errorf("bridge %s not back after the restart", tn.Bridge)
	}
}

// TestCreateCutShort: berthd killed in a create after the container's
// record was written but before its networks were (simulated by taking
// the network record out of the state file while the daemon is down)
// must not leave a container that a start would put on the default
// bridge whatever it asked for: the restarted daemon removes it, as a
// failed create's. Complete creates stay, --network container:<id> ones
// too (they have no network record).
func TestCreateCutShort(t *testing.T) {
	d, _ := startDaemon(t)
	cut := strings.TrimSpace(d.Must(t, "create", "--network", "none", "--name", "cut", "busybox", "true"))
	d.Must(t, "create", "--network", "none", "--name", "whole", "busybox", "true")
	d.Must(t, "create", "--network", "container:whole", "--name", "joiner", "busybox", "true")
	d.Crash()

	path := filepath.Join(d.DataRoot, "network", "state.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]json.RawMessage
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	var reqs map[string]json.RawMessage
	if err := json.Unmarshal(st["Requests"], &reqs); err != nil {
		t.Fatal(err)
	}
	if _, ok := reqs[cut]; !ok {
		t.Fatalf("no network record of %s in %s", cut, path)
	}
	delete(reqs, cut)
	if st["Requests"], err = json.Marshal(reqs); err != nil {
		t.Fatal(err)
	}
	if b, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	names := strings.Fields(d.Must(t, "ps", "-a", "--format", "{{.Names}}"))
	slices.Sort(names)
	if !slices.Equal(names, []string{"joiner", "whole"}) {
		t.Errorf("containers after the restart: %v, want joiner and whole", names)
	}
	if _, err := os.Stat(filepath.Join(d.DataRoot, "containers", cut)); !os.IsNotExist(err) {
		t.Errorf("the cut-short container's directory: %v", err)
	}
	if !strings.Contains(d.Log(), cut+": its create was cut short") {
		t.Errorf("the daemon's log does not say why %s went", cut)
	}
	// The name is free again.
	d.Must(t, "create", "--network", "none", "--name", "cut", "busybox", "true")
	d.Must(t, "rm", "-f", "cut", "joiner", "whole")
}
