// Package registry runs real OCI distribution registries for tests:
// Debian's docker-registry (distribution 2.8) on 127.0.0.1 with a free
// port, a temporary storage directory and a generated config, optionally
// behind htpasswd basic auth, Docker token auth (a token server written
// here, on 127.0.0.1) and TLS (a self-signed certificate). The registry is
// stopped by PID when the test ends.
//
// It also wraps skopeo (Debian's) for pushing fixtures and inspecting what
// a registry holds, with a private HOME so host credentials never leak in.
package registry

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Binary is Debian's docker-registry (package docker-registry).
const Binary = "/usr/bin/docker-registry"

// Registry is a running docker-registry.
type Registry struct {
	// Host is "127.0.0.1:PORT", as image references name it.
	Host string
	// URL is "http://Host" or, with WithTLS, "https://Host".
	URL string
	// Username and Password are the credentials clients must send (basic
	// auth, or to the token server with token auth); empty when anonymous.
	Username, Password string
	// CACert is the PEM certificate clients must trust (WithTLS only).
	CACert string
	// TokenRealm is the token server's URL (WithTokenAuth only).
	TokenRealm string
	// Dir holds the config, the storage and the registry's log.
	Dir string

	opts   options
	cmd    *exec.Cmd
	done   chan struct{}
	token  *tokenServer
	client *http.Client
}

type options struct {
	user, pass string
	token      bool
	tls        bool
}

// Option configures Start.
type Option func(*options)

// WithBasicAuth requires credentials: htpasswd (bcrypt) basic auth at the
// registry, or, combined with WithTokenAuth, basic credentials on token
// requests (anonymous token requests are then refused).
func WithBasicAuth(user, pass string) Option {
	return func(o *options) { o.user, o.pass = user, pass }
}

// WithTokenAuth puts the registry behind Docker token auth: clients are
// sent to a token server (in this process, on 127.0.0.1) that issues ES256
// JWTs for the scopes they ask for.
func WithTokenAuth() Option { return func(o *options) { o.token = true } }

// WithTLS serves the registry over HTTPS with a self-signed certificate
// for 127.0.0.1 (see Registry.CACert).
func WithTLS() Option { return func(o *options) { o.tls = true } }

// Start runs a registry for the test and stops it (by PID) when the test
// ends. It fails the test when the registry does not answer /v2/.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	r, err := Launch(t.TempDir(), opts...)
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Errorf("registry: stop: %v", err)
		}
	})
	return r
}

// Launch is Start without a test: the registry keeps its files in dir and
// runs until Stop (benchmarks use it).
func Launch(dir string, opts ...Option) (*Registry, error) {
	if _, err := os.Stat(Binary); err != nil {
		return nil, fmt.Errorf("%w (install docker-registry)", err)
	}
	r := &Registry{Dir: dir}
	for _, o := range opts {
		o(&r.opts)
	}
	r.Username, r.Password = r.opts.user, r.opts.pass
	var auth string
	switch {
	case r.opts.token:
		ts, err := newTokenServer(dir, r.opts.user, r.opts.pass)
		if err != nil {
			return nil, err
		}
		r.token, r.TokenRealm = ts, ts.realm()
		auth = fmt.Sprintf("auth:\n  token:\n    realm: %q\n    service: %q\n    issuer: %q\n    rootcertbundle: %q\n",
			ts.realm(), tokenService, tokenIssuer, ts.certFile)
	case r.opts.user != "":
		hash, err := bcrypt.GenerateFromPassword([]byte(r.opts.pass), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(r.opts.user+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, err
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-test\n    path: %q\n", htpasswd)
	}
	var tlsConf string
	if r.opts.tls {
		cert, key, err := writeSelfSigned(dir, "registry")
		if err != nil {
			return nil, err
		}
		r.CACert = cert
		tlsConf = fmt.Sprintf("  tls:\n    certificate: %q\n    key: %q\n", cert, key)
	}
	storage := filepath.Join(dir, "storage")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return nil, err
	}
	// A port taken between probing and binding makes the registry exit:
	// try again with another.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		r.Host = fmt.Sprintf("127.0.0.1:%d", port)
		r.URL = "http://" + r.Host
		if r.opts.tls {
			r.URL = "https://" + r.Host
		}
		config := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: %s
%s%s`, storage, r.Host, randomHex(16), tlsConf, auth)
		configPath := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
			return nil, err
		}
		if lastErr = r.run(configPath); lastErr == nil {
			return r, nil
		}
		if !strings.Contains(lastErr.Error(), "address already in use") {
			break
		}
	}
	if r.token != nil {
		r.token.close()
	}
	return nil, lastErr
}

// run starts the process and waits until /v2/ answers.
func (r *Registry) run(configPath string) error {
	logPath := filepath.Join(r.Dir, "registry.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(Binary, "serve", configPath)
	// No REGISTRY_* variables from the host: they would override the config.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + r.Dir}
	cmd.Dir = r.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", Binary, err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(r.done) }()

	bare := r.Client().Transport.(*authTransport).base
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-r.done:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("docker-registry exited: %v\n%s", cmd.ProcessState, log)
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, r.URL+"/v2/", nil)
		resp, err := bare.RoundTrip(req) // no auth: any answer will do
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		if time.Now().After(deadline) {
			r.kill()
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("docker-registry on %s did not answer /v2/ within 15s (last error %v)\n%s", r.Host, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PID is the registry process's id.
func (r *Registry) PID() int { return r.cmd.Process.Pid }

// LogPath is the registry's log file.
func (r *Registry) LogPath() string { return filepath.Join(r.Dir, "registry.log") }

// Stop terminates the registry (SIGTERM, then SIGKILL after 5 s), reaps it,
// and shuts the token server down. Calling it again does nothing.
func (r *Registry) Stop() error {
	if r.token != nil {
		r.token.close()
	}
	if r.cmd == nil {
		return nil
	}
	select {
	case <-r.done:
		return nil
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		r.kill()
	}
	if err := syscall.Kill(r.PID(), 0); !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("docker-registry pid %d still exists after stop", r.PID())
	}
	return nil
}

func (r *Registry) kill() {
	_ = r.cmd.Process.Kill()
	<-r.done
}

// Ref returns the docker:// reference (skopeo's transport) of repoTag,
// e.g. "docker://127.0.0.1:5000/library/busybox:latest".
func (r *Registry) Ref(repoTag string) string { return "docker://" + r.Host + "/" + repoTag }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Skopeo runs skopeo with --insecure-policy and a private HOME, auth file
// and runtime dir (no host credentials), and returns its stdout; it fails
// the test when skopeo fails.
func Skopeo(t testing.TB, args ...string) string {
	t.Helper()
	out, err := SkopeoErr(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// SkopeoErr is Skopeo returning the error (with skopeo's stderr) instead of
// failing the test.
func SkopeoErr(t testing.TB, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command("skopeo", append([]string{"--insecure-policy"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_RUNTIME_DIR="+home,
		"REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"), "DOCKER_CONFIG="+filepath.Join(home, ".docker"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("skopeo %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// SkopeoFlags returns the skopeo flags to reach this registry as a source
// ("src") or destination ("dest"): TLS verification off and credentials.
func (r *Registry) SkopeoFlags(side string) []string {
	flags := []string{"--" + side + "-tls-verify=false"}
	if r.Username != "" {
		flags = append(flags, "--"+side+"-creds="+r.Username+":"+r.Password)
	}
	return flags
}

// Push copies src into the registry as repoTag with skopeo. src is a
// skopeo reference ("oci:dir:tag", "docker-archive:file", ...), or a path:
// a directory is taken as an OCI layout (its only image), a file as a
// docker-archive. OCI layouts are pushed byte for byte (--preserve-digests:
// the manifest digest stays the fixture's); a docker-archive's layers are
// compressed by skopeo. extra flags go to skopeo copy (e.g. "--all").
func (r *Registry) Push(t testing.TB, src, repoTag string, extra ...string) {
	t.Helper()
	if !strings.Contains(src, ":") || strings.HasPrefix(src, "/") {
		if fi, err := os.Stat(src); err == nil && fi.IsDir() {
			src = "oci:" + src
		} else {
			src = "docker-archive:" + src
		}
	}
	args := append([]string{"copy", "--quiet"}, r.SkopeoFlags("dest")...)
	if strings.HasPrefix(src, "oci:") {
		// Keep the fixture's bytes: skopeo would otherwise gzip the
		// uncompressed layers on the way to a registry.
		args = append(args, "--preserve-digests")
	}
	args = append(args, extra...)
	Skopeo(t, append(args, src, r.Ref(repoTag))...)
}

// CopyFile copies src to dst (e.g. CACert into a skopeo --cert-dir).
func CopyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
