package logs

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestOpenRotatedDuringRotations: while a writer rotates as fast as it
// can (every name shifting by one each time), each listing a follower
// takes holds every file once, oldest first — a listing that straddled a
// rotation used to open one file twice and skip the next.
func TestOpenRotatedDuringRotations(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c-json.log")
	const maxFile = 40
	var mu sync.Mutex
	seq := map[uint64]int{} // inode -> creation order
	// A new live file is numbered before it appears under the live name.
	create := func(n int) {
		tmp := filepath.Join(dir, "new")
		f, err := os.Create(tmp)
		if err != nil {
			t.Error(err)
			return
		}
		var st syscall.Stat_t
		syscall.Fstat(int(f.Fd()), &st)
		f.Close()
		mu.Lock()
		seq[st.Ino] = n
		mu.Unlock()
		os.Rename(tmp, path)
	}
	create(0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			for i := maxFile - 1; i > 1; i-- {
				os.Rename(path+"."+strconv.Itoa(i-1), path+"."+strconv.Itoa(i))
			}
			os.Rename(path, path+".1")
			create(n)
		}
	}()
	r := &reader{path: path}
	deadline := time.Now().Add(500 * time.Millisecond)
	for lists := 0; time.Now().Before(deadline); lists++ {
		files := r.openRotated()
		mu.Lock()
		last := -1
		for _, f := range files {
			n, ok := seq[f.ino]
			if !ok || n <= last {
				t.Errorf("listing %d: files out of order or repeated (creation order %d after %d)", lists, n, last)
			} else if last >= 0 && n != last+1 && len(files) < maxFile {
				t.Errorf("listing %d: a file skipped between creation %d and %d", lists, last, n)
			}
			last = n
		}
		mu.Unlock()
		for _, f := range files {
			f.f.Close()
		}
		if t.Failed() {
			break
		}
	}
	close(stop)
	wg.Wait()
}
