package cli

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/cli/stream"
)

// The table's names are the commands' own: a name that differed would
// make `berth NAME` build the whole tree (slower) or, worse, the wrong one.
func TestCommandNames(t *testing.T) {
	c := &Cli{}
	seen := map[string]bool{}
	for _, cmd := range c.commands() {
		built := cmd.build()
		if built.Name() != cmd.name {
			t.Errorf("command %q builds %q", cmd.name, built.Name())
		}
		if len(built.Aliases) > 0 {
			t.Errorf("command %q has aliases %q, which commandName does not look for", cmd.name, built.Aliases)
		}
		if seen[cmd.name] {
			t.Errorf("command %q listed twice", cmd.name)
		}
		seen[cmd.name] = true
	}
	for _, want := range []string{"run", "ps", "rm", "images", "rmi", "build", "port", "container", "image", "system", "volume", "network", "version"} {
		if !seen[want] {
			t.Errorf("no %q command", want)
		}
	}
}

func TestCommandName(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--rm", "busybox"}, "run"},
		{[]string{"-H", "unix:///x.sock", "ps", "-a"}, "ps"},
		{[]string{"--host", "tcp://h:1", "-D", "container", "ls"}, "container"},
		{[]string{"--host=unix:///x", "--log-level", "debug", "images"}, "images"},
		{[]string{"-Hunix:///x", "-ldebug", "--config=/tmp/c", "--config", "/tmp/d", "version"}, "version"},
		{[]string{"--version"}, ""},
		{[]string{"--help", "run"}, ""},
		{[]string{"-x", "run"}, ""},
		{[]string{"-H"}, ""},
		{nil, ""},
	} {
		if got := commandName(tc.args); got != tc.want {
			t.Errorf("commandName(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestRootCommandBuildsOnlyWhatRuns(t *testing.T) {
	c := &Cli{}
	names := func(name string) []string {
		var n []string
		for _, cmd := range c.rootCommand(name).Commands() {
			n = append(n, cmd.Name())
		}
		return n
	}
	if got := names("run"); !slices.Equal(got, []string{"run"}) {
		t.Errorf("root for run has %q", got)
	}
	all := names("")
	if len(all) != len(c.commands()) {
		t.Errorf("full root has %d commands, want %d", len(all), len(c.commands()))
	}
	if got := names("no-such-command"); len(got) != len(all) {
		t.Errorf("root for an unknown command has %d commands, want all %d", len(got), len(all))
	}
}

// Through Run, as a user would: a command's help, the root's listing of
// every command, and a typo (Docker's message), none of which needs a
// daemon.
func TestRunWithLazyRoot(t *testing.T) {
	run := func(args ...string) (string, int) {
		var out bytes.Buffer
		code := Run(args, &stream.Streams{In: io.NopCloser(strings.NewReader("")), Out: &out, Err: &out})
		return out.String(), code
	}
	if out, code := run("-H", "unix:///nonexistent.sock", "run", "--help"); code != 0 || !strings.Contains(out, "--rm") || !strings.Contains(out, "berth run") {
		t.Errorf("run --help: exit %d\n%s", code, out)
	}
	if out, code := run("--help"); code != 0 || !strings.Contains(out, "network") || !strings.Contains(out, "images") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	if out, code := run("rnu"); code == 0 || !strings.Contains(out, "'rnu' is not a berth command") {
		t.Errorf("typo: exit %d\n%s", code, out)
	}
}

// TestNaturalCmp: volume and network lists sort as docker's do.
func TestNaturalCmp(t *testing.T) {
	names := []string{"v10", "b", "v2", "91b0", "253e", "a"}
	slices.SortFunc(names, naturalCmp)
	if want := []string{"91b0", "253e", "a", "b", "v2", "v10"}; !slices.Equal(names, want) {
		t.Errorf("sorted %v, want %v", names, want)
	}
}
