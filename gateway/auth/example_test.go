package auth_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway"
	"github.com/qrngd/qrngd/gateway/admin"
	"github.com/qrngd/qrngd/gateway/auth"
	"github.com/qrngd/qrngd/store/bolt"
)

// Example shows how the daemon wires auth: the store draws salts, secrets
// and signing-key seeds from the pool in full-entropy mode; the service
// mounts its routes in the gateway, authorizes /v1, verifies /mcp tokens
// and backs the admin socket.
func Example() {
	var eng *entropy.Engine // the running engine
	ctx := context.Background()
	dataDir := "/var/lib/qrngd"

	db, err := bolt.Open(dataDir, &bolt.Options{Rand: auth.NewEntropyReader(eng, entropy.ModeFull, 5*time.Second)})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	svc, err := auth.New(&auth.Options{
		Issuer:  "https://qrng.example.com",
		Entropy: eng,
		Store:   db,
	})
	if err != nil {
		log.Fatal(err)
	}
	// dev mode: auth.SeedDemo(ctx, db.Users()); production: auth.CheckProduction(ctx, db.Users(), plaintextKeys)
	gw, err := gateway.New(&gateway.Options{Entropy: eng, Authorizer: svc, Routes: svc.Routes()})
	if err != nil {
		log.Fatal(err)
	}
	_ = svc.MCPVerifier() // → gateway/mcp Options.Verifier
	go svc.Run(ctx, 10*time.Minute)
	adm, err := admin.New(&admin.Options{Store: db, Backup: db, Status: eng, Tokens: svc})
	if err != nil {
		log.Fatal(err)
	}
	go adm.Serve(ctx, dataDir+"/"+admin.SocketName)
	log.Fatal(http.ListenAndServe("127.0.0.1:8000", gw))
}
