package network

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/vishvananda/netlink"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/network/firewall"
)

func testID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// openTest opens a manager on temp dirs with a bridge and table of the
// test's own on 10.251.<n>.0/24.
func openTest(t *testing.T, root, exec, bridge, table string) *Manager {
	t.Helper()
	m, err := Open(Options{Root: root, ExecRoot: exec, Bridge: bridge, BridgeIP: "10.251.77.1/24", Table: table, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAddressesSurviveRestart: addresses handed out before a restart of
// the manager are never handed out again while in use, and come back to
// the pool at teardown; sandboxes leave no namespace file; Close with no
// container removes the bridge and the table.
func TestAddressesSurviveRestart(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	root, exec := t.TempDir(), t.TempDir()
	b := make([]byte, 3)
	rand.Read(b)
	bridge, table := "btu"+hex.EncodeToString(b), "berth-unit-"+hex.EncodeToString(b)
	if _, err := netlink.LinkByName(bridge); err == nil {
		t.Skip("name clash")
	}
	if routes, _ := netlink.RouteList(nil, netlink.FAMILY_V4); true {
		for _, r := range routes {
			if r.Dst != nil && r.Dst.Contains([]byte{10, 251, 77, 1}) {
				t.Skip("10.251.77.0/24 is in use on this host")
			}
		}
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(bridge); err == nil {
			netlink.LinkDel(l)
			t.Errorf("bridge %s left", bridge)
		}
		if ok, _ := firewall.Exists(table); ok {
			firewall.Remove(table)
			t.Errorf("table %s left", table)
		}
	})
	m := openTest(t, root, exec, bridge, table)
	hc := &container.HostConfig{NetworkMode: "default"}
	a, b2 := testID(), testID()
	for _, id := range []string{a, b2} {
		if err := m.Register(id, "/c"+id[:4], &container.Config{}, hc, nil); err != nil {
			t.Fatal(err)
		}
	}
	sa, err := m.Setup(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(sa.Addresses) != 1 || !netip.MustParsePrefix("10.251.77.0/24").Contains(sa.Addresses[0]) || sa.Addresses[0] == netip.MustParseAddr("10.251.77.1") {
		t.Fatalf("a: %+v", sa)
	}
	// A daemon restart: a new manager on the same state.
	m.mu.Lock()
	m.unpublishLocked(a)
	m.mu.Unlock()
	m2 := openTest(t, root, exec, bridge, table)
	sb, err := m2.Setup(b2)
	if err != nil {
		t.Fatal(err)
	}
	if sb.Addresses[0] == sa.Addresses[0] {
		t.Fatalf("b got a's address %s after the restart", sa.Addresses[0])
	}
	for _, id := range []string{a, b2} {
		if err := m2.Forget(id); err != nil {
			t.Fatal(err)
		}
	}
	if n := m2.byNameLocked("bridge"); n.Pool.InUse() != 0 {
		t.Errorf("addresses in use after teardown: %v", n.Pool.Used)
	}
	if ents, _ := os.ReadDir(exec); len(ents) != 0 {
		t.Errorf("namespace files left: %v", ents)
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(bridge); err == nil {
		t.Errorf("bridge %s after Close", bridge)
	}
	if ok, _ := firewall.Exists(table); ok {
		t.Errorf("table %s after Close", table)
	}
	if _, err := os.Stat(filepath.Join(root, "state.json")); err != nil {
		t.Errorf("state file: %v", err)
	}
}

// TestRefusalMessages: network connect, disconnect and create refuse with
// dockerd's words and categories (runconfig's network-mode conflicts, the
// plugin store's unknown driver, the full id of a container not on a
// network).
func TestRefusalMessages(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	b := make([]byte, 3)
	rand.Read(b)
	bridge, table := "btu"+hex.EncodeToString(b), "berth-unit-"+hex.EncodeToString(b)
	if _, err := netlink.LinkByName(bridge); err == nil {
		t.Skip("name clash")
	}
	m := openTest(t, t.TempDir(), t.TempDir(), bridge, table)
	web, h, none := testID(), testID(), testID()
	for id, mode := range map[string]string{web: "default", h: "host", none: "none"} {
		if err := m.Register(id, "/"+mode, &container.Config{}, &container.HostConfig{NetworkMode: container.NetworkMode(mode)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	const (
		noNet   = "container cannot be connected to multiple networks with one of the networks in private (none) mode"
		hostNet = "container cannot be disconnected from host network or connected to host network"
		shared  = "container sharing network namespace with another container or host cannot be connected to any other network"
	)
	for _, c := range []struct {
		err  error
		want string
		is   func(error) bool
	}{
		{m.Connect(web, "none", nil), noNet, errdefs.IsInvalidArgument},
		{m.Connect(none, "bridge", nil), noNet, errdefs.IsInvalidArgument},
		{m.Connect(web, "host", nil), hostNet, errdefs.IsInvalidArgument},
		{m.Connect(h, "bridge", nil), shared, errdefs.IsInvalidArgument},
		{m.Disconnect(web, "host", false), "container " + web + " is not connected to network host", errdefs.IsPermissionDenied},
		{func() error { _, err := m.Create(network.CreateRequest{Name: "x", Driver: "nosuch"}); return err }(), `plugin "nosuch" not found`, errdefs.IsNotFound},
	} {
		if c.err == nil || !c.is(c.err) || !strings.HasPrefix(c.err.Error(), c.want+": ") {
			t.Errorf("got %v, want %q", c.err, c.want)
		}
	}
	for _, id := range []string{web, h, none} {
		if err := m.Forget(id); err != nil {
			t.Error(err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}
