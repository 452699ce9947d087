package logs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pollInterval bounds how long a follower sleeps when inotify says
// nothing (an event can be missed between a read and the wait).
const pollInterval = time.Second

// follow keeps reading the live file as it grows and moves on to the next
// file when the writer rotates.
func (r *reader) follow(ctx context.Context) error {
	w, err := newWatcher(filepath.Dir(r.path))
	if err != nil {
		return err
	}
	defer w.close()
	if len(r.files) == 0 {
		// No log yet: wait for the writer to create it.
		r.files = append(r.files, nil)
	}
	finishing := false
	for {
		cur := r.files[len(r.files)-1]
		if cur == nil {
			f, err := os.Open(r.path)
			switch {
			case err == nil:
				ino, _, err := inode(f)
				if err != nil {
					f.Close()
					return fmt.Errorf("stat log %s: %w", r.path, err)
				}
				cur = &logFile{f: f, ino: ino}
				r.files[len(r.files)-1] = cur
			case !errors.Is(err, fs.ErrNotExist):
				return fmt.Errorf("open log %s: %w", r.path, err)
			}
		}
		if cur != nil {
			// Truncated in place (MaxFile 1): start over.
			if _, size, err := inode(cur.f); err == nil && size < cur.off {
				cur.off, r.pending = 0, r.pending[:0]
			}
			done, err := r.drain(cur)
			if err != nil || done {
				return err
			}
			next, err := r.nextFile(cur)
			if err != nil {
				return err
			}
			if next != nil {
				// The writer rotated: cur is complete, read its last bytes.
				if done, err := r.drain(cur); err != nil || done {
					return err
				}
				cur.f.Close()
				r.files[len(r.files)-1] = next
				r.pending = r.pending[:0]
				continue
			}
		}
		if finishing {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.opts.Done:
			// One more pass picks up what was written before Done.
			finishing = true
			continue
		default:
		}
		if err := w.wait(ctx, r.opts.Done); err != nil {
			return err
		}
	}
}

// nextFile returns the file that follows cur once cur has been rotated
// away from the live path, or nil while cur is still the live file.
func (r *reader) nextFile(cur *logFile) (*logFile, error) {
	st, err := os.Stat(r.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil // mid-rotation; the next pass sees the new file
		}
		return nil, fmt.Errorf("stat log %s: %w", r.path, err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || sys.Ino == cur.ino {
		return nil, nil
	}
	// cur was rotated. If it is still among the rotated files, the next
	// one is the file after it; if it was already deleted, every file
	// left is newer than it and the oldest comes next.
	files, err := r.openFiles()
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, f := range files {
			f.f.Close()
		}
	}()
	idx := -1
	for i, f := range files {
		if f.ino == cur.ino {
			idx = i
		}
	}
	pick := 0
	if idx >= 0 {
		pick = idx + 1
	} else if st, err := cur.f.Stat(); err == nil {
		// Not among the files listed, yet not deleted: the writer was
		// renaming them while we listed (one file can be missed). Look
		// again on the next pass rather than start over from the oldest.
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Nlink > 0 {
			return nil, nil
		}
	}
	if pick >= len(files) {
		return nil, nil
	}
	next := files[pick]
	files = append(files[:pick], files[pick+1:]...)
	return next, nil
}

// watcher wakes a follower when anything in the log's directory changes.
type watcher struct {
	fd int
	f  *os.File
}

func newWatcher(dir string) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_MOVED_FROM|unix.IN_CLOSE_WRITE); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify watch %s: %w", dir, err)
	}
	return &watcher{fd: fd, f: os.NewFile(uintptr(fd), "inotify")}, nil
}

// wait returns after a change in the directory, pollInterval, or when ctx
// or done end. Events are drained, not parsed: any change means "look".
func (w *watcher) wait(ctx context.Context, done <-chan struct{}) error {
	stop := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		case <-stop:
			return
		}
		w.f.SetReadDeadline(time.Now())
	}()
	defer close(stop)
	w.f.SetReadDeadline(time.Now().Add(pollInterval))
	var buf [4096]byte
	_, err := w.f.Read(buf[:])
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("inotify read: %w", err)
	}
	return ctx.Err()
}

func (w *watcher) close() { w.f.Close() }
