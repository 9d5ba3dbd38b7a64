package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway/admin"
	"github.com/qrngd/qrngd/gateway/auth"
	"github.com/qrngd/qrngd/store"
)

// usageError is a bad command line (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// DefaultSocket is used when neither -socket nor QRNGD_ADMIN_SOCKET is set:
// admin.sock in the production data directory.
const DefaultSocket = "/var/lib/qrngd/" + admin.SocketName

const usage = `usage: qrngctl [-socket PATH] [-json] COMMAND [ARGS]

commands:
  status                                  pool and source summary
  sources                                 per-source health
  user add NAME [-tenant ID] [-scopes a,b] password read from stdin
  user list
  user passwd NAME                        new password read from stdin
  user rm NAME
  tenant add ID [-name NAME]
  tenant list
  key create -tenant ID [-name NAME] [-scopes a,b]   prints the secret once
  key list [-tenant ID]
  key revoke CLIENT_ID
  token revoke (TOKEN | - | -jti JTI [-until RFC3339])   "-" reads the token from stdin
  signing-key list                        published JWT signing keys
  signing-key rotate [-unpublish-previous]
                                          new active signing key; the old one verifies until its tokens
                                          expire, or with -unpublish-previous (key compromise) every
                                          previous key and all tokens it signed are refused at once
  audit verify [-anchor SEQ:HASH]         exit status 1 if the chain is broken or lacks the anchor
  backup FILE                             consistent copy of the database

-json prints machine-readable output; -socket defaults to $QRNGD_ADMIN_SOCKET or ` + DefaultSocket + `
`

// cli is one invocation.
type cli struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	socket string
	json   bool
	hc     *http.Client
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := &cli{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("qrngctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	c.flags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usagef("%v", err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return usagef("no command")
	}
	cmd, rest := rest[0], rest[1:]
	sub := ""
	if len(rest) > 0 && (cmd == "user" || cmd == "tenant" || cmd == "key" || cmd == "token" || cmd == "audit" || cmd == "signing-key") {
		sub, rest = rest[0], rest[1:]
	}
	switch cmd + " " + sub {
	case "status ":
		return c.status(rest)
	case "sources ":
		return c.sources(rest)
	case "user add":
		return c.userAdd(rest)
	case "user list":
		return c.userList(rest)
	case "user passwd":
		return c.userPasswd(rest)
	case "user rm":
		return c.userRm(rest)
	case "tenant add":
		return c.tenantAdd(rest)
	case "tenant list":
		return c.tenantList(rest)
	case "key create":
		return c.keyCreate(rest)
	case "key list":
		return c.keyList(rest)
	case "key revoke":
		return c.keyRevoke(rest)
	case "token revoke":
		return c.tokenRevoke(rest)
	case "signing-key list":
		return c.signingKeyList(rest)
	case "signing-key rotate":
		return c.signingKeyRotate(rest)
	case "audit verify":
		return c.auditVerify(rest)
	case "backup ":
		return c.backup(rest)
	}
	return usagef("unknown command %q (run qrngctl -h)", strings.TrimSpace(cmd+" "+sub))
}

// flags adds -socket and -json to fs (accepted before and after the command).
func (c *cli) flags(fs *flag.FlagSet) {
	def := c.socket
	if def == "" {
		def = os.Getenv("QRNGD_ADMIN_SOCKET")
	}
	if def == "" {
		def = DefaultSocket
	}
	fs.StringVar(&c.socket, "socket", def, "admin socket `PATH`")
	fs.BoolVar(&c.json, "json", c.json, "print JSON")
}

// parse parses a subcommand's flags and wants exactly nargs positional
// arguments (−1: any).
func (c *cli) parse(name string, args []string, nargs int, setup func(*flag.FlagSet)) ([]string, error) {
	fs := flag.NewFlagSet("qrngctl "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	c.flags(fs)
	if setup != nil {
		setup(fs)
	}
	// Allow flags after positional arguments (qrngctl user add alice -scopes x).
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usagef("%s: %v", name, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if nargs >= 0 && len(pos) != nargs {
		return nil, usagef("%s: want %d argument(s), got %d (run qrngctl -h)", name, nargs, len(pos))
	}
	return pos, nil
}

func (c *cli) client() *http.Client {
	if c.hc == nil {
		path := c.socket
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
		}}
	}
	return c.hc
}

// apiError is an error answer from the daemon.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (%s)", e.Message, e.Code) }

// call sends a JSON request and decodes a JSON answer into out.
func (c *cli) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	res, err := c.do(method, path, body)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if res.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
			return &apiError{res.StatusCode, e.Error.Code, e.Error.Message}
		}
		return fmt.Errorf("%s %s: HTTP %d", method, path, res.StatusCode)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: bad answer: %w", method, path, err)
		}
	}
	return nil
}

func (c *cli) do(method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(c.ctx, method, "http://qrngd"+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach qrngd at %s (is it running? -socket or QRNGD_ADMIN_SOCKET): %w", c.socket, err)
	}
	return res, nil
}

// emit prints v as JSON, or calls text for the human form.
func (c *cli) emit(v any, text func(w io.Writer)) error {
	if c.json {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	text(tw)
	return tw.Flush()
}

// readSecret reads one line from stdin (a password or a token).
func (c *cli) readSecret(what string) (string, error) {
	if f, ok := c.stdin.(*os.File); ok {
		if restore, tty := noEcho(f); tty {
			fmt.Fprintf(c.stderr, "%s: ", what)
			defer func() {
				restore()
				fmt.Fprintln(c.stderr)
			}()
		}
	}
	line, err := bufio.NewReaderSize(c.stdin, 16<<10).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("reading the %s from standard input: %w", what, err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty %s on standard input", what)
	}
	return line, nil
}

func splitScopes(s string) []string {
	out := []string{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// --- commands ---

type statusAnswer struct {
	Version string         `json:"version"`
	Status  entropy.Status `json:"status"`
}

func (c *cli) status(args []string) error {
	if _, err := c.parse("status", args, 0, nil); err != nil {
		return err
	}
	var st statusAnswer
	if err := c.call(http.MethodGet, "/v1/status", nil, &st); err != nil {
		return err
	}
	return c.emit(st, func(w io.Writer) {
		p := st.Status.Pool
		fmt.Fprintf(w, "version\t%s\n", dash(st.Version))
		fmt.Fprintf(w, "pool\tready=%t degraded=%t policy=%s\n", p.Ready, p.Degraded, p.Policy)
		fmt.Fprintf(w, "level\t%d / %d bytes\n", p.LevelBytes, p.CapacityBytes)
		fmt.Fprintf(w, "sources\t%d healthy of %d (need %d)\n", p.HealthySources, len(st.Status.Sources), p.MinSources)
		fmt.Fprintf(w, "drbg reseeds\t%d\n", p.Reseeds)
	})
}

func (c *cli) sources(args []string) error {
	if _, err := c.parse("sources", args, 0, nil); err != nil {
		return err
	}
	var out struct {
		Sources []entropy.SourceStatus `json:"sources"`
	}
	if err := c.call(http.MethodGet, "/v1/sources", nil, &out); err != nil {
		return err
	}
	return c.emit(out, func(w io.Writer) {
		fmt.Fprintln(w, "NAME\tKIND\tSTATE\tH/SAMPLE\tSAMPLES\tBYTES\tRCT\tAPT\tQUARANTINES")
		for _, s := range out.Sources {
			fmt.Fprintf(w, "%s\t%s\t%s\t%.3g\t%d\t%d\t%d/%d\t%d/%d\t%d\n", s.Name, s.Kind, s.State, s.MinEntropy, s.Samples, s.Bytes,
				s.RCT.Intermittent, s.RCT.Permanent, s.APT.Intermittent, s.APT.Permanent, s.Quarantines)
		}
	})
}

func (c *cli) userAdd(args []string) error {
	var tenant, scopes string
	pos, err := c.parse("user add", args, 1, func(fs *flag.FlagSet) {
		fs.StringVar(&tenant, "tenant", "", "tenant `ID`")
		fs.StringVar(&scopes, "scopes", "", "comma-separated scopes (e.g. random:read,sources:read)")
	})
	if err != nil {
		return err
	}
	pw, err := c.readSecret("password")
	if err != nil {
		return err
	}
	var u store.User
	if err := c.call(http.MethodPost, "/v1/users", map[string]any{"username": pos[0], "password": pw, "tenant": tenant,
		"scopes": splitScopes(scopes)}, &u); err != nil {
		return err
	}
	return c.emit(u, func(w io.Writer) { fmt.Fprintf(w, "user %s added\n", u.Username) })
}

func (c *cli) userList(args []string) error {
	if _, err := c.parse("user list", args, 0, nil); err != nil {
		return err
	}
	var out struct {
		Users []store.User `json:"users"`
	}
	if err := c.call(http.MethodGet, "/v1/users", nil, &out); err != nil {
		return err
	}
	return c.emit(out, func(w io.Writer) {
		fmt.Fprintln(w, "USERNAME\tTENANT\tSCOPES\tDISABLED\tCREATED")
		for _, u := range out.Users {
			fmt.Fprintf(w, "%s\t%s\t%s\t%t\t%s\n", u.Username, dash(u.Tenant), dash(strings.Join(u.Scopes, ",")), u.Disabled, when(u.Created))
		}
	})
}

func (c *cli) userPasswd(args []string) error {
	pos, err := c.parse("user passwd", args, 1, nil)
	if err != nil {
		return err
	}
	pw, err := c.readSecret("new password")
	if err != nil {
		return err
	}
	var out map[string]string
	if err := c.call(http.MethodPut, "/v1/users/"+url.PathEscape(pos[0])+"/password", map[string]string{"password": pw}, &out); err != nil {
		return err
	}
	return c.emit(out, func(w io.Writer) { fmt.Fprintf(w, "password of %s changed\n", pos[0]) })
}

func (c *cli) userRm(args []string) error {
	pos, err := c.parse("user rm", args, 1, nil)
	if err != nil {
		return err
	}
	var out map[string]string
	if err := c.call(http.MethodDelete, "/v1/users/"+url.PathEscape(pos[0]), nil, &out); err != nil {
		return err
	}
	return c.emit(out, func(w io.Writer) { fmt.Fprintf(w, "user %s removed\n", pos[0]) })
}

func (c *cli) tenantAdd(args []string) error {
	var name string
	pos, err := c.parse("tenant add", args, 1, func(fs *flag.FlagSet) { fs.StringVar(&name, "name", "", "display `NAME`") })
	if err != nil {
		return err
	}
	var t store.Tenant
	if err := c.call(http.MethodPost, "/v1/tenants", map[string]string{"id": pos[0], "name": name}, &t); err != nil {
		return err
	}
	return c.emit(t, func(w io.Writer) { fmt.Fprintf(w, "tenant %s added\n", t.ID) })
}

func (c *cli) tenantList(args []string) error {
	if _, err := c.parse("tenant list", args, 0, nil); err != nil {
		return err
	}
	var out struct {
		Tenants []store.Tenant `json:"tenants"`
	}
	if err := c.call(http.MethodGet, "/v1/tenants", nil, &out); err != nil {
		return err
	}
	return c.emit(out, func(w io.Writer) {
		fmt.Fprintln(w, "ID\tNAME\tCREATED")
		for _, t := range out.Tenants {
			fmt.Fprintf(w, "%s\t%s\t%s\n", t.ID, dash(t.Name), when(t.Created))
		}
	})
}

type keyCreated struct {
	Key          store.APIKey `json:"key"`
	ClientSecret string       `json:"client_secret"`
}

func (c *cli) keyCreate(args []string) error {
	var tenant, name, scopes string
	if _, err := c.parse("key create", args, 0, func(fs *flag.FlagSet) {
		fs.StringVar(&tenant, "tenant", "", "tenant `ID` (required)")
		fs.StringVar(&name, "name", "", "label")
		fs.StringVar(&scopes, "scopes", "", "comma-separated scopes")
	}); err != nil {
		return err
	}
	if tenant == "" {
		return usagef("key create: -tenant is required")
	}
	var out keyCreated
	if err := c.call(http.MethodPost, "/v1/keys", store.APIKeySpec{Tenant: tenant, Name: name, Scopes: splitScopes(scopes)}, &out); err != nil {
		return err
	}
	return c.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "client_id\t%s\n", out.Key.ClientID)
		fmt.Fprintf(w, "client_secret\t%s\n", out.ClientSecret)
		fmt.Fprintf(w, "tenant\t%s\n", out.Key.Tenant)
		fmt.Fprintf(w, "scopes\t%s\n", dash(strings.Join(out.Key.Scopes, ",")))
		fmt.Fprintln(w, "\nThe secret is shown only now; store it safely.")
	})
}

func (c *cli) keyList(args []string) error {
	var tenant string
	if _, err := c.parse("key list", args, 0, func(fs *flag.FlagSet) { fs.StringVar(&tenant, "tenant", "", "only this tenant") }); err != nil {
		return err
	}
	path := "/v1/keys"
	if tenant != "" {
		path += "?tenant=" + url.QueryEscape(tenant)
	}
	var out struct {
		Keys []store.APIKey `json:"keys"`
	}
	if err := c.call(http.MethodGet, path, nil, &out); err != nil {
		return err
	}
	return c.emit(out, func(w io.Writer) {
		fmt.Fprintln(w, "CLIENT_ID\tTENANT\tNAME\tSCOPES\tREVOKED\tCREATED")
		for _, k := range out.Keys {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%t\t%s\n", k.ClientID, k.Tenant, dash(k.Name), dash(strings.Join(k.Scopes, ",")), k.Revoked, when(k.Created))
		}
	})
}

func (c *cli) keyRevoke(args []string) error {
	pos, err := c.parse("key revoke", args, 1, nil)
	if err != nil {
		return err
	}
	var out map[string]string
	if err := c.call(http.MethodPost, "/v1/keys/"+url.PathEscape(pos[0])+"/revoke", nil, &out); err != nil {
		return err
	}
	return c.emit(out, func(w io.Writer) { fmt.Fprintf(w, "key %s revoked\n", pos[0]) })
}

func (c *cli) signingKeyList(args []string) error {
	if _, err := c.parse("signing-key list", args, 0, nil); err != nil {
		return err
	}
	var out struct {
		Keys []store.KeyInfo `json:"keys"`
	}
	if err := c.call(http.MethodGet, "/v1/signing-keys", nil, &out); err != nil {
		return err
	}
	return c.emit(out, func(w io.Writer) {
		fmt.Fprintln(w, "KID\tALG\tSTATE\tCREATED\tRETIRED\tUNPUBLISHED_AFTER")
		for _, k := range out.Keys {
			state := "active"
			if !k.Retired.IsZero() {
				state = "retired"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Alg, state, when(k.Created), when(k.Retired), when(k.RemoveAfter))
		}
	})
}

func (c *cli) signingKeyRotate(args []string) error {
	var unpublish bool
	if _, err := c.parse("signing-key rotate", args, 0, func(fs *flag.FlagSet) {
		fs.BoolVar(&unpublish, "unpublish-previous", false, "also unpublish every previous key now: all tokens they signed are refused (key compromise)")
	}); err != nil {
		return err
	}
	var in any
	if unpublish {
		in = map[string]bool{"unpublish_previous": true}
	}
	var out struct {
		store.KeyInfo
		Unpublished []string `json:"unpublished,omitempty"`
	}
	if err := c.call(http.MethodPost, "/v1/signing-keys/rotate", in, &out); err != nil {
		return err
	}
	return c.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "signing key %s (%s) is active", out.KID, out.Alg)
		if !unpublish {
			fmt.Fprintln(w, "; the previous key stays published until its tokens expire")
			return
		}
		fmt.Fprintf(w, "; unpublished now: %s\nEvery token they signed is refused; clients must obtain new tokens.\n", dash(strings.Join(out.Unpublished, " ")))
	})
}

func (c *cli) tokenRevoke(args []string) error {
	var jti, until string
	pos, err := c.parse("token revoke", args, -1, func(fs *flag.FlagSet) {
		fs.StringVar(&jti, "jti", "", "revoke by `JTI` instead of the token")
		fs.StringVar(&until, "until", "", "with -jti: keep revoked until `RFC3339` time (default: the longest token lifetime)")
	})
	if err != nil {
		return err
	}
	in := map[string]any{}
	switch {
	case jti != "" && len(pos) == 0:
		in["jti"] = jti
		if until != "" {
			t, err := time.Parse(time.RFC3339, until)
			if err != nil {
				return usagef("token revoke: -until %q is not RFC 3339", until)
			}
			in["until"] = t
		}
	case jti == "" && len(pos) == 1:
		tok := pos[0]
		if tok == "-" {
			if tok, err = c.readSecret("token"); err != nil {
				return err
			}
		}
		in["token"] = tok
	default:
		return usagef("token revoke: give a TOKEN (or - for stdin) or -jti JTI")
	}
	var out auth.Revoked
	if err := c.call(http.MethodPost, "/v1/tokens/revoke", in, &out); err != nil {
		return err
	}
	return c.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "revoked %s %s (subject %s) until %s\n", out.Type, out.ID, dash(out.Subject), when(out.Until))
	})
}

// errAuditBroken makes `audit verify` exit with status 1.
var errAuditBroken = errors.New("audit chain broken")

func (c *cli) auditVerify(args []string) error {
	var anchor string
	if _, err := c.parse("audit verify", args, 0, func(fs *flag.FlagSet) {
		fs.StringVar(&anchor, "anchor", "", "SEQ:HASH of a head printed by an earlier verify, kept off this host")
	}); err != nil {
		return err
	}
	var in any
	if anchor != "" {
		seqText, hash, ok := strings.Cut(anchor, ":")
		seq, err := strconv.ParseUint(seqText, 10, 64)
		if !ok || err != nil || seq == 0 {
			return usagef("audit verify: -anchor wants SEQ:HASH as printed by audit verify, got %q", anchor)
		}
		in = admin.AuditVerifyRequest{Anchor: &admin.AuditAnchor{Seq: seq, Hash: hash}}
	}
	var out admin.AuditResult
	if err := c.call(http.MethodPost, "/v1/audit/verify", in, &out); err != nil {
		return err
	}
	if err := c.emit(out, func(w io.Writer) {
		if out.OK {
			fmt.Fprintf(w, "audit chain OK: %d records verified\n", out.Records)
			if out.Head != nil {
				fmt.Fprintf(w, "head %d:%s (keep it off this host; `audit verify -anchor %d:%s` later proves the log was not cut back or rewritten)\n",
					out.Head.Seq, out.Head.Hash, out.Head.Seq, out.Head.Hash)
			}
		} else {
			fmt.Fprintf(w, "audit chain BROKEN at seq %d: %s (%d records verified before it)\n", out.Error.Seq, out.Error.Reason, out.Records)
		}
	}); err != nil {
		return err
	}
	if !out.OK {
		return fmt.Errorf("%w at seq %d", errAuditBroken, out.Error.Seq)
	}
	return nil
}

func (c *cli) backup(args []string) error {
	var force bool
	pos, err := c.parse("backup", args, 1, func(fs *flag.FlagSet) { fs.BoolVar(&force, "force", false, "overwrite FILE") })
	if err != nil {
		return err
	}
	dst := pos[0]
	if _, err := os.Lstat(dst); err == nil && !force {
		return fmt.Errorf("backup: %s exists (use -force to overwrite)", dst)
	}
	res, err := c.do(http.MethodGet, "/v1/backup", nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("backup: HTTP %d", res.StatusCode)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".qrngctl-backup-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), res.Body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: transfer failed after %d bytes: %w", n, err)
	}
	if want := res.Trailer.Get(admin.TrailerSHA256); want == "" || want != hex.EncodeToString(h.Sum(nil)) {
		return fmt.Errorf("backup: checksum mismatch or missing (%d bytes received); the copy is incomplete", n)
	}
	if err := checkBolt(tmp.Name()); err != nil {
		return fmt.Errorf("backup: the copy does not check out: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	out := map[string]any{"file": dst, "bytes": n, "sha256": hex.EncodeToString(h.Sum(nil))}
	return c.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "backup written to %s (%d bytes, sha256 %s); bbolt consistency check passed\n", dst, n, out["sha256"])
	})
}

// checkBolt opens path read-only and runs bbolt's consistency check.
func checkBolt(path string) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		var first error
		for err := range tx.Check() {
			if first == nil {
				first = err
			}
		}
		return first
	})
}
