package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/runtime/linux"
)

// cmdUpdate is runc's `update`: new limits from a LinuxResources JSON
// document (--resources, "-" for stdin) or from flags; flags win.
func cmdUpdate(g *globals, args []string) error {
	fs := newFlags("update")
	resources := fs.String("resources", "", "LinuxResources JSON file, - for stdin")
	fs.StringVar(resources, "r", "", "LinuxResources JSON file, - for stdin")
	var set []func(*specs.LinuxResources) error
	intFlag := func(name string, apply func(*specs.LinuxResources, int64)) {
		fs.Func(name, name, func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("invalid --%s %q", name, v)
			}
			set = append(set, func(r *specs.LinuxResources) error { apply(r, n); return nil })
			return nil
		})
	}
	mem := func(r *specs.LinuxResources) *specs.LinuxMemory {
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		return r.Memory
	}
	cpu := func(r *specs.LinuxResources) *specs.LinuxCPU {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		return r.CPU
	}
	intFlag("memory", func(r *specs.LinuxResources, n int64) { mem(r).Limit = &n })
	intFlag("memory-swap", func(r *specs.LinuxResources, n int64) { mem(r).Swap = &n })
	intFlag("memory-reservation", func(r *specs.LinuxResources, n int64) { mem(r).Reservation = &n })
	intFlag("cpu-share", func(r *specs.LinuxResources, n int64) { u := uint64(n); cpu(r).Shares = &u })
	intFlag("cpu-shares", func(r *specs.LinuxResources, n int64) { u := uint64(n); cpu(r).Shares = &u })
	intFlag("cpu-quota", func(r *specs.LinuxResources, n int64) { cpu(r).Quota = &n })
	intFlag("cpu-period", func(r *specs.LinuxResources, n int64) { u := uint64(n); cpu(r).Period = &u })
	intFlag("pids-limit", func(r *specs.LinuxResources, n int64) { r.Pids = &specs.LinuxPids{Limit: &n} })
	intFlag("blkio-weight", func(r *specs.LinuxResources, n int64) {
		w := uint16(n)
		r.BlockIO = &specs.LinuxBlockIO{Weight: &w}
	})
	fs.Func("cpuset-cpus", "cpuset-cpus", func(v string) error {
		set = append(set, func(r *specs.LinuxResources) error { cpu(r).Cpus = v; return nil })
		return nil
	})
	fs.Func("cpuset-mems", "cpuset-mems", func(v string) error {
		set = append(set, func(r *specs.LinuxResources) error { cpu(r).Mems = v; return nil })
		return nil
	})
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	r := &specs.LinuxResources{}
	if *resources != "" {
		var in io.Reader = os.Stdin
		if *resources != "-" {
			f, err := os.Open(*resources)
			if err != nil {
				return fmt.Errorf("read resources: %w", err)
			}
			defer f.Close()
			in = f
		}
		if err := json.NewDecoder(in).Decode(r); err != nil {
			return fmt.Errorf("parse resources %s: %w", *resources, err)
		}
	}
	for _, f := range set {
		if err := f(r); err != nil {
			return err
		}
	}
	return linux.Update(g.root, fs.Arg(0), r)
}
