package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	cetypes "github.com/cloudevents/sdk-go/v2/types"
)

// maxZohoIDLen is the longest Zoho ID: 19 digits (an int64).
const maxZohoIDLen = 19

// newCELEnv declares the variables every rule expression sees:
//
//	event: map(string, dyn) with id, source, type, subject, time (a timestamp,
//	       absent when the event has none), datacontenttype, specversion,
//	       dataschema and extensions (a map)
//	data:  dyn, the decoded JSON payload (null when there is none)
//
// plus the string, list, set and math extensions and optional values.
func newCELEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("event", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("data", cel.DynType),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Lists(),
		ext.Sets(),
		ext.Math(),
	)
}

// outKind is the result type an expression must have.
type outKind int

const (
	outBool   outKind = iota + 1 // when
	outString                    // record_id
	outIDs                       // recipients: a string or a list of strings
)

// expr is a compiled, type-checked expression and its source text.
type expr struct {
	src string
	ast *cel.Ast
	prg cel.Program
}

// compileExpr parses, type-checks and plans src, and checks that its static
// type can give what want asks for (dyn always can; the value is checked again
// when evaluated).
func compileExpr(env *cel.Env, src string, costLimit uint64, want outKind) (*expr, error) {
	a, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, issuesError(iss)
	}
	if err := checkOutput(a.OutputType(), want); err != nil {
		return nil, err
	}
	prg, err := env.Program(a,
		cel.CostLimit(costLimit),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", src, err)
	}
	return &expr{src: src, ast: a, prg: prg}, nil
}

// issuesError turns CEL's compile issues into one line per issue.
func issuesError(iss *cel.Issues) error {
	var msgs []string
	for _, e := range iss.Errors() {
		loc := e.Location
		switch {
		case loc == nil || loc.Line() <= 0:
			msgs = append(msgs, e.Message)
		case loc.Line() == 1:
			msgs = append(msgs, fmt.Sprintf("%s (column %d)", e.Message, loc.Column()+1))
		default:
			msgs = append(msgs, fmt.Sprintf("%s (expression line %d, column %d)", e.Message, loc.Line(), loc.Column()+1))
		}
	}
	if len(msgs) == 0 {
		return iss.Err()
	}
	return errors.New(strings.Join(msgs, "; "))
}

func checkOutput(t *cel.Type, want outKind) error {
	if isDynLike(t) {
		return nil
	}
	switch want {
	case outBool:
		if t.Kind() == types.BoolKind {
			return nil
		}
		return fmt.Errorf("is of type %s, want bool", t)
	case outString:
		if t.Kind() == types.StringKind {
			return nil
		}
		return fmt.Errorf("is of type %s, want string (wrap a number in string())", t)
	case outIDs:
		switch t.Kind() {
		case types.StringKind, types.NullTypeKind:
			return nil
		case types.ListKind:
			if p := t.Parameters(); len(p) == 1 && (isDynLike(p[0]) || p[0].Kind() == types.StringKind || p[0].Kind() == types.NullTypeKind) {
				return nil
			}
		}
		return fmt.Errorf("is of type %s, want string or list(string)", t)
	}
	return fmt.Errorf("unknown output kind %d", want)
}

func isDynLike(t *cel.Type) bool {
	switch t.Kind() {
	case types.DynKind, types.AnyKind, types.TypeParamKind:
		return true
	}
	return false
}

// literalListLen returns the length of e when it is a list literal, else 0.
func literalListLen(e *expr) int {
	if e == nil {
		return 0
	}
	root := e.ast.NativeRep().Expr()
	if root.Kind() != ast.ListKind {
		return 0
	}
	return len(root.AsList().Elements())
}

func (e *expr) eval(act activation) (ref.Val, error) {
	v, _, err := e.prg.Eval(act.vars)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// activation holds the variables of one event.
type activation struct {
	vars cel.Activation
}

// input builds an event's activation once, on first use, so that events no
// rule matches are never decoded.
type input struct {
	done bool
	act  activation
	err  error
}

func (in *input) activation(ev cloudevents.Event) (activation, error) {
	if !in.done {
		in.done = true
		in.act, in.err = newActivation(ev)
	}
	return in.act, in.err
}

func newActivation(ev cloudevents.Event) (activation, error) {
	data, err := decodeData(ev)
	if err != nil {
		return activation{}, err
	}
	vars, err := cel.NewActivation(map[string]any{
		// Built only if an expression reads it: most rules read data only.
		"event": func() any { return eventVar(ev) },
		"data":  data,
	})
	if err != nil {
		return activation{}, fmt.Errorf("bind variables: %w", err)
	}
	return activation{vars: vars}, nil
}

// eventVar is the value of the event variable.
func eventVar(ev cloudevents.Event) map[string]any {
	m := map[string]any{
		"id":              ev.ID(),
		"source":          ev.Source(),
		"type":            ev.Type(),
		"subject":         ev.Subject(),
		"specversion":     ev.SpecVersion(),
		"datacontenttype": ev.DataContentType(),
		"dataschema":      ev.DataSchema(),
	}
	if t := ev.Time(); !t.IsZero() {
		m["time"] = t
	}
	exts := make(map[string]any, len(ev.Extensions()))
	for k, v := range ev.Extensions() {
		switch v := v.(type) {
		case string, bool:
			exts[k] = v
		case int32:
			exts[k] = int64(v)
		default:
			if s, err := cetypes.Format(v); err == nil {
				exts[k] = s
			}
		}
	}
	m["extensions"] = exts
	return m
}

// decodeData decodes the event's payload: JSON (numbers kept exact as
// json.Number, which CEL sees as int when integral, so 19-digit IDs survive),
// text as a string, anything else as bytes; no payload is null.
func decodeData(ev cloudevents.Event) (any, error) {
	raw := ev.Data()
	if len(raw) == 0 {
		return nil, nil
	}
	ct := ev.DataMediaType()
	switch {
	case ct == "" || ct == "application/json" || ct == "text/json" || strings.HasSuffix(ct, "+json"):
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("decode JSON data: %w", err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, errors.New("decode JSON data: trailing data after the JSON value")
		}
		return v, nil
	case strings.HasPrefix(ct, "text/"):
		return string(raw), nil
	default:
		return raw, nil
	}
}

// typeName names a CEL value's type for error messages.
func typeName(v ref.Val) string { return v.Type().TypeName() }

func asBool(v ref.Val) (bool, error) {
	b, ok := v.(types.Bool)
	if !ok {
		return false, fmt.Errorf("got a %s, want bool", typeName(v))
	}
	return bool(b), nil
}

// asZohoID checks that v is a non-empty string of digits.
func asZohoID(v ref.Val) (string, error) {
	s, ok := v.(types.String)
	if !ok {
		switch v.(type) {
		case types.Int, types.Uint, types.Double:
			return "", fmt.Errorf("got a number (%s), want a string: wrap it in string(), which keeps all 19 digits of a JSON number", typeName(v))
		default:
			return "", fmt.Errorf("got a %s, want a string", typeName(v))
		}
	}
	if err := checkZohoID(string(s)); err != nil {
		return "", err
	}
	return string(s), nil
}

// checkZohoID accepts Zoho IDs: 1 to 19 digits. It also keeps anything that
// could change the URL path (a '/', "..") out of record IDs.
func checkZohoID(s string) error {
	if s == "" {
		return errors.New("got an empty ID")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return fmt.Errorf("%q is not a Zoho ID (digits only)", s)
		}
	}
	if len(s) > maxZohoIDLen {
		return fmt.Errorf("%q is not a Zoho ID (more than %d digits)", s, maxZohoIDLen)
	}
	return nil
}

// checkEmail is a sanity check only; Zoho's users decide whether it resolves.
func checkEmail(s string) error {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n,;<>") {
		return fmt.Errorf("%q is not an email address", s)
	}
	return nil
}

// asStrings flattens a recipients value: null or "" gives none, a string one,
// a list its non-empty strings (null elements are skipped).
func asStrings(v ref.Val) ([]string, error) {
	switch v := v.(type) {
	case types.Null:
		return nil, nil
	case types.String:
		if v == "" {
			return nil, nil
		}
		return []string{string(v)}, nil
	case traits.Lister:
		n, ok := v.Size().(types.Int)
		if !ok {
			return nil, errors.New("list has no size")
		}
		out := make([]string, 0, int(n))
		for i := types.Int(0); i < n; i++ {
			el := v.Get(i)
			switch el := el.(type) {
			case types.Null:
			case types.String:
				if el != "" {
					out = append(out, string(el))
				}
			default:
				if types.IsError(el) {
					return nil, fmt.Errorf("element %d: %v", i, el)
				}
				return nil, fmt.Errorf("element %d is of type %s, want string", i, typeName(el))
			}
		}
		return out, nil
	default:
		return nil, fmt.Errorf("got a %s, want a string or a list of strings", typeName(v))
	}
}
