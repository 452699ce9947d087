package bench

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	st := Summarize([]time.Duration{5, 1, 3, 9})
	if st.Median != 4 || st.Min != 1 || st.Max != 9 {
		t.Fatalf("Summarize = %+v", st)
	}
	if st := Summarize([]time.Duration{7, 2, 3}); st.Median != 3 {
		t.Fatalf("odd median = %v", st.Median)
	}
}

// fakeScenario records the order in which systems run.
type fakeScenario struct {
	order *[]string
	fail  string
}

func (f fakeScenario) Name() string { return "fake" }

func (f fakeScenario) Setup(env *Env) (Trial, error) {
	name := env.System.Name
	return &simpleTrial{run: func() ([]Sample, error) {
		*f.order = append(*f.order, name)
		if name == f.fail {
			return nil, errors.New("boom")
		}
		d := 10 * time.Millisecond
		if name == "b" {
			d = 20 * time.Millisecond
		}
		return []Sample{{Phase: "x", D: d}}, nil
	}}, nil
}

func TestRunAlternatesAndReports(t *testing.T) {
	var order []string
	systems := []System{
		{Name: "a", Anchor: true},
		{Name: "b"},
		{Name: "broken"},
		{Name: "gone", Missing: "not installed"},
	}
	res := Run(Config{N: 3, WorkDir: t.TempDir()}, systems, []Scenario{fakeScenario{order: &order, fail: "broken"}})
	if got := strings.Join(order, ""); got != "abbrokenabab" {
		t.Fatalf("order %q, want systems alternating and broken dropped after its error", got)
	}
	var sb strings.Builder
	if err := WriteMarkdown(&sb, 3, systems, res); err != nil {
		t.Fatal(err)
	}
	table := sb.String()
	for _, want := range []string{
		"| fake · x | a | 10.0 ms | 10.0 ms | 10.0 ms | 1.00 |",
		"| fake · x | b | 20.0 ms | 20.0 ms | 20.0 ms | 2.00 |",
		"| fake · x | broken | error: boom |",
		"| fake · x | gone | skipped: not installed |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}
