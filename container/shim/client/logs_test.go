package client_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/container/logs"
	"github.com/berth-dev/berth/container/shim"
	"github.com/berth-dev/berth/internal/testutil"
)

// Small max-size and max-file: the log rotates, keeps max-file files, and
// what is left reads back in order, ending with the last line written.
func TestLogRotation(t *testing.T) {
	c := create(t, func(c *shim.Config) { c.LogOptions = logs.Options{MaxSize: 4096, MaxFile: 3} },
		sh("i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done"))
	c.start()
	if e := c.wait(""); e.ExitCode != 0 {
		t.Fatalf("exit %d", e.ExitCode)
	}
	for _, suffix := range []string{"", ".1", ".2"} {
		st, err := os.Stat(c.cfg.LogPath + suffix)
		if err != nil {
			t.Fatalf("rotated file: %v", err)
		}
		// Rotation happens before the entry that would follow a full file.
		if st.Size() > 4096+200 {
			t.Errorf("%s is %d bytes, max-size 4096", c.cfg.LogPath+suffix, st.Size())
		}
	}
	if _, err := os.Stat(c.cfg.LogPath + ".3"); !os.IsNotExist(err) {
		t.Errorf("a fourth file exists with max-file 3: %v", err)
	}
	var got []string
	err := logs.Read(context.Background(), c.cfg.LogPath, logs.ReadOptions{Stdout: true, Stderr: true, Tail: -1}, func(e logs.Entry) error {
		got = append(got, strings.TrimSuffix(string(e.Line), "\n"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 50 || got[len(got)-1] != "line-1999" {
		t.Fatalf("read %d entries, last %q", len(got), got[len(got)-1])
	}
	first, _ := strconv.Atoi(strings.TrimPrefix(got[0], "line-"))
	for i, g := range got {
		if g != "line-"+strconv.Itoa(first+i) {
			t.Fatalf("entry %d is %q, want line-%d (entries must be contiguous)", i, g, first+i)
		}
	}
}

// `docker logs` over a running container: tail, since, and follow that
// picks up new lines (through rotations) and stops when the container is
// done.
func TestLogsFollowAcrossRotation(t *testing.T) {
	// The container waits for a file in its rootfs before printing the
	// second batch, so the test controls when output happens.
	// Files enough to hold everything: a follower that falls more than
	// max-file rotations behind loses entries (as with Docker), which is
	// not what this test is about.
	c := create(t, func(c *shim.Config) { c.LogOptions = logs.Options{MaxSize: 2048, MaxFile: 60} },
		sh(`i=0; while [ $i -lt 20 ]; do echo early-$i; i=$((i+1)); done
while [ ! -e /go ]; do sleep 0.05; done
i=0; while [ $i -lt 300 ]; do echo late-$i; echo err-$i >&2; i=$((i+1)); done`))
	c.start()
	// Wait for the first batch.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(c.cfg.LogPath)
		if strings.Contains(string(b), "early-19") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first batch never logged: %q", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var tail []string
	if err := logs.Read(ctx(t), c.cfg.LogPath, logs.ReadOptions{Stdout: true, Tail: 3}, func(e logs.Entry) error {
		tail = append(tail, string(e.Line))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(tail, "") != "early-17\nearly-18\nearly-19\n" {
		t.Errorf("tail 3: %q", tail)
	}
	// Follow stdout only, from the end of the first batch.
	done := make(chan struct{})
	var mu sync.Mutex
	var followed []string
	errc := make(chan error, 1)
	go func() {
		errc <- logs.Read(ctx(t), c.cfg.LogPath, logs.ReadOptions{Stdout: true, Tail: 1, Follow: true, Done: done}, func(e logs.Entry) error {
			mu.Lock()
			followed = append(followed, strings.TrimSuffix(string(e.Line), "\n"))
			mu.Unlock()
			return nil
		})
	}()
	time.Sleep(100 * time.Millisecond)
	since := time.Now()
	if err := os.WriteFile(c.bundle.Rootfs+"/go", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if e := c.wait(""); e.ExitCode != 0 {
		t.Fatalf("exit %d", e.ExitCode)
	}
	close(done)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("follow: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end after Done")
	}
	want := []string{"early-19"}
	for i := 0; i < 300; i++ {
		want = append(want, fmt.Sprintf("late-%d", i))
	}
	if strings.Join(followed, ",") != strings.Join(want, ",") {
		t.Errorf("followed %d entries: %q...; want %d", len(followed), followed[:min(5, len(followed))], len(want))
	}
	if _, err := os.Stat(c.cfg.LogPath + ".1"); err != nil {
		t.Errorf("the log never rotated during the follow: %v", err)
	}
	// since: only the second batch (what is left of it after rotation).
	var n int
	err := logs.Read(ctx(t), c.cfg.LogPath, logs.ReadOptions{Stderr: true, Tail: -1, Since: since}, func(e logs.Entry) error {
		if !strings.HasPrefix(string(e.Line), "err-") || e.Time.Before(since) {
			t.Errorf("since %v: got %q at %v", since, e.Line, e.Time)
		}
		n++
		return nil
	})
	if err != nil || n != 300 {
		t.Errorf("since: %d stderr entries, want 300 (err %v)", n, err)
	}
}

// `yes` floods stdout for a second: the shim keeps draining, answers
// requests meanwhile, rotates the log within its bounds, and stays small.
func TestFlood(t *testing.T) {
	c := create(t, func(c *shim.Config) { c.LogOptions = logs.Options{MaxSize: 1 << 20, MaxFile: 2} }, testutil.WithArgs("yes"))
	c.start()
	var maxRSS, maxPSS int
	deadline := time.Now().Add(time.Second)
	polls := 0
	for time.Now().Before(deadline) {
		st, err := c.s.State(ctx(t))
		if err != nil || st.Status != shim.StatusRunning {
			t.Fatalf("state during the flood: %+v %v", st, err)
		}
		polls++
		r, p := rss(c.s.ShimPid())
		maxRSS, maxPSS = max(maxRSS, r), max(maxPSS, p)
		time.Sleep(50 * time.Millisecond)
	}
	if err := c.s.Kill(ctx(t), syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if e := c.wait(""); e.ExitCode != 137 {
		t.Errorf("exit %d", e.ExitCode)
	}
	t.Logf("shim during a 1 s `yes` flood: max RSS %d kB, max PSS %d kB (%d state requests answered)", maxRSS, maxPSS, polls)
	var total int64
	for _, suffix := range []string{"", ".1"} {
		st, err := os.Stat(c.cfg.LogPath + suffix)
		if err != nil {
			t.Fatalf("log file: %v", err)
		}
		total += st.Size()
	}
	if _, err := os.Stat(c.cfg.LogPath + ".2"); !os.IsNotExist(err) {
		t.Errorf("more files than max-file: %v", err)
	}
	if total > 2*(1<<20)+4096 {
		t.Errorf("log files hold %d bytes, bound is 2 MiB", total)
	}
}

// The shim's memory while quiet containers run: RSS of one shim, and PSS
// with four shims sharing the executable's pages (what a host running many
// containers pays per container).
func TestShimRSS(t *testing.T) {
	var cs []*ctr
	for i := 0; i < 4; i++ {
		c := create(t, nil, testutil.WithArgs("sleep", "1000"))
		c.start()
		cs = append(cs, c)
	}
	time.Sleep(300 * time.Millisecond)
	for _, c := range cs {
		r, p := rss(c.s.ShimPid())
		if r == 0 {
			t.Fatalf("no RSS for shim %d", c.s.ShimPid())
		}
		t.Logf("shim %d with a running container: RSS %d kB, PSS %d kB (%s)", c.s.ShimPid(), r, p, rssSplit(c.s.ShimPid()))
	}
	c := cs[0]
	if os.Getenv("SHIM_SMAPS") != "" {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(c.s.ShimPid()) + "/smaps")
		var cur string
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 0 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
				cur = l
			}
			if strings.HasPrefix(l, "Rss:") && strings.TrimSpace(strings.TrimPrefix(l, "Rss:")) != "0 kB" {
				t.Logf("%s  %s", strings.TrimSpace(strings.TrimPrefix(l, "Rss:")), cur)
			}
		}
		st, _ := os.ReadFile("/proc/" + strconv.Itoa(c.s.ShimPid()) + "/status")
		t.Logf("%s", st)
	}
}

// The shim's Go runtime starts with one P, whatever the daemon's own
// GOMAXPROCS (see shimEnv).
func TestShimStartsWithOneP(t *testing.T) {
	t.Setenv("GOMAXPROCS", "4")
	c := create(t, nil, testutil.WithArgs("sleep", "1000"))
	c.start()
	env, err := os.ReadFile("/proc/" + strconv.Itoa(c.s.ShimPid()) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range strings.Split(string(env), "\x00") {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			got = append(got, kv)
		}
	}
	if len(got) != 1 || got[0] != "GOMAXPROCS=1" {
		t.Errorf("shim environment has %q, want just GOMAXPROCS=1", got)
	}
}
