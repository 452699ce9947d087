package bench

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testutil/fixture"
)

// MemoryLimit is the memory limit of every benchmark container.
const MemoryLimit = 64 << 20

// Lifecycle returns the runtime lifecycle scenarios: run, create/start/
// delete, 20 concurrent containers, and exec.
func Lifecycle() []Scenario {
	return []Scenario{runScenario{}, splitScenario{}, concurrentScenario{N: 20}, execScenario{}}
}

// benchBundle writes a bundle for container id in env.Dir/<id>: pid, mount,
// uts, ipc and net namespaces, a 64 MiB memory limit, cgroup "/<id>". With
// rootfs set it shares that (read-only) rootfs, else it gets a busybox copy.
func benchBundle(env *Env, id, rootfs string, args ...string) (*fixture.Bundle, error) {
	return bundleIn(filepath.Join(env.Dir, id), id, rootfs, args...)
}

// bundleIn is benchBundle in dir.
func bundleIn(dir, id, rootfs string, args ...string) (*fixture.Bundle, error) {
	opts := []fixture.Option{
		fixture.WithArgs(args...),
		fixture.WithNamespaces(specs.PIDNamespace, specs.MountNamespace, specs.UTSNamespace, specs.IPCNamespace, specs.NetworkNamespace),
		fixture.WithMemoryLimit(MemoryLimit),
		fixture.WithCgroupsPath("/" + id),
	}
	if rootfs != "" {
		opts = append(opts, fixture.WithRootfs(rootfs), fixture.WithReadonlyRootfs(true))
	}
	return fixture.NewBundle(dir, opts...)
}

// forceDelete removes a container whatever its state, for error paths.
func forceDelete(env *Env, id string) { _, _, _ = env.RT.Run("delete", "--force", id) }

func timed(fn func() error) (time.Duration, error) {
	start := time.Now()
	err := fn()
	return time.Since(start), err
}

func run(env *Env, args ...string) func() error {
	return func() error { _, _, err := env.RT.Run(args...); return err }
}

// runScenario: `run` of /bin/true, foreground, until it has exited and
// been deleted.
type runScenario struct{}

func (runScenario) Name() string { return "run /bin/true" }

func (runScenario) Setup(env *Env) (Trial, error) {
	id := env.ID("run")
	b, err := benchBundle(env, id, "", "/bin/true")
	if err != nil {
		return nil, err
	}
	return &simpleTrial{run: func() ([]Sample, error) {
		d, err := timed(run(env, "run", "--bundle", b.Dir, id))
		if err != nil {
			forceDelete(env, id)
			return nil, err
		}
		return []Sample{{Phase: "", D: d}}, nil
	}}, nil
}

// splitScenario: create, start and delete timed separately; the wait for
// exit (state polling) between start and delete is not timed.
type splitScenario struct{}

func (splitScenario) Name() string { return "create/start/delete /bin/true" }

func (splitScenario) Setup(env *Env) (Trial, error) {
	id := env.ID("split")
	b, err := benchBundle(env, id, "", "/bin/true")
	if err != nil {
		return nil, err
	}
	return &simpleTrial{run: func() ([]Sample, error) {
		var out []Sample
		step := func(phase string, fn func() error) error {
			d, err := timed(fn)
			if err != nil {
				forceDelete(env, id)
				return err
			}
			out = append(out, Sample{Phase: phase, D: d})
			return nil
		}
		if err := step("create", run(env, "create", "--bundle", b.Dir, id)); err != nil {
			return nil, err
		}
		if err := step("start", run(env, "start", id)); err != nil {
			return nil, err
		}
		if err := env.RT.WaitStatus(id, "stopped", 10*time.Second); err != nil {
			forceDelete(env, id)
			return nil, err
		}
		if err := step("delete", run(env, "delete", id)); err != nil {
			return nil, err
		}
		return out, nil
	}}, nil
}

// concurrentScenario: N containers (sleep 1000) created and started at
// once; timed until all are started. They are then force-deleted, untimed.
type concurrentScenario struct{ N int }

func (c concurrentScenario) Name() string {
	return fmt.Sprintf("%d × create+start concurrently", c.N)
}

func (c concurrentScenario) Setup(env *Env) (Trial, error) {
	rootfs := filepath.Join(env.Dir, "rootfs")
	if err := fixture.NewBusyboxRootfs(rootfs); err != nil {
		return nil, err
	}
	ids := make([]string, c.N)
	dirs := make([]string, c.N)
	for i := range ids {
		ids[i] = env.ID(fmt.Sprintf("c%d", i))
		b, err := benchBundle(env, ids[i], rootfs, "sleep", "1000")
		if err != nil {
			return nil, err
		}
		dirs[i] = b.Dir
	}
	cleanAll := func() error {
		var wg sync.WaitGroup
		errs := make([]error, c.N)
		for i, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := env.RT.State(id); err != nil {
					return // not there
				}
				_, _, errs[i] = env.RT.Run("delete", "--force", id)
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	return &simpleTrial{run: func() ([]Sample, error) {
		errs := make([]error, c.N)
		d, _ := timed(func() error {
			var wg sync.WaitGroup
			for i := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, _, err := env.RT.Run("create", "--bundle", dirs[i], ids[i]); err != nil {
						errs[i] = err
						return
					}
					_, _, errs[i] = env.RT.Run("start", ids[i])
				}()
			}
			wg.Wait()
			return nil
		})
		cleanErr := cleanAll()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		if cleanErr != nil {
			return nil, fmt.Errorf("cleanup: %w", cleanErr)
		}
		return []Sample{{Phase: "", D: d}}, nil
	}, teardown: cleanAll}, nil
}

// execScenario: `exec ID true` into a running `sleep 1000` container
// started once per system.
type execScenario struct{}

func (execScenario) Name() string { return "exec true" }

func (execScenario) Setup(env *Env) (Trial, error) {
	id := env.ID("exec")
	b, err := benchBundle(env, id, "", "sleep", "1000")
	if err != nil {
		return nil, err
	}
	if _, _, err := env.RT.Run("run", "-d", "--bundle", b.Dir, id); err != nil {
		forceDelete(env, id)
		return nil, err
	}
	teardown := func() error {
		_, _, _ = env.RT.Run("kill", id, "KILL")
		_ = env.RT.WaitStatus(id, "stopped", 10*time.Second)
		if _, _, err := env.RT.Run("delete", id); err != nil {
			_, _, err = env.RT.Run("delete", "--force", id)
			return err
		}
		return nil
	}
	return &simpleTrial{run: func() ([]Sample, error) {
		d, err := timed(run(env, "exec", id, "true"))
		if err != nil {
			return nil, err
		}
		return []Sample{{Phase: "", D: d}}, nil
	}, teardown: teardown}, nil
}

// simpleTrial is a Trial made of two funcs.
type simpleTrial struct {
	run      func() ([]Sample, error)
	teardown func() error
}

func (t *simpleTrial) Run() ([]Sample, error) { return t.run() }

func (t *simpleTrial) Teardown() error {
	if t.teardown == nil {
		return nil
	}
	return t.teardown()
}
