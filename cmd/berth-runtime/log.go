package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// logger writes what runc writes: errors to stderr, and with --log every
// message to a file, as JSON lines for --log-format json (containerd's
// shim reads the last "msg" of such a file to report a failure).
type logger struct {
	out   io.Writer
	json  bool
	debug bool
}

func newLogger(path, format string, debug bool) (*logger, error) {
	l := &logger{debug: debug}
	switch format {
	case "", "text":
	case "json":
		l.json = true
	default:
		return nil, fmt.Errorf("unknown --log-format %q (want text or json)", format)
	}
	if path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_SYNC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log %s: %w", path, err)
		}
		l.out = f
	}
	return l, nil
}

func (l *logger) log(level, msg string) {
	if l.out == nil {
		return
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if l.json {
		b, _ := json.Marshal(map[string]string{"level": level, "msg": msg, "time": now})
		l.out.Write(append(b, '\n'))
		return
	}
	fmt.Fprintf(l.out, "time=%q level=%s msg=%q\n", now, level, msg)
}

func (l *logger) Debugf(format string, args ...any) {
	if l.debug {
		l.log("debug", fmt.Sprintf(format, args...))
	}
}

func (l *logger) Error(err error) {
	l.log("error", err.Error())
	fmt.Fprintf(os.Stderr, "berth-runtime: %v\n", err)
}
