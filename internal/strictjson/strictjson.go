// Package strictjson decodes configuration files strictly: an unknown field,
// at any depth, is an error that gives the file, line and column, the field
// and the nearest known name; a value that does not decode names its field;
// negative numbers are refused everywhere, and zero wherever the field does
// not say it means something (struct tag `zero:"ok"`).
//
// Errors read like a compiler's:
//
//	uptrust.json:7:3: unknown field "retentoin" (did you mean "retention"?)
//	agent.json:4:20: poll_interval: duration "6 hours": want e.g. 90s, 72h or 7d
//
// Decode walks the document once with a token decoder to check it, then
// decodes it with encoding/json, so custom UnmarshalJSON methods run as
// usual.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// Error is a problem at a place in a file.
type Error struct {
	File         string
	Line, Column int
	// Field is the dotted path of the field ("retention.audit"), empty for
	// a syntax error.
	Field string
	Msg   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Decode decodes data, the contents of the file named file, into v, a
// pointer to a struct.
func Decode(file string, data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("strictjson: Decode needs a pointer to a struct, not %T", v)
	}
	w := walker{file: file, data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	w.dec.UseNumber()
	if err := w.value(rv.Elem().Type(), "", true); err != nil {
		return err
	}
	if _, err := w.dec.Token(); err != io.EOF {
		return w.errAt(int(w.dec.InputOffset()), "", "unexpected content after the top-level object")
	}
	if err := json.Unmarshal(data, v); err != nil {
		// The walk decoded every leaf alone; what fails here is a
		// custom UnmarshalJSON of an object. Place it at the start.
		return w.errAt(0, "", err.Error())
	}
	return nil
}

type walker struct {
	file string
	data []byte
	dec  *json.Decoder
}

// lineCol turns a byte offset into a 1-based line and column.
func lineCol(data []byte, off int) (int, int) {
	off = min(max(off, 0), len(data))
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

func (w *walker) errAt(off int, field, msg string) error {
	l, c := lineCol(w.data, off)
	return &Error{File: w.file, Line: l, Column: c, Field: field, Msg: msg}
}

// next returns the offset where the next token starts.
func (w *walker) next() int {
	off := int(w.dec.InputOffset())
	for off < len(w.data) {
		switch w.data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
		default:
			return off
		}
	}
	return off
}

func (w *walker) syntax(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return w.errAt(int(se.Offset), "", "invalid JSON: "+se.Error())
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return w.errAt(len(w.data), "", "invalid JSON: unexpected end of file")
	}
	return w.errAt(w.next(), "", "invalid JSON: "+err.Error())
}

type field struct {
	name   string
	typ    reflect.Type
	zeroOK bool
}

// fields lists the JSON fields of struct type t, embedded structs
// flattened.
func fields(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, fields(f.Type)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, field{name: name, typ: f.Type, zeroOK: f.Tag.Get("zero") == "ok"})
	}
	return out
}

// isObject says whether values of t are walked field by field: structs
// with exported fields (a struct such as time.Time, which has none, is a
// leaf).
func isObject(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct && len(fields(t)) > 0
}

// value checks the next value, of type t, at path.
func (w *walker) value(t reflect.Type, path string, zeroOK bool) error {
	start := w.next()
	if isObject(t) && start < len(w.data) && w.data[start] == '{' {
		return w.object(t, path)
	}
	var raw json.RawMessage
	if err := w.dec.Decode(&raw); err != nil {
		return w.syntax(err)
	}
	where := path
	if where == "" {
		where = "the file"
	}
	if path == "" {
		return w.errAt(start, "", "want a JSON object")
	}
	if string(raw) == "null" {
		return nil
	}
	pv := reflect.New(t)
	if err := json.Unmarshal(raw, pv.Interface()); err != nil {
		msg := err.Error()
		if _, ok := err.(*json.UnmarshalTypeError); ok {
			msg = fmt.Sprintf("%s is not a %s", raw, kindName(t))
		}
		msg = strings.TrimPrefix(msg, "json: ")
		if !strings.HasPrefix(msg, last(path)) {
			msg = where + ": " + msg
		}
		return w.errAt(start, path, msg)
	}
	if neg, zero := sign(pv.Elem()); neg {
		return w.errAt(start, path, fmt.Sprintf("%s: %s is negative", path, raw))
	} else if zero && !zeroOK {
		return w.errAt(start, path, fmt.Sprintf("%s: %s must be positive (leave the field out for the default)", path, raw))
	}
	return nil
}

func last(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[i+1:]
	}
	return path
}

func kindName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean (true or false)"
	case reflect.String:
		return "string"
	case reflect.Slice, reflect.Array:
		return "list"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "whole number"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Map, reflect.Struct:
		return "JSON object"
	}
	return t.String()
}

// sign reports whether a numeric value is negative or zero; other kinds are
// neither.
func sign(v reflect.Value) (neg, zero bool) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return false, false
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() < 0, v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return false, v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() < 0, v.Float() == 0
	}
	return false, false
}

func (w *walker) object(t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if _, err := w.dec.Token(); err != nil { // {
		return w.syntax(err)
	}
	fs := fields(t)
	for w.dec.More() {
		keyOff := w.next()
		tok, err := w.dec.Token()
		if err != nil {
			return w.syntax(err)
		}
		key, _ := tok.(string)
		f, ok := lookup(fs, key)
		p := key
		if path != "" {
			p = path + "." + key
		}
		if !ok {
			msg := fmt.Sprintf("unknown field %q", p)
			if n := Nearest(key, names(fs)); n != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", n)
			} else {
				msg += fmt.Sprintf(" (known: %s)", strings.Join(names(fs), ", "))
			}
			return w.errAt(keyOff, p, msg)
		}
		if err := w.value(f.typ, p, f.zeroOK); err != nil {
			return err
		}
	}
	if _, err := w.dec.Token(); err != nil { // }
		return w.syntax(err)
	}
	return nil
}

// lookup finds key as encoding/json does: exactly, else ignoring case.
// Matching case-insensitively would accept "Poll_Interval"; strict files
// want the exact name, so only an exact match counts.
func lookup(fs []field, key string) (field, bool) {
	for _, f := range fs {
		if f.name == key {
			return f, true
		}
	}
	return field{}, false
}

func names(fs []field) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.name
	}
	return out
}

// Nearest returns the candidate closest to s in edit distance (ignoring
// case), or "" when none is close enough to be a likely typo: at most a
// third of the longer name's length, and at least 1 or 2 for short names.
func Nearest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := Distance(strings.ToLower(s), strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 {
		return ""
	}
	limit := max(len(s), len(best)) / 3
	if limit < 2 {
		limit = 2
	}
	if bestD > limit {
		return ""
	}
	return best
}

// Distance is the Levenshtein edit distance between a and b, counting an
// adjacent transposition as one edit.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
