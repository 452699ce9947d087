package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/container/shim"
	"github.com/berth-dev/berth/container/shim/client"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/fixture"
)

// The binaries under test: berth-shim built fresh from this tree, and
// berth-runtime ($BERTH_RUNTIME, bin/berth-runtime, or built like `make
// build` does).
var shimBin, runtimeBin string

// starterEnv makes the test binary act as a daemon that starts a shim and
// is then killed (TestShimSurvivesStarterKill).
const starterEnv = "BERTH_SHIM_TEST_STARTER"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(starterEnv); cfg != "" {
		os.Exit(starter(cfg))
	}
	if os.Geteuid() != 0 {
		os.Exit(m.Run()) // the root tests skip (or fail under CI)
	}
	dir, err := os.MkdirTemp("", "berth-shim-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if err := buildBinaries(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildBinaries(dir string) error {
	root, err := fixture.ModuleRoot()
	if err != nil {
		return err
	}
	shimBin = filepath.Join(dir, "berth-shim")
	cmd := exec.Command("go", "build", "-o", shimBin, "./cmd/berth-shim")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build berth-shim: %v\n%s", err, out)
	}
	if p, err := fixture.BerthRuntimePath(); err == nil {
		runtimeBin = p
		return nil
	}
	runtimeBin = filepath.Join(dir, "berth-runtime")
	cmd = exec.Command("go", "build", "-tags", "osusergo,netgo", "-ldflags", `-s -w -linkmode external -extldflags "-static"`, "-o", runtimeBin, "./cmd/berth-runtime")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build berth-runtime: %v\n%s", err, out)
	}
	return nil
}

// starter is the child of TestShimSurvivesStarterKill: it starts the
// container described by the JSON in its environment, reports the shim's
// state dir on stdout and waits to be killed.
func starter(arg string) int {
	var p struct {
		Dir string
		Cfg shim.Config
	}
	if err := json.Unmarshal([]byte(arg), &p); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	s, err := client.Start(ctx, p.Dir, p.Cfg)
	if err == nil {
		err = s.Start(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("started", s.ShimPid())
	time.Sleep(time.Hour)
	return 0
}

// ctr is one container under a shim, for a test.
type ctr struct {
	t      *testing.T
	dir    string
	cfg    shim.Config
	bundle *testutil.Bundle
	s      *client.Shim
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// create makes a bundle with opts and starts its shim (runtime create
// done, container not started).
func create(t *testing.T, mod func(*shim.Config), opts ...testutil.Option) *ctr {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	c := newCtr(t, mod, opts...)
	s, err := client.Start(ctx(t), c.dir, c.cfg)
	if err != nil {
		t.Fatalf("client.Start: %v", err)
	}
	c.s = s
	return c
}

func newCtr(t *testing.T, mod func(*shim.Config), opts ...testutil.Option) *ctr {
	t.Helper()
	b := testutil.NewBundle(t, opts...)
	dir := t.TempDir()
	cfg := shim.Config{
		ID:          testutil.UniqueName(t),
		Bundle:      b.Dir,
		Runtime:     runtimeBin,
		RuntimeRoot: filepath.Join(t.TempDir(), "runtime"),
		LogPath:     filepath.Join(dir, "container-json.log"),
		Binary:      shimBin,
	}
	if mod != nil {
		mod(&cfg)
	}
	c := &ctr{t: t, dir: dir, cfg: cfg, bundle: b}
	t.Cleanup(func() { c.cleanup() })
	return c
}

// cleanup kills a container still running and waits for its shim to go.
func (c *ctr) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if c.s != nil {
		defer waitGone(c.t, c.s.ShimPid())
	}
	s, err := client.Connect(ctx, c.dir)
	if err == nil {
		if _, exited := s.Exited(); !exited {
			s.Kill(ctx, syscall.SIGKILL, true)
			if _, err := s.Wait(ctx, ""); err != nil {
				c.t.Errorf("cleanup: wait: %v", err)
			}
			waitGone(c.t, s.ShimPid())
		}
	}
	if c.bundle.Spec.Linux != nil && c.bundle.Spec.Linux.CgroupsPath != "" {
		testutil.RemoveCgroupTree(c.bundle.Spec.Linux.CgroupsPath)
	}
}

// waitGone waits until process pid has exited (been reaped).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	if pid <= 0 {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && strings.Contains(string(b), ") Z ") {
			// A zombie waiting for its reaper (init) counts as gone.
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("process %d still there", pid)
}

func (c *ctr) start() {
	c.t.Helper()
	if err := c.s.Start(ctx(c.t)); err != nil {
		c.t.Fatalf("start: %v", err)
	}
}

func (c *ctr) wait(execID string) shim.ExitStatus {
	c.t.Helper()
	e, err := c.s.Wait(ctx(c.t), execID)
	if err != nil {
		c.t.Fatalf("wait %q: %v", execID, err)
	}
	return e
}

func (c *ctr) attach(o client.AttachOptions) *net.UnixConn {
	c.t.Helper()
	conn, err := c.s.Attach(ctx(c.t), o)
	if err != nil {
		c.t.Fatalf("attach: %v", err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return conn
}

// demux reads Docker's stdcopy frames until EOF.
func demux(t *testing.T, r io.Reader) (stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	var h [8]byte
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			if err != io.EOF {
				t.Errorf("frame header: %v", err)
			}
			return out.String(), errb.String()
		}
		if h[1] != 0 || h[2] != 0 || h[3] != 0 {
			t.Fatalf("bad frame header % x", h)
		}
		n := binary.BigEndian.Uint32(h[4:])
		var dst *bytes.Buffer
		switch h[0] {
		case 1:
			dst = &out
		case 2:
			dst = &errb
		default:
			t.Fatalf("frame for stream %d", h[0])
		}
		if _, err := io.CopyN(dst, r, int64(n)); err != nil {
			t.Fatalf("frame payload: %v", err)
		}
	}
}

// readAll reads conn to EOF with a deadline.
func readAll(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read stream: %v (got %q)", err, b)
	}
	return string(b)
}

// logLines returns the raw lines of the json-file log and its rotations.
func readLogFile(t *testing.T, path string) []map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func sh(script string) testutil.Option { return testutil.WithArgs("sh", "-c", script) }

// rss returns a process's VmRSS and Pss in kB.
func rss(pid int) (rssKB, pssKB int) {
	status, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rssKB, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	roll, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	for _, l := range strings.Split(string(roll), "\n") {
		if v, ok := strings.CutPrefix(l, "Pss:"); ok {
			pssKB, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return
}

func newCtrRoot(t *testing.T, mod func(*shim.Config), opts ...testutil.Option) *ctr {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	return newCtr(t, mod, opts...)
}

func withArgs0(arg0 string) testutil.Option {
	return testutil.WithSpec(func(s *specs.Spec) { s.Process.Args[0] = arg0 })
}

func itoa(i int) string { return strconv.Itoa(i) }

// rssSplit returns the RssAnon and RssFile lines of a process.
func rssSplit(pid int) string {
	status, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	var parts []string
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "RssAnon:") || strings.HasPrefix(l, "RssFile:") {
			parts = append(parts, strings.Join(strings.Fields(l), " "))
		}
	}
	return strings.Join(parts, ", ")
}
