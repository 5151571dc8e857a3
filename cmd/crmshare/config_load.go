package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a config file: where it is and what.
type Problem struct {
	Line int    // 1-based line in the file; 0 = unknown
	Path string // the key, e.g. "nats.consumer.ack_wait" or "rules[2].when"; "" = the whole file
	Err  error
}

// Error reads "line 12: nats.consumer.ack_wait: must be more than 0".
func (p *Problem) Error() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error.
func (p *Problem) Unwrap() error { return p.Err }

// LoadConfigFile reads and loads the config file at name.
func LoadConfigFile(name string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := LoadConfig(data, getenv)
	if err != nil {
		return cfg, fmt.Errorf("config %s:\n%w", name, err)
	}
	return cfg, nil
}

// LoadConfig parses a YAML config, expands ${NAME} and ${NAME:-default} from
// getenv ($$ is a literal $), fills the documented defaults, and validates the
// whole of it, rules included. The error joins every *Problem found. The
// returned Config is non-nil whenever the YAML could be parsed, so a caller can
// still use the parts it needs (rules test only needs the rules).
func LoadConfig(data []byte, getenv func(string) string) (*Config, error) {
	l := &loader{getenv: getenv, lines: make(map[string]int)}
	cfg := defaultConfig(getenv)
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Problem{Line: yamlErrorLine(err), Err: fmt.Errorf("parse YAML: %w", err)}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != 0 && !isNull(root) {
		if root.Kind != yaml.MappingNode {
			return nil, &Problem{Line: root.Line, Err: errors.New("the config must be a mapping of sections (nats, zoho, telemetry, ingress, rules)")}
		}
		l.ruleNames = ruleNames(root)
		l.expand(root, "")
		l.checkKeys(root, reflect.TypeFor[Config](), "")
		l.decode(root, &cfg)
	}
	l.problems = append(l.problems, l.validate(&cfg)...)
	if len(l.problems) > 0 {
		slices.SortStableFunc(l.problems, func(a, b *Problem) int { return a.Line - b.Line })
		errs := make([]error, len(l.problems))
		for i, p := range l.problems {
			errs[i] = p
		}
		return &cfg, errors.Join(errs...)
	}
	return &cfg, nil
}

// loader collects problems and key lines while a file is loaded.
type loader struct {
	getenv    func(string) string
	lines     map[string]int // key path -> line
	problems  []*Problem
	expanded  map[int][]string // line -> names of the variables expanded on it
	ruleNames []string         // rules[i].name as written, for messages
}

func (l *loader) addf(line int, path, format string, args ...any) {
	l.problems = append(l.problems, &Problem{Line: line, Path: l.display(path), Err: fmt.Errorf(format, args...)})
}

var rulePathRE = regexp.MustCompile(`^rules\[(\d+)\]\.?`)

// display names the rule in a rules path: rules[0].on.sorce becomes
// rules[0] "share-deal": on.sorce, as the rules engine writes it.
func (l *loader) display(path string) string {
	m := rulePathRE.FindStringSubmatch(path)
	if m == nil {
		return path
	}
	i, _ := strconv.Atoi(m[1])
	if i >= len(l.ruleNames) || l.ruleNames[i] == "" {
		return path
	}
	rest := path[len(m[0]):]
	if rest == "" {
		return fmt.Sprintf("rules[%d] %q", i, l.ruleNames[i])
	}
	return fmt.Sprintf("rules[%d] %q: %s", i, l.ruleNames[i], rest)
}

// pathAt returns the deepest key path on line, for yaml's type errors, which
// only give a line.
func (l *loader) pathAt(line int, fallback string) string {
	best := ""
	for p, pl := range l.lines {
		if pl == line && len(p) > len(best) {
			best = p
		}
	}
	if best == "" {
		return fallback
	}
	return l.display(best)
}

// lineOf returns the line of a key path, or of its closest parent.
func (l *loader) lineOf(path string) int {
	for p := path; p != ""; {
		if line, ok := l.lines[p]; ok {
			return line
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// ruleNames reads the rule names from the rules sequence of root.
func ruleNames(root *yaml.Node) []string {
	var names []string
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "rules" || root.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		for _, r := range root.Content[i+1].Content {
			name := ""
			for j := 0; r.Kind == yaml.MappingNode && j+1 < len(r.Content); j += 2 {
				if r.Content[j].Value == "name" {
					name = r.Content[j+1].Value
				}
			}
			names = append(names, name)
		}
	}
	return names
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func yamlErrorLine(err error) int {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand replaces ${NAME} and ${NAME:-default} in every scalar value (not in
// keys). A plain scalar is re-resolved after expansion, so "${N:-10}" can
// fill an int.
func (l *loader) expand(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			l.expand(n.Content[i+1], joinPath(path, n.Content[i].Value))
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			l.expand(c, fmt.Sprintf("%s[%d]", path, i))
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		v, names, err := expandEnv(n.Value, l.getenv)
		if err != nil {
			l.addf(n.Line, path, "%w", err)
			return
		}
		if len(names) > 0 {
			if l.expanded == nil {
				l.expanded = make(map[int][]string)
			}
			l.expanded[n.Line] = append(l.expanded[n.Line], names...)
		}
		n.Value = v
		if n.Style == 0 || n.Style == yaml.FlowStyle {
			n.Tag = ""
		}
	}
}

// expandEnv expands s and returns the names it read.
func expandEnv(s string, getenv func(string) string) (string, []string, error) {
	var (
		b     strings.Builder
		names []string
	)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '$' && i+1 < len(s) && s[i+1] == '$':
			b.WriteByte('$')
			i += 2
		case c == '$' && i+1 < len(s) && s[i+1] == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", nil, fmt.Errorf("unterminated ${ (write $$ for a literal $)")
			}
			inner := s[i+2 : i+end]
			name, def, hasDef := strings.Cut(inner, ":-")
			if !envNameRE.MatchString(name) {
				return "", nil, fmt.Errorf("${%s}: %q is not a variable name", inner, name)
			}
			v := getenv(name)
			if v == "" {
				if !hasDef {
					return "", nil, fmt.Errorf("environment variable %s is not set (write ${%s:-default} for a default)", name, name)
				}
				v = def
			}
			names = append(names, name)
			b.WriteString(v)
			i += end + 1
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), names, nil
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// checkKeys reports unknown and repeated keys against t's yaml tags, and
// records the line of every key.
func (l *loader) checkKeys(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // a null or wrong kind: decode reports the type
		}
		fields := yamlFields(t)
		seen := make(map[string]int)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			if first, dup := seen[k.Value]; dup {
				l.addf(k.Line, p, "repeated key (first at line %d)", first)
				continue
			}
			seen[k.Value] = k.Line
			f, ok := fields[k.Value]
			if !ok {
				l.addf(k.Line, p, "unknown key %q (known: %s)", k.Value, strings.Join(sortedKeys(fields), ", "))
				continue
			}
			l.lines[p] = k.Line
			l.checkKeys(v, f.Type, p)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			l.lines[p] = c.Line
			l.checkKeys(c, t.Elem(), p)
		}
	}
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := make(map[string]reflect.StructField)
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		out[name] = f
	}
	return out
}

func sortedKeys(m map[string]reflect.StructField) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// decode decodes each section on its own, so one bad section does not hide
// the others, and fills the rules' line numbers.
func (l *loader) decode(root *yaml.Node, cfg *Config) {
	targets := map[string]any{
		"nats":      &cfg.NATS,
		"zoho":      &cfg.Zoho,
		"telemetry": &cfg.Telemetry,
		"ingress":   &cfg.Ingress,
		"rules":     &cfg.Rules,
		"dev":       &cfg.Dev,
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		target, ok := targets[k.Value]
		if !ok || isNull(v) {
			continue
		}
		if err := v.Decode(target); err != nil {
			l.decodeProblems(k.Value, k.Line, err)
		}
		if k.Value == "rules" && v.Kind == yaml.SequenceNode {
			l.ruleLines(v, cfg.Rules)
		}
	}
}

// decodeProblems turns yaml's type errors (one "line N: ..." per entry) into
// problems, without echoing values that came from the environment.
func (l *loader) decodeProblems(section string, line int, err error) {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		l.addf(line, section, "%w", err)
		return
	}
	for _, msg := range te.Errors {
		at := yamlErrorLine(errors.New(msg))
		if at == 0 {
			at = line
		}
		msg = strings.TrimPrefix(msg, fmt.Sprintf("line %d: ", at))
		if names := l.expanded[at]; len(names) > 0 {
			msg = fmt.Sprintf("the value from $%s has the wrong type for this key", strings.Join(names, ", $"))
		}
		l.problems = append(l.problems, &Problem{Line: at, Path: l.pathAt(at, section), Err: errors.New(msg)})
	}
}

func (l *loader) ruleLines(seq *yaml.Node, rules []RuleConfig) {
	for i, n := range seq.Content {
		if i >= len(rules) || n.Kind != yaml.MappingNode {
			continue
		}
		r := &rules[i]
		r.line = n.Line
		r.lines = make(map[string]int)
		for j := 0; j+1 < len(n.Content); j += 2 {
			k, v := n.Content[j], n.Content[j+1]
			r.lines[k.Value] = v.Line
			if k.Value == "on" && v.Kind == yaml.MappingNode {
				for m := 0; m+1 < len(v.Content); m += 2 {
					r.lines["on."+v.Content[m].Value] = v.Content[m+1].Line
				}
			}
			if k.Value == "recipients" && v.Kind == yaml.SequenceNode {
				for m, rn := range v.Content {
					if m < len(r.Recipients) {
						r.Recipients[m].line = rn.Line
					}
				}
			}
		}
	}
}
