package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// errJSON is wrapped by the strict decoder; the message says what was wrong.
var errJSON = errors.New("malformed JSON")

// maxJSONDepth bounds nesting inside one member value.
const maxJSONDepth = 8

// strictObject decodes data as exactly one JSON object and calls fn for each
// member in order. Member names are matched exactly (case-sensitively) by
// the caller; a name appearing twice, anything but an object at the top, or
// trailing data after the object is an error. This is what STYLE rule 20
// asks of untrusted JSON: encoding/json alone matches field names
// case-insensitively and keeps the last of duplicate names, which lets a
// sender smuggle fields past a reviewer's reading of the body.
func strictObject(data []byte, fn func(name string, raw json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: %v", errJSON, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("%w: want a JSON object", errJSON)
	}
	seen := make(map[string]bool, 8)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %v", errJSON, err)
		}
		name, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%w: want a member name", errJSON)
		}
		if seen[name] {
			return fmt.Errorf("%w: member %q appears twice", errJSON, name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%w: member %q: %v", errJSON, name, err)
		}
		if depth(raw) > maxJSONDepth {
			return fmt.Errorf("%w: member %q nested deeper than %d", errJSON, name, maxJSONDepth)
		}
		if err := fn(name, raw); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return fmt.Errorf("%w: %v", errJSON, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON object", errJSON)
	}
	return nil
}

// depth returns the bracket nesting depth of a JSON value (strings skipped).
func depth(b []byte) int {
	d, m, inStr, esc := 0, 0, false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			d++
			m = max(m, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return m
}

// jsonString decodes raw as a JSON string (null is refused).
func jsonString(name string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", fmt.Errorf("%w: member %q must be a string", errJSON, name)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: member %q: %v", errJSON, name, err)
	}
	return s, nil
}

// decodeStrings decodes a body that must be an object whose members are all
// strings, with exactly the names in want (every one of them required
// unless listed in optional).
func decodeStrings(data []byte, want []string, optional ...string) (map[string]string, error) {
	out := make(map[string]string, len(want))
	known := make(map[string]bool, len(want)+len(optional))
	for _, w := range want {
		known[w] = true
	}
	for _, w := range optional {
		known[w] = true
	}
	err := strictObject(data, func(name string, raw json.RawMessage) error {
		if !known[name] {
			return fmt.Errorf("%w: unknown member %q", errJSON, name)
		}
		s, err := jsonString(name, raw)
		if err != nil {
			return err
		}
		out[name] = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, w := range want {
		if _, ok := out[w]; !ok {
			return nil, fmt.Errorf("%w: member %q is required", errJSON, w)
		}
	}
	return out, nil
}
