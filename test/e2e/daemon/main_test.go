// Package daemon_test drives berthd end to end as root: one daemon per
// test with temporary roots and socket, spoken to by the real docker CLI
// (Debian's 20.10, API 1.41, and a newer one when installed) and the
// official moby Go client, and compared with a private dockerd 20.10
// where output shapes matter.
package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/images"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if _, err := berthd.Build(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	berthd.Cleanup()
	os.Exit(code)
}

// start runs a berthd for a root test.
func start(t *testing.T, args ...string) *berthd.Daemon {
	t.Helper()
	testutil.RequireRoot(t)
	return berthd.Start(t, args...)
}

// newClient is the moby client on d, negotiating the API version.
func newClient(t *testing.T, d *berthd.Daemon) *client.Client {
	t.Helper()
	c, err := client.New(client.WithHost(d.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// rawResponse is one raw API answer.
type rawResponse struct {
	Status int
	Header http.Header
	Body   string
}

// raw sends one request to the daemon on socket without any client
// library in between.
func raw(t *testing.T, socket, method, path, contentType, body string) rawResponse {
	t.Helper()
	req, err := http.NewRequest(method, "http://berth"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := berthd.UnixClient(socket).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResponse{resp.StatusCode, resp.Header, string(b)}
}

// message is the "message" of a JSON error body.
func message(t *testing.T, r rawResponse) string {
	t.Helper()
	var m struct{ Message string }
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("error body %q is not Docker's JSON: %v", r.Body, err)
	}
	return m.Message
}

// lines splits command output into trimmed, non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// busyboxLayout is the busybox fixture's OCI layout.
func busyboxLayout(t *testing.T) string { return images.Busybox(t).Layout }
