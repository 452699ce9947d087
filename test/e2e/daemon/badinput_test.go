package daemon_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	registrytypes "github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/registry"
)

func TestBadInput(t *testing.T) {
	d := start(t)
	for _, c := range []struct {
		method, path, ctype, body string
		status                    int
		msg                       string
	}{
		{"POST", "/v1.41/containers/create", "application/json", `{"Image": `, 400, "invalid JSON: unexpected EOF"},
		{"POST", "/v1.41/containers/create", "application/json", `{"Image": "x"} {}`, 400, "unexpected content after JSON"},
		{"POST", "/v1.41/containers/create", "text/plain", `{}`, 400, "unsupported Content-Type header (text/plain): must be 'application/json'"},
		{"POST", "/v1.41/containers/create", "application/json", ``, 400, "config cannot be empty in order to create a container"},
		{"POST", "/v1.41/auth", "application/json", `{"username": 1}`, 400, "invalid JSON: json: cannot unmarshal number into Go struct field AuthConfig.username of type string"},
		{"GET", `/v1.41/images/json?filters={"nope":{"x":true}}`, "", "", 400, "invalid filter 'nope'"},
		{"GET", `/v1.41/images/json?filters={bad`, "", "", 400, ""},
		{"GET", `/v1.41/events?since=yesterday`, "", "", 400, `invalid timestamp "yesterday"`},
		{"DELETE", "/v1.41/images/nosuch", "", "", 404, "No such image: nosuch:latest"},
		{"POST", "/v1.41/images/nosuch/tag?repo=x", "", "", 404, "No such image: nosuch:latest"},
		{"POST", "/v1.41/images/create?fromSrc=http://example.com/x.tar", "", "", 501, ""},
		{"POST", "/v1.41/containers/x/wait?condition=sometimes", "", "", 400, `invalid condition: "sometimes"`},
		{"GET", "/v1.41/containers/x/logs", "", "", 400, "Bad parameters: you must choose at least one stream"},
		{"POST", "/v1.41/containers/x/exec", "application/json", `{}`, 400, "No exec command specified"},
		{"POST", "/v1.41/exec/x/start", "application/json", `{}`, 404, ""},
	} {
		r := berthd.Raw(t, d.Socket, c.method, c.path, c.ctype, c.body)
		if r.Status != c.status || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s (%s), want %d", c.method, c.path, r.Status, r.Body, r.Header.Get("Content-Type"), c.status)
			continue
		}
		if m := r.Message(t); c.msg != "" && m != c.msg {
			t.Errorf("%s %s: message %q, want %q", c.method, c.path, m, c.msg)
		}
	}
	// The docker CLI shows a daemon's error as dockerd's are shown.
	out, err := d.Docker("start", "nosuch")
	if err == nil || strings.TrimSpace(out) != "Error response from daemon: No such container: nosuch\nError: failed to start containers: nosuch" {
		t.Errorf("docker start nosuch: %v %q", err, out)
	}
	if err := pingOK(d.Socket); err != nil {
		t.Fatalf("daemon after bad input: %v", err)
	}
}

func pingOK(socket string) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	resp, err := c.Get("http://berth/_ping")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// TestHostileClients: a client that never finishes its header does not
// hold others up and is cut off; clients that go away mid-stream (events,
// pull) leave the daemon serving.
func TestHostileClients(t *testing.T) {
	d := start(t)
	slow, err := net.Dial("unix", d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := io.WriteString(slow, "GET /_ping HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < 20; i++ {
		if err := pingOK(d.Socket); err != nil {
			t.Fatalf("ping beside a slow client: %v", err)
		}
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("20 pings beside a slow client took %v", time.Since(start))
	}

	// Events: subscribe and hang up, many times.
	c := newClient(t, d)
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		res := c.Events(ctx, client.EventsListOptions{})
		cancel()
		<-res.Err
	}
	// A pull whose client disconnects after the first bytes.
	reg := registry.Start(t)
	reg.Push(t, busyboxLayout(t), "bb:latest")
	conn, err := net.Dial("unix", d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "POST /v1.41/images/create?fromImage="+reg.Host+"/bb&tag=latest HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("pull status line %q %v", line, err)
	}
	conn.Close()
	if err := pingOK(d.Socket); err != nil {
		t.Fatalf("daemon after a client left mid-pull: %v", err)
	}
	// The same pull completes for a client that stays.
	d.Must(t, "pull", reg.Host+"/bb:latest")

	// The slow client is cut off by the header timeout.
	slow.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadAll(slow); err != nil {
		t.Errorf("slow client not cut off: %v", err)
	}
	if waited := time.Since(start); waited > 15*time.Second {
		t.Errorf("slow client cut off after %v", waited)
	}
}

func TestLogin(t *testing.T) {
	d := start(t)
	reg := registry.Start(t, registry.WithBasicAuth("alice", "s3cret"))
	reg.Push(t, busyboxLayout(t), "private/bb:latest")
	ref := reg.Host + "/private/bb:latest"

	// Not logged in: the daemon answers 401, on which the CLI asks for a
	// login (impossible without a terminal).
	out, err := d.Docker("pull", ref)
	if err == nil || !strings.Contains(out, "Please login prior to pull") {
		t.Errorf("anonymous pull from an auth registry: %v %q", err, out)
	}
	out, err = d.Docker("login", "-u", "alice", "-p", "wrong", reg.Host)
	if err == nil || !strings.Contains(out, "unauthorized") {
		t.Errorf("login with a wrong password: %v %q", err, out)
	}
	out = d.Must(t, "login", "-u", "alice", "-p", "s3cret", reg.Host)
	if !strings.Contains(out, "Login Succeeded") {
		t.Errorf("login: %q", out)
	}
	// The daemon keeps the credentials for its pulls and pushes.
	d.Must(t, "pull", ref)
	d.Must(t, "tag", ref, reg.Host+"/private/copy:1")
	d.Must(t, "push", reg.Host+"/private/copy:1")
	// The moby client's login answers Docker's shape.
	res, err := newClient(t, d).RegistryLogin(ctxT(t), client.RegistryLoginOptions{Username: "alice", Password: "s3cret", ServerAddress: reg.Host})
	if err != nil || res.Auth.Status != "Login Succeeded" {
		t.Errorf("moby login: %v %+v", err, res)
	}
	// Logout is the CLI's own business (it never asks the daemon).
	if out := d.Must(t, "logout", reg.Host); !strings.Contains(out, "Removing login credentials for "+reg.Host) {
		t.Errorf("logout: %q", out)
	}
}

// Credentials the client sends with a pull or push (X-Registry-Auth, what
// the docker CLI sends from its own config) serve a daemon that has none
// stored; wrong ones are refused.
func TestClientCredentials(t *testing.T) {
	d := start(t)
	reg := registry.Start(t, registry.WithBasicAuth("bob", "pa55"))
	reg.Push(t, busyboxLayout(t), "private/bb:latest")
	ref := reg.Host + "/private/bb:latest"
	c := newClient(t, d)
	authHeader := func(user, pass string) string {
		b, _ := json.Marshal(registrytypes.AuthConfig{Username: user, Password: pass, ServerAddress: reg.Host})
		return base64.URLEncoding.EncodeToString(b)
	}
	pull := func(auth string) error {
		rc, err := c.ImagePull(ctxT(t), ref, client.ImagePullOptions{RegistryAuth: auth})
		if err != nil {
			return err
		}
		defer rc.Close()
		return rc.Wait(ctxT(t))
	}
	if err := pull(authHeader("bob", "wrong")); err == nil {
		t.Fatal("a pull with wrong credentials succeeded")
	}
	if err := pull(authHeader("bob", "pa55")); err != nil {
		t.Fatalf("pull with the client's credentials: %v", err)
	}
	d.Must(t, "tag", ref, reg.Host+"/private/again:1")
	rc, err := c.ImagePush(ctxT(t), reg.Host+"/private/again:1", client.ImagePushOptions{RegistryAuth: authHeader("bob", "pa55")})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.Wait(ctxT(t)); err != nil {
		t.Fatalf("push with the client's credentials: %v", err)
	}
	if !slices.Contains(reg.Catalog(t), "private/again") {
		t.Errorf("pushed repository missing: %v", reg.Catalog(t))
	}
}
