// Command confd_golden writes tests/unit/confd/data/go_golden.json: outputs of the Go
// 1.19 standard library functions that muster's confd functions must reproduce
// (path.Match/Clean/Base/Dir, strconv, base64, strings.Split, time.Format).
// Run: go run scripts/confd_golden/main.go > tests/unit/confd/data/go_golden.json
package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"math/rand"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

type matchCase struct {
	Pattern string `json:"pattern"`
	Name    string `json:"name"`
	Match   bool   `json:"match"`
	Err     bool   `json:"err"`
}

type strCase struct {
	In     string `json:"in"`
	Out    string `json:"out"`
	Err    bool   `json:"err"`
	ErrMsg string `json:"errmsg,omitempty"`
}

func errMsg(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

type splitCase struct {
	S   string   `json:"s"`
	Sep string   `json:"sep"`
	Out []string `json:"out"`
}

type floatCase struct {
	Bits uint64 `json:"bits"`
	Out  string `json:"out"`
}

type timeCase struct {
	Unix   int64  `json:"unix"`
	Nsec   int64  `json:"nsec"`
	Zone   string `json:"zone"`
	Offset int    `json:"offset"`
	Layout string `json:"layout"`
	Out    string `json:"out"`
}

type sortCase struct {
	In  []string `json:"in"`
	Out []string `json:"out"`
}

type byLength []string

func (s byLength) Len() int           { return len(s) }
func (s byLength) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }
func (s byLength) Less(i, j int) bool { return len(s[i]) < len(s[j]) }

func main() {
	r := rand.New(rand.NewSource(1))
	alpha := []string{"a", "b", "/", "*", "?", "[", "]", "^", "-", "\\", "é", "c", "."}
	nameAlpha := []string{"a", "b", "/", "c", "é", "-", "]", "."}
	gen := func(al []string, n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			b.WriteString(al[r.Intn(len(al))])
		}
		return b.String()
	}
	var matches []matchCase
	fixed := [][2]string{
		{"/services/*/servers/*", "/services/web/servers/a"},
		{"/h/web[12]", "/h/web1"}, {"/h/web?", "/h/web10"}, {"/app/[", "/app/x"},
		{"[^a]", "/"}, {"a[/]b", "a/b"}, {"a\\/b", "a/b"}, {"*", "a/b"}, {"\\", "x"},
		{"[a-]", "a"}, {"[]a]", "]"}, {"[\\]]", "]"}, {"a*b*c", "axxbyyc"}, {"*x", "xxx"},
	}
	for _, f := range fixed {
		m, err := path.Match(f[0], f[1])
		matches = append(matches, matchCase{f[0], f[1], m, err != nil})
	}
	for i := 0; i < 2500; i++ {
		p := gen(alpha, r.Intn(7))
		n := gen(nameAlpha, r.Intn(7))
		m, err := path.Match(p, n)
		matches = append(matches, matchCase{p, n, m, err != nil})
	}

	paths := []string{"", "/", "//", "a", "/a", "/a/", "/a/b/c", "/a/b/", "a/b", "/a//b", "/a/./b", "/a/../b",
		"../a", "/..", "./", ".", "a/..", "/a/b/..", "//a//", "abc/", "/é/x"}
	var cleans, bases, dirs []strCase
	for i := 0; i < 300; i++ {
		paths = append(paths, gen([]string{"a", "/", ".", "b"}, r.Intn(8)))
	}
	for _, p := range paths {
		cleans = append(cleans, strCase{p, path.Clean(p), false, ""})
		bases = append(bases, strCase{p, path.Base(p), false, ""})
		dirs = append(dirs, strCase{p, path.Dir(p), false, ""})
	}

	var bools, atois, b64 []strCase
	for _, s := range []string{"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False",
		"", "yes", "tRUE", "on", " true", "2"} {
		b, err := strconv.ParseBool(s)
		bools = append(bools, strCase{s, strconv.FormatBool(b), err != nil, errMsg(err)})
	}
	for _, s := range []string{"0", "8080", "-12", "+7", "1.5", "", " 1", "1_000", "0x10", "010",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
		"+", "-", "１", "00012", "-0"} {
		n, err := strconv.Atoi(s)
		atois = append(atois, strCase{s, strconv.Itoa(n), err != nil, errMsg(err)})
	}
	for _, s := range []string{"aGVsbG8=", "aGVsbG8", "!!!", "", "aGVsbA==", "aGVsbA=", "aGVs\nbG8=", "aGVs\rbG8=",
		"aGVsbA==aGVs", "=", "YQ==", "YR==", "YWI=", "YWJj", "YW Jj", "aGVsbA===", "/+8=", "YQ=\n=", "YQ=",
		"YWJjZGVmZ2hp!", "YWJjZGVmZ2hpa", "YWJjZGVmZ2hpaw=x", "\n\nYQ==\n", "YQ==\nx", "Y", "YW", "YWJ"} {
		d, err := base64.StdEncoding.DecodeString(s)
		b64 = append(b64, strCase{s, hex.EncodeToString(d), err != nil, errMsg(err)}) // hex: may be binary
	}

	var jsons []strCase
	for _, s := range []string{`{"a": 1}`, `not json`, `{x}`, `null x`, `[1,]`, `[1 2]`, `{"a" 1}`, `{"a":1 "b":2}`,
		``, ` `, `tru`, `nul`, `{"a": NaN}`, `{"a": 1e400}`, `{"a": -1e400}`, `[1, 2`, `{"a": [1, 2}`, `'a'`,
		`{"a":"\u0001"}`, "{\"a\":\"\x01\"}", `{"a": 01}`, `{"a": .5}`, `{"a": 1.}`, `{"a": -}`, `{"a": +1}`,
		`[true, false, null]`, `"str"`, `123`, `{"a": {"b": [1, {"c": nul}]}}`, `[]]`, `{}}`, `{"a":1,}`,
		`[1e5, 1E-5, -0.0, 12345678901234567890]`, `{"a": "\ud800"}`, `{"a": "\x"}`, `{"a": tRue}`, `{"a": 1e400, "b": x}`, `[1e999]`,
		`{"a": "\u12G4"}`, `[1e]`, `[1e+]`, `[-01]`, "[\"\xc3\"]", `[` + strings.Repeat("[", 10001) + `]`} {
		var v interface{}
		err := json.Unmarshal([]byte(s), &v)
		jsons = append(jsons, strCase{s, "", err != nil, errMsg(err)})
	}

	var splits []splitCase
	for _, c := range [][2]string{{"a,b,,c", ","}, {"", ","}, {"abc", ""}, {"", ""}, {"a b c", " "},
		{"éx", ""}, {",a,", ","}, {"aaa", "aa"}} {
		splits = append(splits, splitCase{c[0], c[1], strings.Split(c[0], c[1])})
	}

	var floats []floatCase
	for _, f := range []float64{0, math.Copysign(0, -1), 1, 1000, 0.1, 1e-7, 1e23, 1e21, 123456789.125,
		math.Inf(1), math.Inf(-1), math.NaN(), 5e-324, math.MaxFloat64, 0.5, 16} {
		floats = append(floats, floatCase{math.Float64bits(f), strconv.FormatFloat(f, 'f', -1, 64)})
	}

	layouts := []string{time.ANSIC, time.UnixDate, time.RubyDate, time.RFC822, time.RFC822Z, time.RFC850,
		time.RFC1123, time.RFC1123Z, time.RFC3339, time.RFC3339Nano, time.Kitchen, time.Stamp, time.StampMilli,
		time.StampMicro, time.StampNano, "2006-01-02", "2006-01-02 15:04:05.999999999 -0700 MST",
		"Mon Monday Jan January 1 01 _2 2 02 __2 002 06 2006 3 03 15 4 04 5 05 PM pm",
		".0 .00 .000 .999 .999999 ,000 ,999 .9", "Z07:00 Z0700 Z07 Z07:00:00 Z070000 -07 -0700 -07:00 -07:00:00 -070000",
		"2006-01-02T15:04:05.000Z07:00", "hello 2006 world", "06/1/2 3:4:5pm", "200601", "15h04m", "January 2nd",
		"Mon Jan _2", "05.000000000", "2006-01-02T15:04:05.99Z"}
	zones := []struct {
		name string
		off  int
	}{{"UTC", 0}, {"CET", 3600}, {"EST", -5 * 3600}, {"", 5*3600 + 1800}, {"XYZ", -(9*3600 + 30*60 + 15)}, {"", 0}}
	instants := [][2]int64{{0, 0}, {1700000000, 123456789}, {1234567890, 500000000}, {-86400 * 400, 1},
		{951782400, 0}, {1709251199, 999999999}, {4102444800, 120000000}, {1e9, 100}}
	var times []timeCase
	for _, in := range instants {
		for _, z := range zones {
			loc := time.FixedZone(z.name, z.off)
			t := time.Unix(in[0], in[1]).In(loc)
			for _, l := range layouts {
				times = append(times, timeCase{in[0], in[1], z.name, z.off, l, t.Format(l)})
			}
		}
	}

	var sorts []sortCase
	for i := 0; i < 60; i++ {
		n := r.Intn(40)
		if i < 20 {
			n = r.Intn(13)
		}
		in := make([]string, n)
		for j := range in {
			in[j] = gen([]string{"a", "b", "c"}, 1+r.Intn(4)) + strconv.Itoa(j)
			in[j] = in[j][:1+r.Intn(len(in[j]))]
		}
		out := append([]string(nil), in...)
		sort.Sort(byLength(out))
		sorts = append(sorts, sortCase{in, out})
	}
	// Patterned inputs reach pdqsort's other paths: reversed and sawtooth runs,
	// long runs of equal keys (partitionEqual), organ pipes and near-sorted slices.
	patterns := []func(i, n int) int{
		func(i, n int) int { return n - i },
		func(i, n int) int { return i % 7 },
		func(i, n int) int { return 3 },
		func(i, n int) int {
			if i < n/2 {
				return i
			}
			return n - i
		},
		func(i, n int) int {
			if i%50 == 0 {
				return n - i
			}
			return i
		},
		func(i, n int) int { return (i * 7919) % 61 },
		func(i, n int) int { return i ^ (n / 3) },
	}
	for _, pat := range patterns {
		for _, n := range []int{13, 49, 50, 51, 120, 260} {
			in := make([]string, n)
			for j := range in {
				in[j] = strings.Repeat("y", pat(j, n)%97) + "#" + strconv.Itoa(j)
			}
			out := append([]string(nil), in...)
			sort.Sort(byLength(out))
			sorts = append(sorts, sortCase{in, out})
		}
	}
	big := make([]string, 300)
	for j := range big {
		big[j] = strings.Repeat("x", r.Intn(20)) + strconv.Itoa(j)
	}
	bigOut := append([]string(nil), big...)
	sort.Sort(byLength(bigOut))
	sorts = append(sorts, sortCase{big, bigOut})

	// Every rune that strings.ToUpper or strings.ToLower changes: [rune, upper, lower].
	var cases [][3]rune
	for c := rune(0); c <= 0x10FFFF; c++ {
		if c >= 0xD800 && c <= 0xDFFF {
			continue
		}
		s := string(c)
		u, l := []rune(strings.ToUpper(s)), []rune(strings.ToLower(s))
		if len(u) != 1 || len(l) != 1 {
			panic("multi-rune case mapping")
		}
		if u[0] != c || l[0] != c {
			cases = append(cases, [3]rune{c, u[0], l[0]})
		}
	}

	out := map[string]interface{}{
		"match": matches, "clean": cleans, "base": bases, "dir": dirs, "parseBool": bools,
		"atoi": atois, "base64Decode": b64, "split": splits, "formatFloat": floats, "timeFormat": times,
		"sortByLength": sorts, "caseMap": cases, "jsonDecode": jsons,
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		panic(err)
	}
}
