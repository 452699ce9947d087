package bench

import (
	"fmt"
	"os"
	"path/filepath"
)

// SysDockerBuildKit is the private dockerd building with BuildKit (the
// docker CLI with DOCKER_BUILDKIT=1); every other docker-CLI system builds
// with the classic builder (DOCKER_BUILDKIT=0), the protocol berthd
// speaks.
const SysDockerBuildKit = "docker-buildkit"

// BuildSystems are the engines of the build suite: berth, berthd with the
// docker CLI, dockerd's classic builder, dockerd's BuildKit and podman.
func BuildSystems(cfg EngineConfig) []System {
	var out []System
	for _, s := range EngineSystems(cfg) {
		out = append(out, s)
		if s.Name == SysDocker {
			bk := s
			bk.Name = SysDockerBuildKit
			out = append(out, bk)
		}
	}
	return out
}

// BuildDockerfile is the small Dockerfile: FROM busybox, three
// RUN steps and one COPY.
const BuildDockerfile = `FROM busybox
RUN echo one > /one
RUN echo two > /two
COPY f /f
RUN cat /one /two /f > /all
`

// BuildScenario times `build` of BuildDockerfile with the engine's CLI:
// cold (--no-cache), fully cached, and after changing the copied file
// (the COPY and the RUN after it run again).
type BuildScenario struct{ Config EngineConfig }

// Name says what is built.
func (BuildScenario) Name() string { return "build: FROM busybox + 3 RUN + 1 COPY (CLI wall time)" }

// Setup starts the engine, loads busybox and builds once (untimed).
func (s BuildScenario) Setup(env *Env) (Trial, error) {
	name := env.System.Name
	kit := "0"
	if name == SysDockerBuildKit {
		name, kit = SysDocker, "1"
	}
	e, err := startEngine(s.Config, name, env.Dir, env.Prefix)
	if err != nil {
		return nil, err
	}
	e.env = append(e.env, "DOCKER_BUILDKIT="+kit)
	ctxDir := filepath.Join(env.Dir, "build-context")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		e.stop()
		return nil, err
	}
	write := func(name, content string) error {
		return os.WriteFile(filepath.Join(ctxDir, name), []byte(content), 0o644)
	}
	if err := write("Dockerfile", BuildDockerfile); err != nil {
		e.stop()
		return nil, err
	}
	if err := write("f", "first\n"); err != nil {
		e.stop()
		return nil, err
	}
	build := func(args ...string) error {
		// RUN without a network everywhere (the private dockerd has no
		// bridge; berthd's default).
		_, err := e.cli(append(append([]string{"build", "-q", "--network", "none", "-t", "bench-build"}, args...), ctxDir)...)
		return err
	}
	if err := build(); err != nil {
		e.stop()
		return nil, err
	}
	n := 0
	return &engineTrial{e: e, run: func() ([]Sample, error) {
		var out []Sample
		for _, p := range []struct {
			phase  string
			before func() error
			args   []string
		}{
			{"cold", nil, []string{"--no-cache"}},
			{"cached", nil, nil},
			{"one file changed", func() error { n++; return write("f", fmt.Sprintf("change %d\n", n)) }, nil},
		} {
			if p.before != nil {
				if err := p.before(); err != nil {
					return nil, err
				}
			}
			d, err := timed(func() error { return build(p.args...) })
			if err != nil {
				return nil, err
			}
			out = append(out, Sample{Phase: p.phase, D: d})
		}
		// Untimed: the next trial's "cached" must find this state again.
		return out, build()
	}}, nil
}
