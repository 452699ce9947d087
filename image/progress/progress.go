// Package progress owns the per-item progress events that long image
// operations (pull, push, later build and load) report, and the three ways
// Berth shows them, all as Docker does:
//
//   - Terminal: one line per item, redrawn in place with ANSI cursor
//     movement, with a bar and byte counts ("e4b1f3a2c0d9: Pushing
//     [=====>     ] 12.35MB/45.6MB");
//   - Plain: for logs and pipes, one line per status change of an item
//     ("e4b1f3a2c0d9: Pushing"), never a repeated line;
//   - JSON: Docker's JSON message stream (what the Engine API's
//     /images/create and /images/{name}/push endpoints send), decodable
//     with github.com/moby/moby/api/types/jsonstream.
//
// Producers only know Event and Reporter; they never format anything.
// Every Reporter here is safe for concurrent use.
package progress

import (
	"fmt"
	"strings"
	"sync"
)

// Event is one progress report. An event with an ID updates that item's
// line (a layer, a manifest); an event without one is a message of its
// own ("The push refers to repository [...]"). Current and Total are bytes
// (Total 0 when unknown); a non-nil Err reports a failure, and Status may
// then be empty.
type Event struct {
	ID, Status     string
	Current, Total int64
	Err            error
}

// Reporter receives events. Implementations must be safe for concurrent
// use: pushes and pulls report from one goroutine per layer.
type Reporter interface {
	Report(Event)
}

// ReporterFunc adapts a function to a Reporter.
type ReporterFunc func(Event)

// Report calls f(ev).
func (f ReporterFunc) Report(ev Event) { f(ev) }

// Discard is a Reporter that drops every event.
var Discard Reporter = ReporterFunc(func(Event) {})

// Recorder is a Reporter that keeps every event, for tests and for callers
// that summarise an operation afterwards.
type Recorder struct {
	mu     sync.Mutex
	events []Event
}

// Report appends ev.
func (r *Recorder) Report(ev Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

// Events returns a copy of the events so far, in order.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// hasBytes reports whether ev carries a byte count worth a bar or counter.
func (ev Event) hasBytes() bool { return ev.Current > 0 || ev.Total > 0 }

// HumanSize formats a byte count as Docker does (decimal units, four
// significant digits): 0B, 999B, 1.5kB, 12.35MB, 1.024GB.
func HumanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}

// barWidth is the number of cells inside a progress bar.
const barWidth = 50

// minBarWidth is the terminal width below which Docker leaves the bar out
// and shows only the byte counts.
const minBarWidth = 110

// progressString is Docker's progress text for current/total bytes on a
// terminal of the given width: "[=====>    ] 12.35MB/45.6MB" (the bar only
// when the width exceeds 110 columns and the total is known), "" when
// there is nothing to count.
func progressString(current, total int64, width int) string {
	if current <= 0 && total <= 0 {
		return ""
	}
	if total <= 0 {
		return fmt.Sprintf("%8v", HumanSize(current))
	}
	filled := min(int(float64(current)/float64(total)*100)/2, barWidth)
	filled = max(filled, 0)
	var bar string
	if width > minBarWidth {
		bar = "[" + strings.Repeat("=", filled) + ">" + strings.Repeat(" ", barWidth-filled) + "] "
	}
	if current > total {
		return bar + fmt.Sprintf("%8v", HumanSize(current))
	}
	return bar + fmt.Sprintf("%8v/%v", HumanSize(current), HumanSize(total))
}
