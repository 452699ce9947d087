package cli

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/docker/cli/opts"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/format"
)

// networkGroup is `berth network ...`, with docker's subcommands.
func (c *Cli) networkGroup() *cobra.Command {
	g := &cobra.Command{Use: "network", Short: "Manage networks", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	g.AddCommand(c.newNetworkCreateCmd(), c.newNetworkLsCmd(), c.newNetworkInspectCmd(), c.newNetworkRmCmd(),
		c.newNetworkConnectCmd(), c.newNetworkDisconnectCmd(), c.newNetworkPruneCmd())
	return g
}

func (c *Cli) newNetworkCreateCmd() *cobra.Command {
	var driver, ipamDriver, scope string
	var subnets, gateways, ipRanges []string
	var internal, ipv6, attachable bool
	options := opts.NewMapOpts(nil, nil)
	labels := opts.NewListOpts(opts.ValidateLabel)
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			var ipam *network.IPAM
			if len(subnets) > 0 || len(gateways) > 0 || len(ipRanges) > 0 || ipamDriver != "default" {
				ipam = &network.IPAM{Driver: ipamDriver}
				if ipam.Config, err = ipamConfigs(subnets, gateways, ipRanges); err != nil {
					return err
				}
			}
			o := client.NetworkCreateOptions{
				Driver: driver, Scope: scope, IPAM: ipam, Internal: internal, Attachable: attachable,
				Options: options.GetAll(), Labels: opts.ConvertKVStringsToMap(labels.GetSlice()),
			}
			if cmd.Flags().Changed("ipv6") {
				o.EnableIPv6 = &ipv6
			}
			res, err := api.NetworkCreate(context.Background(), args[0], o)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Out, res.ID)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&driver, "driver", "d", "bridge", "Driver to manage the Network")
	fl.VarP(options, "opt", "o", "Set driver specific options")
	fl.Var(&labels, "label", "Set metadata on a network")
	fl.BoolVar(&internal, "internal", false, "Restrict external access to the network")
	fl.BoolVar(&ipv6, "ipv6", false, "Enable or disable IPv6 networking")
	fl.BoolVar(&attachable, "attachable", false, "Enable manual container attachment")
	fl.StringVar(&scope, "scope", "", "Control the network's scope")
	fl.StringVar(&ipamDriver, "ipam-driver", "default", "IP Address Management Driver")
	fl.StringSliceVar(&subnets, "subnet", nil, "Subnet in CIDR format that represents a network segment")
	fl.StringSliceVar(&gateways, "gateway", nil, "IPv4 or IPv6 Gateway for the master subnet")
	fl.StringSliceVar(&ipRanges, "ip-range", nil, "Allocate container ip from a sub-range")
	return cmd
}

// ipamConfigs pairs each --gateway and --ip-range with the --subnet that
// contains it, as docker's CLI does.
func ipamConfigs(subnets, gateways, ipRanges []string) ([]network.IPAMConfig, error) {
	var out []network.IPAMConfig
	for _, s := range subnets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("invalid subnet %s: %w", s, err)
		}
		for _, o := range out {
			if o.Subnet.Overlaps(p) {
				return nil, fmt.Errorf("multiple overlapping subnet configuration is not supported")
			}
		}
		out = append(out, network.IPAMConfig{Subnet: p})
	}
	for _, r := range ipRanges {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return nil, fmt.Errorf("invalid ip-range %s: %w", r, err)
		}
		i := slices.IndexFunc(out, func(c network.IPAMConfig) bool { return c.Subnet.Contains(p.Addr()) })
		if i < 0 {
			return nil, fmt.Errorf("no matching subnet for range %s", r)
		}
		if out[i].IPRange.IsValid() {
			return nil, fmt.Errorf("cannot configure multiple ranges (%s, %s) on the same subnet (%s)", out[i].IPRange, r, out[i].Subnet)
		}
		out[i].IPRange = p
	}
	for _, g := range gateways {
		a, err := netip.ParseAddr(g)
		if err != nil {
			return nil, fmt.Errorf("invalid gateway %s: %w", g, err)
		}
		i := slices.IndexFunc(out, func(c network.IPAMConfig) bool { return c.Subnet.Contains(a) })
		if i < 0 {
			return nil, fmt.Errorf("no matching subnet for gateway %s", g)
		}
		if out[i].Gateway.IsValid() {
			return nil, fmt.Errorf("cannot configure multiple gateways (%s, %s) for the same subnet (%s)", out[i].Gateway, g, out[i].Subnet)
		}
		out[i].Gateway = a
	}
	return out, nil
}

// networkRow is one line of `network ls`.
type networkRow struct {
	n       network.Summary
	noTrunc bool
}

// networkHeader names the columns of network ls.
var networkHeader = map[string]string{
	"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
	"IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT",
}

func (r networkRow) Header() map[string]string { return networkHeader }

// ID is the network's id, short unless --no-trunc.
func (r networkRow) ID() string {
	if r.noTrunc {
		return r.n.ID
	}
	return format.TruncateID(r.n.ID)
}

// Name is the network's name.
func (r networkRow) Name() string { return r.n.Name }

// Driver is the network's driver.
func (r networkRow) Driver() string { return r.n.Driver }

// Scope is "local".
func (r networkRow) Scope() string { return r.n.Scope }

// IPv6 says whether IPv6 is on.
func (r networkRow) IPv6() string { return fmt.Sprint(r.n.EnableIPv6) }

// Internal says whether the network is --internal.
func (r networkRow) Internal() string { return fmt.Sprint(r.n.Internal) }

// CreatedAt is the creation time.
func (r networkRow) CreatedAt() string { return r.n.Created.String() }

// Labels are the labels, k=v joined by commas.
func (r networkRow) Labels() string {
	var kv []string
	for k, v := range r.n.Labels {
		kv = append(kv, k+"="+v)
	}
	return strings.Join(kv, ",")
}

// Label is one label's value.
func (r networkRow) Label(name string) string { return r.n.Labels[name] }

func (c *Cli) newNetworkLsCmd() *cobra.Command {
	var quiet, noTrunc bool
	var fmtStr string
	filter := opts.NewFilterOpt()
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.NetworkList(context.Background(), client.NetworkListOptions{Filters: filter.Value()})
			if err != nil {
				return err
			}
			if fmtStr == "" {
				fmtStr = c.ConfigFile().NetworksFormat
			}
			switch {
			case quiet:
				fmtStr = "{{.ID}}"
			case fmtStr == "" || fmtStr == format.TableKey:
				fmtStr = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
			}
			slices.SortFunc(res.Items, func(a, b network.Summary) int { return naturalCmp(a.Name, b.Name) })
			rows := make([]format.Context, 0, len(res.Items))
			for _, n := range res.Items {
				rows = append(rows, networkRow{n: n, noTrunc: noTrunc})
			}
			return format.Write(c.Out, format.Format(fmtStr), rows, networkHeader)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&quiet, "quiet", "q", false, "Only display network IDs")
	fl.BoolVar(&noTrunc, "no-trunc", false, "Do not truncate the output")
	fl.StringVar(&fmtStr, "format", "", "Pretty-print networks using a Go template")
	fl.VarP(&filter, "filter", "f", "Provide filter values (e.g. 'driver=bridge')")
	return cmd
}

func (c *Cli) newNetworkInspectCmd() *cobra.Command {
	var tmpl string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.inspectAll(args, tmpl, notFoundAs(c.inspectNetwork, "network"))
		},
	}
	cmd.Flags().StringVarP(&tmpl, "format", "f", "", "Format the output using the given Go template")
	cmd.Flags().BoolP("verbose", "v", false, "Verbose output for diagnostics")
	return cmd
}

func (c *Cli) inspectNetwork(ctx context.Context, name string) (inspected, error) {
	api, err := c.Client()
	if err != nil {
		return inspected{}, err
	}
	res, err := api.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if err != nil {
		return inspected{}, err
	}
	return inspected{res.Network, res.Raw}, nil
}

func (c *Cli) newNetworkRmCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			return c.forEach(args, func(ctx context.Context, n string) error {
				_, err := api.NetworkRemove(ctx, n, client.NetworkRemoveOptions{})
				if err != nil && force && isNotFound(err) {
					return errSkip
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not error if the network does not exist")
	return cmd
}

func (c *Cli) newNetworkConnectCmd() *cobra.Command {
	var ip, ip6 string
	aliases := opts.NewListOpts(nil)
	links := opts.NewListOpts(nil)
	cmd := &cobra.Command{
		Use:   "connect [OPTIONS] NETWORK CONTAINER",
		Short: "Connect a container to a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			es := &network.EndpointSettings{Aliases: aliases.GetSlice(), Links: links.GetSlice()}
			if ip != "" || ip6 != "" {
				es.IPAMConfig = &network.EndpointIPAMConfig{}
			}
			if ip != "" {
				a, err := netip.ParseAddr(ip)
				if err != nil {
					return fmt.Errorf("invalid IPv4 address: %s", ip)
				}
				es.IPAMConfig.IPv4Address = a
			}
			if ip6 != "" {
				a, err := netip.ParseAddr(ip6)
				if err != nil {
					return fmt.Errorf("invalid IPv6 address: %s", ip6)
				}
				es.IPAMConfig.IPv6Address = a
			}
			_, err = api.NetworkConnect(context.Background(), args[0], client.NetworkConnectOptions{Container: args[1], EndpointConfig: es})
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&ip, "ip", "", "IPv4 address (e.g., \"172.30.100.104\")")
	fl.StringVar(&ip6, "ip6", "", "IPv6 address (e.g., \"2001:db8::33\")")
	fl.Var(&aliases, "alias", "Add network-scoped alias for the container")
	fl.Var(&links, "link", "Add link to another container")
	return cmd
}

func (c *Cli) newNetworkDisconnectCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "disconnect [OPTIONS] NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			_, err = api.NetworkDisconnect(context.Background(), args[0], client.NetworkDisconnectOptions{Container: args[1], Force: force})
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the container to disconnect from a network")
	return cmd
}

func (c *Cli) newNetworkPruneCmd() *cobra.Command {
	var force bool
	filter := opts.NewFilterOpt()
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all unused networks",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force && !c.confirm("WARNING! This will remove all custom networks not used by at least one container.") {
				return nil
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.NetworkPrune(context.Background(), client.NetworkPruneOptions{Filters: filter.Value()})
			if err != nil {
				return err
			}
			c.printDeleted("Deleted Networks:", res.Report.NetworksDeleted)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(&filter, "filter", "Provide filter values (e.g. 'until=<timestamp>')")
	return cmd
}

// newPortCmd is `berth port CONTAINER [PRIVATE_PORT[/PROTO]]`: the
// container's published ports as docker prints them.
func (c *Cli) newPortCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Args:  requiresRangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.ContainerInspect(context.Background(), args[0], client.ContainerInspectOptions{})
			if err != nil {
				if isNotFound(err) {
					return fmt.Errorf("Error: No such container: %s", args[0])
				}
				return err
			}
			var ports network.PortMap
			if res.Container.NetworkSettings != nil {
				ports = res.Container.NetworkSettings.Ports
			}
			hostAddr := func(b network.PortBinding) string {
				ip := "0.0.0.0"
				if b.HostIP.IsValid() {
					ip = b.HostIP.String()
				}
				// "[::]:8080" for IPv6, as current docker CLIs print it.
				return net.JoinHostPort(ip, b.HostPort)
			}
			if len(args) == 2 {
				spec := args[1]
				if !strings.Contains(spec, "/") {
					spec += "/tcp"
				}
				p, err := network.ParsePort(spec)
				if err != nil {
					return fmt.Errorf("Error: invalid port (%s): %w", args[1], err)
				}
				bs := ports[p]
				if len(bs) == 0 {
					return fmt.Errorf("Error: No public port '%s' published for %s", p, args[0])
				}
				for _, b := range bs {
					fmt.Fprintln(c.Out, hostAddr(b))
				}
				return nil
			}
			var lines []string
			for p, bs := range ports {
				for _, b := range bs {
					lines = append(lines, fmt.Sprintf("%s -> %s", p, hostAddr(b)))
				}
			}
			sort.Strings(lines)
			for _, l := range lines {
				fmt.Fprintln(c.Out, l)
			}
			return nil
		},
	}
}
