package build_test

import (
	"strings"
	"testing"
)

// TestBuildRunHeredocs: RUN heredocs as BuildKit runs them: a lone one is
// the shell's script, one with #! an executable file, heredocs feeding a
// command go back to the shell whole (<<- strips tabs).
func TestBuildRunHeredocs(t *testing.T) {
	d := withBusybox(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM busybox\n" +
			"RUN cat <<EOF > /greeting\nhello $((1+2))\nEOF\n" +
			"RUN <<EOT\n#!/bin/sh\necho \"shebang $0\" > /shebang\nEOT\n" +
			"RUN <<-EOF sh\n\techo chomped > /chomped\n\tEOF\n" +
			"RUN cat <<A >/two && cat <<B >>/two\nfirst\nA\nsecond\nB\n" +
			"RUN <<EOF\necho lone > /lone\nEOF\n",
	})
	out, code := berthCLI(t, d, nil, "build", "-t", "heredocs", dir)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s", code, out)
	}
	got := d.Must(t, "run", "--rm", "heredocs", "sh", "-c", "cat /greeting /shebang /chomped /two /lone; ls /dev/pipes 2>&1 || true")
	want := "hello 3\nshebang /dev/pipes/EOT\nchomped\nfirst\nsecond\nlone\nls: /dev/pipes: No such file or directory\n"
	if got != want {
		t.Errorf("heredoc RUNs:\n%s\nwant:\n%s", got, want)
	}
	// Cached again as a whole; a changed #! script runs again.
	out, code = berthCLI(t, d, nil, "build", "--progress", "plain", dir)
	if code != 0 || strings.Count(out, "CACHED") != 5 {
		t.Errorf("rebuild: exit %d, want 5 cached steps:\n%s", code, out)
	}
	writeContextFile(t, dir, "Dockerfile", "FROM busybox\nRUN <<EOT\n#!/bin/sh\necho \"changed $0\" > /shebang\nEOT\n")
	out, code = berthCLI(t, d, nil, "build", "-t", "heredocs2", dir)
	if code != 0 {
		t.Fatalf("changed script: exit %d\n%s", code, out)
	}
	if got := d.Must(t, "run", "--rm", "heredocs2", "cat", "/shebang"); got != "changed /dev/pipes/EOT\n" {
		t.Errorf("changed #! script: %q", got)
	}
}
