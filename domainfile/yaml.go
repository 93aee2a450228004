package domainfile

import (
	"fmt"
	"strings"
)

// The domain file is written in a subset of YAML 1.2 that this file parses:
// block mappings and block sequences, plain, single-quoted and
// double-quoted scalars, empty [] and {}, and comments. Anchors, tags,
// other flow collections and multi-line scalars are refused with the line they are
// on. A full YAML library would cost the CE agent 0.45 MiB of a router's
// flash for features a domain file never needs.

type nodeKind int

const (
	scalarNode nodeKind = iota + 1
	mappingNode
	sequenceNode
)

// node is a parsed YAML node. A mapping's Content alternates keys and
// values, as in go.yaml.in/yaml's Node.
type node struct {
	Kind    nodeKind
	Value   string
	Line    int
	Content []*node
}

type line struct {
	n      int    // 1-based line number
	indent int    // leading spaces
	text   string // without indentation and comment
}

type yamlError struct {
	line int
	msg  string
}

func (e *yamlError) Error() string { return e.msg }

func yamlErrf(n int, format string, args ...any) error {
	return &yamlError{line: n, msg: fmt.Sprintf(format, args...)}
}

// parseYAML parses a document; an empty one gives nil.
func parseYAML(data []byte) (*node, error) {
	var lines []line
	for i, raw := range strings.Split(string(data), "\n") {
		raw = strings.TrimRight(raw, "\r")
		trimmed := strings.TrimLeft(raw, " ")
		if strings.HasPrefix(trimmed, "\t") {
			return nil, yamlErrf(i+1, "tab in indentation: indent with spaces")
		}
		text, err := stripComment(trimmed, i+1)
		if err != nil {
			return nil, err
		}
		if text == "" || text == "---" || text == "..." {
			continue
		}
		lines = append(lines, line{n: i + 1, indent: len(raw) - len(trimmed), text: text})
	}
	if len(lines) == 0 {
		return nil, nil
	}
	p := &yamlParser{lines: lines}
	root, err := p.block(lines[0].indent)
	if err != nil {
		return nil, err
	}
	if p.i < len(p.lines) {
		l := p.lines[p.i]
		return nil, yamlErrf(l.n, "unexpected indentation")
	}
	return root, nil
}

// stripComment removes a comment: '#' at the start or after a space,
// outside quotes.
func stripComment(s string, n int) (string, error) {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return strings.TrimRight(s[:i], " \t"), nil
		}
	}
	return strings.TrimRight(s, " \t"), nil
}

type yamlParser struct {
	lines []line
	i     int
}

func (p *yamlParser) peek() (line, bool) {
	if p.i >= len(p.lines) {
		return line{}, false
	}
	return p.lines[p.i], true
}

func isItem(text string) bool { return text == "-" || strings.HasPrefix(text, "- ") }

// block parses the mapping or sequence that starts at the current line,
// at the given indentation.
func (p *yamlParser) block(indent int) (*node, error) {
	l, _ := p.peek()
	if isItem(l.text) {
		return p.sequence(indent)
	}
	if _, _, ok, err := splitKey(l.text, l.n); err != nil {
		return nil, err
	} else if !ok {
		v, err := scalar(l.text, l.n)
		p.i++
		return v, err
	}
	return p.mapping(indent)
}

func (p *yamlParser) mapping(indent int) (*node, error) {
	first, _ := p.peek()
	m := &node{Kind: mappingNode, Line: first.n}
	for {
		l, ok := p.peek()
		if !ok || l.indent < indent {
			return m, nil
		}
		if l.indent > indent {
			return nil, yamlErrf(l.n, "unexpected indentation")
		}
		if isItem(l.text) {
			return nil, yamlErrf(l.n, "a list item where a key was expected")
		}
		k, rest, ok, err := splitKey(l.text, l.n)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, yamlErrf(l.n, "want KEY: VALUE, got %q", l.text)
		}
		p.i++
		key := &node{Kind: scalarNode, Value: k, Line: l.n}
		v, err := p.value(rest, indent, l.n)
		if err != nil {
			return nil, err
		}
		m.Content = append(m.Content, key, v)
	}
}

// value parses what follows "key:" on line n: an inline scalar, or a
// nested block (more indented, or a sequence at the key's indentation).
func (p *yamlParser) value(rest string, indent, n int) (*node, error) {
	if rest != "" {
		return scalar(rest, n)
	}
	next, ok := p.peek()
	switch {
	case ok && next.indent > indent:
		return p.block(next.indent)
	case ok && next.indent == indent && isItem(next.text):
		return p.sequence(indent)
	}
	return &node{Kind: scalarNode, Line: n}, nil
}

func (p *yamlParser) sequence(indent int) (*node, error) {
	first, _ := p.peek()
	s := &node{Kind: sequenceNode, Line: first.n}
	for {
		l, ok := p.peek()
		if !ok || l.indent < indent || (l.indent == indent && !isItem(l.text)) {
			return s, nil
		}
		if l.indent > indent {
			return nil, yamlErrf(l.n, "unexpected indentation")
		}
		rest := strings.TrimLeft(strings.TrimPrefix(l.text, "-"), " ")
		if rest == "" {
			p.i++
			v, err := p.value("", indent, l.n)
			if err != nil {
				return nil, err
			}
			s.Content = append(s.Content, v)
			continue
		}
		// "- key: value" starts a mapping whose keys line up with "key".
		col := indent + len(l.text) - len(rest)
		p.lines[p.i] = line{n: l.n, indent: col, text: rest}
		v, err := p.block(col)
		if err != nil {
			return nil, err
		}
		s.Content = append(s.Content, v)
	}
}

// splitKey splits "key: value" (or "key:"); ok is false for a line that
// is a plain scalar.
func splitKey(text string, n int) (key, rest string, ok bool, err error) {
	if text[0] == '"' || text[0] == '\'' {
		end := closingQuote(text)
		if end < 0 {
			return "", "", false, yamlErrf(n, "unterminated quoted string")
		}
		after := text[end+1:]
		if after == ":" || strings.HasPrefix(after, ": ") {
			k, err := scalar(text[:end+1], n)
			if err != nil {
				return "", "", false, err
			}
			return k.Value, strings.TrimSpace(strings.TrimPrefix(after, ":")), true, nil
		}
		return "", "", false, nil
	}
	if i := strings.Index(text, ": "); i >= 0 {
		return strings.TrimSpace(text[:i]), strings.TrimSpace(text[i+2:]), true, nil
	}
	if strings.HasSuffix(text, ":") {
		return strings.TrimSpace(text[:len(text)-1]), "", true, nil
	}
	return "", "", false, nil
}

func closingQuote(s string) int {
	q := s[0]
	for i := 1; i < len(s); i++ {
		switch {
		case q == '"' && s[i] == '\\':
			i++
		case q == '\'' && s[i] == '\'' && i+1 < len(s) && s[i+1] == '\'':
			i++
		case s[i] == q:
			return i
		}
	}
	return -1
}

// scalar parses an inline value.
func scalar(text string, n int) (*node, error) {
	v := &node{Kind: scalarNode, Line: n}
	switch text {
	case "[]":
		return &node{Kind: sequenceNode, Line: n}, nil
	case "{}":
		return &node{Kind: mappingNode, Line: n}, nil
	}
	switch text[0] {
	case '[', '{':
		return nil, yamlErrf(n, "flow collections (%c...) are not supported: use one item or key per line", text[0])
	case '&', '*', '!', '|', '>', '%', '@', '`':
		return nil, yamlErrf(n, "%q: anchors, aliases, tags and multi-line scalars are not supported", text)
	case '"', '\'':
		end := closingQuote(text)
		if end < 0 {
			return nil, yamlErrf(n, "unterminated quoted string")
		}
		if end != len(text)-1 {
			return nil, yamlErrf(n, "text after the closing quote: %q", text[end+1:])
		}
		body := text[1:end]
		if text[0] == '\'' {
			v.Value = strings.ReplaceAll(body, "''", "'")
			return v, nil
		}
		var b strings.Builder
		for i := 0; i < len(body); i++ {
			c := body[i]
			if c != '\\' {
				b.WriteByte(c)
				continue
			}
			i++
			if i >= len(body) {
				return nil, yamlErrf(n, "dangling backslash")
			}
			switch body[i] {
			case '"', '\\', '/':
				b.WriteByte(body[i])
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				return nil, yamlErrf(n, "unsupported escape \\%c", body[i])
			}
		}
		v.Value = b.String()
		return v, nil
	}
	v.Value = text
	return v, nil
}
