"""Go text/template semantics as docker's --format / inspect -f see them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from sdk.cli.template import (
    TemplateError,
    compile_template,
    expand_escapes,
    go_sprintf,
    is_table,
    render,
    render_header,
    strip_table,
)
from sdk.errors import InvalidArgument


@dataclass
class Port:
    PrivatePort: int
    Type: str

    def Describe(self, prefix: str) -> str:  # noqa: N802 - Go-style method name
        return f"{prefix}{self.PrivatePort}/{self.Type}"


DATA: dict[str, Any] = {
    "Id": "4c01db0b339c" + "0" * 52,
    "Name": "/jolly_knuth",
    "Names": "jolly_knuth",
    "Count": 3,
    "Ratio": 1.5,
    "Big": 1e6,
    "Whole": 2.0,
    "Tiny": 0.00001,
    "On": True,
    "Off": False,
    "Nil": None,
    "Empty": "",
    "List": ["a", "b c"],
    "Nums": [3, 1, 2],
    "Objs": [{"Name": "x"}, {"Name": "y"}],
    "Config": {
        "Labels": {"com.example.b": "2", "com.example.a": "1"},
        "Env": ["PATH=/bin", "A=1"],
        "Entrypoint": None,
        "Html": "<a&b>",
    },
    "State": {"Status": "running", "Running": True, "Health": None, "ExitCode": 0},
    "Port": Port(80, "tcp"),
}


CASES = [
    # text, fields, printing
    ("plain text", "plain text"),
    ("", ""),
    ("{{.Names}}", "jolly_knuth"),
    ("{{.State.Status}}", "running"),
    ("{{ .Names }}", "jolly_knuth"),
    ("{{.Count}} {{.Ratio}} {{.Big}} {{.Whole}} {{.Tiny}}", "3 1.5 1e+06 2 1e-05"),
    ("{{.On}} {{.Off}}", "true false"),
    ("{{.Nope}}", "<no value>"),
    ("{{.Nope.Deeper}}", "<no value>"),
    ("{{.Nil}}", "<no value>"),
    ("{{.Config.Entrypoint}}", "<no value>"),
    ("{{.List}}", "[a b c]"),
    ("{{.Config.Labels}}", "map[com.example.a:1 com.example.b:2]"),
    ("{{.State}}", "map[ExitCode:0 Health:<nil> Running:true Status:running]"),
    ("{{.Objs}}", "[map[Name:x] map[Name:y]]"),
    ("{{.Port}}", "{80 tcp}"),
    ("{{.Port.Type}}", "tcp"),
    ('{{.Port.Describe "port "}}', "port 80/tcp"),
    ("{{$}}", "map[Name:x]"),
    # literals
    ('{{"quoted\\t\\u00e9"}}', "quoted\té"),
    ("{{`raw\\n`}}", "raw\\n"),
    ("{{'a'}} {{0x1F}} {{0o17}} {{017}} {{1_000}} {{-5}} {{+3}}", "97 31 15 15 1000 -5 3"),
    ("{{1.0}} {{1e3}} {{.5}} {{1.25}}", "1 1000 0.5 1.25"),
    ("{{true}} {{false}}", "true false"),
    # trim markers and comments
    ("a  {{- .Names -}}  b", "ajolly_knuthb"),
    ("a\n{{- /* note */ -}}\nb", "ab"),
    ("{{/* only a comment */}}x", "x"),
    ("{{-3}}", "-3"),
    # pipes and parentheses
    ("{{.Names | upper}}", "JOLLY_KNUTH"),
    ("{{.Names | upper | lower}}", "jolly_knuth"),
    ('{{"x" | printf "%s-%s" "a"}}', "a-x"),
    ("{{(index .Objs 1).Name}}", "y"),
    ("{{len (index .Objs 0)}}", "1"),
    # docker's functions
    ("{{json .Config.Labels}}", '{"com.example.a":"1","com.example.b":"2"}'),
    ("{{json .Config.Html}}", '"<a&b>"'),
    ("{{json .List}}", '["a","b c"]'),
    ("{{json .Nil}} {{json .Nope}}", "null null"),
    ("{{json .Whole}} {{json .Ratio}}", "2 1.5"),
    ("{{json .State}}", '{"Status":"running","Running":true,"Health":null,"ExitCode":0}'),
    ('{{split "a,b,c" ","}}', "[a b c]"),
    ('{{split "abc" ""}}', "[a b c]"),
    ('{{join .List ", "}}', "a, b c"),
    ('{{join .Nums "-"}}', "3-1-2"),
    ('{{title "hello world-wide web_x"}}', "Hello World-Wide Web_x"),
    ('{{upper "straße"}} {{lower "ÀB"}}', "STRAßE àb"),
    ('{{pad .Names 2 1}}|{{pad .Empty 2 1}}|', "  jolly_knuth ||"),
    ("{{truncate .Names 5}} {{truncate .Names 50}}", "jolly jolly_knuth"),
    # Go builtins
    ("{{len .Names}} {{len .List}} {{len .Config.Labels}} {{len \"é\"}}", "11 2 2 2"),
    ("{{index .List 1}} {{index .Objs 0 \"Name\"}}", "b c x"),
    ('{{index .Config.Labels "com.example.a"}}|{{index .Config.Labels "missing"}}|', "1||"),
    ('{{index .State "Nope"}}', "<no value>"),
    ("{{index .Names 0}}", "106"),
    ("{{slice .Names 0 5}} {{slice .List 1}}", "jolly [b c]"),
    ("{{not .On}} {{not .Nope}} {{not .Empty}}", "false true true"),
    ("{{and .On .Count}} {{and .On .Empty}}| {{or .Empty .Nope .Names}}",
     "3 | jolly_knuth"),
    ("{{or .Empty .Off}} {{and .Off .Nope.X}}", "false false"),
    ("{{eq .Count 3}} {{eq .Names \"a\" \"jolly_knuth\"}} {{ne .Count 4}}",
     "true true true"),
    ("{{lt .Count 4}} {{le .Count 3}} {{gt .Ratio 1.0}} {{ge \"b\" \"a\"}}",
     "true true true true"),
    ("{{eq .Nope .Nil}} {{eq .Names .Nope}}", "true false"),
    ("{{print .Count .Count \"s\" .Count}}", "3 3s3"),
    ("{{println .Count \"x\"}}", "3 x\n"),
    ('{{printf "%d|%5d|%-4d|%03d|%x|%X|%o|%b|%c|%q" 42 42 42 7 255 255 8 5 65 "a\\"b"}}',
     '42|   42|42  |007|ff|FF|10|101|A|"a\\"b"'),
    ('{{printf "%.2f|%e|%g|%v|%s|%t|%T" .Ratio .Ratio .Big .List .Names .On .Count}}',
     "1.50|1.500000e+00|1e+06|[a b c]|jolly_knuth|true|int"),
    ('{{printf "%s %d" .Names}}', "jolly_knuth %!d(MISSING)"),
    ('{{printf "%d" .Names}}', "%!d(string=jolly_knuth)"),
    ('{{printf "x" 1 "y"}}', "x%!(EXTRA int=1, string=y)"),
    ('{{printf "%v|%s" .Nope .Nil}}', "<nil>|%!s(<nil>)"),
    ('{{printf "%5s|%-5s|%.2s|%%" "ab" "ab" "abc"}}', "   ab|ab   |ab|%"),
    ('{{html .Config.Html}} {{urlquery "a b&c/é"}} {{js "it\'s <x>"}}',
     "&lt;a&amp;b&gt; a+b%26c%2F%C3%A9 it\\'s \\u003Cx\\u003E"),
    # control structures
    ("{{if .On}}yes{{end}}", "yes"),
    ("{{if .Off}}yes{{else}}no{{end}}", "no"),
    ("{{if .Off}}1{{else if .Empty}}2{{else if .Count}}3{{else}}4{{end}}", "3"),
    ("{{if .Nope}}1{{else}}2{{end}} {{if .List}}list{{end}} {{if .Nil}}x{{end}}", "2 list "),
    ("{{with .State}}{{.Status}}{{end}}", "running"),
    ("{{with .Nope}}x{{else}}none{{end}}", "none"),
    ("{{with .Nope}}x{{else with .Names}}{{.}}{{end}}", "jolly_knuth"),
    ("{{range .List}}[{{.}}]{{end}}", "[a][b c]"),
    ("{{range $i, $e := .List}}{{$i}}={{$e}};{{end}}", "0=a;1=b c;"),
    ("{{range $e := .List}}{{$e}}{{end}}", "ab c"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}",
     "com.example.a=1 com.example.b=2 "),
    ("{{range .Nope}}x{{else}}empty{{end}}", "empty"),
    ("{{range .Config.Entrypoint}}x{{else}}nil{{end}}", "nil"),
    ("{{range 3}}{{.}}{{end}}", "012"),
    ("{{range .Nums}}{{if eq . 1}}{{break}}{{end}}{{.}}{{end}}", "3"),
    ("{{range .Nums}}{{if eq . 1}}{{continue}}{{end}}{{.}}{{end}}", "32"),
    ("{{range .Objs}}{{.Name}}{{$.Names}} {{end}}", "xjolly_knuth yjolly_knuth "),
    # variables
    ("{{$x := .Names}}{{$x}}", "jolly_knuth"),
    ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
    ("{{$x := 1}}{{if .On}}{{$x = 5}}{{end}}{{$x}}", "5"),
    ("{{$x := 1}}{{if .On}}{{$x := 5}}{{$x}}{{end}}{{$x}}", "51"),
    ("{{$x := .State}}{{$x.Status}}", "running"),
    ("{{$x := .Nope}}{{$x.Status}}", "<no value>"),
    ("{{range .Objs}}{{$n := .Name}}{{$n}}{{end}}", "xy"),
]


@pytest.mark.parametrize(("text", "want"), CASES)
def test_render(text: str, want: str) -> None:
    data = {"Name": "x"} if text == "{{$}}" else DATA
    assert render(compile_template(text), data) == want


def test_render_accepts_source_text() -> None:
    assert render("{{.Names}}", DATA) == "jolly_knuth"


def test_render_none_and_objects() -> None:
    assert render("{{.}}", None) == "<no value>"
    assert render("{{.X}}", None) == "<no value>"
    assert render("{{.PrivatePort}}", Port(5, "udp")) == "5"
    assert render("{{.}}", ["a", 1, None, True]) == "[a 1 <nil> true]"


PARSE_ERRORS = [
    ("{{.Names", "unclosed action"),
    ("{{foo}}", 'function "foo" not defined'),
    ("{{end}}", "unexpected {{end}}"),
    ("{{else}}", "unexpected {{else}}"),
    ("{{if .On}}", "unexpected EOF"),
    ("{{if}}{{end}}", "missing value for if"),
    ("{{range}}{{end}}", "missing value for range"),
    ("{{}}", "missing value for command"),
    ("{{$x}}", 'undefined variable "$x"'),
    ("{{if .On}}{{$x := 1}}{{end}}{{$x}}", 'undefined variable "$x"'),
    ("{{(.Names}}", "unclosed left paren"),
    ("{{.Names)}}", 'unexpected ")" in input'),
    ("{{1 | 2}}", "non executable command in pipeline stage 2"),
    ('{{"abc}}', "unexpected unterminated quoted string in command"),
    ("{{`abc}}", "unexpected unterminated raw quoted string in command"),
    ("{{.A @}}", 'unexpected "@" in operand'),
    ("{{break}}", "{{break}} outside {{range}}"),
    ("{{range .X}}{{else}}{{break}}{{end}}", "{{break}} outside {{range}}"),
    ("{{.Names-}}", "unexpected bad character U+002D '-' in command"),
    ("{{3x}}", 'unexpected bad number syntax: "3x" in command'),
    ("{{1.Foo}}", 'unexpected bad number syntax: "1.F" in command'),
    ("{{/* x }}", "unexpected unclosed comment in input"),
    ("{{/* x */ .A}}", "unexpected comment ends before closing delimiter in input"),
    ("{{.A :}}", "expected :="),
    ('{{"\\q"}}', "invalid syntax"),
    ('{{"x".Foo}}', 'unexpected . after term "\\"x\\""'),
    ("{{range $a, $b, $c := .X}}{{end}}", "too many declarations in range"),
    ("{{define \"x\"}}{{end}}", "{{define}} is not supported"),
    ("a\nb\n{{.A", "unclosed action"),
]


@pytest.mark.parametrize(("text", "message"), PARSE_ERRORS)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as exc:
        compile_template(text)
    line = 3 if text.startswith("a\nb") else 1
    assert str(exc.value) == f"template parsing error: template: :{line}: {message}"
    assert isinstance(exc.value, InvalidArgument)


EXEC_ERRORS = [
    ("{{.Names.X}}", "1:8", ".Names.X", "can't evaluate field X in type interface {}"),
    ("{{.State.Health.Status}}", "1:8", ".State.Health.Status",
     "nil pointer evaluating interface {}.Status"),
    ("{{.Port.Nope}}", "1:7", ".Port.Nope", "can't evaluate field Nope in type interface {}"),
    ("{{index .List 5}}", "1:2", "index .List 5", "error calling index: index out of range: 5"),
    ("{{index .Count 1}}", "1:2", "index .Count 1",
     "error calling index: can't index item of type int"),
    ("{{join .Names}}", "1:2", "join", "wrong number of args for join: want 2 got 1"),
    ("{{eq .Count}}", "1:2", "eq .Count", "error calling eq: missing argument for comparison"),
    ("{{eq .Count 1.5}}", "1:2", "eq .Count 1.5",
     "error calling eq: incompatible types for comparison"),
    ("{{lt .List 1}}", "1:2", "lt .List 1", "error calling lt: invalid type for comparison"),
    ("{{upper 3}}", "1:8", "3", "expected string; found 3"),
    ("{{upper .Count}}", "1:8", ".Count", "wrong type for value; expected string; got int"),
    ("{{upper .Nope}}", "1:8", ".Nope", "invalid value; expected string"),
    ("{{pad .Names 1 \"x\"}}", "1:15", '"x"', "expected integer; found \"x\""),
    ("{{.Count | len}}", "1:11", "len", "error calling len: len of type int"),
    ("{{range .Names}}{{end}}", "1:8", ".Names", "range can't iterate over jolly_knuth"),
    ("{{3 .Names}}", "1:2", "3", "can't give argument to non-function 3"),
    ("{{nil}}", "1:2", "nil", "nil is not a command"),
    ("{{.Names 1}}", "1:2", ".Names", "Names is not a method but has arguments"),
    ("{{$x = 1}}", "1:7", "1", "undefined variable: $x"),
    ("x\n  {{.Names.Y}}", "2:10", ".Names.Y", "can't evaluate field Y in type interface {}"),
]


@pytest.mark.parametrize(("text", "where", "context", "message"), EXEC_ERRORS)
def test_exec_errors(text: str, where: str, context: str, message: str) -> None:
    tmpl = compile_template(text)
    with pytest.raises(TemplateError) as exc:
        render(tmpl, DATA)
    assert str(exc.value) == (f'template parsing error: template: :{where}: executing "" '
                              f"at <{context}>: {message}")


def test_missingkey_error_like_docker_inspect_fallback() -> None:
    tmpl = compile_template("{{.State.Nope}}", missing_key="error")
    with pytest.raises(TemplateError) as exc:
        render(tmpl, DATA)
    assert str(exc.value) == ('template parsing error: template: :1:8: executing "" at '
                              '<.State.Nope>: map has no entry for key "Nope"')
    tmpl = compile_template("{{.Nope}}", missing_key="error")
    with pytest.raises(TemplateError, match='map has no entry for key "Nope"'):
        render(tmpl, DATA)
    assert render(compile_template("{{.Names}}", missing_key="error"), DATA) == "jolly_knuth"
    with pytest.raises(InvalidArgument):
        compile_template("x", missing_key="bogus")


def test_header_functions_keep_headers() -> None:
    tmpl = compile_template("{{.ID}}\t{{upper .Names}}\t{{json .Labels}}\t{{truncate .ID 3}}"
                            "\t{{pad .Size 1 1}}")
    headers = {"ID": "CONTAINER ID", "Names": "NAMES", "Labels": "LABELS", "Size": "SIZE"}
    assert render_header(tmpl, headers) == "CONTAINER ID\tNAMES\tLABELS\tCONTAINER ID\t SIZE "


def test_table_helpers() -> None:
    assert is_table("table {{.ID}}") and is_table("table") and not is_table("{{.ID}}")
    assert strip_table("table {{.ID}}\t{{.Names}}  ") == "{{.ID}}\t{{.Names}}"
    assert strip_table("{{.ID}}") == "{{.ID}}"
    assert expand_escapes("{{.ID}}\\t{{.Names}}\\n") == "{{.ID}}\t{{.Names}}\n"


def test_go_sprintf_directly() -> None:
    assert go_sprintf("%+d %+.1f % d", [5, 2.25, 3]) == "+5 +2.2  3"
    assert go_sprintf("%08.3f|%x|%#x|%U", [3.14159, "hi", 255, 0x1F600]) == \
        "0003.142|6869|0xff|U+1F600"
    assert go_sprintf("%*d|%-*d|", [4, 7, 3, 1]) == "   7|1  |"
    assert go_sprintf("%d%%", [50]) == "50%"
    assert go_sprintf("%!", []) == "%!!(MISSING)"
    assert go_sprintf("%", []) == "%!(NOVERB)"
    assert go_sprintf("%z", [1]) == "%!z(int=1)"
    assert go_sprintf("%5.1f|%-8.3e|%G", [3.14159, 1234.5, 1e-7]) == "  3.1|1.234e+03|1E-07"
    assert go_sprintf("%v %d %q", [[1, 2], [1, 2], ["a", "b"]]) == '[1 2] [1 2] ["a" "b"]'


def test_compile_once_render_many_is_fast() -> None:
    tmpl = compile_template("{{.ID}}\t{{.Image}}\t{{.Names | upper}}\t{{if .On}}up{{end}}")
    rows = [{"ID": f"{i:012x}", "Image": "busybox", "Names": f"n{i}", "On": i % 2 == 0}
            for i in range(1000)]
    single = compile_template("{{.ID}}")
    start = time.perf_counter()
    out = [render(tmpl, row) for row in rows]
    ids = [render(single, row) for row in rows]
    elapsed = time.perf_counter() - start
    assert out[0] == "000000000000\tbusybox\tN0\tup" and ids[999] == f"{999:012x}"
    assert elapsed < 0.5


@pytest.mark.parametrize(("value", "want"), [
    (0.0, "0"), (-0.0, "-0"), (1.0, "1"), (1.5, "1.5"), (100000.0, "100000"),
    (1e6, "1e+06"), (1234567.0, "1.234567e+06"), (0.0001, "0.0001"), (0.00001, "1e-05"),
    (123456.789, "123456.789"), (-2.5e-7, "-2.5e-07"), (1e21, "1e+21"),
    (float("inf"), "+Inf"), (float("-inf"), "-Inf"), (float("nan"), "NaN"),
    (0.1 + 0.2, "0.30000000000000004"),
])
def test_go_float_shortest(value: float, want: str) -> None:
    from sdk.cli.template import go_float

    assert go_float(value) == want


def test_method_errors_and_private_attributes() -> None:
    class Obj:
        secret = "x"

        def Fail(self) -> str:  # noqa: N802
            raise ValueError("boom")

    with pytest.raises(TemplateError, match="error calling Fail: boom"):
        render("{{.Fail}}", Obj())
    with pytest.raises(TemplateError, match="can't evaluate field _hidden in type Obj"):
        render("{{._hidden}}", Obj())
    assert render("{{.secret}}", Obj()) == "x"


def test_else_chains_and_nested_ranges() -> None:
    tmpl = compile_template("{{range $i, $o := .Objs}}{{range $.List}}{{$o.Name}}{{.}} "
                            "{{end}}{{end}}")
    assert render(tmpl, DATA) == "xa xb c ya yb c "
    tmpl = compile_template("{{with .Nope}}1{{else with .Off}}2{{else}}3{{end}}")
    assert render(tmpl, DATA) == "3"
