// Package bench measures Berth side by side with its anchors (runc, crun;
// later dockerd and podman). A Scenario is set up once per system, run N
// times with the systems in alternation (A B A B ...) so drift on the
// machine hits all of them alike, and reported as a Markdown table of
// medians with ratios against each anchor.
package bench

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/testutil/fixture"
)

// System is one thing under measurement: a runc-compatible runtime binary.
type System struct {
	// Name labels the system in the report ("berth-runtime", "runc").
	Name string
	// Binary is the executable path.
	Binary string
	// Anchor systems are the ones others are compared against.
	Anchor bool
	// Missing, when set, says why the system cannot be measured.
	Missing string
}

// Env is what a scenario gets for one system: the system, a runner whose
// --root is private to this system and scenario, a scratch dir and a
// prefix that makes container ids and cgroup names unique to the run.
type Env struct {
	System System
	RT     *fixture.Runner
	Dir    string
	Prefix string
}

// ID returns a container id unique to this run, system and name.
func (e *Env) ID(name string) string { return e.Prefix + "-" + name }

// Sample is one timed phase of one iteration ("run", "create", ...).
type Sample struct {
	Phase string
	D     time.Duration
}

// Scenario is one benchmark. Setup prepares a Trial for one system
// (untimed); the Trial's Run is called N times and returns its timed
// phases; Teardown removes everything the trial made.
type Scenario interface {
	Name() string
	Setup(env *Env) (Trial, error)
}

// Trial is a scenario set up for one system.
type Trial interface {
	// Run performs one iteration. It must leave no container behind, even
	// on error.
	Run() ([]Sample, error)
	// Teardown removes what Setup made.
	Teardown() error
}

// FindSystems returns berth-runtime (at berthPath) and the anchors runc and
// crun, marking missing binaries.
func FindSystems(berthPath string) []System {
	systems := []System{{Name: "berth-runtime", Binary: berthPath}}
	for _, a := range []string{"runc", "crun"} {
		systems = append(systems, System{Name: a, Binary: a, Anchor: true})
	}
	for i := range systems {
		p, err := exec.LookPath(systems[i].Binary)
		if err != nil {
			systems[i].Missing = fmt.Sprintf("binary %q not found", systems[i].Binary)
			continue
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		systems[i].Binary = p
	}
	return systems
}

// Result holds the samples of one scenario phase for one system, or the
// error that stopped it.
type Result struct {
	Scenario, Phase, System string
	Samples                 []time.Duration
	Err                     string
}

// Version returns the first line of `<binary> --version`, or "?".
func Version(s System) string {
	if s.Binary == "" {
		return "(in process)"
	}
	out, err := exec.Command(s.Binary, "--version").Output()
	if err != nil {
		return "?"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}
