package network

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"

	"github.com/berth-dev/berth/network/firewall"
)

// firewallLocked brings the daemon's rules (nftables table or iptables
// chains) in line with its bridge networks.
func (m *Manager) firewallLocked() error {
	var bridges []firewall.Bridge
	for _, n := range m.sortedLocked() {
		if n.Driver != DriverBridge {
			continue
		}
		b := firewall.Bridge{
			Device: n.Bridge, Subnet: n.Pool.Subnet, Internal: n.Internal,
			Masquerade: n.Options[OptMasquerade] != "false",
		}
		if n.Pool6 != nil {
			b.Subnet6 = n.Pool6.Subnet
		}
		bridges = append(bridges, b)
	}
	mappings := m.mappingsLocked()
	err := m.fw.Apply(bridges, mappings)
	m.redirectLocked(mappings)
	return err
}

// TableName is the nftables table of a daemon whose data root is
// dataRoot: "berth" for the default root, else one derived from the
// root, so that daemons side by side never share a table.
func TableName(dataRoot, defaultRoot string) string {
	if filepath.Clean(dataRoot) == filepath.Clean(defaultRoot) {
		return "berth"
	}
	h := sha256.Sum256([]byte(filepath.Clean(dataRoot)))
	return "berth-" + hex.EncodeToString(h[:])[:8]
}

// FirewallBackend is the name of the backend programming the rules.
func (m *Manager) FirewallBackend() string { return m.fw.Name() }
