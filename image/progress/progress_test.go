package progress

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/api/types/jsonstream"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// pushEvents is a push of three layers as Docker reports it.
func pushEvents() []Event {
	return []Event{
		{Status: "The push refers to repository [127.0.0.1:5000/busybox]"},
		{ID: "e4b1f3a2c0d9", Status: "Preparing"},
		{ID: "0a1b2c3d4e5f", Status: "Preparing"},
		{ID: "99aa88bb77cc", Status: "Preparing"},
		{ID: "0a1b2c3d4e5f", Status: "Waiting"},
		{ID: "99aa88bb77cc", Status: "Layer already exists"},
		{ID: "e4b1f3a2c0d9", Status: "Pushing", Current: 512 * 1024, Total: 45_600_000},
		{ID: "e4b1f3a2c0d9", Status: "Pushing", Current: 12_345_678, Total: 45_600_000},
		{ID: "e4b1f3a2c0d9", Status: "Pushing", Current: 45_600_000, Total: 45_600_000},
		{ID: "e4b1f3a2c0d9", Status: "Pushed"},
		{ID: "0a1b2c3d4e5f", Status: "Mounted from library/busybox"},
		{Status: "latest: digest: sha256:3f0a5c1e0b7a8f6d2e9c4b1a7d6e5f4c3b2a1908f7e6d5c4b3a29180f7e6d5c4 size: 527"},
	}
}

func render(r Reporter, evs []Event) {
	for _, ev := range evs {
		r.Report(ev)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n got: %q\nwant: %q", name, got, want)
	}
}

func TestPlainGolden(t *testing.T) {
	var b bytes.Buffer
	render(NewPlain(&b), pushEvents())
	golden(t, "plain.golden", b.Bytes())
	// One line per status change: Pushing appears once.
	if n := strings.Count(b.String(), "e4b1f3a2c0d9: Pushing"); n != 1 {
		t.Errorf("Pushing written %d times, want 1", n)
	}
}

func TestTerminalGolden(t *testing.T) {
	for _, tc := range []struct {
		name  string
		width int
	}{{"terminal-wide.golden", 120}, {"terminal-narrow.golden", 80}} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			render(NewTerminal(&b, tc.width), pushEvents())
			golden(t, tc.name, b.Bytes())
			screen := emulate(t, b.String())
			golden(t, strings.TrimSuffix(tc.name, ".golden")+".screen", []byte(screen))
		})
	}
}

// TestTerminalScreen checks what a terminal finally shows: each layer's
// last state on its own line, in order of first appearance.
func TestTerminalScreen(t *testing.T) {
	var b bytes.Buffer
	render(NewTerminal(&b, 120), pushEvents())
	want := strings.Join([]string{
		"The push refers to repository [127.0.0.1:5000/busybox]",
		"e4b1f3a2c0d9: Pushed",
		"0a1b2c3d4e5f: Mounted from library/busybox",
		"99aa88bb77cc: Layer already exists",
		"latest: digest: sha256:3f0a5c1e0b7a8f6d2e9c4b1a7d6e5f4c3b2a1908f7e6d5c4b3a29180f7e6d5c4 size: 527",
		"",
	}, "\n")
	if got := emulate(t, b.String()); got != want {
		t.Errorf("screen:\n%s\nwant:\n%s", got, want)
	}

	// Mid-push, the bar is drawn on the layer's own line.
	b.Reset()
	render(NewTerminal(&b, 120), pushEvents()[:8])
	lines := strings.Split(emulate(t, b.String()), "\n")
	if want := "e4b1f3a2c0d9: Pushing [=============>                                     ]  12.35MB/45.6MB"; lines[1] != want {
		t.Errorf("line 1 = %q, want %q", lines[1], want)
	}
}

func TestJSONGolden(t *testing.T) {
	var b bytes.Buffer
	evs := append(pushEvents(), Event{Err: errors.New("unauthorized: authentication required")})
	render(NewJSON(&b), evs)
	golden(t, "json.golden", b.Bytes())

	// Every message decodes with moby's own type.
	dec := json.NewDecoder(bytes.NewReader(b.Bytes()))
	var msgs []jsonstream.Message
	for dec.More() {
		var m jsonstream.Message
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if m := msgs[7]; m.ID != "e4b1f3a2c0d9" || m.Status != "Pushing" || m.Progress == nil || m.Progress.Current != 12_345_678 || m.Progress.Total != 45_600_000 {
		t.Errorf("message 7 = %+v", m)
	}
	if m := msgs[len(msgs)-1]; m.Error == nil || m.Error.Message != "unauthorized: authentication required" {
		t.Errorf("last message = %+v", m)
	}

	// Replaying the stream gives the same plain output as the events.
	var fromStream, direct bytes.Buffer
	err := Replay(bytes.NewReader(b.Bytes()), NewPlain(&fromStream))
	if err == nil || err.Error() != "unauthorized: authentication required" {
		t.Errorf("Replay error = %v", err)
	}
	render(NewPlain(&direct), evs)
	if fromStream.String() != direct.String() {
		t.Errorf("replayed:\n%s\ndirect:\n%s", fromStream.String(), direct.String())
	}
}

func TestProgressString(t *testing.T) {
	for _, tc := range []struct {
		cur, total int64
		width      int
		want       string
	}{
		{0, 0, 200, ""},
		{1500, 0, 200, "   1.5kB"},
		{0, 1000, 200, "[>                                                  ]       0B/1kB"},
		{500, 1000, 200, "[=========================>                         ]     500B/1kB"},
		{1000, 1000, 200, "[==================================================>]      1kB/1kB"},
		{2000, 1000, 200, "[==================================================>]      2kB"},
		{500, 1000, 80, "    500B/1kB"},
	} {
		if got := progressString(tc.cur, tc.total, tc.width); got != tc.want {
			t.Errorf("progressString(%d, %d, %d) = %q, want %q", tc.cur, tc.total, tc.width, got, tc.want)
		}
	}
	for n, want := range map[int64]string{0: "0B", 999: "999B", 1000: "1kB", 12_345_678: "12.35MB", 1_024_000_000: "1.024GB"} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestConcurrent reports from many goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	var b bytes.Buffer
	for _, r := range []Reporter{NewTerminal(&b, 120), NewPlain(&b), NewJSON(&b), &Recorder{}} {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 100 {
					r.Report(Event{ID: string(rune('a' + i)), Status: "Pushing", Current: int64(j), Total: 100})
				}
			}()
		}
		wg.Wait()
	}
}

// emulate plays s on a minimal terminal (the escapes Terminal uses: CR,
// LF, cursor up/down, clear line) and returns the screen, lines joined by
// "\n" with trailing spaces trimmed.
func emulate(t *testing.T, s string) string {
	t.Helper()
	var screen [][]rune
	row, col := 0, 0
	ensure := func() {
		for len(screen) <= row {
			screen = append(screen, nil)
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\n':
			row++
			col = 0
			i++
		case c == '\r':
			col = 0
			i++
		case c == 0x1b:
			j := i + 2
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			n := 0
			for _, d := range s[i+2 : j] {
				n = n*10 + int(d-'0')
			}
			switch s[j] {
			case 'A':
				row -= n
				if row < 0 {
					t.Fatalf("cursor above the screen at byte %d", i)
				}
			case 'B':
				row += n
			case 'K':
				ensure()
				screen[row] = nil
			default:
				t.Fatalf("unknown escape %q", s[i:j+1])
			}
			i = j + 1
		default:
			ensure()
			r := []rune(s[i:])[0]
			for len(screen[row]) <= col {
				screen[row] = append(screen[row], ' ')
			}
			screen[row][col] = r
			col++
			i += len(string(r))
		}
	}
	ensure()
	out := make([]string, len(screen))
	for i, l := range screen {
		out[i] = strings.TrimRight(string(l), " ")
	}
	return strings.Join(out, "\n")
}
