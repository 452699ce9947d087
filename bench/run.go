package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/testutil/fixture"
)

// Config controls a benchmark run.
type Config struct {
	// N is the number of iterations per scenario and system.
	N int
	// WorkDir is scratch space; the caller removes it.
	WorkDir string
	// Log receives progress lines.
	Log io.Writer
}

// Run runs every scenario for every system, alternating systems within
// each iteration, and returns the results in scenario order. A system that
// is missing, or whose Setup or Run fails, gets an error result and is left
// out of that scenario's remaining iterations; the others go on.
func Run(cfg Config, systems []System, scenarios []Scenario) []Result {
	// Not "berth...": test leak checks treat such names as the engine's.
	prefix := fmt.Sprintf("bb%d", os.Getpid())
	var results []Result
	for si, sc := range scenarios {
		type slot struct {
			sys   System
			trial Trial
			err   string
			by    map[string][]time.Duration
			order []string
		}
		slots := make([]*slot, len(systems))
		for i, sys := range systems {
			s := &slot{sys: sys, by: map[string][]time.Duration{}}
			slots[i] = s
			if sys.Missing != "" {
				s.err = "skipped: " + sys.Missing
				continue
			}
			dir := filepath.Join(cfg.WorkDir, fmt.Sprintf("s%d-%s", si, sys.Name))
			env := &Env{
				System: sys,
				RT:     &fixture.Runner{Binary: sys.Binary, Root: filepath.Join(dir, "state"), Timeout: 2 * time.Minute},
				Dir:    dir,
				Prefix: fmt.Sprintf("%s-%d%s", prefix, si, shortName(sys.Name)),
			}
			if err := os.MkdirAll(env.RT.Root, 0o700); err != nil {
				s.err = "error: " + err.Error()
				continue
			}
			t, err := sc.Setup(env)
			if err != nil {
				s.err = "error: setup: " + oneLine(err)
				continue
			}
			s.trial = t
		}
		for it := 0; it < cfg.N; it++ {
			for _, s := range slots {
				if s.trial == nil || s.err != "" {
					continue
				}
				samples, err := s.trial.Run()
				if err != nil {
					s.err = "error: " + oneLine(err)
					if cfg.Log != nil { // the table cell is cut short
						fmt.Fprintf(cfg.Log, "%s: %s: %v\n", sc.Name(), s.sys.Name, err)
					}
					continue
				}
				for _, smp := range samples {
					if _, ok := s.by[smp.Phase]; !ok {
						s.order = append(s.order, smp.Phase)
					}
					s.by[smp.Phase] = append(s.by[smp.Phase], smp.D)
				}
			}
			if cfg.Log != nil && (it+1)%10 == 0 {
				fmt.Fprintf(cfg.Log, "%s: %d/%d\n", sc.Name(), it+1, cfg.N)
			}
		}
		// Phases in the order the first successful system reported them.
		var phases []string
		for _, s := range slots {
			if s.trial != nil {
				if err := s.trial.Teardown(); err != nil && s.err == "" {
					s.err = "error: teardown: " + oneLine(err)
				}
			}
			if len(phases) == 0 && len(s.order) > 0 {
				phases = s.order
			}
		}
		if len(phases) == 0 {
			phases = []string{""}
		}
		for _, ph := range phases {
			for _, s := range slots {
				r := Result{Scenario: sc.Name(), Phase: ph, System: s.sys.Name, Samples: s.by[ph], Err: s.err}
				results = append(results, r)
			}
		}
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "%s: done\n", sc.Name())
		}
	}
	return results
}

func shortName(s string) string {
	switch s {
	case "berth-runtime":
		return "b"
	case "runc":
		return "r"
	case "crun":
		return "c"
	}
	return strings.ReplaceAll(s, "-", "")
}

// oneLine shortens err for a table cell, keeping the runtime's own message.
func oneLine(err error) string {
	msg := err.Error()
	var re *fixture.RunError
	if errors.As(err, &re) && len(re.Sub) > 0 {
		msg = re.Sub[0] + ": " + re.Err.Error() + ": " + re.Stderr
		if prefix, _, ok := strings.Cut(err.Error(), re.Args[0]); ok {
			msg = prefix + msg // keep "setup: " / "create: " context
		}
	}
	s := strings.Join(strings.Fields(msg), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}
