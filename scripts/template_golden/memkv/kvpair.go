// Package memkv holds the types of github.com/kelseyhightower/memkv that confd's
// templates see, under the same package name, so that %T, %#v and Go's error
// messages print memkv.KVPair and memkv.KVPairs exactly as confd does.
package memkv

// KVPair is one key and its value.
type KVPair struct {
	Key   string
	Value string
}

// KVPairs is what gets returns, sorted by key; a named type, so that confd's
// reverse (a type switch on []KVPair) leaves it as it is.
type KVPairs []KVPair

func (ks KVPairs) Len() int           { return len(ks) }
func (ks KVPairs) Less(i, j int) bool { return ks[i].Key < ks[j].Key }
func (ks KVPairs) Swap(i, j int)      { ks[i], ks[j] = ks[j], ks[i] }
