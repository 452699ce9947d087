package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil/images"
	"github.com/berth-dev/berth/internal/testutil/registry"
	"github.com/berth-dev/berth/runtime/mountinfo"
)

// BerthPull pulls ref (from a plain-HTTP loopback registry) into an empty
// store rooted at root, unpacking every layer. The bench command sets it.
var BerthPull func(ctx context.Context, ref, root string) error

// PullSystems are the image pullers measured side by side: berth (in
// process), skopeo copy to an OCI layout plus umoci unpack, podman pull,
// and docker pull into a private dockerd.
func PullSystems() []System {
	systems := []System{{Name: "berth"}} // in process: no binary
	if BerthPull == nil {
		systems[0].Missing = "no pull implementation linked"
	}
	for _, a := range []struct{ name, bins string }{
		{"skopeo+umoci", "skopeo umoci"}, {"podman", "podman"}, {"docker", "dockerd docker"},
	} {
		s := System{Name: a.name, Binary: strings.Fields(a.bins)[0], Anchor: true}
		for _, b := range strings.Fields(a.bins) {
			if _, err := exec.LookPath(b); err != nil {
				s.Missing = fmt.Sprintf("binary %q not found", b)
			}
		}
		systems = append(systems, s)
	}
	return systems
}

// PullScenario serves the generated image from a loopback registry and
// measures a cold pull, unpack included, into an empty store.
type PullScenario struct {
	Spec images.Spec
	reg  *registry.Registry
	ref  string // host/repo:tag
}

// NewPullScenario generates (or reuses from cache) the image, starts a
// registry under dir and pushes the image there. Close stops it.
func NewPullScenario(dir string, spec images.Spec) (*PullScenario, error) {
	img, err := images.CachedGenerated(spec)
	if err != nil {
		return nil, fmt.Errorf("generate image: %w", err)
	}
	reg, err := registry.Launch(dir)
	if err != nil {
		return nil, err
	}
	p := &PullScenario{Spec: spec, reg: reg, ref: reg.Host + "/bench/gen:latest"}
	out, err := exec.Command("skopeo", "copy", "--preserve-digests", "--dest-tls-verify=false",
		img.OCIRef(), "docker://"+p.ref).CombinedOutput()
	if err != nil {
		reg.Stop()
		return nil, fmt.Errorf("push fixture: %v: %s", err, out)
	}
	return p, nil
}

// Close stops the registry.
func (p *PullScenario) Close() error { return p.reg.Stop() }

// Name says what is pulled.
func (p *PullScenario) Name() string {
	return fmt.Sprintf("pull %d-layer %d MB image, cold, with unpack", p.Spec.Layers, p.Spec.Size>>20)
}

// Setup prepares one puller.
func (p *PullScenario) Setup(env *Env) (Trial, error) {
	switch env.System.Name {
	case "berth":
		return p.trial(env, func(root string) error {
			return BerthPull(context.Background(), p.ref, root)
		}, nil), nil
	case "skopeo+umoci":
		return p.trial(env, func(root string) error {
			if err := cmd("skopeo", "copy", "--src-tls-verify=false", "docker://"+p.ref, "oci:"+root+"/layout:gen"); err != nil {
				return err
			}
			return cmd("umoci", "raw", "unpack", "--image", root+"/layout:gen", root+"/rootfs")
		}, nil), nil
	case "podman":
		t := p.trial(env, func(root string) error {
			return cmd("podman", "--root", root+"/root", "--runroot", root+"/run", "--tmpdir", root+"/tmp",
				"--storage-driver", "overlay", "--events-backend", "file", "--cgroup-manager", "cgroupfs",
				"pull", "--quiet", "--tls-verify=false", p.ref)
		}, nil)
		// podman writes these whatever --root says.
		var made []string
		for _, d := range []string{"/var/lib/containers", "/run/containers"} {
			if _, err := os.Stat(d); os.IsNotExist(err) {
				made = append(made, d)
			}
		}
		return t.withTeardown(func() error {
			for _, d := range made {
				os.RemoveAll(d)
			}
			return nil
		}), nil
	case "docker":
		d, err := startDockerd(env.Dir)
		if err != nil {
			return nil, err
		}
		return p.trial(env, func(string) error {
			return cmd("docker", "-H", d.host, "pull", "--quiet", p.ref)
		}, func() {
			cmd("docker", "-H", d.host, "rmi", "-f", p.ref)
		}).withTeardown(d.stop), nil
	}
	return nil, fmt.Errorf("no pull for system %s", env.System.Name)
}

// pullTrial times pull into a fresh directory and clears it afterwards
// (untimed): every iteration is a cold pull.
type pullTrial struct {
	env      *Env
	pull     func(root string) error
	reset    func()
	teardown func() error
	n        int
}

func (p *PullScenario) trial(env *Env, pull func(string) error, reset func()) *pullTrial {
	return &pullTrial{env: env, pull: pull, reset: reset}
}

func (t *pullTrial) withTeardown(f func() error) *pullTrial { t.teardown = f; return t }

func (t *pullTrial) Run() ([]Sample, error) {
	t.n++
	root := filepath.Join(t.env.Dir, fmt.Sprintf("p%d", t.n))
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	d, err := timed(func() error { return t.pull(root) })
	if t.reset != nil {
		t.reset()
	}
	clearDir(root)
	if err != nil {
		return nil, err
	}
	return []Sample{{D: d}}, nil
}

func (t *pullTrial) Teardown() error {
	if t.teardown != nil {
		return t.teardown()
	}
	return nil
}

// clearDir unmounts whatever a puller left mounted under dir, then removes it.
func clearDir(dir string) {
	if entries, err := mountinfo.Read(); err == nil {
		for _, mp := range mountinfo.Under(entries, dir) {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
	os.RemoveAll(dir)
}

func cmd(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// dockerd is a private Docker daemon: its own roots and socket, no bridge,
// no firewall rules. Loopback registries are insecure by default for it.
type dockerd struct {
	cmd     *exec.Cmd
	dir     string // exec root and socket
	data    string // data root
	host    string
	created []string // host paths dockerd made that were not there before
}

func startDockerd(parent string) (*dockerd, error) {
	// The exec root holds containerd's sockets: keep its path short.
	dir, err := os.MkdirTemp("", "bbd")
	if err != nil {
		return nil, err
	}
	d := &dockerd{dir: dir, data: filepath.Join(parent, "docker-data"), host: "unix://" + filepath.Join(dir, "docker.sock")}
	for _, p := range []string{"/run/docker", "/run/containerd", "/etc/docker/key.json"} {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			d.created = append(d.created, p)
		}
	}
	logf, err := os.Create(filepath.Join(parent, "dockerd.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	d.cmd = exec.Command("dockerd", "--data-root", d.data, "--exec-root", filepath.Join(dir, "e"),
		"--host", d.host, "--pidfile", filepath.Join(dir, "docker.pid"), "--bridge", "none",
		"--iptables=false", "--ip6tables=false", "--ip-masq=false", "--storage-driver", "overlay2")
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for cmd("docker", "-H", d.host, "version") != nil {
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("dockerd did not come up (see %s)", logf.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return d, nil
}

func (d *dockerd) stop() error {
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
	clearDir(d.dir)
	clearDir(d.data)
	for _, p := range d.created {
		os.RemoveAll(p)
	}
	return nil
}
