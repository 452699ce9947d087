// Package berthd runs berthd for tests: Build compiles it once per test
// binary, Start runs one daemon per test with its own temporary data root,
// exec root and socket, and stops it by PID when the test ends. Docker
// runs the docker CLI against it with a private DOCKER_CONFIG.
package berthd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/fixture"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// Build compiles ./cmd/berthd of the module the tests run in, with the
// binaries it runs (once per process), and returns berthd's path. $BERTHD_BINARY, when set, is
// used instead. Cleanup removes the build.
func Build() (string, error) {
	buildOnce.Do(func() {
		if b := os.Getenv("BERTHD_BINARY"); b != "" {
			buildBin = b
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "berthd-build"); buildErr != nil {
			return
		}
		// berthd finds berth-runtime, berth-shim and berth-init next to
		// itself.
		var e fixture.Engine
		e, buildErr = fixture.BuildEngine(buildDir)
		buildBin = e.Berthd
		if buildErr == nil && filepath.Dir(e.Runtime) != buildDir {
			buildErr = os.Symlink(e.Runtime, filepath.Join(buildDir, "berth-runtime"))
		}
	})
	return buildBin, buildErr
}

// Cleanup removes what Build made (call it from TestMain after m.Run).
func Cleanup() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// Daemon is a berthd started for a test.
type Daemon struct {
	// Dir holds everything of the daemon: roots, socket, log, client
	// config.
	Dir      string
	DataRoot string
	ExecRoot string
	// Socket is the unix socket path; Host is "unix://"+Socket.
	Socket string
	Host   string
	// DockerConfig is the DOCKER_CONFIG directory Docker uses.
	DockerConfig string
	// LogPath is berthd's stderr.
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
	err  error
	bin  string
	args []string // as given to Launch
}

// Crash kills the daemon with SIGKILL, as a crash would, and waits for it
// to be gone. Its containers keep running in their shims.
func (d *Daemon) Crash() {
	d.kill()
	d.err = nil // an exit the test asked for
}

// Restart launches the daemon again on the same directory and arguments
// (after Crash or Stop), as a host's service manager would.
func (d *Daemon) Restart() error {
	n, err := Launch(d.bin, d.Dir, d.args...)
	if err != nil {
		return err
	}
	*d = *n
	return nil
}

// PID is the daemon's process ID.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Start runs a berthd with temporary roots and socket plus args, waits
// until it answers /_ping and stops it (SIGTERM by PID, then SIGKILL)
// when the test ends, failing the test if it did not exit cleanly.
func Start(t testing.TB, args ...string) *Daemon {
	t.Helper()
	bin, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := NewDir()
	if err != nil {
		t.Fatal(err)
	}
	// Containers of the test go under a cgroup parent of their own.
	cgroup := "/" + testutil.UniqueName(t)
	d, err := Launch(bin, dir, append([]string{"--cgroup-parent", cgroup}, args...)...)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer testutil.RemoveCgroupTree(cgroup)
		// Containers outlive their daemon: remove the test's first.
		if ids, err := d.Docker("ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
			if out, err := d.Docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...); err != nil {
				t.Errorf("remove the test's containers: %v: %s", err, out)
			}
		}
		if err := d.Stop(); err != nil {
			t.Errorf("berthd: %v\n%s", err, d.Log())
		}
		os.RemoveAll(dir)
	})
	return d
}

// NewDir makes a short temporary directory for a daemon (unix socket
// paths are limited to 108 bytes). The caller removes it.
func NewDir() (string, error) { return os.MkdirTemp("", "bt") }

// Paths are the default roots and socket of a daemon in dir.
func Paths(dir string) (dataRoot, execRoot, socket string) {
	return filepath.Join(dir, "data"), filepath.Join(dir, "exec"), filepath.Join(dir, "berth.sock")
}

// Launch starts bin with dir's roots and socket unless args set them
// (--data-root, --exec-root, -H), and an empty --config-file, and waits
// until it answers on its first unix socket. A daemon that exits first is
// an error carrying its output.
func Launch(bin, dir string, args ...string) (*Daemon, error) {
	dataRoot, execRoot, socket := Paths(dir)
	d := &Daemon{bin: bin, args: args, Dir: dir, DataRoot: dataRoot, ExecRoot: execRoot, Socket: socket,
		DockerConfig: filepath.Join(dir, "docker-config"), LogPath: filepath.Join(dir, "berthd.log")}
	has := func(flags ...string) (string, bool) {
		for i, a := range args {
			for _, f := range flags {
				if a == f && i+1 < len(args) {
					return args[i+1], true
				}
				if v, ok := strings.CutPrefix(a, f+"="); ok {
					return v, true
				}
			}
		}
		return "", false
	}
	full := []string{}
	if v, ok := has("--data-root"); ok {
		d.DataRoot = v
	} else {
		full = append(full, "--data-root", dataRoot)
	}
	if v, ok := has("--exec-root"); ok {
		d.ExecRoot = v
	} else {
		full = append(full, "--exec-root", execRoot)
	}
	if _, ok := has("--config-file"); !ok {
		empty := filepath.Join(dir, "daemon.json")
		if err := os.WriteFile(empty, []byte("{}\n"), 0o644); err != nil {
			return nil, err
		}
		full = append(full, "--config-file", empty)
	}
	hosts := 0
	var unixSock string
	for i, a := range args {
		if (a == "-H" || a == "--host") && i+1 < len(args) {
			hosts++
			if p, ok := strings.CutPrefix(args[i+1], "unix://"); ok && unixSock == "" {
				unixSock = p
			}
		}
	}
	if hosts == 0 {
		full = append(full, "-H", "unix://"+socket)
		unixSock = socket
	}
	d.Socket = unixSock
	d.Host = "unix://" + unixSock
	if err := os.MkdirAll(d.DockerConfig, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.Create(d.LogPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	d.cmd = exec.Command(bin, append(full, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start berthd: %w", err)
	}
	d.done = make(chan struct{})
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	if unixSock == "" {
		// TCP only: the caller probes it.
		time.Sleep(500 * time.Millisecond)
		return d, d.exited()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := d.exited(); err != nil {
			return nil, err
		}
		if Ping(unixSock) == nil {
			return d, nil
		}
		if time.Now().After(deadline) {
			d.kill()
			return nil, fmt.Errorf("berthd did not answer on %s within 20s\n%s", unixSock, d.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exited is an error when the daemon is gone.
func (d *Daemon) exited() error {
	select {
	case <-d.done:
		return fmt.Errorf("berthd exited: %v\n%s", d.err, d.Log())
	default:
		return nil
	}
}

// Wait waits up to timeout for the daemon to exit by itself and returns
// its exit error (nil for status 0).
func (d *Daemon) Wait(timeout time.Duration) error {
	select {
	case <-d.done:
		return d.err
	case <-time.After(timeout):
		return errors.New("berthd still running")
	}
}

// Ping asks the daemon on socket for /_ping.
func Ping(socket string) error {
	c := UnixClient(socket)
	resp, err := c.Get("http://berth/_ping")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/_ping: %s", resp.Status)
	}
	return nil
}

// UnixClient is an HTTP client speaking to socket (any host name).
func UnixClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
}

// Log is the daemon's output so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.LogPath)
	return string(b)
}

// Stop sends SIGTERM to the daemon's PID and waits for it to exit (SIGKILL
// after 20 s). An unclean exit is an error.
func (d *Daemon) Stop() error {
	select {
	case <-d.done:
		return nil
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return d.err
	case <-time.After(20 * time.Second):
		d.kill()
		return errors.New("berthd did not exit within 20s of SIGTERM; killed")
	}
}

func (d *Daemon) kill() {
	_ = d.cmd.Process.Kill()
	<-d.done
}

// DockerBinary is the docker CLI the tests drive by default; Debian's
// (20.10, API 1.41) is at /usr/bin/docker.
var DockerBinary = "/usr/bin/docker"

// Docker runs the docker CLI (DockerBinary) against the daemon with the
// daemon's private DOCKER_CONFIG; it returns stdout and stderr combined.
func (d *Daemon) Docker(args ...string) (string, error) {
	return d.DockerWith(DockerBinary, nil, args...)
}

// DockerWith runs the docker binary bin with stdin (may be nil).
func (d *Daemon) DockerWith(bin string, stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-H", d.Host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+d.DockerConfig)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Must is Docker that fails t on error.
func (d *Daemon) Must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := d.Docker(args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}
