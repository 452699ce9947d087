package spec

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// Link is one legacy link (--link name:alias on the default bridge) of
// the container being started, to a running container.
type Link struct {
	// Name is the link's full name, "/<container>/<alias>".
	Name string
	// ContainerName is the linked container's name (no slash), Hostname
	// its hostname.
	ContainerName, Hostname string
	// IP and IP6 are its addresses on the default bridge.
	IP, IP6 netip.Addr
	// ExposedPorts and Env are the linked container's.
	ExposedPorts network.PortSet
	Env          []string
}

// alias is the link's alias, the last element of its name.
func (l Link) alias() string { return path.Base(l.Name) }

// hostsLines are the /etc/hosts lines of l, as dockerd writes them: the
// address, then the alias, the linked container's hostname and, when it
// differs from the alias, its name.
func (l Link) hostsLines() string {
	names := l.alias() + " " + l.Hostname
	if l.alias() != l.ContainerName {
		names += " " + l.ContainerName
	}
	var b strings.Builder
	for _, a := range []netip.Addr{l.IP, l.IP6} {
		if a.IsValid() {
			fmt.Fprintf(&b, "%s\t%s\n", a, names)
		}
	}
	return b.String()
}

// env is the environment a link gives, dockerd's: ALIAS_PORT (the
// lowest exposed port, TCP first), ALIAS_PORT_<port>_<PROTO>[_ADDR,
// _PORT, _PROTO] per port with _START/_END entries for runs of
// consecutive ports, ALIAS_NAME, and ALIAS_ENV_<var> for the linked
// container's variables but HOME and PATH.
func (l Link) env() []string {
	alias := strings.ReplaceAll(strings.ToUpper(l.alias()), "-", "_")
	ip := l.IP.String()
	var ports []network.Port
	for p := range l.ExposedPorts {
		ports = append(ports, p)
	}
	// dockerd's order: TCP ports first, each protocol by number; the
	// default port is the lowest number (TCP on a tie).
	slices.SortFunc(ports, func(a, b network.Port) int {
		if (a.Proto() == "tcp") != (b.Proto() == "tcp") {
			if a.Proto() == "tcp" {
				return -1
			}
			return 1
		}
		if a.Proto() != b.Proto() {
			return strings.Compare(string(a.Proto()), string(b.Proto()))
		}
		return int(a.Num()) - int(b.Num())
	})
	var def *network.Port
	for i, p := range ports {
		if def == nil || p.Num() < def.Num() || (p.Num() == def.Num() && p.Proto() == "tcp") {
			def = &ports[i]
		}
	}
	var env []string
	if def != nil {
		env = append(env, fmt.Sprintf("%s_PORT=%s://%s:%d", alias, def.Proto(), ip, def.Num()))
	}
	rangeEnv := func(start, end network.Port) {
		if start == end {
			return
		}
		pre := fmt.Sprintf("%s_PORT_%d_%s", alias, start.Num(), strings.ToUpper(string(start.Proto())))
		env = append(env,
			fmt.Sprintf("%s_START=%s://%s:%d", pre, start.Proto(), ip, start.Num()),
			fmt.Sprintf("%s_ADDR=%s", pre, ip),
			fmt.Sprintf("%s_PROTO=%s", pre, start.Proto()),
			fmt.Sprintf("%s_PORT_START=%d", pre, start.Num()),
			fmt.Sprintf("%s_PORT_END=%d", pre, end.Num()))
	}
	for i := 0; i < len(ports); {
		j := i
		for j+1 < len(ports) && ports[j+1].Proto() == ports[i].Proto() && ports[j+1].Num() == ports[j].Num()+1 {
			j++
		}
		rangeEnv(ports[i], ports[j])
		i = j + 1
	}
	for _, p := range ports {
		pre := fmt.Sprintf("%s_PORT_%d_%s", alias, p.Num(), strings.ToUpper(string(p.Proto())))
		env = append(env,
			fmt.Sprintf("%s=%s://%s:%d", pre, p.Proto(), ip, p.Num()),
			pre+"_ADDR="+ip,
			pre+"_PORT="+strconv.Itoa(int(p.Num())),
			pre+"_PROTO="+string(p.Proto()))
	}
	env = append(env, alias+"_NAME="+l.Name)
	for _, kv := range l.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "HOME" || k == "PATH" {
			continue
		}
		env = append(env, alias+"_ENV_"+k+"="+v)
	}
	return env
}

// processEnvLinks is processEnv with the links' variables between the
// defaults and the container's own, which win over them (dockerd's
// order).
func processEnvLinks(cfg *container.Config, hostname string, links []Link) []string {
	if len(links) == 0 {
		return processEnv(cfg, hostname)
	}
	c := *cfg
	c.Env = nil
	for _, l := range links {
		c.Env = append(c.Env, l.env()...)
	}
	c.Env = append(c.Env, cfg.Env...)
	return processEnv(&c, hostname)
}

// linksHosts are the /etc/hosts lines of links.
func linksHosts(links []Link) []byte {
	var b strings.Builder
	for _, l := range links {
		b.WriteString(l.hostsLines())
	}
	return []byte(b.String())
}
