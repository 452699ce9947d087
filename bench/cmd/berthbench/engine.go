package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/bench"
	"github.com/berth-dev/berth/internal/testutil/images"
)

type engineFlags struct {
	binDir                                    string
	runN, concurrentN, floorN, memN, profileN int
	buildN                                    int
	named                                     bool
	// berthdArgs are extra berthd flags (-berthd-args).
	berthdArgs []string
}

// runEngine measures the engines: berthd (with the berth and the docker
// CLI) against a private dockerd and podman, each with busybox loaded
// from the fixture's docker-archive (offline).
func runEngine(b *strings.Builder, f engineFlags, work, only string) error {
	img, err := images.CachedBusybox(images.BusyboxOptions{})
	if err != nil {
		return fmt.Errorf("busybox image: %w", err)
	}
	bin, err := filepath.Abs(f.binDir)
	if err != nil {
		return err
	}
	cfg := bench.EngineConfig{BinDir: bin, Archive: img.Archive, BerthdArgs: f.berthdArgs}
	systems := filter(bench.EngineSystems(cfg), only)
	runRm, concurrent := bench.Engine(cfg, f.named)
	b.WriteString("## Engine: berthd vs dockerd 20.10 vs podman\n\n")
	b.WriteString("berth = berthd + the berth CLI; berthd+docker-cli = the same daemon driven by Debian's docker CLI 20.10 (separates the CLI's cost); docker = a private dockerd 20.10 (overlay2) + docker CLI 20.10; podman = podman with private roots (overlay, cgroupfs, crun; `--ulimit nofile=1024:1024 --ulimit nproc=4096:4096` because its defaults exceed this host's hard limits). Every container has `--network none`.\n\n")
	// A count of 0 leaves that part out.
	if f.runN > 0 {
		if err := runSuite(b, f.runN, work, systems, []bench.Scenario{runRm}); err != nil {
			return err
		}
	}
	if f.concurrentN > 0 {
		if err := runSuite(b, f.concurrentN, work, systems, []bench.Scenario{concurrent}); err != nil {
			return err
		}
	}
	if f.concurrentN > 0 && f.floorN > 0 && len(filter([]bench.System{{Name: bench.SysBerth}}, only)) == 1 {
		fmt.Fprintf(os.Stderr, "engine: floor of %d concurrent runs, %d iterations\n", bench.ConcurrentN, f.floorN)
		loadBefore := loadavg()
		fl, err := bench.MeasureFloor(cfg, work, fmt.Sprintf("bb%d-floor", os.Getpid()), bench.ConcurrentN, f.floorN)
		if err != nil {
			// The engines' own figures stand without it.
			fmt.Fprintf(b, "The floor under the %d concurrent runs could not be measured: %v\n\n", bench.ConcurrentN, err)
		} else {
			fmt.Fprintf(b, "The floor under the %d concurrent runs on this host, whatever the engine: its two parts that no engine avoids, timed alone and together (%d iterations, in alternation; load average %s before, %s after). A client process per container making one API round trip (berth's CLI, the official moby client), and the kernel building each container's walls, here by %s, the fastest OCI runtime on this host (C; no daemon, shim, image store, overlay or seccomp), with the scenario's namespaces on a read-only busybox directory.\n\n", bench.ConcurrentN, f.floorN, loadBefore, loadavg(), fl.Runtime)
			if err := bench.WriteFloorMarkdown(b, fl); err != nil {
				return err
			}
		}
	}
	// One CLI per engine suffices for memory: berthd+docker-cli runs the
	// same daemon and shims as berth.
	var memSystems []bench.System
	for _, s := range systems {
		if s.Name != bench.SysBerthDocker {
			memSystems = append(memSystems, s)
		}
	}
	if len(memSystems) > 0 && f.memN > 0 {
		fmt.Fprintf(os.Stderr, "engine memory: %d containers per engine\n", f.memN)
		loadBefore := loadavg()
		res := bench.MeasureMemories(cfg, memSystems, work, fmt.Sprintf("bb%d", os.Getpid()), f.memN, 2*time.Second)
		fmt.Fprintf(b, "load average %s before, %s after\n\n", loadBefore, loadavg())
		if err := bench.WriteMemoryMarkdown(b, f.memN, res); err != nil {
			return err
		}
		b.WriteString("podman has no daemon: each `podman` command is the whole engine for its duration, and conmon stays per container.\n\n")
	}
	if len(filter([]bench.System{{Name: bench.SysBerth}}, only)) == 1 && f.profileN > 0 {
		fmt.Fprintf(os.Stderr, "engine: profile of berth run --rm, %d runs\n", f.profileN)
		dir := filepath.Join(work, "profile")
		p, err := bench.ProfileRunRm(cfg, dir, fmt.Sprintf("bb%d-prof", os.Getpid()), f.profileN)
		if err != nil {
			fmt.Fprintf(b, "Profile of berth run --rm failed: %v\n\n", err)
			return nil
		}
		if err := bench.WriteProfileMarkdown(b, p); err != nil {
			return err
		}
	}
	return nil
}
