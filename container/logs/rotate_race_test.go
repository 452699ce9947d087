package logs

import (
	"bufio"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOpenFilesDuringRotations: while the writer rotates before every
// entry (each file holds one numbered entry, every name shifting by one
// each time), each listing a reader takes holds every file once, oldest
// first — a listing that straddled a rotation used to open one file twice
// or skip one.
func TestOpenFilesDuringRotations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	const maxFile = 40
	w, err := Create(path, Options{MaxSize: 1, MaxFile: maxFile})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := w.Entry("stdout", []byte(strconv.Itoa(n)+"\n"), time.Now()); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()
	r := &reader{path: path}
	rotations := 0
	for lists := 0; lists < 100 || rotations < 2*maxFile; lists++ {
		files, err := r.openFiles()
		if err != nil {
			t.Fatal(err)
		}
		last := -1
		for i, f := range files {
			sc := bufio.NewScanner(f.f)
			if !sc.Scan() {
				if i == len(files)-1 {
					break // the live file, before its entry
				}
				t.Fatalf("listing %d: rotated file %d of %d is empty", lists, i, len(files))
			}
			var e struct{ Log string }
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatal(err)
			}
			n, _ := strconv.Atoi(strings.TrimSuffix(e.Log, "\n"))
			if last >= 0 && n != last+1 {
				t.Fatalf("listing %d: entry %d follows entry %d (a file repeated or skipped)", lists, n, last)
			}
			last = n
		}
		for _, f := range files {
			f.f.Close()
		}
		rotations = last
	}
}
