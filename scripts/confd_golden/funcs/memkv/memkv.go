// Package memkv restates the behaviour of confd's key/value store (github.com/kelseyhightower/memkv)
// so that Go prints its types under the same names (memkv.KVPair, memkv.KVPairs).
package memkv

import (
	"errors"
	"path"
	"sort"
	"strings"
)

type KVPair struct {
	Key   string
	Value string
}

type KVPairs []KVPair

func (ks KVPairs) Len() int           { return len(ks) }
func (ks KVPairs) Less(i, j int) bool { return ks[i].Key < ks[j].Key }
func (ks KVPairs) Swap(i, j int)      { ks[i], ks[j] = ks[j], ks[i] }

type Store struct{ m map[string]KVPair }

func New(values map[string]string) Store {
	s := Store{m: map[string]KVPair{}}
	for k, v := range values {
		s.m[k] = KVPair{k, v}
	}
	return s
}

func (s Store) Exists(key string) bool { _, ok := s.m[key]; return ok }

func (s Store) Get(key string) (KVPair, error) {
	kv, ok := s.m[key]
	if !ok {
		return kv, errors.New("key does not exist: " + key)
	}
	return kv, nil
}

func (s Store) GetValue(key string, v ...string) (string, error) {
	kv, err := s.Get(key)
	if err != nil {
		if len(v) > 0 {
			return v[0], nil
		}
		return "", err
	}
	return kv.Value, nil
}

func (s Store) GetAll(pattern string) (KVPairs, error) {
	ks := make(KVPairs, 0)
	for _, kv := range s.m {
		m, err := path.Match(pattern, kv.Key)
		if err != nil {
			return nil, err
		}
		if m {
			ks = append(ks, kv)
		}
	}
	sort.Sort(ks)
	return ks, nil
}

func (s Store) GetAllValues(pattern string) ([]string, error) {
	vs := make([]string, 0)
	ks, err := s.GetAll(pattern)
	if err != nil {
		return vs, err
	}
	for _, kv := range ks {
		vs = append(vs, kv.Value)
	}
	sort.Strings(vs)
	return vs, nil
}

func terms(p string) []string { return strings.Split(path.Clean(p), "/") }

func hasPrefix(prefix, test []string) bool {
	if len(test) < len(prefix) {
		return false
	}
	for i := range prefix {
		if prefix[i] != test[i] {
			return false
		}
	}
	return true
}

func sorted(m map[string]bool) []string {
	vs := make([]string, 0, len(m))
	for k := range m {
		vs = append(vs, k)
	}
	sort.Strings(vs)
	return vs
}

func (s Store) List(filePath string) []string {
	m := map[string]bool{}
	prefix := terms(filePath)
	for _, kv := range s.m {
		if kv.Key == filePath {
			m[path.Base(kv.Key)] = true
			continue
		}
		if hasPrefix(prefix, terms(path.Dir(kv.Key))) {
			rest := strings.TrimPrefix(strings.TrimPrefix(kv.Key, filePath), "/")
			m[strings.Split(rest, "/")[0]] = true
		}
	}
	return sorted(m)
}

func (s Store) ListDir(filePath string) []string {
	m := map[string]bool{}
	prefix := terms(filePath)
	for _, kv := range s.m {
		if strings.HasPrefix(kv.Key, filePath) {
			items := terms(path.Dir(kv.Key))
			if hasPrefix(prefix, items) && len(items) > len(prefix) {
				m[items[len(prefix)]] = true
			}
		}
	}
	return sorted(m)
}
