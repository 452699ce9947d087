// Package daemon_test drives berthd end to end as root: one daemon per
// test with temporary roots and socket, spoken to by the real docker CLI
// (Debian's 20.10, API 1.41, and a newer one when installed) and the
// official moby Go client, and compared with a private dockerd 20.10
// where output shapes matter.
package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/images"
)

func TestMain(m *testing.M) { berthd.Main(m) }

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

// busyboxLayout is the busybox fixture's OCI layout.
func busyboxLayout(t *testing.T) string { return images.Busybox(t).Layout }
