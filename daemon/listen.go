package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// host is a parsed -H value.
type host struct {
	proto string // "unix" or "tcp"
	addr  string // socket path or host:port
}

// parseHost reads "unix:///path" and "tcp://host:port" (dockerd's forms;
// a tcp host without a port gets dockerd's TLS port 2376).
func parseHost(h string) (host, error) {
	proto, addr, ok := strings.Cut(h, "://")
	if !ok {
		return host{}, fmt.Errorf("invalid host %q: expected unix:///path or tcp://host:port", h)
	}
	switch proto {
	case "unix":
		if addr == "" || !filepath.IsAbs(addr) {
			return host{}, fmt.Errorf("invalid host %q: the socket path must be absolute", h)
		}
		return host{proto: "unix", addr: filepath.Clean(addr)}, nil
	case "tcp":
		u, err := url.Parse(h)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return host{}, fmt.Errorf("invalid host %q: expected tcp://host:port", h)
		}
		hp := u.Host
		if _, _, err := net.SplitHostPort(hp); err != nil {
			hp = net.JoinHostPort(u.Hostname(), "2376")
		}
		if _, port, _ := net.SplitHostPort(hp); port != "" {
			if _, err := strconv.ParseUint(port, 10, 16); err != nil {
				return host{}, fmt.Errorf("invalid host %q: bad port %q", h, port)
			}
		}
		return host{proto: "tcp", addr: hp}, nil
	}
	return host{}, fmt.Errorf("invalid host %q: unsupported protocol %q (unix or tcp)", h, proto)
}

// listenUnix creates the API socket at path, mode 0660 and group "berth"
// when that group exists. A socket file that a live daemon answers on is
// refused; one nobody answers on is stale (a crashed daemon's) and
// replaced.
func listenUnix(path string, log *slog.Logger) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket directory for %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("socket %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s: another daemon is listening on it", path)
		}
		log.Info("removing stale socket", "path", path)
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	// The socket is created with the umask applied: create it closed to
	// everyone, then open it to the group, so that there is no moment
	// where others may connect.
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	gid := 0
	if g, err := user.LookupGroup("berth"); err == nil {
		if n, err := strconv.Atoi(g.Gid); err == nil {
			gid = n
		}
	}
	if err := os.Chown(path, 0, gid); err != nil && !errors.Is(err, syscall.EPERM) {
		l.Close()
		return nil, fmt.Errorf("chown socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod socket %s: %w", path, err)
	}
	return l, nil
}

// listenTCP listens on addr, with TLS client verification unless the
// configuration forces plain TCP.
func listenTCP(addr string, cfg *Config) (net.Listener, error) {
	var tlsCfg *tls.Config
	switch {
	case cfg.TLSVerify:
		var err error
		if tlsCfg, err = serverTLS(cfg); err != nil {
			return nil, err
		}
	case !cfg.AllowPlainTCP:
		return nil, fmt.Errorf("refusing to serve tcp://%s without TLS client verification (--tlsverify with --tlscacert, --tlscert, --tlskey): anyone reaching the port would be root on this machine; --allow-plain-tcp forces it", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on tcp://%s: %w", addr, err)
	}
	if tlsCfg != nil {
		l = tls.NewListener(l, tlsCfg)
	}
	return l, nil
}

// serverTLS is the TLS configuration of --tlsverify: our certificate, and
// client certificates required and verified against the CA.
func serverTLS(cfg *Config) (*tls.Config, error) {
	var missing []string
	for _, f := range []struct{ name, val string }{{"--tlscacert", cfg.TLSCACert}, {"--tlscert", cfg.TLSCert}, {"--tlskey", cfg.TLSKey}} {
		if f.val == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("--tlsverify needs %s", strings.Join(missing, ", "))
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
	}
	caPEM, err := os.ReadFile(cfg.TLSCACert)
	if err != nil {
		return nil, fmt.Errorf("read TLS CA %s: %w", cfg.TLSCACert, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("TLS CA %s: no PEM certificate in it", cfg.TLSCACert)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}
