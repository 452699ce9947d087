package cli_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestImagesHistoryInspectAsDocker(t *testing.T) { both(t, testImagesHistoryInspectAsDocker) }

func testImagesHistoryInspectAsDocker(t *testing.T) {
	setup(t)
	for _, args := range [][]string{
		{"images"},
		{"images", "-q"},
		{"images", "--no-trunc"},
		{"images", "--digests"},
		{"images", "busybox"},
		{"images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}"},
		{"images", "--format", "table {{.Repository}}\t{{.CreatedSince}}"},
		{"images", "--format", "{{json .}}"},
		{"image", "ls", "--filter", "reference=busybox"},
		{"history", "busybox"},
		{"history", "--no-trunc", "-H=false", "busybox"},
		{"history", "-q", "busybox"},
		{"history", "--format", "{{.CreatedBy}}|{{.Size}}", "busybox"},
		{"image", "inspect", "--format", "{{.Id}} {{.Os}}/{{.Architecture}} {{json .Config.Cmd}}", "busybox"},
		{"inspect", "--format", "{{.RepoTags}} {{index .Config.Env 0}}", "busybox"},
	} {
		same(t, args...)
	}
	// The whole document: berth speaks the newest API version berthd
	// offers, where VirtualSize is gone (API 1.44); docker 20.10 speaks 1.41.
	b, d := berth(t, "image", "inspect", "busybox"), dockerOut(t, "image", "inspect", "busybox")
	if cur.name == "berthd" {
		d = regexp.MustCompile(`,\n\s*"VirtualSize": \d+`).ReplaceAllString(d, "")
	}
	if b != d {
		t.Fatalf("image inspect:\nberth:\n%s\ndocker:\n%s", b, d)
	}
}

// dockerOut runs docker and fails t unless it exits 0.
func dockerOut(t *testing.T, args ...string) string {
	t.Helper()
	out, code := dockerRun(nil, args...)
	if code != 0 {
		t.Fatalf("docker %s: exit %d\n%s", strings.Join(args, " "), code, out.stderr)
	}
	return out.stdout
}

func TestRunOutputAndExitCodesAsDocker(t *testing.T) { both(t, testRunOutputAndExitCodesAsDocker) }

func testRunOutputAndExitCodesAsDocker(t *testing.T) {
	setup(t)
	if out := same(t, "run", "--rm", "busybox", "echo", "hello", "world"); out != "hello world\n" {
		t.Fatalf("run --rm echo printed %q", out)
	}
	same(t, "run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "1:2", "busybox", "sh", "-c", `echo $A $(pwd) $(id -u):$(id -g)`)
	same(t, "run", "--rm", "--entrypoint", "ls", "busybox", "/")
	same(t, "run", "--rm", "-h", "myhost", "busybox", "hostname")
	same(t, "run", "--rm", "-a", "stderr", "busybox", "sh", "-c", "echo out; echo err >&2")
	if _, code := berthRun(nil, "run", "--rm", "busybox", "sh", "-c", "exit 3"); code != 3 {
		t.Fatalf("exit 3 in the container: berth exited %d", code)
	}
	same(t, "run", "--rm", "busybox", "sh", "-c", "exit 3")
	// stdin reaches the container with -i.
	b, code := berthRun([]byte("piped\n"), "run", "--rm", "-i", "busybox", "cat")
	if code != 0 || b.stdout != "piped\n" {
		t.Fatalf("run -i cat: exit %d, %q %q", code, b.stdout, b.stderr)
	}

	stderr, code := sameErr(t, "run", "--rm", "--pull", "never", "nosuchimage:1")
	if code != 125 || !strings.Contains(stderr, "Error response from daemon: No such image: nosuchimage:1") {
		t.Fatalf("missing image: exit %d, %q", code, stderr)
	}
	// A missing image is named with its tag, as dockerd names it.
	// rmi -f reports images already gone but does not fail.
	for _, args := range [][]string{{"rmi", "nosuch"}, {"history", "nosuch"}, {"tag", "nosuch", "x"}, {"rmi", "0123abc"}, {"rmi", "sha256:0123"},
		{"rmi", "-f", "nosuch"}} {
		sameErr(t, args...)
	}
	// A bad name: docker's first words (its detail differs between 20.10
	// and 28; berth's is 28's).
	if b, code := berthRun(nil, "tag", "busybox", "Bad"); code != 1 || !strings.HasPrefix(b.stderr, `Error parsing reference: "Bad" is not a valid repository/tag`) {
		t.Fatalf("tag to a bad name: exit %d, %q", code, b.stderr)
	}
	// Option errors: docker's words and exit codes (a missing --env-file
	// is 125, not a missing command's 127).
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"run", "--rm", "--env-file", "/nonexistent-env", "busybox", "true"}, 125},
		{[]string{"create", "--env-file", "/nonexistent-env", "busybox"}, 125},
		{[]string{"run", "-d", "-a", "stdout", "busybox", "true"}, 1},
		{[]string{"run", "-it", "busybox", "true"}, 1}, // stdin is no terminal here
	} {
		if _, code := sameErr(t, c.args...); code != c.code {
			t.Fatalf("%v exited %d, want %d", c.args, code, c.code)
		}
	}
	if _, code := sameErr(t, "run", "--bogus-flag", "busybox"); code != 125 {
		t.Fatalf("bad flag exited %d", code)
	}
	if _, code := sameErr(t, "run"); code != 1 {
		t.Fatalf("run without image exited %d", code)
	}
	// A command that does not exist: 127, as docker.
	b, code = berthRun(nil, "run", "--rm", "busybox", "/nonexistent")
	_, dcode := dockerRun(nil, "run", "--rm", "busybox", "/nonexistent")
	if code != 127 || dcode != 127 || !strings.HasPrefix(b.stderr, "berth: Error response from daemon: ") {
		t.Fatalf("missing command: berth exit %d (docker %d): %q", code, dcode, b.stderr)
	}
	sameErr(t, "rm", "nosuchcontainer")
	sameErr(t, "inspect", "nosuchobject")
	sameErr(t, "container", "inspect", "nosuchcontainer")
	sameErr(t, "stop", "nosuchcontainer")
}

func TestPsInspectLogsAsDocker(t *testing.T) { both(t, testPsInspectLogsAsDocker) }

func testPsInspectLogsAsDocker(t *testing.T) {
	setup(t)
	running := container(t, "-up", "-l", "app=web", "busybox", "sleep", "600")
	exited := container(t, "-down", "busybox", "sh", "-c", "echo out; echo err >&2; exit 4")
	if out := strings.TrimSpace(berth(t, "wait", exited)); out != "4" {
		t.Fatalf("wait printed %q", out)
	}
	for _, args := range [][]string{
		{"ps"},
		{"ps", "-a"},
		{"ps", "-a", "--no-trunc"},
		{"ps", "-aq"},
		{"ps", "-a", "-s"},
		{"ps", "-n", "1"},
		{"ps", "-l"},
		{"ps", "-a", "--filter", "name=" + exited},
		{"ps", "-a", "--filter", "label=app=web", "--format", "{{.Names}} {{.Labels}} {{.Label \"app\"}}"},
		{"ps", "-a", "--format", "table {{.Names}}\t{{.Status}}\t{{.State}}"},
		{"ps", "-a", "--format", "{{json .}}"},
		{"container", "ls", "-a", "--format", "{{.ID}} {{.Command}} {{.Image}}"},
		{"inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.Config.Image}} {{.Name}}", running, exited},
		{"container", "inspect", "-f", "{{json .Config.Labels}} {{.HostConfig.NetworkMode}}", running},
		{"inspect", "--type", "container", "-s", "-f", "{{.SizeRw}}", exited},
		{"logs", exited},
		{"logs", "--tail", "1", exited},
		{"logs", "-t", exited},
		{"logs", "--details", exited},
		{"top", running},
		{"top", running, "-o", "pid,comm"}, // ps options after the container
	} {
		same(t, args...)
	}
	// The whole document. On berthd, berth speaks API 1.56 and docker
	// 20.10 speaks 1.41, for which NetworkSettings also carries the
	// default bridge endpoint's addresses at the top (API < 1.52).
	bi, di := berth(t, "inspect", running), dockerOut(t, "inspect", running)
	if cur.name == "berthd" {
		bi, di = inspectDoc(t, bi, false), inspectDoc(t, di, true)
	}
	if bi != di {
		t.Fatalf("inspect:\nberth:\n%s\ndocker:\n%s", bi, di)
	}
	// stderr of the container stays stderr.
	b, _ := berthRun(nil, "logs", exited)
	if b.stdout != "out\n" || b.stderr != "err\n" {
		t.Fatalf("logs: stdout %q stderr %q", b.stdout, b.stderr)
	}
	var arr []map[string]any
	if err := json.Unmarshal([]byte(berth(t, "inspect", running)), &arr); err != nil || len(arr) != 1 {
		t.Fatalf("inspect is not a JSON array of one: %v", err)
	}
}

func TestLifecycleVerbs(t *testing.T) { both(t, testLifecycleVerbs) }

func testLifecycleVerbs(t *testing.T) {
	setup(t)
	name := container(t, "", "--stop-signal", "KILL", "busybox", "sleep", "600")
	state := func() string {
		return strings.TrimSpace(berth(t, "inspect", "-f", "{{.State.Status}}", name))
	}
	if out := berth(t, "pause", name); out != name+"\n" || state() != "paused" {
		t.Fatalf("pause: %q, state %s", out, state())
	}
	berth(t, "unpause", name)
	if state() != "running" {
		t.Fatalf("unpause: state %s", state())
	}
	berth(t, "rename", name, name+"-new")
	name += "-new"
	if out := berth(t, "stop", "-t", "1", name); out != name+"\n" || state() != "exited" {
		t.Fatalf("stop: %q, state %s", out, state())
	}
	berth(t, "start", name)
	berth(t, "restart", "-t", "0", name)
	if state() != "running" {
		t.Fatalf("restart: state %s", state())
	}
	// --timeout is -t's name, --time its older one (docker 28's flags).
	berth(t, "restart", "--timeout", "0", name)
	berth(t, "stop", "--time", "0", name)
	berth(t, "start", name)
	berth(t, "kill", "-s", "TERM", name)
	berth(t, "kill", name)
	berth(t, "wait", name)
	// exec on a stopped container fails as docker's does.
	sameErr(t, "exec", name, "true")
	if out := berth(t, "rm", "-v", name); out != name+"\n" {
		t.Fatalf("rm printed %q", out)
	}
	// create + start -a.
	cname := testutil_unique(t) + "-created"
	id := strings.TrimSpace(berth(t, "create", "--name", cname, "busybox", "sh", "-c", "echo created; exit 2"))
	t.Cleanup(func() { dockerRun(nil, "rm", "-f", id) })
	b, code := berthRun(nil, "start", "-a", cname)
	if code != 2 || b.stdout != "created\n" {
		t.Fatalf("start -a: exit %d, %q", code, b.stdout)
	}
	// run --rm leaves nothing.
	rname := testutil_unique(t) + "-rm"
	berth(t, "run", "--rm", "--name", rname, "busybox", "true")
	if _, code := berthRun(nil, "inspect", rname); code == 0 {
		t.Fatal("run --rm left its container")
	}
	// container prune removes stopped containers.
	pname := testutil_unique(t) + "-prune"
	berth(t, "create", "--name", pname, "busybox")
	out := berth(t, "container", "prune", "-f")
	if !strings.Contains(out, "Deleted Containers:") || !strings.Contains(out, "Total reclaimed space:") {
		t.Fatalf("container prune printed %q", out)
	}
}

func TestExec(t *testing.T) { both(t, testExec) }

func testExec(t *testing.T) {
	setup(t)
	name := container(t, "", "busybox", "sleep", "600")
	same(t, "exec", name, "echo", "hi")
	same(t, "exec", "-e", "X=1", "-w", "/etc", "-u", "5", name, "sh", "-c", "echo $X $(pwd) $(id -u)")
	if _, code := berthRun(nil, "exec", name, "sh", "-c", "exit 9"); code != 9 {
		t.Fatalf("exec exit code: %d", code)
	}
	b, code := berthRun([]byte("in\n"), "exec", "-i", name, "cat")
	if code != 0 || b.stdout != "in\n" {
		t.Fatalf("exec -i: %d %q", code, b.stdout)
	}
	berth(t, "exec", "-d", name, "sh", "-c", "echo bg > /tmp/bg")
	for i := 0; i < 50; i++ {
		if out, _ := berthRun(nil, "exec", name, "cat", "/tmp/bg"); out.stdout == "bg\n" {
			return
		}
	}
	t.Fatal("exec -d did not run")
}

func TestStatsAndSystem(t *testing.T) { both(t, testStatsAndSystem) }

func testStatsAndSystem(t *testing.T) {
	setup(t)
	name := container(t, "", "busybox", "sleep", "600")
	out := berth(t, "stats", "--no-stream", name)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "CONTAINER ID   NAME") || !strings.Contains(lines[1], name) {
		t.Fatalf("stats --no-stream:\n%s", out)
	}
	out = berth(t, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", name)
	if out != name+" 1\n" {
		t.Fatalf("stats --format printed %q", out)
	}
	same(t, "system", "df")
	same(t, "info", "--format", "{{.Containers}} {{.Images}} {{.Driver}}")
	same(t, "info", "--format", "{{.ClientInfo.Context}} {{.ClientInfo.Debug}} {{.ServerErrors}}")
	// docker's template names for the client's part (JSON says ApiVersion).
	if out := berth(t, "version", "--format", "{{.Client.APIVersion}} {{.Client.Context}} {{.Client.Os}}"); !strings.HasSuffix(out, " default linux\n") || !strings.HasPrefix(out, "1.") {
		t.Fatalf("version --format .Client: %q", out)
	}
	out = berth(t, "version")
	if !strings.Contains(out, "Server: ") || !strings.Contains(out, "API version:") {
		t.Fatalf("version:\n%s", out)
	}
	// dockerd is Debian's 20.10; berthd reports its own version.
	if out := berth(t, "version", "--format", "{{.Server.Version}}"); cur.name == "dockerd" && !strings.HasPrefix(out, "20.10") || strings.TrimSpace(out) == "" {
		t.Fatalf("version --format: %q", out)
	}
	out = berth(t, "system", "df", "-v")
	if !strings.Contains(out, "Images space usage:") || !strings.Contains(out, name) {
		t.Fatalf("system df -v:\n%s", out)
	}
}

func TestSaveLoadTagRmi(t *testing.T) { both(t, testSaveLoadTagRmi) }

func testSaveLoadTagRmi(t *testing.T) {
	setup(t)
	tag := "berth-e2e/" + strings.ToLower(testutil_unique(t)) + ":v1"
	berth(t, "tag", "busybox", tag)
	t.Cleanup(func() { dockerRun(nil, "rmi", "-f", tag) })
	dir := t.TempDir()
	archive := dir + "/img.tar"
	berth(t, "save", "-o", archive, tag)
	if out := berth(t, "rmi", tag); out != "Untagged: "+tag+"\n" {
		t.Fatalf("rmi printed %q", out)
	}
	if out := berth(t, "load", "-i", archive); out != "Loaded image: "+tag+"\n" {
		t.Fatalf("load printed %q", out)
	}
	// save to stdout piped into load.
	b, code := berthRun(nil, "save", tag)
	if code != 0 || len(b.stdout) < 1024 {
		t.Fatalf("save to stdout: exit %d, %d bytes", code, len(b.stdout))
	}
	berth(t, "rmi", tag)
	l, code := berthRun([]byte(b.stdout), "load", "-q")
	if code != 0 || l.stdout != "Loaded image: "+tag+"\n" {
		t.Fatalf("load from stdin: exit %d %q %q", code, l.stdout, l.stderr)
	}
	same(t, "images", "--format", "{{.Repository}}:{{.Tag}}", tag)
	sameErr(t, "rmi", "nosuchimage:nope")
}

func TestCommitExportImport(t *testing.T) { both(t, testCommitExportImport) }

func testCommitExportImport(t *testing.T) {
	setup(t)
	name := container(t, "", "busybox", "sh", "-c", "echo committed > /marker; sleep 600")
	waitExec(t, name, "test", "-f", "/marker")
	ref := "berth-e2e/commit:" + strings.ToLower(testutil_unique(t))
	id := strings.TrimSpace(berth(t, "commit", "-m", "a message", "-a", "me", "-c", "ENV FOO=bar", name, ref))
	t.Cleanup(func() { dockerRun(nil, "rmi", "-f", ref) })
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("commit printed %q", id)
	}
	if out := berth(t, "run", "--rm", ref, "sh", "-c", "cat /marker; echo $FOO"); out != "committed\nbar\n" {
		t.Fatalf("committed image: %q", out)
	}
	if out := berth(t, "inspect", "-f", "{{.Comment}}|{{.Author}}", ref); out != "a message|me\n" {
		t.Fatalf("commit metadata: %q", out)
	}
	tarPath := t.TempDir() + "/fs.tar"
	berth(t, "export", "-o", tarPath, name)
	iref := ref + "-imported"
	out := berth(t, "import", "-c", `CMD ["cat", "/marker"]`, "-m", "imported", tarPath, iref)
	t.Cleanup(func() { dockerRun(nil, "rmi", "-f", iref) })
	if !strings.HasPrefix(out, "sha256:") {
		t.Fatalf("import printed %q", out)
	}
	if out := berth(t, "run", "--rm", iref); out != "committed\n" {
		t.Fatalf("imported image runs: %q", out)
	}
}

func waitExec(t *testing.T, name string, args ...string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if _, code := berthRun(nil, append([]string{"exec", name}, args...)...); code == 0 {
			return
		}
	}
	t.Fatalf("exec %v never succeeded", args)
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// inspectDoc is an inspect document with its keys sorted, without the
// top-level NetworkSettings fields of API < 1.52 when dropLegacy.
func inspectDoc(t *testing.T, doc string, dropLegacy bool) string {
	t.Helper()
	var v []map[string]any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("inspect output: %v", err)
	}
	for _, c := range v {
		if ns, ok := c["NetworkSettings"].(map[string]any); ok && dropLegacy {
			for _, k := range []string{"Bridge", "HairpinMode", "LinkLocalIPv6Address", "LinkLocalIPv6PrefixLen", "SecondaryIPAddresses", "SecondaryIPv6Addresses",
				"EndpointID", "Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPAddress", "IPPrefixLen", "IPv6Gateway", "MacAddress"} {
				delete(ns, k)
			}
		}
	}
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}
