package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/docker/cli/opts"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/cli/format"
)

func (c *Cli) containerCommands() []command {
	return []command{
		{"run", c.newRunCmd}, {"create", c.newCreateCmd}, {"start", c.newStartCmd}, {"stop", c.newStopCmd},
		{"restart", c.newRestartCmd}, {"kill", c.newKillCmd},
		{"rm", func() *cobra.Command { return c.newRmCmd("rm") }},
		{"ps", func() *cobra.Command { return c.newPsCmd("ps") }},
		{"logs", c.newLogsCmd}, {"exec", c.newExecCmd}, {"attach", c.newAttachCmd}, {"inspect", c.newInspectCmd},
		{"top", c.newTopCmd}, {"stats", c.newStatsCmd}, {"wait", c.newWaitCmd}, {"rename", c.newRenameCmd},
		{"pause", c.newPauseCmd}, {"unpause", c.newUnpauseCmd}, {"cp", c.newCpCmd}, {"export", c.newExportCmd},
		{"commit", c.newCommitCmd}, {"update", c.newUpdateCmd}, {"port", c.newPortCmd}, {"diff", c.newDiffCmd},
		{"container", c.containerGroup},
	}
}

func (c *Cli) containerGroup() *cobra.Command {
	g := &cobra.Command{Use: "container", Short: "Manage containers", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	ls := c.newPsCmd("ls")
	ls.Aliases = []string{"ps", "list"}
	rm := c.newRmCmd("rm")
	rm.Aliases = []string{"remove"}
	g.AddCommand(c.newRunCmd(), c.newCreateCmd(), c.newStartCmd(), c.newStopCmd(), c.newRestartCmd(),
		c.newKillCmd(), rm, ls, c.newLogsCmd(), c.newExecCmd(), c.newAttachCmd(), c.newContainerInspectCmd(),
		c.newTopCmd(), c.newStatsCmd(), c.newWaitCmd(), c.newRenameCmd(), c.newPauseCmd(), c.newUnpauseCmd(),
		c.newCpCmd(), c.newExportCmd(), c.newCommitCmd(), c.newContainerPruneCmd(), c.newUpdateCmd(),
		c.newPortCmd(), c.newDiffCmd())
	return g
}

func (c *Cli) newPsCmd(use string) *cobra.Command {
	var all, quiet, size, latest, noTrunc bool
	var last int
	var fmtStr string
	filter := opts.NewFilterOpt()
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS]",
		Short: "List containers",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			if latest {
				last = 1
			}
			if fmtStr == "" {
				fmtStr = c.ConfigFile().PsFormat
			}
			o := client.ContainerListOptions{All: all || last > 0, Limit: last, Size: size, Filters: filter.Value()}
			switch {
			case quiet:
				fmtStr = format.PsQuiet
			case fmtStr == "" || fmtStr == format.TableKey:
				fmtStr = format.PsTable
				if size {
					fmtStr = format.PsTableSize
				}
			}
			// A custom format that shows the size asks the daemon for it.
			if format.NeedsSize(fmtStr) {
				o.Size = true
			}
			res, err := api.ContainerList(context.Background(), o)
			if err != nil {
				return err
			}
			rows := make([]format.Context, 0, len(res.Items))
			for _, ctr := range res.Items {
				rows = append(rows, format.Container{C: ctr, Trunc: !noTrunc})
			}
			return format.Write(c.Out, format.Format(fmtStr), rows, format.ContainerHeader)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "Only display container IDs")
	fl.BoolVarP(&size, "size", "s", false, "Display total file sizes")
	fl.BoolVarP(&latest, "latest", "l", false, "Show the latest created container (includes all states)")
	fl.IntVarP(&last, "last", "n", -1, "Show n last created containers (includes all states)")
	fl.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	fl.StringVar(&fmtStr, "format", "", "Pretty-print containers using a Go template")
	fl.VarP(&filter, "filter", "f", "Filter output based on conditions provided")
	return cmd
}

func (c *Cli) newStopCmd() *cobra.Command {
	var timeout int
	var signal string
	cmd := &cobra.Command{
		Use:   "stop [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Stop one or more running containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			o := client.ContainerStopOptions{Signal: signal}
			if cmd.Flags().Changed("timeout") || cmd.Flags().Changed("time") {
				o.Timeout = &timeout
			}
			return c.forEach(args, func(ctx context.Context, n string) error {
				_, err := api.ContainerStop(ctx, n, o)
				return err
			})
		},
	}
	timeoutFlags(cmd.Flags(), &timeout)
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "Signal to send to the container")
	return cmd
}

func (c *Cli) newRestartCmd() *cobra.Command {
	var timeout int
	var signal string
	cmd := &cobra.Command{
		Use:   "restart [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Restart one or more containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			o := client.ContainerRestartOptions{Signal: signal}
			if cmd.Flags().Changed("timeout") || cmd.Flags().Changed("time") {
				o.Timeout = &timeout
			}
			return c.forEach(args, func(ctx context.Context, n string) error {
				_, err := api.ContainerRestart(ctx, n, o)
				return err
			})
		},
	}
	timeoutFlags(cmd.Flags(), &timeout)
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "Signal to send to the container")
	return cmd
}

func (c *Cli) newKillCmd() *cobra.Command {
	var signal string
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Kill one or more running containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			return c.forEach(args, func(ctx context.Context, n string) error {
				_, err := api.ContainerKill(ctx, n, client.ContainerKillOptions{Signal: signal})
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "KILL", "Signal to send to the container")
	return cmd
}

func (c *Cli) newRmCmd(use string) *cobra.Command {
	var force, volumes, link bool
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Remove one or more containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			return c.forEach(args, func(ctx context.Context, n string) error {
				n = strings.Trim(n, "/")
				if n == "" {
					return errors.New("Container name cannot be empty")
				}
				_, err := api.ContainerRemove(ctx, n, client.ContainerRemoveOptions{Force: force, RemoveVolumes: volumes, RemoveLinks: link})
				if isNotFound(err) {
					return fmt.Errorf("Error: No such container: %s", n)
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "Remove anonymous volumes associated with the container")
	cmd.Flags().BoolVarP(&link, "link", "l", false, "Remove the specified link")
	return cmd
}

func (c *Cli) newLogsCmd() *cobra.Command {
	var o client.ContainerLogsOptions
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			ctx := context.Background()
			info, err := api.ContainerInspect(ctx, args[0], client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			o.ShowStdout, o.ShowStderr = true, true
			r, err := api.ContainerLogs(ctx, info.Container.ID, o)
			if err != nil {
				return err
			}
			defer r.Close()
			if info.Container.Config.Tty {
				_, err = io.Copy(c.Out, r)
			} else {
				_, err = stdcopy.StdCopy(c.Out, c.Err, r)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&o.Follow, "follow", "f", false, "Follow log output")
	fl.StringVar(&o.Since, "since", "", "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)")
	fl.StringVar(&o.Until, "until", "", "Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)")
	fl.BoolVarP(&o.Timestamps, "timestamps", "t", false, "Show timestamps")
	fl.BoolVar(&o.Details, "details", false, "Show extra details provided to logs")
	fl.StringVarP(&o.Tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	return cmd
}

func (c *Cli) newTopCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Display the running processes of a container",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.ContainerTop(context.Background(), args[0], client.ContainerTopOptions{Arguments: args[1:]})
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(c.Out, 20, 1, 3, ' ', 0)
			fmt.Fprintln(w, strings.Join(res.Titles, "\t"))
			for _, p := range res.Processes {
				fmt.Fprintln(w, strings.Join(p, "\t"))
			}
			return w.Flush()
		},
	}
	cmd.Flags().SetInterspersed(false) // what follows the container is ps's: top c -o pid,comm
	return cmd
}

func (c *Cli) newWaitCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			var errs []string
			for _, n := range args {
				res := api.ContainerWait(context.Background(), n, client.ContainerWaitOptions{})
				select {
				case r := <-res.Result:
					fmt.Fprintf(c.Out, "%d\n", r.StatusCode)
				case err := <-res.Error:
					errs = append(errs, err.Error())
				}
			}
			if len(errs) > 0 {
				return errors.New(strings.Join(errs, "\n"))
			}
			return nil
		},
	}
}

func (c *Cli) newRenameCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			newName := strings.TrimSpace(args[1])
			if args[0] == "" || newName == "" {
				return errors.New("Error: Neither old nor new names may be empty")
			}
			if _, err := api.ContainerRename(context.Background(), args[0], client.ContainerRenameOptions{NewName: newName}); err != nil {
				return fmt.Errorf("%w\nError: failed to rename container named %s", err, args[0])
			}
			return nil
		},
	}
}

func (c *Cli) newPauseCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pause CONTAINER [CONTAINER...]",
		Short: "Pause all processes within one or more containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			return c.forEach(args, func(ctx context.Context, n string) error {
				_, err := api.ContainerPause(ctx, n, client.ContainerPauseOptions{})
				return err
			})
		},
	}
}

func (c *Cli) newUnpauseCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "unpause CONTAINER [CONTAINER...]",
		Short: "Unpause all processes within one or more containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			return c.forEach(args, func(ctx context.Context, n string) error {
				_, err := api.ContainerUnpause(ctx, n, client.ContainerUnpauseOptions{})
				return err
			})
		},
	}
}

func (c *Cli) newDiffCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "diff CONTAINER",
		Short: "Inspect changes to files or directories on a container's filesystem",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.ContainerDiff(context.Background(), args[0], client.ContainerDiffOptions{})
			if err != nil {
				return err
			}
			for _, ch := range res.Changes {
				fmt.Fprintf(c.Out, "%s %s\n", ch.Kind, ch.Path)
			}
			return nil
		},
	}
}

func (c *Cli) newExportCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [OPTIONS] CONTAINER",
		Short: "Export a container's filesystem as a tar archive",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := c.openOutput(output, "container")
			if err != nil {
				return err
			}
			defer w.Close()
			api, err := c.Client()
			if err != nil {
				return err
			}
			r, err := api.ContainerExport(context.Background(), args[0], client.ContainerExportOptions{})
			if err != nil {
				if output != "" {
					os.Remove(output)
				}
				return err
			}
			defer r.Close()
			if _, err := io.Copy(w, r); err != nil {
				return fmt.Errorf("failed to export container: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}

func (c *Cli) newCommitCmd() *cobra.Command {
	var o client.ContainerCommitOptions
	var pause bool
	cmd := &cobra.Command{
		Use:   "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Short: "Create a new image from a container's changes",
		Args:  requiresRangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			if len(args) == 2 {
				o.Reference = args[1]
			}
			o.NoPause = !pause
			res, err := api.ContainerCommit(context.Background(), args[0], o)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Out, res.ID)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&pause, "pause", "p", true, "Pause container during commit")
	cmd.Flags().StringVarP(&o.Comment, "message", "m", "", "Commit message")
	cmd.Flags().StringVarP(&o.Author, "author", "a", "", `Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")`)
	cmd.Flags().StringArrayVarP(&o.Changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	return cmd
}

func (c *Cli) newContainerPruneCmd() *cobra.Command {
	var force bool
	filter := opts.NewFilterOpt()
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all stopped containers",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force && !c.confirm("WARNING! This will remove all stopped containers.") {
				return nil
			}
			space, out, err := c.pruneContainers(filter.Value())
			if err != nil {
				return err
			}
			fmt.Fprint(c.Out, out)
			fmt.Fprintln(c.Out, "Total reclaimed space:", units.HumanSize(float64(space)))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(&filter, "filter", "Provide filter values (e.g. 'until=<timestamp>')")
	return cmd
}

func (c *Cli) pruneContainers(f client.Filters) (uint64, string, error) {
	api, err := c.Client()
	if err != nil {
		return 0, "", err
	}
	res, err := api.ContainerPrune(context.Background(), client.ContainerPruneOptions{Filters: f})
	if err != nil {
		return 0, "", err
	}
	var b strings.Builder
	if len(res.Report.ContainersDeleted) > 0 {
		b.WriteString("Deleted Containers:\n")
		for _, id := range res.Report.ContainersDeleted {
			b.WriteString(id + "\n")
		}
		b.WriteString("\n")
	}
	return res.Report.SpaceReclaimed, b.String(), nil
}

// timeoutFlags are stop's and restart's -t: --timeout, and --time, its
// older name, hidden as docker hides it. Unset, the daemon uses the
// container's --stop-timeout (default 10 s).
func timeoutFlags(fs *pflag.FlagSet, timeout *int) {
	fs.IntVarP(timeout, "timeout", "t", 0, "Seconds to wait before killing the container")
	fs.IntVar(timeout, "time", 0, "Seconds to wait before killing the container (deprecated: use --timeout)")
	_ = fs.MarkHidden("time")
}
