package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/api/stream"
)

// echoBackend is a ContainerBackend for the handler contract: attach
// echoes stdin to stdout and writes to stderr, wait answers when told,
// start of "running" is a no-op (304).
type echoBackend struct {
	NotImplemented
	tty     bool
	release chan struct{}
}

func (b *echoBackend) ContainerStart(_ context.Context, name string) error {
	if name == "running" {
		return ErrNotModified
	}
	return nil
}

func (b *echoBackend) ContainerAttach(_ context.Context, _ string, opts AttachOptions) error {
	stdin, stdout, stderr, err := opts.Streams(b.tty)
	if err != nil {
		return err
	}
	stderr.Write([]byte("to stderr\n"))
	line := make([]byte, 6)
	if _, err := io.ReadFull(stdin, line); err != nil {
		return err
	}
	_, err = stdout.Write(line)
	return err
}

func (b *echoBackend) ContainerWait(ctx context.Context, _ string, _ container.WaitCondition) (<-chan container.WaitResponse, error) {
	ch := make(chan container.WaitResponse, 1)
	go func() {
		select {
		case <-b.release:
			ch <- container.WaitResponse{StatusCode: 3}
		case <-ctx.Done():
		}
	}()
	return ch, nil
}

func testServer(t *testing.T, b ContainerBackend) *client.Client {
	c, _ := serveBackends(t, Backends{Containers: b})
	return c
}

// serveBackends serves b over HTTP for the test: a moby client on it, and
// its URL.
func serveBackends(t *testing.T, b Backends) (*client.Client, string) {
	s := New(Config{Version: "test"}, b)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	c, err := client.New(client.WithHost("tcp://"+strings.TrimPrefix(hs.URL, "http://")), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, hs.URL
}

func TestAttachHijackMultiplexed(t *testing.T) {
	for _, tty := range []bool{false, true} {
		c := testServer(t, &echoBackend{tty: tty})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := c.ContainerAttach(ctx, "x", client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		res.Conn.Write([]byte("hello\n"))
		all, _ := io.ReadAll(res.Reader)
		res.Close()
		if tty {
			if string(all) != "to stderr\nhello\n" {
				t.Errorf("tty attach got %q", all)
			}
			continue
		}
		var stdout, stderr bytes.Buffer
		if err := stream.Demux(&stdout, &stderr, bytes.NewReader(all)); err != nil {
			t.Fatal(err)
		}
		mt, _ := res.MediaType()
		if stdout.String() != "hello\n" || stderr.String() != "to stderr\n" || mt != stream.MediaTypeMultiplexedStream {
			t.Errorf("attach: stdout %q stderr %q media type %q", stdout.String(), stderr.String(), mt)
		}
	}
}

func TestWaitHeaderFirstAndNotModified(t *testing.T) {
	b := &echoBackend{release: make(chan struct{})}
	s := New(Config{Version: "test"}, Backends{Containers: b})
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	resp, err := http.Post(hs.URL+"/v1.41/containers/x/wait", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The status arrived while the container still "runs".
	if resp.StatusCode != 200 {
		t.Fatalf("wait status %d", resp.StatusCode)
	}
	close(b.release)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != `{"StatusCode":3}` {
		t.Errorf("wait body %q", body)
	}
	resp, err = http.Post(hs.URL+"/v1.41/containers/running/start", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("start of a running container: %d", resp.StatusCode)
	}
}
