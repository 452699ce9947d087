package daemon_test

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/api/server"
	"github.com/berth-dev/berth/internal/testutil/berthd"
)

func TestVersionNegotiation(t *testing.T) {
	d := start(t)
	ctx := ctxT(t)
	c := newClient(t, d)

	ping, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		t.Fatal(err)
	}
	if ping.APIVersion != server.APIVersion || ping.OSType != "linux" {
		t.Errorf("ping: API %q OS %q", ping.APIVersion, ping.OSType)
	}
	if c.ClientVersion() != server.APIVersion {
		t.Errorf("moby client negotiated %s, want %s", c.ClientVersion(), server.APIVersion)
	}
	v, err := c.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v.APIVersion != server.APIVersion || v.MinAPIVersion != server.MinAPIVersion || v.Os != "linux" || v.Platform.Name == "" {
		t.Errorf("version: %+v", v)
	}

	// Debian's docker 20.10 speaks 1.41, our minimum.
	out := d.Must(t, "version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}} {{.Server.MinAPIVersion}}")
	if got := strings.TrimSpace(out); got != "1.41 1.56 1.41" {
		t.Errorf("docker 20.10 version: %q", got)
	}
	// A newer CLI, when there is one, negotiates its own maximum.
	if newer, err := exec.LookPath("/usr/local/bin/docker"); err == nil {
		out, err := d.DockerWith(newer, nil, "version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}}")
		if err != nil {
			t.Fatalf("%s version: %v\n%s", newer, err, out)
		}
		f := strings.Fields(out)
		if len(f) != 2 || f[1] != server.APIVersion {
			t.Errorf("newer docker version: %q", out)
		}
	}

	// Versions outside the range, in dockerd's words.
	r := berthd.Raw(t, d.Socket, "GET", "/v1.57/version", "", "")
	if r.Status != http.StatusBadRequest || r.Message(t) != "client version 1.57 is too new. Maximum supported API version is 1.56" {
		t.Errorf("too new: %d %s", r.Status, r.Body)
	}
	r = berthd.Raw(t, d.Socket, "GET", "/v1.40/info", "", "")
	if r.Status != http.StatusBadRequest || r.Message(t) != "client version 1.40 is too old. Minimum supported API version is 1.41, please upgrade your client to a newer version" {
		t.Errorf("too old: %d %s", r.Status, r.Body)
	}
	// Headers dockerd sends, and _ping's body.
	r = berthd.Raw(t, d.Socket, "GET", "/v1.41/_ping", "", "")
	if r.Status != 200 || r.Body != "OK" {
		t.Errorf("ping: %d %q", r.Status, r.Body)
	}
	for k, want := range map[string]string{"Api-Version": "1.56", "Ostype": "linux", "Docker-Experimental": "false", "Swarm": "inactive", "Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("ping header %s = %q, want %q", k, got, want)
		}
	}
	if !strings.HasPrefix(r.Header.Get("Server"), "Berth/") {
		t.Errorf("Server header %q", r.Header.Get("Server"))
	}
	r = berthd.Raw(t, d.Socket, "HEAD", "/_ping", "", "")
	if r.Status != 200 || r.Body != "" || r.Header.Get("Api-Version") != "1.56" {
		t.Errorf("HEAD ping: %d %q %v", r.Status, r.Body, r.Header)
	}
	r = berthd.Raw(t, d.Socket, "GET", "/v1.41/no/such/route", "", "")
	if r.Status != http.StatusNotFound || r.Message(t) != "page not found" {
		t.Errorf("unknown route: %d %s", r.Status, r.Body)
	}
}

func TestInfo(t *testing.T) {
	d := start(t, "--registry-mirror", "https://mirror.example.com", "--insecure-registry", "myregistry:5000")
	ctx := ctxT(t)
	c := newClient(t, d)
	res, err := c.Info(ctx, client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info := res.Info
	host, _ := os.Hostname()
	if info.ID == "" || info.DockerRootDir != d.DataRoot || info.Images != 0 || info.Containers != 0 ||
		info.OSType != "linux" || info.NCPU == 0 || info.MemTotal == 0 || info.KernelVersion == "" ||
		info.CgroupDriver != "cgroupfs" || info.CgroupVersion == "" || info.Name != host || info.Driver == "" {
		t.Errorf("info: %+v", info)
	}
	rc := info.RegistryConfig
	if rc == nil || len(rc.Mirrors) != 1 || rc.Mirrors[0] != "https://mirror.example.com/" ||
		rc.IndexConfigs["myregistry:5000"] == nil || rc.IndexConfigs["myregistry:5000"].Secure {
		t.Errorf("registry config: %+v", rc)
	}
	// docker 20.10 renders it.
	out := d.Must(t, "info", "--format", "{{.DockerRootDir}} {{.OSType}} {{.Images}}")
	if strings.TrimSpace(out) != d.DataRoot+" linux 0" {
		t.Errorf("docker info: %q", out)
	}
	out = d.Must(t, "info")
	for _, want := range []string{"Server Version:", "Storage Driver:", "Docker Root Dir: " + d.DataRoot, "https://mirror.example.com/", "myregistry:5000"} {
		if !strings.Contains(out, want) {
			t.Errorf("docker info lacks %q:\n%s", want, out)
		}
	}
}
