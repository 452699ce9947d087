package pull

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/compression"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/snapshot/apply"
)

// The keys of the temporary active snapshots a pull makes start with
// these prefixes, followed by the pull's id: "pull-tmp-<id>-<layer>" (a
// layer unpacked into a bare directory) and "pull-commit-<id>-<layer>" (the
// same layer on its parent, about to be committed).
const (
	TempPrefix   = "pull-tmp-"
	CommitPrefix = "pull-commit-"
)

var (
	livePulls   sync.Mutex
	livePullIDs = map[string]bool{}
)

func newPullID() string {
	b := make([]byte, 8)
	rand.Read(b)
	id := hex.EncodeToString(b)
	livePulls.Lock()
	livePullIDs[id] = true
	livePulls.Unlock()
	return id
}

func releasePullID(id string) {
	livePulls.Lock()
	delete(livePullIDs, id)
	livePulls.Unlock()
}

// Cleanup removes temporary snapshots that no pull of this process is
// using: what a crashed or killed pull left behind. The daemon calls it at
// start.
func Cleanup(ctx context.Context, sn snapshot.Snapshotter) error {
	var stale []string
	err := sn.Walk(ctx, func(_ context.Context, info snapshot.Info) error {
		if info.Kind != snapshot.KindActive {
			return nil
		}
		rest, ok := strings.CutPrefix(info.Name, TempPrefix)
		if !ok {
			if rest, ok = strings.CutPrefix(info.Name, CommitPrefix); !ok {
				return nil
			}
		}
		id, _, _ := strings.Cut(rest, "-")
		livePulls.Lock()
		live := livePullIDs[id]
		livePulls.Unlock()
		if !live {
			stale = append(stale, info.Name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, k := range stale {
		if err := sn.Remove(ctx, k); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// blobWriteSize is the buffer between a layer's download and its content
// store ingest: one write(2) per MiB instead of one per network read.
const blobWriteSize = 1 << 20

// unpack fetches j's blob and unpacks it into a new temporary snapshot.
func (u *unpacker) unpack(ctx context.Context, pullID string, j *job) error {
	sn, cs := u.opts.Snapshots, u.opts.Content
	key := fmt.Sprintf("%s%s-%d", TempPrefix, pullID, j.i)
	mounts, err := sn.Prepare(ctx, key, "")
	if err != nil {
		return err
	}
	j.tmpKey = key
	if len(mounts) != 1 || mounts[0].Type != "bind" {
		return fmt.Errorf("snapshot %q: expected one bind mount of a bare directory, got %v: %w", key, mounts, errdefs.ErrNotImplemented)
	}
	j.fsDir = mounts[0].Source

	w, err := cs.Writer(ctx, ingestRef(j.desc.Digest), j.desc)
	switch {
	case errdefs.IsAlreadyExists(err):
		u.fromStore.Add(1)
		return u.unpackFromStore(ctx, j, j.fsDir)
	case err != nil:
		return err
	}
	defer w.Close()
	if off := w.Offset(); off > 0 {
		// A previous pull left part of the blob: fetch the rest, then
		// unpack from the store (the decompressor needs the whole stream).
		if err := u.download(ctx, j, w, off); err != nil {
			return err
		}
		return u.unpackFromStore(ctx, j, j.fsDir)
	}

	body, err := u.repo.OpenBlob(ctx, j.desc, 0)
	if err != nil {
		return err
	}
	defer body.Close()
	dl := &counter{p: u.prog, report: true, ev: Event{Layer: j.i, Digest: j.desc.Digest, Status: StatusDownloading, Total: j.desc.Size}}
	// The blob reaches the ingest in large writes (the decompressor reads
	// 64 KiB at a time); what is still buffered is flushed before Commit.
	bw := bufio.NewWriterSize(w, blobWriteSize)
	src := io.TeeReader(body, io.MultiWriter(bw, dl))
	diffID, n, aerr := u.applyStream(ctx, j, j.fsDir, src)
	u.downloaded.Add(dl.n)
	if aerr != nil && ctx.Err() != nil {
		return aerr
	}
	// Read what the decompressor left (padding after the stream's end, or
	// everything after a decode error): the blob digest decides whether
	// the bytes or the layer are at fault.
	rest, derr := io.Copy(io.Discard, src)
	u.downloaded.Add(rest)
	if derr == nil {
		derr = bw.Flush()
	}
	if derr != nil {
		if aerr != nil {
			return aerr
		}
		return derr
	}
	u.event(j, StatusVerifying, 0, 0)
	if err := w.Commit(ctx, j.desc.Size, j.desc.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return err
	}
	u.event(j, StatusDownloaded, 0, 0)
	if aerr != nil {
		return aerr
	}
	return u.checkDiffID(j, diffID, n)
}

// fetch stores j's blob without unpacking it.
func (u *unpacker) fetch(ctx context.Context, j *job) error {
	w, err := u.opts.Content.Writer(ctx, ingestRef(j.desc.Digest), j.desc)
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	return u.download(ctx, j, w, w.Offset())
}

// download writes the rest of j's blob, from off, into w and commits it.
func (u *unpacker) download(ctx context.Context, j *job, w content.Writer, off int64) error {
	body, err := u.repo.OpenBlob(ctx, j.desc, off)
	if err != nil {
		if errdefs.IsInvalidArgument(err) { // the partial ingest is unusable
			if err := w.Truncate(0); err != nil {
				return err
			}
			off = 0
			body, err = u.repo.OpenBlob(ctx, j.desc, 0)
		}
		if err != nil {
			return err
		}
	}
	defer body.Close()
	dl := &counter{p: u.prog, report: true, n: off, ev: Event{Layer: j.i, Digest: j.desc.Digest, Status: StatusDownloading, Total: j.desc.Size}}
	bw := bufio.NewWriterSize(w, blobWriteSize)
	_, err = io.Copy(io.MultiWriter(bw, dl), body)
	u.downloaded.Add(dl.n - off)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return err
	}
	u.event(j, StatusVerifying, 0, 0)
	if err := w.Commit(ctx, j.desc.Size, j.desc.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return err
	}
	u.event(j, StatusDownloaded, 0, 0)
	return nil
}

// unpackFromStore applies j's committed blob onto dir.
func (u *unpacker) unpackFromStore(ctx context.Context, j *job, dir string) error {
	ra, err := u.opts.Content.ReaderAt(ctx, j.desc)
	if err != nil {
		return err
	}
	defer ra.Close()
	diffID, n, err := u.applyStream(ctx, j, dir, io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		return err
	}
	return u.checkDiffID(j, diffID, n)
}

func (u *unpacker) checkDiffID(j *job, got digest.Digest, n int64) error {
	if got != j.diffID {
		return fmt.Errorf("uncompressed layer (%d bytes) has diffID %s, the config says %s: %w", n, got, j.diffID, errdefs.ErrFailedPrecondition)
	}
	j.size = n
	return nil
}

// errApplyStopped is what the decompressor gets when the applier stopped
// reading.
var errApplyStopped = errors.New("layer apply stopped")

// applyStream decompresses r and applies the tar onto dir: the inflating
// runs on its own goroutine and hands chunks through a pipe to the applier,
// which hashes them (the diffID). It returns the diffID and the
// uncompressed size. When it returns, r is no longer read.
func (u *unpacker) applyStream(ctx context.Context, j *job, dir string, r io.Reader) (digest.Digest, int64, error) {
	pp := newPipe()
	pw := pp.writer()
	done := make(chan error, 1)
	go func() {
		dr, _, err := compression.DecompressStream(r)
		if err != nil {
			pw.Close(err)
			done <- err
			return
		}
		_, err = io.Copy(pw, compression.NewLimitReader(dr, u.opts.MaxLayerSize))
		dr.Close()
		pw.Close(err)
		done <- err
	}()
	dg := digest.Canonical.Digester()
	ex := &counter{p: u.prog, report: true, ev: Event{Layer: j.i, Digest: j.desc.Digest, Status: StatusExtracting}}
	_, err := apply.Apply(ctx, dir, io.TeeReader(pp, io.MultiWriter(dg.Hash(), ex)), u.opts.Apply)
	pp.CloseRead(errApplyStopped)
	derr := <-done
	u.unpacked.Add(ex.n)
	if err == nil && derr != nil && !errors.Is(derr, errApplyStopped) {
		err = derr
	}
	if err != nil {
		return "", ex.n, err
	}
	return dg.Digest(), ex.n, nil
}

// promote turns j's unpacked temporary snapshot into the committed
// snapshot named by its chain id, on its parent.
func (u *unpacker) promote(ctx context.Context, pullID string, j *job) error {
	sn := u.opts.Snapshots
	name := j.chain.String()
	if _, err := sn.Stat(ctx, name); err == nil { // another pull was faster
		return nil
	}
	// Image records need each layer's uncompressed size: keep it now
	// rather than inflate the layer again later.
	size := snapshot.WithLabels(map[string]string{snapshot.LabelLayerSize: strconv.FormatInt(j.size, 10)})
	if j.parent == "" {
		err := sn.Commit(ctx, name, j.tmpKey, size)
		if err == nil {
			j.tmpKey = ""
		}
		if errdefs.IsAlreadyExists(err) {
			return nil
		}
		return err
	}
	key := fmt.Sprintf("%s%s-%d", CommitPrefix, pullID, j.i)
	mounts, err := sn.Prepare(ctx, key, j.parent.String())
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			sn.Remove(context.WithoutCancel(ctx), key)
		}
	}()
	upper, ok := "", false
	if len(mounts) == 1 {
		upper, ok = mounts[0].Option("upperdir")
	}
	if !ok {
		return fmt.Errorf("snapshot %q: no upper directory in %v: %w", key, mounts, errdefs.ErrNotImplemented)
	}
	if xerr := unix.Renameat2(unix.AT_FDCWD, j.fsDir, unix.AT_FDCWD, upper, unix.RENAME_EXCHANGE); xerr != nil {
		// No exchange here: unpack again, from the verified blob.
		if err := u.unpackFromStore(ctx, j, upper); err != nil {
			return fmt.Errorf("unpack into %q (exchange refused: %v): %w", upper, xerr, err)
		}
	}
	err = sn.Commit(ctx, name, key, size)
	if err == nil {
		committed = true
	}
	if err != nil && !errdefs.IsAlreadyExists(err) {
		return err
	}
	return nil
}
