package daemon

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/api/filters"
	"github.com/berth-dev/berth/api/server"
	"github.com/berth-dev/berth/container/files"
	"github.com/berth-dev/berth/container/logs"
	cservice "github.com/berth-dev/berth/container/service"
	"github.com/berth-dev/berth/container/store"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/volume"
)

// NewContainers is the engine's container side: container/service behind
// the API's ContainerBackend. berth-runtime, berth-shim and berth-init are
// found next to the berthd executable, else in $PATH.
func NewContainers(e Engine) (Containers, error) {
	var bins [3]string
	for i, name := range []string{"berth-runtime", "berth-shim", "berth-init"} {
		p, err := findBinary(name)
		if err != nil {
			return nil, err
		}
		bins[i] = p
	}
	vols, err := openVolumes(e)
	if err != nil {
		return nil, err
	}
	if e.Config.Remap != nil {
		vols.SetOwner(e.Config.Remap.Root())
	}
	svc, err := cservice.Open(context.Background(), cservice.Options{
		Root:     filepath.Join(e.Config.DataRoot, "containers"),
		ExecRoot: e.Config.ExecRoot,
		Images:   e.Images,
		Events:   e.Events,
		Runtime:  bins[0], Shim: bins[1], Init: bins[2],
		CgroupParent: e.Config.CgroupParent,
		Volumes:      vols,
		Networks:     networksOf(e),
		Userns:       remapLayers(e.Config, e.Log),
		Logf:         func(format string, args ...any) { e.Log.Warn(fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		return nil, err
	}
	return &containerBackend{svc: svc, e: e, vols: vols}, nil
}

func findBinary(name string) (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s: not found next to berthd nor in $PATH", name)
}

// containerBackend translates the API's container and exec calls to
// container/service, and its streams to the shim's connections.
type containerBackend struct {
	svc  *cservice.Service
	e    Engine
	vols *volume.Store
}

var _ server.ContainerBackend = (*containerBackend)(nil)

func (b *containerBackend) ImageUsers(id digest.Digest) []string {
	return b.svc.ImageUsers(id.String())
}

func (b *containerBackend) ContainerCreate(ctx context.Context, req server.ContainerCreateRequest) (container.CreateResponse, error) {
	id, warnings, err := b.svc.Create(ctx, cservice.CreateOptions{Name: req.Name, Config: req.Config, HostConfig: req.HostConfig, Networking: req.NetworkingConfig})
	if err != nil {
		return container.CreateResponse{}, err
	}
	if warnings == nil {
		warnings = []string{}
	}
	return container.CreateResponse{ID: id, Warnings: warnings}, nil
}

func (b *containerBackend) ContainerStart(ctx context.Context, name string) error {
	return b.svc.Start(ctx, name)
}

func (b *containerBackend) ContainerStop(ctx context.Context, name string, o server.StopOptions) error {
	return b.svc.Stop(ctx, name, o.Signal, o.Timeout)
}

func (b *containerBackend) ContainerRestart(ctx context.Context, name string, o server.StopOptions) error {
	return b.svc.Restart(ctx, name, o.Signal, o.Timeout)
}

func (b *containerBackend) ContainerKill(ctx context.Context, name, signal string) error {
	return b.svc.Kill(ctx, name, signal)
}

func (b *containerBackend) ContainerWait(ctx context.Context, name string, cond container.WaitCondition) (<-chan container.WaitResponse, error) {
	return b.svc.Wait(ctx, name, cond)
}

func (b *containerBackend) ContainerRemove(ctx context.Context, name string, o server.RemoveOptions) error {
	return b.svc.Remove(ctx, name, cservice.RemoveOptions{Force: o.Force, Volumes: o.RemoveVolumes})
}

func (b *containerBackend) ContainerList(ctx context.Context, o server.ListOptions) ([]container.Summary, error) {
	fm := filterMap(o.Filters)
	limit := o.Limit
	wantNets := fm["network"]
	if b.e.Networks != nil && len(wantNets) > 0 {
		// The network manager knows every network a container is on.
		delete(fm, "network")
		limit = 0
	}
	recs, err := b.svc.Store().List(store.ListOptions{
		All: o.All, Limit: limit, Filters: fm,
		ImageIDs: func(ref string) []string {
			if img, err := b.e.Images.Get(ctx, ref); err == nil {
				return []string{img.ID.String()}
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	out := make([]container.Summary, 0, len(recs))
	t := time.Now()
	for _, r := range recs {
		if b.e.Networks != nil && len(wantNets) > 0 && !b.e.Networks.OnNetwork(r.ID, wantNets) {
			continue
		}
		if o.Limit > 0 && len(out) == o.Limit {
			break
		}
		s := r.Summary(t)
		if b.e.Networks != nil {
			s.Ports = b.e.Networks.PortSummaries(r.ID)
			s.NetworkSettings = &container.NetworkSettingsSummary{Networks: b.e.Networks.Settings(r.ID).Networks}
		}
		if o.Size {
			s.SizeRw = b.svc.RWSize(ctx, r.ID)
			s.SizeRootFs = s.SizeRw + b.imageSize(ctx, r.Image)
		}
		out = append(out, s)
	}
	return out, nil
}

func (b *containerBackend) imageSize(ctx context.Context, id string) int64 {
	if img, err := b.e.Images.Get(ctx, id); err == nil {
		return img.Size
	}
	return 0
}

func filterMap(a filters.Args) map[string][]string {
	m := map[string][]string{}
	for k := range a {
		m[k] = a.Get(k)
	}
	return m
}

func (b *containerBackend) ContainerInspect(ctx context.Context, name string, size bool) (container.InspectResponse, error) {
	rec, err := b.svc.Store().Get(name)
	if err != nil {
		return container.InspectResponse{}, err
	}
	r := rec.Inspect()
	if b.e.Networks != nil {
		r.NetworkSettings = b.e.Networks.Settings(rec.ID)
	}
	if size {
		rw := b.svc.RWSize(ctx, rec.ID)
		root := rw + b.imageSize(ctx, rec.Image)
		r.SizeRw, r.SizeRootFs = &rw, &root
	}
	return r, nil
}

func (b *containerBackend) ContainerLogs(ctx context.Context, name string, o server.LogsOptions) error {
	rec, err := b.svc.Store().Get(name)
	if err != nil {
		return err
	}
	if rec.LogPath == "" {
		return fmt.Errorf("configured logging driver does not support reading: %w", errdefs.ErrNotImplemented)
	}
	stdout, stderr := o.Streams(rec.Config.Tty)
	return logs.Read(ctx, rec.LogPath, logs.ReadOptions{
		Stdout: o.ShowStdout, Stderr: o.ShowStderr, Since: o.Since, Until: o.Until,
		Tail: o.Tail, Follow: o.Follow, Done: b.svc.RunDone(rec.ID),
	}, func(en logs.Entry) error {
		w := stdout
		if en.Stream == "stderr" {
			w = stderr
		}
		if o.Details {
			// dockerd puts the entry's attributes (log-opt labels and
			// env; none here) and a space before the line.
			en.Line = append([]byte{' '}, en.Line...)
		}
		line := en.Line
		if o.Timestamps {
			line = en.Timestamped()
		}
		_, err := w.Write(line)
		return err
	})
}

func (b *containerBackend) ContainerAttach(ctx context.Context, name string, o server.AttachOptions) error {
	rec, err := b.svc.Store().Get(name)
	if err != nil {
		return err
	}
	if rec.State.Paused {
		return fmt.Errorf("You cannot attach to a paused container, unpause it first: %w", errdefs.ErrConflict)
	}
	keys, err := parseDetachKeys(o.DetachKeys)
	if err != nil {
		return err
	}
	stdin, stdout, stderr, err := o.Streams(rec.Config.Tty)
	if err != nil {
		return err
	}
	if o.Logs && rec.LogPath != "" {
		logs.Read(ctx, rec.LogPath, logs.ReadOptions{Stdout: o.UseStdout, Stderr: o.UseStderr, Tail: -1}, func(en logs.Entry) error {
			w := stdout
			if en.Stream == "stderr" {
				w = stderr
			}
			if w == nil {
				return nil
			}
			_, err := w.Write(en.Line)
			return err
		})
	}
	if !o.Stream {
		return nil
	}
	conn, rec, err := b.svc.Attach(ctx, rec.ID, cservice.AttachOptions{
		Stdin: o.UseStdin && rec.Config.OpenStdin, Stdout: o.UseStdout, Stderr: o.UseStderr,
	})
	if err != nil {
		return err
	}
	if !rec.Config.OpenStdin {
		stdin = nil // nothing to write to: the client's EOF must not end the stream
	}
	return pump(ctx, conn, rec.Config.Tty, stdin, stdout, stderr, keys)
}

// pump copies a shim stream to the client until the output ends, the
// client detaches (keys on stdin) or ctx ends.
func pump(ctx context.Context, conn *net.UnixConn, tty bool, stdin io.Reader, stdout, stderr io.Writer, keys []byte) error {
	defer conn.Close()
	detached := make(chan struct{})
	if stdin != nil {
		go func() {
			r := stdin
			if len(keys) > 0 {
				r = &escapeReader{r: stdin, keys: keys}
			}
			_, err := io.Copy(conn, r)
			if errors.Is(err, errDetached) {
				close(detached)
				return
			}
			conn.CloseWrite()
		}()
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	out := make(chan error, 1)
	go func() { out <- copyOutput(conn, tty, stdout, stderr) }()
	select {
	case err := <-out:
		return err
	case <-detached:
		return nil
	}
}

// copyOutput writes the shim's stream to the client: raw with a TTY, else
// its stdcopy frames to stdout and stderr.
func copyOutput(r io.Reader, tty bool, stdout, stderr io.Writer) error {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	if tty {
		_, err := io.Copy(stdout, r)
		return quiet(err)
	}
	hdr := make([]byte, 8)
	buf := make([]byte, 32<<10)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return quiet(err)
		}
		w := stdout
		if hdr[0] == 2 {
			w = stderr
		}
		n := int64(binary.BigEndian.Uint32(hdr[4:]))
		if _, err := io.CopyBuffer(w, io.LimitReader(r, n), buf); err != nil {
			return quiet(err)
		}
	}
}

// quiet treats the ends of a stream as a normal end.
func quiet(err error) error {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

var errDetached = errors.New("detached")

// escapeReader passes stdin through until it sees the detach keys.
type escapeReader struct {
	r       io.Reader
	keys    []byte
	matched int // how many bytes of keys the last reads ended with
}

func (e *escapeReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	out := p[:0]
	for _, c := range p[:n] {
		if c == e.keys[e.matched] {
			e.matched++
			if e.matched == len(e.keys) {
				return len(out), errDetached
			}
			continue
		}
		// A partial match that failed: its bytes were input after all.
		out = append(out, e.keys[:e.matched]...)
		e.matched = 0
		if c == e.keys[0] {
			e.matched = 1
			continue
		}
		out = append(out, c)
	}
	return len(out), err
}

// parseDetachKeys reads Docker's detach key syntax ("ctrl-p,ctrl-q"; "" is
// that default).
func parseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		s = "ctrl-p,ctrl-q"
	}
	var out []byte
	for _, k := range strings.Split(s, ",") {
		switch {
		case len(k) == 1:
			out = append(out, k[0])
		case strings.HasPrefix(k, "ctrl-") && len(k) == 6:
			c := k[5]
			switch {
			case c >= 'a' && c <= 'z':
				out = append(out, c-'a'+1)
			case c == '@':
				out = append(out, 0)
			case c >= '[' && c <= '_':
				out = append(out, c-'['+27)
			default:
				return nil, fmt.Errorf("Invalid escape keys (%s) provided: %w", s, errdefs.ErrInvalidArgument)
			}
		default:
			return nil, fmt.Errorf("Invalid escape keys (%s) provided: %w", s, errdefs.ErrInvalidArgument)
		}
	}
	return out, nil
}

func (b *containerBackend) ContainerResize(ctx context.Context, name string, height, width uint) error {
	return b.svc.Resize(ctx, name, height, width)
}

func (b *containerBackend) ContainerRename(ctx context.Context, name, newName string) error {
	return b.svc.Rename(ctx, name, newName)
}

func (b *containerBackend) ContainerPause(ctx context.Context, name string) error {
	return b.svc.Pause(ctx, name)
}

func (b *containerBackend) ContainerUnpause(ctx context.Context, name string) error {
	return b.svc.Unpause(ctx, name)
}

func (b *containerBackend) ContainerPrune(ctx context.Context, f filters.Args) (container.PruneReport, error) {
	return b.svc.Prune(ctx, filterMap(f))
}

func (b *containerBackend) ExecCreate(ctx context.Context, name string, cfg container.ExecCreateRequest) (string, error) {
	return b.svc.ExecCreate(ctx, name, cfg)
}

func (b *containerBackend) ExecStart(ctx context.Context, id string, o server.ExecStartOptions) error {
	conn, tty, err := b.svc.ExecStart(ctx, id, o.ConsoleSize)
	if err != nil {
		return err
	}
	if conn == nil {
		return nil
	}
	if o.Detach {
		conn.Close()
		return nil
	}
	stdin := o.Stdin
	if insp, err := b.svc.ExecInspect(ctx, id); err != nil || !insp.OpenStdin {
		stdin = nil // the client's EOF must not end the stream
	}
	if err := pump(ctx, conn, tty, stdin, o.Stdout, o.Stderr, nil); err != nil {
		return err
	}
	return b.svc.ExecWait(ctx, id)
}

func (b *containerBackend) ExecResize(ctx context.Context, id string, height, width uint) error {
	return b.svc.ExecResize(ctx, id, height, width)
}

func (b *containerBackend) ExecInspect(ctx context.Context, id string) (container.ExecInspectResponse, error) {
	return b.svc.ExecInspect(ctx, id)
}

func (b *containerBackend) ContainerTop(ctx context.Context, name, psArgs string) (container.TopResponse, error) {
	return b.svc.Top(ctx, name, psArgs)
}

func (b *containerBackend) ContainerStats(ctx context.Context, name string, o server.StatsOptions) error {
	return b.svc.Stats(ctx, name, o.Stream, o.OneShot, o.Send)
}

func (b *containerBackend) ContainerUpdate(ctx context.Context, name string, cfg container.UpdateConfig) (container.UpdateResponse, error) {
	return b.svc.Update(ctx, name, cfg)
}

func (b *containerBackend) ContainerExport(ctx context.Context, name string, w io.Writer) error {
	return b.svc.Export(ctx, name, w)
}

func (b *containerBackend) ContainerChanges(ctx context.Context, name string) ([]container.FilesystemChange, error) {
	return b.svc.Changes(ctx, name)
}

func (b *containerBackend) ContainerStatPath(ctx context.Context, name, path string) (container.PathStat, error) {
	return b.svc.StatPath(ctx, name, path)
}

func (b *containerBackend) ContainerArchivePath(ctx context.Context, name, path string) (io.ReadCloser, container.PathStat, error) {
	return b.svc.ArchivePath(ctx, name, path)
}

func (b *containerBackend) ContainerExtractToDir(ctx context.Context, name, path string, o server.ExtractOptions, content io.Reader) error {
	return b.svc.Extract(ctx, name, path, content, files.ExtractOptions{NoOverwriteDirNonDir: o.NoOverwriteDirNonDir, CopyUIDGID: o.CopyUIDGID})
}

func (b *containerBackend) ContainerCommit(ctx context.Context, o server.CommitOptions) (string, error) {
	return b.svc.Commit(ctx, o.Container, cservice.CommitOptions{
		Ref: o.Reference, Comment: o.Comment, Author: o.Author, Pause: o.Pause, Changes: o.Changes, Config: o.Config,
	})
}
