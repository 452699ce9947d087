package build

import (
	"testing"
)

// FuzzParse feeds arbitrary Dockerfiles to the parser and the stage
// analysis: they may be refused, never crash the daemon.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"FROM busybox\nRUN echo hi\n",
		"ARG B=busybox\nFROM $B AS a\nCOPY --from=a / /\nFROM a\n",
		"# escape=`\nFROM x\nRUN a `\n b\n",
		"FROM x\nRUN <<EOF\nls\nEOF\n",
		"FROM x\nCOPY --from=0 / /\n",
		"FROM x\nRUN --mount=type=cache,target=/c true\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, df []byte) {
		p, err := parse(df, "")
		if err != nil {
			return
		}
		j := &job{p: p, o: Options{}, usedArgs: map[string]bool{}, stageIdx: map[string]int{}}
		for i, s := range p.stages {
			if s.Name != "" {
				j.stageIdx[s.Name] = i
			}
		}
		if err := j.globalArgs(); err != nil {
			return
		}
		_, _ = j.needed(len(p.stages) - 1)
	})
}
