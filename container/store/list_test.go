package store

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/volume"
)

// fixture: four containers created a second apart, oldest first.
func listFixture(t *testing.T) (*Store, map[string]*Container) {
	s := openStore(t, t.TempDir())
	base := time.Now().UTC().Add(-time.Hour)
	cs := map[string]*Container{}
	mk := func(name string, i int, st State, labels map[string]string, image string) {
		c := newContainer(t, name)
		c.Created = base.Add(time.Duration(i) * time.Second)
		c.State = st
		c.Config.Labels = labels
		c.Config.Image = image
		if err := s.Create(c); err != nil {
			t.Fatal(err)
		}
		cs[name] = c
	}
	started := base.Add(10 * time.Second)
	mk("created1", 0, State{}, map[string]string{"app": "web"}, "busybox")
	mk("running1", 1, State{Running: true, Pid: 10, StartedAt: started}, map[string]string{"app": "db", "tier": "back"}, "busybox:latest")
	mk("exited0", 2, State{StartedAt: started, FinishedAt: started.Add(time.Second)}, nil, "alpine")
	mk("exited3", 3, State{StartedAt: started, FinishedAt: started.Add(time.Second), ExitCode: 3}, map[string]string{"app": "web"}, "alpine:3")
	mk("paused1", 4, State{Running: true, Paused: true, Pid: 11, StartedAt: started}, nil, "busybox")
	return s, cs
}

func nameList(cs []*Container) string {
	var out []string
	for _, c := range cs {
		out = append(out, strings.TrimPrefix(c.Name, "/"))
	}
	return strings.Join(out, ",")
}

func TestListFilters(t *testing.T) {
	s, cs := listFixture(t)
	for _, tc := range []struct {
		name string
		opts ListOptions
		want string
	}{
		{"running only by default", ListOptions{}, "paused1,running1"},
		{"all newest first", ListOptions{All: true}, "paused1,exited3,exited0,running1,created1"},
		{"limit implies all", ListOptions{Limit: 2}, "paused1,exited3"},
		{"status exited without all", ListOptions{Filters: map[string][]string{"status": {"exited"}}}, "exited3,exited0"},
		{"status created or paused", ListOptions{Filters: map[string][]string{"status": {"created", "paused"}}}, "paused1,created1"},
		{"exited code", ListOptions{Filters: map[string][]string{"exited": {"3"}}}, "exited3"},
		{"exited 0 excludes created", ListOptions{Filters: map[string][]string{"exited": {"0"}}}, "exited0"},
		{"label key", ListOptions{All: true, Filters: map[string][]string{"label": {"app"}}}, "exited3,running1,created1"},
		{"label key=value", ListOptions{All: true, Filters: map[string][]string{"label": {"app=web"}}}, "exited3,created1"},
		{"labels all must match", ListOptions{All: true, Filters: map[string][]string{"label": {"app=db", "tier=back"}}}, "running1"},
		{"name regexp", ListOptions{All: true, Filters: map[string][]string{"name": {"^exited"}}}, "exited3,exited0"},
		{"name with slash", ListOptions{All: true, Filters: map[string][]string{"name": {"/created1"}}}, "created1"},
		{"id prefix", ListOptions{All: true, Filters: map[string][]string{"id": {cs["exited0"].ID[:10]}}}, "exited0"},
		{"ancestor by name", ListOptions{All: true, Filters: map[string][]string{"ancestor": {"busybox"}}}, "paused1,running1,created1"},
		{"ancestor by name:tag", ListOptions{All: true, Filters: map[string][]string{"ancestor": {"alpine:3"}}}, "exited3"},
		{"before", ListOptions{All: true, Filters: map[string][]string{"before": {"exited0"}}}, "running1,created1"},
		{"since", ListOptions{All: true, Filters: map[string][]string{"since": {"exited0"}}}, "paused1,exited3"},
		{"is-task false", ListOptions{All: true, Filters: map[string][]string{"is-task": {"false"}}}, "paused1,exited3,exited0,running1,created1"},
		{"is-task true", ListOptions{All: true, Filters: map[string][]string{"is-task": {"true"}}}, ""},
		{"health none", ListOptions{Filters: map[string][]string{"health": {"none"}}}, "paused1,running1"},
		{"network", ListOptions{All: true, Filters: map[string][]string{"network": {"host"}}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.List(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if nameList(got) != tc.want {
				t.Fatalf("got %q, want %q", nameList(got), tc.want)
			}
		})
	}
	// An image id resolver: the ancestor matches by the image's id.
	got, err := s.List(ListOptions{All: true, Filters: map[string][]string{"ancestor": {"myimage"}},
		ImageIDs: func(string) []string { return []string{cs["exited0"].Image} }})
	if err != nil || len(got) != 5 {
		t.Fatalf("ancestor via ImageIDs: %v %v", nameList(got), err)
	}
}

// TestListPortFilters: publish matches the container ports of
// HostConfig.PortBindings, expose those of Config.ExposedPorts, by number,
// protocol (tcp by default) or range, as dockerd.
func TestListPortFilters(t *testing.T) {
	s, cs := listFixture(t)
	set := func(name string, fn func(c *Container)) {
		if _, err := s.Update(cs[name].ID, func(c *Container) error { fn(c); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	set("running1", func(c *Container) {
		c.HostConfig.PortBindings = network.PortMap{network.MustParsePort("80/tcp"): {{HostPort: "8080"}}}
		c.Config.ExposedPorts = network.PortSet{network.MustParsePort("80/tcp"): {}}
	})
	set("exited0", func(c *Container) {
		c.HostConfig.PortBindings = network.PortMap{network.MustParsePort("8053/udp"): nil}
		c.Config.ExposedPorts = network.PortSet{network.MustParsePort("8053/udp"): {}, network.MustParsePort("443/tcp"): {}}
	})
	for _, tc := range []struct {
		f    map[string][]string
		want string
	}{
		{map[string][]string{"publish": {"80"}}, "running1"},
		{map[string][]string{"publish": {"80/tcp"}}, "running1"},
		{map[string][]string{"publish": {"80/udp"}}, ""},
		{map[string][]string{"publish": {"8000-8080/udp"}}, "exited0"},
		{map[string][]string{"publish": {"8080"}}, ""}, // a host port is no container port
		{map[string][]string{"publish": {"80", "8053/udp"}}, "exited0,running1"},
		{map[string][]string{"expose": {"443"}}, "exited0"},
		{map[string][]string{"expose": {"1-1000"}}, "exited0,running1"},
		{map[string][]string{"expose": {"443"}, "publish": {"80"}}, ""},
	} {
		got, err := s.List(ListOptions{All: true, Filters: tc.f})
		if err != nil {
			t.Fatalf("List(%v): %v", tc.f, err)
		}
		if nameList(got) != tc.want {
			t.Errorf("List(%v) = %q, want %q", tc.f, nameList(got), tc.want)
		}
	}
}

func TestListBadFilters(t *testing.T) {
	s, _ := listFixture(t)
	for _, tc := range []struct {
		f    map[string][]string
		want string
		is   func(error) bool
	}{
		{map[string][]string{"foo": {"x"}}, "Invalid filter 'foo'", errdefs.IsInvalidArgument},
		{map[string][]string{"status": {"sleeping"}}, "Invalid filter 'status=sleeping'", errdefs.IsInvalidArgument},
		{map[string][]string{"exited": {"x"}}, "invalid filter 'exited=x'", errdefs.IsInvalidArgument},
		{map[string][]string{"is-task": {"maybe"}}, "Invalid filter 'is-task=maybe'", errdefs.IsInvalidArgument},
		{map[string][]string{"before": {"nosuch"}}, "No such container: nosuch", errdefs.IsNotFound},
		{map[string][]string{"publish": {"8080:80"}}, "filter for 'publish' should not contain ':': 8080:80", errdefs.IsInvalidArgument},
		{map[string][]string{"expose": {"http"}}, "error while looking up for expose http", errdefs.IsInvalidArgument},
		{map[string][]string{"expose": {"90-80"}}, "error while looking up for expose 90-80", errdefs.IsInvalidArgument},
	} {
		_, err := s.List(ListOptions{Filters: tc.f})
		if err == nil || !tc.is(err) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("List(%v) = %v, want %q", tc.f, err, tc.want)
		}
	}
}

func TestStatusText(t *testing.T) {
	now := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		st   State
		want string
	}{
		{State{}, "Created"},
		{State{Running: true, StartedAt: now.Add(-3 * time.Minute)}, "Up 3 minutes"},
		{State{Running: true, StartedAt: now.Add(-500 * time.Millisecond)}, "Up Less than a second"},
		{State{Running: true, Paused: true, StartedAt: now.Add(-2 * time.Hour)}, "Up 2 hours (Paused)"},
		{State{StartedAt: now.Add(-time.Hour), FinishedAt: now.Add(-2 * time.Second), ExitCode: 0}, "Exited (0) 2 seconds ago"},
		{State{StartedAt: now.Add(-time.Hour), FinishedAt: now.Add(-400 * time.Millisecond), ExitCode: 137}, "Exited (137) Less than a second ago"},
		{State{Running: true, Restarting: true, StartedAt: now.Add(-time.Minute), FinishedAt: now.Add(-time.Second), ExitCode: 1}, "Restarting (1) 1 second ago"},
		{State{Dead: true, StartedAt: now}, "Dead"},
		{State{RemovalInProgress: true}, "Removal In Progress"},
	} {
		if got := tc.st.StatusText(now); got != tc.want {
			t.Errorf("StatusText(%+v) = %q, want %q", tc.st, got, tc.want)
		}
	}
}

func TestSummary(t *testing.T) {
	s, cs := listFixture(t)
	c, _ := s.Get("exited3")
	now := c.State.FinishedAt.Add(2 * time.Second)
	sum := c.Summary(now)
	if sum.ID != cs["exited3"].ID || len(sum.Names) != 1 || sum.Names[0] != "/exited3" || sum.Image != "alpine:3" ||
		sum.ImageID != c.Image || sum.Command != "sh -c true" || sum.Created != c.Created.Unix() ||
		sum.State != container.StateExited || sum.Status != "Exited (3) 2 seconds ago" || sum.HostConfig.NetworkMode != "default" {
		t.Fatalf("summary %+v", sum)
	}
	b, _ := json.Marshal(sum)
	var m map[string]any
	json.Unmarshal(b, &m)
	// dockerd 20.10 lists these keys (empty arrays and maps, not null).
	for _, k := range []string{"Id", "Names", "Image", "ImageID", "Command", "Created", "Ports", "Labels", "State", "Status", "HostConfig", "NetworkSettings", "Mounts"} {
		if _, ok := m[k]; !ok {
			t.Errorf("summary JSON lacks %s: %s", k, b)
		}
	}
	if string(mustJSON(m["Ports"])) != "[]" || string(mustJSON(m["Mounts"])) != "[]" {
		t.Errorf("Ports/Mounts must be [] as dockerd's: %s", b)
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// TestInspectShape compares our inspect JSON with one dockerd 20.10
// produced for `docker run --name a1 busybox id` (testdata): same
// top-level and State keys, same zero-time and empty-value forms.
func TestInspectShape(t *testing.T) {
	b, err := os.ReadFile("testdata/dockerd-20.10-inspect.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	c := newContainer(t, "a1")
	c.Path, c.Args = "id", nil
	c.Created = time.Date(2026, 11, 23, 1, 15, 24, 370647573, time.UTC)
	c.State = State{StartedAt: c.Created.Add(time.Second), FinishedAt: c.Created.Add(2 * time.Second)}
	var got map[string]any
	if err := json.Unmarshal(mustJSON(c.Inspect()), &got); err != nil {
		t.Fatal(err)
	}
	if k1, k2 := keys(want), keys(got); k1 != k2 {
		t.Errorf("inspect keys differ from dockerd's:\n dockerd %s\n berth   %s", k1, k2)
	}
	ws, gs := want["State"].(map[string]any), got["State"].(map[string]any)
	if k1, k2 := keys(ws), keys(gs); k1 != k2 {
		t.Errorf("State keys differ:\n dockerd %s\n berth   %s", k1, k2)
	}
	if gs["Status"] != "exited" || got["Created"] != "2026-11-23T01:15:24.370647573Z" || got["Platform"] != "linux" {
		t.Errorf("inspect values: %v %v %v", gs["Status"], got["Created"], got["Platform"])
	}
	if string(mustJSON(got["Args"])) != "[]" || got["ExecIDs"] != nil || string(mustJSON(got["Mounts"])) != "[]" {
		t.Errorf("Args must be [], ExecIDs null, Mounts [] as dockerd's")
	}
	c.State = State{}
	gs = map[string]any{"StartedAt": c.Inspect().State.StartedAt, "Status": string(c.Inspect().State.Status)}
	if gs["StartedAt"] != "0001-01-01T00:00:00Z" || gs["Status"] != "created" {
		t.Errorf("created container: StartedAt %v Status %v", gs["StartedAt"], gs["Status"])
	}
}

func keys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func TestListVolumeFilter(t *testing.T) {
	s, _ := listFixture(t)
	all, err := s.List(ListOptions{All: true})
	if err != nil || len(all) < 2 {
		t.Fatalf("fixture: %v %v", all, err)
	}
	id := all[0].ID
	if _, err := s.Update(id, func(c *Container) error {
		c.MountPoints = []volume.MountPoint{
			{Type: "volume", Name: "data", Destination: "/data"},
			{Type: "bind", Source: "/srv/www", Destination: "/www"},
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"data", "/data", "/srv/www", "/www"} {
		got, err := s.List(ListOptions{All: true, Filters: map[string][]string{"volume": {v}}})
		if err != nil || len(got) != 1 || got[0].ID != id {
			t.Errorf("volume=%s: %v %v", v, got, err)
		}
	}
	if got, _ := s.List(ListOptions{All: true, Filters: map[string][]string{"volume": {"other"}}}); len(got) != 0 {
		t.Errorf("volume=other: %v", got)
	}
	rec, _ := s.Get(id)
	if ms := rec.Inspect().Mounts; len(ms) != 2 || ms[0].Name != "data" || ms[1].Source != "/srv/www" {
		t.Errorf("inspect mounts: %+v", ms)
	}
}

// TestCommandQuotesSpaces: an argument with a space shows in single
// quotes, as dockerd's ps (and --no-trunc, --format json, system df -v).
func TestCommandQuotesSpaces(t *testing.T) {
	for _, c := range []struct {
		c    Container
		want string
	}{
		{Container{Path: "sh", Args: []string{"-c", "exit 3"}}, "sh -c 'exit 3'"},
		{Container{Path: "/bin/sh", Args: []string{"-c", `echo "a b"; echo c`}}, `/bin/sh -c 'echo "a b"; echo c'`},
		{Container{Path: "true"}, "true"},
	} {
		if got := c.c.Command(); got != c.want {
			t.Errorf("Command() = %q, want %q", got, c.want)
		}
	}
}
