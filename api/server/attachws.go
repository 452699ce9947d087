package server

import (
	"errors"
	"io"
	"net/http"

	"golang.org/x/net/websocket"
)

// containerAttachWS is GET /containers/{name}/attach/ws: attach over a
// websocket, never multiplexed (the client reads one stream), in binary
// frames.
func (s *Server) containerAttachWS(w http.ResponseWriter, r *http.Request) error {
	opts := attachOptions(r)
	if versionBefore(r.Context(), "1.42") {
		// Older clients could not choose the streams.
		opts.UseStdin, opts.UseStdout, opts.UseStderr = true, true, true
	}
	done := make(chan struct{})
	served := make(chan struct{})
	var conn *websocket.Conn
	opts.Streams = func(bool) (io.ReadCloser, io.Writer, io.Writer, error) {
		if conn != nil {
			return nil, nil, nil, errors.New("attach streams requested twice")
		}
		connCh := make(chan *websocket.Conn, 1)
		srv := websocket.Server{Handler: func(c *websocket.Conn) {
			connCh <- c
			<-done
		}}
		go func() {
			defer close(served)
			srv.ServeHTTP(w, r)
			close(connCh)
		}()
		c, ok := <-connCh
		if !ok {
			return nil, nil, nil, errors.New("websocket handshake failed")
		}
		c.PayloadType = websocket.BinaryFrame
		conn = c
		return c, c, c, nil
	}
	err := s.b.Containers.ContainerAttach(r.Context(), r.PathValue("name"), opts)
	close(done)
	select {
	case <-served:
		return nil
	default:
	}
	if conn != nil {
		<-served
		return nil
	}
	return err
}
