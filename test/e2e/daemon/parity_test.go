package daemon_test

import (
	"testing"
	"time"
)

// TestLogsFollowCreated: docker logs -f on a container that never ran
// returns at once, empty and successful, as dockerd.
func TestLogsFollowCreated(t *testing.T) {
	d := withBusybox(t)
	d.Must(t, "create", "--name", "cl", "busybox", "echo", "hi")
	start := time.Now()
	out, code := docker(t, d, "logs", "-f", "cl")
	if out != "" || code != 0 {
		t.Errorf("logs -f of a created container: %q, exit %d", out, code)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("logs -f of a created container took %v", el)
	}
}
