package firewall

// IPv6 rules live in a table of family ip6 with the same name as the
// ip table: present only while a bridge has an IPv6 subnet, so that a
// daemon without IPv6 networks keeps the single table it always had.

// IPv6Forwarding is the sysctl that lets the host route IPv6 between
// its bridges and the outside. Like dockerd, berthd turns it on when a
// bridge has an IPv6 subnet and never turns it off again: other users
// of the host (or another daemon's networks) may rely on it by then.
const IPv6Forwarding = "/proc/sys/net/ipv6/conf/all/forwarding"

// hasIPv6 says whether a bridge has an IPv6 subnet.
func hasIPv6(bridges []Bridge) bool {
	for _, b := range bridges {
		if b.Subnet6.IsValid() {
			return true
		}
	}
	return false
}
