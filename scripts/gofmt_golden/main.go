// Command gofmt_golden prints Go 1.19 fmt/strconv results for a large table of cases as
// JSON, the goldens that tests/unit/gotemplate/test_gofmt.py checks muster's gofmt against.
//
// Every argument is built with a constructor that also records a JSON encoding of it, so
// the Python test can rebuild the same value in muster's value model.
package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"unicode/utf8"
)

// KV mirrors confd's memkv.KVPair: a plain struct.
type KV struct {
	Key   string
	Value string
}

// Pair has an interface field, which may hold nil.
type Pair struct {
	Name string
	Any  interface{}
	N    int
}

// Temp is a fmt.Stringer.
type Temp struct {
	Deg float64
}

func (t Temp) String() string { return fmt.Sprintf("%.1fC", t.Deg) }

// Ver has both String and GoString, as time.Time does.
type Ver struct {
	Major, Minor int
}

func (v Ver) String() string   { return fmt.Sprintf("v%d.%d", v.Major, v.Minor) }
func (v Ver) GoString() string { return fmt.Sprintf("Ver(%d, %d)", v.Major, v.Minor) }

// Oops is an error that is also a Stringer: Error wins.
type Oops struct {
	Code int
}

func (o Oops) Error() string  { return fmt.Sprintf("oops %d", o.Code) }
func (o Oops) String() string { return "not used" }

// Val is an argument: the Go value and its encoding.
type Val struct {
	G   interface{}
	Enc map[string]interface{}
}

func enc(t string, kv ...interface{}) map[string]interface{} {
	m := map[string]interface{}{"t": t}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func Nil() Val         { return Val{nil, enc("nil")} }
func NoValue() Val     { return Val{reflect.Value{}, enc("novalue")} }
func B(b bool) Val     { return Val{b, enc("bool", "v", b)} }
func I(n int) Val      { return Val{n, enc("int", "v", strconv.Itoa(n))} }
func I8(n int8) Val    { return Val{n, enc("int8", "v", fmt.Sprint(n))} }
func I16(n int16) Val  { return Val{n, enc("int16", "v", fmt.Sprint(n))} }
func I32(n int32) Val  { return Val{n, enc("int32", "v", fmt.Sprint(n))} }
func I64(n int64) Val  { return Val{n, enc("int64", "v", fmt.Sprint(n))} }
func U(n uint) Val     { return Val{n, enc("uint", "v", fmt.Sprint(n))} }
func U8(n uint8) Val   { return Val{n, enc("uint8", "v", fmt.Sprint(n))} }
func U16(n uint16) Val { return Val{n, enc("uint16", "v", fmt.Sprint(n))} }
func U32(n uint32) Val { return Val{n, enc("uint32", "v", fmt.Sprint(n))} }
func U64(n uint64) Val { return Val{n, enc("uint64", "v", fmt.Sprint(n))} }
func F(f float64) Val  { return Val{f, enc("float64", "v", fbits(f))} }
func C(c complex128) Val {
	return Val{c, enc("complex128", "re", fbits(real(c)), "im", fbits(imag(c)))}
}
func S(s string) Val     { return Val{s, enc("string", "hex", hex.EncodeToString([]byte(s)))} }
func Bytes(b []byte) Val { return Val{b, enc("bytes", "hex", hex.EncodeToString(b))} }

func fbits(f float64) string { return strconv.FormatUint(math.Float64bits(f), 16) }

// L is a []interface{}.
func L(items ...Val) Val {
	g := make([]interface{}, len(items))
	e := make([]interface{}, len(items))
	for i, it := range items {
		g[i], e[i] = it.G, it.Enc
	}
	return Val{g, enc("list", "v", e)}
}

// M is a map[string]interface{} from alternating keys and values.
func M(kv ...interface{}) Val {
	g := map[string]interface{}{}
	var e [][]interface{}
	for i := 0; i < len(kv); i += 2 {
		k, v := kv[i].(string), kv[i+1].(Val)
		g[k] = v.G
		e = append(e, []interface{}{hex.EncodeToString([]byte(k)), v.Enc})
	}
	return Val{g, enc("map", "v", e)}
}

func StrSlice(items ...string) Val {
	e := []interface{}{}
	if items == nil {
		items = []string{} // the value model has no nil slices
	}
	for _, s := range items {
		e = append(e, S(s).Enc)
	}
	return Val{items, enc("slice", "elem", "string", "v", e)}
}

func IntSlice(items ...int) Val {
	var e []interface{}
	for _, n := range items {
		e = append(e, I(n).Enc)
	}
	return Val{items, enc("slice", "elem", "int", "v", e)}
}

func FloatSlice(items ...float64) Val {
	var e []interface{}
	for _, f := range items {
		e = append(e, F(f).Enc)
	}
	return Val{items, enc("slice", "elem", "float64", "v", e)}
}

func IntStringMap(kv map[int]string) Val {
	var e [][]interface{}
	for k, v := range kv {
		e = append(e, []interface{}{I(k).Enc, S(v).Enc})
	}
	return Val{kv, enc("gomap", "key", "int", "elem", "string", "v", e)}
}

func FloatIntMap(kv map[float64]int) Val {
	var e [][]interface{}
	for k, v := range kv {
		e = append(e, []interface{}{F(k).Enc, I(v).Enc})
	}
	return Val{kv, enc("gomap", "key", "float64", "elem", "int", "v", e)}
}

func BoolStrSliceMap(kv map[bool][]string) Val {
	var e [][]interface{}
	for k, v := range kv {
		e = append(e, []interface{}{B(k).Enc, StrSlice(v...).Enc})
	}
	return Val{kv, enc("gomap", "key", "bool", "elem", "[]string", "v", e)}
}

func ComplexStrMap(kv map[complex128]string) Val {
	var e [][]interface{}
	for k, v := range kv {
		e = append(e, []interface{}{C(k).Enc, S(v).Enc})
	}
	return Val{kv, enc("gomap", "key", "complex128", "elem", "string", "v", e)}
}

func KVIntMap(kv map[KV]int) Val {
	var e [][]interface{}
	for k, v := range kv {
		e = append(e, []interface{}{KVal(k.Key, k.Value).Enc, I(v).Enc})
	}
	return Val{kv, enc("gomap", "key", "main.KV", "elem", "int", "v", e)}
}

func KVal(k, v string) Val  { return Val{KV{k, v}, enc("KV", "key", S(k).Enc, "value", S(v).Enc)} }
func KPtr(k, v string) Val  { return Val{&KV{k, v}, enc("*KV", "key", S(k).Enc, "value", S(v).Enc)} }
func TempVal(d float64) Val { return Val{Temp{d}, enc("Temp", "deg", F(d).Enc)} }
func VerVal(major, minor int) Val {
	return Val{Ver{major, minor}, enc("Ver", "major", I(major).Enc, "minor", I(minor).Enc)}
}
func OopsVal(code int) Val { return Val{Oops{code}, enc("Oops", "code", I(code).Enc)} }
func PairVal(n string, a Val, i int) Val {
	return Val{Pair{n, a.G, i}, enc("Pair", "name", S(n).Enc, "any", a.Enc, "n", I(i).Enc)}
}

// Case is one call: fn with args and format; cases with equal args share a Group.
type Case struct {
	Fn     string
	Format string
	Args   []map[string]interface{}
}

// Group holds every call on the same arguments: Runs are [format, result] pairs, the
// result as a string, or as {"hex": ...} when it is not valid UTF-8 (JSON would mangle it).
type Group struct {
	Fn   string                   `json:"fn"`
	Args []map[string]interface{} `json:"args"`
	Runs [][2]interface{}         `json:"runs"`
}

var (
	groups  []*Group
	byGroup = map[string]*Group{}
)

func record(c Case, out string) {
	key, err := json.Marshal([]interface{}{c.Fn, c.Args})
	if err != nil {
		panic(err)
	}
	g := byGroup[string(key)]
	if g == nil {
		g = &Group{Fn: c.Fn, Args: c.Args}
		byGroup[string(key)] = g
		groups = append(groups, g)
	}
	var res interface{} = out
	if !utf8.ValidString(out) {
		res = map[string]string{"hex": hex.EncodeToString([]byte(out))}
	}
	var format interface{} = c.Format
	if !utf8.ValidString(c.Format) {
		format = map[string]string{"hex": hex.EncodeToString([]byte(c.Format))}
	}
	g.Runs = append(g.Runs, [2]interface{}{format, res})
}

func split(vals []Val) ([]interface{}, []map[string]interface{}) {
	g := make([]interface{}, len(vals))
	e := make([]map[string]interface{}, len(vals))
	for i, v := range vals {
		g[i], e[i] = v.G, v.Enc
	}
	return g, e
}

func Printf(format string, vals ...Val) {
	g, e := split(vals)
	record(Case{Fn: "sprintf", Format: format, Args: e}, fmt.Sprintf(format, g...))
}

func Print(vals ...Val) {
	g, e := split(vals)
	record(Case{Fn: "sprint", Args: e}, fmt.Sprint(g...))
}

func Println(vals ...Val) {
	g, e := split(vals)
	record(Case{Fn: "sprintln", Args: e}, fmt.Sprintln(g...))
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-eval" {
		eval()
		return
	}
	scalars := []Val{
		Nil(), B(true), B(false),
		I(0), I(42), I(-42), I(7), I(1234567), I(math.MaxInt64), I(math.MinInt64),
		I8(-128), I8(127), I16(-300), I32(0x4E16), I32(0x1F600), I32(-1), I32(0xD800), I64(-1),
		U(0), U(255), U8(0), U8(65), U8(255), U16(0xFFFF), U32(0x10FFFF), U32(0x110000), U64(math.MaxUint64),
		F(0), F(math.Copysign(0, -1)), F(1), F(-1), F(3.14159), F(2.5), F(0.1 + 0.2), F(1e6), F(1e-5),
		F(123456), F(1234567), F(0.0001), F(1e21), F(1e20), F(1e-7), F(8080), F(-0.000123456),
		F(math.NaN()), F(math.Inf(1)), F(math.Inf(-1)), F(math.MaxFloat64), F(math.SmallestNonzeroFloat64),
		F(5e-324 * 3), F(0.5), F(1.5), F(100), F(1e100), F(123.456e-10),
		C(complex(1, 2)), C(complex(-1.5, -0.25)), C(complex(0, math.Inf(1))), C(complex(1e6, math.NaN())),
		S(""), S("hi"), S("héllo"), S("a\tb\n"), S("a`b"), S("\xff\xfe"), S("h\xc3"), S("\u00a0x\u200b"),
		S("日本語"), S("\x00\x07\x7f"), S("\"quoted\" \\ back"), S("\ufeff"), S("😀 emoji"), S("\U000e0001"),
		S("ab\u0301c"), S("\u2028"),
	}
	containers := []Val{
		L(), L(S("a"), S("b")), L(I(1), S("x"), Nil(), F(1.5), B(true)), L(L(I(1), I(2)), M("k", S("v"))),
		M(), M("b", I(1), "a", I(2)), M("a", Nil(), "10", S("x"), "9", F(1e6), "Z", B(false), "é", S("e")),
		M("list", L(S("x"), S("y")), "map", M("inner", F(0.5))),
		StrSlice("a", "b c"), StrSlice(), IntSlice(1, -2, 300), FloatSlice(0.1, 1e6, math.Inf(-1)),
		Bytes([]byte("hi\xff")), Bytes([]byte{}),
		IntStringMap(map[int]string{3: "c", -1: "a", 10: "j", 2: "b"}),
		FloatIntMap(map[float64]int{math.NaN(): 0, 2.5: 1, -1: 2, math.Inf(1): 3}),
		BoolStrSliceMap(map[bool][]string{true: {"t"}, false: {"f", "g"}}),
		KVal("/app/port", "8080"), KPtr("/k", "v\n"), TempVal(21.55), TempVal(-3),
		PairVal("p", Nil(), 1), PairVal("q", L(S("x"), TempVal(1)), -2), PairVal("r", KVal("a", "b"), 0),
		L(TempVal(5), KVal("x", "y")), M("t", TempVal(2)), VerVal(1, 2), L(VerVal(0, 9), Nil()),
		L(C(complex(1, 2)), C(complex(0, -1))), OopsVal(7), L(OopsVal(1)),
		ComplexStrMap(map[complex128]string{complex(1, 2): "a", complex(1, 1): "b", complex(0, 5): "c", complex(math.NaN(), 0): "n"}),
		KVIntMap(map[KV]int{{"b", "1"}: 1, {"a", "2"}: 2, {"a", "1"}: 3}),
	}
	verbs := []string{"v", "+v", "#v", "T", "s", "q", "d", "x", "X", "o", "O", "b", "c", "U", "e", "E",
		"f", "F", "g", "G", "t", "z", "w"}
	flagSets := []string{"", "+", "-8", "#", " ", "08", ".3", "+08.3", "-#10.2", ".0", "#08"}
	for _, v := range scalars {
		for _, verb := range verbs {
			for _, flags := range flagSets {
				Printf("%"+flags+verb, v)
			}
		}
		Printf("%p", v)
	}
	for _, v := range containers {
		for _, verb := range verbs {
			for _, flags := range []string{"", "#", "-6", "08.2", "# "} {
				Printf("%"+flags+verb, v)
			}
		}
	}
	Printf("%v|%v", NoValue(), L(I(1)))
	Printf("%d|%s|%T", NoValue(), NoValue(), NoValue())
	Printf("%v", I(1), NoValue())
	Print(NoValue(), S("a"))

	// Width and precision from arguments, argument indexes and their errors.
	Printf("%*d|%-*d|%.*f|%*.*f", I(5), I(42), I(-5), I(42), I(2), F(3.14159), I(8), I(3), F(2.5))
	Printf("%*d", S("x"), I(5))
	Printf("%.*d", S("x"), I(5))
	Printf("%.*d", I(-1), I(5))
	Printf("%*d", I(10000000), I(5))
	Printf("%*d", U8(3), I(5))
	Printf("%*d", U64(math.MaxUint64), I(5))
	Printf("%*d", I64(math.MinInt64), I(5))
	Printf("%*s|", I32(-4), S("ab"))
	Printf("%0*d|%-0*d", I(5), I(-42), I(5), I(42))
	Printf("%*")
	Printf("%.*")
	Printf("%*d")
	Printf("%[2]d %[1]d", I(1), I(2))
	Printf("%[2]*[1]d|", I(12), I(5))
	Printf("%[3]*.[2]*[1]f|", F(12), I(2), I(6))
	Printf("%.[2]d|", I(12), I(5))
	Printf("%[1]d %d %d", I(1), I(2))
	Printf("%[5]d", I(1))
	Printf("%[0]d", I(1))
	Printf("%[x]d", I(1))
	Printf("%[1]", I(1))
	Printf("%[1", I(1))
	Printf("%[12d", I(1))
	Printf("%p|%p|%p", TempVal(1), KVal("a", "b"), VerVal(1, 2))
	Printf("%[", I(1))
	Printf("%[]d", I(1))
	Printf("%[3]2d", I(1), I(2), I(3))
	Printf("%[3].2d", I(1), I(2), I(3))
	Printf("%[2]*d", I(1))
	Printf("%d %d %#[1]x %#x", I(16), I(17))
	Printf("%d %[2]d", I(1))
	Printf("%[1]d", I(1), I(2))
	Printf("%[2]d", I(1), I(2))
	Printf("%99999999999999999999d", I(1))
	Printf("%.99999999999999999999d", I(1))
	Printf("%123456789d|%.123456789d", I(1))

	// Missing, extra, no verb, percent.
	Printf("%d")
	Printf("%d %s", I(1))
	Printf("no verbs", I(1), S("a"), Nil(), L(I(1)), F(2.5))
	Printf("%d", I(1), S("a"), Nil())
	Printf("%")
	Printf("abc%")
	Printf("%-+ #0")
	Printf("%5")
	Printf("%.")
	Printf("%.5")
	Printf("%%|%5%|%-5%|%d%%", I(3))
	Printf("%!")
	Printf("%é", I(1))
	Printf("%\xff", I(1))
	Printf("%Z", S("x"))
	Printf("%ä", S("x"))
	Printf("héllo %s wörld", S("ü"))
	Printf("")
	Printf("%v %v", Nil(), Nil())
	Printf("%s %d %x", Nil(), Nil(), Nil())
	Printf("%5v|%-5v|%05v|%T", Nil(), Nil(), Nil(), Nil())
	Printf("%10T|%-10T|%.3T", I(1), S("x"), F(1))

	// Widths count runes, precision truncates runes, zero padding of strings.
	Printf("%5s|%-5s|%05s|%.2s|%5.1s|%.0s|", S("héllo"), S("日本"), S("ab"), S("日本語"), S("héllo"), S("x"))
	Printf("%6q|%-8q|%.2q|%#q|%#+q|%+q|", S("é"), S("a\n"), S("héllo"), S("日本"), S("日本"), S("日本"))
	Printf("%8x|%-8x|%.1x|% x|%# x|%#X|% X|%010x", S("héllo"), S("ab"), S("abc"), S("abc"), S("abc"), S("abc"), S("abc"), S("ab"))
	Printf("%5x|%-5x|%x|", S(""), S(""), S(""))
	Printf("%.0x|%5.0x|", S("ab"), S("ab"))
	Printf("%x %X % x %#x", Bytes([]byte("ab")), Bytes([]byte("ab")), Bytes([]byte("ab")), Bytes([]byte("ab")))
	Printf("%s|%q|%v|%d|%#v|%o|%c|%8s|", Bytes([]byte("ab")), Bytes([]byte("ab")), Bytes([]byte("ab")),
		Bytes([]byte("ab")), Bytes([]byte("ab")), Bytes([]byte("ab")), Bytes([]byte("ab")), Bytes([]byte("ab")))
	Printf("%v|%#v|%x|%s", L(Bytes([]byte("hi"))), L(Bytes([]byte("hi"))), L(Bytes([]byte("hi"))), L(Bytes([]byte("hi"))))

	// Numbers.
	Printf("%08.3f|%-8.3f|%+.2e|%x|%X|%o|%b|%O", F(-3.14159), F(3.14159), F(12345.678), I(-255), I(-255), I(-8), I(-5), I(-8))
	Printf("%#x|%#X|%#o|%#b|%#O|%# x|%#08x|%#-8x|", I(255), I(255), I(8), I(5), I(8), I(255), I(255), I(255))
	Printf("%.5d|%8.5d|%-8.5d|%08.5d|%+.5d|%.0d|%5.0d|%+.0d|", I(42), I(42), I(42), I(42), I(42), I(0), I(0), I(0))
	Printf("%06d|%+06d|% 06d|%06d|%-06d|%0-6d|", I(42), I(42), I(42), I(-42), I(42), I(42))
	Printf("%x|%X|%#x|%o|%b", U64(math.MaxUint64), I64(math.MinInt64), I64(math.MinInt64), I64(math.MinInt64), I64(math.MinInt64))
	Printf("%c|%c|%c|%c|%c|%-3c|%3c|", I(65), I(0x4E16), I(-1), I(0x110000), I(0xD800), I(97), I(98))
	Printf("%q|%q|%q|%q|%+q|%#q|%q|%q", I(65), I(0x4E16), I(10), I(0x110000), I(0x4E16), I(39), I(0xD800), I(0xFEFF))
	Printf("%U|%#U|%#U|%#U|%.6U|%#.6U|%10U|%-10U|%#U", I(65), I(0x4E16), I(10), I(0x1F600), I(65), I(65), I(65), I(65), I(-1))
	Printf("%e|%E|%.0e|%#.0e|%.3g|%#g|%#.3g|%#v|%#.0f|%#x|%#X", F(0), F(1e-300), F(5), F(5), F(100), F(1), F(1), F(1e6), F(3), F(1), F(1))
	Printf("%#g|%#g|%#g|%#.4g|%#e|%#b|%#.0x", F(0), F(123456789), F(1e-10), F(0.5), F(2), F(1), F(1.5))
	Printf("%x|%.0x|%.1x|%.3X|%.20x|%x|%x|%x", F(1.5), F(1.5), F(1.96875), F(-3.75), F(0.1), F(0), F(math.SmallestNonzeroFloat64), F(math.MaxFloat64))
	Printf("%08.2f|%-08.2f|%+08.2f|% 08.2f|%08.2f|%08v|%08v", F(-1.5), F(1.5), F(1.5), F(1.5), F(math.Inf(1)), F(math.NaN()), F(math.Inf(-1)))
	Printf("%+v|% v|%+ v|%+.3v|%10.3v|", F(math.NaN()), F(math.NaN()), F(math.NaN()), F(math.Inf(1)), F(math.NaN()))
	Printf("%.100f|%.30e|%.20g", F(0.1), F(1.0/3), F(2.0/3))
	Printf("%f|%.1f|%.0f|%.0f|%.0f|%.2f", F(0.125), F(0.25), F(0.5), F(1.5), F(2.5), F(1.005))
	Printf("%g|%g|%g|%g|%g|%G", F(1e-4), F(1e-5), F(999999), F(9999999), F(1e21), F(1e-10))
	Printf("%.1g|%.2g|%.0g|%.10g|%.3g|%.3G", F(150), F(150), F(0.05), F(0.1), F(1e-5), F(1234567))
	Printf("%v|%+v|%#v|%.2f|%8.1e|%e", C(complex(1, -2)), C(complex(1, 2)), C(complex(0.5, 0)), C(complex(1.234, 5.678)), C(complex(1, 1)), C(complex(math.NaN(), math.Inf(-1))))
	Printf("%d|%s|%t", C(complex(1, 2)), C(complex(1, 2)), C(complex(1, 2)))
	Printf("%t|%5t|%-6t|%05t|%v|%#v|%+v|%d|%q", B(true), B(true), B(false), B(true), B(false), B(true), B(false), B(true), B(false))

	// Structs, pointers, Stringers and nested containers.
	Printf("%v|%+v|%#v|%s|%d|%x", KVal("a", "1"), KVal("a", "1"), KVal("a", "1"), KVal("a", "1"), KVal("a", "1"), KVal("a", "1"))
	Printf("%v|%+v|%#v|%s|%q|%x|%X|%d|%8v|%-8s|%08.1v", TempVal(1), TempVal(1), TempVal(1), TempVal(1), TempVal(1), TempVal(1), TempVal(1), TempVal(1), TempVal(1), TempVal(1), TempVal(1))
	Printf("%v|%+v|%#v|%d", L(TempVal(1), Nil()), M("t", TempVal(2), "n", Nil()), L(TempVal(1), Nil()), L(TempVal(1), S("x")))
	Printf("%v|%+v|%#v|%s", KPtr("a", "b"), KPtr("a", "b"), KPtr("a", "b"), KPtr("a", "b"))
	Printf("%v|%#v|%d|%s|%x|%5v", L(I(1), L(S("a"), Nil()), M("k", L())), M("k", L(I(1), S("s"))), L(S("a"), I(1), Nil()), L(I(1), S("a"), F(1.5)), M("k", S("v"), "j", I(10)), L(I(1), S("ab"), Nil()))
	Printf("%v|%#v|%q|%s", StrSlice("a", "b"), StrSlice("a", "b"), StrSlice("a", "b"), IntSlice(1, 2))
	Printf("%v|%#v|%d|%x", IntStringMap(map[int]string{2: "b", 1: "a"}), IntStringMap(map[int]string{2: "b", 1: "a"}), IntStringMap(map[int]string{2: "b", 1: "a"}), IntStringMap(map[int]string{2: "b", 1: "a"}))

	// Print and Println spacing: spaces between operands when neither is a string.
	Print()
	Print(S("a"), S("b"))
	Print(I(1), I(2))
	Print(S("a"), I(1), I(2), S("b"), Nil(), Nil(), F(1e6), B(true))
	Print(Nil(), S(""), Nil())
	Print(L(I(1)), M("a", I(1)), KVal("k", "v"), TempVal(3), Bytes([]byte("hi")), StrSlice("x"))
	Print(NoValue(), NoValue())
	Println()
	Println(S("a"), S("b"), I(1), Nil(), F(0.1), L(S("x")))

	// strconv.FormatFloat directly, shortest and fixed, 64 and 32 bits.
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 0.2, 0.3, 1.0 / 3, 2.0 / 3, 100, 123456, 1234567,
		1e6, 1e-5, 1e-4, 1e20, 1e21, 1e22, 1e23, 5e-324, math.MaxFloat64, 2.2250738585072014e-308,
		math.NaN(), math.Inf(1), math.Inf(-1), 0.5, 1.5, 2.5, 0.125, 1.005, 9.995, 123.456, 3.4028234663852886e38,
		1.401298464324817e-45, 16777217, 0.000001234, 98765.4321, 1 << 53, 1<<53 + 2, 7.038531e-26, 1e15, 1e16}
	for _, f := range floats {
		for _, fmtc := range []byte{'b', 'e', 'E', 'f', 'g', 'G', 'x', 'X', 'q'} {
			for _, prec := range []int{-1, 0, 1, 2, 5, 17, 25} {
				for _, bits := range []int{32, 64} {
					out := strconv.FormatFloat(f, fmtc, prec, bits)
					format := fmt.Sprintf("%c,%d,%d", fmtc, prec, bits)
					record(Case{Fn: "format_float", Format: format, Args: []map[string]interface{}{F(f).Enc}}, out)
				}
			}
		}
	}

	// strconv.Quote of awkward strings.
	for _, s := range []string{"", "abc", "\a\b\f\n\r\t\v", "\x00\x1f\x7f", "\"'\\`", "héllo", "\xff", "a\xc3",
		"\xed\xa0\x80", "\u00ad\u00a0", "\u0378", "\U0001F600", "\U000E0001", "\U0010FFFF", "\uFFFD", "日本語"} {
		record(Case{Fn: "quote", Args: []map[string]interface{}{S(s).Enc}}, strconv.Quote(s))
	}

	// strconv.IsPrint over all of Unicode, as ranges of printable runes.
	var ranges [][2]int
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if strconv.IsPrint(r) {
			if n := len(ranges); n > 0 && ranges[n-1][1] == int(r)-1 {
				ranges[n-1][1] = int(r)
			} else {
				ranges = append(ranges, [2]int{int(r), int(r)})
			}
		}
	}

	out := map[string]interface{}{"go": runtime.Version(), "groups": groups, "isprint_ranges": ranges}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		panic(err)
	}
}

// eval reads one JSON call per line, {"fn", "format", "args"}, and prints each result
// as a JSON string (hex-wrapped when not UTF-8): the Go side of fuzz.py.
func eval() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var c struct {
			Fn     string                   `json:"fn"`
			Format string                   `json:"format"`
			Args   []map[string]interface{} `json:"args"`
		}
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			panic(err)
		}
		format, err := hex.DecodeString(c.Format)
		if err != nil {
			panic(err)
		}
		args := make([]interface{}, len(c.Args))
		for i, a := range c.Args {
			args[i] = decode(a)
		}
		var res string
		switch c.Fn {
		case "sprintf":
			res = fmt.Sprintf(string(format), args...)
		case "sprint":
			res = fmt.Sprint(args...)
		case "sprintln":
			res = fmt.Sprintln(args...)
		}
		if err := out.Encode(hex.EncodeToString([]byte(res))); err != nil {
			panic(err)
		}
	}
}

func decodeFloat(v interface{}) float64 {
	bits, err := strconv.ParseUint(v.(string), 16, 64)
	if err != nil {
		panic(err)
	}
	return math.Float64frombits(bits)
}

func decodeHex(e map[string]interface{}) string {
	b, err := hex.DecodeString(e["hex"].(string))
	if err != nil {
		panic(err)
	}
	return string(b)
}

func decode(e map[string]interface{}) interface{} {
	sub := func(k string) interface{} { return decode(e[k].(map[string]interface{})) }
	num := func() int64 {
		n, err := strconv.ParseInt(e["v"].(string), 10, 64)
		if err != nil {
			panic(err)
		}
		return n
	}
	unum := func() uint64 {
		n, err := strconv.ParseUint(e["v"].(string), 10, 64)
		if err != nil {
			panic(err)
		}
		return n
	}
	switch e["t"] {
	case "nil":
		return nil
	case "novalue":
		return reflect.Value{}
	case "bool":
		return e["v"].(bool)
	case "int":
		return int(num())
	case "int8":
		return int8(num())
	case "int16":
		return int16(num())
	case "int32":
		return int32(num())
	case "int64":
		return num()
	case "uint":
		return uint(unum())
	case "uint8":
		return uint8(unum())
	case "uint16":
		return uint16(unum())
	case "uint32":
		return uint32(unum())
	case "uint64":
		return unum()
	case "float64":
		return decodeFloat(e["v"])
	case "complex128":
		return complex(decodeFloat(e["re"]), decodeFloat(e["im"]))
	case "string":
		return decodeHex(e)
	case "bytes":
		return []byte(decodeHex(e))
	case "list":
		var l []interface{}
		for _, it := range e["v"].([]interface{}) {
			l = append(l, decode(it.(map[string]interface{})))
		}
		if l == nil {
			l = []interface{}{}
		}
		return l
	case "map":
		m := map[string]interface{}{}
		for _, kv := range e["v"].([]interface{}) {
			pair := kv.([]interface{})
			k, err := hex.DecodeString(pair[0].(string))
			if err != nil {
				panic(err)
			}
			m[string(k)] = decode(pair[1].(map[string]interface{}))
		}
		return m
	case "slice":
		items := e["v"].([]interface{})
		switch e["elem"] {
		case "string":
			l := []string{}
			for _, it := range items {
				l = append(l, decode(it.(map[string]interface{})).(string))
			}
			return l
		case "int":
			l := []int{}
			for _, it := range items {
				l = append(l, decode(it.(map[string]interface{})).(int))
			}
			return l
		}
	case "KV":
		return KV{sub("key").(string), sub("value").(string)}
	case "*KV":
		return &KV{sub("key").(string), sub("value").(string)}
	case "Temp":
		return Temp{sub("deg").(float64)}
	case "Ver":
		return Ver{sub("major").(int), sub("minor").(int)}
	case "Oops":
		return Oops{sub("code").(int)}
	case "Pair":
		return Pair{sub("name").(string), sub("any"), sub("n").(int)}
	}
	panic(fmt.Sprint("unknown encoding ", e["t"]))
}
