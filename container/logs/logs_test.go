package logs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Byte for byte what dockerd 20.10 writes for these lines.
func TestEntryFormat(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.FixedZone("x", 3600))
	for _, tc := range []struct{ line, want string }{
		{"hello\n", `{"log":"hello\n","stream":"stdout","time":"2026-01-02T02:04:05.12Z"}`},
		{"a\"b\\c\td\r\n", `{"log":"a\"b\\c\u0009d\r\n","stream":"stdout","time":"2026-01-02T02:04:05.12Z"}`},
		{"<&>\x01\u2028é\xff\n", `{"log":"\u003c\u0026\u003e\u0001\u2028é\ufffd\n","stream":"stdout","time":"2026-01-02T02:04:05.12Z"}`},
	} {
		got := string(appendEntry(nil, []byte(tc.line), "stdout", appendTime(nil, ts)))
		if got != tc.want+"\n" {
			t.Errorf("entry for %q:\n got %s\nwant %s", tc.line, got, tc.want)
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(got), &m); err != nil || (m["log"] != strings.ToValidUTF8(tc.line, "\ufffd")) {
			t.Errorf("entry %s does not decode back: %v %q", got, err, m["log"])
		}
	}
}

// AppendTime agrees with encoding/json byte for byte, and AppendString
// decodes back as encoding/json's output does (they differ only in \t,
// \b and \f, which dockerd 20.10 writes as \u00XX): berth-shim's
// protocol relies on both.
func TestAppendMatchesStdlib(t *testing.T) {
	times := []time.Time{
		time.Unix(0, 0),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 1, time.UTC),
		time.Date(1600, 2, 29, 12, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2024, 2, 29, 1, 2, 3, 100, time.FixedZone("y", -7200)),
		time.Date(9999, 6, 7, 8, 9, 10, 500000000, time.UTC),
		time.Now(),
	}
	for i := int64(0); i < 2000; i++ {
		times = append(times, time.Unix(i*86399*37, i*7919%1000000000))
	}
	for _, ts := range times {
		want, _ := json.Marshal(ts.UTC())
		if got := `"` + string(AppendTime(nil, ts)) + `"`; got != string(want) {
			t.Fatalf("AppendTime(%v) = %s, want %s", ts, got, want)
		}
	}
	strs := []string{"", "plain", "\x00\x1f\x7f", "\"\\/", "<a href=x>&amp;</a>", "\u2028\u2029", "héllo wörld ☃ 𝄞", "bad\xff\xfe utf8\xc3", "\xe2\x80", "tab\there\r\n"}
	for c := 0; c < 256; c++ {
		strs = append(strs, string([]byte{byte(c), 'x', byte(c)}))
	}
	for _, s := range strs {
		var want string
		std, _ := json.Marshal(s)
		json.Unmarshal(std, &want)
		for _, got := range [][]byte{AppendString(nil, s), AppendString(nil, []byte(s))} {
			var back string
			if err := json.Unmarshal(got, &back); err != nil || back != want {
				t.Errorf("AppendString(%q) = %s: decodes to %q (%v), want %q", s, got, back, err, want)
			}
			if strings.ContainsAny(string(got), "<>&\u2028\u2029") {
				t.Errorf("AppendString(%q) = %s: HTML characters or line separators unescaped", s, got)
			}
		}
	}
}

type rawEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

func readRaw(t *testing.T, path string) []rawEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []rawEntry
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		var e rawEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		out = append(out, e)
	}
	return out
}

// Lines split across writes, a line over 16 KiB and an unterminated end,
// cut as Docker's copier cuts them.
func TestLineWriterSplitting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	l, err := Create(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, errw := l.Stream("stdout"), l.Stream("stderr")
	out.Write([]byte("one\ntw"))
	errw.Write([]byte("oops\n"))
	out.Write([]byte("o\n"))
	long := strings.Repeat("x", MaxLineSize+10)
	out.Write([]byte(long[:5000]))
	out.Write([]byte(long[5000:] + "\nexact"))
	out.Write([]byte(strings.Repeat("y", MaxLineSize-5) + "\n"))
	out.Write([]byte("end"))
	out.Close()
	errw.Close()
	l.Close()
	got := readRaw(t, path)
	want := []struct{ log, stream string }{
		{"one\n", "stdout"}, {"oops\n", "stderr"}, {"two\n", "stdout"},
		{long[:MaxLineSize], "stdout"}, {long[MaxLineSize:] + "\n", "stdout"},
		// "exact" + 16379 y's is exactly 16 KiB without its newline.
		{"exact" + strings.Repeat("y", MaxLineSize-5), "stdout"}, {"\n", "stdout"},
		{"end", "stdout"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Log != w.log || got[i].Stream != w.stream {
			t.Errorf("entry %d: %q on %s, want %q on %s", i, trunc(got[i].Log), got[i].Stream, trunc(w.log), w.stream)
		}
	}
	// The pieces of one long line carry the time of its first piece.
	if !got[3].Time.Equal(got[4].Time) || !got[5].Time.Equal(got[6].Time) {
		t.Errorf("partial pieces have different times: %v %v / %v %v", got[3].Time, got[4].Time, got[5].Time, got[6].Time)
	}
}

func trunc(s string) string {
	if len(s) > 20 {
		return s[:10] + "..." + s[len(s)-10:]
	}
	return s
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	l, err := Create(path, Options{MaxSize: 1000, MaxFile: 3})
	if err != nil {
		t.Fatal(err)
	}
	w := l.Stream("stdout")
	for i := 0; i < 200; i++ {
		fmt.Fprintf(w, "line %03d\n", i)
	}
	l.Close()
	names, _ := filepath.Glob(path + "*")
	if strings.Join(names, " ") != path+" "+path+".1 "+path+".2" {
		t.Fatalf("files %v", names)
	}
	var all []rawEntry
	for _, p := range []string{path + ".2", path + ".1", path} {
		st, _ := os.Stat(p)
		// Rotation comes before the entry that follows a full file.
		if st.Size() < 1000 && p != path || st.Size() > 1000+70 {
			t.Errorf("%s: %d bytes", p, st.Size())
		}
		all = append(all, readRaw(t, p)...)
	}
	if all[len(all)-1].Log != "line 199\n" {
		t.Errorf("last entry %q", all[len(all)-1].Log)
	}
	for i := 1; i < len(all); i++ {
		var a, b int
		fmt.Sscanf(all[i-1].Log, "line %d", &a)
		fmt.Sscanf(all[i].Log, "line %d", &b)
		if b != a+1 {
			t.Fatalf("entries not contiguous across files: %q then %q", all[i-1].Log, all[i].Log)
		}
	}

	// One file only: truncated in place, as dockerd does.
	one := filepath.Join(dir, "one.log")
	l, _ = Create(one, Options{MaxSize: 500, MaxFile: 1})
	w = l.Stream("stdout")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(w, "line %03d\n", i)
	}
	l.Close()
	if names, _ := filepath.Glob(one + "*"); len(names) != 1 {
		t.Errorf("max-file 1 left %v", names)
	}
	if st, _ := os.Stat(one); st.Size() > 570 {
		t.Errorf("max-file 1: %d bytes", st.Size())
	}
}

// writeLog writes entries "s-i" on alternating streams with times t0+i s.
func writeLog(t *testing.T, path string, n int, o Options, t0 time.Time) {
	t.Helper()
	l, err := Create(path, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		stream := "stdout"
		if i%2 == 1 {
			stream = "stderr"
		}
		if err := l.Entry(stream, []byte(fmt.Sprintf("%s-%d\n", stream, i)), t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
}

func collect(t *testing.T, path string, o ReadOptions) []string {
	t.Helper()
	var got []string
	if err := Read(context.Background(), path, o, func(e Entry) error {
		got = append(got, strings.TrimSuffix(string(e.Line), "\n"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestReadSelect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	writeLog(t, path, 100, Options{MaxSize: 700, MaxFile: 20}, t0)
	if _, err := os.Stat(path + ".3"); err != nil {
		t.Fatalf("test log did not rotate enough: %v", err)
	}
	both := ReadOptions{Stdout: true, Stderr: true, Tail: -1}
	if got := collect(t, path, both); len(got) != 100 || got[0] != "stdout-0" || got[99] != "stderr-99" {
		t.Errorf("all: %d entries %v...", len(got), got[:3])
	}
	o := both
	o.Tail = 5
	if got := strings.Join(collect(t, path, o), ","); got != "stderr-95,stdout-96,stderr-97,stdout-98,stderr-99" {
		t.Errorf("tail 5: %s", got)
	}
	// Tail counts entries of both streams, then filters (as dockerd).
	o.Stderr = false
	if got := strings.Join(collect(t, path, o), ","); got != "stdout-96,stdout-98" {
		t.Errorf("tail 5 stdout: %s", got)
	}
	o = both
	o.Tail = 0
	if got := collect(t, path, o); len(got) != 0 {
		t.Errorf("tail 0: %v", got)
	}
	o.Tail = 1000 // more than there is, across every file
	if got := collect(t, path, o); len(got) != 100 {
		t.Errorf("tail 1000: %d entries", len(got))
	}
	o = both
	o.Since, o.Until = t0.Add(10*time.Second), t0.Add(12*time.Second)
	if got := strings.Join(collect(t, path, o), ","); got != "stdout-10,stderr-11,stdout-12" {
		t.Errorf("since/until: %s", got)
	}
	if got := collect(t, filepath.Join(t.TempDir(), "none.log"), both); len(got) != 0 {
		t.Errorf("missing log: %v", got)
	}
}

// A follower keeps up with a writer that rotates many times, and stops
// once told the writer is done; one that started before the log existed
// finds it.
func TestFollow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	done := make(chan struct{})
	got := make(chan []string, 1)
	go func() {
		var lines []string
		err := Read(context.Background(), path, ReadOptions{Stdout: true, Tail: -1, Follow: true, Done: done}, func(e Entry) error {
			lines = append(lines, strings.TrimSuffix(string(e.Line), "\n"))
			return nil
		})
		if err != nil {
			lines = append(lines, "error: "+err.Error())
		}
		got <- lines
	}()
	time.Sleep(50 * time.Millisecond)
	l, err := Create(path, Options{MaxSize: 2048, MaxFile: 100})
	if err != nil {
		t.Fatal(err)
	}
	w := l.Stream("stdout")
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(w, "line-%d\n", i)
		if i%100 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	l.Close()
	close(done)
	select {
	case lines := <-got:
		if len(lines) != 1000 || lines[0] != "line-0" || lines[999] != "line-999" {
			t.Fatalf("followed %d lines: first %q last %q", len(lines), lines[0], lines[len(lines)-1])
		}
		for i, l := range lines {
			if l != fmt.Sprintf("line-%d", i) {
				t.Fatalf("line %d is %q", i, l)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not return after done")
	}

	// Cancelling the context ends a follow that has nothing to read.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- Read(ctx, path, ReadOptions{Stdout: true, Tail: 0, Follow: true}, func(Entry) error { return nil })
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if err != context.Canceled {
			t.Errorf("cancelled follow: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow ignored cancellation")
	}
}

func TestParseOptions(t *testing.T) {
	o, err := ParseOptions(map[string]string{"max-size": "10m", "max-file": "3", "labels": "a"})
	if err != nil || o.MaxSize != 10<<20 || o.MaxFile != 3 {
		t.Errorf("10m/3: %+v %v", o, err)
	}
	if o, _ := ParseOptions(nil); o.MaxSize != DefaultMaxSize || o.MaxFile != DefaultMaxFile {
		t.Errorf("defaults: %+v", o)
	}
	if o, err := ParseOptions(map[string]string{"max-size": "-1"}); err != nil || o.MaxSize != -1 {
		t.Errorf("unbounded: %+v %v", o, err)
	}
	for _, bad := range []map[string]string{{"max-size": "ten"}, {"max-file": "0"}, {"bogus": "1"}, {"max-size": "-1", "max-file": "2"}} {
		if _, err := ParseOptions(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	for s, want := range map[string]int64{"1024": 1024, "1k": 1024, "1.5m": 3 << 19, "2g": 2 << 30, "10MB": 10 << 20} {
		if n, err := ParseSize(s); err != nil || n != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, n, err, want)
		}
	}
}

// TestFollowNoLog: following the log of a container that never ran (no
// file yet) ends without error once the run is over (docker logs -f of a
// created container).
func TestFollowNoLog(t *testing.T) {
	done := make(chan struct{})
	close(done)
	path := filepath.Join(t.TempDir(), "never.log")
	errc := make(chan error, 1)
	go func() {
		errc <- Read(context.Background(), path, ReadOptions{Stdout: true, Stderr: true, Tail: -1, Follow: true, Done: done}, func(e Entry) error {
			return fmt.Errorf("unexpected entry %q", e.Line)
		})
	}()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("follow of a missing log: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow of a missing log did not return after done")
	}
}
