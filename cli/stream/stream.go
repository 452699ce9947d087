// Package stream owns the client side of attached containers and execs:
// the standard streams and whether they are terminals, raw mode, the
// copy between them and a hijacked Engine API connection (multiplexed
// frames without a TTY, raw bytes with one), detach keys, terminal
// resizes and signal forwarding.
package stream

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"github.com/moby/term"
	"golang.org/x/sys/unix"
)

// DefaultDetachKeys is Docker's detach sequence.
const DefaultDetachKeys = "ctrl-p,ctrl-q"

// Streams are a command's standard streams.
type Streams struct {
	In  io.ReadCloser
	Out io.Writer
	Err io.Writer
}

// Standard returns the process's standard streams.
func Standard() *Streams {
	return &Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}
}

// fd returns the file descriptor behind v and whether it is a terminal.
func fd(v any) (uintptr, bool) {
	f, ok := v.(*os.File)
	if !ok {
		return 0, false
	}
	return f.Fd(), term.IsTerminal(f.Fd())
}

// InIsTerminal reports whether standard input is a terminal.
func (s *Streams) InIsTerminal() bool { _, t := fd(s.In); return t }

// OutIsTerminal reports whether standard output is a terminal.
func (s *Streams) OutIsTerminal() bool { _, t := fd(s.Out); return t }

// OutSize is the output terminal's size (0, 0 when it is none).
func (s *Streams) OutSize() (height, width uint) {
	f, ok := fd(s.Out)
	if !ok {
		return 0, 0
	}
	ws, err := term.GetWinsize(f)
	if err != nil {
		return 0, 0
	}
	return uint(ws.Height), uint(ws.Width)
}

// Options say which streams a Pump copies and how.
type Options struct {
	// TTY: the connection carries raw terminal bytes, not frames.
	TTY bool
	// Stdin, Stdout, Stderr: the streams that are attached.
	Stdin, Stdout, Stderr bool
	// DetachKeys end the session without stopping the container (TTY
	// sessions with stdin only); "" means DefaultDetachKeys.
	DetachKeys string
}

// ErrDetached is returned by Pump when the user typed the detach keys.
var ErrDetached = errors.New("detached from the container")

// Pump copies between s and the hijacked connection until the output ends
// (or, without attached output, the input ends) or ctx is done. With a
// TTY and a terminal stdin it puts the terminal in raw mode meanwhile.
func Pump(ctx context.Context, resp client.HijackedResponse, s *Streams, o Options) error {
	defer resp.Close()
	if o.TTY && o.Stdin {
		if f, isTerm := fd(s.In); isTerm {
			state, err := term.SetRawTerminal(f)
			if err != nil {
				return err
			}
			defer term.RestoreTerminal(f, state)
		}
	}
	in := io.Reader(s.In)
	if o.TTY && o.Stdin {
		keys := o.DetachKeys
		if keys == "" {
			keys = DefaultDetachKeys
		}
		seq, err := term.ToBytes(keys)
		if err != nil {
			return err
		}
		in = term.NewEscapeProxy(in, seq)
	}

	outDone := make(chan error, 1)
	if o.Stdout || o.Stderr {
		go func() {
			var err error
			if o.TTY {
				_, err = io.Copy(s.Out, resp.Reader)
			} else {
				_, err = stdcopy.StdCopy(s.Out, s.Err, resp.Reader)
			}
			outDone <- err
		}()
	} else {
		close(outDone)
	}
	inDone := make(chan error, 1)
	if o.Stdin {
		go func() {
			_, err := io.Copy(resp.Conn, in)
			var esc term.EscapeError
			if errors.As(err, &esc) {
				// Detaching leaves the container's stdin open.
				inDone <- ErrDetached
				return
			}
			// The container sees EOF on its stdin once ours ends.
			resp.CloseWrite()
			inDone <- err
		}()
	}

	select {
	case err := <-outDone:
		return err
	case err := <-inDone:
		if errors.Is(err, ErrDetached) {
			return err
		}
		if !o.Stdout && !o.Stderr {
			return err
		}
		select {
		case err := <-outDone:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// MonitorSize sends the output terminal's size now and on every SIGWINCH
// until ctx is done.
func MonitorSize(ctx context.Context, s *Streams, resize func(ctx context.Context, height, width uint) error) {
	send := func() {
		h, w := s.OutSize()
		if h == 0 && w == 0 {
			return
		}
		resize(ctx, h, w)
	}
	send()
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGWINCH)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ch:
				send()
			case <-ctx.Done():
				return
			}
		}
	}()
}

// ForwardSignals sends the signals this process receives to the container
// through kill until ctx is done (docker's --sig-proxy). SIGCHLD, SIGPIPE,
// SIGWINCH and SIGURG (the Go runtime's) are the process's own business.
func ForwardSignals(ctx context.Context, kill func(sig string)) {
	ch := make(chan os.Signal, 128)
	// Asking for every signal installs some 60 handlers and starts the
	// signal thread (a millisecond or two): done beside the requests that
	// follow rather than before them.
	go func() {
		signal.Notify(ch)
		defer signal.Stop(ch)
		for {
			select {
			case sig := <-ch:
				s, ok := sig.(unix.Signal)
				if !ok {
					continue
				}
				switch s {
				case unix.SIGCHLD, unix.SIGPIPE, unix.SIGWINCH, unix.SIGURG:
					continue
				}
				kill(unix.SignalName(s))
			case <-ctx.Done():
				return
			}
		}
	}()
}
