// Package admin is qrngd's operator API: JSON over HTTP on a unix socket
// (admin.sock in the data directory, mode 0660), spoken by qrngctl. Access
// control is the socket's file mode and directory: whoever may connect is
// an operator. Every change is written to the audit log with the peer's
// uid and pid (SO_PEERCRED) as the actor.
//
// Endpoints (all JSON unless noted; errors {"error":{"code","message"}}):
//
//	GET    /v1/status                  entropy engine status
//	GET    /v1/sources                 {"sources":[...]}
//	GET    /v1/users                   {"users":[...]}
//	POST   /v1/users                   {"username","password","tenant","scopes"}
//	PUT    /v1/users/{name}/password   {"password"}; ends the user's sessions
//	DELETE /v1/users/{name}            ends the user's sessions
//	GET    /v1/tenants                 {"tenants":[...]}
//	POST   /v1/tenants                 {"id","name"}
//	GET    /v1/keys[?tenant=ID]        {"keys":[...]}
//	POST   /v1/keys                    {"tenant","name","scopes"} → {"key","client_secret"}
//	POST   /v1/keys/{id}/revoke
//	POST   /v1/tokens/revoke           {"token"} or {"jti","until"}
//	GET    /v1/signing-keys            {"keys":[...]}: the published JWT signing keys
//	POST   /v1/signing-keys/rotate     [{"unpublish_previous":true}] → the new active key; the old one stays
//	                                   published until its tokens expire, or (suspected compromise) every
//	                                   previous key is unpublished at once: {…key, "unpublished":[kids]}
//	POST   /v1/audit/verify            [{"anchor":{"seq","hash"}}] → {"ok","records","head":{"seq","hash"},"error":{"seq","reason"}}
//	GET    /v1/backup                  application/octet-stream: a consistent qrngd.db
package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway/auth"
	"github.com/qrngd/qrngd/store"
)

// SocketName is the admin socket's file name in the data directory.
const SocketName = "admin.sock"

// SocketMode is the admin socket's permission bits.
const SocketMode fs.FileMode = 0o660

// TrailerSHA256 is the HTTP trailer carrying the hex SHA-256 of a backup.
const TrailerSHA256 = "X-Backup-Sha256"

// maxBody bounds request bodies.
const maxBody = 64 << 10

// Sentinel errors.
var (
	ErrInvalidOptions = errors.New("gateway/admin: invalid options")
	// ErrSocketInUse: another process serves the socket path.
	ErrSocketInUse = errors.New("gateway/admin: socket in use")
)

// Stores are the stores the admin API manages (*bolt.DB and *mem.DB
// provide them).
type Stores interface {
	Users() store.Users
	Tenants() store.Tenants
	APIKeys() store.APIKeys
	Audit() store.Audit
}

// Backuper writes a consistent copy of the database (*bolt.DB).
type Backuper interface {
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// Status reports the entropy engine's state (*entropy.Engine).
type Status interface {
	Status() entropy.Status
}

// Tokens revokes tokens (*auth.Service).
type Tokens interface {
	RevokeToken(ctx context.Context, token, by string) (auth.Revoked, error)
	RevokeJTI(ctx context.Context, jti string, until time.Time, by string) (auth.Revoked, error)
	RevokeClient(ctx context.Context, clientID, by string) (store.APIKey, error)
	EndSessions(ctx context.Context, username, reason, by string) (int, error)
	RotateSigningKey(ctx context.Context, by string) (store.KeyInfo, error)
	RotateSigningKeyUnpublish(ctx context.Context, by string) (store.KeyInfo, []string, error)
	SigningKeys(ctx context.Context) ([]store.KeyInfo, error)
}

var _ Tokens = (*auth.Service)(nil)

// Options configure a Server. Store is required; without Backup, Status
// or Tokens the corresponding endpoints answer 501.
type Options struct {
	Store   Stores
	Backup  Backuper
	Status  Status
	Tokens  Tokens
	Version string
	Logger  *slog.Logger
}

// Server is the admin API.
type Server struct {
	o   Options
	log *slog.Logger
	mux *http.ServeMux
}

// New validates opts.
func New(opts *Options) (*Server, error) {
	if opts == nil || opts.Store == nil {
		return nil, fmt.Errorf("%w: Store is required", ErrInvalidOptions)
	}
	s := &Server{o: *opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /v1/status", s.status)
	m.HandleFunc("GET /v1/sources", s.sources)
	m.HandleFunc("GET /v1/users", s.listUsers)
	m.HandleFunc("POST /v1/users", s.addUser)
	m.HandleFunc("PUT /v1/users/{name}/password", s.passwd)
	m.HandleFunc("DELETE /v1/users/{name}", s.rmUser)
	m.HandleFunc("GET /v1/tenants", s.listTenants)
	m.HandleFunc("POST /v1/tenants", s.addTenant)
	m.HandleFunc("GET /v1/keys", s.listKeys)
	m.HandleFunc("POST /v1/keys", s.createKey)
	m.HandleFunc("POST /v1/keys/{id}/revoke", s.revokeKey)
	m.HandleFunc("POST /v1/tokens/revoke", s.revokeToken)
	m.HandleFunc("GET /v1/signing-keys", s.signingKeys)
	m.HandleFunc("POST /v1/signing-keys/rotate", s.rotateSigningKey)
	m.HandleFunc("POST /v1/audit/verify", s.verifyAudit)
	m.HandleFunc("GET /v1/backup", s.backup)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, "not_found", "no admin endpoint "+r.Method+" "+r.URL.Path)
	})
	s.mux = m
	return s, nil
}

// Handler returns the API as an http.Handler (for tests and other
// transports).
func (s *Server) Handler() http.Handler { return s.mux }

// Serve listens on the unix socket path (mode 0660) and serves until ctx
// is done, then shuts down and removes the socket. A stale socket left by
// a crash is replaced; a live one (another daemon answering) or a
// non-socket file at path is an error.
func (s *Server) Serve(ctx context.Context, path string) error {
	ln, err := Listen(path)
	if err != nil {
		return err
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener serves on ln (from Listen) until ctx is done, then shuts
// down gracefully (5 s) and closes ln, which removes its socket file.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext:       peerContext,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	s.log.Info("admin socket listening", "addr", ln.Addr().String())
	select {
	case <-ctx.Done():
	case err := <-done:
		ln.Close()
		return fmt.Errorf("gateway/admin: serve %s: %w", ln.Addr(), err)
	}
	shCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil {
		_ = srv.Close()
	}
	<-done
	ln.Close()
	return nil
}

// Listen creates the unix socket at path with mode 0660.
func Listen(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("gateway/admin: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%w: %s answers; is another qrngd running?", ErrSocketInUse, path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("gateway/admin: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("gateway/admin: listen %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	// The data directory (0700/0750) keeps others out during the moment
	// between bind and chmod.
	if err := os.Chmod(path, SocketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("gateway/admin: chmod %s: %w", path, err)
	}
	return ln, nil
}

// --- helpers ---

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// storeFail maps store errors to statuses.
func (s *Server) storeFail(w http.ResponseWriter, r *http.Request, err error) {
	msg := strings.TrimPrefix(err.Error(), "store: ")
	switch {
	case errors.Is(err, store.ErrInvalid):
		fail(w, http.StatusBadRequest, "invalid", msg)
	case errors.Is(err, store.ErrNotFound):
		fail(w, http.StatusNotFound, "not_found", msg)
	case errors.Is(err, store.ErrExists):
		fail(w, http.StatusConflict, "exists", msg)
	default:
		s.log.ErrorContext(r.Context(), "admin request failed", "path", r.URL.Path, "err", err)
		fail(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

// decode reads a JSON body strictly into v.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		fail(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fail(w, http.StatusRequestEntityTooLarge, "request_too_large", err.Error())
			return false
		}
		fail(w, http.StatusBadRequest, "bad_request", "malformed JSON: "+err.Error())
		return false
	}
	if dec.More() {
		fail(w, http.StatusBadRequest, "bad_request", "data after the JSON object")
		return false
	}
	return true
}

// audit appends an admin event; a failure fails the request (the change
// is already durable, so the message says so).
func (s *Server) audit(w http.ResponseWriter, r *http.Request, typ, subject string, fields map[string]string) bool {
	if fields == nil {
		fields = map[string]string{}
	}
	fields["by"] = actor(r.Context())
	if _, err := s.o.Store.Audit().Append(r.Context(), store.AuditEvent{Type: typ, Subject: subject, Fields: fields}); err != nil {
		s.log.ErrorContext(r.Context(), "admin change not audited", "type", typ, "subject", subject, "err", err)
		fail(w, http.StatusInternalServerError, "audit_failed", "the change was made but could not be audited: "+err.Error())
		return false
	}
	return true
}

// --- handlers ---

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if s.o.Status == nil {
		fail(w, http.StatusNotImplemented, "unavailable", "no entropy engine attached")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": s.o.Version, "status": s.o.Status.Status()})
}

func (s *Server) sources(w http.ResponseWriter, r *http.Request) {
	if s.o.Status == nil {
		fail(w, http.StatusNotImplemented, "unavailable", "no entropy engine attached")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sources": s.o.Status.Status().Sources})
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	us, err := s.o.Store.Users().List(r.Context())
	if err != nil {
		s.storeFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": us})
}

type userIn struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	Tenant   string   `json:"tenant"`
	Scopes   []string `json:"scopes"`
}

func (s *Server) addUser(w http.ResponseWriter, r *http.Request) {
	var in userIn
	if !decode(w, r, &in) {
		return
	}
	if in.Scopes == nil {
		in.Scopes = []string{}
	}
	u := store.User{Username: in.Username, Tenant: in.Tenant, Scopes: in.Scopes}
	if err := s.o.Store.Users().Create(r.Context(), u, in.Password); err != nil {
		s.storeFail(w, r, err)
		return
	}
	if !s.audit(w, r, "user.add", in.Username, map[string]string{"tenant": in.Tenant, "scope": strings.Join(in.Scopes, " ")}) {
		return
	}
	got, err := s.o.Store.Users().Get(r.Context(), in.Username)
	if err != nil {
		s.storeFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, got)
}

func (s *Server) passwd(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Password string `json:"password"`
	}
	if !decode(w, r, &in) {
		return
	}
	name := r.PathValue("name")
	if err := s.o.Store.Users().SetPassword(r.Context(), name, in.Password); err != nil {
		s.storeFail(w, r, err)
		return
	}
	if !s.audit(w, r, "user.passwd", name, nil) || !s.endSessions(w, r, name, "password changed") {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"username": name})
}

// endSessions ends the user's open sessions and the access tokens issued
// from them (when a token service is attached); on failure it has written
// the error.
func (s *Server) endSessions(w http.ResponseWriter, r *http.Request, name, reason string) bool {
	if s.o.Tokens == nil {
		return true
	}
	if _, err := s.o.Tokens.EndSessions(r.Context(), name, reason, actor(r.Context())); err != nil {
		s.log.ErrorContext(r.Context(), "ending sessions failed", "user", name, "err", err)
		fail(w, http.StatusInternalServerError, "internal", "the change was made but the user's sessions could not all be ended: "+err.Error())
		return false
	}
	return true
}

func (s *Server) rmUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.o.Store.Users().Delete(r.Context(), name); err != nil {
		s.storeFail(w, r, err)
		return
	}
	if !s.audit(w, r, "user.rm", name, nil) || !s.endSessions(w, r, name, "user removed") {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": name})
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := s.o.Store.Tenants().List(r.Context())
	if err != nil {
		s.storeFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenants": ts})
}

func (s *Server) addTenant(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if !decode(w, r, &in) {
		return
	}
	if err := s.o.Store.Tenants().Create(r.Context(), store.Tenant{ID: in.ID, Name: in.Name}); err != nil {
		s.storeFail(w, r, err)
		return
	}
	if !s.audit(w, r, "tenant.add", in.ID, map[string]string{"name": in.Name}) {
		return
	}
	t, err := s.o.Store.Tenants().Get(r.Context(), in.ID)
	if err != nil {
		s.storeFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	ks, err := s.o.Store.APIKeys().List(r.Context(), r.URL.Query().Get("tenant"))
	if err != nil {
		s.storeFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": ks})
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var in store.APIKeySpec
	if !decode(w, r, &in) {
		return
	}
	if in.Scopes == nil {
		in.Scopes = []string{}
	}
	k, secret, err := s.o.Store.APIKeys().Create(r.Context(), in)
	if err != nil {
		s.storeFail(w, r, err)
		return
	}
	if s.audit(w, r, "key.create", k.ClientID, map[string]string{"tenant": k.Tenant, "scope": strings.Join(k.Scopes, " ")}) {
		writeJSON(w, http.StatusCreated, map[string]any{"key": k, "client_secret": secret})
	}
}

// revokeKey revokes an API key; with a token service attached, the key's
// outstanding access tokens are revoked with it.
func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if s.o.Tokens != nil {
		if _, err := s.o.Tokens.RevokeClient(r.Context(), id, actor(r.Context())); err != nil {
			s.storeFail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"revoked": id})
		return
	}
	k, err := s.o.Store.APIKeys().Get(r.Context(), id)
	if err == nil {
		err = s.o.Store.APIKeys().Revoke(r.Context(), id)
	}
	if err != nil {
		s.storeFail(w, r, err)
		return
	}
	if s.audit(w, r, "key.revoke", id, map[string]string{"tenant": k.Tenant}) {
		writeJSON(w, http.StatusOK, map[string]string{"revoked": id})
	}
}

func (s *Server) signingKeys(w http.ResponseWriter, r *http.Request) {
	if s.o.Tokens == nil {
		fail(w, http.StatusNotImplemented, "unavailable", "no token service attached")
		return
	}
	keys, err := s.o.Tokens.SigningKeys(r.Context())
	if err != nil {
		s.storeFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

// rotateSigningKey makes a new active signing key (audited by the token
// service with the peer as the actor).
func (s *Server) rotateSigningKey(w http.ResponseWriter, r *http.Request) {
	if s.o.Tokens == nil {
		fail(w, http.StatusNotImplemented, "unavailable", "no token service attached")
		return
	}
	var in struct {
		UnpublishPrevious bool `json:"unpublish_previous"`
	}
	if r.ContentLength != 0 && !decode(w, r, &in) {
		return
	}
	var out struct {
		store.KeyInfo
		Unpublished []string `json:"unpublished,omitempty"`
	}
	var err error
	if in.UnpublishPrevious {
		out.KeyInfo, out.Unpublished, err = s.o.Tokens.RotateSigningKeyUnpublish(r.Context(), actor(r.Context()))
	} else {
		out.KeyInfo, err = s.o.Tokens.RotateSigningKey(r.Context(), actor(r.Context()))
	}
	if err != nil {
		s.storeFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	if s.o.Tokens == nil {
		fail(w, http.StatusNotImplemented, "unavailable", "no token service attached")
		return
	}
	var in struct {
		Token string    `json:"token"`
		JTI   string    `json:"jti"`
		Until time.Time `json:"until"`
	}
	if !decode(w, r, &in) {
		return
	}
	var out auth.Revoked
	var err error
	switch {
	case (in.Token == "") == (in.JTI == ""):
		fail(w, http.StatusBadRequest, "bad_request", "give exactly one of token and jti")
		return
	case in.Token != "":
		out, err = s.o.Tokens.RevokeToken(r.Context(), in.Token, actor(r.Context()))
	default:
		out, err = s.o.Tokens.RevokeJTI(r.Context(), in.JTI, in.Until, actor(r.Context()))
	}
	if err != nil {
		if auth.IsInvalidToken(err) || errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrNotFound) {
			fail(w, http.StatusBadRequest, "invalid_token", err.Error())
			return
		}
		s.storeFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// AuditResult is the answer of POST /v1/audit/verify.
type AuditResult struct {
	OK      bool        `json:"ok"`
	Records uint64      `json:"records"`
	Head    *AuditHead  `json:"head,omitempty"` // the last record, when the chain verifies
	Error   *AuditBreak `json:"error,omitempty"`
}

// AuditHead names one record of the chain by sequence number and hash. The
// head printed by a verification, kept off the host, is an anchor: a later
// verification given it proves that the chain still holds that record, so
// the log was neither cut back nor rewritten from there (the chain alone
// cannot show that: whoever can write the file can rebuild every hash).
type AuditHead struct {
	Seq  uint64     `json:"seq"`
	Hash store.Hash `json:"hash"`
}

// AuditVerifyRequest is the optional body of POST /v1/audit/verify.
type AuditVerifyRequest struct {
	Anchor *AuditAnchor `json:"anchor,omitempty"`
}

// AuditAnchor is an AuditHead recorded earlier, hash in hex.
type AuditAnchor struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// AuditBreak locates a broken chain.
type AuditBreak struct {
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) {
	var req AuditVerifyRequest
	if r.ContentLength != 0 && !decode(w, r, &req) {
		return
	}
	var anchor store.Hash
	if a := req.Anchor; a != nil {
		b, err := hex.DecodeString(a.Hash)
		if err != nil || len(b) != len(anchor) || a.Seq == 0 {
			fail(w, http.StatusBadRequest, "bad_request", "anchor: want a sequence number ≥ 1 and a 64-digit hex hash")
			return
		}
		copy(anchor[:], b)
	}
	ctx := r.Context()
	n, err := s.o.Store.Audit().Verify(ctx)
	var ce *store.AuditChainError
	switch {
	case err == nil:
		res := AuditResult{OK: true, Records: n}
		if n > 0 {
			head, err := s.auditRecord(ctx, n)
			if err != nil {
				s.storeFail(w, r, err)
				return
			}
			res.Head = &AuditHead{Seq: head.Seq, Hash: head.Hash}
		}
		if a := req.Anchor; a != nil {
			rec, err := s.auditRecord(ctx, a.Seq)
			switch {
			case errors.Is(err, store.ErrNotFound):
				res.OK, res.Head = false, nil
				res.Error = &AuditBreak{Seq: a.Seq, Reason: "the anchor's record is gone: the log was cut back or rebuilt"}
			case err != nil:
				s.storeFail(w, r, err)
				return
			case rec.Hash != anchor:
				res.OK, res.Head = false, nil
				res.Error = &AuditBreak{Seq: a.Seq, Reason: "the anchor's record has another hash: the log was rewritten"}
			}
			if !res.OK {
				s.log.ErrorContext(ctx, "audit chain does not hold its anchor", "seq", a.Seq, "reason", res.Error.Reason)
			}
		}
		writeJSON(w, http.StatusOK, res)
	case errors.As(err, &ce):
		s.log.ErrorContext(r.Context(), "audit chain broken", "seq", ce.Seq, "reason", ce.Reason)
		writeJSON(w, http.StatusOK, AuditResult{OK: false, Records: n, Error: &AuditBreak{Seq: ce.Seq, Reason: ce.Reason}})
	default:
		s.storeFail(w, r, err)
	}
}

// auditRecord returns the record with sequence number seq; ErrNotFound
// when there is none.
func (s *Server) auditRecord(ctx context.Context, seq uint64) (store.AuditRecord, error) {
	recs, err := s.o.Store.Audit().List(ctx, seq-1, 1)
	if err != nil {
		return store.AuditRecord{}, err
	}
	if len(recs) == 0 || recs[0].Seq != seq {
		return store.AuditRecord{}, fmt.Errorf("audit record %d: %w", seq, store.ErrNotFound)
	}
	return recs[0], nil
}

func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	if s.o.Backup == nil {
		fail(w, http.StatusNotImplemented, "unavailable", "this store cannot be backed up")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Trailer", TrailerSHA256)
	h := sha256.New()
	n, err := s.o.Backup.Backup(r.Context(), io.MultiWriter(w, h))
	if err != nil {
		// The status is already sent: abort the connection so the client
		// sees a truncated chunked body (and no checksum trailer).
		s.log.ErrorContext(r.Context(), "backup failed", "bytes", n, "err", err)
		panic(http.ErrAbortHandler)
	}
	w.Header().Set(TrailerSHA256, hex.EncodeToString(h.Sum(nil)))
	s.log.InfoContext(r.Context(), "backup written", "bytes", n, "by", actor(r.Context()))
}
