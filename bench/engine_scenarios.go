package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// ConcurrentN is how many containers the concurrent scenario starts: the
// issue's 50.
const ConcurrentN = 50

// Engine returns the engine scenarios: `run --rm` end to end and
// ConcurrentN concurrent detached runs.
func Engine(cfg EngineConfig, named bool) (runRm, concurrent Scenario) {
	return RunRmScenario{Config: cfg}, ConcurrentRunScenario{Config: cfg, N: ConcurrentN, Named: named}
}

// engineTrial owns one engine for a scenario.
type engineTrial struct {
	e   *engine
	run func() ([]Sample, error)
}

func (t *engineTrial) Run() ([]Sample, error) { return t.run() }
func (t *engineTrial) Teardown() error        { return t.e.stop() }

// RunRmScenario times `run --rm --network none busybox true` with the
// engine's CLI, from exec to exit: CLI start-up, every API call, the
// container's whole life and its removal.
type RunRmScenario struct{ Config EngineConfig }

// Name says what runs.
func (RunRmScenario) Name() string { return "run --rm --network none busybox true (CLI wall time)" }

// Setup starts the engine and loads busybox (untimed).
func (s RunRmScenario) Setup(env *Env) (Trial, error) {
	e, err := startEngine(s.Config, env.System.Name, env.Dir, env.Prefix)
	if err != nil {
		return nil, err
	}
	args := e.runArgs("--rm", "--network", "none", "busybox", "true")
	// One untimed run first: the first container of an engine pays for
	// lazily built state (pools, caches) that a user pays once.
	if _, err := e.cli(args...); err != nil {
		e.stop()
		return nil, err
	}
	return &engineTrial{e: e, run: func() ([]Sample, error) {
		d, err := timed(func() error { _, err := e.cli(args...); return err })
		if err != nil {
			e.removeAll()
			return nil, err
		}
		return []Sample{{D: d}}, nil
	}}, nil
}

// ConcurrentRunScenario starts N `run -d busybox sleep 1000` at once, each
// its own CLI process, and times until every CLI returned and `ps` shows
// N running; removing them is untimed.
type ConcurrentRunScenario struct {
	Config EngineConfig
	N      int
	// Named gives every container a --name instead of a generated one.
	Named bool
}

// Name says how many.
func (s ConcurrentRunScenario) Name() string {
	name := fmt.Sprintf("%d × run -d --network none busybox sleep 1000 concurrently, until all running", s.N)
	if s.Named {
		name += " (each with --name)"
	}
	return name
}

// Setup starts the engine and loads busybox (untimed).
func (s ConcurrentRunScenario) Setup(env *Env) (Trial, error) {
	e, err := startEngine(s.Config, env.System.Name, env.Dir, env.Prefix)
	if err != nil {
		return nil, err
	}
	iteration := 0
	return &engineTrial{e: e, run: func() ([]Sample, error) {
		iteration++
		args := func(i int) []string {
			a := []string{"-d", "--network", "none"}
			if s.Named {
				a = append(a, "--name", fmt.Sprintf("%s-%d-%d", validName(env.Prefix), iteration, i))
			}
			return e.runArgs(append(a, "busybox", "sleep", "1000")...)
		}
		d, err := timed(func() error { return startConcurrently(e, s.N, args) })
		if rerr := e.removeAll(); rerr != nil && err == nil {
			err = fmt.Errorf("cleanup: %w", rerr)
		}
		if err != nil {
			return nil, err
		}
		return []Sample{{D: d}}, nil
	}}, nil
}

// startConcurrently runs n CLI processes with args(i) at once, then polls
// ps until n containers run. Every failure is logged in full to stderr
// (the table gets the first, shortened).
func startConcurrently(e *engine, n int, args func(i int) []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.command(ctx, args(i)...)
			var stderr strings.Builder
			c.Stderr = &stderr
			if err := c.Run(); err != nil {
				errs[i] = fmt.Errorf("%s run -d #%d: %v: %s", e.name, i, err, strings.TrimSpace(stderr.String()))
				fmt.Fprintln(os.Stderr, errs[i])
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	for {
		got, err := e.running()
		if err != nil {
			return err
		}
		if got >= n {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %d of %d containers running after 5 minutes", e.name, got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// validName keeps only the characters container names may hold.
func validName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, s)
}
