package shim

import (
	"errors"
	"strconv"
	"time"

	"github.com/berth-dev/berth/container/logs"
)

// The shim encodes and decodes its few protocol messages by hand:
// encoding/json (with reflect, fmt and the rest) would be most of a
// shim's executable, and its pages are resident in every shim. The JSON
// is the same that encoding/json reads and writes for the types in
// types.go, which the daemon's side (package client) uses unchanged.

// Encoding. Fields in struct order, omitempty and omitzero as tagged.

type jsonObject struct {
	b     []byte
	first bool
}

func newObject(b []byte) jsonObject { return jsonObject{b: append(b, '{'), first: true} }

func (o *jsonObject) key(k string) {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

func (o *jsonObject) str(k, v string) {
	o.key(k)
	o.b = logs.AppendString(o.b, v)
}

func (o *jsonObject) int(k string, v int) {
	o.key(k)
	o.b = strconv.AppendInt(o.b, int64(v), 10)
}

func (o *jsonObject) bool(k string, v bool) {
	o.key(k)
	o.b = strconv.AppendBool(o.b, v)
}

func (o *jsonObject) time(k string, t time.Time) {
	o.key(k)
	o.b = append(o.b, '"')
	o.b = logs.AppendTime(o.b, t)
	o.b = append(o.b, '"')
}

func (o *jsonObject) end() []byte { return append(o.b, '}') }

func appendExit(b []byte, e *ExitStatus) []byte {
	o := newObject(b)
	o.int("exit_code", e.ExitCode)
	if e.OOMKilled {
		o.bool("oom_killed", true)
	}
	if e.Pid != 0 {
		o.int("pid", e.Pid)
	}
	if !e.StartedAt.IsZero() {
		o.time("started_at", e.StartedAt)
	}
	o.time("finished_at", e.FinishedAt)
	return o.end()
}

func appendState(b []byte, s *State) []byte {
	o := newObject(b)
	o.str("id", s.ID)
	o.int("pid", s.Pid)
	o.int("shim_pid", s.ShimPid)
	o.str("status", s.Status)
	if !s.StartedAt.IsZero() {
		o.time("started_at", s.StartedAt)
	}
	if s.Exit != nil {
		o.key("exit")
		o.b = appendExit(o.b, s.Exit)
	}
	if len(s.Execs) > 0 {
		o.key("execs")
		for i := range s.Execs {
			e := &s.Execs[i]
			if i == 0 {
				o.b = append(o.b, '[')
			} else {
				o.b = append(o.b, ',')
			}
			eo := newObject(o.b)
			eo.str("id", e.ID)
			eo.int("pid", e.Pid)
			eo.bool("running", e.Running)
			if e.Exit != nil {
				eo.key("exit")
				eo.b = appendExit(eo.b, e.Exit)
			}
			o.b = eo.end()
		}
		o.b = append(o.b, ']')
	}
	return o.end()
}

// appendResponse is the line the shim answers with, as encoding/json
// would write r.
func appendResponse(b []byte, r *Response) []byte {
	o := newObject(b)
	if r.Error != "" {
		o.str("error", r.Error)
	}
	if r.Pid != 0 {
		o.int("pid", r.Pid)
	}
	if r.Exit != nil {
		o.key("exit")
		o.b = appendExit(o.b, r.Exit)
	}
	if r.State != nil {
		o.key("state")
		o.b = appendState(o.b, r.State)
	}
	return o.end()
}

func appendReady(b []byte, r *Ready) []byte {
	o := newObject(b)
	if r.Pid != 0 {
		o.int("pid", r.Pid)
	}
	if r.ShimPid != 0 {
		o.int("shim_pid", r.ShimPid)
	}
	if r.Error != "" {
		o.str("error", r.Error)
	}
	return o.end()
}

// Decoding: a small strict JSON reader. Keys match exactly (the daemon
// writes them as tagged); unknown keys are skipped; null leaves a field
// as it is, as with encoding/json.

var errSyntax = errors.New("invalid JSON")

type decoder struct {
	b []byte
	i int
}

// decodeObject parses the single JSON object in b and calls field for
// each member; field must consume the value.
func decodeObject(b []byte, field func(d *decoder, key string) error) error {
	d := &decoder{b: b}
	if err := d.object(field); err != nil {
		return err
	}
	d.space()
	if d.i != len(d.b) {
		return errors.New("invalid JSON: data after the object")
	}
	return nil
}

func (d *decoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) peek() byte {
	d.space()
	if d.i >= len(d.b) {
		return 0
	}
	return d.b[d.i]
}

func (d *decoder) expect(c byte) error {
	if d.peek() != c {
		if d.i >= len(d.b) {
			return errors.New("unexpected end of JSON input")
		}
		return errors.New("invalid JSON: want " + strconv.QuoteRune(rune(c)) + " at offset " + strconv.Itoa(d.i))
	}
	d.i++
	return nil
}

func (d *decoder) object(field func(d *decoder, key string) error) error {
	if err := d.expect('{'); err != nil {
		return err
	}
	if d.peek() == '}' {
		d.i++
		return nil
	}
	for {
		if d.peek() != '"' {
			return d.expect('"')
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		if err := d.expect(':'); err != nil {
			return err
		}
		if err := field(d, key); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return d.expect('}')
		}
	}
}

// null consumes a null literal if one is next.
func (d *decoder) null() bool {
	if d.peek() == 'n' && d.literal("null") {
		return true
	}
	return false
}

func (d *decoder) literal(lit string) bool {
	if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
		d.i += len(lit)
		return true
	}
	return false
}

func typeError(key, want string) error {
	return errors.New("json: field " + strconv.Quote(key) + " must be " + want)
}

func (d *decoder) stringField(key string, dst *string) error {
	if d.null() {
		return nil
	}
	if d.peek() != '"' {
		return typeError(key, "a string")
	}
	s, err := d.str()
	if err == nil {
		*dst = s
	}
	return err
}

func (d *decoder) boolField(key string, dst *bool) error {
	if d.null() {
		return nil
	}
	d.space()
	switch {
	case d.literal("true"):
		*dst = true
	case d.literal("false"):
		*dst = false
	default:
		return typeError(key, "true or false")
	}
	return nil
}

// intField reads an integer within [lo, hi].
func (d *decoder) intField(key string, lo, hi int64) (int64, bool, error) {
	if d.null() {
		return 0, false, nil
	}
	d.space()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	if d.i < len(d.b) && (d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		return 0, false, typeError(key, "an integer")
	}
	n, err := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, false, typeError(key, "an integer in range")
	}
	return n, true, nil
}

func (d *decoder) setInt(key string, dst *int) error {
	n, ok, err := d.intField(key, -1<<31, 1<<31-1)
	if ok {
		*dst = int(n)
	}
	return err
}

// str reads a string; the decoder is at its opening quote.
func (d *decoder) str() (string, error) {
	d.i++
	start := d.i
	// The common case: no escapes.
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c == '"' {
			s := string(d.b[start:d.i])
			d.i++
			return validUTF8(s), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", errSyntax
		}
		d.i++
	}
	out := append([]byte(nil), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return validUTF8(string(out)), nil
		case c < 0x20:
			return "", errSyntax
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			break
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", errSyntax
			}
			if r >= 0xd800 && r < 0xdc00 {
				// A surrogate pair, if the low half follows.
				save := d.i
				if d.literal(`\u`) {
					if r2, ok := d.hex4(); ok && r2 >= 0xdc00 && r2 < 0xe000 {
						out = appendRune(out, (r-0xd800)<<10+(r2-0xdc00)+0x10000)
						continue
					}
				}
				d.i = save
				r = 0xfffd
			} else if r >= 0xdc00 && r < 0xe000 {
				r = 0xfffd
			}
			out = appendRune(out, r)
		default:
			return "", errSyntax
		}
	}
	return "", errors.New("unexpected end of JSON input")
}

func (d *decoder) hex4() (rune, bool) {
	if len(d.b)-d.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	d.i += 4
	return r, true
}

func appendRune(b []byte, r rune) []byte {
	return append(b, string(r)...)
}

// validUTF8 replaces invalid bytes with U+FFFD, as encoding/json does.
func validUTF8(s string) string {
	for _, r := range s {
		if r == 0xfffd {
			return string([]rune(s))
		}
	}
	return s
}

// skip consumes any value, checking its syntax.
func (d *decoder) skip() error {
	_, err := d.raw()
	return err
}

// raw consumes any value and returns its bytes.
func (d *decoder) raw() ([]byte, error) {
	return d.rawDepth(0)
}

// maxDepth bounds nesting, so a hostile request cannot exhaust the stack.
const maxDepth = 1000

func (d *decoder) rawDepth(depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, errors.New("invalid JSON: nested too deeply")
	}
	start := d.i
	switch c := d.peek(); {
	case c == '{':
		start = d.i
		err := d.object(func(d *decoder, _ string) error {
			_, err := d.rawDepth(depth + 1)
			return err
		})
		if err != nil {
			return nil, err
		}
	case c == '[':
		start = d.i
		d.i++
		if d.peek() == ']' {
			d.i++
			break
		}
		for {
			if _, err := d.rawDepth(depth + 1); err != nil {
				return nil, err
			}
			if d.peek() == ',' {
				d.i++
				continue
			}
			if err := d.expect(']'); err != nil {
				return nil, err
			}
			break
		}
	case c == '"':
		start = d.i
		if _, err := d.str(); err != nil {
			return nil, err
		}
	case c == 't' || c == 'f' || c == 'n':
		start = d.i
		if !d.literal("true") && !d.literal("false") && !d.literal("null") {
			return nil, errSyntax
		}
	case c == '-' || c >= '0' && c <= '9':
		start = d.i
		if !d.number() {
			return nil, errSyntax
		}
	case c == 0:
		return nil, errors.New("unexpected end of JSON input")
	default:
		return nil, errSyntax
	}
	return d.b[start:d.i], nil
}

// number consumes a JSON number (RFC 8259 grammar).
func (d *decoder) number() bool {
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.b[d.i] == '-' {
		d.i++
	}
	if d.i < len(d.b) && d.b[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return false
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return false
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// parseRequest reads a request line.
func parseRequest(b []byte, r *Request) error {
	return decodeObject(b, func(d *decoder, key string) error {
		switch key {
		case "op":
			return d.stringField(key, &r.Op)
		case "exec_id":
			return d.stringField(key, &r.ExecID)
		case "signal":
			return d.setInt(key, &r.Signal)
		case "all":
			return d.boolField(key, &r.All)
		case "height", "width":
			n, ok, err := d.intField(key, 0, 1<<16-1)
			if ok && key == "height" {
				r.Height = uint16(n)
			} else if ok {
				r.Width = uint16(n)
			}
			return err
		case "process":
			raw, err := d.raw()
			r.Process = raw
			return err
		case "tty":
			return d.boolField(key, &r.Tty)
		case "stdin":
			return d.boolField(key, &r.Stdin)
		case "stdout":
			return d.boolField(key, &r.Stdout)
		case "stderr":
			return d.boolField(key, &r.Stderr)
		}
		return d.skip()
	})
}

// parseConfig reads shim.json.
func parseConfig(b []byte, c *Config) error {
	return decodeObject(b, func(d *decoder, key string) error {
		switch key {
		case "id":
			return d.stringField(key, &c.ID)
		case "bundle":
			return d.stringField(key, &c.Bundle)
		case "runtime":
			return d.stringField(key, &c.Runtime)
		case "runtime_root":
			return d.stringField(key, &c.RuntimeRoot)
		case "log_driver":
			return d.stringField(key, &c.LogDriver)
		case "log_path":
			return d.stringField(key, &c.LogPath)
		case "binary":
			return d.stringField(key, &c.Binary)
		case "tty":
			return d.boolField(key, &c.Tty)
		case "open_stdin":
			return d.boolField(key, &c.OpenStdin)
		case "stdin_once":
			return d.boolField(key, &c.StdinOnce)
		case "defer_create":
			return d.boolField(key, &c.DeferCreate)
		case "own_pid_ns":
			return d.boolField(key, &c.OwnPidNS)
		case "log_options":
			if d.null() {
				return nil
			}
			if d.peek() != '{' {
				return typeError(key, "an object")
			}
			return d.object(func(d *decoder, key string) error {
				switch key {
				case "max_size":
					n, ok, err := d.intField(key, -1<<63, 1<<63-1)
					if ok {
						c.LogOptions.MaxSize = n
					}
					return err
				case "max_file":
					return d.setInt(key, &c.LogOptions.MaxFile)
				}
				return d.skip()
			})
		}
		return d.skip()
	})
}

// processTerminal reads the terminal field of an OCI process.
func processTerminal(b []byte) (bool, error) {
	var term bool
	err := decodeObject(b, func(d *decoder, key string) error {
		if key == "terminal" {
			return d.boolField(key, &term)
		}
		return d.skip()
	})
	return term, err
}

// runtimeLogLine reads the level and msg of a line of the runtime's JSON
// log (--log-format json, as runc writes it).
func runtimeLogLine(l string) (level, msg string, ok bool) {
	err := decodeObject([]byte(l), func(d *decoder, key string) error {
		switch key {
		case "level":
			return d.stringField(key, &level)
		case "msg":
			return d.stringField(key, &msg)
		}
		return d.skip()
	})
	return level, msg, err == nil
}
