package daemon

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/moby/moby/api/types/container"
	mnetwork "github.com/moby/moby/api/types/network"

	cservice "github.com/berth-dev/berth/container/service"
	"github.com/berth-dev/berth/network"
)

// openNetworks opens the network manager: its state under the data root,
// namespace files under the exec root, the default bridge from --bridge
// and --bip.
func openNetworks(cfg Config, log *slog.Logger) (*network.Manager, error) {
	bridge := cfg.Bridge
	if bridge == "" {
		bridge = network.DefaultBridgeName(cfg.DataRoot, DefaultDataRoot)
	}
	m, err := network.Open(network.Options{
		Root:     filepath.Join(cfg.DataRoot, "network"),
		ExecRoot: filepath.Join(cfg.ExecRoot, "netns"),
		Bridge:   bridge,
		BridgeIP: cfg.BridgeIP,
		Logf:     func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		return nil, fmt.Errorf("open networks: %w", err)
	}
	return m, nil
}

// containerNetworks adapts the network manager to what container/service
// needs of it.
type containerNetworks struct{ m *network.Manager }

var _ cservice.Networks = containerNetworks{}

func (c containerNetworks) Register(id, name string, hc *container.HostConfig, cfg *mnetwork.NetworkingConfig) error {
	return c.m.Register(id, name, hc, cfg)
}

func (c containerNetworks) Setup(id string) (cservice.NetworkSetup, error) {
	s, err := c.m.Setup(id)
	return cservice.NetworkSetup{NetNS: s.NetNS, Addresses: s.Addresses}, err
}

func (c containerNetworks) Teardown(id string) error    { return c.m.Teardown(id) }
func (c containerNetworks) Forget(id string) error      { return c.m.Forget(id) }
func (c containerNetworks) SandboxKey(id string) string { return c.m.SandboxKey(id) }

// networksOf is the container service's view of e's networks (nil
// without a network manager).
func networksOf(e Engine) cservice.Networks {
	if e.Networks == nil {
		return nil
	}
	return containerNetworks{e.Networks}
}
