package shim

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/container/logs"
)

// The shim's hand-written JSON must be what encoding/json (the daemon's
// side, package client) reads and writes for the same types.

var (
	t0 = time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC)
	t1 = time.Date(2026, 3, 4, 5, 7, 0, 0, time.UTC)
)

func TestEncodeMatchesEncodingJSON(t *testing.T) {
	exit := &ExitStatus{ExitCode: 137, OOMKilled: true, Pid: 42, StartedAt: t0, FinishedAt: t1}
	responses := []Response{
		{},
		{Error: `runtime said "no": <b>&</b> é ☃ 𝄞 \ line` + "\n\r\x01\u2028"},
		{Error: "bad\xffutf8"},
		{Pid: 1234},
		{Exit: &ExitStatus{ExitCode: 0, FinishedAt: t1}},
		{Exit: exit},
		{State: &State{ID: "c1", Pid: 10, ShimPid: 11, Status: StatusCreated}},
		{State: &State{ID: "c1", Pid: 10, ShimPid: 11, Status: StatusRunning, StartedAt: t0, Execs: []ExecState{
			{ID: "e1", Pid: 20, Running: true},
			{ID: "e2", Pid: 21, Exit: &ExitStatus{ExitCode: 3, Pid: 21, StartedAt: t0, FinishedAt: t1}},
		}}},
		{State: &State{ID: "c1", Pid: 10, ShimPid: 11, Status: StatusStopped, StartedAt: t0, Exit: exit}},
	}
	for _, r := range responses {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got := appendResponse(nil, &r)
		if string(got) != string(want) {
			t.Errorf("response %+v:\n got %s\nwant %s", r, got, want)
		}
		var back Response
		if err := json.Unmarshal(got, &back); err != nil || !reflect.DeepEqual(back, decodeBack(t, want)) {
			t.Errorf("response %s does not decode as encoding/json's: %v", got, err)
		}
	}
	for _, r := range []Ready{{}, {Pid: 5, ShimPid: 6}, {ShimPid: 6, Error: "container_linux.go: \"exec\" failed"}} {
		want, _ := json.Marshal(r)
		if got := appendReady(nil, &r); string(got) != string(want) {
			t.Errorf("ready:\n got %s\nwant %s", got, want)
		}
	}
	want, _ := json.Marshal(exit)
	if got := appendExit(nil, exit); string(got) != string(want) {
		t.Errorf("exit.json:\n got %s\nwant %s", got, want)
	}
	// Time stamps are those of time.Time's MarshalJSON for any UTC time.
	for _, ts := range []time.Time{time.Unix(0, 0).UTC(), time.Unix(1, 1).UTC(), time.Now().UTC()} {
		want, _ := json.Marshal(ts)
		if got := `"` + string(logs.AppendTime(nil, ts)) + `"`; got != string(want) {
			t.Errorf("time %v: got %s, want %s", ts, got, want)
		}
	}
}

func decodeBack(t *testing.T, b []byte) Response {
	var r Response
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseRequestLikeEncodingJSON(t *testing.T) {
	proc := `{"terminal":true,"user":{"uid":0,"gid":0},"args":["sh","-c","echo \"hi\" \u00e9 \ud83d\ude00"],"env":["A=1"],"cwd":"/","capabilities":{"bounding":[]},"rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"oomScoreAdj":-1.5e2,"noNewPrivileges":false,"x":null}`
	reqs := []Request{
		{Op: OpStart},
		{Op: OpKill, Signal: 15, All: true},
		{Op: OpResize, ExecID: "e-1.x_y", Height: 65535, Width: 80},
		{Op: OpWait, ExecID: "e1"},
		{Op: OpAttach, Stdin: true, Stdout: true, Stderr: true},
		{Op: OpExec, ExecID: "e1", Process: RawJSON(proc), Tty: true, Stdout: true},
		{Op: "ünïcode \"op\"\n"},
	}
	for _, r := range reqs {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var got Request
		if err := parseRequest(b, &got); err != nil {
			t.Errorf("parse %s: %v", b, err)
			continue
		}
		var want Request
		json.Unmarshal(b, &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("parse %s:\n got %+v\nwant %+v", b, got, want)
		}
	}
	// Written by hand: whitespace, escapes, nulls, unknown fields.
	for _, line := range []string{
		` { "op" : "kill" , "signal" : 9 , "all" : false , "extra" : {"a":[1,2,{"b":null}],"c":"\"}"} } `,
		`{"op":"\u0073tart\ud834\udd1e","exec_id":null,"tty":null,"height":0}`,
		`{"op":"lone \ud800 surrogate \udc00 too"}`,
		`{"op":"exec","process":{"terminal":false},"process":{"terminal":true}}`,
		`{}`,
		`{"op":"x","signal":-2147483648}`,
		`{"op":"a\/b\b\f\t\r\n"}`,
	} {
		var want, got Request
		if err := json.Unmarshal([]byte(line), &want); err != nil {
			t.Fatalf("test case %s: %v", line, err)
		}
		if err := parseRequest([]byte(line), &got); err != nil {
			t.Errorf("parse %s: %v", line, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("parse %s:\n got %+v\nwant %+v", line, got, want)
		}
	}
	// Refused as encoding/json refuses them.
	for _, line := range []string{
		``, `[]`, `"op"`, `{`, `{"op"}`, `{"op":"start"`, `{"op":"start"} x`, `{"op":"start",}`,
		`{"op":1}`, `{"signal":"9"}`, `{"signal":1.5}`, `{"signal":1e2}`, `{"height":65536}`, `{"width":-1}`,
		`{"all":"true"}`, `{"op":"a` + "\x01" + `"}`, `{"op":"\x"}`, `{"op":"\u12"}`, `{"process":{"a":}}`,
		`{"process":[1,]}`, `{"process":01}`, `{"process":-}`, `{"process":1.}`, `{"process":tru}`,
		`{"op":"start"}{}`, `{'op':'start'}`,
	} {
		var r Request
		if err := parseRequest([]byte(line), &r); err == nil {
			t.Errorf("parse %q: accepted (%+v)", line, r)
		}
		if json.Unmarshal([]byte(line), &r) == nil {
			t.Errorf("test case %q: encoding/json accepts it", line)
		}
	}
	deep := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	var r Request
	if err := parseRequest([]byte(`{"process":`+deep+`}`), &r); err == nil {
		t.Error("a request nested 5000 deep was accepted")
	}
}

func TestParseConfigLikeEncodingJSON(t *testing.T) {
	for _, c := range []Config{
		{ID: "abc", Bundle: "/b", Runtime: "/bin/berth-runtime", LogPath: "/l/x-json.log"},
		{ID: "abc", Bundle: "/b", Runtime: "runc", RuntimeRoot: "/run/r", LogDriver: LogDriverNone, Tty: true, OpenStdin: true, StdinOnce: true, DeferCreate: true, OwnPidNS: true, Binary: "/bin/berth-shim",
			LogOptions: logs.Options{MaxSize: 1 << 40, MaxFile: 3}},
		{ID: "ü", Bundle: "/b \"q\"", Runtime: "r", LogPath: "p", LogOptions: logs.Options{MaxSize: -1}},
	} {
		// The client writes shim.json indented.
		b, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		var got Config
		if err := parseConfig(b, &got); err != nil {
			t.Errorf("parse %s: %v", b, err)
			continue
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("parse %s:\n got %+v\nwant %+v", b, got, c)
		}
	}
	var c Config
	if err := parseConfig([]byte(`{"id":"x","log_options":{"max_file":"3"}}`), &c); err == nil {
		t.Error("a string max_file was accepted")
	}
}

func TestProcessTerminalAndRuntimeLog(t *testing.T) {
	for in, want := range map[string]bool{
		`{"terminal":true,"args":["sh"]}`:  true,
		`{"args":["sh"],"terminal":false}`: false,
		`{"args":["sh"]}`:                  false,
		`{"terminal":null}`:                false,
	} {
		if got, err := processTerminal([]byte(in)); err != nil || got != want {
			t.Errorf("processTerminal(%s) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{``, `null`, `{"terminal":"yes"}`, `{"terminal":true`} {
		if _, err := processTerminal([]byte(in)); err == nil {
			t.Errorf("processTerminal(%q) accepted", in)
		}
	}
	level, msg, ok := runtimeLogLine(`{"level":"error","msg":"exec: \"nope\": executable file not found in $PATH","time":"2026-01-01T00:00:00Z"}`)
	if !ok || level != "error" || msg != `exec: "nope": executable file not found in $PATH` {
		t.Errorf("runtime log line: %q %q %v", level, msg, ok)
	}
	if _, _, ok := runtimeLogLine(`time="x" level=error msg=y`); ok {
		t.Error("a text log line parsed as JSON")
	}
}
