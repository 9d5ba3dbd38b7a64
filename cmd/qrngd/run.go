package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/drivers/osrng"
	_ "github.com/qrngd/qrngd/drivers/serialrng" // kind "serial"
	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway"
	"github.com/qrngd/qrngd/gateway/admin"
	"github.com/qrngd/qrngd/gateway/auth"
	"github.com/qrngd/qrngd/gateway/mcp"
	"github.com/qrngd/qrngd/store"
	"github.com/qrngd/qrngd/store/bolt"
	"github.com/qrngd/qrngd/systemd"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

// usageError is a bad command line (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// Test seams.
var (
	// onListen is called with the bound address once the server listens.
	onListen = func(net.Addr) {}
	// readyPoll is how often the daemon checks for its first healthy source.
	readyPoll = 100 * time.Millisecond
)

// run is the whole daemon; main only adds signals and the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("qrngd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "configuration `FILE` (YAML)")
	listen := fs.String("listen", "", "HTTP listen `ADDR` (host:port); overrides the file")
	dataDir := fs.String("data-dir", "", "state `DIR`; overrides the file")
	listDevices := fs.Bool("list-devices", false, "list the QRNG devices present and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	switch {
	case *showVersion:
		_, err := fmt.Fprintf(stdout, "qrngd %s\n", buildVersion())
		return err
	case *listDevices:
		return printDevices(ctx, stdout)
	case *configFile == "":
		return &usageError{"-config FILE is required"}
	}

	cfg, err := LoadConfig(*configFile)
	if err != nil {
		return err
	}
	if *listen != "" {
		if err := checkListen(*listen); err != nil {
			return &usageError{"flag -listen: " + err.Error()}
		}
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	return serve(ctx, cfg, log)
}

// printDevices prints what every registered driver discovers.
func printDevices(ctx context.Context, w io.Writer) error {
	drivers.Freeze()
	devs, derr := drivers.Discover(ctx)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tVID:PID\tSERIAL\tPATH\tMODEL")
	for _, d := range devs {
		id := "-"
		if d.VendorID != 0 || d.ProductID != 0 {
			id = fmt.Sprintf("%04x:%04x", d.VendorID, d.ProductID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Kind, id, dash(d.Serial), dash(d.Path), dash(d.Model))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(devs) == 0 {
		fmt.Fprintf(w, "no devices found (drivers: %v)\n", drivers.Kinds())
	}
	return derr
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Background tasks' intervals (test seams).
var (
	pruneInterval = 10 * time.Minute // auth.Service.Run: expired revocations and families
	sweepInterval = time.Minute      // mcp.Server.Sweep: idle rate-limit buckets
)

// serve opens the sources, runs the engine, opens the store, and serves HTTP
// (with the token issuer and the MCP endpoint) and the admin socket until ctx
// is done; then it drains HTTP, stops the background tasks, closes the store,
// stops the engine and zeroizes it.
func serve(ctx context.Context, cfg *Config, log *slog.Logger) error {
	log = log.With("mode", cfg.Mode)
	if cfg.Auth.Disabled {
		// The config loader refuses this in production.
		log.Warn("authentication is disabled (auth.disabled: true, dev only): every /v1 route is open and /mcp is not served")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	sd, err := systemd.New(&systemd.Options{Logger: log})
	if err != nil {
		return err
	}

	// Sources open first: a driver's parameter error is a configuration
	// error, reported before anything else starts.
	srcs, err := openSources(ctx, cfg, log)
	if err != nil {
		return err
	}
	added := 0 // sources [0, added) belong to the engine, which closes them
	defer func() {
		for _, s := range srcs[added:] {
			_ = s.Close()
		}
	}()

	// The OS RNG is handed to the engine only under policy os, and its use is
	// a metric either way (qrng_osrng_bytes_total).
	osr := &osrng.Reader{}
	var osReader io.Reader
	if cfg.Pool.Policy == entropy.PolicyOS {
		osReader = osr
	}
	eng, err := entropy.New(&entropy.Options{
		Policy:            cfg.Pool.Policy,
		MinHealthySources: cfg.Pool.MinHealthySources,
		PoolCapacity:      cfg.Pool.CapacityBytes,
		ReseedInterval:    cfg.Pool.ReseedInterval,
		FullWait:          cfg.Pool.FullWait,
		OSRNG:             osReader,
		Logger:            log.With("component", "entropy"),
	})
	if err != nil {
		if errors.Is(err, entropy.ErrInvalidConfig) {
			return &ConfigError{File: cfg.file, Path: "pool", Reason: err.Error()}
		}
		return fmt.Errorf("entropy engine: %w", err)
	}
	engineClosed := false
	defer func() {
		if !engineClosed {
			_ = eng.Close()
		}
	}()

	for _, src := range srcs {
		hc := src.sc.Health
		if err := eng.AddSource(src.Source, &hc); err != nil {
			if errors.Is(err, entropy.ErrInvalidConfig) {
				return &ConfigError{File: cfg.file, Line: src.sc.line, Path: fmt.Sprintf("sources[%d]", src.sc.index), Reason: err.Error()}
			}
			return fmt.Errorf("source %q: %w", src.sc.Spec.Name, err)
		}
		added++
	}

	// The engine starts now, before the store: salts, API-key secrets,
	// client IDs, kids and signing-key seeds come from the pool. It outlives
	// the signal context so that HTTP drains first.
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Run(engCtx) }()
	engineWaited := false
	defer func() { // early returns: stop the engine before Close
		if !engineWaited {
			stopEngine()
			<-engDone
		}
	}()

	// The listener is bound before the issuer is built: without auth.issuer
	// the issuer is this bound address.
	ln, err := listener(cfg.Listen, log)
	if err != nil {
		return err
	}
	defer ln.Close() // early returns; a served listener is closed by Shutdown
	issuer := cfg.Auth.Issuer
	if issuer == "" {
		issuer = "http://" + ln.Addr().String()
	}

	db, err := bolt.Open(cfg.DataDir, &bolt.Options{
		Rand:   auth.NewEntropyReader(eng, entropy.ModeFull, 5*time.Second),
		Logger: log.With("component", "store"),
	})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	dbClosed := false
	defer func() {
		if !dbClosed {
			_ = db.Close()
		}
	}()
	if cfg.Mode == modeProduction {
		if err := auth.CheckProduction(ctx, db.Users(), cfg.Auth.plaintext); err != nil {
			if !errors.Is(err, auth.ErrProduction) {
				return err
			}
			ce := &ConfigError{File: cfg.file, Path: "mode", Reason: err.Error()}
			if len(cfg.Auth.plaintext) > 0 {
				ce.Line, ce.Path = cfg.Auth.plaintextLine, cfg.Auth.plaintext[0]
			}
			return ce
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "qrng", Subsystem: "osrng", Name: "bytes_total",
			Help: "Bytes read from the OS RNG under policy os (degraded output).",
		}, func() float64 { return float64(osr.Bytes()) }))

	gwOpts := &gateway.Options{
		Entropy:          eng,
		Logger:           log.With("component", "gateway"),
		Version:          buildVersion(),
		Registry:         reg,
		MaxRequestBytes:  cfg.HTTP.MaxBodyBytes,
		MaxInFlightBytes: cfg.HTTP.MaxInFlightBytes,
		LogErrorsOnly:    cfg.HTTP.LogRequests == "errors",
		FullWait:         cfg.Pool.FullWait,
		RetryAfter:       time.Second,
	}
	// streamsCtx ends the MCP SSE GET streams when the HTTP server shuts
	// down: they last as long as their session, and Shutdown would wait
	// for them until shutdown_timeout (cutting in-flight requests with them).
	streamsCtx, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	var svc *auth.Service
	var mcpSrv *mcp.Server
	if !cfg.Auth.Disabled {
		if svc, mcpSrv, err = buildAuth(cfg, issuer, eng, db, log); err != nil {
			return err
		}
		gwOpts.Authorizer = svc
		gwOpts.Limit = svc.LimitAPI
		gwOpts.Features = []string{"auth", "mcp"}
		gwOpts.Routes = append(svc.Routes(), mcpRoutes(mcpSrv, cfg.MCP.MaxBodyBytes, streamsCtx)...)
	}
	gw, err := gateway.New(gwOpts)
	if err != nil {
		return err
	}

	admOpts := &admin.Options{Store: db, Backup: db, Status: eng, Version: buildVersion(), Logger: log.With("component", "admin")}
	if svc != nil {
		admOpts.Tokens = svc
	}
	adm, err := admin.New(admOpts)
	if err != nil {
		return err
	}
	sockPath := filepath.Join(cfg.DataDir, admin.SocketName)
	admLn, err := admin.Listen(sockPath)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}

	srv := &http.Server{
		Handler:           gw,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(endStreams)

	// Background tasks stop after HTTP has drained and before the store closes.
	bgCtx, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	var bg sync.WaitGroup
	admDone := make(chan error, 1)
	go func() { admDone <- adm.ServeListener(bgCtx, admLn) }()
	if svc != nil {
		bg.Go(func() { _ = svc.Run(bgCtx, pruneInterval) })
		bg.Go(func() { sweep(bgCtx, mcpSrv) })
		if cfg.Mode == modeDev {
			bg.Go(func() { seedUsers(bgCtx, cfg, db.Users(), log) })
		}
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()
	log.Info("qrngd started", "version", buildVersion(), "listen", ln.Addr().String(), "data_dir", cfg.DataDir,
		"policy", cfg.Pool.Policy, "sources", len(cfg.Sources), "issuer", issuer, "auth", svc != nil, "admin_socket", sockPath)
	onListen(ln.Addr())

	notifyCtx, stopNotify := context.WithCancel(ctx)
	defer stopNotify()
	var notifiers sync.WaitGroup
	notifiers.Go(func() { notifyReady(notifyCtx, sd, eng, log) })
	notifiers.Go(func() { sd.RunWatchdog(notifyCtx, progressed(eng), nil) })

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "cause", context.Cause(ctx).Error())
	case err := <-engDone:
		runErr = errors.New("entropy engine stopped unexpectedly")
		if err != nil {
			runErr = fmt.Errorf("entropy engine stopped: %w", err)
		}
		engDone <- err
	case err := <-srvDone:
		runErr = fmt.Errorf("http server: %w", err)
		srvDone <- err
	case err := <-admDone:
		runErr = fmt.Errorf("admin socket: %w", err)
		admDone <- err
	}
	stopNotify()
	notifiers.Wait()
	sd.Stopping()

	shCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil {
		log.Warn("HTTP drain incomplete; closing connections", "err", err)
		_ = srv.Close()
	}
	if err := <-srvDone; err != nil && !errors.Is(err, http.ErrServerClosed) && runErr == nil {
		runErr = fmt.Errorf("http server: %w", err)
	}
	stopBG()
	bg.Wait()
	if err := <-admDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("admin socket: %w", err)
	}
	dbClosed = true
	if err := db.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("store close: %w", err)
	}
	stopEngine()
	engineWaited = true
	if err := <-engDone; err != nil && !errors.Is(err, context.Canceled) && runErr == nil {
		runErr = fmt.Errorf("entropy engine: %w", err)
	}
	engineClosed = true
	if err := eng.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("entropy engine close: %w", err)
	}
	if runErr != nil {
		log.Error("qrngd stopped", "err", runErr)
		return runErr
	}
	log.Info("qrngd stopped")
	return nil
}

// buildAuth makes the token issuer and the MCP endpoint over the store.
func buildAuth(cfg *Config, issuer string, eng *entropy.Engine, db *bolt.DB, log *slog.Logger) (*auth.Service, *mcp.Server, error) {
	mcpURL := issuer + "/mcp"
	svc, err := auth.New(&auth.Options{
		Issuer:              issuer,
		MCPResource:         mcpURL,
		ResourceMetadataURL: issuer + "/.well-known/oauth-protected-resource/mcp",
		Entropy:             eng,
		Store:               db,
		Logger:              log.With("component", "auth"),
		Alg:                 cfg.Auth.Alg,
		AccessTTL:           cfg.Auth.AccessTTL,
		RefreshTTL:          cfg.Auth.RefreshTTL,
		Leeway:              cfg.Auth.Leeway,
		KeyRotation:         cfg.Auth.KeyRotation,
		VerifiedCache:       cfg.Auth.VerifiedCache,
		Limits:              cfg.Auth.Limits,
	})
	if err != nil {
		if errors.Is(err, auth.ErrInvalidOptions) {
			return nil, nil, &ConfigError{File: cfg.file, Path: "auth", Reason: err.Error()}
		}
		return nil, nil, err
	}
	srv, err := mcp.New(&mcp.Options{
		Entropy:                  eng,
		Verifier:                 svc.MCPVerifier(),
		Audit:                    mcpAudit{db.Audit()},
		Logger:                   log.With("component", "mcp"),
		ResourceURL:              mcpURL,
		IssuerURL:                issuer,
		BridgeAudiences:          []string{svc.Resources()[0]},
		AllowedOrigins:           cfg.MCP.AllowedOrigins,
		Stateless:                cfg.MCP.Stateless,
		JSONResponse:             cfg.MCP.JSONResponse,
		SessionIdleTimeout:       cfg.MCP.SessionIdleTimeout,
		MaxBodyBytes:             cfg.MCP.MaxBodyBytes,
		ClockSkew:                cfg.Auth.Leeway,
		DisableLoopbackHostCheck: cfg.MCP.DisableLoopbackHostCheck,
		RateLimit:                cfg.MCP.ToolLimit,
		SessionRateLimit:         cfg.MCP.SessionLimit,
		Version:                  buildVersion(),
	})
	if err != nil {
		if errors.Is(err, mcp.ErrInvalidOptions) {
			return nil, nil, &ConfigError{File: cfg.file, Path: "mcp", Reason: err.Error()}
		}
		return nil, nil, err
	}
	return svc, srv, nil
}

// mcpRoutes mounts the MCP endpoint as gateway/mcp's doc says. MCP does its
// own auth (Scope ""), bounds its own bodies (maxBody, above the gateway's
// limit, which would otherwise cut /mcp requests short), and the Streamable
// HTTP GET stream is exempt from the server's read and write timeouts; it
// ends when streams is done (the server shutting down).
func mcpRoutes(srv *mcp.Server, maxBody int64, streams context.Context) []gateway.Route {
	h := srv.Handler()
	stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			// An SSE stream lives as long as the session; the session's
			// idle timeout and the client bound it, not the server's
			// WriteTimeout, nor ReadTimeout (whose expiry would cancel the
			// request context). A GET has no body to read.
			rc := http.NewResponseController(w)
			_ = rc.SetWriteDeadline(time.Time{})
			_ = rc.SetReadDeadline(time.Time{})
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			defer context.AfterFunc(streams, cancel)()
			r = r.WithContext(ctx)
		}
		h.ServeHTTP(w, r)
	})
	return []gateway.Route{
		{Methods: []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodOptions}, Path: "/mcp", Handler: stream, MaxBodyBytes: maxBody},
		{Methods: []string{http.MethodGet, http.MethodOptions}, Path: "/mcp/tools", Handler: h},
		{Methods: []string{http.MethodPost, http.MethodOptions}, Path: "/mcp/execute", Handler: h, MaxBodyBytes: maxBody},
		{Methods: []string{http.MethodGet}, Path: "/.well-known/oauth-protected-resource/mcp", Handler: h},
		{Methods: []string{http.MethodGet}, Path: "/.well-known/oauth-protected-resource", Handler: h},
	}
}

// sweep drops the MCP server's idle rate-limit buckets every sweepInterval.
func sweep(ctx context.Context, srv *mcp.Server) {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			srv.Sweep()
		}
	}
}

// seedUsers creates the dev-only demo user and the auth.users entries. Their
// argon2id salts come from the pool, so it retries until the pool serves.
func seedUsers(ctx context.Context, cfg *Config, users store.Users, log *slog.Logger) {
	seed := func() error {
		if err := auth.SeedDemo(ctx, users); err != nil {
			return err
		}
		for _, u := range cfg.Auth.Users {
			nu := store.User{Username: u.Username, Scopes: u.Scopes}
			err := users.Create(ctx, nu, u.Password)
			if errors.Is(err, store.ErrExists) {
				if err = users.Update(ctx, nu); err == nil {
					// Only a changed password is set again: SetPassword
					// ends the user's sessions, which a restart should not.
					if _, aerr := users.Authenticate(ctx, u.Username, u.Password); aerr != nil {
						err = users.SetPassword(ctx, u.Username, u.Password)
					}
				}
			}
			if err != nil {
				return fmt.Errorf("seed user %q: %w", u.Username, err)
			}
		}
		return nil
	}
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for n := 0; ; n++ {
		err := seed()
		if err == nil {
			log.Info("dev users seeded", "users", 1+len(cfg.Auth.Users), "demo", auth.DemoUsername)
			return
		}
		if n == 0 {
			log.Warn("cannot seed dev users yet; retrying until the pool serves", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// mcpAudit records MCP tool calls in the store's hash-chained audit log.
type mcpAudit struct{ a store.Audit }

func (m mcpAudit) Append(ctx context.Context, r mcp.AuditRecord) error {
	f := map[string]string{
		"tool":           r.Tool,
		"transport":      r.Transport,
		"correlation_id": r.CorrelationID,
		"args_sha256":    r.ArgsSHA256,
		"result_bytes":   strconv.Itoa(r.ResultBytes),
		"duration_ns":    strconv.FormatInt(int64(r.Duration), 10),
		"outcome":        r.Outcome,
		"mode":           string(r.Provenance.Mode),
		"sources":        strings.Join(r.Provenance.Sources, ","),
		"degraded":       strconv.FormatBool(r.Provenance.Degraded),
	}
	for k, v := range map[string]string{"client_id": r.ClientID, "session_id": r.SessionID, "error": r.Error} {
		if v != "" {
			f[k] = v
		}
	}
	_, err := m.a.Append(ctx, store.AuditEvent{Type: "mcp.tool_call", Subject: r.Subject, Fields: f})
	return err
}

// openedSource is a source ready to join the engine.
type openedSource struct {
	entropy.Source
	sc SourceConfig
}

// openSources opens every configured source. A driver's parameter error is a
// configuration error. A source that fails to open is logged; production
// refuses to start when fewer sources opened than pool.min_healthy_sources
// (at least one) — the pool could never become ready — while dev carries on
// so that the operator sees the failure on /readyz and /health.
func openSources(ctx context.Context, cfg *Config, log *slog.Logger) ([]openedSource, error) {
	drivers.Freeze()
	var out []openedSource
	fail := func(err error) ([]openedSource, error) {
		for _, s := range out {
			_ = s.Close()
		}
		return nil, err
	}
	for _, sc := range cfg.Sources {
		sl := log.With("source", sc.Spec.Name, "kind", sc.Spec.Kind)
		src, err := drivers.Open(ctx, sc.Spec)
		if err != nil {
			if ce := cfg.paramError(sc, err); ce != err {
				return fail(ce)
			}
			sl.Error("source failed to open", "err", err)
			continue
		}
		info := src.Info()
		sl.Info("source opened", "vendor", info.Vendor, "model", info.Model, "serial", info.Serial,
			"min_entropy_per_sample", info.MinEntropy, "sample_bits", info.SampleBits)
		out = append(out, openedSource{Source: src, sc: sc})
	}
	if need := max(1, cfg.Pool.MinHealthySources); len(out) < need {
		if cfg.Mode == modeProduction {
			return fail(fmt.Errorf("only %d of %d sources opened; the pool needs %d", len(out), len(cfg.Sources), need))
		}
		log.Error("too few sources opened; the pool will not become ready", "opened", len(out), "need", need)
	}
	return out, nil
}

// listener uses a socket passed by systemd socket activation, else binds addr.
func listener(addr string, log *slog.Logger) (net.Listener, error) {
	ls, err := systemd.Listeners()
	if err != nil {
		return nil, err
	}
	if len(ls) > 0 {
		for _, extra := range ls[1:] {
			_ = extra.Close()
		}
		log.Info("using the socket passed by systemd; listen address ignored", "addr", ls[0].Addr().String())
		return ls[0], nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return ln, nil
}

func statusLine(st entropy.Status) string {
	return fmt.Sprintf("pool ready=%t degraded=%t level=%d/%d bytes, %d/%d sources healthy, policy %s",
		st.Pool.Ready, st.Pool.Degraded, st.Pool.LevelBytes, st.Pool.CapacityBytes,
		st.Pool.HealthySources, len(st.Sources), st.Pool.Policy)
}

// notifyReady sends READY=1 once at least one source has passed start-up
// testing (the listener is already bound), then refreshes STATUS=.
func notifyReady(ctx context.Context, sd *systemd.Daemon, eng *entropy.Engine, log *slog.Logger) {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	ready := false
	for n := 0; ; n++ {
		st := eng.Status()
		switch {
		case !ready && st.Pool.HealthySources >= 1:
			ready = true
			sd.Ready(statusLine(st))
			log.Info("ready", "status", statusLine(st))
		case ready && n%100 == 0:
			sd.Status(statusLine(st))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// statuser is what the watchdog predicate needs of the engine.
type statuser interface{ Status() entropy.Status }

// progressed is the watchdog's health predicate: it reports false — and the
// ping is withheld, so systemd restarts qrngd — only when the entropy loop
// looks stalled: some source is in start-up testing (so it must be reading),
// no source read a sample since the last call, and the pool cannot serve
// from its sources (not ready, or ready only on the OS RNG under policy os).
//
// An unhealthy pool alone is no stall: sources that are disabled,
// quarantined or disconnected are waiting by design, and a restart would
// wipe the "disabled until an operator resets it" verdict (health state is
// in memory) and put a failing source back into service unattended. Under
// policy os the degraded pool is always "ready", which must not hide a
// stall either. A loop that hangs while the pool is ready and full is not
// visible in Status; that needs a heartbeat from the engine.
func progressed(eng statuser) func() bool {
	var last uint64
	return func() bool {
		st := eng.Status()
		var n uint64
		starting := false
		for _, s := range st.Sources {
			n += s.Samples
			starting = starting || s.State == entropy.StateStartup
		}
		moved := n != last
		last = n
		return moved || (st.Pool.Ready && !st.Pool.Degraded) || !starting
	}
}
