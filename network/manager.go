// Package network owns berthd's networks: the predefined bridge, host and
// none networks, user-defined bridge networks, the addresses they hand
// out (network/ipam), and each container's sandbox: a network namespace
// bind-mounted under the exec root (network/netns) with one veth per
// network (network/link). Its state (networks, address pools, sandboxes
// and what each container asked for at create) is one JSON file under
// the data root, replaced atomically at every change, so that a daemon
// killed at any point and restarted finds the addresses handed out and
// the namespaces of the containers still running.
package network

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/network"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/atomicfile"
	dnsr "github.com/berth-dev/berth/network/dns"
	"github.com/berth-dev/berth/network/firewall"
	"github.com/berth-dev/berth/network/ipam"
	"github.com/berth-dev/berth/network/link"
	"github.com/berth-dev/berth/network/netns"
	"github.com/berth-dev/berth/network/sockredirect"
)

// Drivers of the networks berth knows.
const (
	DriverBridge = "bridge"
	DriverHost   = "host"
	DriverNull   = "null"
)

// Option keys of bridge networks, dockerd's.
const (
	OptBridgeName    = "com.docker.network.bridge.name"
	OptDefaultBridge = "com.docker.network.bridge.default_bridge"
	OptEnableICC     = "com.docker.network.bridge.enable_icc"
	OptMasquerade    = "com.docker.network.bridge.enable_ip_masquerade"
	OptHostBindingV4 = "com.docker.network.bridge.host_binding_ipv4"
	OptMTU           = "com.docker.network.driver.mtu"
)

// Options configure a Manager.
type Options struct {
	// Root holds the state file (<data-root>/network).
	Root string
	// ExecRoot holds the containers' namespace files (<exec-root>/netns).
	ExecRoot string
	// Bridge is the device of the default bridge network; "none" means
	// no default bridge (containers without --network get none).
	Bridge string
	// BridgeIP is the default bridge's gateway and subnet ("172.18.0.1/16",
	// dockerd's --bip); empty picks a free subnet.
	BridgeIP string
	// Table is the daemon's nftables table (see TableName); the
	// iptables backend names its chains after it.
	Table string
	// FirewallBackend is "nftables", "iptables" or "" (nftables when
	// the kernel has it, else iptables).
	FirewallBackend string
	// BridgeIPv6 gives the default bridge IPv6 (dockerd's --ipv6), on
	// BridgeCIDRv6 (--fixed-cidr-v6) or a /64 of the daemon's ULA pool.
	BridgeIPv6   bool
	BridgeCIDRv6 string
	// HostResolvConf lists the embedded DNS's default upstream servers
	// (default /etc/resolv.conf).
	HostResolvConf string
	// Logf reports what goes wrong in the background.
	Logf func(format string, args ...any)
	// Redirect, when set, is the socket-level fast path of published
	// ports for the host's own connections (network/sockredirect): the
	// Manager fills it with the ports it publishes and closes it.
	Redirect *sockredirect.Redirector
}

// Network is one network's record.
type Network struct {
	ID       string
	Name     string
	Driver   string
	Created  time.Time
	Internal bool
	// Bridge is the bridge device of a bridge network.
	Bridge  string
	Options map[string]string
	Labels  map[string]string
	// Pool is the address space of a bridge network (nil otherwise).
	Pool *ipam.Pool
	// IPAMConfigured says the user gave the subnet (inspect shows it
	// the same either way, as dockerd).
	IPAMConfigured bool
	// EnableIPv6 networks (--ipv6) have a second pool, Pool6: an IPv6
	// subnet the user gave (IPAM6Configured) or one of the daemon's
	// ULA /64s.
	EnableIPv6      bool       `json:",omitempty"`
	Pool6           *ipam.Pool `json:",omitempty"`
	IPAM6Configured bool       `json:",omitempty"`
	// IPAM6Unused is an IPv6 subnet given without --ipv6: dockerd keeps
	// it in the network's IPAM config and hands out nothing from it.
	IPAM6Unused *network.IPAMConfig `json:",omitempty"`
	// NoGateway4 and NoGateway6 say the user gave that family's subnet
	// without a gateway: dockerd's inspect shows the config as given.
	NoGateway4 bool `json:",omitempty"`
	NoGateway6 bool `json:",omitempty"`
	// IPAMOptions are the IPAM options as created: the default bridge
	// and API clients that send none show null, the docker CLI {}.
	IPAMOptions map[string]string
}

// Endpoint is a container's interface on one network.
type Endpoint struct {
	ID        string
	NetworkID string
	IP        netip.Addr
	// IP6 is the IPv6 address on a --ipv6 network.
	IP6 netip.Addr `json:",omitzero"`
	MAC string
	// IfName is the name inside the container, HostVeth the host end.
	IfName   string
	HostVeth string
	Aliases  []string
	DNSNames []string
	// IPAMConfig is what the user asked for (--ip).
	IPAMConfig *IPAMRequest `json:",omitempty"`
}

// IPAMRequest is an address the user asked for.
type IPAMRequest struct {
	IPv4 netip.Addr
	IPv6 netip.Addr `json:",omitzero"`
}

// Sandbox is a running container's network namespace and endpoints.
type Sandbox struct {
	ContainerID string
	// Key is the namespace file ("" when the container shares the
	// host's or another container's).
	Key       string
	Endpoints []*Endpoint
	// Ports are the published ports (on the first endpoint's address).
	Ports []PortMapping `json:",omitempty"`
}

// Request is what a container asked for at create (and connect): the
// networks it joins with their endpoint settings.
type Request struct {
	ContainerID string
	Name        string // without the leading slash
	Hostname    string `json:",omitempty"` // Config.Hostname, a DNS name too
	Mode        string // HostConfig.NetworkMode
	// Networks by network ID: aliases, --ip, --mac-address.
	Networks map[string]*EndpointRequest
	// Missing are networks named at create that did not exist: the
	// start fails unless they were created meanwhile.
	Missing []string `json:",omitempty"`
	// DNS are the container's --dns servers: the embedded DNS's
	// upstreams.
	DNS []string `json:",omitempty"`
	// Ports are the -p and -P wishes; Exposed the exposed ports
	// ("80/tcp"), shown by inspect.
	Ports   []PortRequest `json:",omitempty"`
	Exposed []string      `json:",omitempty"`
}

// EndpointRequest is the user's part of an endpoint.
type EndpointRequest struct {
	Aliases []string
	IPv4    netip.Addr
	IPv6    netip.Addr `json:",omitzero"`
	MAC     string
	// Links are --link values on a user network ("name:alias"): the
	// alias resolves, for this container only, to the named container.
	Links []string `json:",omitempty"`
}

type state struct {
	Networks  map[string]*Network
	Sandboxes map[string]*Sandbox
	Requests  map[string]*Request
	// Firewall is the backend that programmed the rules last.
	Firewall string `json:",omitempty"`
}

// Manager owns the networks and sandboxes. Its methods are safe for
// concurrent use.
type Manager struct {
	opts Options
	path string

	mu sync.Mutex
	st state

	// reservations hold the published host ports, by container.
	reservations map[string][]io.Closer

	dns  *dnsr.Resolver
	nmu  sync.RWMutex
	view dnsView

	// fw programs the rules.
	fw firewall.Backend
	// netns has a network namespace ready for the next sandbox.
	netns netns.Spares
}

// Open loads the state under opts.Root, (re)creates the predefined
// networks and the bridges of all bridge networks.
func Open(opts Options) (*Manager, error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	for _, d := range []string{opts.Root, opts.ExecRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("network manager: %w", err)
		}
	}
	fw, err := firewall.New(opts.FirewallBackend, opts.Table)
	if err != nil {
		return nil, err
	}
	m := &Manager{opts: opts, path: filepath.Join(opts.Root, "state.json"), reservations: map[string][]io.Closer{}, fw: fw}
	m.dns = dnsr.New(m.lookupName, opts.Logf)
	b, err := os.ReadFile(m.path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &m.st); err != nil {
			return nil, fmt.Errorf("network state %s: %w", m.path, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("network state: %w", err)
	}
	if m.st.Networks == nil {
		m.st.Networks = map[string]*Network{}
	}
	if m.st.Sandboxes == nil {
		m.st.Sandboxes = map[string]*Sandbox{}
	}
	if m.st.Requests == nil {
		m.st.Requests = map[string]*Request{}
	}
	if m.st.Firewall != "" && m.st.Firewall != fw.Name() {
		// Restarted with another --firewall-backend: the previous
		// backend's rules go.
		if err := firewall.ClearOthers(fw, opts.Table); err != nil {
			opts.Logf("firewall: %v", err)
		}
	}
	m.st.Firewall = fw.Name()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.predefined(); err != nil {
		return nil, err
	}
	for _, n := range m.st.Networks {
		if n.Driver == DriverBridge {
			if err := link.EnsureBridge(n.Bridge, n.Pool.Gateway, n.Pool.Subnet); err != nil {
				return nil, fmt.Errorf("network %s: %w", n.Name, err)
			}
			if n.Pool6 != nil {
				if err := link.EnsureBridgeIPv6(n.Bridge, n.Pool6.Gateway, n.Pool6.Subnet); err != nil {
					return nil, fmt.Errorf("network %s: %w", n.Name, err)
				}
			}
		}
	}
	for _, sb := range m.st.Sandboxes {
		if err := m.rereserveLocked(sb); err != nil {
			opts.Logf("%v", err)
		}
	}
	if err := m.firewallLocked(); err != nil {
		return nil, err
	}
	if err := m.save(); err != nil {
		return nil, err
	}
	// Containers that kept running while berthd was away get their
	// embedded DNS again.
	m.refreshDNSLocked()
	for id, sb := range m.st.Sandboxes {
		if _, err := os.Stat(sb.Key); err != nil {
			continue
		}
		req := m.st.Requests[id]
		if req == nil {
			req = &Request{}
		}
		if err := m.startDNSLocked(sb, req); err != nil {
			opts.Logf("%v", err)
		}
	}
	return m, nil
}

// predefined makes the host, none and (unless disabled) bridge networks.
func (m *Manager) predefined() error {
	for _, p := range []struct{ name, driver string }{{"host", DriverHost}, {"none", DriverNull}} {
		if m.byNameLocked(p.name) == nil {
			n := &Network{ID: newID(), Name: p.name, Driver: p.driver, Created: time.Now().UTC(), Options: map[string]string{}, Labels: map[string]string{}}
			m.st.Networks[n.ID] = n
		}
	}
	old := m.byNameLocked("bridge")
	if m.opts.Bridge == "none" {
		if old != nil && !m.inUseLocked(old.ID) {
			link.DeleteBridge(old.Bridge)
			delete(m.st.Networks, old.ID)
		}
		return nil
	}
	var want netip.Prefix
	var gw netip.Addr
	if m.opts.BridgeIP != "" {
		p, err := netip.ParsePrefix(m.opts.BridgeIP)
		if err != nil || !p.Addr().Is4() {
			return fmt.Errorf("invalid --bip %q: want an IPv4 address and prefix length such as 172.18.0.1/16: %w", m.opts.BridgeIP, errdefs.ErrInvalidArgument)
		}
		want, gw = p.Masked(), p.Addr()
	}
	var want6 netip.Prefix
	if m.opts.BridgeCIDRv6 != "" {
		p, err := netip.ParsePrefix(m.opts.BridgeCIDRv6)
		if err != nil || !p.Addr().Is6() || p != p.Masked() {
			return fmt.Errorf("invalid --fixed-cidr-v6 %q: want an IPv6 subnet such as fd00:1::/64: %w", m.opts.BridgeCIDRv6, errdefs.ErrInvalidArgument)
		}
		if !m.opts.BridgeIPv6 {
			return fmt.Errorf("--fixed-cidr-v6 needs --ipv6: %w", errdefs.ErrInvalidArgument)
		}
		want6 = p
	}
	if old != nil {
		same6 := (old.Pool6 != nil) == m.opts.BridgeIPv6 && (!want6.IsValid() || (old.Pool6 != nil && old.Pool6.Subnet == want6))
		same := same6 && old.Bridge == m.opts.Bridge && (!want.IsValid() || (old.Pool.Subnet == want && old.Pool.Gateway == gw))
		if same || m.inUseLocked(old.ID) {
			if !same {
				m.opts.Logf("default bridge network in use: keeping %s %s", old.Bridge, old.Pool.Subnet)
			}
			return nil
		}
		link.DeleteBridge(old.Bridge)
		delete(m.st.Networks, old.ID)
	}
	unlock, err := hostLock()
	if err != nil {
		return err
	}
	defer unlock()
	if !want.IsValid() {
		if want, err = m.freeSubnetLocked(); err != nil {
			return err
		}
	}
	pool, err := ipam.NewPool(want, netip.Prefix{}, gw)
	if err != nil {
		return fmt.Errorf("default bridge: %w", err)
	}
	n := &Network{
		ID: newID(), Name: "bridge", Driver: DriverBridge, Created: time.Now().UTC(),
		Bridge: m.opts.Bridge, Pool: pool, IPAMConfigured: m.opts.BridgeIP != "",
		Options: map[string]string{
			OptDefaultBridge: "true", OptEnableICC: "true", OptMasquerade: "true",
			OptHostBindingV4: "0.0.0.0", OptBridgeName: m.opts.Bridge, OptMTU: "1500",
		},
		Labels: map[string]string{},
	}
	if m.opts.BridgeIPv6 {
		if n.Pool6, err = m.pool6Locked(want6, netip.Prefix{}, netip.Addr{}); err != nil {
			return fmt.Errorf("default bridge: %w", err)
		}
		n.EnableIPv6, n.IPAM6Configured = true, want6.IsValid()
	}
	if err := link.EnsureBridge(n.Bridge, pool.Gateway, pool.Subnet); err != nil {
		return err
	}
	if n.Pool6 != nil {
		if err := link.EnsureBridgeIPv6(n.Bridge, n.Pool6.Gateway, n.Pool6.Subnet); err != nil {
			link.DeleteBridge(n.Bridge)
			return err
		}
	}
	m.st.Networks[n.ID] = n
	return nil
}

// hostLock serialises subnet choice and bridge creation between the
// berthd processes of one host (test daemons run side by side): a subnet
// is taken once its bridge's route exists.
func hostLock() (func(), error) {
	f, err := os.OpenFile("/run/berth-network.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("network host lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("network host lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// candidateSubnets are dockerd's default address pools: 172.17-31/16,
// then 192.168.0-240/20.
func candidateSubnets() []netip.Prefix {
	var out []netip.Prefix
	for i := 17; i <= 31; i++ {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(i), 0, 0}), 16))
	}
	for i := 0; i <= 240; i += 16 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i), 0}), 20))
	}
	return out
}

// freeSubnetLocked picks the first default pool overlapping neither a
// host route nor another network.
func (m *Manager) freeSubnetLocked() (netip.Prefix, error) {
	taken, err := link.HostPrefixes()
	if err != nil {
		return netip.Prefix{}, err
	}
	for _, n := range m.st.Networks {
		if n.Pool != nil {
			taken = append(taken, n.Pool.Subnet)
		}
	}
	for _, c := range candidateSubnets() {
		free := true
		for _, t := range taken {
			if t.Overlaps(c) {
				free = false
				break
			}
		}
		if free {
			return c, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network: %w", errdefs.ErrUnavailable)
}

// Close takes down the bridges no container uses, and the nftables table
// when no container runs: a daemon that stops with no containers leaves
// no device and no rule behind; they come back at the next Open.
func (m *Manager) Close() error {
	m.dns.Close()
	m.netns.Close()
	m.mu.Lock()
	defer m.mu.Unlock()
	for id := range m.reservations {
		m.unpublishLocked(id)
	}
	var errs []error
	for _, n := range m.st.Networks {
		if n.Driver == DriverBridge && !m.inUseLocked(n.ID) {
			errs = append(errs, link.DeleteBridge(n.Bridge))
		}
	}
	if len(m.st.Sandboxes) == 0 {
		// Running containers keep their rules while berthd is away.
		errs = append(errs, m.fw.Remove())
	}
	if m.opts.Redirect != nil {
		// The NAT rules carry the published ports while berthd is away.
		errs = append(errs, m.opts.Redirect.Close())
	}
	return errors.Join(errs...)
}

// inUseLocked says whether a sandbox has an endpoint on network id.
func (m *Manager) inUseLocked(id string) bool {
	for _, sb := range m.st.Sandboxes {
		for _, ep := range sb.Endpoints {
			if ep.NetworkID == id {
				return true
			}
		}
	}
	return false
}

func (m *Manager) byNameLocked(name string) *Network {
	for _, n := range m.st.Networks {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// findLocked finds a network by full name, full id, or unique id
// prefix, as dockerd.
func (m *Manager) findLocked(ref string) (*Network, error) {
	if ref == "" {
		return nil, fmt.Errorf("network name cannot be empty: %w", errdefs.ErrInvalidArgument)
	}
	if n := m.byNameLocked(ref); n != nil {
		return n, nil
	}
	if n, ok := m.st.Networks[ref]; ok {
		return n, nil
	}
	var found *Network
	for id, n := range m.st.Networks {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, fmt.Errorf("network %s is ambiguous (%d matches found based on ID prefix): %w", ref, 2, errdefs.ErrInvalidArgument)
			}
			found = n
		}
	}
	if found == nil {
		return nil, fmt.Errorf("network %s not found: %w", ref, errdefs.ErrNotFound)
	}
	return found, nil
}

// save writes the state file durably: networks and what containers asked
// for must survive a power loss.
func (m *Manager) save() error { return m.write(atomicfile.WriteFile) }

// saveUnsynced writes the state file after changes that need not outlive
// a reboot: sandboxes (namespaces, veths, published ports and the
// addresses they hold), which no reboot keeps, and the requests of
// removed containers (see Forget). The file is replaced atomically, so a
// berthd killed at any point finds every sandbox it made; skipping the
// fsyncs keeps them off every container's start, stop and removal.
func (m *Manager) saveUnsynced() error { return m.write(atomicfile.Replace) }

func (m *Manager) write(replace func(string, []byte, os.FileMode) error) error {
	b, err := json.Marshal(&m.st)
	if err != nil {
		return err
	}
	if err := replace(m.path, b, 0o600); err != nil {
		return fmt.Errorf("save network state: %w", err)
	}
	return nil
}

// DefaultBridgeName is the default bridge device of a daemon whose data
// root is dataRoot: "berth0" for the default root, else a name derived
// from the root, so that daemons side by side never share a bridge.
func DefaultBridgeName(dataRoot, defaultRoot string) string {
	if filepath.Clean(dataRoot) == filepath.Clean(defaultRoot) {
		return "berth0"
	}
	h := sha256.Sum256([]byte(filepath.Clean(dataRoot)))
	return "berth-" + hex.EncodeToString(h[:])[:8]
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// sortedNetworks lists the networks by name.
func (m *Manager) sortedLocked() []*Network {
	out := make([]*Network, 0, len(m.st.Networks))
	for _, n := range m.st.Networks {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
