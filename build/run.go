package build

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/moby/api/types/container"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/container/spec"
	"github.com/berth-dev/berth/errdefs"
)

// tailLines is how many lines of a failed RUN's output its error repeats.
const tailLines = 10

// runStep is RUN: the command runs in a container on the stage's
// snapshot; what it changed becomes a layer.
func (j *job) runStep(ctx context.Context, st *stageState, c *instructions.RunCommand) error {
	if sec := instructions.GetSecurity(c); sec != "" && sec != "sandbox" {
		return fmt.Errorf("RUN --security=%s is not supported: %w", sec, errdefs.ErrNotImplemented)
	}
	if devs := instructions.GetDevices(c); len(devs) > 0 {
		return fmt.Errorf("RUN --device=%s is not supported (berthd exposes no CDI devices to builds): %w", devs[0].Name, errdefs.ErrNotImplemented)
	}
	netMode := instructions.GetNetwork(c)
	if netMode == instructions.NetworkDefault || netMode == "" {
		netMode = j.o.NetworkMode
	}
	switch netMode {
	case "", "default", "none", "bridge":
		// The engine has no networks yet: a RUN gets its own network
		// namespace with only loopback.
		netMode = "none"
	case "host":
	default:
		return fmt.Errorf("RUN --network=%s: unknown network mode (want none, host or default): %w", netMode, errdefs.ErrInvalidArgument)
	}
	args, script, err := st.runArgv(c)
	if err != nil {
		return err
	}
	argEnv := st.runArgsEnv()
	env := append(append([]string{}, st.cfg.Env...), argEnv...)
	// The proxy args reach RUN but not the image's history.
	var proxies []string
	for k := range builtinArgs {
		if v, ok := j.buildArg(k); ok && !envHas(env, k) {
			proxies = append(proxies, k+"="+v)
		}
	}
	createdBy := strings.Join(args, " ")
	if len(argEnv) > 0 {
		createdBy = fmt.Sprintf("|%d %s %s", len(argEnv), strings.Join(argEnv, " "), createdBy)
	}
	rm, err := j.prepareMounts(ctx, st, c)
	if err != nil {
		return err
	}
	defer rm.done()
	key := stepKey(st.key, "RUN", args, env, netMode, st.cfg.User, st.cfg.WorkingDir, rm.key)
	if script != nil {
		// The #! heredoc: an executable file of its own, read-only.
		dir, err := os.MkdirTemp(filepath.Join(j.b.cfg.Dir, "tmp"), "heredoc-")
		if err != nil {
			return err
		}
		rm.release = append(rm.release, func() { os.RemoveAll(dir) })
		if err := os.WriteFile(filepath.Join(dir, "script"), []byte(script.Data), 0o755); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(dir, "script"), 0o755); err != nil {
			return err
		}
		rm.mounts = append(rm.mounts, bindMount(filepath.Join(dir, "script"), path.Join(heredocDir, script.Name), true))
		key = stepKey(key, "heredoc", script.Name, script.Data)
		createdBy += "\n" + script.Data + script.Name
	}
	return j.layerStep(ctx, st, key, ocispec.History{CreatedBy: createdBy}, func(w *workdir) error {
		// Checked only when the step runs: a cached one needs no CPU.
		if err := j.canRun(st.plat); err != nil {
			return err
		}
		bundle := w.dir
		if len(rm.secretEnv) > 0 {
			// The spec then holds secrets: it goes to the secrets' tmpfs.
			d, err := os.MkdirTemp(j.secrets.dir, "bundle-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(d)
			bundle = d
		}
		runEnv := slices.Concat(env, proxies)
		for _, kv := range rm.secretEnv {
			k, v, _ := strings.Cut(kv, "=")
			runEnv = setEnv(runEnv, k, v)
		}
		return j.b.runContainer(ctx, w, bundle, st.cfg, args, runEnv, netMode, rm.mounts, j.out)
	})
}

// heredocDir is where a RUN's #! heredoc is mounted, as BuildKit's.
const heredocDir = "/dev/pipes"

// runArgv is RUN's argv with heredocs as BuildKit runs them: a lone
// heredoc is the shell's script, or with a #! line a file the shell
// executes (returned as script, to mount at heredocDir); a command with
// heredocs is put back together for the shell, which reads them.
func (st *stageState) runArgv(c *instructions.RunCommand) ([]string, *instructions.ShellInlineFile, error) {
	if len(c.Files) == 0 {
		return st.commandLine(c.ShellDependantCmdLine), nil, nil
	}
	if !c.PrependShell || len(c.CmdLine) != 1 {
		return nil, nil, fmt.Errorf("RUN: a heredoc needs the shell form: %w", errdefs.ErrInvalidArgument)
	}
	line := c.ShellDependantCmdLine
	if parser.MustParseHeredoc(c.CmdLine[0]) != nil {
		f := c.Files[0]
		if f.Chomp {
			f.Data = parser.ChompHeredocContent(f.Data)
		}
		if strings.HasPrefix(f.Data, "#!") {
			line.CmdLine = []string{path.Join(heredocDir, f.Name)}
			return st.commandLine(line), &f, nil
		}
		line.CmdLine = []string{f.Data}
		return st.commandLine(line), nil, nil
	}
	var b strings.Builder
	b.WriteString(c.CmdLine[0])
	for _, f := range c.Files {
		b.WriteByte('\n')
		b.WriteString(f.Data)
		b.WriteString(f.Name)
	}
	line.CmdLine = []string{b.String()}
	return st.commandLine(line), nil, nil
}

// runContainer runs args in a container on w.rootfs with berth-runtime
// (its config.json in bundle), streaming its output to out. A failure names the command, its exit
// code and its last lines of output.
func (b *Builder) runContainer(ctx context.Context, w *workdir, bundle string, img container.Config, args, env []string, netMode string, extra []specs.Mount, out io.Writer) error {
	id := randomHex(32)
	cfg := &container.Config{
		Cmd: args, Env: env, User: img.User, WorkingDir: img.WorkingDir,
	}
	hc := &container.HostConfig{NetworkMode: container.NetworkMode(netMode)}
	spec.SetDefaults(id, cfg, hc)
	files := filepath.Join(w.dir, "files")
	if err := os.Mkdir(files, 0o755); err != nil {
		return err
	}
	sp, err := spec.Generate(spec.Input{
		ID: id, Config: cfg, HostConfig: hc, Rootfs: w.rootfs, Dir: files, CgroupParent: b.cfg.CgroupParent,
	})
	if err != nil {
		return err
	}
	sp.Mounts = append(sp.Mounts, extra...)
	// The mount points the runtime creates for /proc, /etc/hosts, ... are
	// not the command's doing: they are removed from the layer after.
	var stubs []string
	for _, m := range sp.Mounts {
		stubs = append(stubs, missingPaths(w.rootfs, m.Destination)...)
	}
	cb, err := json.Marshal(sp)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), cb, 0o600); err != nil {
		return err
	}
	tail := &tailWriter{n: tailLines}
	ow := io.MultiWriter(out, tail)
	cmd := exec.Command(b.cfg.Runtime, "--root", b.cfg.RunRoot, "run", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = ow, ow
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", b.cfg.Runtime, err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = exec.Command(b.cfg.Runtime, "--root", b.cfg.RunRoot, "kill", "--all", id, "KILL").Run()
		case <-done:
		}
	}()
	err = cmd.Wait()
	close(done)
	// `run` removes the container itself; only a run cut short (or a
	// runtime that failed half-way) leaves state behind.
	if _, serr := os.Stat(filepath.Join(b.cfg.RunRoot, id)); serr == nil {
		_ = exec.Command(b.cfg.Runtime, "--root", b.cfg.RunRoot, "delete", "--force", id).Run()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		msg := fmt.Sprintf("The command '%s' returned a non-zero code: %d", strings.Join(args, " "), code)
		if t := tail.String(); t != "" {
			msg += "\nlast output:\n" + t
		}
		return &runError{msg: msg, code: code}
	}
	removeStubs(w.upper, stubs)
	return nil
}

// runError is a RUN that failed.
type runError struct {
	msg  string
	code int
}

func (e *runError) Error() string { return e.msg }

// missingPaths are dest and its ancestors that do not exist in rootfs,
// deepest first.
func missingPaths(rootfs, dest string) []string {
	var out []string
	for p := path.Clean("/" + dest); p != "/"; p = path.Dir(p) {
		full, err := securejoin.SecureJoin(rootfs, p)
		if err != nil {
			break
		}
		if _, err := os.Lstat(full); err == nil {
			break
		}
		out = append(out, p)
	}
	return out
}

// removeStubs removes from the upper directory the empty files and
// directories the runtime made as mount points (listed deepest first);
// anything the command put there stays.
func removeStubs(upper string, stubs []string) {
	slices.SortFunc(stubs, func(a, b string) int { return len(b) - len(a) })
	for _, p := range stubs {
		full := filepath.Join(upper, p)
		fi, err := os.Lstat(full)
		if err != nil {
			continue
		}
		if fi.Mode().IsRegular() && fi.Size() == 0 || fi.IsDir() {
			_ = os.Remove(full) // fails on a non-empty directory: kept
		}
	}
}

// tailWriter keeps the last n lines written.
type tailWriter struct {
	mu    sync.Mutex
	n     int
	lines [][]byte
	cur   []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range p {
		if c == '\n' {
			t.lines = append(t.lines, t.cur)
			t.cur = nil
			if len(t.lines) > t.n {
				t.lines = t.lines[1:]
			}
			continue
		}
		if len(t.cur) < 4096 {
			t.cur = append(t.cur, c)
		}
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ls := t.lines
	if len(t.cur) > 0 {
		ls = append(ls, t.cur)
	}
	return string(bytes.Join(ls, []byte("\n")))
}

// ExitCode is the exit code of the failed RUN behind err, 0 when err is
// not a failed RUN.
func ExitCode(err error) int {
	var re *runError
	if errors.As(err, &re) && re.code > 0 {
		return re.code
	}
	return 0
}
