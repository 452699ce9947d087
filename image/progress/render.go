package progress

import (
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// DefaultWidth is the width assumed when there is no terminal to ask (it
// is Docker's, and wide enough for the bar).
const DefaultWidth = 200

// New returns the Reporter Docker would use for w: a Terminal with the
// terminal's width when w is a terminal, Plain otherwise.
func New(w io.Writer) Reporter {
	if f, ok := w.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil {
			width := int(ws.Col)
			if width == 0 {
				width = DefaultWidth
			}
			return NewTerminal(w, width)
		}
	}
	return NewPlain(w)
}

// line is the text of ev after its ID: "Pushing [==>   ] 1MB/2MB".
func line(ev Event, width int, withBytes bool) string {
	s := ev.Status
	if ev.Err != nil {
		if s != "" {
			s += ": "
		}
		s += ev.Err.Error()
	}
	if withBytes {
		if p := progressString(ev.Current, ev.Total, width); p != "" {
			s += " " + p
		}
	}
	return s
}

// Terminal draws events as Docker does on a terminal: each ID owns a line,
// in order of first appearance, redrawn in place (cursor up, clear line,
// write, cursor down); a message without an ID is written below them and
// starts a new group of lines.
type Terminal struct {
	mu    sync.Mutex
	w     io.Writer
	width int
	lines map[string]int // ID -> line index in the current group
}

// NewTerminal returns a Terminal writing to w, a terminal width columns
// wide (bars are drawn only when width > 110, as Docker does).
func NewTerminal(w io.Writer, width int) *Terminal {
	return &Terminal{w: w, width: width, lines: map[string]int{}}
}

// Report draws ev.
func (t *Terminal) Report(ev Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ev.ID == "" {
		t.lines = map[string]int{}
		fmt.Fprintf(t.w, "%s\n", line(ev, t.width, true))
		return
	}
	n, ok := t.lines[ev.ID]
	if !ok {
		n = len(t.lines)
		t.lines[ev.ID] = n
		fmt.Fprint(t.w, "\n")
	}
	up := len(t.lines) - n
	// The cursor rests on the empty line below the group: go up to the
	// item's line, clear and rewrite it, and come back down.
	fmt.Fprintf(t.w, "\x1b[%dA\x1b[2K\r%s: %s\r\x1b[%dB", up, ev.ID, line(ev, t.width, true), up)
}

// Plain writes one line per status change of an ID ("<id>: <status>"), and
// every message without an ID; byte counts are left out, so a log gets no
// repeated lines.
type Plain struct {
	mu   sync.Mutex
	w    io.Writer
	last map[string]string // ID -> last status written
}

// NewPlain returns a Plain writing to w.
func NewPlain(w io.Writer) *Plain { return &Plain{w: w, last: map[string]string{}} }

// Report writes ev unless it only repeats its ID's current status.
func (p *Plain) Report(ev Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.ID == "" {
		fmt.Fprintf(p.w, "%s\n", line(ev, 0, false))
		return
	}
	if last, ok := p.last[ev.ID]; ok && last == ev.Status && ev.Err == nil {
		return
	}
	p.last[ev.ID] = ev.Status
	fmt.Fprintf(p.w, "%s: %s\n", ev.ID, line(ev, 0, false))
}
