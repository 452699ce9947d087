package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/testutil/berthd"
)

// RunProfile is where the time of berth's `run --rm busybox true` goes:
// the API calls of the CLI's sequence, made in process with the moby
// client, timed on a timeline shared with berthd's launches of berth-shim
// and berth-runtime (logged by wrappers), and the berth CLI end to end.
type RunProfile struct {
	N int
	// Steps are in the order of their median start.
	Steps []ProfileStep
	// Total is the in-process sequence, create request to removal seen.
	Total []time.Duration
	// CLI is `berth run --rm` end to end with the same daemon; Version is
	// `berth --version` (the CLI's process start-up, no API call); Ping
	// is one /_ping from a fresh in-process client (version negotiation).
	CLI, Version, Ping []time.Duration
}

// ProfileStep is one step: its offset from the create request and its
// duration (zero for instants) in every iteration.
type ProfileStep struct {
	Name            string
	Start, Duration []time.Duration
}

// wrapper scripts: bash's $EPOCHREALTIME costs no process.
const shimWrapper = `#!/bin/bash
printf '%%s %%s shim\n' "$EPOCHREALTIME" "$EPOCHREALTIME" >> %[1]s
exec %[2]s "$@"
`

const runtimeWrapper = `#!/bin/bash
s=$EPOCHREALTIME
%[2]s "$@"
rc=$?
printf '%%s %%s runtime %%s\n' "$s" "$EPOCHREALTIME" "$*" >> %[1]s
exit $rc
`

// ProfileRunRm runs berthd from a copy in dir whose berth-shim and
// berth-runtime are logging wrappers around cfg.BinDir's, then n times
// (after a warm-up) the CLI's run --rm sequence in process, the berth CLI
// and `berth --version`, alternating. Everything is removed on return.
func ProfileRunRm(cfg EngineConfig, dir, prefix string, n int) (*RunProfile, error) {
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return nil, err
	}
	log := filepath.Join(dir, "calls.log")
	// berthd looks for its siblings next to its resolved executable: a
	// copy, not a symlink.
	if err := copyFile(filepath.Join(cfg.BinDir, "berthd"), filepath.Join(bin, "berthd")); err != nil {
		return nil, err
	}
	if err := os.Symlink(filepath.Join(cfg.BinDir, "berth-init"), filepath.Join(bin, "berth-init")); err != nil {
		return nil, err
	}
	for name, script := range map[string]string{"berth-shim": shimWrapper, "berth-runtime": runtimeWrapper} {
		text := fmt.Sprintf(script, log, filepath.Join(cfg.BinDir, name))
		if err := os.WriteFile(filepath.Join(bin, name), []byte(text), 0o755); err != nil {
			return nil, err
		}
	}
	ddir, err := berthd.NewDir()
	if err != nil {
		return nil, err
	}
	cgroup := "/" + prefix
	d, err := berthd.Launch(filepath.Join(bin, "berthd"), ddir, "--cgroup-parent", cgroup)
	if err != nil {
		os.RemoveAll(ddir)
		return nil, err
	}
	e := &engine{name: SysBerth, argv: []string{filepath.Join(cfg.BinDir, "berth"), "-H", d.Host}}
	defer func() {
		e.removeAll()
		d.Stop()
		removeCgroupTree(cgroup)
		unmountUnder(ddir)
		os.RemoveAll(ddir)
	}()
	if _, err := e.cli("load", "-q", "-i", cfg.Archive); err != nil {
		return nil, err
	}
	api, err := client.New(client.WithHost(d.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	defer api.Close()
	if _, err := api.Ping(context.Background(), client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return nil, err
	}
	p := &RunProfile{N: n}
	steps := map[string]*ProfileStep{}
	for it := -1; it < n; it++ { // -1: warm-up
		os.Remove(log)
		marks, err := runRmSequence(api)
		if err != nil {
			return nil, err
		}
		calls, err := readCalls(log, marks["create"][0])
		if err != nil {
			return nil, err
		}
		cliD, err := timed(func() error { _, err := e.cli("run", "--rm", "--network", "none", "busybox", "true"); return err })
		if err != nil {
			return nil, err
		}
		verD, err := timed(func() error { _, err := e.cli("--version"); return err })
		if err != nil {
			return nil, err
		}
		pingD, err := timed(func() error {
			c, err := client.New(client.WithHost(d.Host), client.WithAPIVersionNegotiation())
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Ping(context.Background(), client.PingOptions{NegotiateAPIVersion: true})
			return err
		})
		if err != nil {
			return nil, err
		}
		if it < 0 {
			continue
		}
		t0 := marks["create"][0]
		for name, m := range marks {
			calls = append(calls, call{name: name, start: m[0] - t0, end: m[1] - t0})
		}
		for _, c := range calls {
			s, ok := steps[c.name]
			if !ok {
				s = &ProfileStep{Name: c.name}
				steps[c.name] = s
			}
			s.Start = append(s.Start, c.start)
			s.Duration = append(s.Duration, c.end-c.start)
		}
		p.Total = append(p.Total, marks["wait (removed) answered"][1]-t0)
		p.CLI, p.Version, p.Ping = append(p.CLI, cliD), append(p.Version, verD), append(p.Ping, pingD)
	}
	for _, s := range steps {
		p.Steps = append(p.Steps, *s)
	}
	slices.SortFunc(p.Steps, func(a, b ProfileStep) int {
		return int(Summarize(a.Start).Median - Summarize(b.Start).Median)
	})
	return p, nil
}

// runRmSequence is the berth CLI's run --rm: create, attach, wait for
// removal, start, read the stream to its end, the wait's answer. It
// returns each step's [start, end] in Unix nanoseconds.
func runRmSequence(api *client.Client) (map[string][2]time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := func() time.Duration { return time.Duration(time.Now().UnixNano()) }
	marks := map[string][2]time.Duration{}
	t := now()
	cr, err := api.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: "busybox", Cmd: []string{"true"}, AttachStdout: true, AttachStderr: true},
		HostConfig: &container.HostConfig{AutoRemove: true, NetworkMode: "none"},
	})
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	marks["create"] = [2]time.Duration{t, now()}
	t = now()
	att, err := api.ContainerAttach(ctx, cr.ID, client.ContainerAttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return nil, fmt.Errorf("attach: %w", err)
	}
	defer att.Close()
	marks["attach"] = [2]time.Duration{t, now()}
	t = now()
	wait := api.ContainerWait(ctx, cr.ID, client.ContainerWaitOptions{Condition: container.WaitConditionRemoved})
	marks["wait (removed) requested"] = [2]time.Duration{t, now()}
	t = now()
	if _, err := api.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	marks["start"] = [2]time.Duration{t, now()}
	if _, err := io.Copy(io.Discard, att.Reader); err != nil {
		return nil, fmt.Errorf("attach stream: %w", err)
	}
	e := now()
	marks["attach stream ended"] = [2]time.Duration{e, e}
	select {
	case r := <-wait.Result:
		if r.Error != nil {
			return nil, fmt.Errorf("wait: %s", r.Error.Message)
		}
	case err := <-wait.Error:
		return nil, fmt.Errorf("wait: %w", err)
	}
	e = now()
	marks["wait (removed) answered"] = [2]time.Duration{e, e}
	return marks, nil
}

type call struct {
	name       string
	start, end time.Duration // from the create request
}

// readCalls parses the wrappers' log: "start end shim" and "start end
// runtime ARGS". Runtime calls are named by subcommand ("runtime create",
// a second "runtime state" becomes "runtime state #2").
func readCalls(path string, t0 time.Duration) ([]call, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wrapper log: %w", err)
	}
	var calls []call
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		s, err1 := epoch(f[0])
		e, err2 := epoch(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("wrapper log line %q", line)
		}
		name := "berth-shim launched"
		if f[2] == "runtime" {
			name = "berth-runtime " + runtimeCommand(f[3:])
		}
		seen[name]++
		if seen[name] > 1 {
			name = fmt.Sprintf("%s #%d", name, seen[name])
		}
		calls = append(calls, call{name: name, start: s - t0, end: e - t0})
	}
	return calls, nil
}

// epoch parses bash's $EPOCHREALTIME ("1700000000.123456").
func epoch(s string) (time.Duration, error) {
	sec, frac, _ := strings.Cut(s, ".")
	a, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return 0, err
	}
	frac = (frac + "000000000")[:9]
	b, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(a*1e9 + b), nil
}

// runtimeCommand is the subcommand in a runtime's argv: the first word
// that is neither a flag nor a global flag's value.
func runtimeCommand(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			switch strings.TrimLeft(a, "-") {
			case "root", "log", "log-format", "criu":
				i++
			}
			continue
		}
		return a
	}
	return "?"
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

// WriteProfileMarkdown writes the profile as a timeline of medians.
func WriteProfileMarkdown(w io.Writer, p *RunProfile) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Where berth's `run --rm --network none busybox true` goes: medians over %d runs. The CLI's API sequence is made in process (moby client), berth-shim and berth-runtime are bash wrappers that log their calls (each wrapper adds a few ms of bash start-up), so the timeline is slower than the plain run above. Offsets are from the create request.\n\n", p.N)
	b.WriteString("| step | starts at | takes |\n|---|---:|---:|\n")
	for _, s := range p.Steps {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", s.Name, ms(Summarize(s.Start).Median), ms(Summarize(s.Duration).Median))
	}
	total, cli := Summarize(p.Total).Median, Summarize(p.CLI).Median
	fmt.Fprintf(&b, "\nIn-process sequence, create request to removal seen: %s. `berth run --rm` end to end on the same daemon: %s, so the CLI process adds %s; of that `berth --version` (process start-up, no API call) takes %s and a fresh client's /_ping with version negotiation %s.\n\n",
		ms(total), ms(cli), ms(cli-total), ms(Summarize(p.Version).Median), ms(Summarize(p.Ping).Median))
	_, err := io.WriteString(w, b.String())
	return err
}
