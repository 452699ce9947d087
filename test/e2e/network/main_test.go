// Package network_test drives berthd's networks end to end as root: one
// daemon per test with its own default bridge device and subnet, spoken
// to by the real docker CLI and the berth CLI. All traffic stays on this
// machine: between the host and the test's bridges, and between the
// test's containers.
package network_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net"
	"net/netip"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/images"
	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/network/firewall"
)

func TestMain(m *testing.M) { berthd.Main(m) }

// testNet is a bridge device name and a /24 subnet of a test's own.
type testNet struct {
	Bridge string
	Subnet netip.Prefix
}

// Gateway is the subnet's first address.
func (n testNet) Gateway() netip.Addr { return n.Subnet.Addr().Next() }

// newTestNet picks a device name and a 10.x.y.0/24 subnet no host route
// overlaps.
func newTestNet(t *testing.T, prefix string) testNet {
	t.Helper()
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for try := 0; try < 100; try++ {
		x, _ := rand.Int(rand.Reader, big.NewInt(200))
		y, _ := rand.Int(rand.Reader, big.NewInt(256))
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(40 + x.Int64()), byte(y.Int64()), 0}), 24)
		free := true
		for _, r := range routes {
			if r.Dst == nil || r.Dst.IP.IsUnspecified() {
				continue
			}
			ip, _ := netip.AddrFromSlice(r.Dst.IP)
			ones, _ := r.Dst.Mask.Size()
			if netip.PrefixFrom(ip.Unmap(), ones).Overlaps(p) {
				free = false
			}
		}
		if free {
			b := make([]byte, 4)
			rand.Read(b)
			return testNet{Bridge: prefix + hex.EncodeToString(b), Subnet: p}
		}
	}
	t.Fatal("no free test subnet")
	return testNet{}
}

// startDaemon runs a berthd whose default bridge is a device and subnet
// of the test's own, with busybox loaded. When the test ends (after the
// daemon stopped) the bridge must be gone.
func startDaemon(t *testing.T, args ...string) (*berthd.Daemon, testNet) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	tn := newTestNet(t, "bt")
	t.Cleanup(func() {
		if _, err := netlink.LinkByName(tn.Bridge); err == nil {
			t.Errorf("bridge %s left after the daemon stopped", tn.Bridge)
			if l, err := netlink.LinkByName(tn.Bridge); err == nil {
				netlink.LinkDel(l)
			}
		}
	})
	bip := netip.PrefixFrom(tn.Gateway(), 24).String()
	var table string
	t.Cleanup(func() {
		if ok, err := firewall.Exists(table); err != nil || ok {
			t.Errorf("nftables table %s after the daemon stopped: %v %v", table, ok, err)
			firewall.Remove(table)
		}
		if ok, err := firewall.Exists6(table); err != nil || ok {
			t.Errorf("nftables ip6 table %s after the daemon stopped: %v %v", table, ok, err)
			firewall.Remove(table)
		}
		if firewall.ChainsExist(table) {
			t.Errorf("iptables chains of %s after the daemon stopped", table)
			if fw, err := firewall.New(firewall.IPTables, table); err == nil {
				fw.Remove()
			}
		}
	})
	d := berthd.Start(t, append([]string{"--bridge", tn.Bridge, "--bip", bip}, args...)...)
	table = network.TableName(d.DataRoot, "/var/lib/berth")
	ipt := slices.Contains(args, "--firewall-backend=iptables")
	if ok, err := firewall.Exists(table); err != nil || ok != !ipt {
		t.Errorf("nftables table %s of the daemon: %v %v", table, ok, err)
	}
	if firewall.ChainsExist(table) != ipt {
		t.Errorf("iptables chains of %s: %v, want %v", table, !ipt, ipt)
	}
	d.Must(t, "load", "-i", images.Busybox(t).Archive)
	return d, tn
}

// inspectNet is the part of a container's inspect the tests read.
type inspectNet struct {
	ID              string
	State           struct{ Pid int }
	NetworkSettings struct {
		SandboxKey string
		Networks   map[string]struct {
			NetworkID   string
			EndpointID  string
			Gateway     string
			IPAddress   string
			IPPrefixLen int
			MacAddress  string
			Aliases     []string
			DNSNames    []string
		}
		Ports map[string][]struct{ HostIp, HostPort string }
	}
}

func inspect(t *testing.T, d *berthd.Daemon, name string) inspectNet {
	t.Helper()
	var out []inspectNet
	if err := json.Unmarshal([]byte(d.Must(t, "inspect", name)), &out); err != nil || len(out) != 1 {
		t.Fatalf("inspect %s: %v", name, err)
	}
	return out[0]
}

// hostVeths are the veth devices on bridge br.
func hostVeths(t *testing.T, br string) []string {
	t.Helper()
	l, err := netlink.LinkByName(br)
	if err != nil {
		return nil
	}
	all, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range all {
		if x.Attrs().MasterIndex == l.Attrs().Index {
			out = append(out, x.Attrs().Name)
		}
	}
	return out
}

// berth runs the berth CLI against d.
func berth(t *testing.T, d *berthd.Daemon, args ...string) (string, error) {
	t.Helper()
	bin, err := berthd.Build()
	if err != nil {
		t.Fatal(err)
	}
	cli := strings.TrimSuffix(bin, "berthd") + "berth"
	out, err := osexec.Command(cli, append([]string{"-H", d.Host}, args...)...).CombinedOutput()
	return string(out), err
}

// hostDial connects from the host to addr over TCP.
func hostDial(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }

// exec runs a host command and returns its combined output.
func exec(name string, args ...string) (string, error) {
	out, err := osexec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// netechoImage builds netecho static and loads its FROM-scratch image
// ("berth-netecho", entrypoint /berth-netecho) into d.
func netechoImage(t *testing.T, d *berthd.Daemon) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "berth-netecho")
	cmd := osexec.Command("go", "build", "-o", bin, "./netecho")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build netecho: %v\n%s", err, out)
	}
	d.Must(t, "load", "-i", images.Scratch(t, bin).Archive)
}
