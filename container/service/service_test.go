package service_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/container/logs"
	"github.com/berth-dev/berth/container/service"
	"github.com/berth-dev/berth/container/store"
	"github.com/berth-dev/berth/errdefs"
	imageservice "github.com/berth-dev/berth/image/service"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/fixture"
	"github.com/berth-dev/berth/internal/testutil/images"
)

var bins fixture.Engine

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run()) // the tests skip
	}
	dir, err := os.MkdirTemp("", "berth-bins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins, err = fixture.BuildEngine(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is an image service holding busybox and a container service on it.
type env struct {
	t    *testing.T
	imgs *imageservice.Service
	svc  *service.Service
	opts service.Options
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testutil.RequireRoot(t)
	root := t.TempDir()
	// Shim sockets live below ExecRoot: keep it short, as /run/berth is.
	execRoot, err := os.MkdirTemp("/run", "bt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(execRoot) })
	imgs, err := imageservice.Open(filepath.Join(root, "image"), imageservice.Options{ConfigPath: filepath.Join(root, "config.json")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { imgs.Close() })
	f, err := os.Open(images.Busybox(t).Archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := imgs.Load(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	cgroup := "/" + testutil.UniqueName(t)
	t.Cleanup(func() { testutil.RemoveCgroupTree(cgroup) })
	e := &env{t: t, imgs: imgs, opts: service.Options{
		Root: filepath.Join(root, "containers"), ExecRoot: execRoot, Images: imgs,
		Runtime: bins.Runtime, Shim: bins.Shim, Init: bins.Init, CgroupParent: cgroup,
		Logf: t.Logf,
	}}
	e.open()
	return e
}

// open starts a service on e's roots, as a daemon (re)start does. The
// cleanup removes every container it knows.
func (e *env) open() {
	e.t.Helper()
	svc, err := service.Open(context.Background(), e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.svc = svc
	e.t.Cleanup(func() {
		all, _ := svc.Store().List(store.ListOptions{All: true})
		for _, c := range all {
			if err := svc.Remove(context.Background(), c.ID, service.RemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
				e.t.Errorf("cleanup: remove %s: %v", c.ID, err)
			}
		}
		svc.Close()
	})
}

func (e *env) create(cfg *container.Config, hc *container.HostConfig) string {
	e.t.Helper()
	if cfg.Image == "" {
		cfg.Image = "busybox"
	}
	id, _, err := e.svc.Create(context.Background(), service.CreateOptions{Config: cfg, HostConfig: hc})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) wait(id string, cond container.WaitCondition) container.WaitResponse {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch, err := e.svc.Wait(ctx, id, cond)
	if err != nil {
		e.t.Fatal(err)
	}
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		e.t.Fatalf("wait %s for %s: timed out", id, cond)
	}
	return container.WaitResponse{}
}

// demux reads Docker's stdcopy frames until EOF.
func demux(t *testing.T, r io.Reader) (stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	hdr := make([]byte, 8)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return out.String(), errb.String()
		}
		n := binary.BigEndian.Uint32(hdr[4:])
		w := &out
		if hdr[0] == 2 {
			w = &errb
		}
		if _, err := io.CopyN(w, r, int64(n)); err != nil {
			t.Fatalf("frame of %d bytes: %v", n, err)
		}
	}
}

// TestRun is `docker run`: attach, start, output on both streams, exit
// code, the json-file log, and remove.
func TestRun(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.create(&container.Config{Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}}, nil)
	type res struct {
		conn *net.UnixConn
		err  error
	}
	attached := make(chan res, 1)
	go func() {
		conn, _, err := e.svc.Attach(ctx, id, service.AttachOptions{Stdout: true, Stderr: true})
		attached <- res{conn, err}
	}()
	time.Sleep(100 * time.Millisecond) // the attach is pending before the start
	if err := e.svc.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	a := <-attached
	if a.err != nil {
		t.Fatal(a.err)
	}
	stdout, stderr := demux(t, a.conn)
	a.conn.Close()
	if stdout != "out\n" || stderr != "err\n" {
		t.Errorf("attach: stdout %q stderr %q", stdout, stderr)
	}
	if r := e.wait(id, container.WaitConditionNotRunning); r.StatusCode != 3 {
		t.Errorf("exit code %d, want 3", r.StatusCode)
	}
	rec, err := e.svc.Store().Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State.Running || rec.State.ExitCode != 3 || rec.State.FinishedAt.IsZero() {
		t.Errorf("state after exit: %+v", rec.State)
	}
	var lines []string
	if err := logs.Read(ctx, rec.LogPath, logs.ReadOptions{Stdout: true, Stderr: true, Tail: -1}, func(en logs.Entry) error {
		lines = append(lines, en.Stream+":"+string(en.Line))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines, ""); !strings.Contains(got, "stdout:out\n") || !strings.Contains(got, "stderr:err\n") {
		t.Errorf("log: %q", lines)
	}
	// Started again, it runs again.
	if err := e.svc.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if r := e.wait(id, container.WaitConditionNotRunning); r.StatusCode != 3 {
		t.Errorf("second run: exit code %d", r.StatusCode)
	}
	if err := e.svc.Remove(ctx, id, service.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Store().Get(id); !errdefs.IsNotFound(err) {
		t.Errorf("after remove: %v", err)
	}
	if _, err := e.imgs.ContainerMounts(ctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("the container snapshot survived the remove: %v", err)
	}
}

// TestStopAndRemove: stop escalates to SIGKILL after the timeout (busybox
// sleep as pid 1 ignores SIGTERM), rm refuses a running container unless
// forced, and a missing command exits 127.
func TestStopAndRemove(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.create(&container.Config{Cmd: []string{"sleep", "1000"}}, nil)
	if err := e.svc.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Start(ctx, id); !errdefs.IsNotModified(err) {
		t.Errorf("start of a running container: %v", err)
	}
	if err := e.svc.Remove(ctx, id, service.RemoveOptions{}); !errdefs.IsConflict(err) {
		t.Errorf("rm of a running container: %v", err)
	}
	one := 1
	start := time.Now()
	if err := e.svc.Stop(ctx, id, "", &one); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("stop returned after %v, before the timeout", d)
	}
	rec, _ := e.svc.Store().Get(id)
	if rec.State.Running || rec.State.ExitCode != 137 {
		t.Errorf("after stop: %+v", rec.State)
	}
	if err := e.svc.Stop(ctx, id, "", nil); !errdefs.IsNotModified(err) {
		t.Errorf("stop of a stopped container: %v", err)
	}

	id2 := e.create(&container.Config{Cmd: []string{"sleep", "1000"}}, nil)
	if err := e.svc.Start(ctx, id2); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Remove(ctx, id2, service.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}

	id3 := e.create(&container.Config{Cmd: []string{"/no/such/command"}}, nil)
	err := e.svc.Start(ctx, id3)
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("start of a missing command: %v", err)
	}
	if rec, _ := e.svc.Store().Get(id3); rec.State.ExitCode != 127 || rec.State.Running {
		t.Errorf("missing command: state %+v", rec.State)
	}
}

// TestRestartPolicies: on-failure:2 restarts twice, --rm removes the
// container after it exits.
func TestRestartPolicies(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.create(&container.Config{Cmd: []string{"sh", "-c", "exit 1"}},
		&container.HostConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 2}})
	if err := e.svc.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		rec, err := e.svc.Store().Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.RestartCount == 2 && !rec.State.Running {
			if rec.State.ExitCode != 1 {
				t.Errorf("exit code %d", rec.State.ExitCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("on-failure:2: restart count %d, state %+v", rec.RestartCount, rec.State)
		}
		time.Sleep(50 * time.Millisecond)
	}

	rm := e.create(&container.Config{Cmd: []string{"true"}}, &container.HostConfig{AutoRemove: true})
	if err := e.svc.Start(ctx, rm); err != nil {
		t.Fatal(err)
	}
	if r := e.wait(rm, container.WaitConditionRemoved); r.StatusCode != 0 {
		t.Errorf("--rm: exit code %d", r.StatusCode)
	}
	if _, err := e.svc.Store().Get(rm); !errdefs.IsNotFound(err) {
		t.Errorf("--rm container still there: %v", err)
	}
}

// TestExec runs processes in a running container: output, exit code,
// environment.
func TestExec(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.create(&container.Config{Cmd: []string{"sleep", "1000"}, Env: []string{"A=container"}}, nil)
	if err := e.svc.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	execID, err := e.svc.ExecCreate(ctx, id, container.ExecCreateRequest{
		Cmd: []string{"sh", "-c", "echo $A $B; echo oops >&2; exit 5"}, Env: []string{"B=exec"},
		AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, tty, err := e.svc.ExecStart(ctx, execID, nil)
	if err != nil || tty {
		t.Fatal(err, tty)
	}
	stdout, stderr := demux(t, conn)
	conn.Close()
	if stdout != "container exec\n" || stderr != "oops\n" {
		t.Errorf("exec output %q %q", stdout, stderr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		insp, err := e.svc.ExecInspect(ctx, execID)
		if err != nil {
			t.Fatal(err)
		}
		if !insp.Running && insp.ExitCode != nil {
			if *insp.ExitCode != 5 {
				t.Errorf("exec exit code %d", *insp.ExitCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exec still running: %+v", insp)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, err := e.svc.ExecStart(ctx, execID, nil); !errdefs.IsConflict(err) {
		t.Errorf("second start of an exec: %v", err)
	}
}

// TestKillWhileStarting: a signal sent as soon as the process speaks (what
// `docker run`'s --sig-proxy does) reaches it, even when the start has not
// been recorded yet. A runtime that lingers after `start` holds that window
// open.
func TestKillWhileStarting(t *testing.T) {
	e := newSlowStartEnv(t)
	ctx := context.Background()
	id := e.create(&container.Config{Cmd: []string{"sh", "-c",
		"trap 'echo got-term; exit 42' TERM; echo started; while true; do sleep 0.1; done"}}, nil)
	type res struct {
		conn *net.UnixConn
		err  error
	}
	attached := make(chan res, 1)
	go func() {
		conn, _, err := e.svc.Attach(ctx, id, service.AttachOptions{Stdout: true})
		attached <- res{conn, err}
	}()
	time.Sleep(100 * time.Millisecond) // the attach is pending before the start
	started := make(chan error, 1)
	go func() { started <- e.svc.Start(ctx, id) }()
	a := <-attached
	if a.err != nil {
		t.Fatal(a.err)
	}
	defer a.conn.Close()
	hdr := make([]byte, 8+len("started\n"))
	if _, err := io.ReadFull(a.conn, hdr); err != nil || string(hdr[8:]) != "started\n" {
		t.Fatalf("first output %q: %v", hdr, err)
	}
	if err := e.svc.Kill(ctx, id, "TERM"); err != nil {
		t.Fatalf("kill as the process speaks: %v", err)
	}
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if r := e.wait(id, container.WaitConditionNotRunning); r.StatusCode != 42 {
		t.Errorf("exit code %d, want the trap's 42", r.StatusCode)
	}
}

// newSlowStartEnv is an env whose runtime's start (or run, for a deferred
// create) returns a second after the container's process began: a start
// stays under way meanwhile.
func newSlowStartEnv(t *testing.T) *env {
	e := newEnv(t)
	slow := filepath.Join(t.TempDir(), "slow-runtime")
	script := "#!/bin/sh\n\"" + bins.Runtime + "\" \"$@\"; rc=$?\nfor a; do case \"$a\" in start|run) sleep 1;; esac; done\nexit $rc\n"
	if err := os.WriteFile(slow, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e.opts.Runtime = slow
	e.open()
	return e
}

// TestAttachWhileStarting: an attach that arrives while a start is under
// way, after the start connected the attaches waiting for it, gets the
// container's output (`docker run`'s attach can reach berthd after its
// start request; it used to wait for the next start, forever).
func TestAttachWhileStarting(t *testing.T) {
	e := newSlowStartEnv(t)
	ctx := context.Background()
	token := fmt.Sprintf("attach-while-starting-%d", time.Now().UnixNano())
	id := e.create(&container.Config{Cmd: []string{"sh", "-c", "while true; do echo tick; sleep 0.1; done # " + token}}, nil)
	started := make(chan error, 1)
	go func() { started <- e.svc.Start(ctx, id) }()
	// The process runs while the runtime's start has not returned.
	for deadline := time.Now().Add(30 * time.Second); !running(token); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the container's process never ran")
		}
	}
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	conn, _, err := e.svc.Attach(actx, id, service.AttachOptions{Stdout: true})
	if err != nil {
		t.Fatalf("attach while starting: %v", err)
	}
	defer conn.Close()
	select {
	case err := <-started:
		t.Fatalf("the start returned (%v) before the attach: the test proves nothing", err)
	default:
	}
	hdr := make([]byte, 8+len("tick\n"))
	if _, err := io.ReadFull(conn, hdr); err != nil || string(hdr[8:]) != "tick\n" {
		t.Fatalf("attached output %q: %v", hdr, err)
	}
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Kill(ctx, id, "KILL"); err != nil {
		t.Fatal(err)
	}
	e.wait(id, container.WaitConditionNotRunning)
}

// running reports whether a process on the host has token in its command line.
func running(token string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), token) {
			return true
		}
	}
	return false
}

// TestOrphanSnapshots: a container snapshot whose create never wrote the
// record (a crash, or a power loss after a --rm container's unsynced
// create) goes at the next start; one whose container directory is
// there stays, even if its record cannot be read.
func TestOrphanSnapshots(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	orphan := strings.Repeat("a", 64)
	unreadable := strings.Repeat("b", 64)
	for _, key := range []string{orphan, unreadable} {
		if _, err := e.imgs.RootfsMounts(ctx, "busybox", key); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(e.opts.Root, unreadable), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.opts.Root, unreadable, store.RecordFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	e.svc.Close()
	e.open()
	keys, err := e.imgs.ContainerSnapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{unreadable}) {
		t.Fatalf("container snapshots after the restart: %q, want only %q", keys, unreadable)
	}
	if err := e.imgs.RemoveContainerSnapshot(ctx, unreadable); err != nil {
		t.Fatal(err)
	}
}

// docker run --rm waits for the removal and exits with the container's
// code: a waiter that sees no change between the exit and the removal
// (they follow each other within a millisecond) still gets it.
func TestWaitRemovedHasExitCode(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := 0; i < 15; i++ {
		id := e.create(&container.Config{Cmd: []string{"sh", "-c", "exit 3"}}, &container.HostConfig{AutoRemove: true, NetworkMode: "none"})
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ch, err := e.svc.Wait(wctx, id, container.WaitConditionRemoved)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-ch:
			if r.StatusCode != 3 {
				t.Fatalf("run %d: wait for the removal: exit code %d, want 3", i, r.StatusCode)
			}
		case <-wctx.Done():
			t.Fatalf("run %d: no removal", i)
		}
		cancel()
	}
}
