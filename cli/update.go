package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/docker/cli/opts"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/runopts"
)

// newUpdateCmd is `update`: new limits (and restart policy) for one or
// more containers, applied at once to running ones.
func (c *Cli) newUpdateCmd() *cobra.Command {
	var (
		blkioWeight                               uint16
		cpuPeriod, cpuQuota, cpuRtPeriod, cpuRtRt int64
		cpuShares, pidsLimit                      int64
		cpus                                      opts.NanoCPUs
		cpusetCpus, cpusetMems, restart           string
		memory, memReservation, memSwap, kernMem  opts.MemBytes
	)
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Update configuration of one or more containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().NFlag() == 0 {
				return errors.New("you must provide one or more flags when using this command")
			}
			if kernMem != 0 {
				fmt.Fprintln(c.Err, "WARNING: --kernel-memory: kernel memory limits are not supported by the daemon API any more; the limit is discarded.")
			}
			r := &container.Resources{
				BlkioWeight: blkioWeight, CPUPeriod: cpuPeriod, CPUQuota: cpuQuota,
				CPURealtimePeriod: cpuRtPeriod, CPURealtimeRuntime: cpuRtRt, CPUShares: cpuShares,
				NanoCPUs: cpus.Value(), CpusetCpus: cpusetCpus, CpusetMems: cpusetMems,
				Memory: memory.Value(), MemoryReservation: memReservation.Value(), MemorySwap: memSwap.Value(),
			}
			if cmd.Flags().Changed("pids-limit") {
				r.PidsLimit = &pidsLimit
			}
			o := client.ContainerUpdateOptions{Resources: r}
			if cmd.Flags().Changed("restart") {
				p, err := runopts.ParseRestartPolicy(restart)
				if err != nil {
					return err
				}
				o.RestartPolicy = &p
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			return c.forEach(args, func(ctx context.Context, n string) error {
				res, err := api.ContainerUpdate(ctx, n, o)
				for _, w := range res.Warnings {
					fmt.Fprintln(c.Err, w)
				}
				return err
			})
		},
	}
	fs := cmd.Flags()
	fs.Uint16Var(&blkioWeight, "blkio-weight", 0, "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)")
	fs.Int64Var(&cpuPeriod, "cpu-period", 0, "Limit CPU CFS (Completely Fair Scheduler) period")
	fs.Int64Var(&cpuQuota, "cpu-quota", 0, "Limit CPU CFS (Completely Fair Scheduler) quota")
	fs.Int64Var(&cpuRtPeriod, "cpu-rt-period", 0, "Limit the CPU real-time period in microseconds")
	fs.Int64Var(&cpuRtRt, "cpu-rt-runtime", 0, "Limit the CPU real-time runtime in microseconds")
	fs.Int64VarP(&cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fs.Var(&cpus, "cpus", "Number of CPUs")
	fs.StringVar(&cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	fs.StringVar(&cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	fs.VarP(&memory, "memory", "m", "Memory limit")
	fs.Var(&memReservation, "memory-reservation", "Memory soft limit")
	fs.Var(&memSwap, "memory-swap", "Swap limit equal to memory plus swap: -1 to enable unlimited swap")
	fs.Var(&kernMem, "kernel-memory", "Kernel memory limit (deprecated)")
	fs.Int64Var(&pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	fs.StringVar(&restart, "restart", "", "Restart policy to apply when a container exits")
	return cmd
}
