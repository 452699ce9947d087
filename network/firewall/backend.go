package firewall

import (
	"fmt"

	"github.com/google/nftables"

	"github.com/berth-dev/berth/errdefs"
)

// Backend programs one daemon's rules: the nftables tables of this
// package, or chains of its own in iptables' tables where the kernel
// offers no nftables (dockerd 28's --firewall-backend).
type Backend interface {
	// Name is "nftables" or "iptables".
	Name() string
	// Apply makes the daemon's rules say exactly bridges and mappings;
	// applying the same twice changes nothing.
	Apply(bridges []Bridge, mappings []Mapping) error
	// Remove deletes every rule and chain of the daemon; removing
	// twice is no error.
	Remove() error
}

// Backend names, as dockerd's --firewall-backend takes them.
const (
	NFTables = "nftables"
	IPTables = "iptables"
)

// New is the backend called kind for the daemon whose nftables table is
// table (its iptables chains derive from the same name). An empty kind
// picks nftables when the kernel answers its netlink API, else
// iptables.
func New(kind, table string) (Backend, error) {
	switch kind {
	case NFTables:
		return nftBackend{table: table}, nil
	case IPTables:
		return newIPTables(table)
	case "":
		if nftablesWorks() {
			return nftBackend{table: table}, nil
		}
		return newIPTables(table)
	}
	return nil, fmt.Errorf("invalid firewall backend %q: want %q or %q: %w", kind, NFTables, IPTables, errdefs.ErrInvalidArgument)
}

// nftablesWorks says whether the kernel's nf_tables answers.
func nftablesWorks() bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	_, err = c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	return err == nil
}

// nftBackend is the nftables backend: tables of family ip and ip6
// named table.
type nftBackend struct{ table string }

func (b nftBackend) Name() string { return NFTables }

func (b nftBackend) Apply(bridges []Bridge, mappings []Mapping) error {
	return Apply(b.table, bridges, mappings)
}

func (b nftBackend) Remove() error { return Remove(b.table) }

// ClearOthers removes what the backends other than b left under table:
// a daemon restarted with another --firewall-backend keeps no stale
// rules.
func ClearOthers(b Backend, table string) error {
	var errs []error
	if b.Name() != NFTables && nftablesWorks() {
		errs = append(errs, Remove(table))
	}
	if b.Name() != IPTables && ChainsExist(table) {
		if o, err := newIPTables(table); err == nil {
			errs = append(errs, o.Remove())
		}
	}
	return joinErrors(errs...)
}
