// Command exec_golden runs text/template cases through Go 1.19 and prints the results as
// JSON: the goldens that tests/unit/gotemplate/test_exec_golden.py checks muster's
// executor against, error messages included.
//
// The cases are the rows of Go's own exec_test.go execTests table (read from GOROOT)
// whose data is the T fixture or nil and that use only the parts of T mirrored in the
// Python test, followed by muster's own rows (cases.json next to this file). The data
// "T" is the fixture below, "nil" is nil, and anything else is JSON decoded as
// encoding/json decodes into interface{}.
package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/template"
	"unicode/utf8"
)

type U struct {
	V string
}

func (u *U) TrueFalse(b bool) string {
	if b {
		return "true"
	}
	return ""
}

type KV struct {
	Key   string
	Value string
}

type Temp struct {
	Deg int
}

func (t Temp) String() string { return fmt.Sprintf("%dC", t.Deg) }

// Mon is a named int with methods, as time.Month.
type Mon int

func (m Mon) Name() string   { return [...]string{"", "Jan", "Feb", "Mar", "Apr"}[m] }
func (m Mon) Next() Mon      { return m + 1 }
func (m Mon) Plus(n int) Mon { return m + Mon(n) }

// Sl is a named slice with methods.
type Sl []string

func (s Sl) Count() int             { return len(s) }
func (s Sl) Join(sep string) string { return strings.Join(s, sep) }

// Amp is a Stringer through its pointer whose text starts with "&".
type Amp struct{ N int }

func (a *Amp) String() string { return fmt.Sprintf("&amp%d", a.N) }

// T is a subset of exec_test.go's T: what muster's value model can mirror.
type T struct {
	True            bool
	I               int
	U16             uint16
	X, S            string
	FloatZero       float64
	ComplexZero     complex128
	U               *U
	SI              []int
	SIEmpty         []int
	SB              []bool
	SS              []string
	MSI             map[string]int
	MSIone          map[string]int
	MSIEmpty        map[string]int
	MII             map[int]int
	MI32S           map[int32]string
	MI64S           map[int64]string
	MUI32S          map[uint32]string
	MUI64S          map[uint64]string
	MI8S            map[int8]string
	MUI8S           map[uint8]string
	SMSI            []map[string]int
	Empty0          any
	Empty1          any
	Empty2          any
	Empty3          any
	Empty4          any
	BinaryFunc      func(string, string) string
	VariadicFunc    func(...string) string
	VariadicFuncInt func(int, ...string) string
	ErrFunc         func() (string, error)
	KV              KV
	SKV             []KV
	Temp            Temp
	Uthree, Ufour   uint
	NegOne, Three   int
	Map, NonNilMap  map[int]int
	NKV             KVs
}

// KVs is a named slice type, as confd's memkv.KVPairs.
type KVs []KV

func (t *T) Method0() string                   { return "M0" }
func (t *T) Method1(a int) int                 { return a }
func (t *T) Method2(a uint16, b string) string { return fmt.Sprintf("Method2: %d %s", a, b) }
func (t *T) Method3(v any) string              { return fmt.Sprintf("Method3: %v", v) }
func (t *T) MAdd(a int, b []int) []int {
	v := make([]int, len(b))
	for i, x := range b {
		v[i] = x + a
	}
	return v
}

var myError = errors.New("my error")

func (t *T) MyError(error bool) (bool, error) {
	if error {
		return true, myError
	}
	return false, nil
}
func (t *T) GetU() *U { return t.U }

// Methods a template cannot call: not one result (or one and an error).
func (t *T) Zone() (string, int)   { return "UTC", 0 }
func (t *T) Date() (int, int, int) { return 2006, 1, 2 }
func (t *T) Nothing()              {}

var tVal = &T{
	True:            true,
	I:               17,
	U16:             16,
	X:               "x",
	S:               "xyz",
	U:               &U{"v"},
	SI:              []int{3, 4, 5},
	SB:              []bool{true, false},
	SS:              []string{"a", "b"},
	MSI:             map[string]int{"one": 1, "two": 2, "three": 3},
	MSIone:          map[string]int{"one": 1},
	MII:             map[int]int{1: 1},
	MI32S:           map[int32]string{1: "one", 2: "two"},
	MI64S:           map[int64]string{2: "i642", 3: "i643"},
	MUI32S:          map[uint32]string{2: "u322", 3: "u323"},
	MUI64S:          map[uint64]string{2: "ui642", 3: "ui643"},
	MI8S:            map[int8]string{2: "i82", 3: "i83"},
	MUI8S:           map[uint8]string{2: "u82", 3: "u83"},
	SMSI:            []map[string]int{{"one": 1, "two": 2}, {"eleven": 11, "twelve": 12}},
	Empty1:          3,
	Empty2:          "empty2",
	Empty3:          []int{7, 8},
	Empty4:          &U{"UinEmpty"},
	BinaryFunc:      func(a, b string) string { return fmt.Sprintf("[%s=%s]", a, b) },
	VariadicFunc:    func(s ...string) string { return fmt.Sprint("<", strings.Join(s, "+"), ">") },
	VariadicFuncInt: func(a int, s ...string) string { return fmt.Sprint(a, "=<", strings.Join(s, "+"), ">") },
	ErrFunc:         func() (string, error) { return "bla", nil },
	KV:              KV{"k", "v"},
	SKV:             []KV{{"a", "1"}, {"b", "2"}},
	Temp:            Temp{21},
	Uthree:          3,
	Ufour:           4,
	NegOne:          -1,
	Three:           3,
	NonNilMap:       map[int]int{},
	NKV:             KVs{{"a", "1"}, {"b", "2"}},
}

func add(args ...int) int {
	sum := 0
	for _, x := range args {
		sum += x
	}
	return sum
}

func makemap(arg ...string) map[string]string {
	if len(arg)%2 != 0 {
		panic("bad makemap")
	}
	m := make(map[string]string)
	for i := 0; i < len(arg); i += 2 {
		m[arg[i]] = arg[i+1]
	}
	return m
}

var funcs = template.FuncMap{
	"add":         add,
	"dddArg":      func(a int, b ...string) string { return fmt.Sprintln(a, b) },
	"die":         func() bool { panic("die") },
	"echo":        func(arg any) any { return arg },
	"makemap":     makemap,
	"mapOfThree":  func() any { return map[string]int{"three": 3} },
	"oneArg":      func(a string) string { return "oneArg=" + a },
	"returnInt":   func() int { return 7 },
	"twoArgs":     func(a, b string) string { return "twoArgs=" + a + b },
	"typeOf":      func(arg any) string { return fmt.Sprintf("%T", arg) },
	"valueString": func(v string) string { return "value is ignored" },
	"zeroArgs":    func() string { return "zeroArgs" },
	// muster's additions.
	"boom":   func() (string, error) { return "", errors.New("boom") },
	"nilf":   func() any { return nil },
	"u8":     func(x uint8) uint8 { return x },
	"i8":     func(x int8) int8 { return x },
	"i64":    func(x int64) int64 { return x },
	"f64":    func(x float64) float64 { return x },
	"cplx":   func(x complex128) complex128 { return x },
	"bf":     func(b bool) bool { return !b },
	"join":   strings.Join,
	"ss":     func() []string { return []string{"a", "b"} },
	"mss":    func() map[string]string { return map[string]string{"k": "v"} },
	"kv":     func() KV { return KV{"k", "v"} },
	"kvp":    func() *KV { return &KV{"k", "v"} },
	"adder":  func() func(int, int) int { return func(a, b int) int { return a + b } },
	"addf":   func(a, b int) int { return a + b },
	"kvKey":  func(kv KV) string { return kv.Key },
	"kvsLen": func(kvs []KV) int { return len(kvs) },
	"kvsFn":  func() func([]KV) int { return func(kvs []KV) int { return len(kvs) } },
	"tempp":  func() *Temp { return &Temp{5} },
	"amp":    func() *Amp { return &Amp{1} },
	"mon":    func() Mon { return 2 },
	"sl":     func() Sl { return Sl{"a", "b"} },
}

// unsupported names exec_test.go rows may use that the Python fixture lacks.
var unsupported = []string{
	"V0", "V1", "V2", "W0", "W1", "W2", "SICap", "AI", "MXI", "NonEmptyInterface", "Str", ".Err",
	"PI", "PS", "PSI", "NIL", "NilOKFunc", "PanicFunc", "Tmpl", "unexported", "Copy", "count",
	"stringer", "vfunc",
}

type Case struct {
	Name   string  `json:"name"`
	Input  string  `json:"input"`
	Data   string  `json:"data"`
	Out    *string `json:"out,omitempty"`
	OutHex *string `json:"out_hex,omitempty"` // output that is not valid UTF-8
	Err    *string `json:"err,omitempty"`
}

func goRows() []Case {
	path := filepath.Join(runtime.GOROOT(), "src", "text", "template", "exec_test.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		panic(err)
	}
	var rows []Case
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || vs.Names[0].Name != "execTests" {
			return true
		}
		for _, e := range vs.Values[0].(*ast.CompositeLit).Elts {
			elts := e.(*ast.CompositeLit).Elts
			name, ok1 := elts[0].(*ast.BasicLit)
			input, ok2 := elts[1].(*ast.BasicLit)
			data, ok3 := elts[3].(*ast.Ident)
			if !ok1 || !ok2 || !ok3 || (data.Name != "tVal" && data.Name != "nil") {
				continue
			}
			n, _ := strconv.Unquote(name.Value)
			in, _ := strconv.Unquote(input.Value)
			skip := false
			for _, u := range unsupported {
				if strings.Contains(in, u) {
					skip = true
				}
			}
			if !skip {
				d := "T"
				if data.Name == "nil" {
					d = "nil"
				}
				rows = append(rows, Case{Name: "go/" + n, Input: in, Data: d})
			}
		}
		return false
	})
	return rows
}

func run(c *Case) {
	var data any
	switch c.Data {
	case "T":
		data = tVal
	case "nil":
	default:
		if err := json.Unmarshal([]byte(c.Data), &data); err != nil {
			panic(fmt.Sprintf("%s: bad data: %v", c.Name, err))
		}
	}
	tmpl, err := template.New(c.Name).Funcs(funcs).Parse(c.Input)
	if err != nil {
		panic(fmt.Sprintf("%s: parse error: %v", c.Name, err))
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		msg := err.Error()
		c.Err = &msg
		return
	}
	out := b.String()
	if !utf8.ValidString(out) {
		h := hex.EncodeToString(b.Bytes())
		c.OutHex = &h
		return
	}
	c.Out = &out
}

func main() {
	raw, err := os.ReadFile("cases.json")
	if err != nil {
		panic(err)
	}
	var own []Case
	if err := json.Unmarshal(raw, &own); err != nil {
		panic(err)
	}
	cases := append(goRows(), own...)
	for i := range cases {
		run(&cases[i])
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(map[string]any{"go": runtime.Version(), "cases": cases}); err != nil {
		panic(err)
	}
}
