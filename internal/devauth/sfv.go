package devauth

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// This file holds the part of RFC 8941 (Structured Field Values) that the
// profile needs: parsing a Dictionary whose members are Items or Inner Lists
// with Parameters, and serialising an Inner List of Strings with Parameters
// (the @signature-params line). Decimals are refused: no field of the
// profile uses them. Parsing follows RFC 8941 section 4.2; a field that does
// not parse is refused whole, as the RFC requires.

// itemKind says which bare item an sfItem holds.
type itemKind uint8

const (
	kindInteger itemKind = iota + 1
	kindString
	kindToken
	kindBytes
	kindBoolean
)

// sfItem is a bare item.
type sfItem struct {
	kind  itemKind
	num   int64
	str   string // string or token
	bytes []byte
	bool  bool
}

// sfParam is one parameter of an item or an inner list.
type sfParam struct {
	key string
	val sfItem
}

// sfInner is one item of an inner list with its parameters.
type sfInner struct {
	item   sfItem
	params []sfParam
}

// sfMember is one dictionary member: an item or an inner list, with the
// parameters of either.
type sfMember struct {
	key    string
	isList bool
	item   sfItem
	list   []sfInner
	params []sfParam
}

var (
	errSyntax   = errors.New("structured field syntax")
	errTooLarge = errors.New("structured field has too many members")
)

// maxMembers bounds the members of a dictionary, the items of an inner list
// and the parameters of an item, so that a hostile field cannot make the
// duplicate-key checks quadratic. The profile needs at most 6.
const maxMembers = 32

type sfParser struct {
	s   string
	pos int
}

// parseDictionary parses s as an RFC 8941 Dictionary. A key given twice
// keeps its last value (RFC 8941 section 4.2.2).
func parseDictionary(s string) ([]sfMember, error) {
	p := sfParser{s: s}
	p.skipSP()
	var out []sfMember
	for p.pos < len(p.s) {
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		m := sfMember{key: key}
		if p.peek() == '=' {
			p.pos++
			if p.peek() == '(' {
				m.isList = true
				if m.list, err = p.innerList(); err != nil {
					return nil, err
				}
			} else if m.item, err = p.bareItem(); err != nil {
				return nil, err
			}
		} else {
			m.item = sfItem{kind: kindBoolean, bool: true}
		}
		if m.params, err = p.parameters(); err != nil {
			return nil, err
		}
		replaced := false
		for i := range out {
			if out[i].key == key {
				out[i] = m
				replaced = true
			}
		}
		if !replaced {
			if len(out) == maxMembers {
				return nil, errTooLarge
			}
			out = append(out, m)
		}
		p.skipOWS()
		if p.pos >= len(p.s) {
			return out, nil
		}
		if p.s[p.pos] != ',' {
			return nil, errSyntax
		}
		p.pos++
		p.skipOWS()
		if p.pos >= len(p.s) {
			return nil, errSyntax // trailing comma
		}
	}
	return out, nil
}

func (p *sfParser) peek() byte {
	if p.pos < len(p.s) {
		return p.s[p.pos]
	}
	return 0
}

func (p *sfParser) skipSP() {
	for p.pos < len(p.s) && p.s[p.pos] == ' ' {
		p.pos++
	}
}

func (p *sfParser) skipOWS() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool   { return isLCAlpha(c) || (c >= 'A' && c <= 'Z') }

// isTChar reports whether c is an RFC 9110 tchar.
func isTChar(c byte) bool {
	return isAlpha(c) || isDigit(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *sfParser) key() (string, error) {
	start := p.pos
	if c := p.peek(); !isLCAlpha(c) && c != '*' {
		return "", errSyntax
	}
	p.pos++
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if !isLCAlpha(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' && c != '*' {
			break
		}
		p.pos++
	}
	return p.s[start:p.pos], nil
}

func (p *sfParser) innerList() ([]sfInner, error) {
	p.pos++ // '('
	// The profile's lists have 5 items.
	out := make([]sfInner, 0, 8)
	for p.pos < len(p.s) {
		p.skipSP()
		if p.peek() == ')' {
			p.pos++
			return out, nil
		}
		it, err := p.bareItem()
		if err != nil {
			return nil, err
		}
		params, err := p.parameters()
		if err != nil {
			return nil, err
		}
		if len(out) == maxMembers {
			return nil, errTooLarge
		}
		out = append(out, sfInner{item: it, params: params})
		if c := p.peek(); c != ' ' && c != ')' {
			return nil, errSyntax
		}
	}
	return nil, errSyntax // unterminated
}

func (p *sfParser) parameters() ([]sfParam, error) {
	var out []sfParam
	if p.peek() == ';' {
		out = make([]sfParam, 0, 6) // the profile signs 5
	}
	for p.peek() == ';' {
		p.pos++
		p.skipSP()
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		val := sfItem{kind: kindBoolean, bool: true}
		if p.peek() == '=' {
			p.pos++
			if val, err = p.bareItem(); err != nil {
				return nil, err
			}
		}
		replaced := false
		for i := range out {
			if out[i].key == key {
				out[i].val = val
				replaced = true
			}
		}
		if !replaced {
			if len(out) == maxMembers {
				return nil, errTooLarge
			}
			out = append(out, sfParam{key: key, val: val})
		}
	}
	return out, nil
}

func (p *sfParser) bareItem() (sfItem, error) {
	c := p.peek()
	switch {
	case c == '-' || isDigit(c):
		return p.integer()
	case c == '"':
		return p.str()
	case c == ':':
		return p.byteSeq()
	case c == '?':
		if p.pos+1 < len(p.s) && (p.s[p.pos+1] == '0' || p.s[p.pos+1] == '1') {
			b := p.s[p.pos+1] == '1'
			p.pos += 2
			return sfItem{kind: kindBoolean, bool: b}, nil
		}
		return sfItem{}, errSyntax
	case isAlpha(c) || c == '*':
		start := p.pos
		p.pos++
		for p.pos < len(p.s) && (isTChar(p.s[p.pos]) || p.s[p.pos] == ':' || p.s[p.pos] == '/') {
			p.pos++
		}
		return sfItem{kind: kindToken, str: p.s[start:p.pos]}, nil
	}
	return sfItem{}, errSyntax
}

// integer parses an sf-integer; decimals are refused.
func (p *sfParser) integer() (sfItem, error) {
	start := p.pos
	if p.peek() == '-' {
		p.pos++
	}
	digits := p.pos
	for p.pos < len(p.s) && isDigit(p.s[p.pos]) {
		p.pos++
	}
	if n := p.pos - digits; n == 0 || n > 15 || p.peek() == '.' {
		return sfItem{}, errSyntax
	}
	v, err := strconv.ParseInt(p.s[start:p.pos], 10, 64)
	if err != nil {
		return sfItem{}, errSyntax
	}
	return sfItem{kind: kindInteger, num: v}, nil
}

func (p *sfParser) str() (sfItem, error) {
	p.pos++ // opening quote
	start := p.pos
	escaped := false
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch {
		case c == '\\':
			if p.pos+1 >= len(p.s) || (p.s[p.pos+1] != '"' && p.s[p.pos+1] != '\\') {
				return sfItem{}, errSyntax
			}
			escaped = true
			p.pos += 2
		case c == '"':
			v := p.s[start:p.pos]
			p.pos++
			if escaped {
				v = strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(v)
			}
			return sfItem{kind: kindString, str: v}, nil
		case c < 0x20 || c > 0x7e:
			return sfItem{}, errSyntax
		default:
			p.pos++
		}
	}
	return sfItem{}, errSyntax // unterminated
}

func (p *sfParser) byteSeq() (sfItem, error) {
	p.pos++ // opening colon
	end := strings.IndexByte(p.s[p.pos:], ':')
	if end < 0 {
		return sfItem{}, errSyntax
	}
	b, err := base64.StdEncoding.DecodeString(p.s[p.pos : p.pos+end])
	if err != nil {
		return sfItem{}, errSyntax
	}
	p.pos += end + 1
	return sfItem{kind: kindBytes, bytes: b}, nil
}

// appendString appends s as an sf-string. The caller has checked that s
// holds only visible ASCII and spaces.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// appendItem serialises a bare item (RFC 8941 section 4.1.3).
func appendItem(b []byte, it sfItem) []byte {
	switch it.kind {
	case kindInteger:
		return strconv.AppendInt(b, it.num, 10)
	case kindString:
		return appendString(b, it.str)
	case kindToken:
		return append(b, it.str...)
	case kindBytes:
		b = append(b, ':')
		b = base64.StdEncoding.AppendEncode(b, it.bytes)
		return append(b, ':')
	case kindBoolean:
		if it.bool {
			return append(b, "?1"...)
		}
		return append(b, "?0"...)
	}
	return b
}

// appendParams serialises parameters; a true boolean is the bare key.
func appendParams(b []byte, params []sfParam) []byte {
	for _, p := range params {
		b = append(b, ';')
		b = append(b, p.key...)
		if p.val.kind == kindBoolean && p.val.bool {
			continue
		}
		b = append(b, '=')
		b = appendItem(b, p.val)
	}
	return b
}

// appendInnerList serialises an inner list with its parameters.
func appendInnerList(b []byte, list []sfInner, params []sfParam) []byte {
	b = append(b, '(')
	for i, it := range list {
		if i > 0 {
			b = append(b, ' ')
		}
		b = appendItem(b, it.item)
		b = appendParams(b, it.params)
	}
	b = append(b, ')')
	return appendParams(b, params)
}

// isFieldString reports whether s can be an sf-string: visible ASCII and
// spaces only.
func isFieldString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
