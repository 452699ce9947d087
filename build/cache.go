package build

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// cache maps a step's key (its parent's key, the instruction as
// expanded, the build args in effect and the content of the files it
// reads) to the image the step produced. It lives in a bbolt file so it
// survives daemon restarts; an entry whose image was removed since is a
// miss.
type cache struct {
	db *bolt.DB
}

var stepsBucket = []byte("steps")

func openCache(path string) (*cache, error) {
	c, err := openCacheOnce(path)
	if err != nil && !errors.Is(err, bolterrors.ErrTimeout) {
		// Written without fsync, the file may not survive a crash: the
		// cache is only a cache, start a new one.
		if rerr := os.Remove(path); rerr == nil {
			return openCacheOnce(path)
		}
	}
	return c, err
}

func openCacheOnce(path string) (*cache, error) {
	// No fsync: an entry lost in a crash is only a cache miss, and a
	// build's steps must not wait for the disk.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: true, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("open build cache %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(stepsBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open build cache %s: %w", path, err)
	}
	return &cache{db: db}, nil
}

func (c *cache) get(key string) string {
	var id string
	_ = c.db.View(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(stepsBucket).Get([]byte(key)))
		return nil
	})
	return id
}

func (c *cache) put(key, id string) error {
	return c.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(stepsBucket).Put([]byte(key), []byte(id))
	})
}

func (c *cache) close() error { return c.db.Close() }

// prune deletes the entries drop chooses (given a key and its image id)
// and returns their keys. drop runs outside the write transaction.
func (c *cache) prune(drop func(key, id string) bool) ([]string, error) {
	var keys []string
	err := c.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(stepsBucket).ForEach(func(k, v []byte) error {
			if drop(string(k), string(v)) {
				keys = append(keys, string(k))
			}
			return nil
		})
	})
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	err = c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(stepsBucket)
		for _, k := range keys {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("prune build cache: %w", err)
	}
	return keys, nil
}

// stepKey chains a step onto its parent's key: every part is hashed in
// order, so a change anywhere above a step changes its key.
func stepKey(parent string, parts ...any) string {
	h := sha256.New()
	h.Write([]byte(parent))
	h.Write([]byte{0})
	b, _ := json.Marshal(parts)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}
