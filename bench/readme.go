package bench

import (
	"fmt"
	"strings"
)

// The README's Performance section holds the latest table between these
// markers; `make bench` replaces what is between them and nothing else,
// because other parts of the README are edited by others.
const (
	ReadmeBegin = "<!-- bench:latest -->"
	ReadmeEnd   = "<!-- /bench:latest -->"
)

// ReplaceMarked returns doc with the text between the markers begin and
// end (each alone on its line, once, begin first) replaced by body.
func ReplaceMarked(doc, begin, end, body string) (string, error) {
	i := strings.Index(doc, begin+"\n")
	j := strings.Index(doc, end)
	switch {
	case i < 0 || j < 0:
		return "", fmt.Errorf("bench: markers %s and %s not found, each on its own line", begin, end)
	case strings.Count(doc, begin) != 1 || strings.Count(doc, end) != 1:
		return "", fmt.Errorf("bench: markers %s and %s must appear once each", begin, end)
	case j < i:
		return "", fmt.Errorf("bench: marker %s comes before %s", end, begin)
	}
	if !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	start := i + len(begin) + 1
	return doc[:start] + body + doc[j:], nil
}
