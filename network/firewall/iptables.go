package firewall

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// The iptables backend drives the iptables and ip6tables commands, as
// libnetwork does: three chains of the daemon's own (<PREFIX>-FWD in
// filter, <PREFIX>-DNAT and <PREFIX>-POST in nat, PREFIX being the
// nftables table name in capitals), filled in one iptables-restore
// --noflush per table (a chain named there is flushed first, so a
// rebuild is atomic per table and idempotent), and jumped to from
// FORWARD, PREROUTING, OUTPUT and POSTROUTING by one rule each.

type iptBackend struct {
	prefix string
}

func newIPTables(table string) (Backend, error) {
	for _, bin := range []string{"iptables", "iptables-restore"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("firewall backend iptables: %w", err)
		}
	}
	return &iptBackend{prefix: strings.ToUpper(table)}, nil
}

func (b *iptBackend) Name() string { return IPTables }

// Chains are the backend's chain names.
func (b *iptBackend) fwd() string  { return b.prefix + "-FWD" }
func (b *iptBackend) dnat() string { return b.prefix + "-DNAT" }
func (b *iptBackend) post() string { return b.prefix + "-POST" }

// ipFamily is what differs between iptables and ip6tables.
type ipFamily struct {
	v6      bool
	cmd     string // iptables, ip6tables
	restore string
}

var (
	fam4 = ipFamily{cmd: "iptables", restore: "iptables-restore"}
	fam6 = ipFamily{v6: true, cmd: "ip6tables", restore: "ip6tables-restore"}
)

// jumps are the rules in the built-in chains that lead to ours.
func (b *iptBackend) jumps(f ipFamily) [][]string {
	local := []string{"-m", "addrtype", "--dst-type", "LOCAL"}
	out := append([]string{}, local...)
	if f.v6 {
		// [::1] is not DNATed: berthd's relay serves it (see ip6.go).
		out = append([]string{"!", "-d", "::1/128"}, local...)
	}
	return [][]string{
		{"filter", "FORWARD", "-j", b.fwd()},
		append(append([]string{"nat", "PREROUTING"}, local...), "-j", b.dnat()),
		append(append([]string{"nat", "OUTPUT"}, out...), "-j", b.dnat()),
		{"nat", "POSTROUTING", "-j", b.post()},
	}
}

func (b *iptBackend) Apply(bridges []Bridge, mappings []Mapping) error {
	if err := b.apply(fam4, bridges, mappings); err != nil {
		return err
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	if !hasIPv6(bridges) {
		return b.remove(fam6)
	}
	if err := b.apply(fam6, bridges, mappings); err != nil {
		return err
	}
	if err := os.WriteFile(IPv6Forwarding, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv6 forwarding: %w", err)
	}
	return nil
}

// apply fills the chains of family f and makes sure the jumps exist.
func (b *iptBackend) apply(f ipFamily, bridges []Bridge, mappings []Mapping) error {
	var in bytes.Buffer
	rule := func(chain string, args ...string) {
		in.WriteString("-A " + chain + " " + strings.Join(args, " ") + "\n")
	}
	subnet := func(br Bridge) netip.Prefix {
		if f.v6 {
			return br.Subnet6
		}
		return br.Subnet
	}
	in.WriteString("*filter\n:" + b.fwd() + " - [0:0]\n")
	for _, br := range bridges {
		rule(b.fwd(), "-i", br.Device, "-o", br.Device, "-j", "ACCEPT")
	}
	for _, br := range bridges {
		if br.Internal {
			rule(b.fwd(), "-i", br.Device, "-j", "DROP")
			rule(b.fwd(), "-o", br.Device, "-j", "DROP")
			continue
		}
		for _, o := range bridges {
			if o.Device != br.Device {
				rule(b.fwd(), "-i", br.Device, "-o", o.Device, "-j", "DROP")
			}
		}
	}
	// Accepted in case FORWARD's policy is DROP (as a dockerd on the
	// same host sets it): what leaves a bridge, its replies, and the
	// published ports.
	for _, br := range bridges {
		if br.Internal {
			continue
		}
		rule(b.fwd(), "-i", br.Device, "!", "-o", br.Device, "-j", "ACCEPT")
		rule(b.fwd(), "-o", br.Device, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
	}
	var mine []Mapping
	for _, mp := range mappings {
		if mp.ContainerIP.Is4() != !f.v6 {
			continue
		}
		mine = append(mine, mp)
		rule(b.fwd(), "-d", mp.ContainerIP.String(), "-o", mp.Bridge, "-p", mp.Proto, "-m", mp.Proto, "--dport", strconv.Itoa(int(mp.ContainerPort)), "-j", "ACCEPT")
	}
	in.WriteString("COMMIT\n*nat\n:" + b.dnat() + " - [0:0]\n:" + b.post() + " - [0:0]\n")
	hasPorts := map[string]bool{}
	for _, mp := range mine {
		args := []string{}
		if mp.HostIP.IsValid() && !mp.HostIP.IsUnspecified() {
			args = append(args, "-d", mp.HostIP.String())
		}
		to := netip.AddrPortFrom(mp.ContainerIP, mp.ContainerPort).String()
		args = append(args, "-p", mp.Proto, "-m", mp.Proto, "--dport", strconv.Itoa(int(mp.HostPort)), "-j", "DNAT", "--to-destination", to)
		rule(b.dnat(), args...)
		hasPorts[mp.Bridge] = true
	}
	for _, br := range bridges {
		s := subnet(br)
		if !s.IsValid() {
			continue
		}
		if br.Masquerade && !br.Internal {
			rule(b.post(), "-s", s.String(), "!", "-o", br.Device, "-j", "MASQUERADE")
		}
		if hasPorts[br.Device] {
			// Hairpin, and (IPv4) 127.0.0.1 through route_localnet,
			// as the nftables backend.
			rule(b.post(), "-s", s.String(), "-o", br.Device, "-m", "conntrack", "--ctstate", "DNAT", "-j", "MASQUERADE")
			if !f.v6 {
				rule(b.post(), "-s", "127.0.0.0/8", "-o", br.Device, "-j", "MASQUERADE")
			}
		}
	}
	in.WriteString("COMMIT\n")
	cmd := exec.Command(f.restore, "-w", "--noflush")
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", f.restore, err, bytes.TrimSpace(out))
	}
	for _, j := range b.jumps(f) {
		table, chain, args := j[0], j[1], j[2:]
		if ipt(f, append([]string{"-t", table, "-C", chain}, args...)...) == nil {
			continue
		}
		op := "-A"
		if chain == "FORWARD" {
			// Ahead of rules others put there (a DROP policy's helpers).
			op = "-I"
		}
		if err := ipt(f, append([]string{"-t", table, op, chain}, args...)...); err != nil {
			return err
		}
	}
	return nil
}

func (b *iptBackend) Remove() error {
	return joinErrors(b.remove(fam4), b.remove(fam6))
}

// remove deletes the jumps and chains of family f; missing ones are no
// error.
func (b *iptBackend) remove(f ipFamily) error {
	var errs []error
	for _, j := range b.jumps(f) {
		table, chain, args := j[0], j[1], j[2:]
		for ipt(f, append([]string{"-t", table, "-C", chain}, args...)...) == nil {
			if err := ipt(f, append([]string{"-t", table, "-D", chain}, args...)...); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	for _, c := range [][2]string{{"filter", b.fwd()}, {"nat", b.dnat()}, {"nat", b.post()}} {
		if ipt(f, "-t", c[0], "-n", "-L", c[1]) != nil {
			continue // no such chain
		}
		if err := ipt(f, "-t", c[0], "-F", c[1]); err != nil {
			errs = append(errs, err)
		}
		if err := ipt(f, "-t", c[0], "-X", c[1]); err != nil {
			errs = append(errs, err)
		}
	}
	return joinErrors(errs...)
}

// ChainsExist says whether any chain of the iptables backend of table
// is there, in iptables or ip6tables (for tests).
func ChainsExist(table string) bool {
	b := &iptBackend{prefix: strings.ToUpper(table)}
	for _, f := range []ipFamily{fam4, fam6} {
		for _, c := range [][2]string{{"filter", b.fwd()}, {"nat", b.dnat()}, {"nat", b.post()}} {
			if ipt(f, "-t", c[0], "-n", "-L", c[1]) == nil {
				return true
			}
		}
	}
	return false
}

// ipt runs iptables (or ip6tables) with args, waiting for the xtables
// lock.
func ipt(f ipFamily, args ...string) error {
	out, err := exec.Command(f.cmd, append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", f.cmd, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func joinErrors(errs ...error) error {
	var msgs []string
	for _, e := range errs {
		if e != nil {
			msgs = append(msgs, e.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}
