package stream

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
)

// Media types of the hijacked and log streams.
const (
	MediaTypeRawStream         = "application/vnd.docker.raw-stream"
	MediaTypeMultiplexedStream = "application/vnd.docker.multiplexed-stream"
)

// Conn is a connection taken over from the HTTP server after the response
// header was written: reads are the client's stdin (including what the
// server had buffered already), writes go straight to the client.
type Conn struct {
	net.Conn
	r         *bufio.Reader
	closeOnce sync.Once
}

// Read reads the client's bytes, buffered ones first.
func (c *Conn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the connection when it can (the client sees EOF
// on its stdout while it may still send stdin), else closes it.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// Close closes the connection once.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() { err = c.Conn.Close() })
	return err
}

// Hijack takes the connection of w over and writes the response header
// itself, as dockerd does for attach and exec start: "101 UPGRADED" with
// "Connection: Upgrade" and "Upgrade: tcp" when the client asked to
// upgrade, else "200 OK". contentType is MediaTypeRawStream or
// MediaTypeMultiplexedStream; the headers already set on w (Api-Version,
// Server, ...) are sent too.
func Hijack(w http.ResponseWriter, r *http.Request, contentType string) (*Conn, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, fmt.Errorf("the connection cannot be hijacked")
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, fmt.Errorf("hijack the connection: %w", err)
	}
	// The server's deadlines were for a request; a stream lives as long
	// as the container or the client wants.
	_ = nc.SetDeadline(noDeadline)
	hdr := w.Header().Clone()
	hdr.Del("Content-Length")
	hdr.Set("Content-Type", contentType)
	status := "HTTP/1.1 200 OK\r\n"
	if _, upgrade := r.Header["Upgrade"]; upgrade {
		status = "HTTP/1.1 101 UPGRADED\r\n"
		hdr.Set("Connection", "Upgrade")
		hdr.Set("Upgrade", "tcp")
	}
	if _, err := io.WriteString(nc, status); err == nil {
		err = hdr.Write(nc)
		if err == nil {
			_, err = io.WriteString(nc, "\r\n")
		}
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("write the hijacked response header: %w", err)
		}
	} else {
		nc.Close()
		return nil, fmt.Errorf("write the hijacked response header: %w", err)
	}
	// Read what the server buffered, then the socket itself: reading
	// through the server's reader would end the request's context when
	// the client half-closes (its EOF on stdin), which is not a
	// disconnect.
	buffered, _ := brw.Reader.Peek(brw.Reader.Buffered())
	in := bufio.NewReader(io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), nc))
	return &Conn{Conn: nc, r: in}, nil
}
