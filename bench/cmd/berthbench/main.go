// Command berthbench runs Berth's side-by-side benchmarks against runc and
// crun and prints a Markdown table (also written to -out).
//
//	berthbench [-n 30] [-berth bin/berth-runtime] [-out bench/results/latest.md]
//
// It installs nothing (make bench does) and must run as root.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/berth-dev/berth/bench"
	"github.com/berth-dev/berth/internal/testutil/images"
	"github.com/berth-dev/berth/internal/testutil/scratchfs"
)

func main() {
	n := flag.Int("n", 30, "iterations per scenario and system")
	berth := flag.String("berth", "bin/berth-runtime", "path of the berth-runtime binary")
	out := flag.String("out", "bench/results/latest.md", "write the table here too (empty: stdout only)")
	only := flag.String("systems", "", "comma-separated systems to run (default: all)")
	suites := flag.String("suites", "runtime,pull,engine,build,network", "which suites: runtime (lifecycle vs runc, crun), pull (vs skopeo, podman, docker), engine (berthd vs dockerd, podman), build (vs docker's classic builder and BuildKit, podman), network (published ports, throughput, DNS vs dockerd, podman, the host network)")
	pullN := flag.Int("pull-n", 5, "iterations of each pull scenario")
	eng := engineFlags{}
	flag.IntVar(&eng.runN, "engine-n", 20, "iterations of the engine's run --rm scenario")
	flag.IntVar(&eng.concurrentN, "concurrent-n", 3, "iterations of the engine's 50 concurrent runs")
	flag.BoolVar(&eng.named, "concurrent-named", false, "give the concurrent containers names (works around generated-name races)")
	flag.IntVar(&eng.floorN, "floor-n", 3, "iterations of the floor under the 50 concurrent runs")
	flag.IntVar(&eng.memN, "mem-n", 10, "running containers for the memory measure")
	flag.IntVar(&eng.profileN, "profile-n", 10, "iterations of the run --rm profile")
	flag.IntVar(&eng.buildN, "build-n", 5, "iterations of the build suite")
	nf := netFlags{}
	flag.IntVar(&nf.startN, "net-start-n", 10, "iterations of the network suite's start with a published port")
	flag.IntVar(&nf.throughputN, "net-throughput-n", 5, "iterations of the network suite's wrk runs (per address)")
	flag.IntVar(&nf.dnsN, "net-dns-n", 5, "iterations of the network suite's DNS runs")
	flag.IntVar(&nf.lookups, "net-lookups", 200, "lookups per DNS run")
	flag.DurationVar(&nf.duration, "net-duration", 3*time.Second, "length of each wrk run (whole seconds)")
	berthdArgs := flag.String("berthd-args", "", "extra berthd flags, space-separated (e.g. --no-socket-redirect)")
	flag.Parse()
	eng.berthdArgs = strings.Fields(*berthdArgs)
	eng.binDir = filepath.Dir(*berth)
	if err := run(*n, *pullN, eng, nf, *berth, *out, *only, *suites); err != nil {
		fmt.Fprintln(os.Stderr, "berthbench:", err)
		os.Exit(1)
	}
}

func run(n, pullN int, eng engineFlags, nf netFlags, berth, out, only, suites string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root")
	}
	work, err := os.MkdirTemp("", "berthbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}

	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# berthbench %s\n\nhost %s, %d CPUs\n\n", time.Now().UTC().Format(time.RFC3339), host, runtime.NumCPU())
	// What the host charges for the work every container start repeats:
	// the floor under the engine's figures, and what differs most between
	// a virtualised host and bare metal.
	if c, err := bench.MeasureHostCosts("/bin/true"); err != nil {
		fmt.Fprintf(&b, "host costs: %v\n\n", err)
	} else {
		fmt.Fprintf(&b, "host costs: %s\n\n", c)
	}
	for _, suite := range strings.Split(suites, ",") {
		var err error
		switch strings.TrimSpace(suite) {
		case "runtime":
			err = runSuite(&b, n, work, filter(bench.FindSystems(berth), only), bench.Lifecycle())
		case "pull":
			err = runPull(&b, pullN, work, only)
		case "engine":
			err = runEngine(&b, eng, work, only)
		case "build":
			err = runBuild(&b, eng, work, only)
		case "network":
			err = runNetwork(&b, eng, nf, work, only)
		default:
			err = fmt.Errorf("unknown suite %q", suite)
		}
		if err != nil {
			return err
		}
	}
	fmt.Print(b.String())
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, []byte(b.String()), 0o644)
	}
	return nil
}

// runSuite runs scenarios for systems and appends their table to b.
func runSuite(b *strings.Builder, n int, work string, systems []bench.System, scenarios []bench.Scenario) error {
	for _, s := range systems {
		if s.Missing != "" {
			fmt.Fprintf(os.Stderr, "note: %s skipped: %s\n", s.Name, s.Missing)
		}
	}
	loadBefore := loadavg()
	start := time.Now()
	results := bench.Run(bench.Config{N: n, WorkDir: work, Log: os.Stderr}, systems, scenarios)
	fmt.Fprintf(b, "%s; took %s; load average %s before, %s after (other work on the machine skews the figures)\n\n",
		versions(systems), time.Since(start).Round(time.Second), loadBefore, loadavg())
	if err := bench.WriteMarkdown(b, n, systems, results); err != nil {
		return err
	}
	b.WriteString("\n")
	return nil
}

// runPull measures pulls of generated images from a loopback registry,
// cold and with the first half of the layers already present: a 3-layer
// one of 51 MB compressed (the size of the Debian minbase image the issue
// measured) and
// the 20-layer ~200 MB test image, both gzip like nearly every image on a
// registry (Debian's dockerd 20.10 fails on the fixture's zstd layers with
// "invalid tar header", so the tests, not the bench, cover zstd).
func runPull(b *strings.Builder, n int, work, only string) error {
	scratch, err := scratchfs.New(work, 32<<30)
	if err != nil {
		return err
	}
	defer scratch.Close()
	var scenarios []bench.Scenario
	for i, spec := range []images.Spec{
		{Seed: 1, Layers: 3, Size: 80 << 20, Compressions: []images.Compression{images.Gzip}},
		{Seed: 2, Layers: 20, Size: 200 << 20, Compressions: []images.Compression{images.Gzip}},
	} {
		sc, err := bench.NewPullScenario(filepath.Join(work, fmt.Sprintf("registry%d", i)), spec)
		if err != nil {
			return err
		}
		defer sc.Close()
		scenarios = append(scenarios, sc, sc.HalfPresent())
	}
	// dockerd.Launch puts the private dockerd's data root under TMPDIR
	// (set after the images are generated: their cache is under TMPDIR too).
	defer os.Setenv("TMPDIR", os.Getenv("TMPDIR"))
	os.Setenv("TMPDIR", scratch.Dir)
	fmt.Fprintf(b, "Stores on a fresh journaled ext4 (loop device): see internal/testutil/scratchfs.\n\n")
	return runSuite(b, n, scratch.Dir, filter(bench.PullSystems(), only), scenarios)
}

func filter(systems []bench.System, only string) []bench.System {
	if only == "" {
		return systems
	}
	var keep []bench.System
	for _, s := range systems {
		for _, name := range strings.Split(only, ",") {
			if s.Name == strings.TrimSpace(name) {
				keep = append(keep, s)
			}
		}
	}
	return keep
}

func versions(systems []bench.System) string {
	var parts []string
	for _, s := range systems {
		if s.Missing == "" {
			parts = append(parts, s.Name+" "+bench.Version(s))
		}
	}
	return strings.Join(parts, ", ")
}

// loadavg returns the 1-minute load average from /proc/loadavg.
func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
