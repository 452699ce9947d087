package spec

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/internal/atomicfile"
)

// DefaultNameservers are the resolvers a container gets when the host's
// resolv.conf names only loopback ones (unreachable from the container's
// network namespace): Docker's defaults, Google Public DNS.
var DefaultNameservers = []string{"8.8.8.8", "8.8.4.4"}

// HostResolvConf is the host file a container's resolv.conf derives from.
const HostResolvConf = "/etc/resolv.conf"

// systemdResolvedConf lists the real upstream servers when the host's
// /etc/resolv.conf points at systemd-resolved's stub (127.0.0.53).
const systemdResolvedConf = "/run/systemd/resolve/resolv.conf"

// File names of the generated files in the container's directory, as
// dockerd names them (inspect shows them as HostsPath, HostnamePath and
// ResolvConfPath).
const (
	HostsFile      = "hosts"
	HostnameFile   = "hostname"
	ResolvConfFile = "resolv.conf"
)

// defaultHosts is the start of every /etc/hosts Docker writes.
const defaultHosts = "127.0.0.1\tlocalhost\n" +
	"::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::0\tip6-localnet\n" +
	"ff00::0\tip6-mcastprefix\n" +
	"ff02::1\tip6-allnodes\n" +
	"ff02::2\tip6-allrouters\n"

// HostGatewayName is the --add-host value that stands for the host, as
// seen from containers (dockerd's "host-gateway").
const HostGatewayName = "host-gateway"

// Hosts is what a container's /etc/hosts names.
type Hosts struct {
	Hostname, Domainname string
	// Addresses are the container's own, named by its hostname.
	Addresses []netip.Addr
	// ExtraHosts are --add-host's "name:ip" (or "name=ip") entries.
	ExtraHosts []string
	// HostGateway is what an ExtraHosts ip of HostGatewayName stands
	// for: the default bridge's gateway (invalid without one).
	HostGateway netip.Addr
	// Links are the legacy links of a container on the default bridge.
	Links []Link
}

// Content returns /etc/hosts as dockerd writes it: Docker's localhost
// lines, the --add-host entries, the links' lines, then one line per
// container address naming the container's hostname (and FQDN). Without
// an address (--network none) dockerd writes no line for the hostname,
// and neither do we.
func (h Hosts) Content() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(defaultHosts)
	for _, e := range h.ExtraHosts {
		host, ip, err := parseExtraHost(e)
		if err != nil {
			return nil, err
		}
		if ip == HostGatewayName {
			if !h.HostGateway.IsValid() {
				return nil, invalid("unable to derive the IP value for host-gateway")
			}
			ip = h.HostGateway.String()
		}
		fmt.Fprintf(&b, "%s\t%s\n", ip, host)
	}
	b.Write(linksHosts(h.Links))
	names := h.Hostname
	if h.Domainname != "" && h.Hostname != "" {
		names = h.Hostname + "." + h.Domainname + " " + h.Hostname
	}
	for _, a := range h.Addresses {
		if names != "" {
			fmt.Fprintf(&b, "%s\t%s\n", a, names)
		}
	}
	return b.Bytes(), nil
}

// parseExtraHost splits an --add-host entry, "name:ip" or "name=ip"; ip
// may be HostGatewayName.
func parseExtraHost(e string) (string, string, error) {
	sep := strings.IndexAny(e, ":=")
	if sep <= 0 {
		return "", "", invalid("invalid extra host %q: expected host:ip", e)
	}
	host, ip := e[:sep], strings.Trim(e[sep+1:], "[]")
	if ip == HostGatewayName {
		return host, ip, nil
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		return "", "", invalid("invalid IP address in add-host: %q", ip)
	}
	return host, ip, nil
}

// ResolvConfContent derives the container's resolv.conf from the host's
// (hostConf) as dockerd does: without --dns options, the host file minus
// its loopback nameservers, plus DefaultNameservers when none are left;
// with --dns, --dns-search or --dns-option, a file built from those,
// each falling back to the host's values.
func ResolvConfContent(hostConf []byte, dns []netip.Addr, search, options []string) []byte {
	var ns, hostSearch, hostOptions []string
	var kept bytes.Buffer
	for _, line := range strings.Split(string(hostConf), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(strings.Split(f[1], "%")[0]); err == nil && a.IsLoopback() {
				continue
			}
			ns = append(ns, f[1])
		}
		if len(f) >= 2 && f[0] == "search" {
			hostSearch = f[1:]
		}
		if len(f) >= 2 && f[0] == "options" {
			hostOptions = f[1:]
		}
		kept.WriteString(line + "\n")
	}
	if len(dns) == 0 && len(search) == 0 && len(options) == 0 {
		out := bytes.TrimRight(kept.Bytes(), "\n")
		if len(out) > 0 {
			out = append(out, '\n')
		}
		if len(ns) == 0 {
			for _, n := range DefaultNameservers {
				out = append(out, "nameserver "+n+"\n"...)
			}
		}
		return out
	}
	var b bytes.Buffer
	switch {
	case len(dns) > 0:
		for _, a := range dns {
			b.WriteString("nameserver " + a.String() + "\n")
		}
	case len(ns) > 0:
		for _, n := range ns {
			b.WriteString("nameserver " + n + "\n")
		}
	default:
		for _, n := range DefaultNameservers {
			b.WriteString("nameserver " + n + "\n")
		}
	}
	if len(search) == 0 {
		search = hostSearch
	}
	// "." means "no search domains", as in Docker.
	if len(search) > 0 && !(len(search) == 1 && search[0] == ".") {
		b.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	if len(options) == 0 {
		options = hostOptions
	}
	if len(options) > 0 {
		b.WriteString("options " + strings.Join(options, " ") + "\n")
	}
	return b.Bytes()
}

// readHostResolvConf reads the host's resolv.conf, following
// systemd-resolved to its upstream list when the host file only names
// the local stub.
func readHostResolvConf(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read host resolv.conf %s: %w", path, err)
	}
	if path == HostResolvConf && onlyStub(b) {
		if up, err := os.ReadFile(systemdResolvedConf); err == nil {
			return up, nil
		}
	}
	return b, nil
}

func onlyStub(b []byte) bool {
	stub := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if f[1] != "127.0.0.53" {
				return false
			}
			stub = true
		}
	}
	return stub
}

// writeFiles writes hosts, hostname and resolv.conf into dir.
func writeFiles(dir string, in *Input, hostname, domainname string) error {
	hc := in.HostConfig
	h := Hosts{Hostname: hostname, Domainname: domainname, Addresses: in.Addresses,
		ExtraHosts: hc.ExtraHosts, HostGateway: in.HostGateway, Links: in.Links}
	var hosts, resolv []byte
	var err error
	if hc.NetworkMode == "host" {
		// Host networking shares the host's names and resolvers
		// verbatim; dockerd builds the hosts file only for --add-host
		// entries, without the host's lines.
		if len(hc.ExtraHosts) == 0 {
			hosts, err = os.ReadFile("/etc/hosts")
			if err != nil {
				return fmt.Errorf("read host /etc/hosts: %w", err)
			}
		} else if hosts, err = h.Content(); err != nil {
			return err
		}
		if resolv, err = readHostResolvConf(in.hostResolvConf()); err != nil {
			return err
		}
	} else {
		if hosts, err = h.Content(); err != nil {
			return err
		}
		host, err := readHostResolvConf(in.hostResolvConf())
		if err != nil {
			return err
		}
		if in.EmbeddedDNS {
			resolv = EmbeddedResolvConf(host, hc.DNSSearch, hc.DNSOptions)
		} else {
			resolv = ResolvConfContent(host, hc.DNS, hc.DNSSearch, hc.DNSOptions)
		}
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{HostsFile, hosts}, {HostnameFile, []byte(hostname + "\n")}, {ResolvConfFile, resolv}} {
		if err := atomicfile.Replace(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// EmbeddedDNSAddress is where a container on a user-defined network finds
// berthd's embedded DNS (Docker's address).
const EmbeddedDNSAddress = "127.0.0.11"

// EmbeddedResolvConf is the resolv.conf of a container on a user-defined
// network, as dockerd writes it: the embedded DNS as the only nameserver
// (it forwards to --dns or the host's servers), the search domains of
// --dns-search or the host, and the options of --dns-option or the host
// plus ndots:0.
func EmbeddedResolvConf(hostConf []byte, search, options []string) []byte {
	var hostSearch, hostOptions []string
	for _, line := range strings.Split(string(hostConf), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "search" {
			hostSearch = f[1:]
		}
		if len(f) >= 2 && f[0] == "options" {
			hostOptions = f[1:]
		}
	}
	if len(search) == 0 {
		search = hostSearch
	}
	if len(options) == 0 {
		options = hostOptions
	}
	var b bytes.Buffer
	b.WriteString("nameserver " + EmbeddedDNSAddress + "\n")
	if len(search) > 0 && !(len(search) == 1 && search[0] == ".") {
		b.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	hasNdots := false
	for _, o := range options {
		hasNdots = hasNdots || strings.HasPrefix(o, "ndots:")
	}
	if !hasNdots {
		options = append(options, "ndots:0")
	}
	b.WriteString("options " + strings.Join(options, " ") + "\n")
	return b.Bytes()
}
