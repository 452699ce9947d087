package walls_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthd"
)

// TestUsernsRemapRefused: berthd does not remap user namespaces yet, so
// it refuses to start with the option (flag or daemon.json) rather than
// run containers as the host's root behind the user's back.
func TestUsernsRemapRefused(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	bin, err := berthd.Build()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "daemon.json")
	empty := filepath.Join(dir, "empty.json")
	if err := os.WriteFile(conf, []byte(`{"userns-remap": "default"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"), "-H", "unix://" + filepath.Join(dir, "s.sock")}
	for _, args := range [][]string{
		append([]string{"--userns-remap", "default", "--config-file", empty}, base...),
		append([]string{"--config-file", conf}, base...),
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), "userns-remap") || !strings.Contains(string(out), "not supported") {
			t.Errorf("berthd %v: %v: %s", args, err, out)
		}
	}
}
