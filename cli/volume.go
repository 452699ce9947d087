package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/docker/cli/opts"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/format"
)

// volumeGroup is `berth volume`: create, ls, inspect, rm, prune.
func (c *Cli) volumeGroup() *cobra.Command {
	g := &cobra.Command{Use: "volume COMMAND", Short: "Manage volumes", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	g.AddCommand(c.newVolumeCreateCmd(), c.newVolumeLsCmd(), c.newVolumeInspectCmd(), c.newVolumeRmCmd(), c.newVolumePruneCmd())
	return g
}

func (c *Cli) newVolumeCreateCmd() *cobra.Command {
	var driver, name string
	driverOpts := opts.NewMapOpts(nil, nil)
	labels := opts.NewListOpts(opts.ValidateLabel)
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  requiresRangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if name != "" {
					return errors.New("conflicting options: cannot specify a volume-name through both --name and as a positional arg")
				}
				name = args[0]
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.VolumeCreate(context.Background(), client.VolumeCreateOptions{
				Name: name, Driver: driver, DriverOpts: driverOpts.GetAll(),
				Labels: opts.ConvertKVStringsToMap(labels.GetSlice()),
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Out, res.Volume.Name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&driver, "driver", "d", "local", "Specify volume driver name")
	f.StringVar(&name, "name", "", "Specify volume name")
	f.MarkHidden("name")
	f.VarP(driverOpts, "opt", "o", "Set driver specific options")
	f.Var(&labels, "label", "Set metadata for a volume")
	return cmd
}

func (c *Cli) newVolumeLsCmd() *cobra.Command {
	var quiet bool
	var fmtStr string
	filter := opts.NewFilterOpt()
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.VolumeList(context.Background(), client.VolumeListOptions{Filters: filter.Value()})
			if err != nil {
				return err
			}
			switch {
			case quiet:
				fmtStr = format.VolumesQuiet
			case fmtStr == "" || fmtStr == format.TableKey:
				fmtStr = format.VolumesTable
			}
			// docker's order: by name, numbers in names compared as numbers.
			slices.SortFunc(res.Items, func(a, b volume.Volume) int { return naturalCmp(a.Name, b.Name) })
			rows := make([]format.Context, 0, len(res.Items))
			for _, v := range res.Items {
				rows = append(rows, format.Volume{V: v})
			}
			return format.Write(c.Out, format.Format(fmtStr), rows, format.VolumeHeader)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	f.StringVar(&fmtStr, "format", "", "Format output using a custom template")
	f.VarP(&filter, "filter", "f", "Provide filter values (e.g. \"dangling=true\")")
	return cmd
}

func (c *Cli) newVolumeInspectCmd() *cobra.Command {
	var tmpl string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.inspectAll(args, tmpl, notFoundAs(c.inspectVolume, "volume"))
		},
	}
	cmd.Flags().StringVarP(&tmpl, "format", "f", "", "Format output using a custom template")
	return cmd
}

func (c *Cli) inspectVolume(ctx context.Context, name string) (inspected, error) {
	api, err := c.Client()
	if err != nil {
		return inspected{}, err
	}
	res, err := api.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
	if err != nil {
		return inspected{}, err
	}
	raw := []byte(res.Raw)
	if len(raw) == 0 {
		if raw, err = json.Marshal(res.Volume); err != nil {
			return inspected{}, err
		}
	}
	return inspected{res.Volume, raw}, nil
}

func (c *Cli) newVolumeRmCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Args:    requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			return c.forEach(args, func(ctx context.Context, name string) error {
				_, err := api.VolumeRemove(ctx, name, client.VolumeRemoveOptions{Force: force})
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of one or more volumes")
	return cmd
}

func (c *Cli) newVolumePruneCmd() *cobra.Command {
	var all, force bool
	filter := opts.NewFilterOpt()
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused local volumes",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			warning := "WARNING! This will remove anonymous local volumes not used by at least one container."
			if all {
				warning = "WARNING! This will remove all local volumes not used by at least one container."
			}
			if !force && !c.confirm(warning) {
				return nil
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.VolumePrune(context.Background(), client.VolumePruneOptions{All: all, Filters: filter.Value()})
			if err != nil {
				return err
			}
			c.printDeleted("Deleted Volumes:", res.Report.VolumesDeleted)
			fmt.Fprintln(c.Out, "Total reclaimed space:", units.HumanSize(float64(res.Report.SpaceReclaimed)))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(&filter, "filter", "Provide filter values (e.g. \"label=<label>\")")
	return cmd
}
