package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/api/filters"
)

// NetworkBackend is the network side of the engine. Errors carry errdefs
// categories.
type NetworkBackend interface {
	// NetworkList is GET /networks, every network.
	NetworkList(ctx context.Context) ([]network.Inspect, error)
	// NetworkInspect is GET /networks/{id}.
	NetworkInspect(ctx context.Context, ref string) (network.Inspect, error)
	// NetworkCreate is POST /networks/create.
	NetworkCreate(ctx context.Context, req network.CreateRequest) (network.CreateResponse, error)
	// NetworkRemove is DELETE /networks/{id}.
	NetworkRemove(ctx context.Context, ref string) error
	// NetworkConnect is POST /networks/{id}/connect.
	NetworkConnect(ctx context.Context, ref, container string, es *network.EndpointSettings) error
	// NetworkDisconnect is POST /networks/{id}/disconnect.
	NetworkDisconnect(ctx context.Context, ref, container string, force bool) error
	// NetworkPrune is POST /networks/prune: keep says which networks
	// the filters spare.
	NetworkPrune(ctx context.Context, remove func(network.Inspect) bool) (network.PruneReport, error)
}

// networkListFilters are the filters GET /networks takes.
var networkListFilters = []string{"dangling", "driver", "id", "label", "name", "scope", "type"}

func (s *Server) networkList(w http.ResponseWriter, r *http.Request) error {
	f, err := filtersOf(r)
	if err != nil {
		return err
	}
	if err := f.Validate(networkListFilters...); err != nil {
		return err
	}
	all, err := s.b.Networks.NetworkList(r.Context())
	if err != nil {
		return err
	}
	dangling, err := f.Bool("dangling")
	if err != nil {
		return err
	}
	out := []network.Summary{}
	for _, n := range all {
		if !networkMatches(f, n) {
			continue
		}
		if dangling != nil && *dangling != (len(n.Containers) == 0 && !builtin(n.Name)) {
			continue
		}
		// The list shows no endpoints, as dockerd's.
		out = append(out, network.Summary{Network: n.Network})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// builtin says whether name is a predefined network.
func builtin(name string) bool { return name == "bridge" || name == "host" || name == "none" }

// networkMatches applies dockerd's network filters: name and id (exact or
// unanchored regular expression, as moby's FilterNetworks), driver, label,
// scope and type (builtin or custom).
func networkMatches(f filters.Args, n network.Inspect) bool {
	typ := "custom"
	if builtin(n.Name) {
		typ = "builtin"
	}
	return f.Match("name", n.Name) && f.Match("id", n.ID) && f.ExactMatch("driver", n.Driver) && f.MatchKVList("label", n.Labels) &&
		f.ExactMatch("scope", n.Scope) && f.ExactMatch("type", typ)
}

func (s *Server) networkInspect(w http.ResponseWriter, r *http.Request) error {
	n, err := s.b.Networks.NetworkInspect(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}

// networkCreateRequest is network.CreateRequest with the IPAM config as the
// strings clients send: the API types parse addresses while decoding, so
// a malformed one would fail as bad JSON instead of with dockerd's words.
type networkCreateRequest struct {
	network.CreateRequest
	IPAM *ipamRequest
}

type ipamRequest struct {
	Driver  string
	Options map[string]string
	Config  []ipamConfigRequest
}

type ipamConfigRequest struct {
	Subnet     string
	IPRange    string
	Gateway    string
	AuxAddress map[string]string `json:"AuxiliaryAddresses"`
}

func (s *Server) networkCreate(w http.ResponseWriter, r *http.Request) error {
	var cr networkCreateRequest
	if _, err := readJSON(w, r, &cr, false); err != nil {
		return err
	}
	req := cr.CreateRequest
	if req.Name == "" {
		return invalid("network name cannot be empty")
	}
	if cr.IPAM != nil {
		ipam, err := parseIPAM(cr.IPAM, req.EnableIPv6 != nil && *req.EnableIPv6)
		if err != nil {
			return err
		}
		req.IPAM = ipam
	}
	resp, err := s.b.Networks.NetworkCreate(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

// parseIPAM checks the IPAM config as dockerd's ValidateIPAM does, with
// its messages, and parses it. As there, the family and containment
// checks skip IPv6 subnets of a network without IPv6.
func parseIPAM(in *ipamRequest, enable6 bool) (*network.IPAM, error) {
	out := &network.IPAM{Driver: in.Driver, Options: in.Options}
	var errs []string
	for _, c := range in.Config {
		subnet, err := netip.ParsePrefix(c.Subnet)
		if err != nil {
			errs = append(errs, fmt.Sprintf("invalid subnet %s: invalid CIDR block notation", c.Subnet))
			continue
		}
		cfg := network.IPAMConfig{Subnet: subnet}
		check := enable6 || subnet.Addr().Is4()
		if check && subnet != subnet.Masked() {
			errs = append(errs, fmt.Sprintf("invalid subnet %s: it should be %s", subnet, subnet.Masked()))
		}
		if c.IPRange != "" {
			if cfg.IPRange, err = netip.ParsePrefix(c.IPRange); err != nil {
				errs = append(errs, fmt.Sprintf("invalid ip-range %s: invalid CIDR block notation", c.IPRange))
			} else if check {
				errs = append(errs, ipRangeErrs(c.IPRange, cfg.IPRange, subnet)...)
			}
		}
		if c.Gateway != "" {
			if cfg.Gateway, err = netip.ParseAddr(c.Gateway); err != nil {
				errs = append(errs, fmt.Sprintf("invalid gateway %s: invalid address", c.Gateway))
			} else if msg := addressErr(cfg.Gateway, subnet); check && msg != "" {
				errs = append(errs, fmt.Sprintf("invalid gateway %s: %s", c.Gateway, msg))
			}
		}
		for name, a := range c.AuxAddress {
			addr, err := netip.ParseAddr(a)
			if err != nil {
				errs = append(errs, fmt.Sprintf("invalid auxiliary address %s: invalid address", name))
				continue
			}
			if msg := addressErr(addr, subnet); check && msg != "" {
				errs = append(errs, fmt.Sprintf("invalid auxiliary address %s: %s", name, msg))
			}
			if cfg.AuxAddress == nil {
				cfg.AuxAddress = map[string]netip.Addr{}
			}
			cfg.AuxAddress[name] = addr
		}
		out.Config = append(out.Config, cfg)
	}
	switch len(errs) {
	case 0:
		return out, nil
	case 1:
		return nil, invalid("invalid network config:\n%s", errs[0])
	}
	return nil, invalid("invalid network config:\n* %s", strings.Join(errs, "\n* "))
}

// family names an address family as dockerd's messages do.
func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// ipRangeErrs are dockerd's complaints about ip-range r (given as raw)
// in subnet.
func ipRangeErrs(raw string, r, subnet netip.Prefix) []string {
	if r.Addr().Is4() != subnet.Addr().Is4() {
		return []string{fmt.Sprintf("invalid ip-range %s: parent subnet is an %s block", raw, family(subnet.Addr()))}
	}
	var errs []string
	if r.Bits() < subnet.Bits() {
		errs = append(errs, fmt.Sprintf("invalid ip-range %s: CIDR block is bigger than its parent subnet %s", raw, subnet))
	}
	if r != r.Masked() {
		errs = append(errs, fmt.Sprintf("invalid ip-range %s: it should be %s", r, r.Masked()))
	}
	if !subnet.Overlaps(r) {
		errs = append(errs, fmt.Sprintf("invalid ip-range %s: parent subnet %s doesn't contain ip-range", raw, subnet))
	}
	return errs
}

// addressErr is dockerd's complaint about address a in subnet, or "".
func addressErr(a netip.Addr, subnet netip.Prefix) string {
	if a.Is4() != subnet.Addr().Is4() {
		return fmt.Sprintf("parent subnet is an %s block", family(subnet.Addr()))
	}
	if !subnet.Contains(a) {
		return fmt.Sprintf("parent subnet %s doesn't contain this address", subnet)
	}
	return ""
}

func (s *Server) networkRemove(w http.ResponseWriter, r *http.Request) error {
	if err := s.b.Networks.NetworkRemove(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) networkConnect(w http.ResponseWriter, r *http.Request) error {
	var req network.ConnectRequest
	if _, err := readJSON(w, r, &req, false); err != nil {
		return err
	}
	if req.Container == "" {
		return invalid("container name or ID is required")
	}
	if err := s.b.Networks.NetworkConnect(r.Context(), r.PathValue("id"), req.Container, req.EndpointConfig); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) networkDisconnect(w http.ResponseWriter, r *http.Request) error {
	var req network.DisconnectRequest
	if _, err := readJSON(w, r, &req, false); err != nil {
		return err
	}
	if req.Container == "" {
		return invalid("container name or ID is required")
	}
	if err := s.b.Networks.NetworkDisconnect(r.Context(), r.PathValue("id"), req.Container, req.Force); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) networkPrune(w http.ResponseWriter, r *http.Request) error {
	f, err := filtersOf(r)
	if err != nil {
		return err
	}
	if err := f.Validate("label", "label!", "until"); err != nil {
		return err
	}
	var until int64
	for _, v := range f.Get("until") {
		// A duration before now ("24h") or a timestamp.
		if d, err := time.ParseDuration(v); err == nil {
			until = time.Now().Add(-d).Unix()
			continue
		}
		t, err := parseTimestamp(v)
		if err != nil {
			return err
		}
		until = t.Unix()
	}
	rep, err := s.b.Networks.NetworkPrune(r.Context(), func(n network.Inspect) bool {
		if until != 0 && n.Created.Unix() >= until {
			return false
		}
		if !f.MatchKVList("label", n.Labels) {
			return false
		}
		for _, v := range f.Get("label!") {
			k, want, hasValue := strings.Cut(v, "=")
			if got, ok := n.Labels[k]; ok && (!hasValue || got == want) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	if rep.NetworksDeleted == nil {
		rep.NetworksDeleted = []string{}
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// moveMacAddress puts the container-wide MacAddress of API < 1.44 on the
// endpoint of the container's network mode, as dockerd does.
func moveMacAddress(c *ContainerCreateRequest, mac string) error {
	if mac == "" {
		return nil
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return invalid("invalid MAC address %q", mac)
	}
	mode := string(c.HostConfig.NetworkMode)
	if mode == "" {
		mode = network.NetworkDefault
	}
	if c.NetworkingConfig == nil {
		c.NetworkingConfig = &network.NetworkingConfig{}
	}
	if c.NetworkingConfig.EndpointsConfig == nil {
		c.NetworkingConfig.EndpointsConfig = map[string]*network.EndpointSettings{}
	}
	es := c.NetworkingConfig.EndpointsConfig[mode]
	if es == nil {
		es = &network.EndpointSettings{}
		c.NetworkingConfig.EndpointsConfig[mode] = es
	}
	if len(es.MacAddress) == 0 {
		es.MacAddress = network.HardwareAddr(hw)
	}
	return nil
}
