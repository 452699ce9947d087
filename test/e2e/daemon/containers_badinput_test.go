package daemon_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthd"
	"github.com/berth-dev/berth/internal/testutil/dockerd"
	"github.com/berth-dev/berth/internal/testutil/images"
)

// TestContainerBadInputAsDockerd sends the same bad requests for
// container endpoints to berthd and to a private dockerd 20.10 and
// requires the same status code and message; afterwards both daemons
// still serve and no container was half-made.
func TestContainerBadInputAsDockerd(t *testing.T) {
	d := withBusybox(t)
	dk := dockerd.Start(t, dockerd.Options{CgroupParent: "/" + testutil.UniqueName(t) + "-dockerd"})
	dk.Must(t, "load", "-i", images.Busybox(t).Archive)
	dkSocket := strings.TrimPrefix(dk.Host, "unix://")
	for _, sock := range []string{d.Socket, dkSocket} {
		berthd.Raw(t, sock, "POST", "/v1.41/containers/create?name=taken", "application/json", `{"Image":"busybox","Cmd":["sleep","600"]}`)
		berthd.Raw(t, sock, "POST", "/v1.41/containers/create?name=created", "application/json", `{"Image":"busybox","Cmd":["true"]}`)
		berthd.Raw(t, sock, "POST", "/v1.41/containers/taken/start", "", "")
		berthd.Raw(t, sock, "POST", "/v1.41/containers/create?name=paused", "application/json", `{"Image":"busybox","Cmd":["sleep","600"]}`)
		berthd.Raw(t, sock, "POST", "/v1.41/containers/paused/start", "", "")
		berthd.Raw(t, sock, "POST", "/v1.41/containers/paused/pause", "", "")
	}
	t.Cleanup(func() { dk.Docker("rm", "-f", "taken", "created", "paused", "lenient") })
	// Where dockerd 20.10 answers 500 to a client's mistake, berthd answers
	// as newer dockerd does (400 for bad JSON, 409 for unpausing a running
	// container) and a wait with an unknown condition is refused instead
	// of waiting for the default one.
	for _, c := range []struct {
		method, path, body string
		status             int
		msg                string
	}{
		{"POST", "/v1.41/containers/create", `{"Image": `, 400, "invalid JSON: unexpected EOF"},
		{"POST", "/v1.41/containers/create", `{"Image": "busybox", "HostConfig": {"Memory": "lots"}}`, 400, ""},
		{"POST", "/v1.41/containers/taken/unpause", "", 409, "Container <id> is not paused"},
		{"POST", "/v1.41/containers/taken/wait?condition=sometimes", "", 400, `invalid condition: "sometimes"`},
	} {
		ctype := ""
		if c.body != "" {
			ctype = "application/json"
		}
		r := berthd.Raw(t, d.Socket, c.method, c.path, ctype, c.body)
		if m := idRE.ReplaceAllString(r.Message(t), "<id>"); r.Status != c.status || c.msg != "" && m != c.msg {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, r.Status, m, c.status, c.msg)
		}
	}
	for _, c := range []struct{ method, path, ctype, body string }{
		// dockerd is not strict about unknown fields here, and takes a
		// string for a command.
		{"POST", "/v1.41/containers/create?name=lenient", "application/json", `{"Image": "busybox", "Cmd": "true", "Bogus": 1}`},
		{"POST", "/v1.41/containers/create?name=a/b", "application/json", `{"Image": "busybox"}`},
		{"POST", "/v1.41/containers/create?name=-x", "application/json", `{"Image": "busybox"}`},
		{"POST", "/v1.41/containers/create?name=taken", "application/json", `{"Image": "busybox"}`},
		{"POST", "/v1.41/containers/create", "application/json", `{"Image": "nosuchimage:x"}`},
		{"POST", "/v1.41/containers/create", "application/json", `{"Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}`},
		{"POST", "/v1.41/containers/nosuch/start", "", ""},
		{"POST", "/v1.41/containers/taken/start", "", ""},
		{"POST", "/v1.41/containers/created/stop", "", ""},
		{"POST", "/v1.41/containers/created/kill", "", ""},
		{"POST", "/v1.41/containers/created/pause", "", ""},
		{"POST", "/v1.41/containers/paused/pause", "", ""},
		{"POST", "/v1.41/containers/taken/kill?signal=NOPE", "", ""},
		{"POST", "/v1.41/containers/created/exec", "application/json", `{"Cmd": ["true"]}`},
		{"POST", "/v1.41/containers/paused/exec", "application/json", `{"Cmd": ["true"]}`},
		{"POST", "/v1.41/containers/nosuch/wait", "", ""},
		{"DELETE", "/v1.41/containers/taken", "", ""},
		{"DELETE", "/v1.41/containers/nosuch", "", ""},
		{"POST", "/v1.41/containers/taken/rename?name=created", "", ""},
		{"POST", "/v1.41/containers/taken/resize?h=x&w=1", "", ""},
		{"GET", "/v1.41/containers/taken/logs", "", ""},
	} {
		ours := berthd.Raw(t, d.Socket, c.method, c.path, c.ctype, c.body)
		theirs := berthd.Raw(t, dkSocket, c.method, c.path, c.ctype, c.body)
		if ours.Status != theirs.Status {
			t.Errorf("%s %s: berthd %d %s, dockerd %d %s", c.method, c.path, ours.Status, ours.Body, theirs.Status, theirs.Body)
			continue
		}
		if theirs.Status >= 400 {
			om, tm := ours.Message(t), theirs.Message(t)
			// Ids in messages differ between the daemons.
			om = idRE.ReplaceAllString(om, "<id>")
			tm = idRE.ReplaceAllString(tm, "<id>")
			if om != tm {
				t.Errorf("%s %s (%d): berthd says %q, dockerd %q", c.method, c.path, ours.Status, om, tm)
			}
		}
	}
	// Nothing half-made: the names of the refused creates are free, and
	// the same containers exist on both.
	want := "created\nlenient\npaused\ntaken\n"
	if out := d.Must(t, "ps", "-a", "--format", "{{.Names}}"); sortLines(out) != want {
		t.Errorf("berthd's containers after bad input: %q", out)
	}
	if err := pingOK(d.Socket); err != nil {
		t.Fatalf("berthd after bad input: %v", err)
	}
}

// TestClientsLeavingMidStream: clients that hang up in the middle of
// attach, logs -f and stats leave the daemon serving, the container
// running, and no goroutine blocked on them (later ones work).
func TestClientsLeavingMidStream(t *testing.T) {
	d := withBusybox(t)
	d.Must(t, "run", "-d", "--name", "talker", "busybox", "sh", "-c", "while true; do echo tick; sleep 0.1; done")
	for round := 0; round < 5; round++ {
		for _, path := range []string{
			"/v1.41/containers/talker/attach?stream=1&stdout=1&stderr=1",
			"/v1.41/containers/talker/logs?follow=1&stdout=1",
			"/v1.41/containers/talker/stats?stream=1",
		} {
			conn, err := net.Dial("unix", d.Socket)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", path)
			if strings.Contains(path, "/logs") || strings.Contains(path, "/stats") {
				conn.Close()
				conn, _ = net.Dial("unix", d.Socket)
				fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 512)
			if _, err := io.ReadAtLeast(conn, buf, 64); err != nil {
				t.Fatalf("%s: no stream: %v", path, err)
			}
			conn.Close()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan string, 1)
	go func() { out, _ := d.Docker("logs", "--tail", "1", "talker"); done <- out }()
	select {
	case out := <-done:
		if out != "tick\n" {
			t.Errorf("logs after the hang-ups: %q", out)
		}
	case <-ctx.Done():
		t.Fatal("logs hung after clients left mid-stream")
	}
	if out := d.Must(t, "inspect", "-f", "{{.State.Running}}", "talker"); out != "true\n" {
		t.Errorf("the container after the hang-ups: %q", out)
	}
	d.Must(t, "stop", "-t", "0", "talker")
	if err := pingOK(d.Socket); err != nil {
		t.Fatal(err)
	}
}

// idRE matches container ids, full or short.
var idRE = regexp.MustCompile(`\b[0-9a-f]{64}\b|\b[0-9a-f]{12}\b`)

func sortLines(s string) string {
	l := berthd.Lines(s)
	for i := range l {
		for j := i + 1; j < len(l); j++ {
			if l[j] < l[i] {
				l[i], l[j] = l[j], l[i]
			}
		}
	}
	return strings.Join(l, "\n") + "\n"
}
