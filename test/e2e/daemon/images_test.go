package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/dockerd"
	"github.com/berth-dev/berth/internal/testutil/images"
	"github.com/berth-dev/berth/internal/testutil/registry"
)

// eventLog collects a daemon's events from the moment it is made.
type eventLog struct {
	mu  sync.Mutex
	got []events.Message
}

func watchEvents(t *testing.T, c *client.Client, f client.Filters) *eventLog {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// Since now: what happens before the subscription is in place comes
	// from the daemon's history (to the nanosecond, so nothing earlier).
	now := time.Now()
	res := c.Events(ctx, client.EventsListOptions{Filters: f, Since: fmt.Sprintf("%d.%09d", now.Unix(), now.Nanosecond())})
	l := &eventLog{}
	go func() {
		for m := range res.Messages {
			l.mu.Lock()
			l.got = append(l.got, m)
			l.mu.Unlock()
		}
	}()
	return l
}

// wait returns the events once want (type/action/actor) were all seen.
func (l *eventLog) wait(t *testing.T, want ...string) []events.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		got := slices.Clone(l.got)
		l.mu.Unlock()
		var seen []string
		for _, m := range got {
			seen = append(seen, string(m.Action)+" "+m.Actor.ID)
		}
		missing := ""
		for _, w := range want {
			if !slices.Contains(seen, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %q not seen; got:\n%s", missing, strings.Join(seen, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// samePull compares `docker pull` output from berthd (ours) and dockerd:
// the lines that are not a layer's must be equal, and each layer's
// statuses ("<12 hex digits>: status" lines) must start and end alike,
// dockerd's being a subsequence of ours (dockerd drops updates a slow
// reader has not taken yet); every layer ends "Pull complete" or
// "Already exists".
func samePull(t *testing.T, what, ours, theirs string) {
	t.Helper()
	sumA, idsA, seqA := splitPull(t, ours)
	sumB, idsB, seqB := splitPull(t, theirs)
	ok := slices.Equal(sumA, sumB) && slices.Equal(idsA, idsB)
	for _, id := range idsA {
		a, b := seqA[id], seqB[id]
		if !ok || a[0] != b[0] || a[len(a)-1] != b[len(b)-1] || !subsequence(b, a) {
			ok = false
			break
		}
		if last := a[len(a)-1]; last != "Pull complete" && last != "Already exists" {
			t.Errorf("%s: layer %s ended with %q:\n%s", what, id, last, ours)
		}
	}
	if !ok {
		t.Errorf("%s differs:\nberth:\n%s\ndocker:\n%s", what, ours, theirs)
	}
}

func splitPull(t *testing.T, out string) (sum, ids []string, seq map[string][]string) {
	t.Helper()
	ls := berthd.Lines(out)
	if len(ls) < 4 {
		t.Fatalf("short pull output:\n%s", out)
	}
	seq = map[string][]string{}
	for _, l := range ls {
		id, st, ok := strings.Cut(l, ": ")
		if !ok || len(id) != 12 || strings.Trim(id, "0123456789abcdef") != "" {
			sum = append(sum, l)
			continue
		}
		if seq[id] == nil {
			ids = append(ids, id)
		}
		if n := len(seq[id]); n == 0 || seq[id][n-1] != st {
			seq[id] = append(seq[id], st)
		}
	}
	return sum, ids, seq
}

// subsequence reports whether sub's items appear in s in order.
func subsequence(sub, s []string) bool {
	for _, x := range s {
		if len(sub) > 0 && sub[0] == x {
			sub = sub[1:]
		}
	}
	return len(sub) == 0
}

// TestImagesAgainstDocker runs the image verbs of the docker CLI against
// berthd and against a private dockerd 20.10 pulling the same image from
// the same registry, and compares what they print.
func TestImagesAgainstDocker(t *testing.T) {
	d := start(t)
	reg := registry.Start(t)
	bb := images.Busybox(t)
	reg.Push(t, bb.Layout, "busybox:latest")
	ref := reg.Host + "/busybox:latest"
	dk := dockerd.Start(t, dockerd.Options{})
	c := newClient(t, d)
	evs := watchEvents(t, c, nil)

	both := func(args ...string) (string, string) {
		t.Helper()
		return d.Must(t, args...), dk.Must(t, args...)
	}

	ours, theirs := both("pull", ref)
	samePull(t, "pull", ours, theirs)
	ours, theirs = both("pull", ref)
	samePull(t, "second pull", ours, theirs)

	for _, args := range [][]string{
		// Sizes are left out: the image service counts a layer's size as
		// its tar's, dockerd as its files' (a known difference).
		{"images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}"},
		{"images", "--digests", "--format", "{{.Repository}} {{.Digest}}"},
		{"image", "inspect", "--format", "{{.Id}} {{.RepoTags}} {{.RepoDigests}} {{.Os}}/{{.Architecture}} {{.Config.Cmd}} {{.RootFS.Layers}}", ref},
		{"history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Comment}}", ref},
		{"tag", ref, "mine/bb:v1"},
		{"images", "--filter", "reference=mine/*", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"},
		{"images", "--filter", "dangling=true", "-q"},
		{"rmi", "mine/bb:v1"},
	} {
		if ours, theirs := both(args...); ours != theirs {
			t.Errorf("docker %s differs:\nberth:\n%s\ndocker:\n%s", strings.Join(args, " "), ours, theirs)
		}
	}

	// Unknown images: the same status, and our message is the end of
	// dockerd 20.10's (which repeats it: "no such image: x: No such image: x").
	r1 := berthd.Raw(t, d.Socket, "GET", "/v1.41/images/nosuch:1/json", "", "")
	r2 := berthd.Raw(t, strings.TrimPrefix(dk.Host, "unix://"), "GET", "/v1.41/images/nosuch:1/json", "", "")
	if r1.Status != 404 || r1.Status != r2.Status || r1.Message(t) != "No such image: nosuch:1" || !strings.HasSuffix(r2.Message(t), r1.Message(t)) {
		t.Errorf("unknown image: berth %d %s, docker %d %s", r1.Status, r1.Body, r2.Status, r2.Body)
	}
	ourErr, err1 := d.Docker("pull", reg.Host+"/nosuch:latest")
	theirErr, err2 := dk.Docker("pull", reg.Host+"/nosuch:latest")
	if err1 == nil || err2 == nil || !strings.HasPrefix(ourErr, "Error response from daemon: ") {
		t.Errorf("pull of a missing repository: berth %v %q, docker %v %q", err1, ourErr, err2, theirErr)
	}

	// save | load round trip.
	tarPath := filepath.Join(t.TempDir(), "bb.tar")
	d.Must(t, "save", "-o", tarPath, ref)
	id := strings.TrimSpace(d.Must(t, "image", "inspect", "--format", "{{.Id}}", ref))
	rmi := d.Must(t, "rmi", ref)
	want := []string{"Untagged: " + ref}
	if got := berthd.Lines(rmi); len(got) < 3 || got[0] != want[0] || !strings.HasPrefix(got[1], "Untagged: "+reg.Host+"/busybox@sha256:") || !slices.Contains(got, "Deleted: "+id) {
		t.Errorf("rmi output:\n%s", rmi)
	}
	if out := d.Must(t, "images", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("images left after rmi: %q", out)
	}
	if out := d.Must(t, "load", "-i", tarPath); strings.TrimSpace(out) != "Loaded image: "+ref {
		t.Errorf("load: %q", out)
	}
	if got := strings.TrimSpace(d.Must(t, "image", "inspect", "--format", "{{.Id}}", ref)); got != id {
		t.Errorf("loaded image id %s, saved %s", got, id)
	}

	// Push under another name and pull it back in dockerd.
	d.Must(t, "tag", ref, reg.Host+"/copy:v2")
	out := d.Must(t, "push", reg.Host+"/copy:v2")
	if !strings.Contains(out, "v2: digest: sha256:") || !strings.HasPrefix(out, "The push refers to repository ["+reg.Host+"/copy]") {
		t.Errorf("push output:\n%s", out)
	}
	if cat := reg.Catalog(t); !slices.Contains(cat, "copy") {
		t.Errorf("registry catalog after push: %v", cat)
	}
	dk.Must(t, "pull", reg.Host+"/copy:v2")
	if got := strings.TrimSpace(dk.Must(t, "image", "inspect", "--format", "{{.Id}}", reg.Host+"/copy:v2")); got != id {
		t.Errorf("dockerd pulled %s of our push, want %s", got, id)
	}

	got := evs.wait(t, "pull "+ref, "tag "+id, "untag "+id, "delete "+id, "save "+id, "load "+id, "push "+reg.Host+"/copy:v2")
	for _, m := range got {
		if m.Type != events.ImageEventType || m.Scope != "local" || m.TimeNano == 0 {
			t.Errorf("event shape: %+v", m)
		}
		if m.Action == events.ActionPull && m.Actor.Attributes["name"] != reg.Host+"/busybox" {
			t.Errorf("pull event attributes: %v", m.Actor.Attributes)
		}
	}

	// system df, with both clients.
	du, err := c.DiskUsage(ctxT(t), client.DiskUsageOptions{Images: true, Containers: true, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	if du.Images.TotalCount != 1 || du.Images.TotalSize <= 0 || len(du.Images.Items) != 1 || du.Images.Items[0].ID != id {
		t.Errorf("disk usage: %+v", du.Images)
	}
	out = d.Must(t, "system", "df")
	if ls := berthd.Lines(out); len(ls) < 2 || !strings.HasPrefix(ls[0], "TYPE") || !strings.HasPrefix(strings.Join(strings.Fields(ls[1]), " "), "Images 1 0") {
		t.Errorf("docker system df:\n%s", out)
	}
}

// TestImportPrune makes dangling images (imported without a name, and a
// pull whose tag moved) and prunes them with the docker CLI and the moby
// client.
func TestImportPrune(t *testing.T) {
	d := start(t)
	c := newClient(t, d)
	ctx := ctxT(t)
	evs := watchEvents(t, c, client.Filters{}.Add("type", "image").Add("event", "prune"))

	tarball := mkRootfsTar(t, map[string]string{"hello.txt": "hello\n"})
	out, err := d.DockerWith("/usr/bin/docker", tarball, "import", "-", "imported:v1")
	if err != nil || !strings.HasPrefix(strings.TrimSpace(out), "sha256:") {
		t.Fatalf("import: %v %q", err, out)
	}
	res, err := c.ImageImport(ctx, client.ImageImportSource{Source: bytes.NewReader(mkRootfsTar(t, map[string]string{"other.txt": "x\n"})), SourceName: "-"}, "", client.ImageImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res.Close()
	dangling := strings.Fields(d.Must(t, "images", "-q", "--no-trunc", "--filter", "dangling=true"))
	if len(dangling) != 1 {
		t.Fatalf("dangling images after an unnamed import: %v", dangling)
	}
	out = d.Must(t, "image", "prune", "-f")
	if !strings.Contains(out, "deleted: "+dangling[0]) || !strings.Contains(out, "Total reclaimed space:") {
		t.Errorf("image prune:\n%s", out)
	}
	if out := d.Must(t, "images", "-q"); len(strings.Fields(out)) != 1 {
		t.Errorf("images after prune: %q", out)
	}
	// prune -a removes unused tagged images too.
	rep, err := c.ImagePrune(ctx, client.ImagePruneOptions{Filters: client.Filters{}.Add("dangling", "false")})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Report.ImagesDeleted) == 0 || rep.Report.SpaceReclaimed == 0 {
		t.Errorf("prune all: %+v", rep.Report)
	}
	if out := d.Must(t, "images", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("images after prune -a: %q", out)
	}
	got := evs.wait(t, "prune ")
	for _, m := range got {
		if m.Action != events.ActionPrune || m.Actor.Attributes["reclaimed"] == "" {
			t.Errorf("filtered event stream sent %+v", m)
		}
	}
	if len(got) != 2 {
		t.Errorf("%d prune events, want 2", len(got))
	}
	// Past events: since the start, until now, then the stream ends. The
	// CLI turns "0s" into whole Unix seconds: wait for the next second so
	// that "now" is after the imports.
	time.Sleep(1100 * time.Millisecond)
	past := d.Must(t, "events", "--since", "1m", "--until", "0s", "--filter", "event=import")
	if n := len(berthd.Lines(past)); n != 2 {
		t.Errorf("past import events: %d\n%s", n, past)
	}
}

// mkRootfsTar is a tar of files (name -> content).
func mkRootfsTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := tarDir(&buf, dir); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRegistryMirror: Docker Hub's images come from the --registry-mirror
// list, in order, the next one when a mirror is down or lacks the image,
// on berthd as on a private dockerd 20.10 with the same mirrors. The
// mirrors are local registries (one with busybox as library/busybox, one
// empty) and a closed loopback port: nothing leaves the machine.
func TestRegistryMirror(t *testing.T) {
	empty := registry.Start(t)
	reg := registry.Start(t)
	reg.Push(t, images.Busybox(t).Layout, "library/busybox:latest")
	var args []string
	for _, m := range []string{"http://127.0.0.1:1", empty.URL, reg.URL + "/"} {
		args = append(args, "--registry-mirror", m)
	}
	d := start(t, args...)
	dk := dockerd.Start(t, dockerd.Options{Args: args})

	samePull(t, "pull through mirrors", d.Must(t, "pull", "busybox"), dk.Must(t, "pull", "busybox"))
	for _, args := range [][]string{
		{"images", "--digests", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}} {{.ID}}"},
		{"info", "--format", "{{json .RegistryConfig.Mirrors}}"},
	} {
		if ours, theirs := d.Must(t, args...), dk.Must(t, args...); ours != theirs {
			t.Errorf("docker %s differs:\nberth:\n%s\ndocker:\n%s", strings.Join(args, " "), ours, theirs)
		}
	}
	// The empty mirror was asked (and said no) before the one that had it.
	if log, _ := os.ReadFile(empty.LogPath()); !bytes.Contains(log, []byte("/v2/library/busybox/manifests/latest")) {
		t.Errorf("the empty mirror was never asked:\n%s", log)
	}
	if out := d.Must(t, "run", "--rm", "--network", "none", "busybox", "echo", "mirrored"); out != "mirrored\n" {
		t.Errorf("run of the mirrored image: %q", out)
	}
	// berth run pulls through the mirrors too, telling on stderr unless -q.
	if out, errOut, code := d.Berth(t, "", "run", "--rm", "--pull", "always", "--network", "none", "busybox", "echo", "loud"); code != 0 || out != "loud\n" || !strings.Contains(errOut, "Pulling from library/busybox") {
		t.Errorf("berth run --pull always: exit %d, %q, stderr %q", code, out, errOut)
	}
	if out, errOut, code := d.Berth(t, "", "run", "-q", "--rm", "--pull", "always", "--network", "none", "busybox", "echo", "quiet"); code != 0 || out != "quiet\n" || errOut != "" {
		t.Errorf("berth run -q: exit %d, %q, stderr %q", code, out, errOut)
	}
	// Signed images are asked for: refused, not silently unverified.
	for _, args := range [][]string{
		{"pull", "--disable-content-trust=false", "busybox"},
		{"run", "--disable-content-trust=false", "--rm", "busybox", "true"},
	} {
		if _, errOut, code := d.Berth(t, "", args...); code == 0 || !strings.Contains(errOut, "content trust") {
			t.Errorf("berth %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
		}
	}
	t.Setenv("DOCKER_CONTENT_TRUST", "1")
	if _, errOut, code := d.Berth(t, "", "create", "busybox"); code == 0 || !strings.Contains(errOut, "content trust") {
		t.Errorf("berth create with DOCKER_CONTENT_TRUST=1: exit %d, stderr %q", code, errOut)
	}
	os.Unsetenv("DOCKER_CONTENT_TRUST")

	// A mirror that is no http(s) URL stops the daemon, with dockerd's words.
	launchFails(t, `invalid mirror: unsupported scheme "ftp" in "ftp://m.example.com"`, "--registry-mirror", "ftp://m.example.com")
	launchFails(t, `invalid mirror: path, query, or fragment at end of the URI "https://m.example.com/v2"`, "--registry-mirror", "https://m.example.com/v2")
	launchFails(t, `invalid mirror: username/password not allowed in URI "https://u:xxxxx@m.example.com"`, "--registry-mirror", "https://u:secret@m.example.com")
}
