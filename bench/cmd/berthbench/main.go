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
)

func main() {
	n := flag.Int("n", 30, "iterations per scenario and system")
	berth := flag.String("berth", "bin/berth-runtime", "path of the berth-runtime binary")
	out := flag.String("out", "bench/results/latest.md", "write the table here too (empty: stdout only)")
	only := flag.String("systems", "", "comma-separated systems to run (default: all)")
	flag.Parse()
	if err := run(*n, *berth, *out, *only); err != nil {
		fmt.Fprintln(os.Stderr, "berthbench:", err)
		os.Exit(1)
	}
}

func run(n int, berth, out, only string) error {
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

	systems := bench.FindSystems(berth)
	if only != "" {
		var keep []bench.System
		for _, s := range systems {
			for _, name := range strings.Split(only, ",") {
				if s.Name == strings.TrimSpace(name) {
					keep = append(keep, s)
				}
			}
		}
		systems = keep
	}
	for _, s := range systems {
		if s.Missing != "" {
			fmt.Fprintf(os.Stderr, "note: %s skipped: %s\n", s.Name, s.Missing)
		}
	}
	loadBefore := loadavg()
	start := time.Now()
	results := bench.Run(bench.Config{N: n, WorkDir: work, Log: os.Stderr}, systems, bench.Lifecycle())

	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# berthbench %s\n\nhost %s, %d CPUs, %s, took %s; load average %s before, %s after (other work on the machine skews the figures)\n\n",
		time.Now().UTC().Format(time.RFC3339), host, runtime.NumCPU(), versions(systems), time.Since(start).Round(time.Second), loadBefore, loadavg())
	if err := bench.WriteMarkdown(&b, n, systems, results); err != nil {
		return err
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
