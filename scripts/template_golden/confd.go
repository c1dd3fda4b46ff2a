package main

// confd's template function map (kelseyhightower/confd 0.17 resource/template/
// template_funcs.go plus memkv's store functions), re-implemented over the same Go
// standard library calls so that results keep their Go types (string slices, nil
// slices, append-grown capacities, KVPair structs). datetime, lookupIP*, lookupSRV
// and fileExists depend on the host and the clock: goldens use them only where the
// output cannot (types, nil results of IP literals, time-independent comparisons).

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"templategolden/memkv"
)

// KVPair and KVPairs are memkv's types (package memkv next to this file).
type (
	KVPair  = memkv.KVPair
	KVPairs = memkv.KVPairs
)

type kvByLength []KVPair

func (p kvByLength) Len() int           { return len(p) }
func (p kvByLength) Less(i, j int) bool { return len(p[i].Key) < len(p[j].Key) }
func (p kvByLength) Swap(i, j int)      { p[i], p[j] = p[j], p[i] }

type strByLength []string

func (s strByLength) Len() int           { return len(s) }
func (s strByLength) Less(i, j int) bool { return len(s[i]) < len(s[j]) }
func (s strByLength) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }

type keyError struct{ key string }

func (e *keyError) Error() string { return "key does not exist: " + e.key }

type store map[string]string

func (s store) get(key string) (KVPair, error) {
	v, ok := s[key]
	if !ok {
		return KVPair{}, &keyError{key}
	}
	return KVPair{Key: key, Value: v}, nil
}

func (s store) exists(key string) bool { _, ok := s[key]; return ok }

func (s store) getv(key string, def ...string) (string, error) {
	kv, err := s.get(key)
	if err != nil {
		if len(def) > 0 {
			return def[0], nil
		}
		return "", err
	}
	return kv.Value, nil
}

func (s store) gets(pattern string) (KVPairs, error) {
	found := make(KVPairs, 0)
	for k, v := range s {
		ok, err := path.Match(pattern, k)
		if err != nil {
			return nil, err
		}
		if ok {
			found = append(found, KVPair{Key: k, Value: v})
		}
	}
	if len(found) == 0 {
		return found, nil
	}
	sort.Sort(found)
	return found, nil
}

func (s store) getvs(pattern string) ([]string, error) {
	values := make([]string, 0)
	found, err := s.gets(pattern)
	if err != nil {
		return values, err
	}
	for _, kv := range found {
		values = append(values, kv.Value)
	}
	sort.Strings(values)
	return values, nil
}

// pathTerms splits a cleaned path on "/": "/a/b" -> ["", "a", "b"], "/" -> ["", ""].
func pathTerms(p string) []string { return strings.Split(path.Clean(p), "/") }

func hasPrefixTerms(prefix, test []string) bool {
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

// sortedSet appends the names one by one, as memkv does, so that the capacity is
// memkv's (append-grown), then sorts them.
func sortedSet(set map[string]bool) []string {
	out := make([]string, 0)
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ls: the key itself names its base; otherwise every key whose directory lies at or
// under dir contributes the first component of what follows dir in the key.
func (s store) ls(dir string) []string {
	set := map[string]bool{}
	prefix := pathTerms(dir)
	for k := range s {
		if k == dir {
			set[path.Base(k)] = true
			continue
		}
		if hasPrefixTerms(prefix, pathTerms(path.Dir(k))) {
			rest := strings.TrimPrefix(strings.TrimPrefix(k, dir), "/")
			set[strings.Split(rest, "/")[0]] = true
		}
	}
	return sortedSet(set)
}

// lsdir: keys that start with dir (as a string) and sit at least one directory below
// it contribute the directory component right after dir.
func (s store) lsdir(dir string) []string {
	set := map[string]bool{}
	prefix := pathTerms(dir)
	for k := range s {
		if !strings.HasPrefix(k, dir) {
			continue
		}
		items := pathTerms(path.Dir(k))
		if hasPrefixTerms(prefix, items) && len(items)-len(prefix) >= 1 {
			set[items[len(prefix)]] = true
		}
	}
	return sortedSet(set)
}

func seq(first, last int) []int {
	var out []int
	for i := first; i <= last; i++ {
		out = append(out, i)
	}
	return out
}

func reverse(values interface{}) interface{} {
	switch v := values.(type) {
	case []string:
		for l, r := 0, len(v)-1; l < r; l, r = l+1, r-1 {
			v[l], v[r] = v[r], v[l]
		}
	case []KVPair:
		for l, r := 0, len(v)-1; l < r; l, r = l+1, r-1 {
			v[l], v[r] = v[r], v[l]
		}
	}
	return values
}

func getenv(key string, def ...string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	if len(def) > 0 {
		return def[0]
	}
	return ""
}

func createMap(values ...interface{}) (map[string]interface{}, error) {
	if len(values)%2 != 0 {
		return nil, errors.New("invalid map call")
	}
	m := make(map[string]interface{}, len(values)/2)
	for i := 0; i < len(values); i += 2 {
		k, ok := values[i].(string)
		if !ok {
			return nil, errors.New("map keys must be strings")
		}
		m[k] = values[i+1]
	}
	return m, nil
}

func jsonObject(data string) (map[string]interface{}, error) {
	var m map[string]interface{}
	err := json.Unmarshal([]byte(data), &m)
	return m, err
}

func jsonArray(data string) ([]interface{}, error) {
	var a []interface{}
	err := json.Unmarshal([]byte(data), &a)
	return a, err
}

func base64Decode(data string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(data)
	return string(b), err
}

func lookupIP(host string) []string {
	ips, err := net.LookupIP(host)
	if err != nil {
		return nil
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	sort.Strings(out)
	return out
}

func lookupFiltered(host, sep string) []string {
	var out []string
	for _, ip := range lookupIP(host) {
		if strings.Contains(ip, sep) {
			out = append(out, ip)
		}
	}
	return out
}

type srvByText []*net.SRV

func (s srvByText) Len() int      { return len(s) }
func (s srvByText) Swap(i, j int) { s[i], s[j] = s[j], s[i] }
func (s srvByText) Less(i, j int) bool {
	a := fmt.Sprintf("%s%d%d%d", s[i].Target, s[i].Port, s[i].Priority, s[i].Weight)
	b := fmt.Sprintf("%s%d%d%d", s[j].Target, s[j].Port, s[j].Priority, s[j].Weight)
	return a < b
}

func lookupSRV(service, proto, name string) []*net.SRV {
	_, addrs, err := net.LookupSRV(service, proto, name)
	if err != nil {
		return []*net.SRV{}
	}
	sort.Sort(srvByText(addrs))
	return addrs
}

func confdFuncs(keys map[string]string) template.FuncMap {
	s := store(keys)
	m := template.FuncMap{
		"base":           path.Base,
		"split":          strings.Split,
		"json":           jsonObject,
		"jsonArray":      jsonArray,
		"dir":            path.Dir,
		"map":            createMap,
		"getenv":         getenv,
		"join":           strings.Join,
		"toUpper":        strings.ToUpper,
		"toLower":        strings.ToLower,
		"contains":       strings.Contains,
		"replace":        strings.Replace,
		"trimSuffix":     strings.TrimSuffix,
		"base64Encode":   func(data string) string { return base64.StdEncoding.EncodeToString([]byte(data)) },
		"base64Decode":   base64Decode,
		"parseBool":      strconv.ParseBool,
		"reverse":        reverse,
		"sortByLength":   func(v []string) []string { sort.Sort(strByLength(v)); return v },
		"sortKVByLength": func(v []KVPair) []KVPair { sort.Sort(kvByLength(v)); return v },
		"add":            func(a, b int) int { return a + b },
		"sub":            func(a, b int) int { return a - b },
		"div":            func(a, b int) int { return a / b },
		"mod":            func(a, b int) int { return a % b },
		"mul":            func(a, b int) int { return a * b },
		"seq":            seq,
		"atoi":           strconv.Atoi,
		// Host-dependent, for probes and shape-only goldens.
		"datetime":   time.Now,
		"lookupIP":   lookupIP,
		"lookupIPV4": func(h string) []string { return lookupFiltered(h, ".") },
		"lookupIPV6": func(h string) []string { return lookupFiltered(h, ":") },
		"lookupSRV":  lookupSRV,
		"fileExists": func(p string) bool { _, err := os.Stat(p); return err == nil },
		// memkv's store functions come last and win on a clash, as in confd.
		"exists": s.exists,
		"ls":     s.ls,
		"lsdir":  s.lsdir,
		"get":    s.get,
		"gets":   s.gets,
		"getv":   s.getv,
		"getvs":  s.getvs,
	}
	return m
}
