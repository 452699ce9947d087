package pull

import (
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// Status is a layer's state in a pull, named as Docker's progress lines
// name it.
type Status string

// The statuses a layer goes through, as Docker's: Pulling fs layer, then
// Waiting while Concurrency others are in flight, Downloading (repeated,
// with Current/Total), Verifying, Extracting (with Current bytes of
// uncompressed tar), and Pull complete; or Already exists when its chain
// was unpacked before. A layer whose blob is in the content store goes
// straight to Extracting.
const (
	StatusPullingFSLayer Status = "Pulling fs layer"
	StatusWaiting        Status = "Waiting"
	StatusDownloading    Status = "Downloading"
	StatusVerifying      Status = "Verifying Checksum"
	StatusDownloaded     Status = "Download complete"
	StatusExtracting     Status = "Extracting"
	StatusPullComplete   Status = "Pull complete"
	StatusAlreadyExists  Status = "Already exists"
	StatusFailed         Status = "Failed"
)

// Event is one progress report about one layer. Events of one layer
// arrive in order; the callback is never called concurrently.
type Event struct {
	// ID is the layer's short id as Docker shows it: the first 12 hex
	// digits of the blob digest.
	ID string
	// Layer is the layer's index in the manifest.
	Layer  int
	Digest digest.Digest
	Status Status
	// Current and Total are bytes: downloaded bytes of the compressed
	// blob while Downloading (Total its size), extracted bytes of the
	// uncompressed tar while Extracting (Total 0: unknown).
	Current, Total int64
	// Err is set with StatusFailed.
	Err error
}

// Totals sums a pull's progress so far.
type Totals struct {
	Layers, Done, Existing int
	Downloaded, Size       int64 // compressed bytes fetched / to fetch
}

// progress serialises the caller's callback and throttles byte updates.
type progress struct {
	mu sync.Mutex
	fn func(Event)
}

// minInterval spaces Downloading/Extracting events of one layer.
const minInterval = 100 * time.Millisecond

func (p *progress) emit(e Event) {
	if p == nil || p.fn == nil {
		return
	}
	if e.ID == "" {
		e.ID = shortID(e.Digest)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fn(e)
}

func shortID(d digest.Digest) string {
	h := d.Encoded()
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// counter reports bytes flowing through Write as throttled events.
type counter struct {
	p      *progress
	ev     Event
	last   time.Time
	n      int64
	report bool
}

func (c *counter) Write(b []byte) (int, error) {
	c.n += int64(len(b))
	if c.report {
		if now := time.Now(); now.Sub(c.last) >= minInterval {
			c.last = now
			e := c.ev
			e.Current = c.n
			c.p.emit(e)
		}
	}
	return len(b), nil
}
