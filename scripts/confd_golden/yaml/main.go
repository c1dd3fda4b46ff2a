// Command yaml flattens YAML documents as confd's file backend does (gopkg.in/yaml.v2
// into map[interface{}]interface{}, then confd's nodeWalk, restated below), producing
// goldens for muster's backends/yamlkeys.py. It reads a JSON array of documents and
// writes a JSON array of {"keys": {...}} or {"err": "..."} ("panic" where confd crashes).
//
// Debian's golang-gopkg-yaml.v2-dev provides the library, so it runs offline:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run scripts/confd_golden/yaml/main.go \
//	    < tests/unit/confd/data/yaml_cases.json > tests/unit/confd/data/yaml_golden.json
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strconv"

	"gopkg.in/yaml.v2"
)

// walk restates confd's nodeWalk (backends/file/client.go).
func walk(node interface{}, key string, vars map[string]string) {
	switch n := node.(type) {
	case []interface{}:
		for i, j := range n {
			walk(j, path.Join(key, strconv.Itoa(i)), vars)
		}
	case map[interface{}]interface{}:
		for k, v := range n {
			walk(v, path.Join(key, k.(string)), vars)
		}
	case string:
		vars[key] = n
	case int:
		vars[key] = strconv.Itoa(n)
	case bool:
		vars[key] = strconv.FormatBool(n)
	case float64:
		vars[key] = strconv.FormatFloat(n, 'f', -1, 64)
	}
}

type result struct {
	Keys map[string]string `json:"keys,omitempty"`
	Err  string            `json:"err,omitempty"`
}

func flatten(doc string) (res result) {
	defer func() {
		if r := recover(); r != nil {
			res = result{Err: fmt.Sprint("panic: ", r)}
		}
	}()
	m := make(map[interface{}]interface{})
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		return result{Err: err.Error()}
	}
	vars := map[string]string{}
	walk(m, "/", vars)
	return result{Keys: vars}
}

func main() {
	var docs []string
	if err := json.NewDecoder(os.Stdin).Decode(&docs); err != nil {
		panic(err)
	}
	out := make([]result, len(docs))
	for i, d := range docs {
		out[i] = flatten(d)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		panic(err)
	}
}
