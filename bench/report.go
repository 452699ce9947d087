package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Stats are the summary of a set of samples.
type Stats struct{ Median, Min, Max time.Duration }

// Summarize returns the median, min and max of samples (zero if empty).
func Summarize(samples []time.Duration) Stats {
	if len(samples) == 0 {
		return Stats{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stats{Median: med, Min: s[0], Max: s[len(s)-1]}
}

// WriteMarkdown writes results as a Markdown table: one row per scenario
// phase and system, with its median, min and max and the ratio of its
// median to each anchor's median for the same phase.
func WriteMarkdown(w io.Writer, n int, systems []System, results []Result) error {
	var anchors []string
	for _, s := range systems {
		if s.Anchor {
			anchors = append(anchors, s.Name)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Each figure is over %d iterations, systems run in alternation. Ratio = this system's median / the anchor's median (below 1 is faster).\n\n", n)
	b.WriteString("| scenario | system | median | min | max |")
	for _, a := range anchors {
		fmt.Fprintf(&b, " ÷ %s |", a)
	}
	b.WriteString("\n|---|---|---:|---:|---:|")
	for range anchors {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	median := map[string]time.Duration{} // scenario/phase/system
	for _, r := range results {
		if r.Err == "" && len(r.Samples) > 0 {
			median[key(r)] = Summarize(r.Samples).Median
		}
	}
	for _, r := range results {
		name := r.Scenario
		if r.Phase != "" && r.Phase != r.Scenario {
			name += " · " + r.Phase
		}
		if r.Err != "" || len(r.Samples) == 0 {
			msg := r.Err
			if msg == "" {
				msg = "no samples"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | | |", name, r.System, strings.ReplaceAll(msg, "|", "/"))
			for range anchors {
				b.WriteString(" |")
			}
			b.WriteString("\n")
			continue
		}
		st := Summarize(r.Samples)
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |", name, r.System, ms(st.Median), ms(st.Min), ms(st.Max))
		for _, a := range anchors {
			am, ok := median[r.Scenario+"/"+r.Phase+"/"+a]
			if !ok || am == 0 {
				b.WriteString(" – |")
				continue
			}
			fmt.Fprintf(&b, " %.2f |", float64(st.Median)/float64(am))
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func key(r Result) string { return r.Scenario + "/" + r.Phase + "/" + r.System }

func ms(d time.Duration) string {
	// Lookups and CPU per request or MiB: tenths of a ms would hide them.
	if d < time.Millisecond {
		return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
	}
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// WriteRateMarkdown writes results whose samples are times per unit (see
// ThroughputScenario) as rates: one row per phase and system with the
// median, min and max rate and the ratio of its median rate to each
// anchor's (above 1 is faster). units names each phase's unit.
func WriteRateMarkdown(w io.Writer, n int, systems []System, results []Result, units map[string]string) error {
	var anchors []string
	for _, s := range systems {
		if s.Anchor && s.Missing == "" {
			anchors = append(anchors, s.Name)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Each figure is over %d iterations, systems run in alternation. Ratio = this system's median rate / the anchor's (above 1 is faster).\n\n", n)
	b.WriteString("| scenario | system | median | min | max |")
	for _, a := range anchors {
		fmt.Fprintf(&b, " ÷ %s |", a)
	}
	b.WriteString("\n|---|---|---:|---:|---:|")
	for range anchors {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	median := map[string]float64{}
	for _, r := range results {
		if r.Err == "" && len(r.Samples) > 0 {
			median[key(r)] = RateStats(r.Samples).Median
		}
	}
	for _, r := range results {
		name := r.Scenario + " · " + r.Phase
		if r.Err != "" || len(r.Samples) == 0 {
			msg := r.Err
			if msg == "" {
				msg = "no samples"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | | |%s\n", name, r.System, strings.ReplaceAll(msg, "|", "/"), strings.Repeat(" |", len(anchors)))
			continue
		}
		st := RateStats(r.Samples)
		u := units[r.Phase]
		fmt.Fprintf(&b, "| %s | %s | %.0f %s | %.0f | %.0f |", name, r.System, st.Median, u, st.Min, st.Max)
		for _, a := range anchors {
			am, ok := median[r.Scenario+"/"+r.Phase+"/"+a]
			if !ok || am == 0 {
				b.WriteString(" – |")
				continue
			}
			fmt.Fprintf(&b, " %.2f |", st.Median/am)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Rates are the summary of rate samples (units per second).
type Rates struct{ Median, Min, Max float64 }

// RateStats turns times per unit into units per second and summarizes
// them (the slowest sample is the minimum rate).
func RateStats(perUnit []time.Duration) Rates {
	st := Summarize(perUnit)
	rate := func(d time.Duration) float64 {
		if d <= 0 {
			return 0
		}
		return float64(time.Second) / float64(d)
	}
	med := rate(st.Median)
	if len(perUnit)%2 == 0 { // the median of the rates, not of the times
		s := slices.Clone(perUnit)
		slices.Sort(s)
		med = (rate(s[len(s)/2-1]) + rate(s[len(s)/2])) / 2
	}
	return Rates{Median: med, Min: rate(st.Max), Max: rate(st.Min)}
}
