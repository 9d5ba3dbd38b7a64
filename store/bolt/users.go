package bolt

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/qrngd/qrngd/store"
)

type userDoc struct {
	store.User
	Hash string `json:"hash"`
}

type users struct{ db *DB }

func getUser(tx *bbolt.Tx, name string) (userDoc, bool, error) {
	v := tx.Bucket(bktUsers).Get([]byte(name))
	if v == nil {
		return userDoc{}, false, nil
	}
	var d userDoc
	if err := json.Unmarshal(v, &d); err != nil { // json copies out of the mmap
		return userDoc{}, false, fmt.Errorf("user %q: decode: %w", name, err)
	}
	return d, true, nil
}

func putJSON(b *bbolt.Bucket, key string, v any) error {
	enc, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), enc)
}

func tenantExists(tx *bbolt.Tx, id string) bool { return tx.Bucket(bktTenants).Get([]byte(id)) != nil }

func (s users) Create(ctx context.Context, u store.User, password string) error {
	if err := store.ValidateUser(u); err != nil {
		return errf("create user: %w", err)
	}
	if err := store.ValidatePassword(password); err != nil {
		return errf("create user %q: %w", u.Username, err)
	}
	hash, err := s.db.hasher.Hash(ctx, password)
	if err != nil {
		return errf("create user %q: %w", u.Username, err)
	}
	return s.db.update(ctx, func(tx *bbolt.Tx) error {
		if _, ok, err := getUser(tx, u.Username); err != nil || ok {
			if err == nil {
				err = fmt.Errorf("user %q: %w", u.Username, store.ErrExists)
			}
			return errf("%w", err)
		}
		if u.Tenant != "" && !tenantExists(tx, u.Tenant) {
			return errf("user %q: tenant %q: %w", u.Username, u.Tenant, store.ErrNotFound)
		}
		now := s.db.now().UTC()
		u.Created, u.Updated, u.PasswordChanged = now, now, time.Time{}
		return putJSON(tx.Bucket(bktUsers), u.Username, userDoc{User: u, Hash: hash})
	})
}

func (s users) Get(ctx context.Context, username string) (store.User, error) {
	var d userDoc
	err := s.db.view(ctx, func(tx *bbolt.Tx) error {
		var ok bool
		var err error
		if d, ok, err = getUser(tx, username); err == nil && !ok {
			err = fmt.Errorf("user %q: %w", username, store.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return store.User{}, errf("%w", err)
	}
	return d.User, nil
}

func (s users) List(ctx context.Context) ([]store.User, error) {
	out := []store.User{}
	err := s.db.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bktUsers).ForEach(func(k, v []byte) error {
			var d userDoc
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("user %q: decode: %w", k, err)
			}
			out = append(out, d.User)
			return nil
		})
	})
	if err != nil {
		return nil, errf("list users: %w", err)
	}
	return out, nil
}

func (s users) modify(ctx context.Context, username string, fn func(*bbolt.Tx, *userDoc) (bool, error)) error {
	return s.db.update(ctx, func(tx *bbolt.Tx) error {
		d, ok, err := getUser(tx, username)
		if err != nil {
			return errf("%w", err)
		}
		if !ok {
			return errf("user %q: %w", username, store.ErrNotFound)
		}
		write, err := fn(tx, &d)
		if err != nil || !write {
			return err
		}
		d.Updated = s.db.now().UTC()
		return putJSON(tx.Bucket(bktUsers), username, d)
	})
}

func (s users) Update(ctx context.Context, u store.User) error {
	if err := store.ValidateUser(u); err != nil {
		return errf("update user: %w", err)
	}
	return s.modify(ctx, u.Username, func(tx *bbolt.Tx, d *userDoc) (bool, error) {
		if u.Tenant != "" && !tenantExists(tx, u.Tenant) {
			return false, errf("user %q: tenant %q: %w", u.Username, u.Tenant, store.ErrNotFound)
		}
		d.Tenant, d.Scopes, d.Disabled = u.Tenant, store.Clone(u.Scopes), u.Disabled
		return true, nil
	})
}

func (s users) SetPassword(ctx context.Context, username, password string) error {
	if err := store.ValidatePassword(password); err != nil {
		return errf("set password of %q: %w", username, err)
	}
	if _, err := s.Get(ctx, username); err != nil {
		return err
	}
	hash, err := s.db.hasher.Hash(ctx, password)
	if err != nil {
		return errf("set password of %q: %w", username, err)
	}
	return s.modify(ctx, username, func(tx *bbolt.Tx, d *userDoc) (bool, error) {
		d.Hash = hash
		d.PasswordChanged = s.db.now().UTC()
		return true, nil
	})
}

func (s users) Delete(ctx context.Context, username string) error {
	return s.db.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bktUsers)
		if b.Get([]byte(username)) == nil {
			return errf("user %q: %w", username, store.ErrNotFound)
		}
		return b.Delete([]byte(username))
	})
}

func (s users) Authenticate(ctx context.Context, username, password string) (store.User, error) {
	var d userDoc
	var ok bool
	err := s.db.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		d, ok, err = getUser(tx, username)
		return err
	})
	if err != nil {
		return store.User{}, errf("authenticate: %w", err)
	}
	rehash, err := s.db.hasher.Authenticate(ctx, ok, d.Hash, password, d.Disabled)
	if err != nil {
		return store.User{}, authErr(username, err)
	}
	if rehash {
		old := d.Hash
		if h, err := s.db.hasher.Hash(ctx, password); err == nil {
			err = s.modify(ctx, username, func(tx *bbolt.Tx, d *userDoc) (bool, error) {
				if d.Hash != old {
					return false, nil // changed meanwhile; keep the newer hash
				}
				d.Hash = h
				return true, nil
			})
			if err != nil {
				s.db.log.Warn("store: re-hashing password failed", "user", username, "err", err)
			}
		}
	}
	return d.User, nil
}

// ---- tenants

type tenants struct{ db *DB }

func (s tenants) Create(ctx context.Context, t store.Tenant) error {
	if err := store.ValidateTenantID(t.ID); err != nil {
		return errf("create tenant: %w", err)
	}
	if err := store.ValidateText("tenant name", t.Name, store.MaxNameBytes); err != nil {
		return errf("create tenant: %w", err)
	}
	return s.db.update(ctx, func(tx *bbolt.Tx) error {
		if tenantExists(tx, t.ID) {
			return errf("tenant %q: %w", t.ID, store.ErrExists)
		}
		t.Created = s.db.now().UTC()
		return putJSON(tx.Bucket(bktTenants), t.ID, t)
	})
}

func (s tenants) Get(ctx context.Context, id string) (store.Tenant, error) {
	var t store.Tenant
	err := s.db.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bktTenants).Get([]byte(id))
		if v == nil {
			return errf("tenant %q: %w", id, store.ErrNotFound)
		}
		return json.Unmarshal(v, &t)
	})
	return t, err
}

func (s tenants) List(ctx context.Context) ([]store.Tenant, error) {
	out := []store.Tenant{}
	err := s.db.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bktTenants).ForEach(func(k, v []byte) error {
			var t store.Tenant
			if err := json.Unmarshal(v, &t); err != nil {
				return errf("tenant %q: decode: %w", k, err)
			}
			out = append(out, t)
			return nil
		})
	})
	return out, err
}

// ---- API keys

type apikeys struct{ db *DB }

type apiKeyDoc struct {
	store.APIKey
	SecretHash string `json:"secret_sha256"` // hex
}

func getKey(tx *bbolt.Tx, id string) (apiKeyDoc, bool, error) {
	v := tx.Bucket(bktAPIKeys).Get([]byte(id))
	if v == nil {
		return apiKeyDoc{}, false, nil
	}
	var d apiKeyDoc
	if err := json.Unmarshal(v, &d); err != nil {
		return apiKeyDoc{}, false, fmt.Errorf("key %q: decode: %w", id, err)
	}
	return d, true, nil
}

func (s apikeys) Create(ctx context.Context, spec store.APIKeySpec) (store.APIKey, string, error) {
	k, secret, hash, err := store.NewAPIKey(s.db.rand, spec)
	if err != nil {
		return store.APIKey{}, "", errf("create key: %w", err)
	}
	id := k.ClientID
	defer s.db.keys.invalidate(id)
	err = s.db.update(ctx, func(tx *bbolt.Tx) error {
		if !tenantExists(tx, spec.Tenant) {
			return errf("create key: tenant %q: %w", spec.Tenant, store.ErrNotFound)
		}
		if tx.Bucket(bktAPIKeys).Get([]byte(id)) != nil {
			return errf("key %q: %w", id, store.ErrExists)
		}
		k.Created = s.db.now().UTC()
		return putJSON(tx.Bucket(bktAPIKeys), id, apiKeyDoc{APIKey: k, SecretHash: hex.EncodeToString(hash[:])})
	})
	if err != nil {
		return store.APIKey{}, "", err
	}
	return k, secret, nil
}

func (s apikeys) Get(ctx context.Context, clientID string) (store.APIKey, error) {
	var d apiKeyDoc
	err := s.db.view(ctx, func(tx *bbolt.Tx) error {
		var ok bool
		var err error
		if d, ok, err = getKey(tx, clientID); err == nil && !ok {
			err = fmt.Errorf("key %q: %w", clientID, store.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return store.APIKey{}, errf("%w", err)
	}
	return d.APIKey, nil
}

func (s apikeys) List(ctx context.Context, tenant string) ([]store.APIKey, error) {
	out := []store.APIKey{}
	err := s.db.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bktAPIKeys).ForEach(func(k, v []byte) error {
			var d apiKeyDoc
			if err := json.Unmarshal(v, &d); err != nil {
				return errf("key %q: decode: %w", k, err)
			}
			if tenant == "" || d.Tenant == tenant {
				out = append(out, d.APIKey)
			}
			return nil
		})
	})
	return out, err
}

func (s apikeys) Revoke(ctx context.Context, clientID string) error {
	defer s.db.keys.invalidate(clientID) // after the commit
	return s.db.update(ctx, func(tx *bbolt.Tx) error {
		d, ok, err := getKey(tx, clientID)
		if err != nil {
			return errf("%w", err)
		}
		if !ok {
			return errf("key %q: %w", clientID, store.ErrNotFound)
		}
		if d.Revoked {
			return nil
		}
		d.Revoked, d.RevokedAt = true, s.db.now().UTC()
		return putJSON(tx.Bucket(bktAPIKeys), clientID, d)
	})
}

// Authenticate checks secret against the key's stored SHA-256 in constant
// time. The decoded record comes from the key cache (see keyCache) or, on
// a miss, from a read transaction.
func (s apikeys) Authenticate(ctx context.Context, clientID, secret string) (store.APIKey, error) {
	e := s.db.keys.get(clientID)
	if e == nil {
		gen := s.db.keys.generation()
		var d apiKeyDoc
		var ok bool
		err := s.db.view(ctx, func(tx *bbolt.Tx) error {
			var err error
			d, ok, err = getKey(tx, clientID)
			return err
		})
		if err != nil {
			return store.APIKey{}, errf("authenticate client: %w", err)
		}
		if !ok {
			// Same work as a known key, no match; not cached.
			store.SecretMatches(make([]byte, store.SecretHashBytes), secret)
			return store.APIKey{}, errf("authenticate client: %w", store.ErrBadCredentials)
		}
		e = &cachedKey{key: d.APIKey, hash: make([]byte, store.SecretHashBytes)} // zero: never matches
		if b, err := hex.DecodeString(d.SecretHash); err == nil && len(b) == store.SecretHashBytes {
			e.hash = b
		}
		s.db.keys.put(clientID, e, gen)
	} else if err := s.db.check(ctx); err != nil {
		return store.APIKey{}, errf("authenticate client: %w", err)
	}
	if !store.SecretMatches(e.hash, secret) {
		return store.APIKey{}, errf("authenticate client: %w", store.ErrBadCredentials)
	}
	if e.key.Revoked {
		return store.APIKey{}, errf("client %q: %w", clientID, store.ErrRevoked)
	}
	k := e.key
	k.Scopes = store.Clone(k.Scopes)
	return k, nil
}

// authErr wraps an Authenticate failure; a username appears only when the
// password was right (an unknown name may be a mistyped password).
func authErr(username string, err error) error {
	if errors.Is(err, store.ErrBadCredentials) {
		return errf("authenticate: %w", err)
	}
	return errf("authenticate %q: %w", username, err)
}
