package server

import (
	"io"
	"net/http"

	"github.com/moby/moby/api/types/common"
	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/api/stream"
)

func (s *Server) execCreate(w http.ResponseWriter, r *http.Request) error {
	var req container.ExecCreateRequest
	if _, err := readJSON(w, r, &req, false); err != nil {
		return err
	}
	if len(req.Cmd) == 0 {
		return invalid("No exec command specified")
	}
	id, err := s.b.Containers.ExecCreate(r.Context(), r.PathValue("name"), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, common.IDResponse{ID: id})
	return nil
}

// execStart runs an exec: detached it answers 200 once started; else the
// connection is taken over (101 with "Upgrade: tcp", else 200) and
// carries stdin and the output until the process exits, as dockerd.
func (s *Server) execStart(w http.ResponseWriter, r *http.Request) error {
	var req container.ExecStartRequest
	if _, err := readJSON(w, r, &req, false); err != nil {
		return err
	}
	id := r.PathValue("id")
	ctx := r.Context()
	// Unknown execs are a 404 before the connection is taken over.
	if _, err := s.b.Containers.ExecInspect(ctx, id); err != nil {
		return err
	}
	opts := ExecStartOptions{Detach: req.Detach, Tty: req.Tty, ConsoleSize: req.ConsoleSize}
	if req.Detach {
		if err := s.b.Containers.ExecStart(ctx, id, opts); err != nil {
			return err
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
	_, upgrade := r.Header["Upgrade"]
	ct := stream.MediaTypeRawStream
	if upgrade && !req.Tty && !versionBefore(ctx, "1.42") {
		ct = stream.MediaTypeMultiplexedStream
	}
	conn, err := stream.Hijack(w, r, ct)
	if err != nil {
		return err
	}
	defer conn.Close()
	opts.Stdin = conn
	var stdout, stderr io.Writer = conn, conn
	if !req.Tty {
		m := stream.NewMultiplexer(conn)
		stdout, stderr = m.Writer(stream.Stdout), m.Writer(stream.Stderr)
	}
	opts.Stdout, opts.Stderr = stdout, stderr
	if err := s.b.Containers.ExecStart(ctx, id, opts); err != nil {
		// The status line is sent: the error goes to the client's stdout.
		_, _ = stdout.Write([]byte(MessageOf(err) + "\r\n"))
	}
	return nil
}

func (s *Server) execResize(w http.ResponseWriter, r *http.Request) error {
	h, wd, err := resizeArgs(r)
	if err != nil {
		return err
	}
	if err := s.b.Containers.ExecResize(r.Context(), r.PathValue("id"), h, wd); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) execInspect(w http.ResponseWriter, r *http.Request) error {
	resp, err := s.b.Containers.ExecInspect(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
