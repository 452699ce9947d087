package stats

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/dockerd"
	"github.com/berth-dev/berth/internal/testutil/images"
)

// apiGet calls a private dockerd's Engine API and returns the body.
func apiGet(t *testing.T, d *dockerd.Daemon, path string) ([]byte, int) {
	t.Helper()
	sock := strings.TrimPrefix(d.Host, "unix://")
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://docker" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b, resp.StatusCode
}

// keyPaths flattens a JSON document into its object key paths. An empty
// array is recorded as "path[]" so that the shape of its elements is only
// compared when both documents have some: whether a container did block I/O
// depends on the page cache, not on the engine.
func keyPaths(v any, prefix string, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := prefix + "." + k
			out[p] = true
			keyPaths(e, p, out)
		}
	case []any:
		if len(x) == 0 {
			out[prefix+"[]"] = true
		}
		for _, e := range x {
			keyPaths(e, prefix+"[]", out)
		}
	}
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

// TestSameShapeAsDockerd runs the same container under a private dockerd
// 20.10 and under berth-runtime on this host and compares stats and top:
// the same JSON fields (but id and name, which the engine adds), the same
// memory.stat keys, the same limits, CPU count and ps titles.
func TestSameShapeAsDockerd(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.LeakCheck(t)
	parent := testutil.UniqueName(t)
	d := dockerd.Start(t, dockerd.Options{CgroupParent: "/" + parent})
	img, err := images.CachedBusybox(images.BusyboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Must(t, "load", "-i", img.Archive)
	script := "sleep 1001 & sleep 1002 & wait"

	for _, limited := range []bool{true, false} {
		t.Run(fmt.Sprintf("memory-limit=%v", limited), func(t *testing.T) {
			args := []string{"run", "-d", "--network", "none", "--pids-limit", "20"}
			var opts []testutil.Option
			if limited {
				args = append(args, "-m", "64m")
			} else {
				opts = append(opts, testutil.WithSpec(func(s *specs.Spec) { s.Linux.Resources.Memory = nil }))
			}
			id := strings.TrimSpace(d.Must(t, append(args, "busybox", "sh", "-c", script)...))
			theirs := decode(t, mustStats(t, d, id))

			c := start(t, []string{"sh", "-c", script}, opts...)
			waitPids(t, c, 3)
			// A one-shot stats call of dockerd carries a previous sample.
			prev := read(t, c)
			s := read(t, c)
			SetPrevious(s, prev)
			b, _ := json.Marshal(s)
			ours := decode(t, b)

			want, got := map[string]bool{}, map[string]bool{}
			keyPaths(theirs, "", want)
			keyPaths(ours, "", got)
			delete(want, ".id")
			delete(want, ".name")
			if missing, extra := diff(want, got), diff(got, want); len(missing) > 0 || len(extra) > 0 {
				t.Errorf("JSON fields differ from dockerd's:\nmissing %v\nextra %v\nours   %s", missing, extra, b)
			}
			for _, f := range []string{"memory_stats.limit", "pids_stats.limit", "pids_stats.current", "cpu_stats.online_cpus",
				"memory_stats.stats.hierarchical_memory_limit"} {
				if a, b := field(theirs, f), field(ours, f); !reflect.DeepEqual(a, b) {
					t.Errorf("%s: dockerd %v, ours %v", f, a, b)
				}
			}
		})
	}

	t.Run("top", func(t *testing.T) {
		id := strings.TrimSpace(d.Must(t, "run", "-d", "--network", "none", "busybox", "sh", "-c", script))
		c := start(t, []string{"sh", "-c", script})
		pids := waitPids(t, c, 3)
		refused := 0
		for _, args := range []string{"", "aux", "-o pid,comm", "-o comm", "--no-such-option", "-o user=PID"} {
			body, code := apiGet(t, d, "/containers/"+id+"/top?ps_args="+url.QueryEscape(args))
			ours, err := Top(pids, args)
			if code != http.StatusOK {
				var e struct{ Message string }
				json.Unmarshal(body, &e)
				if err == nil || err.Error() != e.Message {
					t.Errorf("top %q: dockerd says %d %q, ours %v", args, code, e.Message, err)
				}
				refused++
				continue
			}
			var theirs struct {
				Titles    []string
				Processes [][]string
			}
			if err := json.Unmarshal(body, &theirs); err != nil {
				t.Fatal(err)
			}
			if err != nil {
				t.Errorf("top %q: %v, dockerd answered %s", args, err, body)
				continue
			}
			if !reflect.DeepEqual(ours.Titles, theirs.Titles) || len(ours.Processes) != len(theirs.Processes) {
				t.Errorf("top %q:\n dockerd %q %q\n ours    %q %q", args, theirs.Titles, theirs.Processes, ours.Titles, ours.Processes)
			}
		}
		if refused != 3 {
			t.Errorf("dockerd refused %d of the ps arguments, want 3 (-o comm, --no-such-option, -o user=PID)", refused)
		}
	})
}

// mustStats waits until dockerd's one-shot stats show the container's three
// processes (it samples asynchronously) and returns them.
func mustStats(t *testing.T, d *dockerd.Daemon, id string) []byte {
	t.Helper()
	var b []byte
	waitFor(t, "dockerd's stats", func() bool {
		var code int
		b, code = apiGet(t, d, "/containers/"+id+"/stats?stream=false")
		if code != http.StatusOK {
			t.Fatalf("dockerd stats: %d %s", code, b)
		}
		return field(decode(t, b), "pids_stats.current") == float64(3)
	})
	return b
}

func field(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}

// diff lists the paths of a that b lacks, but neither an empty array's
// marker nor the element fields of an array that b has empty.
func diff(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if b[k] || strings.HasSuffix(k, "[]") {
			continue
		}
		if i := strings.Index(k, "[]"); i >= 0 && b[k[:i+2]] {
			continue
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
