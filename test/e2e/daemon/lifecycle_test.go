package daemon_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthd"
)

// launchFails starts berthd with args in a fresh directory and expects it
// to exit with an error whose output contains want.
func launchFails(t *testing.T, want string, args ...string) {
	t.Helper()
	bin, err := berthd.Build()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := berthd.NewDir()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	d, err := berthd.Launch(bin, dir, args...)
	if err == nil {
		if werr := d.Wait(5 * time.Second); werr == nil || !strings.Contains(d.Log(), want) {
			d.Stop()
			t.Fatalf("berthd %v: started or failed differently (%v), want an error containing %q:\n%s", args, werr, want, d.Log())
		}
		return
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("berthd %v: %v\nwant an error containing %q", args, err, want)
	}
}

func TestTwoDaemonsAndLocks(t *testing.T) {
	a := start(t)
	b := start(t)
	ctx := ctxT(t)
	ia, err := newClient(t, a).Info(ctx, client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ib, err := newClient(t, b).Info(ctx, client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ia.Info.DockerRootDir == ib.Info.DockerRootDir || ia.Info.ID == ib.Info.ID {
		t.Errorf("two daemons share state: %s %s", ia.Info.DockerRootDir, ib.Info.DockerRootDir)
	}
	// The socket: mode 0660, root's.
	fi, err := os.Stat(a.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v", fi.Mode())
	}
	// Pidfile under the exec root.
	pid, err := os.ReadFile(filepath.Join(a.ExecRoot, "berthd.pid"))
	if err != nil || strings.TrimSpace(string(pid)) != strconv.Itoa(a.PID()) {
		t.Errorf("pidfile: %q %v (pid %d)", pid, err, a.PID())
	}

	// Another daemon on a's socket, or a's data root, or a's exec root.
	launchFails(t, "in use by another berthd", "-H", a.Host)
	launchFails(t, "in use by another berthd", "--data-root", a.DataRoot)
	launchFails(t, "in use by another berthd", "--exec-root", a.ExecRoot)

	// a still serves after the refused starts.
	if err := berthd.Ping(a.Socket); err != nil {
		t.Fatalf("first daemon after refused starts: %v", err)
	}

	// SIGTERM: clean exit, socket and pidfile gone.
	if err := a.Stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, a.Log())
	}
	for _, p := range []string{a.Socket, filepath.Join(a.ExecRoot, "berthd.pid")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after SIGTERM: %v", p, err)
		}
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	testutil.RequireRoot(t)
	dir, err := berthd.NewDir()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "stale.sock")
	// A crashed daemon's socket: the file stays, nobody listens.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	d := start(t, "-H", "unix://"+sock)
	if err := berthd.Ping(sock); err != nil || d.Socket != sock {
		t.Fatalf("daemon on a stale socket: %v", err)
	}
}

func TestConfigFile(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	launchFails(t, "the following directives don't match any configuration option: bogus",
		"--config-file", write("unknown.json", `{"bogus": true}`))
	launchFails(t, "the following directives are specified both as a flag and in the configuration file: log-level: (from flag: debug, from file: \"warn\")",
		"--log-level", "debug", "--config-file", write("conflict.json", `{"log-level": "warn"}`))
	launchFails(t, "no such file or directory", "--config-file", filepath.Join(dir, "missing.json"))
	launchFails(t, "unable to configure the daemon with file", "--config-file", write("bad.json", `{"debug": "yes"`))

	// The file's values are used.
	d := start(t, "--config-file", write("good.json", `{"registry-mirrors": ["https://mirror.example.com"], "insecure-registries": ["reg.example.com:5000"], "experimental": true}`))
	res, err := newClient(t, d).Info(ctxT(t), client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc := res.Info.RegistryConfig
	if !res.Info.ExperimentalBuild || rc == nil || len(rc.Mirrors) != 1 || rc.IndexConfigs["reg.example.com:5000"] == nil {
		t.Errorf("config file not applied: experimental %v registry %+v", res.Info.ExperimentalBuild, rc)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestTCP(t *testing.T) {
	testutil.RequireRoot(t)
	port := freePort(t)
	tcp := "tcp://127.0.0.1:" + strconv.Itoa(port)
	launchFails(t, "--allow-plain-tcp", "-H", tcp)
	launchFails(t, "--tlsverify needs --tlscacert, --tlscert, --tlskey", "-H", tcp, "--tlsverify")

	// TLS with client verification: a CA, a server and a client cert.
	dir := t.TempDir()
	ca, caKey := newCert(t, dir, "ca", nil, nil, true)
	newCert(t, dir, "server", ca, caKey, false)
	newCert(t, dir, "client", ca, caKey, false)
	newCert(t, dir, "otherca", nil, nil, true)
	p := func(n string) string { return filepath.Join(dir, n) }
	d := start(t, "-H", tcp, "-H", "unix://"+filepath.Join(dir, "s.sock"),
		"--tlsverify", "--tlscacert", p("ca.pem"), "--tlscert", p("server.pem"), "--tlskey", p("server-key.pem"))
	ctx := ctxT(t)
	c, err := client.New(client.WithHost(tcp), client.WithTLSClientConfig(p("ca.pem"), p("client.pem"), p("client-key.pem")), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil || v.APIVersion != "1.56" {
		t.Fatalf("version over TLS: %v %+v", err, v)
	}
	// Without a client certificate (or with one of another CA): refused.
	for _, certs := range [][2]string{{"", ""}, {p("otherca.pem"), p("otherca-key.pem")}} {
		opts := []client.Opt{client.WithHost(tcp), client.WithAPIVersion("1.41")}
		if certs[0] == "" {
			opts = append(opts, client.WithTLSClientConfig(p("ca.pem"), "", ""))
		} else {
			opts = append(opts, client.WithTLSClientConfig(p("ca.pem"), certs[0], certs[1]))
		}
		bad, err := client.New(opts...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bad.ServerVersion(ctx, client.ServerVersionOptions{}); err == nil {
			t.Errorf("client cert %q accepted", certs[0])
		}
		bad.Close()
	}
	// The unix socket of the same daemon still serves docker 20.10.
	out, err := d.DockerWith("/usr/bin/docker", nil, "version", "--format", "{{.Server.APIVersion}}")
	if err != nil || strings.TrimSpace(out) != "1.56" {
		t.Errorf("docker over the unix socket of a TLS daemon: %v %q", err, out)
	}

	// Plain TCP when forced.
	port2 := freePort(t)
	start(t, "-H", "tcp://127.0.0.1:"+strconv.Itoa(port2), "-H", "unix://"+filepath.Join(dir, "p.sock"), "--allow-plain-tcp")
	pc, err := client.New(client.WithHost("tcp://127.0.0.1:"+strconv.Itoa(port2)), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.Ping(ctx, client.PingOptions{}); err != nil {
		t.Errorf("forced plain TCP: %v", err)
	}
}

// newCert writes name.pem and name-key.pem into dir: a CA (self-signed)
// or a leaf for 127.0.0.1 signed by parent, usable by servers and clients.
func newCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "berth test " + name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	signer, signerKey := tmpl, key
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}
