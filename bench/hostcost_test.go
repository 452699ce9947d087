package bench

import (
	"strings"
	"testing"
	"time"
)

func TestMeasureHostCosts(t *testing.T) {
	c, err := MeasureHostCosts("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(c)
	// Bounds that only a broken measurement misses: a page fault is well
	// under a millisecond, and a process start costs more than one fault.
	if c.PageFault <= 0 || c.PageFault > time.Millisecond {
		t.Errorf("page fault %v", c.PageFault)
	}
	if c.ProcessStart <= c.PageFault {
		t.Errorf("process start %v, not more than a page fault (%v)", c.ProcessStart, c.PageFault)
	}
	if s := c.String(); !strings.Contains(s, "/bin/true") || !strings.Contains(s, "µs") {
		t.Errorf("String() = %q", s)
	}
	if _, err := MeasureHostCosts("/nonexistent/true"); err == nil || !strings.Contains(err.Error(), "/nonexistent/true") {
		t.Errorf("missing program: err = %v", err)
	}
}
