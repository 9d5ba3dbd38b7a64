package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"unicode/utf8"
)

// apiError writes the gateway's error shape {"error":{"code","message"}}.
func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// oauthError writes an RFC 6749 §5.2 error body.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":{"code":"internal","message":"internal error"}}`, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// bodyError is a request-body problem with its HTTP status.
type bodyError struct {
	status int
	code   string // gateway-shape code
	msg    string
}

func (e *bodyError) Error() string { return e.msg }

// readBody checks the media type and reads at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, wantType string, limit int64) ([]byte, *bodyError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != wantType {
		return nil, &bodyError{http.StatusUnsupportedMediaType, "unsupported_media_type",
			fmt.Sprintf("Content-Type must be %s", wantType)}
	}
	if r.ContentLength > limit {
		return nil, &bodyError{http.StatusRequestEntityTooLarge, "request_too_large",
			fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit)}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &bodyError{http.StatusRequestEntityTooLarge, "request_too_large",
				fmt.Sprintf("request body exceeds the limit of %d bytes", mbe.Limit)}
		}
		return nil, &bodyError{http.StatusBadRequest, "bad_request", "reading the request body failed"}
	}
	return b, nil
}

// readJSON reads a strict JSON object of string members (see decodeStrings).
func (s *Service) readJSON(w http.ResponseWriter, r *http.Request, want []string, optional ...string) (map[string]string, bool) {
	b, be := readBody(w, r, "application/json", s.opts.MaxBodyBytes)
	if be != nil {
		apiError(w, be.status, be.code, be.msg)
		return nil, false
	}
	if !utf8.Valid(b) {
		apiError(w, http.StatusBadRequest, "bad_request", "request body is not valid UTF-8")
		return nil, false
	}
	m, err := decodeStrings(b, want, optional...)
	if err != nil {
		apiError(w, http.StatusBadRequest, "bad_request", err.Error())
		return nil, false
	}
	return m, true
}

// readForm reads an application/x-www-form-urlencoded body (RFC 6749
// §3.2: no parameter twice; names outside known are ignored, as OAuth
// requires of unrecognized parameters). Query parameters are refused:
// credentials never travel in URLs.
func (s *Service) readForm(w http.ResponseWriter, r *http.Request, known ...string) (map[string]string, bool) {
	if r.URL.RawQuery != "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "parameters must be sent in the form-encoded body, not the URL")
		return nil, false
	}
	b, be := readBody(w, r, "application/x-www-form-urlencoded", s.opts.MaxBodyBytes)
	if be != nil {
		oauthError(w, be.status, "invalid_request", be.msg)
		return nil, false
	}
	vals, err := url.ParseQuery(string(b))
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return nil, false
	}
	out := make(map[string]string, len(known))
	for _, k := range known {
		v, ok := vals[k]
		if !ok {
			continue
		}
		if len(v) > 1 {
			oauthError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("parameter %q appears more than once", k))
			return nil, false
		}
		out[k] = v[0]
	}
	return out, true
}

// methodOnly refuses other methods with 405.
func methodOnly(w http.ResponseWriter, r *http.Request, m string) bool {
	if r.Method == m {
		return true
	}
	w.Header().Set("Allow", m)
	apiError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use "+m)
	return false
}
