package progress

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/jsonstream"
)

// Message is one message of Docker's JSON stream, field for field and in
// Docker's order. github.com/moby/moby/api's jsonstream.Message no longer
// has the "progress" and "error" strings that Docker's daemon still sends
// (and older clients read), so they are added here around its Progress and
// Error types; jsonstream.Message decodes a Message unchanged.
type Message struct {
	Stream          string               `json:"stream,omitempty"`
	Status          string               `json:"status,omitempty"`
	Progress        *jsonstream.Progress `json:"progressDetail,omitempty"`
	ProgressMessage string               `json:"progress,omitempty"`
	ID              string               `json:"id,omitempty"`
	Error           *jsonstream.Error    `json:"errorDetail,omitempty"`
	ErrorMessage    string               `json:"error,omitempty"`
	Aux             *json.RawMessage     `json:"aux,omitempty"`
}

// MessageOf converts ev to the message Docker's daemon would send: events
// with an ID always carry progressDetail (empty without byte counts) and,
// with byte counts, the rendered progress string for a 200-column width;
// an event with Err becomes an error message.
func MessageOf(ev Event) Message {
	if ev.Err != nil {
		return Message{Error: &jsonstream.Error{Message: ev.Err.Error()}, ErrorMessage: ev.Err.Error()}
	}
	m := Message{Status: ev.Status, ID: ev.ID}
	if ev.ID != "" {
		m.Progress = &jsonstream.Progress{Current: ev.Current, Total: ev.Total}
		m.ProgressMessage = progressString(ev.Current, ev.Total, DefaultWidth)
	}
	return m
}

// JSON writes events as Docker's JSON message stream, one object per line.
type JSON struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewJSON returns a JSON reporter writing to w.
func NewJSON(w io.Writer) *JSON {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &JSON{enc: enc}
}

// Report writes ev as one message.
func (j *JSON) Report(ev Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	_ = j.enc.Encode(MessageOf(ev))
}

// Replay decodes a JSON message stream from r (what the Engine API sends)
// and reports each message to rep, as the CLI will when it shows a pull or
// push the daemon runs. It returns the first error message in the stream
// as an error (after reporting it), or a decoding error.
func Replay(r io.Reader, rep Reporter) error {
	dec := json.NewDecoder(r)
	for {
		var m Message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("progress stream: %w", err)
		}
		if m.Error != nil || m.ErrorMessage != "" {
			msg := m.ErrorMessage
			if m.Error != nil && m.Error.Message != "" {
				msg = m.Error.Message
			}
			err := errors.New(msg)
			rep.Report(Event{ID: m.ID, Err: err})
			return err
		}
		ev := Event{ID: m.ID, Status: m.Status}
		if m.Stream != "" && m.Status == "" {
			ev.Status = strings.TrimSuffix(m.Stream, "\n")
		}
		if m.Progress != nil {
			ev.Current, ev.Total = m.Progress.Current, m.Progress.Total
		}
		rep.Report(ev)
	}
}
