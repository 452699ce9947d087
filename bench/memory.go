package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// MemoryResult is what one engine costs in memory: its daemons idle
// (started, busybox loaded, no container) and the supervisor process of
// each of N running containers (the container init's parent: berth-shim,
// containerd-shim-runc-v2, conmon).
type MemoryResult struct {
	System string
	// Idle are the daemons' processes, measured before any container ran.
	Idle []ProcMem
	// Supervisor is the supervisors' command name; Supervisors has one
	// entry per container.
	Supervisor  string
	Supervisors []Mem
	// Busy are the daemons with the N containers running.
	Busy []ProcMem
	Err  string
}

// ProcMem is one process's memory.
type ProcMem struct {
	Name string
	Mem
}

// MeasureMemory starts the engine of system (fresh, under dir), loads
// busybox, waits settle, measures its daemons, then runs n `sleep`
// containers and measures each one's supervisor and the daemons again.
// Everything is removed before it returns.
func MeasureMemory(cfg EngineConfig, system, dir, prefix string, n int, settle time.Duration) (res MemoryResult) {
	res.System = system
	fail := func(err error) MemoryResult { res.Err = oneLine(err); return res }
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	e, err := startEngine(cfg, system, dir, prefix)
	if err != nil {
		return fail(fmt.Errorf("setup: %w", err))
	}
	defer func() {
		if err := e.stop(); err != nil && res.Err == "" {
			res.Err = "teardown: " + oneLine(err)
		}
	}()
	time.Sleep(settle)
	if res.Idle, err = daemonMem(e); err != nil {
		return fail(err)
	}
	var pids []int
	for i := range n {
		out, err := e.cli(e.runArgs("-d", "--network", "none", "busybox", "sleep", "1000")...)
		if err != nil {
			return fail(err)
		}
		id := strings.TrimSpace(out)
		if f := strings.Fields(id); len(f) > 0 {
			id = f[len(f)-1] // the id is the last line
		}
		pidOut, err := e.cli("inspect", "-f", "{{.State.Pid}}", id)
		if err != nil {
			return fail(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(pidOut))
		if err != nil || pid <= 0 {
			return fail(fmt.Errorf("container %d (%s): pid %q", i, id, strings.TrimSpace(pidOut)))
		}
		pids = append(pids, pid)
	}
	time.Sleep(settle)
	for _, pid := range pids {
		sup, err := ppid(pid)
		if err != nil {
			return fail(fmt.Errorf("parent of container pid %d: %w", pid, err))
		}
		name := comm(sup)
		if res.Supervisor == "" {
			res.Supervisor = name
		} else if name != res.Supervisor {
			return fail(fmt.Errorf("container pid %d: parent %d is %q, others' %q", pid, sup, name, res.Supervisor))
		}
		m, err := memOf(sup)
		if err != nil {
			return fail(err)
		}
		res.Supervisors = append(res.Supervisors, m)
	}
	if res.Busy, err = daemonMem(e); err != nil {
		return fail(err)
	}
	return res
}

func daemonMem(e *engine) ([]ProcMem, error) {
	var out []ProcMem
	for _, p := range e.daemons() {
		m, err := memOf(p.PID)
		if err != nil {
			return nil, fmt.Errorf("%s (pid %d): %w", p.Name, p.PID, err)
		}
		out = append(out, ProcMem{p.Name, m})
	}
	return out, nil
}

// MeasureMemories runs MeasureMemory for each system in turn.
func MeasureMemories(cfg EngineConfig, systems []System, work, prefix string, n int, settle time.Duration) []MemoryResult {
	var out []MemoryResult
	for i, s := range systems {
		if s.Missing != "" {
			out = append(out, MemoryResult{System: s.Name, Err: "skipped: " + s.Missing})
			continue
		}
		dir := filepath.Join(work, fmt.Sprintf("mem%d", i))
		out = append(out, MeasureMemory(cfg, s.Name, dir, fmt.Sprintf("%s-m%d", prefix, i), n, settle))
	}
	return out
}

// WriteMemoryMarkdown writes two tables: the mean memory of a running
// container's supervisor, and the daemons' idle (and busy) memory.
func WriteMemoryMarkdown(w io.Writer, n int, results []MemoryResult) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Memory per running container: the supervisor (the container init's parent) of each of %d running `sleep` containers, from /proc/PID/smaps_rollup; mean (min–max). PSS shares the pages of identical processes among them, so it falls as containers are added.\n\n", n)
	b.WriteString("| system | supervisor | RSS mean | RSS min–max | PSS mean | PSS min–max |\n|---|---|---:|---:|---:|---:|\n")
	for _, r := range results {
		if r.Err != "" && len(r.Supervisors) == 0 {
			fmt.Fprintf(&b, "| %s | %s | | | | |\n", r.System, strings.ReplaceAll(r.Err, "|", "/"))
			continue
		}
		rss, pss := stat(r.Supervisors, func(m Mem) int64 { return m.RSS }), stat(r.Supervisors, func(m Mem) int64 { return m.PSS })
		fmt.Fprintf(&b, "| %s | %s | %s | %s–%s | %s | %s–%s |\n", r.System, r.Supervisor,
			mb(rss[0]), mb(rss[1]), mb(rss[2]), mb(pss[0]), mb(pss[1]), mb(pss[2]))
	}
	fmt.Fprintf(&b, "\nDaemons: started, busybox loaded, no container ever run (idle), then with the %d containers above running (busy). RSS (PSS).\n\n", n)
	b.WriteString("| system | processes | idle RSS | idle PSS | busy RSS | busy PSS |\n|---|---|---:|---:|---:|---:|\n")
	for _, r := range results {
		if r.Err != "" && len(r.Idle) == 0 {
			fmt.Fprintf(&b, "| %s | %s | | | | |\n", r.System, strings.ReplaceAll(r.Err, "|", "/"))
			continue
		}
		if len(r.Idle) == 0 {
			fmt.Fprintf(&b, "| %s | no daemon | – | – | – | – |\n", r.System)
			continue
		}
		var names []string
		var idle, busy Mem
		for _, p := range r.Idle {
			names = append(names, fmt.Sprintf("%s %s", p.Name, mb(p.RSS)))
			idle.RSS += p.RSS
			idle.PSS += p.PSS
		}
		for _, p := range r.Busy {
			busy.RSS += p.RSS
			busy.PSS += p.PSS
		}
		busyRSS, busyPSS := "–", "–"
		if len(r.Busy) > 0 {
			busyRSS, busyPSS = mb(busy.RSS), mb(busy.PSS)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.System, strings.Join(names, " + "), mb(idle.RSS), mb(idle.PSS), busyRSS, busyPSS)
	}
	for _, r := range results {
		if r.Err != "" && (len(r.Supervisors) > 0 || len(r.Idle) > 0) {
			fmt.Fprintf(&b, "\n%s: %s\n", r.System, r.Err)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// stat returns the mean, min and max of f over ms.
func stat(ms []Mem, f func(Mem) int64) [3]int64 {
	if len(ms) == 0 {
		return [3]int64{}
	}
	var sum int64
	lo, hi := f(ms[0]), f(ms[0])
	for _, m := range ms {
		v := f(m)
		sum += v
		lo, hi = min(lo, v), max(hi, v)
	}
	return [3]int64{sum / int64(len(ms)), lo, hi}
}

func mb(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
