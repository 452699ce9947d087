package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/testutil/fixture"
)

// Floor is the least any engine can take on this host for N concurrent
// `run -d` driven by N client processes, measured from its two parts that
// no engine avoids: one client process per container making an API round
// trip, and the kernel building each container's walls. The walls are
// built by crun, the fastest OCI runtime here (C, no daemon, no shim, no
// image store, no seccomp), on a plain read-only busybox directory.
type Floor struct {
	N       int
	Runtime string
	// Clients is N concurrent `berth version` against berthd: client
	// start-up and one API round trip each.
	Clients Stats
	// Walls is N concurrent `crun run -d` of busybox sleep.
	Walls Stats
	// Both is the two at once (2N processes), the floor of the scenario.
	Both Stats
}

// MeasureFloor measures Floor with n containers, iterations times each
// part, parts in alternation. dir is scratch space; prefix names the
// cgroups.
func MeasureFloor(cfg EngineConfig, dir, prefix string, n, iterations int) (Floor, error) {
	f := Floor{N: n, Runtime: "crun"}
	crun, err := exec.LookPath("crun")
	if err != nil {
		return f, fmt.Errorf("floor: %w", err)
	}
	if out, err := exec.Command(crun, "--version").Output(); err == nil {
		f.Runtime = strings.SplitN(string(out), "\n", 2)[0]
	}
	e, err := startBerthd(cfg, SysBerth, prefix)
	if err != nil {
		return f, fmt.Errorf("floor: %w", err)
	}
	defer e.stop()
	walls, err := newWalls(crun, filepath.Join(dir, "floor"), prefix, n)
	if err != nil {
		return f, fmt.Errorf("floor: %w", err)
	}
	defer walls.remove()
	clients := func(ctx context.Context) []*exec.Cmd {
		cmds := make([]*exec.Cmd, n)
		for i := range cmds {
			cmds[i] = e.command(ctx, "version")
		}
		return cmds
	}
	parts := []struct {
		into *Stats
		cmds func(ctx context.Context) []*exec.Cmd
	}{
		{&f.Clients, clients},
		{&f.Walls, walls.commands},
		{&f.Both, func(ctx context.Context) []*exec.Cmd { return append(clients(ctx), walls.commands(ctx)...) }},
	}
	times := make([][]time.Duration, len(parts))
	for range iterations {
		for i, p := range parts {
			d, err := runAtOnce(walls.dir, p.cmds)
			if rerr := walls.remove(); rerr != nil && err == nil {
				err = rerr
			}
			if err != nil {
				return f, fmt.Errorf("floor: %w", err)
			}
			times[i] = append(times[i], d)
		}
	}
	for i, p := range parts {
		*p.into = Summarize(times[i])
	}
	return f, nil
}

// runAtOnce starts every command at once and times until all have exited.
// Their output goes to files, not pipes: a detached container inherits
// its runtime's stdio and would hold a pipe open for its whole life.
func runAtOnce(dir string, cmds func(ctx context.Context) []*exec.Cmd) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	list := cmds(ctx)
	errs := make([]error, len(list))
	outs := make([]*os.File, len(list))
	for i, c := range list {
		f, err := os.CreateTemp(dir, "out")
		if err != nil {
			return 0, err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		c.Stdout, c.Stderr, outs[i] = f, f, f
	}
	d, _ := timed(func() error {
		var wg sync.WaitGroup
		for i, c := range list {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = c.Run()
			}()
		}
		wg.Wait()
		return nil
	})
	for i, err := range errs {
		if err != nil {
			out, _ := os.ReadFile(outs[i].Name())
			errs[i] = fmt.Errorf("%s: %v: %s", strings.Join(list[i].Args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return d, errors.Join(errs...)
}

// walls are n crun bundles of `sleep 1000` sharing one busybox rootfs.
type walls struct {
	crun, dir, state string
	ids, dirs        []string
}

func newWalls(crun, dir, prefix string, n int) (*walls, error) {
	rootfs := filepath.Join(dir, "rootfs")
	if err := fixture.NewBusyboxRootfs(rootfs); err != nil {
		return nil, err
	}
	w := &walls{crun: crun, dir: dir, state: filepath.Join(dir, "state")}
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		b, err := bundleIn(filepath.Join(dir, id), id, rootfs, "sleep", "1000")
		if err != nil {
			return nil, err
		}
		w.ids = append(w.ids, id)
		w.dirs = append(w.dirs, b.Dir)
	}
	return w, nil
}

func (w *walls) commands(ctx context.Context) []*exec.Cmd {
	cmds := make([]*exec.Cmd, len(w.ids))
	for i, id := range w.ids {
		cmds[i] = exec.CommandContext(ctx, w.crun, "--root", w.state, "run", "--detach", "--bundle", w.dirs[i], id)
	}
	return cmds
}

// remove force-deletes every container (those that are not there fail,
// and are not an error).
func (w *walls) remove() error {
	var errs []error
	for _, id := range w.ids {
		out, err := exec.Command(w.crun, "--root", w.state, "delete", "--force", id).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "does not exist") {
			errs = append(errs, fmt.Errorf("crun delete %s: %v: %s", id, err, strings.TrimSpace(string(out))))
		}
	}
	return errors.Join(errs...)
}

// WriteFloorMarkdown writes the floor as a table.
func WriteFloorMarkdown(w io.Writer, f Floor) error {
	_, err := fmt.Fprintf(w, "| part (%d at once) | median | min | max |\n|---|---:|---:|---:|\n", f.N)
	if err != nil {
		return err
	}
	rows := []struct {
		name string
		s    Stats
	}{
		{fmt.Sprintf("%d × `berth version` (client start-up + one API round trip)", f.N), f.Clients},
		{fmt.Sprintf("%d × `crun run -d` busybox sleep (the walls: %s)", f.N, f.Runtime), f.Walls},
		{"both at once: the floor", f.Both},
	}
	for _, r := range rows {
		if _, err := fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.name, ms(r.s.Median), ms(r.s.Min), ms(r.s.Max)); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintln(w)
	return err
}
