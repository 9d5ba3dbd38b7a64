package bolt_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/qrngd/qrngd/store"
	"github.com/qrngd/qrngd/store/bolt"
)

func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "qrngd-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	// In qrngd, Rand is the entropy pool; Argon2 nil means RFC 9106 defaults.
	db, err := bolt.Open(dir, &bolt.Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	_ = db.Tenants().Create(ctx, store.Tenant{ID: "acme"})
	key, secret, _ := db.APIKeys().Create(ctx, store.APIKeySpec{Tenant: "acme", Scopes: []string{"random:read"}})
	k, err := db.APIKeys().Authenticate(ctx, key.ClientID, secret)
	fmt.Println(k.Tenant, k.Scopes, err)

	_ = db.Revocations().Revoke(ctx, "jti-123", time.Now().Add(time.Hour)) // durable on return
	revoked, _ := db.Revocations().IsRevoked(ctx, "jti-123")
	fmt.Println("revoked:", revoked)

	_ = db.Refresh().Create(ctx, store.RefreshFamily{ID: "fam-1", Subject: "demo", Current: "rt-1", ExpiresAt: time.Now().Add(24 * time.Hour)})
	_, _ = db.Refresh().Rotate(ctx, "rt-1", "rt-2")
	_, err = db.Refresh().Rotate(ctx, "rt-1", "rt-3") // replayed old token
	fmt.Println("reuse detected:", errors.Is(err, store.ErrReused))

	_, _ = db.Audit().Append(ctx, store.AuditEvent{Type: "token.revoke", Subject: "jti-123"})
	n, err := db.Audit().Verify(ctx)
	fmt.Println("audit records verified:", n, err)
	// Output:
	// acme [random:read] <nil>
	// revoked: true
	// reuse detected: true
	// audit records verified: 1 <nil>
}
