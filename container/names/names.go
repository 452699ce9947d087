// Package names owns container names: Docker-style generated names
// ("adjective_surname", the surname of a notable scientist or engineer)
// and the validation of names users choose. The word lists are Berth's
// own.
package names

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/errdefs"
)

var adjectives = []string{
	"agile", "amber", "ardent", "brave", "brisk", "calm", "candid", "clever",
	"cosmic", "crisp", "curious", "daring", "deft", "eager", "earnest", "fervent",
	"fluent", "frank", "gentle", "glad", "golden", "hardy", "humble", "jolly",
	"keen", "kind", "lively", "lucid", "merry", "mellow", "nimble", "noble",
	"patient", "placid", "plucky", "proud", "quiet", "radiant", "rapid", "serene",
	"sharp", "silent", "steady", "stoic", "sunny", "swift", "tender", "tidy",
	"upbeat", "valiant", "vivid", "warm", "wise", "witty", "zealous", "zen",
}

var surnames = []string{
	"agnesi", "ampere", "babbage", "bardeen", "bohr", "boole", "cannon", "cerf",
	"curie", "dijkstra", "euler", "faraday", "fermi", "feynman", "franklin", "galois",
	"gauss", "germain", "goldberg", "hamilton", "hopper", "huygens", "johnson", "kepler",
	"knuth", "kovalevskaya", "lamarr", "liskov", "lovelace", "maxwell", "meitner", "mirzakhani",
	"noether", "ohm", "pascal", "planck", "raman", "ritchie", "shannon", "somerville",
	"tesla", "thompson", "turing", "volta", "wiles", "wozniak", "wu", "yalow",
}

// Generate returns a random name "adjective_surname". When inUse reports
// it taken, it retries a few times and then appends a number
// ("brave_turing3"), as Docker does, until inUse says the name is free.
// inUse is only a hint: the caller's reservation (store.Reserve) is what
// makes a name unique.
func Generate(inUse func(name string) bool) string {
	for try := 0; ; try++ {
		name := pick(adjectives) + "_" + pick(surnames)
		if try >= 10 {
			name += strconv.Itoa(int(randInt(10)) + try/10*10)
		}
		if inUse == nil || !inUse(name) {
			return name
		}
	}
}

func pick(words []string) string { return words[randInt(len(words))] }

func randInt(n int) int64 {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		// The kernel's random source does not fail on Linux >= 3.17.
		panic(fmt.Sprintf("names: read random: %v", err))
	}
	return v.Int64()
}

// validName is Docker's rule for user-chosen names.
var validName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// Validate checks a user-chosen name ("x1" or "/x1") with Docker's rule
// and message, and returns it in the stored form, with one leading "/".
func Validate(name string) (string, error) {
	if !validName.MatchString(name) {
		return "", fmt.Errorf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed: %w", name, errdefs.ErrInvalidArgument)
	}
	return "/" + strings.TrimPrefix(name, "/"), nil
}
